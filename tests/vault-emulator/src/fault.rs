//! Test-only fault injection, set through `Handle::set_fault`. Nothing like it exists
//! in Vault: it lets tests see how a client copes with a failing or slow server. A
//! fault touches only requests outside `/v1/sys/`, so health checks, seal control
//! and the emulator's own endpoints keep working while it is set.

use std::time::Duration;

/// How one request fails under `Always`, `Next`, `Random` and `KillAfter` (a `Status`
/// answers `{"errors":["injected"]}`).
pub use fault_injection::Failure;

/// A fault applied to every request whose path is not under `/v1/sys/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every such request answers this status with `{"errors":["injected"]}` and is
    /// not served. The status should be a valid HTTP code (100–999).
    Status(u16),
    /// Every such request is served normally after waiting this long.
    Delay(Duration),
    /// The next `count` such requests answer `status` with `{"errors":["injected"]}`;
    /// after that the fault clears itself.
    FailNext { count: u32, status: u16 },
    /// The next `ok` such requests are served; every one after answers `status`. A client
    /// stopped this way is in the state of one killed between request `ok` and `ok + 1`.
    FailAfter { ok: u32, status: u16 },
    /// Every such request fails this way.
    Always(Failure),
    /// The next `count` such requests fail this way; after that the fault clears itself.
    Next { count: u32, failure: Failure },
    /// The client is killed after `ok` served requests: the next one is served with its
    /// response lost when `served`, else reset unserved; every later one is reset.
    KillAfter { ok: u32, served: bool },
    /// Each such request fails with probability `percent`/100, the failure picked from
    /// `failures`; `seed` makes the sequence repeatable (it advances as the generator's state).
    Random {
        percent: u8,
        seed: u64,
        failures: Vec<Failure>,
    },
    /// After `ok` served requests Vault seals itself (until `Handle::unseal`); then clears.
    SealAfter { ok: u32 },
    /// After `ok` served requests every non-root token is revoked, as if the client's token
    /// expired mid-run; then clears.
    RevokeTokensAfter { ok: u32 },
    /// Requests whose raw path starts with `path_prefix` are not served and answer
    /// `status` with `body` as it is, labelled JSON: garbage, truncated or wrongly shaped
    /// answers from a broken proxy or a server that is not Vault. Other requests are served.
    Garbage {
        path_prefix: String,
        status: u16,
        body: &'static str,
    },
}

/// The message of an injected error.
pub const INJECTED: &str = "injected";

