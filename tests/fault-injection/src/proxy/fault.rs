//! What the proxy does to a request: the [`Fault`] a test sets, and the per-request
//! [`Action`] it turns into. Counting faults advance here, under the proxy's lock, so
//! concurrent requests each take their own turn.

use crate::Failure;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Test code run once by [`Fault::HookAfter`] (seal the upstream Vault, revoke tokens).
/// Requests the proxy forwards wait for it, so let the hook reach the upstream directly or
/// through an exempt path of this proxy.
pub type Hook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// A fault for every request whose path is not exempt (or only those of one method, see
/// `Handle::set_fault_for`). Exempt requests and those of other methods neither meet it
/// nor advance its counts.
#[derive(Clone)]
pub enum Fault {
    /// Every request answers this status with the dialect's error body; not forwarded.
    Status(u16),
    /// Every request is forwarded after this delay.
    Delay(Duration),
    /// The next `count` requests answer `status`; then the fault clears itself.
    FailNext { count: u32, status: u16 },
    /// The next `ok` requests are forwarded; every later one answers `status`, as if the
    /// client was killed between request `ok` and `ok + 1`.
    FailAfter { ok: u32, status: u16 },
    /// Every request fails this way.
    Always(Failure),
    /// The next `count` requests fail this way; then the fault clears itself.
    Next { count: u32, failure: Failure },
    /// The client is killed after `ok` forwarded requests: the next one is forwarded with
    /// its response lost when `served`, else reset unforwarded; every later one is reset.
    KillAfter { ok: u32, served: bool },
    /// The client is killed at the first request with this method and raw path (e.g.
    /// `POST /v1/auth/kubernetes/role/x`): forwarded with its response lost when `served`,
    /// else reset unforwarded; every later request is reset. Earlier ones pass, however many:
    /// a kill point named by what it interrupts, where counts vary (polls, retries).
    KillAt {
        method: &'static str,
        path: String,
        served: bool,
    },
    /// Each request fails with probability `percent`/100, the failure picked from
    /// `failures`; `seed` makes it repeatable (it advances as the generator's state).
    Random {
        percent: u8,
        seed: u64,
        failures: Vec<Failure>,
    },
    /// After `ok` forwarded requests the next one awaits `hook` (once), then is forwarded;
    /// then the fault clears itself. Requests arriving meanwhile wait for the hook too, so
    /// none slips past the change it makes.
    HookAfter { ok: u32, hook: Hook },
    /// A server that throttles above a rate, as Priority and Fairness or a Vault quota
    /// does: the first `per_second` requests of each second (fixed windows, the first one
    /// starting at the first request) are forwarded, later ones answer 429 with
    /// `Retry-After: retry_after` (and, for Kubernetes, the Status' `retryAfterSeconds`).
    RateLimit { per_second: u32, retry_after: u32 },
    /// Requests whose raw path starts with `path_prefix` answer `status` with `body` as it
    /// is, labelled JSON, unforwarded: garbage from a broken proxy or a server that is not
    /// what the client expects. Other requests are forwarded.
    Garbage {
        path_prefix: String,
        status: u16,
        body: &'static str,
    },
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => f.debug_tuple("Status").field(s).finish(),
            Self::Delay(d) => f.debug_tuple("Delay").field(d).finish(),
            Self::FailNext { count, status } => f
                .debug_struct("FailNext")
                .field("count", count)
                .field("status", status)
                .finish(),
            Self::FailAfter { ok, status } => f
                .debug_struct("FailAfter")
                .field("ok", ok)
                .field("status", status)
                .finish(),
            Self::Always(failure) => f.debug_tuple("Always").field(failure).finish(),
            Self::Next { count, failure } => f
                .debug_struct("Next")
                .field("count", count)
                .field("failure", failure)
                .finish(),
            Self::KillAfter { ok, served } => f
                .debug_struct("KillAfter")
                .field("ok", ok)
                .field("served", served)
                .finish(),
            Self::KillAt {
                method,
                path,
                served,
            } => f
                .debug_struct("KillAt")
                .field("method", method)
                .field("path", path)
                .field("served", served)
                .finish(),
            Self::Random {
                percent,
                seed,
                failures,
            } => f
                .debug_struct("Random")
                .field("percent", percent)
                .field("seed", seed)
                .field("failures", failures)
                .finish(),
            Self::RateLimit {
                per_second,
                retry_after,
            } => f
                .debug_struct("RateLimit")
                .field("per_second", per_second)
                .field("retry_after", retry_after)
                .finish(),
            Self::HookAfter { ok, .. } => f
                .debug_struct("HookAfter")
                .field("ok", ok)
                .field("hook", &format_args!("<hook>"))
                .finish(),
            Self::Garbage {
                path_prefix,
                status,
                body,
            } => f
                .debug_struct("Garbage")
                .field("path_prefix", path_prefix)
                .field("status", status)
                .field("body", body)
                .finish(),
        }
    }
}

