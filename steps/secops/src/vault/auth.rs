//! Logging in: Kubernetes auth (in-cluster default), a token, or AppRole.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Vault;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// `VAULT_TOKEN` or a token file; not revoked at the end (we did not create it).
    Token(SecretString),
    /// Kubernetes auth method: the pod's service-account JWT for a Vault role.
    Kubernetes {
        role: String,
        mount: String,
        jwt_file: PathBuf,
    },
    /// AppRole with role_id and secret_id read from files (never from arguments).
    AppRole {
        mount: String,
        role_id_file: PathBuf,
        secret_id_file: PathBuf,
    },
}

#[derive(Deserialize)]
struct LoginResponse {
    auth: Option<LoginAuth>,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: SecretString,
    #[serde(default)]
    token_policies: Vec<String>,
}

/// A token to use.
pub(super) struct Login {
    pub token: SecretString,
    /// We obtained it (and so must revoke it).
    pub owned: bool,
    /// Its policies but `default`, as the login answer lists them (none for a given token).
    pub policies: Vec<String>,
}

pub(super) async fn login(v: &Vault, auth: &VaultAuth) -> Result<Login> {
    let (mount, body, what) = match auth {
        VaultAuth::Token(t) => {
            if t.expose_secret().is_empty() {
                return Err(Error::Usage(
                    "VAULT_TOKEN is empty; set it, pass --vault-token-file, or choose another --vault-auth"
                        .into(),
                ));
            }
            return Ok(Login {
                token: t.clone(),
                owned: false,
                policies: Vec::new(),
            });
        }
        VaultAuth::Kubernetes {
            role,
            mount,
            jwt_file,
        } => {
            let jwt = read_secret_file(jwt_file, "service-account token")?;
            let body = login_body(&[("role", role), ("jwt", jwt.expose_secret())])?;
            (mount, body, format!("Kubernetes login as role {role:?}"))
        }
        VaultAuth::AppRole {
            mount,
            role_id_file,
            secret_id_file,
        } => {
            let role_id = read_secret_file(role_id_file, "AppRole role_id")?;
            let secret_id = read_secret_file(secret_id_file, "AppRole secret_id")?;
            let body = login_body(&[
                ("role_id", role_id.expose_secret()),
                ("secret_id", secret_id.expose_secret()),
            ])?;
            (mount, body, "AppRole login".to_string())
        }
    };
    let bytes = body;
    let r = v
        .call_retrying(
            reqwest::Method::POST,
            &format!("auth/{mount}/login"),
            Some(("application/json", bytes)),
        )
        .await?;
    match r.status {
        200 => {
            let parsed: LoginResponse = r.parse(&what)?;
            let auth = parsed.auth.ok_or_else(|| {
                Error::Internal(format!("Vault answered the {what} without an auth block"))
            })?;
            Ok(Login {
                token: auth.client_token,
                owned: true,
                policies: auth
                    .token_policies
                    .into_iter()
                    .filter(|p| p != "default")
                    .collect(),
            })
        }
        400 | 403 => Err(Error::precondition(
            format!("Vault auth mount {mount:?}"),
            format!("{what} was refused (HTTP {}: {})", r.status, r.error_text()),
            "check the role exists and is bound to this ServiceAccount and namespace",
        )),
        _ => Err(v.unexpected(&what, &format!("Vault auth mount {mount:?}"), &r)),
    }
}

/// The login request body, serialized straight from borrowed credentials: no intermediate
/// `serde_json::Value` copy of them is left unwiped (`call` wipes the bytes once sent).
fn login_body(fields: &[(&str, &str)]) -> Result<Vec<u8>> {
    let map: std::collections::BTreeMap<&str, &str> = fields.iter().copied().collect();
    crate::secret::json_exact(&map).map_err(|e| Error::Internal(e.to_string()))
}

fn read_secret_file(path: &PathBuf, what: &str) -> Result<SecretString> {
    let s = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?);
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(Error::Usage(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}
