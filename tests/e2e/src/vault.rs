//! The test environment's Vault: a real OpenBao dev server behind the recording,
//! fault-injecting proxy. Steps reach it as a pod would reach Vault: over TLS (the proxy
//! presents the test CA's certificate), logging in with Kubernetes auth, under the shipped
//! `templates/vault` policies and roles. Set-up and assertions go to OpenBao directly, as
//! root, so they are neither faulted nor recorded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{ensure, Context as _, Result};
use fault_injection::{Dialect, Fault, Hook};
use serde_json::{json, Value};

use crate::openbao::{AuditRequest, OpenBao};

/// `/v1/sys/...` is never faulted (health, seal control and init keep answering), except
/// `sys/capabilities-self`: the check a step makes before writing is a request of its run
/// like any other, so faults and kill points meet it.
fn exempt(path: &str) -> bool {
    fault_injection::is_vault_sys(path) && !path.starts_with("/v1/sys/capabilities-self")
}

/// Whether a fault set on the proxy can meet a request to `path` (raw, with `/v1/`).
pub fn faultable(path: &str) -> bool {
    !exempt(path)
}

/// Where the shipped Vault configuration lives.
pub fn templates_vault_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/vault")
}

/// A Vault request as both the proxy and OpenBao's audit log can name it: the kind of
/// operation (`read`, `list`, `write`, `patch`, `delete`) and the path without `/v1/` and
/// query (`secret/data/apps/db`).
pub type Call = (&'static str, String);

pub struct TestVault {
    pub bao: OpenBao,
    pub proxy: fault_injection::Handle,
}

impl TestVault {
    /// A dev OpenBao with the Kubernetes auth method pointed at `kube_url` (its TokenReview
    /// endpoint) and the shipped policies and roles, behind a TLS proxy.
    pub async fn start(kube: &crate::cluster::TestKube) -> TestVault {
        let bao = OpenBao::dev().await;
        let proxy = fault_injection::start(fault_injection::Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: bao.url.clone(),
            tls: Some(crate::vault_pki().server.clone()),
            dialect: Dialect::Vault,
            exempt: Some(exempt),
        })
        .await
        .expect("vault proxy");
        let vault = TestVault { bao, proxy };
        vault
            .bao
            .must("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"}))
            .await;
        vault
            .point_kubernetes_auth_at(kube)
            .await
            .expect("kubernetes auth");
        install_config(&vault.bao, &templates_vault_dir())
            .await
            .expect("templates/vault into OpenBao");
        vault
    }

    /// `auth/kubernetes` as a Vault outside the cluster has it: the API server itself (not
    /// the steps' proxy) and its CA, and a reviewer service account's JWT (`vault/vault-auth`,
    /// which a real cluster binds to system:auth-delegator), so the steps' own service
    /// accounts need no TokenReview grant.
    pub async fn point_kubernetes_auth_at(&self, kube: &crate::cluster::TestKube) -> Result<()> {
        self.bao
            .must(
                "POST",
                "auth/kubernetes/config",
                json!({
                    "kubernetes_host": kube.server_url(),
                    "kubernetes_ca_cert": crate::vault_pki().ca_pem,
                    "disable_local_ca_jwt": true,
                    "token_reviewer_jwt": kube.issue_service_account_token("vault", "vault-auth"),
                }),
            )
            .await;
        Ok(())
    }

    /// One more Kubernetes auth mount (another cluster of a fleet): configured like
    /// `auth/kubernetes` against `kube`, with the shipped roles of `templates/vault/roles`.
    pub async fn add_kubernetes_auth(
        &self,
        mount: &str,
        kube: &crate::cluster::TestKube,
    ) -> Result<()> {
        self.bao
            .must(
                "POST",
                &format!("sys/auth/{mount}"),
                json!({"type": "kubernetes"}),
            )
            .await;
        self.bao
            .must(
                "POST",
                &format!("auth/{mount}/config"),
                json!({
                    "kubernetes_host": kube.server_url(),
                    "kubernetes_ca_cert": crate::vault_pki().ca_pem,
                    "disable_local_ca_jwt": true,
                    "token_reviewer_jwt": kube.issue_service_account_token("vault", "vault-auth"),
                }),
            )
            .await;
        for (name, path) in sorted_files(&templates_vault_dir().join("roles"), "json")? {
            let body: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            let (st, resp) = self
                .bao
                .root("PUT", &format!("auth/{mount}/role/{name}"), Some(body))
                .await;
            ensure!(st < 300, "auth/{mount}/role/{name}: {st} {resp}");
        }
        Ok(())
    }

    /// A fresh raft OpenBao, uninitialised and sealed, behind a plain-HTTP proxy (so its
    /// requests are recorded before it has an audit device running).
    pub async fn fresh() -> TestVault {
        Self::fresh_with_audit_log(None).await
    }

    /// [`TestVault::fresh`] with its audit device writing to `audit_log`.
    pub async fn fresh_with_audit_log(audit_log: Option<std::path::PathBuf>) -> TestVault {
        let bao = OpenBao::raft_with_audit_log(audit_log).await;
        let proxy = fault_injection::start(fault_injection::Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: bao.url.clone(),
            tls: None,
            dialect: Dialect::Vault,
            exempt: Some(exempt),
        })
        .await
        .expect("vault proxy");
        TestVault { bao, proxy }
    }

    /// The address steps use (`VAULT_ADDR`): the proxy (over TLS for `start`).
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    pub fn root_token(&self) -> &str {
        &self.bao.root_token
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.proxy.set_fault(fault)
    }

    pub fn fault(&self) -> Option<Fault> {
        self.proxy.fault()
    }

    /// `(method, path+query)` of every request the steps made, in order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.proxy.requests()
    }

    pub fn requests_at(&self) -> Vec<(std::time::Instant, String, String)> {
        self.proxy.requests_at()
    }

    pub fn request_count(&self) -> u64 {
        self.proxy.request_count()
    }

    /// Seals it: through the API on a dev server, by a restart on a raft one (whose root
    /// token init-authority has revoked), as a pod restart does.
    pub async fn seal(&self) {
        if self.bao.is_dev() {
            self.bao.seal().await
        } else {
            self.bao.restart().await
        }
    }

    pub async fn is_initialized(&self) -> bool {
        self.bao.is_initialized().await
    }

    pub async fn unseal(&self) {
        self.bao.unseal().await
    }

    pub async fn is_sealed(&self) -> bool {
        self.bao.is_sealed().await
    }

    /// Vault unreachable: connections to its address are refused.
    pub async fn stop_listening(&self) {
        self.proxy.stop_listening().await
    }

    pub async fn start_listening(&self) -> Result<()> {
        self.proxy.start_listening().await
    }

    /// The requests the proxy forwarded to OpenBao, as [`Call`]s: those a fault answered
    /// or reset itself never got there. A fault that forwards (a lost answer, a delay, a
    /// hook) marks its request faulted too, so compare with [`TestVault::audited_calls`]
    /// only across injected answers and resets.
    pub fn forwarded_calls(&self) -> Vec<Call> {
        self.proxy
            .records()
            .into_iter()
            .filter(|r| !r.faulted)
            .map(|r| {
                let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
                let list = query.split('&').any(|q| q == "list=true");
                let kind = match r.method.as_str() {
                    "GET" if list => "list",
                    "GET" => "read",
                    "LIST" => "list",
                    "POST" | "PUT" => "write",
                    "PATCH" => "patch",
                    "DELETE" => "delete",
                    _ => "other",
                };
                let path = path.strip_prefix("/v1/").unwrap_or(path);
                (kind, path.to_owned())
            })
            .collect()
    }

    /// The requests OpenBao's audit device recorded from clients other than root (the
    /// steps' tokens and their logins; set-up and assertions are root's), as [`Call`]s.
    pub fn audited_calls(&self) -> Vec<Call> {
        self.accesses()
            .into_iter()
            .filter(|a| a.remote_address.is_some())
            .map(|a| {
                // OpenBao tells a create from an update by whether the path exists; the
                // HTTP method cannot, so both are a write.
                let kind = match a.operation.as_str() {
                    "read" => "read",
                    "list" => "list",
                    "create" | "update" => "write",
                    "patch" => "patch",
                    "delete" => "delete",
                    _ => "other",
                };
                (kind, a.path)
            })
            .collect()
    }

    /// Every request OpenBao's audit device saw that a token other than root made.
    pub fn accesses(&self) -> Vec<AuditRequest> {
        self.bao
            .audit_requests()
            .into_iter()
            .filter(|r| !r.policies.iter().any(|p| p == "root"))
            .collect()
    }

    /// A fault that seals OpenBao after `ok` served requests (then serves the request, which
    /// meets a sealed Vault).
    pub fn seal_after(&self, ok: u32) -> Fault {
        let url = self.bao.url.clone();
        let token = self.bao.root_token.clone();
        let hook: Hook = Arc::new(move || {
            let (url, token) = (url.clone(), token.clone());
            Box::pin(async move {
                let (st, body) = crate::vault_call(&url, &token, "PUT", "sys/seal", None).await;
                assert!(st < 300, "seal: {st} {body}");
            })
        });
        Fault::HookAfter { ok, hook }
    }

    /// A fault that revokes every token but root after `ok` served requests, as if the
    /// step's token expired mid-run.
    pub fn revoke_tokens_after(&self, ok: u32) -> Fault {
        let url = self.bao.url.clone();
        let token = self.bao.root_token.clone();
        let hook: Hook = Arc::new(move || {
            let (url, token) = (url.clone(), token.clone());
            Box::pin(async move { revoke_all_but_root(&url, &token).await })
        });
        Fault::HookAfter { ok, hook }
    }
}

