//! The Vault side: a thin client over Vault's HTTP API for exactly the calls the steps make.
//! Why not vaultrs (re-decided against OpenBao 2.7, see ARCHITECTURE.md): the steps need
//! the body of a KV v2 404 (Vault puts a deleted version's metadata there), a metadata PATCH
//! (custom_metadata merged, not replaced), cas on every write, and each response classified
//! by status into the documented exit codes with values parsed straight into secret types and
//! request bodies wiped after the last retry. Here that is one small client.

mod auth;
pub mod capabilities;
pub mod kv;
pub mod raft;
pub mod sys;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::retry::{Failed, RetryPolicy};
use crate::throttle::{wait_hint, Limiter};

pub use auth::VaultAuth;
pub use capabilities::Need;
pub use kv::Kv2Read;

/// Vault CLI conventions: VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_SKIP_VERIFY.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub addr: url::Url,
    pub namespace: Option<String>,
    pub cacert: Option<PathBuf>,
    pub skip_verify: bool,
    pub auth: VaultAuth,
    pub timeout: Duration,
    /// Retries inside the run for requests safe to repeat.
    pub retry: RetryPolicy,
    /// The step's one limiter for this Vault, shared by every client made from this config.
    pub limiter: std::sync::Arc<Limiter>,
    /// `--dry-run`: every mutating request is refused before it is sent, except logins and
    /// revoking our own login token (a dry run logs in to read, and cleans up as usual).
    pub dry_run: bool,
}

/// A logged-in client. Call [`Vault::close`] when done so a login token is revoked.
pub struct Vault {
    http: reqwest::Client,
    base: String,
    namespace: Option<String>,
    /// Replaced when a login token expires or is revoked mid-run (we log in again).
    token: std::sync::RwLock<SecretString>,
    /// True when we obtained the token by login (then we revoke it); false for VAULT_TOKEN.
    owns_token: bool,
    /// What a TLS failure names: the address and the trust in force.
    tls_context: String,
    /// How we logged in, to log in again once if the token stops working mid-run.
    auth: Option<VaultAuth>,
    retry: RetryPolicy,
    limiter: std::sync::Arc<Limiter>,
    dry_run: bool,
    /// The login's token policies (without `default`), to name the one to fix in a refusal;
    /// empty for a supplied token.
    policies: Vec<String>,
    /// `sys/capabilities-self` answers so far, by path.
    capabilities: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
}

/// A response whose body has not been interpreted yet. Bodies may hold secret values, so
/// this type only parses into caller-chosen types and never prints the body.
pub(crate) struct Response {
    pub status: u16,
    body: bytes::Bytes,
    retry_after: Option<Duration>,
}

impl Response {
    pub fn parse<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            // Only the class and position: serde's own text quotes the offending input,
            // which may be a secret value in the wrong place.
            Error::Internal(format!(
                "Vault's response to {what} (HTTP {}) is not what the Vault API documents \
                 ({:?} error at line {} column {} of a {}-byte body); check that VAULT_ADDR \
                 points at Vault and that no proxy rewrites its answers",
                self.status,
                e.classify(),
                e.line(),
                e.column(),
                self.body.len()
            ))
        })
    }

    /// Vault's error text, `{"errors":[..]}`.
    pub fn error_text(&self) -> String {
        #[derive(serde::Deserialize)]
        struct E {
            #[serde(default)]
            errors: Vec<String>,
        }
        match serde_json::from_slice::<E>(&self.body) {
            Ok(e) => {
                let joined = e.errors.join("; ");
                // Vault's messages never carry values; still, keep them short and printable.
                joined
                    .chars()
                    .filter(|c| !c.is_control() || *c == ' ')
                    .take(300)
                    .collect()
            }
            Err(_) => String::new(),
        }
    }
}

impl Drop for Response {
    /// Bodies may hold values: wipe the buffer when we are its only owner (a body that
    /// still shares hyper's read buffer cannot be reached from here).
    fn drop(&mut self) {
        wipe(std::mem::take(&mut self.body));
    }
}

