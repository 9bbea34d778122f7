//! The system backend calls of the authority's own lifecycle: init, seal status, unseal,
//! mounts and auth methods, policies, auth roles, token revocation and KV v2 listing.

use std::collections::BTreeMap;

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use super::Vault;
use crate::error::{Error, Result};
use crate::paths::VaultPath;

/// What `sys/init` returns, exactly once. Every field is secret.
#[derive(Deserialize)]
pub struct InitResponse {
    #[serde(default)]
    pub keys: Vec<SecretString>,
    #[serde(default)]
    pub keys_base64: Vec<SecretString>,
    #[serde(default)]
    pub recovery_keys: Vec<SecretString>,
    #[serde(default)]
    pub recovery_keys_base64: Vec<SecretString>,
    pub root_token: SecretString,
}

/// The request body of `sys/init`.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct InitRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_shares: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_threshold: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_shares: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_threshold: Option<u8>,
}

/// The seal state, in the fields the steps use.
#[derive(Debug, Clone, Deserialize)]
pub struct SealStatus {
    pub sealed: bool,
    #[serde(default)]
    pub progress: u32,
}

/// Outcome of one unseal submission.
#[derive(Debug)]
pub enum UnsealStep {
    Status(SealStatus),
    /// The server refused the key (wrong share, or a wrong combination at the threshold).
    Refused(String),
    /// The server was already unsealed (someone else submitted the last share).
    AlreadyUnsealed,
}

/// `SealConfig.Validate`'s rules, checked before anything is contacted.
pub fn check_shares(flag: &str, shares: u8, threshold: u8) -> Result<()> {
    if threshold > shares {
        return Err(Error::Usage(format!(
            "{flag}-threshold {threshold} is larger than {flag}-shares {shares}"
        )));
    }
    if shares > 1 && threshold == 1 {
        return Err(Error::Usage(format!(
            "{flag}-threshold must be greater than one for multiple shares"
        )));
    }
    Ok(())
}

impl Vault {
    /// `GET sys/init`: `{"initialized": bool}`.
    pub async fn initialized(&self) -> Result<bool> {
        #[derive(Deserialize)]
        struct I {
            initialized: bool,
        }
        let r = self.call(Method::GET, "sys/init", None).await?;
        if r.status != 200 {
            return Err(self.unexpected("GET sys/init", "Vault", &r));
        }
        Ok(r.parse::<I>("GET sys/init")?.initialized)
    }

    /// `PUT sys/init`. `Ok(None)` when the server says it is already initialised (someone
    /// else won the race: the keys are theirs).
    pub async fn init(&self, req: &InitRequest) -> Result<Option<InitResponse>> {
        let body = serde_json::to_vec(req).map_err(|e| Error::Internal(e.to_string()))?;
        let r = self
            .call(Method::PUT, "sys/init", Some(("application/json", body)))
            .await?;
        match r.status {
            200 => r.parse("PUT sys/init").map(Some),
            400 if r.error_text().contains("already initialized") => Ok(None),
            _ => Err(self.unexpected("PUT sys/init", "Vault", &r)),
        }
    }

    /// `GET sys/health`: true once this node is initialised, unsealed and active; false
    /// while it is standby (a raft node before its election), sealed or uninitialised. Every
    /// state is asked to answer 200 so none reads as a failure (standby is a 429 by default).
    pub async fn is_active(&self) -> Result<bool> {
        #[derive(Deserialize)]
        struct Health {
            initialized: bool,
            sealed: bool,
            standby: bool,
        }
        let path = "sys/health?standbycode=200&sealedcode=200&uninitcode=200&perfstandbyok=true";
        let r = self.call(Method::GET, path, None).await?;
        if r.status != 200 {
            return Err(self.unexpected("GET sys/health", "Vault", &r));
        }
        let h: Health = r.parse("GET sys/health")?;
        Ok(h.initialized && !h.sealed && !h.standby)
    }

