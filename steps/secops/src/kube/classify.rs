//! Kubernetes API failures: which may be retried (and after how long), and which exit
//! class and next step each one means for the operator.

use crate::error::Error;
use crate::retry::Failed;

/// Whether another attempt may succeed: timeouts, throttling (with the Status'
/// `retryAfterSeconds`, which the apiserver sends along with Retry-After), server errors and
/// transport failures. Conflicts are not retried: the object must be read again first.
pub(super) fn classify(e: kube::Error) -> Failed<kube::Error> {
    match &e {
        kube::Error::Api(s) if matches!(s.code, 408 | 429 | 500 | 502 | 503 | 504) => {
            let retry_after = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| std::time::Duration::from_secs(s.into()));
            // Priority and Fairness (and max-in-flight) answer 429 before handling the
            // request; a 503 that says when to come back is an overloaded server too.
            if s.code == 429 || (s.code == 503 && retry_after.is_some()) {
                return Failed::Throttled {
                    error: e,
                    retry_after,
                };
            }
            Failed::Retryable {
                error: e,
                retry_after,
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            Failed::Retryable {
                error: e,
                retry_after: None,
            }
        }
        _ => Failed::Final(e),
    }
}

/// Maps an API failure to an exit-code class with the next step for the operator.
pub(super) fn map_err(e: kube::Error, verb: &str, object: &str) -> Error {
    match e {
        kube::Error::Api(s) => {
            let msg = format!("{verb} {object}: {} ({})", s.message, s.code);
            match s.code {
                // The object was replaced (uid precondition) or a create found one: re-running
                // will not change that, a human must look.
                409 if s.reason == "AlreadyExists"
                    || s.message.contains("Precondition failed: UID") =>
                {
                    Error::precondition(
                        object,
                        format!("{verb} refused: {} (409 {})", s.message, s.reason),
                        "the object was replaced or already exists; inspect it before re-running",
                    )
                }
                409 => Error::Transient(format!("{msg}: it changed since it was read")),
                403 => Error::precondition(
                    object,
                    format!("forbidden to {verb} ({})", s.message),
                    "grant the step's ServiceAccount this verb or check --namespaces",
                ),
                401 => Error::precondition(
                    object,
                    "the Kubernetes API rejected our credentials",
                    "check the kubeconfig or the service-account token",
                ),
                // A patch only follows a read: the object was deleted since (re-run).
                404 if verb == "patch" => {
                    Error::Transient(format!("{msg}: it was deleted since it was read"))
                }
                404 => Error::precondition(object, "not found", "check the name and namespace"),
                400 | 422 => Error::precondition(
                    object,
                    format!("the API server refused the {verb}: {}", s.message),
                    "inspect the object; this step will not change it",
                ),
                408 | 429 | 500..=599 => Error::Transient(msg),
                _ => Error::Internal(msg),
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            Error::Transient(format!("{verb} {object}: Kubernetes API unreachable: {e}"))
        }
        other => Error::Internal(format!("{verb} {object}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    fn api(v: serde_json::Value) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn conflicts_are_transient_unless_the_object_was_replaced() {
        let stale = api(serde_json::json!({"code": 409, "reason": "Conflict",
            "message": "Operation cannot be fulfilled on secrets \"db\": the object has been modified"}));
        assert_eq!(
            map_err(stale, "patch", "Secret a/db").exit(),
            Exit::Transient
        );
        let replaced = api(serde_json::json!({"code": 409, "reason": "Conflict",
            "message": "Operation cannot be fulfilled on secrets \"db\": Precondition failed: UID in precondition: a, UID in object meta: b"}));
        assert_eq!(
            map_err(replaced, "delete", "Secret a/db").exit(),
            Exit::Precondition
        );
        let exists =
            api(serde_json::json!({"code": 409, "reason": "AlreadyExists", "message": "x"}));
        assert_eq!(
            map_err(exists, "create", "Secret a/db").exit(),
            Exit::Precondition
        );
        let gone = api(serde_json::json!({"code": 404, "reason": "NotFound", "message": "x"}));
        assert_eq!(
            map_err(gone, "patch", "Secret a/db").exit(),
            Exit::Transient
        );
    }

    #[test]
    fn throttling_and_server_errors_are_retried_with_the_servers_hint() {
        let throttled = api(serde_json::json!({"code": 429, "reason": "TooManyRequests",
            "message": "x", "details": {"retryAfterSeconds": 3}}));
        match classify(throttled) {
            Failed::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Some(std::time::Duration::from_secs(3)))
            }
            _ => panic!("429 is throttling"),
        }
        let bare = api(serde_json::json!({"code": 429, "message": "x"}));
        assert!(matches!(
            classify(bare),
            Failed::Throttled {
                retry_after: None,
                ..
            }
        ));
        let overloaded = api(serde_json::json!({"code": 503, "message": "x",
            "details": {"retryAfterSeconds": 1}}));
        assert!(matches!(classify(overloaded), Failed::Throttled { .. }));
        for code in [500, 502, 503, 504] {
            let e = api(serde_json::json!({"code": code, "message": "x"}));
            assert!(matches!(classify(e), Failed::Retryable { .. }), "{code}");
        }
        for code in [400, 403, 404, 409, 422] {
            let e = api(serde_json::json!({"code": code, "message": "x"}));
            assert!(matches!(classify(e), Failed::Final(_)), "{code}");
        }
    }
}