/// Zeroes a buffer we own alone; returns it (for tests) or `None` when it is shared.
/// A request body may hold values or credentials: it is wiped when its last clone (one per
/// attempt) is dropped.
fn wiped_on_drop(body: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from_owner(zeroize::Zeroizing::new(body))
}

fn wipe(body: bytes::Bytes) -> Option<bytes::BytesMut> {
    let mut b = body.try_into_mut().ok()?;
    zeroize::Zeroize::zeroize(&mut b[..]);
    Some(b)
}

impl Vault {
    /// Builds the HTTP client and logs in with the configured method.
    pub async fn connect(cfg: &VaultConfig) -> Result<Self> {
        Self::anonymous(cfg)?.logged_in(&cfg.auth).await
    }

    fn set_token(&self, token: SecretString) {
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    /// A client without a token, for the unauthenticated calls (`sys/init`, `sys/unseal`,
    /// `sys/seal-status`). Configuration errors are usage errors; nothing is contacted.
    pub fn anonymous(cfg: &VaultConfig) -> Result<Self> {
        Ok(Vault {
            http: build_http(cfg)?,
            base: format!("{}/v1/", cfg.addr.as_str().trim_end_matches('/')),
            namespace: cfg.namespace.clone(),
            token: std::sync::RwLock::new(SecretString::from(String::new())),
            owns_token: false,
            tls_context: tls_context(cfg),
            auth: None,
            retry: cfg.retry,
            limiter: cfg.limiter.clone(),
            dry_run: cfg.dry_run,
            policies: Vec::new(),
            capabilities: Default::default(),
        })
    }

    /// The same connection acting with `token` (e.g. the root token from `sys/init`).
    pub fn with_token(&self, token: SecretString) -> Self {
        Vault {
            http: self.http.clone(),
            base: self.base.clone(),
            namespace: self.namespace.clone(),
            token: std::sync::RwLock::new(token),
            owns_token: false,
            tls_context: self.tls_context.clone(),
            auth: None,
            retry: self.retry,
            limiter: self.limiter.clone(),
            dry_run: self.dry_run,
            policies: Vec::new(),
            capabilities: Default::default(),
        }
    }

    /// The same connection logged in anew with `auth` (e.g. init-authority's own role on a
    /// Vault whose root token is long gone); the token is ours, revoked by [`Vault::close`].
    pub async fn logged_in(&self, auth: &VaultAuth) -> Result<Self> {
        let mut v = self.with_token(SecretString::from(String::new()));
        let login = auth::login(&v, auth).await?;
        v.set_token(login.token);
        v.policies = login.policies;
        v.owns_token = login.owned;
        v.auth = login.owned.then(|| auth.clone());
        Ok(v)
    }

    /// Revokes a token we logged in for. Best effort: the step's work is done either way.
    pub async fn close(self) {
        if !self.owns_token {
            return;
        }
        match self
            .call_once(reqwest::Method::POST, "auth/token/revoke-self", None)
            .await
        {
            Ok(r) if r.status == 204 || r.status == 200 => {
                tracing::debug!("revoked the login token");
            }
            Ok(r) => tracing::warn!(
                status = r.status,
                error = %r.error_text(),
                "Vault did not revoke the login token; it expires at its TTL"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not revoke the login token; it expires at its TTL")
            }
        }
    }

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

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, bytes::Bytes)>,
    ) -> Result<Response> {
        if self.dry_run && self.mutates(&method, path) {
            return Err(crate::plan::missed_gate(&format!(
                "a Vault {method} /v1/{path}"
            )));
        }
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Request", "true");
        {
            let token = self.token.read().unwrap_or_else(|e| e.into_inner());
            let token = token.expose_secret();
            if !token.is_empty() {
                req = req.header("X-Vault-Token", token);
            }
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("Content-Type", content_type).body(bytes);
        }
        let what = format!("{method} /v1/{path}");
        let failed = |e: reqwest::Error| transport_error(&what, &e, &self.tls_context);
        let resp = req.send().await.map_err(failed)?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let retry_after = wait_hint(
            header(reqwest::header::RETRY_AFTER.as_str()),
            header("x-ratelimit-reset"),
        );
        let body = resp.bytes().await.map_err(failed)?;
        Ok(Response {
            status,
            body,
            retry_after,
        })
    }

    /// Whether a request changes Vault. Reads (GET, LIST), logins, the capability check
    /// (a POST that only reads) and revoking a login token we own are not mutations for
    /// `--dry-run`; everything else is.
    fn mutates(&self, method: &reqwest::Method, path: &str) -> bool {
        if matches!(method.as_str(), "GET" | "LIST" | "HEAD") {
            return false;
        }
        let login = path.starts_with("auth/") && path.ends_with("/login");
        let own_revoke = path == "auth/token/revoke-self" && self.owns_token;
        !(login || own_revoke || path == "sys/capabilities-self")
    }

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

