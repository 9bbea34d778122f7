//! Retries: the calls safe to repeat go again within the retry budget (each attempt in its
//! turn from the limiter), and a login token that stopped working is replaced once.

use super::classify::{is_retryable_status, is_throttled, token_rejected};
use super::response::{wiped_on_drop, Response};
use super::{auth, Vault};
use crate::error::{Error, Result};
use crate::retry::{Failed, RetryPolicy};

impl Vault {
    /// One HTTP call that is safe to repeat (a read, a `cas` write, a merge patch, a
    /// version delete, a login): transport failures and 408/429/5xx are retried within the
    /// retry budget, and a login token that stopped working (403) is replaced by logging in
    /// again, once. Transport failures are classified here; statuses by the caller, which
    /// gets the last answer when the budget is spent.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let body = body.map(|(ct, b)| (ct, wiped_on_drop(b)));
        let r = self.retrying(&method, path, &body).await?;
        if r.status == 403 && token_rejected(&r) && self.relogin(path).await {
            return self.retrying(&method, path, &body).await;
        }
        Ok(r)
    }

    /// [`Vault::call`] without the second login (the login itself goes through here).
    pub(crate) async fn call_retrying(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let body = body.map(|(ct, b)| (ct, wiped_on_drop(b)));
        self.retrying(&method, path, &body).await
    }

    async fn retrying(
        &self,
        method: &reqwest::Method,
        path: &str,
        body: &Option<(&str, bytes::Bytes)>,
    ) -> Result<Response> {
        self.attempts(self.retry, method, path, body).await
    }

    /// Runs one request under `policy`, each attempt in its turn from the limiter.
    async fn attempts(
        &self,
        policy: RetryPolicy,
        method: &reqwest::Method,
        path: &str,
        body: &Option<(&str, bytes::Bytes)>,
    ) -> Result<Response> {
        let what = format!("{method} /v1/{path}");
        let attempt = || async {
            match self.send(method.clone(), path, body.clone()).await {
                Ok(r) if is_throttled(&r) => Err(Failed::Throttled {
                    retry_after: r.retry_after,
                    error: RetryableAnswer::Status(r),
                }),
                Ok(r) if is_retryable_status(r.status) => Err(Failed::Retryable {
                    retry_after: r.retry_after,
                    error: RetryableAnswer::Status(r),
                }),
                Ok(r) => Ok(r),
                Err(e @ (Error::Transient(_) | Error::Unavailable(_))) => Err(Failed::Retryable {
                    error: RetryableAnswer::Transport(e),
                    retry_after: None,
                }),
                Err(e) => Err(Failed::Final(RetryableAnswer::Transport(e))),
            }
        };
        match policy.run(&self.limiter, &what, attempt).await {
            Ok(r) | Err(RetryableAnswer::Status(r)) => Ok(r),
            Err(RetryableAnswer::Transport(e)) => Err(e),
        }
    }

    /// One HTTP call that must not be repeated blindly (a KV v1 overwrite, revoke-self).
    /// It takes its turn from the limiter like any other; a throttled answer (Vault refused
    /// it unhandled) waits and goes again, any other failure is final.
    pub(crate) async fn call_once(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let body = body.map(|(ct, b)| (ct, wiped_on_drop(b)));
        let once = RetryPolicy {
            attempts: 1,
            ..self.retry
        };
        self.attempts(once, &method, path, &body).await
    }

    /// After a 403 with a token we logged in for: log in again (the token may have expired
    /// or been revoked mid-run). True when a new token is in place; a genuine denial then
    /// simply gets its 403 again.
    async fn relogin(&self, path: &str) -> bool {
        let Some(auth) = self.auth.as_ref().filter(|_| self.owns_token) else {
            return false;
        };
        match auth::login(self, auth).await {
            Ok(auth::Login { token, .. }) => {
                tracing::info!(
                    path,
                    "Vault denied the request; logged in again in case the token expired"
                );
                self.set_token(token);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not log in to Vault again");
                false
            }
        }
    }
}

/// What a retried call ends with when its budget is spent: the last answer (classified by
/// the caller) or the last transport error.
enum RetryableAnswer {
    Status(Response),
    Transport(Error),
}

impl std::fmt::Display for RetryableAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryableAnswer::Status(r) => write!(f, "HTTP {}: {}", r.status, r.error_text()),
            RetryableAnswer::Transport(e) => write!(f, "{e}"),
        }
    }
}
