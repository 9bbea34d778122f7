//! The Vault side: a thin client over Vault's HTTP API for exactly the calls the steps make.
//!
//! Why not vaultrs: its response envelope requires fields (`request_id`, `warnings`,
//! `wrap_info`) that RustyVault does not send, it reads only `errors` (RustyVault sends
//! `error`), treats every 404 as empty (Vault's KV v2 puts version metadata in the 404 of a
//! deleted version) and has no metadata PATCH. Here every response is classified by status
//! into the documented exit codes, and values are parsed straight into secret types.

mod auth;
pub mod kv;
pub mod sys;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub use auth::VaultAuth;
pub use kv::{Kv2Read, Provenance};

/// Vault CLI conventions: VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_SKIP_VERIFY.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub addr: url::Url,
    pub namespace: Option<String>,
    pub cacert: Option<PathBuf>,
    pub skip_verify: bool,
    pub auth: VaultAuth,
    pub timeout: Duration,
}

/// A logged-in client. Call [`Vault::close`] when done so a login token is revoked.
pub struct Vault {
    http: reqwest::Client,
    base: String,
    namespace: Option<String>,
    token: SecretString,
    /// True when we obtained the token by login (then we revoke it); false for VAULT_TOKEN.
    owns_token: bool,
}

/// A response whose body has not been interpreted yet. Bodies may hold secret values, so
/// this type only parses into caller-chosen types and never prints the body.
pub(crate) struct Response {
    pub status: u16,
    body: bytes::Bytes,
}

impl Response {
    pub fn parse<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Internal(format!(
                "Vault's response to {what} is not what the Vault API documents ({e})"
            ))
        })
    }

    /// Error text in either shape: Vault's `{"errors":[..]}` or RustyVault's `{"error":".."}`.
    pub fn error_text(&self) -> String {
        #[derive(serde::Deserialize)]
        struct E {
            #[serde(default)]
            errors: Vec<String>,
            #[serde(default)]
            error: Option<String>,
        }
        match serde_json::from_slice::<E>(&self.body) {
            Ok(e) => {
                let mut all = e.errors;
                all.extend(e.error);
                let joined = all.join("; ");
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

impl Vault {
    /// Builds the HTTP client and logs in with the configured method.
    pub async fn connect(cfg: &VaultConfig) -> Result<Self> {
        let http = build_http(cfg)?;
        let base = format!("{}/v1/", cfg.addr.as_str().trim_end_matches('/'));
        let mut v = Vault {
            http,
            base,
            namespace: cfg.namespace.clone(),
            token: SecretString::from(String::new()),
            owns_token: false,
        };
        let (token, owns) = auth::login(&v, &cfg.auth).await?;
        v.token = token;
        v.owns_token = owns;
        Ok(v)
    }

    /// A client without a token, for the unauthenticated calls (`sys/init`, `sys/unseal`,
    /// `sys/seal-status`). Configuration errors are usage errors; nothing is contacted.
    pub fn anonymous(cfg: &VaultConfig) -> Result<Self> {
        Ok(Vault {
            http: build_http(cfg)?,
            base: format!("{}/v1/", cfg.addr.as_str().trim_end_matches('/')),
            namespace: cfg.namespace.clone(),
            token: SecretString::from(String::new()),
            owns_token: false,
        })
    }

    /// The same connection acting with `token` (e.g. the root token from `sys/init`).
    pub fn with_token(&self, token: SecretString) -> Self {
        Vault {
            http: self.http.clone(),
            base: self.base.clone(),
            namespace: self.namespace.clone(),
            token,
            owns_token: false,
        }
    }

    /// Revokes a token we logged in for. Best effort: the step's work is done either way.
    pub async fn close(self) {
        if !self.owns_token {
            return;
        }
        match self
            .call(reqwest::Method::POST, "auth/token/revoke-self", None)
            .await
        {
            Ok(r) if r.status == 204 || r.status == 200 => {
                tracing::debug!("revoked the login token");
            }
            Ok(r) => tracing::warn!(
                status = r.status,
                error = %r.error_text(),
                "Vault did not revoke the login token (RustyVault has no revoke-self); it expires at its TTL"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not revoke the login token; it expires at its TTL")
            }
        }
    }

    /// One HTTP call. Transport failures are classified here; statuses by the caller.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Request", "true");
        let token = self.token.expose_secret();
        if !token.is_empty() {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("Content-Type", content_type).body(bytes);
        }
        let what = format!("{method} /v1/{path}");
        let resp = req.send().await.map_err(|e| transport_error(&what, &e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| transport_error(&what, &e))?;
        Ok(Response { status, body })
    }

    /// Classifies a status that the caller did not expect.
    pub(crate) fn unexpected(&self, what: &str, object: &str, r: &Response) -> Error {
        status_error(what, object, r.status, &r.error_text())
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
            token: SecretString::from(String::new()),
            owns_token: false,
        }
    }
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

fn transport_error(what: &str, e: &reqwest::Error) -> Error {
    // Never print the URL's query or any body: reqwest's Display holds only the URL.
    if e.is_connect() {
        Error::Unavailable(format!("Vault is unreachable for {what}: {e}"))
    } else if e.is_timeout() {
        Error::Transient(format!("Vault timed out on {what}"))
    } else {
        Error::Transient(format!("Vault request {what} failed: {e}"))
    }
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
            b = b.tls_certs_only(certs);
        }
        if cfg.skip_verify {
            tracing::warn!(
                "VAULT_SKIP_VERIFY is set: the Vault server's TLS certificate is NOT verified; \
                 anyone on the network path can read the secrets this step sends"
            );
            b = b.tls_danger_accept_invalid_certs(true);
        }
    }
    b.build()
        .map_err(|e| Error::Usage(format!("cannot configure the Vault HTTP client: {e}")))
}