#[cfg(test)]
impl Vault {
    /// A client that is never connected, for unit tests of code that only needs the type.
    pub(crate) fn offline_for_tests() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Vault {
            http: reqwest::Client::new(),
            base: "http://127.0.0.1:9/v1/".into(),
            namespace: None,
            token: std::sync::RwLock::new(SecretString::from(String::new())),
            owns_token: false,
            tls_context: String::new(),
            auth: None,
            retry: RetryPolicy::default(),
            limiter: std::sync::Arc::new(Limiter::new(
                "Vault",
                std::time::Instant::now() + Duration::from_secs(60),
            )),
            dry_run: false,
            policies: Vec::new(),
            capabilities: Default::default(),
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

/// A 403 for the token itself (missing, expired, revoked), not for a policy: Vault answers
/// those with a bare `permission denied` (or, in newer versions, `invalid token`), while an
/// ACL denial comes wrapped in a multierror ("1 error occurred: * permission denied").
fn token_rejected(r: &Response) -> bool {
    let text = r.error_text();
    text.trim() == "permission denied" || text.contains("invalid token")
}

/// Vault asks us to slow down: a quota's 429, or a 503 that says when to come back (a load
/// balancer's). A 503 without one is sealed or standby: unavailability, exit 5 after the
/// retry budget.
fn is_throttled(r: &Response) -> bool {
    r.status == 429 || (r.status == 503 && r.retry_after.is_some())
}

/// Statuses that may clear up on their own: timeouts, throttling, server errors, and 503
/// (sealed or standby: an unseal or a failover may happen within the budget).
fn is_retryable_status(status: u16) -> bool {
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

fn transport_error(what: &str, e: &reqwest::Error, tls_context: &str) -> Error {
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

/// How a TLS failure describes the connection: the address and whom it trusts.
fn tls_context(cfg: &VaultConfig) -> String {
    let host = cfg.addr.host_str().unwrap_or_default();
    match &cfg.cacert {
        Some(path) => format!(
            "VAULT_ADDR {} (host {host}) checked against VAULT_CACERT {}",
            cfg.addr,
            path.display()
        ),
        None => format!(
            "VAULT_ADDR {} (host {host}) checked against the built-in public roots (VAULT_CACERT is not set)",
            cfg.addr
        ),
    }
}

/// The Mozilla root store compiled into the binary: a scratch image has no /etc/ssl, so
/// reqwest's platform verifier would find no roots there.
fn builtin_roots() -> Result<Vec<reqwest::Certificate>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| {
            reqwest::Certificate::from_der(der.as_ref())
                .map_err(|e| Error::Internal(format!("a built-in root certificate: {e}")))
        })
        .collect()
}

fn build_http(cfg: &VaultConfig) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("secops/", env!("CARGO_PKG_VERSION")))
        .no_proxy();
    if cfg.addr.scheme() == "https" {
        if let Some(path) = &cfg.cacert {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Usage(format!("cannot read VAULT_CACERT {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Usage(format!(
                    "VAULT_CACERT {} is not a PEM certificate bundle: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::Usage(format!(
                    "VAULT_CACERT {} holds no PEM certificate",
                    path.display()
                )));
            }
            b = b.tls_certs_only(certs);
        } else {
            b = b.tls_certs_only(builtin_roots()?);
        }
        if cfg.skip_verify {
            tracing::warn!(
                "VAULT_SKIP_VERIFY is set: the Vault server's TLS certificate is NOT verified; \
                 anyone on the network path can read the secrets this step sends"
            );
            b = b.tls_danger_accept_invalid_certs(true);
        }
    } else {
        // Plain HTTP: TLS is never used, but reqwest builds its TLS setup anyway, by default
        // from the host's whole trust store (a directory scan of a few ms at every start,
        // and no store at all in a scratch image). The built-in roots cost a fraction of it,
        // and a redirect to https would be checked against them like an https VAULT_ADDR.
        b = b.tls_certs_only(builtin_roots()?);
    }
    b.build()
        .map_err(|e| Error::Usage(format!("cannot configure the Vault HTTP client: {e}")))
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