    /// `GET sys/seal-status`.
    pub async fn seal_status(&self) -> Result<SealStatus> {
        let r = self.call(Method::GET, "sys/seal-status", None).await?;
        if r.status != 200 {
            return Err(self.unexpected("GET sys/seal-status", "Vault", &r));
        }
        r.parse("GET sys/seal-status")
    }

    /// `PUT sys/unseal` with one key share (hex or base64, as Vault gave it).
    pub async fn unseal_with(&self, key: &SecretString) -> Result<UnsealStep> {
        use secrecy::ExposeSecret;
        let body = serde_json::to_vec(&serde_json::json!({ "key": key.expose_secret() }))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let r = self
            .call(Method::PUT, "sys/unseal", Some(("application/json", body)))
            .await?;
        // Vault's error text is not repeated: a server may quote the key it could not parse.
        match r.status {
            200 => r.parse("PUT sys/unseal").map(UnsealStep::Status),
            400 if r.error_text().to_lowercase().contains("is unsealed") => {
                Ok(UnsealStep::AlreadyUnsealed)
            }
            400 => Ok(UnsealStep::Refused("HTTP 400".into())),
            status => Err(super::status_error("PUT sys/unseal", "Vault", status, "")),
        }
    }

    /// Discards a partial unseal someone else left (`reset`); best effort.
    pub async fn unseal_reset(&self) {
        let body = br#"{"reset":true}"#.to_vec();
        let _ = self
            .call(Method::PUT, "sys/unseal", Some(("application/json", body)))
            .await;
    }