async fn revoke_all_but_root(url: &str, root: &str) {
    let (st, body) = crate::vault_call(url, root, "LIST", "auth/token/accessors", None).await;
    assert_eq!(st, 200, "token accessors: {body}");
    for accessor in body["data"]["keys"].as_array().into_iter().flatten() {
        let (_, info) = crate::vault_call(
            url,
            root,
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": accessor })),
        )
        .await;
        let is_root = info["data"]["policies"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "root"));
        if !is_root {
            crate::vault_call(
                url,
                root,
                "POST",
                "auth/token/revoke-accessor",
                Some(json!({ "accessor": accessor })),
            )
            .await;
        }
    }
}

/// Installs a `templates/vault`-shaped directory unchanged, as docs/install.md's steps do:
/// each `policies/<name>.hcl` as ACL policy `<name>`, each `password-policies/<name>.hcl` as
/// password policy `<name>`, each `roles/<name>.json` as Kubernetes auth role `<name>`.
pub async fn install_config(bao: &OpenBao, dir: &Path) -> Result<()> {
    // (subdirectory, extension, where each file goes, how its text is sent)
    type Body = fn(String) -> Result<Value>;
    let kinds: [(&str, &str, &str, Body); 3] = [
        ("policies", "hcl", "sys/policies/acl", |t| {
            Ok(json!({ "policy": t }))
        }),
        ("password-policies", "hcl", "sys/policies/password", |t| {
            Ok(json!({ "policy": t }))
        }),
        ("roles", "json", "auth/kubernetes/role", |t| {
            Ok(serde_json::from_str(&t)?)
        }),
    ];
    for (sub, ext, at, body) in kinds {
        for (name, path) in sorted_files(&dir.join(sub), ext)? {
            let text = std::fs::read_to_string(&path)?;
            let body = body(text).with_context(|| format!("{}", path.display()))?;
            let (st, resp) = bao.root("PUT", &format!("{at}/{name}"), Some(body)).await;
            ensure!(st < 300, "{at}/{name}: {st} {resp}");
        }
    }
    Ok(())
}

/// `(stem, path)` of the files in `dir` ending in `.ext`, sorted.
pub fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == ext) {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            files.push((stem, path));
        }
    }
    files.sort();
    Ok(files)
}