#[cfg(test)]
mod dry_run_tests {
    use super::*;

    #[tokio::test]
    async fn a_dry_run_client_refuses_every_write_before_sending_it() {
        let mut v = Vault::offline_for_tests();
        v.dry_run = true;
        let m = crate::paths::VaultPath::parse("secret").unwrap();
        let p = crate::paths::VaultPath::parse("apps/db").unwrap();
        let data = crate::secret::VaultData::default();
        // Nothing listens at the offline address: a request that was sent would fail with
        // a transport error (exit 5), not with the internal error of a missed gate.
        let write = v.kv2_write_cas(&m, &p, &data, 0).await.unwrap_err();
        assert_eq!(write.exit(), crate::exit::Exit::Internal, "{write}");
        assert!(write.to_string().contains("dry-run gate"), "{write}");
        let patch = v
            .kv2_patch_metadata(&m, &p, &Default::default())
            .await
            .unwrap_err();
        assert_eq!(patch.exit(), crate::exit::Exit::Internal, "{patch}");
        let revoke = v.kv2_revoke_versions(&m, &p, &[1], true).await.unwrap_err();
        assert_eq!(revoke.exit(), crate::exit::Exit::Internal, "{revoke}");
        // Reads and logins go out (and fail here only because nothing listens).
        let read = v.kv2_read(&m, &p, None).await.unwrap_err();
        assert_ne!(read.exit(), crate::exit::Exit::Internal, "{read}");
        assert!(!v.mutates(&reqwest::Method::POST, "auth/kubernetes/login"));
        assert!(!v.mutates(&reqwest::Method::POST, "sys/capabilities-self"));
        assert!(v.mutates(&reqwest::Method::PUT, "sys/init"));
        assert!(v.mutates(&reqwest::Method::PUT, "sys/unseal"));
        // The root token from sys/init is not ours to revoke in a dry run.
        assert!(v.mutates(&reqwest::Method::POST, "auth/token/revoke-self"));
    }
}

#[cfg(test)]
mod wipe_tests {
    #[test]
    fn a_body_we_own_is_wiped_and_a_shared_one_left_alone() {
        let owned = bytes::Bytes::from(b"CANARY-value".to_vec());
        let wiped = super::wipe(owned).expect("unique buffer");
        assert_eq!(&wiped[..], &[0u8; 12][..]);
        let shared = bytes::Bytes::from(b"CANARY-value".to_vec());
        let other = shared.clone();
        assert!(super::wipe(shared).is_none());
        assert_eq!(&other[..], b"CANARY-value");
    }

    #[test]
    fn a_malformed_answer_is_described_without_quoting_it() {
        let r = super::Response {
            status: 200,
            body: bytes::Bytes::from_static(br#"{"data":"CANARY-in-the-wrong-place"}"#),
            retry_after: None,
        };
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Want {
            data: std::collections::BTreeMap<String, String>,
        }
        let e = r
            .parse::<Want>("read of secret/data/x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("CANARY"), "{e}");
        assert!(
            e.contains("read of secret/data/x") && e.contains("HTTP 200"),
            "{e}"
        );
    }
}
