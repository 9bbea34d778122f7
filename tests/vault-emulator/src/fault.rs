//! Test-only fault injection, set through `Handle::set_fault`. Nothing like it exists
//! in Vault: it lets tests see how a client copes with a failing or slow server. A
//! fault touches only requests outside `/v1/sys/`, so health checks, seal control
//! and the emulator's own endpoints keep working while it is set.

use std::time::Duration;

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
    /// Answer this status and raw body.
    Raw(u16, &'static str),
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
