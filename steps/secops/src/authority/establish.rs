//! What a fresh Vault needs before any step can use it, written with the root token before it
//! is revoked: the KV v2 engine the steps use, the Kubernetes auth method they log in with
//! (configured to reach this cluster's API server), and the access policies and auth roles
//! from `templates/vault` (policies as HCL, Kubernetes-auth roles as JSON). A fresh Vault or
//! OpenBao has none of these: only the token auth method and no `secret/` mount.

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::vault::sys::MountTable;
use crate::vault::Vault;

/// What to establish; empty when no directories were given.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// (name, HCL text).
    pub policies: Vec<(String, String)>,
    /// (name, role fields).
    pub roles: Vec<(String, serde_json::Value)>,
    pub auth_mount: String,
    /// Where the KV v2 engine is mounted (enabled when absent).
    pub kv_mount: String,
    /// How Vault reaches the API server to review logins' tokens.
    pub kubernetes: KubernetesAuth,
}

/// `auth/<mount>/config`: the API server's address and CA. Without a CA, Vault must run in
/// the cluster and read its own service account's CA and token.
#[derive(Debug, Clone, Default)]
pub struct KubernetesAuth {
    pub host: String,
    pub ca_pem: Option<String>,
    /// The reviewer's JWT (a credential: sent to Vault only, never printed).
    pub reviewer_jwt: Option<secrecy::SecretString>,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.roles.is_empty()
    }

    /// Reads `*.hcl` and `*.json` files, named after their file stem; checked before
    /// anything is contacted.
    pub fn load(
        policies: Option<&Path>,
        roles: Option<&Path>,
        auth_mount: &str,
        kv_mount: &str,
        kubernetes: KubernetesAuth,
    ) -> Result<Self> {
        let mut g = Grants {
            auth_mount: auth_mount.to_owned(),
            kv_mount: kv_mount.to_owned(),
            kubernetes,
            ..Grants::default()
        };
        if let Some(dir) = policies {
            for (name, text) in files(dir, "hcl", "--policies-dir")? {
                if !text.contains("path") {
                    return Err(Error::Usage(format!(
                        "policy file {name}.hcl in {} has no path rule",
                        dir.display()
                    )));
                }
                g.policies.push((name, text));
            }
        }
        if let Some(dir) = roles {
            for (name, text) in files(dir, "json", "--roles-dir")? {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| Error::Usage(format!("role file {name}.json is not JSON: {e}")))?;
                if !v.is_object() {
                    return Err(Error::Usage(format!(
                        "role file {name}.json must be a JSON object of role fields"
                    )));
                }
                g.roles.push((name, v));
            }
        }
        Ok(g)
    }

    /// Enables what is missing, configures the auth method, writes every policy, then every
    /// role. Idempotent: each write replaces, an existing mount is kept.
    pub async fn apply(&self, vault: &Vault) -> Result<()> {
        self.ensure_kv(vault).await?;
        if !self.roles.is_empty() {
            self.ensure_kubernetes_auth(vault).await?;
        }
        for (name, hcl) in &self.policies {
            vault.write_policy(name, hcl).await?;
            tracing::info!(policy = %name, "ACL policy written");
        }
        for (name, role) in &self.roles {
            vault.write_auth_role(&self.auth_mount, name, role).await?;
            tracing::info!(role = %name, mount = %self.auth_mount, "auth role written");
        }
        Ok(())
    }

    /// KV v2 at `kv_mount`, unless an engine is mounted there already; a KV v1 mount (or
    /// another engine) is a refusal, since the steps would then write what nobody reads.
    async fn ensure_kv(&self, vault: &Vault) -> Result<()> {
        let mounts = vault.mounted(MountTable::Secrets).await?;
        match mounts.get(&format!("{}/", self.kv_mount)) {
            None => {
                vault
                    .enable(
                        MountTable::Secrets,
                        &self.kv_mount,
                        &json!({"type": "kv", "options": {"version": "2"}}),
                    )
                    .await?;
                tracing::info!(mount = %self.kv_mount, "KV v2 secrets engine enabled");
                Ok(())
            }
            Some(m) if m.kind == "kv" && m.version() == Some("2") => Ok(()),
            Some(m) => Err(Error::Refused(format!(
                "Vault mount {}/: it is a {} engine{}, not KV version 2; \
                 the steps need KV v2 there: pass --kv-mount with a free or KV v2 path",
                self.kv_mount,
                m.kind,
                m.version()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default(),
            ))),
        }
    }

    /// The Kubernetes auth method at `auth_mount`, enabled if absent, pointed at this cluster.
    async fn ensure_kubernetes_auth(&self, vault: &Vault) -> Result<()> {
        let methods = vault.mounted(MountTable::Auth).await?;
        match methods.get(&format!("{}/", self.auth_mount)) {
            None => {
                vault
                    .enable(
                        MountTable::Auth,
                        &self.auth_mount,
                        &json!({"type": "kubernetes"}),
                    )
                    .await?;
                tracing::info!(mount = %self.auth_mount, "Kubernetes auth method enabled");
            }
            Some(m) if m.kind == "kubernetes" => {}
            Some(m) => {
                return Err(Error::Refused(format!(
                    "Vault auth mount {}/: it is a {} auth method, not kubernetes; \
                     pass --vault-auth-mount with a free or Kubernetes auth path",
                    self.auth_mount, m.kind
                )))
            }
        }
        let mut config = json!({ "kubernetes_host": self.kubernetes.host });
        if let Some(ca) = &self.kubernetes.ca_pem {
            // Vault outside the cluster: not its own pod's CA and token, these.
            config["kubernetes_ca_cert"] = json!(ca);
            config["disable_local_ca_jwt"] = json!(true);
        }
        if let Some(jwt) = &self.kubernetes.reviewer_jwt {
            use secrecy::ExposeSecret as _;
            config["token_reviewer_jwt"] = json!(jwt.expose_secret());
        }
        let path = format!("auth/{}/config", self.auth_mount);
        vault
            .post_json(&path, &config, &format!("Vault {path}"))
            .await?;
        tracing::info!(mount = %self.auth_mount, host = %self.kubernetes.host, "Kubernetes auth configured");
        Ok(())
    }

    pub fn names(&self) -> serde_json::Value {
        serde_json::json!({
            "policies": self.policies.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "roles": self.roles.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        })
    }
}

fn files(dir: &Path, ext: &str, flag: &str) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Usage(format!("cannot read {flag} {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some(ext) {
            continue;
        }
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if !crate::selection::is_dns_label(&name) {
            return Err(Error::Usage(format!(
                "{} is not named like a Vault policy or role (lowercase letters, digits, '-')",
                p.display()
            )));
        }
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", p.display())))?;
        out.push((name, text));
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "{flag} {} holds no *.{ext} files",
            dir.display()
        )));
    }
    Ok(out)
}