/// Hooks are equal when they are the same closure (`Arc::ptr_eq`).
impl PartialEq for Fault {
    fn eq(&self, other: &Self) -> bool {
        use Fault::*;
        match (self, other) {
            (Status(a), Status(b)) => a == b,
            (Delay(a), Delay(b)) => a == b,
            (
                FailNext { count, status },
                FailNext {
                    count: c,
                    status: s,
                },
            ) => (count, status) == (c, s),
            (FailAfter { ok, status }, FailAfter { ok: o, status: s }) => (ok, status) == (o, s),
            (Always(a), Always(b)) => a == b,
            (
                Next { count, failure },
                Next {
                    count: c,
                    failure: f,
                },
            ) => (count, failure) == (c, f),
            (KillAfter { ok, served }, KillAfter { ok: o, served: s }) => (ok, served) == (o, s),
            (
                KillAt {
                    method,
                    path,
                    served,
                },
                KillAt {
                    method: m,
                    path: p,
                    served: s,
                },
            ) => (method, path, served) == (m, p, s),
            (
                Random {
                    percent,
                    seed,
                    failures,
                },
                Random {
                    percent: p,
                    seed: s,
                    failures: f,
                },
            ) => (percent, seed, failures) == (p, s, f),
            (
                RateLimit {
                    per_second,
                    retry_after,
                },
                RateLimit {
                    per_second: p,
                    retry_after: r,
                },
            ) => (per_second, retry_after) == (p, r),
            (HookAfter { ok, hook }, HookAfter { ok: o, hook: h }) => {
                ok == o && Arc::ptr_eq(hook, h)
            }
            (
                Garbage {
                    path_prefix,
                    status,
                    body,
                },
                Garbage {
                    path_prefix: p,
                    status: s,
                    body: b,
                },
            ) => (path_prefix, status, body) == (p, s, b),
            _ => false,
        }
    }
}

impl Eq for Fault {}

/// What one request meets.
#[derive(Clone)]
pub(crate) enum Action {
    /// This status with the dialect's error body; not forwarded.
    Fail(u16),
    /// 429 with `Retry-After` of this many seconds; not forwarded.
    Throttle(u32),
    /// Close without a response; not forwarded.
    Reset,
    /// Forward, then close without a response.
    Lost,
    /// Forward after this delay.
    Delay(Duration),
    /// Await the hook, then forward.
    Hook(Hook),
    /// This status and raw body; not forwarded.
    Raw(u16, &'static str),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fail(s) => write!(f, "Fail({s})"),
            Self::Throttle(s) => write!(f, "Throttle({s})"),
            Self::Reset => f.write_str("Reset"),
            Self::Lost => f.write_str("Lost"),
            Self::Delay(d) => write!(f, "Delay({d:?})"),
            Self::Hook(_) => f.write_str("Hook(<hook>)"),
            Self::Raw(s, b) => write!(f, "Raw({s}, {b:?})"),
        }
    }
}

impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Fail(a), Self::Fail(b)) => a == b,
            (Self::Throttle(a), Self::Throttle(b)) => a == b,
            (Self::Reset, Self::Reset) | (Self::Lost, Self::Lost) => true,
            (Self::Delay(a), Self::Delay(b)) => a == b,
            (Self::Hook(a), Self::Hook(b)) => Arc::ptr_eq(a, b),
            (Self::Raw(a, x), Self::Raw(b, y)) => (a, x) == (b, y),
            _ => false,
        }
    }
}

fn action_of(f: &Failure) -> Action {
    match f {
        Failure::Status(s) => Action::Fail(*s),
        Failure::Throttle { retry_after } => Action::Throttle(*retry_after),
        Failure::Reset => Action::Reset,
        Failure::LostResponse => Action::Lost,
        Failure::Hang(d) => Action::Delay(*d),
    }
}