/// What a request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Fail(u16),
    Delay(Duration),
    /// 429 with `Retry-After`.
    Throttle(u32),
    /// Close without a response, unserved.
    Reset,
    /// Serve, then close without a response.
    Lost,
    /// Seal, then serve (the request meets a sealed Vault).
    Seal,
    /// Revoke every non-root token, then serve.
    RevokeTokens,
    /// Answer this status and raw body.
    Raw(u16, &'static str),
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

/// Whether a raw request path (still percent-encoded) is exempt.
fn is_sys(path: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    decoded == "/v1/sys" || decoded.starts_with("/v1/sys/")
}

/// The action for a request, consuming one failure of a `FailNext`.
pub fn apply(fault: &mut Option<Fault>, path: &str) -> Option<Action> {
    if is_sys(path) {
        return None;
    }
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
            let status = *status;
            let action = (*count > 0).then_some(Action::Fail(status));
            *count = count.saturating_sub(1);
            if *count == 0 {
                *fault = None;
            }
            action
        }
        Some(Fault::Always(f)) => Some(action_of(f)),
        Some(Fault::Next { count, failure }) => {
            let (hit, spent) = fault_injection::count_down(count, failure);
            let action = hit.map(action_of);
            if spent {
                *fault = None;
            }
            action
        }
        Some(Fault::KillAfter { ok, served }) => {
            fault_injection::kill_after(ok, served).map(|f| action_of(&f))
        }
        Some(Fault::Random {
            percent,
            seed,
            failures,
        }) => fault_injection::random(*percent, seed, failures).map(action_of),
        Some(Fault::SealAfter { ok }) | Some(Fault::RevokeTokensAfter { ok }) if *ok > 0 => {
            *ok -= 1;
            None
        }
        Some(Fault::SealAfter { .. }) => {
            *fault = None;
            Some(Action::Seal)
        }
        Some(Fault::RevokeTokensAfter { .. }) => {
            *fault = None;
            Some(Action::RevokeTokens)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down_and_clears() {
        let mut fault = Some(Fault::FailNext {
            count: 2,
            status: 500,
        });
        assert_eq!(apply(&mut fault, "/v1/sys/health"), None);
        assert_eq!(
            apply(&mut fault, "/v1/secret/data/a"),
            Some(Action::Fail(500))
        );
        assert_eq!(
            fault,
            Some(Fault::FailNext {
                count: 1,
                status: 500
            })
        );
        assert_eq!(
            apply(&mut fault, "/v1/secret/data/a"),
            Some(Action::Fail(500))
        );
        assert_eq!(fault, None);
        assert_eq!(apply(&mut fault, "/v1/secret/data/a"), None);
        let mut zero = Some(Fault::FailNext {
            count: 0,
            status: 500,
        });
        assert_eq!(apply(&mut zero, "/v1/secret/data/a"), None);
        assert_eq!(zero, None);
    }

    #[test]
    fn fail_after_serves_then_fails_for_good() {
        let mut fault = Some(Fault::FailAfter { ok: 2, status: 503 });
        assert_eq!(apply(&mut fault, "/v1/secret/data/a"), None);
        assert_eq!(
            apply(&mut fault, "/v1/sys/health"),
            None,
            "sys does not count"
        );
        assert_eq!(apply(&mut fault, "/v1/secret/data/a"), None);
        for _ in 0..3 {
            assert_eq!(
                apply(&mut fault, "/v1/secret/data/a"),
                Some(Action::Fail(503))
            );
        }
    }

    #[test]
    fn kill_after_serves_then_loses_one_answer_then_resets_all() {
        let mut fault = Some(Fault::KillAfter {
            ok: 1,
            served: true,
        });
        assert_eq!(apply(&mut fault, "/v1/secret/data/a"), None);
        assert_eq!(apply(&mut fault, "/v1/secret/data/a"), Some(Action::Lost));
        for _ in 0..3 {
            assert_eq!(apply(&mut fault, "/v1/secret/data/a"), Some(Action::Reset));
        }
    }

    #[test]
    fn seal_after_fires_once_then_clears() {
        let mut fault = Some(Fault::SealAfter { ok: 1 });
        assert_eq!(apply(&mut fault, "/v1/secret/data/a"), None);
        assert_eq!(apply(&mut fault, "/v1/secret/data/a"), Some(Action::Seal));
        assert_eq!(fault, None);
    }

    #[test]
    fn garbage_hits_only_its_path_prefix() {
        let mut fault = Some(Fault::Garbage {
            path_prefix: "/v1/secret/data/apps/".into(),
            status: 200,
            body: "<html>",
        });
        assert_eq!(
            apply(&mut fault, "/v1/secret/data/apps/db"),
            Some(Action::Raw(200, "<html>"))
        );
        assert_eq!(apply(&mut fault, "/v1/secret/data/billing/db"), None);
        assert_eq!(apply(&mut fault, "/v1/sys/health"), None);
        assert!(fault.is_some(), "stays until cleared");
    }

    #[test]
    fn sys_paths_are_exempt_even_percent_encoded() {
        let mut fault = Some(Fault::Status(503));
        assert_eq!(apply(&mut fault, "/v1/%73ys/health"), None);
        assert_eq!(apply(&mut fault, "/v1/sys"), None);
        assert_eq!(apply(&mut fault, "/v1/system/x"), Some(Action::Fail(503)));
        assert_eq!(
            apply(&mut fault, "/v1/auth/token/lookup-self"),
            Some(Action::Fail(503))
        );
    }
}