    /// `PUT sys/policies/acl/:name` (idempotent: the policy text is replaced).
    pub async fn write_policy(&self, name: &str, hcl: &str) -> Result<()> {
        let what = format!("write of ACL policy {name}");
        let body = serde_json::to_vec(&serde_json::json!({ "policy": hcl }))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let r = self
            .call(
                Method::PUT,
                &format!("sys/policies/acl/{name}"),
                Some(("application/json", body)),
            )
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected(&what, &format!("Vault policy {name}"), &r)),
        }
    }

    /// `POST auth/:mount/role/:name` (idempotent: the role is replaced with these fields).
    pub async fn write_auth_role(
        &self,
        mount: &str,
        name: &str,
        role: &serde_json::Value,
    ) -> Result<()> {
        let what = format!("write of auth role {mount}/{name}");
        let body = serde_json::to_vec(role).map_err(|e| Error::Internal(e.to_string()))?;
        let r = self
            .call(
                Method::POST,
                &format!("auth/{mount}/role/{name}"),
                Some(("application/json", body)),
            )
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected(&what, &format!("Vault auth role {mount}/{name}"), &r)),
        }
    }

    /// The mounted secrets engines (`GET sys/mounts`) or auth methods (`GET sys/auth`):
    /// mount path (with its trailing `/`) to its `type` and `options`.
    pub async fn mounted(&self, table: MountTable) -> Result<BTreeMap<String, Mounted>> {
        let path = table.path();
        let what = format!("GET {path}");
        let r = self.call(Method::GET, path, None).await?;
        match r.status {
            200 => {
                // Vault answers with the table at the top level and again under `data`.
                #[derive(Deserialize)]
                struct Env {
                    data: BTreeMap<String, Mounted>,
                }
                Ok(r.parse::<Env>(&what)?.data)
            }
            _ => Err(self.unexpected(&what, &format!("Vault {path}"), &r)),
        }
    }

    /// `POST sys/mounts/:path` or `sys/auth/:path`: enables an engine or auth method.
    pub async fn enable(
        &self,
        table: MountTable,
        mount: &str,
        body: &serde_json::Value,
    ) -> Result<()> {
        let path = format!("{}/{mount}", table.path());
        self.post_json(&path, body, &format!("Vault {path}")).await
    }

    /// `GET path` of a configuration object (a policy, a role, an engine's config): `None`
    /// when Vault has none. Never for secret data: the body is parsed as plain JSON.
    pub async fn read_config(&self, path: &str) -> Result<Option<serde_json::Value>> {
        let what = format!("GET {path}");
        let r = self.call(Method::GET, path, None).await?;
        match r.status {
            200 => {
                #[derive(Deserialize)]
                struct Env {
                    data: serde_json::Value,
                }
                Ok(Some(r.parse::<Env>(&what)?.data))
            }
            404 => Ok(None),
            _ => Err(self.unexpected(&what, &format!("Vault {path}"), &r)),
        }
    }

    /// `LIST path`: the names under it, empty when none.
    pub async fn list_names(&self, path: &str) -> Result<Vec<String>> {
        #[derive(Deserialize, Default)]
        struct Keys {
            #[serde(default)]
            keys: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Env {
            data: Option<Keys>,
        }
        let what = format!("LIST {path}");
        let r = self
            .call(Method::from_bytes(b"LIST").expect("method"), path, None)
            .await?;
        match r.status {
            200 => Ok(r.parse::<Env>(&what)?.data.unwrap_or_default().keys),
            404 => Ok(Vec::new()),
            _ => Err(self.unexpected(&what, &format!("Vault {path}"), &r)),
        }
    }

    /// A JSON write whose answer carries nothing we need (`200`/`204`), e.g.
    /// `auth/kubernetes/config`.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        object: &str,
    ) -> Result<()> {
        let what = format!("write of {path}");
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Internal(e.to_string()))?;
        let r = self
            .call(Method::POST, path, Some(("application/json", bytes)))
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected(&what, object, &r)),
        }
    }

    /// `POST auth/token/revoke-self`. `Ok(false)` when the server refused.
    pub async fn revoke_self(&self) -> Result<bool> {
        let r = self
            .call(Method::POST, "auth/token/revoke-self", None)
            .await?;
        Ok(matches!(r.status, 200 | 204))
    }

    /// `LIST <mount>/metadata/<prefix>/`: key names, folders ending in `/`. Empty when none.
    pub async fn kv2_list(
        &self,
        mount: &VaultPath,
        prefix: Option<&VaultPath>,
    ) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Keys {
            #[serde(default)]
            keys: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Env {
            data: Option<Keys>,
        }
        let path = match prefix {
            Some(p) => format!("{mount}/metadata/{p}/"),
            None => format!("{mount}/metadata/"),
        };
        let what = format!("LIST {path}");
        let r = self
            .call(Method::from_bytes(b"LIST").expect("method"), &path, None)
            .await?;
        match r.status {
            200 => Ok(r
                .parse::<Env>(&what)?
                .data
                .map(|k| k.keys)
                .unwrap_or_default()),
            404 => Ok(Vec::new()),
            _ => Err(self.unexpected(&what, &format!("Vault path {path}"), &r)),
        }
    }
}

impl Mounted {
    /// The KV `version` option, when set.
    pub fn version(&self) -> Option<&str> {
        self.options.as_ref()?.get("version").map(String::as_str)
    }
}

/// Which of Vault's two mount tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountTable {
    /// Secrets engines, `sys/mounts`.
    Secrets,
    /// Auth methods, `sys/auth`.
    Auth,
}

impl MountTable {
    fn path(self) -> &'static str {
        match self {
            MountTable::Secrets => "sys/mounts",
            MountTable::Auth => "sys/auth",
        }
    }
}

/// One mounted engine or auth method.
#[derive(Debug, Clone, Deserialize)]
pub struct Mounted {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_response_parses_with_base64_keys() {
        use secrecy::ExposeSecret;
        let vault: InitResponse = serde_json::from_str(
            r#"{"keys":["aa"],"keys_base64":["qg=="],"recovery_keys":[],"recovery_keys_base64":[],"root_token":"hvs.x"}"#,
        )
        .unwrap();
        assert_eq!(vault.keys_base64[0].expose_secret(), "qg==");
    }

    #[test]
    fn seal_status_parses_the_fields_the_steps_use() {
        let s: SealStatus =
            serde_json::from_str(r#"{"sealed":true,"t":3,"n":2,"progress":1}"#).unwrap();
        assert!(s.sealed);
        assert_eq!(s.progress, 1);
    }
}
