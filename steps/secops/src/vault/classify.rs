//! Error classification: a status or transport failure into the exit-code class it means,
//! which answers are worth retrying, and a rejected token told from a policy denial.

use super::response::Response;
use super::Vault;
use crate::error::Error;

impl Vault {
    /// Classifies a status that the caller did not expect.
    pub(crate) fn unexpected(&self, what: &str, object: &str, r: &Response) -> Error {
        status_error(what, object, r.status, &r.error_text())
    }

    /// As [`Vault::unexpected`], but a policy's 403 names the `capability` on `path` that
    /// the request needed and the policy to grant it in.
    pub(crate) fn unexpected_needing(
        &self,
        what: &str,
        object: &str,
        capability: &str,
        path: &str,
        r: &Response,
    ) -> Error {
        if r.status == 403 && !token_rejected(r) {
            return self.denied(object, capability, path, r);
        }
        self.unexpected(what, object, r)
    }
}

/// A 403 for the token itself (missing, expired, revoked), not for a policy: Vault answers
/// those with a bare `permission denied` (or, in newer versions, `invalid token`), while an
/// ACL denial comes wrapped in a multierror ("1 error occurred: * permission denied").
pub(super) fn token_rejected(r: &Response) -> bool {
    let text = r.error_text();
    text.trim() == "permission denied" || text.contains("invalid token")
}

/// Vault asks us to slow down: a quota's 429, or a 503 that says when to come back (a load
/// balancer's). A 503 without one is sealed or standby: unavailability, exit 5 after the
/// retry budget.
pub(super) fn is_throttled(r: &Response) -> bool {
    r.status == 429 || (r.status == 503 && r.retry_after.is_some())
}

/// Statuses that may clear up on their own: timeouts, throttling, server errors, and 503
/// (sealed or standby: an unseal or a failover may happen within the budget).
pub(super) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The exit-code class of a Vault status no caller handled.
pub(crate) fn status_error(what: &str, object: &str, status: u16, text: &str) -> Error {
    let detail = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    match status {
        503 | 501 | 472 | 473 => Error::Unavailable(format!(
            "Vault cannot serve {what} ({detail}): sealed, uninitialised or standby"
        )),
        429 | 408 | 500 | 502 | 504 => Error::Transient(format!("Vault {what} failed ({detail})")),
        401 | 403 => Error::precondition(
            object,
            format!("Vault denied {what} ({detail})"),
            "check the step's Vault policy grants this capability on this path",
        ),
        400 | 404 | 405 | 409 | 412 | 422 => Error::precondition(
            object,
            format!("Vault refused {what} ({detail})"),
            "inspect the Vault path and the step's configuration",
        ),
        _ => Error::Internal(format!("Vault {what}: unexpected {detail}")),
    }
}

pub(super) fn transport_error(what: &str, e: &reqwest::Error, tls_context: &str) -> Error {
    // A certificate that is not trusted or names another host is a configuration error (or
    // an attack): retrying cannot help, so it fails closed with exit 2 and says what to fix.
    if let Some(tls) = rustls_error(e) {
        return Error::Usage(format!(
            "TLS to Vault failed for {what}: {tls}; {tls_context}: set VAULT_CACERT to the PEM \
             bundle of the CA that signs Vault's certificate and make VAULT_ADDR use a host \
             name that certificate names"
        ));
    }
    // Never print the URL's query or any body: reqwest's Display holds only the URL.
    if e.is_connect() {
        Error::Unavailable(format!("Vault is unreachable for {what}: {e}"))
    } else if e.is_timeout() {
        Error::Transient(format!("Vault timed out on {what}"))
    } else {
        Error::Transient(format!("Vault request {what} failed: {e}"))
    }
}

/// The rustls error somewhere in a request error's causes. `io::Error::source` skips the
/// error it wraps (and io errors nest), so an `io::Error` is followed into what it wraps.
fn rustls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cause = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Response {
        Response {
            status,
            body: bytes::Bytes::from(body.to_owned()),
            retry_after: None,
        }
    }

    #[test]
    fn a_rejected_token_is_told_from_a_policy_denial() {
        assert!(token_rejected(&answer(
            403,
            r#"{"errors":["permission denied"]}"#
        )));
        assert!(token_rejected(&answer(
            403,
            r#"{"errors":["invalid token"]}"#
        )));
        let acl = r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        assert!(!token_rejected(&answer(403, acl)));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 403, 404, 409, 412] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
