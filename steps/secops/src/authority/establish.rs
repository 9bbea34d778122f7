//! The access policies and auth roles the steps need, from `templates/vault` (policies as
//! HCL, Kubernetes-auth roles as JSON), written with the root token before it is revoked.

use std::path::Path;

use crate::error::{Error, Result};
use crate::vault::Vault;

/// What to establish; empty when no directories were given.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// (name, HCL text).
    pub policies: Vec<(String, String)>,
    /// (name, role fields).
    pub roles: Vec<(String, serde_json::Value)>,
    pub auth_mount: String,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.roles.is_empty()
    }

    /// Reads `*.hcl` and `*.json` files, named after their file stem; checked before
    /// anything is contacted.
    pub fn load(policies: Option<&Path>, roles: Option<&Path>, auth_mount: &str) -> Result<Self> {
        let mut g = Grants {
            auth_mount: auth_mount.to_owned(),
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

    /// Writes every policy, then every role. Idempotent: each write replaces.
    pub async fn apply(&self, vault: &Vault) -> Result<()> {
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