/// The fault and the method it is limited to.
#[derive(Default)]
pub(crate) struct Rule {
    pub fault: Option<Fault>,
    pub method: Option<String>,
    /// [`Fault::RateLimit`]'s current window: its start and the requests it admitted.
    pub window: Option<(Instant, u32)>,
}

/// Whether a rate limit of `per_second` admits a request at `now` (fixed one-second
/// windows, the first starting at the first request).
fn admit(window: &mut Option<(Instant, u32)>, per_second: u32, now: Instant) -> bool {
    let (start, admitted) = window.get_or_insert((now, 0));
    if now.duration_since(*start) >= Duration::from_secs(1) {
        // Windows stay aligned to the first: a quiet spell skips whole windows.
        let elapsed = now.duration_since(*start).as_secs();
        *start += Duration::from_secs(elapsed);
        *admitted = 0;
    }
    if *admitted < per_second {
        *admitted += 1;
        true
    } else {
        false
    }
}

impl Rule {
    /// The action for a non-exempt request, advancing counting faults.
    pub fn apply(&mut self, method: &str, path: &str) -> Option<Action> {
        if self
            .method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case(method))
        {
            return None;
        }
        let fault = &mut self.fault;
        match fault {
            None => None,
            Some(Fault::Status(status)) => Some(Action::Fail(*status)),
            Some(Fault::Delay(d)) => Some(Action::Delay(*d)),
            Some(Fault::Garbage {
                path_prefix,
                status,
                body,
            }) => path
                .starts_with(path_prefix.as_str())
                .then_some(Action::Raw(*status, body)),
            Some(Fault::FailAfter { ok, status }) => {
                if *ok > 0 {
                    *ok -= 1;
                    None
                } else {
                    Some(Action::Fail(*status))
                }
            }
            Some(Fault::FailNext { count, status }) => {
                let failure = Failure::Status(*status);
                let (hit, spent) = crate::count_down(count, &failure);
                let action = hit.map(action_of);
                if spent {
                    *fault = None;
                }
                action
            }
            Some(Fault::Always(f)) => Some(action_of(f)),
            Some(Fault::Next { count, failure }) => {
                let (hit, spent) = crate::count_down(count, failure);
                let action = hit.map(action_of);
                if spent {
                    *fault = None;
                }
                action
            }
            Some(Fault::KillAfter { ok, served }) => {
                crate::kill_after(ok, served).map(|f| action_of(&f))
            }
            Some(Fault::KillAt {
                method: m,
                path: p,
                served,
            }) => {
                if !(m.eq_ignore_ascii_case(method) && p == path) {
                    return None;
                }
                let (mut ok, mut served) = (0, *served);
                let action = crate::kill_after(&mut ok, &mut served).map(|f| action_of(&f));
                // Dead from here on: every later request is reset.
                *fault = Some(Fault::KillAfter {
                    ok: 0,
                    served: false,
                });
                action
            }
            Some(Fault::Random {
                percent,
                seed,
                failures,
            }) => crate::random(*percent, seed, failures).map(action_of),
            Some(Fault::RateLimit {
                per_second,
                retry_after,
            }) => (!admit(&mut self.window, *per_second, Instant::now()))
                .then_some(Action::Throttle(*retry_after)),
            Some(Fault::HookAfter { ok, .. }) if *ok > 0 => {
                *ok -= 1;
                None
            }
            Some(Fault::HookAfter { hook, .. }) => {
                let hook = hook.clone();
                *fault = None;
                Some(Action::Hook(hook))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt as _;

    fn rule(fault: Fault) -> Rule {
        Rule {
            fault: Some(fault),
            method: None,
            window: None,
        }
    }

    #[test]
    fn a_rate_limit_admits_its_rate_per_one_second_window() {
        let t = Instant::now();
        let mut w = None;
        let ms = |n| t + Duration::from_millis(n);
        let admitted =
            |w: &mut Option<(Instant, u32)>, at| (0..5).filter(|_| admit(w, 3, at)).count();
        assert_eq!(admitted(&mut w, ms(0)), 3, "the first window admits 3 of 5");
        assert_eq!(admitted(&mut w, ms(999)), 0, "still the first window");
        assert_eq!(
            admitted(&mut w, ms(1000)),
            3,
            "the next window starts afresh"
        );
        // A quiet spell: windows stay aligned to the first (3.0 s .. 4.0 s).
        assert_eq!(admitted(&mut w, ms(3500)), 3);
        assert_eq!(admitted(&mut w, ms(3999)), 0);
        assert_eq!(admitted(&mut w, ms(4000)), 3);

        // Through the rule: over the rate, a 429 with the Retry-After asked for.
        let mut r = rule(Fault::RateLimit {
            per_second: 2,
            retry_after: 1,
        });
        let actions: Vec<_> = (0..4).map(|_| r.apply("GET", "/x")).collect();
        assert_eq!(
            actions,
            [
                None,
                None,
                Some(Action::Throttle(1)),
                Some(Action::Throttle(1))
            ]
        );
        assert!(r.fault.is_some(), "a rate limit stays until cleared");
    }

    #[test]
    fn fail_next_counts_down_and_clears() {
        let mut r = rule(Fault::FailNext {
            count: 2,
            status: 500,
        });
        assert_eq!(r.apply("GET", "/a"), Some(Action::Fail(500)));
        assert_eq!(
            r.fault,
            Some(Fault::FailNext {
                count: 1,
                status: 500
            })
        );
        assert_eq!(r.apply("GET", "/a"), Some(Action::Fail(500)));
        assert_eq!(r.fault, None);
        assert_eq!(r.apply("GET", "/a"), None);
        let mut zero = rule(Fault::FailNext {
            count: 0,
            status: 500,
        });
        assert_eq!(zero.apply("GET", "/a"), None);
        assert_eq!(zero.fault, None);
    }

    #[test]
    fn method_filter_neither_meets_nor_counts_other_methods() {
        let mut r = Rule {
            fault: Some(Fault::FailAfter { ok: 1, status: 503 }),
            method: Some("PUT".into()),
            window: None,
        };
        for _ in 0..3 {
            assert_eq!(r.apply("GET", "/a"), None);
        }
        assert_eq!(r.apply("PUT", "/a"), None);
        assert_eq!(r.apply("put", "/a"), Some(Action::Fail(503)));
        assert_eq!(r.apply("GET", "/a"), None);
    }

    #[test]
    fn kill_at_passes_everything_before_its_request_then_resets_all() {
        for (served, at) in [(true, Action::Lost), (false, Action::Reset)] {
            let mut r = rule(Fault::KillAt {
                method: "POST",
                path: "/v1/x".into(),
                served,
            });
            for _ in 0..5 {
                assert_eq!(r.apply("GET", "/v1/x"), None, "another method passes");
                assert_eq!(r.apply("POST", "/v1/y"), None, "another path passes");
            }
            assert_eq!(r.apply("POST", "/v1/x"), Some(at));
            for p in ["/v1/x", "/v1/y"] {
                assert_eq!(r.apply("GET", p), Some(Action::Reset), "dead after");
            }
        }
    }

    #[test]
    fn hook_after_fires_once_then_clears() {
        let hook: Hook = Arc::new(|| async {}.boxed());
        let mut r = rule(Fault::HookAfter {
            ok: 1,
            hook: hook.clone(),
        });
        assert_eq!(r.apply("GET", "/a"), None);
        assert_eq!(r.apply("GET", "/a"), Some(Action::Hook(hook.clone())));
        assert_eq!(r.fault, None);
        assert_eq!(r.apply("GET", "/a"), None);
    }

    #[test]
    fn faults_compare_hooks_by_identity_and_print_them_opaquely() {
        let a: Hook = Arc::new(|| async {}.boxed());
        let b: Hook = Arc::new(|| async {}.boxed());
        let with = |hook: &Hook| Fault::HookAfter {
            ok: 2,
            hook: hook.clone(),
        };
        assert_eq!(with(&a), with(&a));
        assert_ne!(with(&a), with(&b));
        assert_eq!(
            format!("{:?}", with(&a)),
            "HookAfter { ok: 2, hook: <hook> }"
        );
        assert_ne!(Fault::Status(500), Fault::Status(503));
        assert_ne!(
            Fault::Status(500),
            Fault::FailNext {
                count: 1,
                status: 500
            }
        );
    }

    #[test]
    fn random_repeats_for_a_seed() {
        let failures = vec![Failure::Status(500), Failure::Reset];
        let run = |seed| {
            let mut r = rule(Fault::Random {
                percent: 30,
                seed,
                failures: failures.clone(),
            });
            (0..200).map(|_| r.apply("GET", "/a")).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        assert!(run(3).contains(&Some(Action::Reset)));
        assert!(run(3).contains(&None));
    }
}
