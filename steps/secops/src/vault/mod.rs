//! The Vault side: a thin client over Vault's HTTP API for exactly the calls the steps make.
//! Why not vaultrs (re-decided against OpenBao 2.7, see ARCHITECTURE.md): the steps need
//! the body of a KV v2 404 (Vault puts a deleted version's metadata there), a metadata PATCH
//! (custom_metadata merged, not replaced), cas on every write, and each response classified
//! by status into the documented exit codes with values parsed straight into secret types and
//! request bodies wiped after the last retry. Here that is one small client.

mod auth;
pub mod capabilities;
mod classify;
pub mod kv;
pub mod raft;
mod response;
mod retries;
pub mod sys;
mod transport;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::error::Result;
use crate::retry::RetryPolicy;
use crate::throttle::Limiter;
use transport::{build_http, tls_context};

pub use auth::VaultAuth;
pub use capabilities::Need;
pub(crate) use classify::status_error;
pub use kv::Kv2Read;
pub(crate) use response::Response;

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
