//! The transport: the HTTP client (TLS trust, timeouts, User-Agent) and one request sent
//! with Vault's headers, refused before sending when it would mutate in a dry run.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::classify::transport_error;
use super::response::Response;
use super::{Vault, VaultConfig};
use crate::error::{Error, Result};
use crate::throttle::wait_hint;

impl Vault {
    pub(super) async fn send(
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
}

/// How a TLS failure describes the connection: the address and whom it trusts.
pub(super) fn tls_context(cfg: &VaultConfig) -> String {
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

pub(super) fn build_http(cfg: &VaultConfig) -> Result<reqwest::Client> {
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
