//! Raft snapshots and the root generation a restore needs: `sys/storage/raft/snapshot`
//! (read), `sys/storage/raft/snapshot-force` (restore into another cluster), and the
//! unauthenticated `sys/generate-root` with key shares.

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Vault;
use crate::error::{Error, Result};

/// What the key shares did to a root generation.
pub enum GenerateRoot {
    /// The shares completed it: a root token, to revoke when done.
    Token(SecretString),
    /// Vault refused a share or the combination (the shares do not open this Vault).
    Refused(String),
}

impl Vault {
    /// `GET sys/storage/raft/snapshot`: the whole snapshot (a gzipped tar).
    pub async fn raft_snapshot(&self) -> Result<Vec<u8>> {
        let path = "sys/storage/raft/snapshot";
        let mut r = self.call(Method::GET, path, None).await?;
        if r.status != 200 {
            return Err(self.unexpected_needing(
                "GET sys/storage/raft/snapshot",
                "Vault raft snapshot",
                "read",
                path,
                &r,
            ));
        }
        Ok(std::mem::take(&mut r.body).to_vec())
    }

    /// `POST sys/storage/raft/snapshot-force`: replaces this cluster's state with the
    /// snapshot's, whatever keys it was sealed with.
    pub async fn raft_restore_force(&self, snapshot: Vec<u8>) -> Result<()> {
        let path = "sys/storage/raft/snapshot-force";
        let r = self
            .call_once(
                Method::POST,
                path,
                Some(("application/octet-stream", snapshot)),
            )
            .await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected("POST sys/storage/raft/snapshot-force", "Vault", &r)),
        }
    }

    /// `PUT sys/seal` (needs a token with `sudo` on it).
    pub async fn seal(&self) -> Result<()> {
        let r = self.call_once(Method::PUT, "sys/seal", None).await?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(self.unexpected("PUT sys/seal", "Vault", &r)),
        }
    }

    /// A root token from key shares: `sys/generate-root/attempt` (a fresh one; one left
    /// behind is cancelled first), then one `update` per share until complete. The token
    /// comes back XORed with the attempt's one-time password.
    pub async fn generate_root(&self, keys: &[SecretString]) -> Result<GenerateRoot> {
        #[derive(Deserialize)]
        struct Attempt {
            nonce: String,
            #[serde(default)]
            otp: String,
        }
        #[derive(Deserialize)]
        struct Update {
            #[serde(default)]
            complete: bool,
            #[serde(default)]
            encoded_token: String,
        }
        let attempt_path = "sys/generate-root/attempt";
        let _ = self.call_once(Method::DELETE, attempt_path, None).await;
        let r = self
            .call_once(
                Method::PUT,
                attempt_path,
                Some(("application/json", b"{}".to_vec())),
            )
            .await?;
        if r.status != 200 {
            return Err(self.unexpected("PUT sys/generate-root/attempt", "Vault", &r));
        }
        let attempt: Attempt = r.parse("PUT sys/generate-root/attempt")?;
        let otp = SecretString::from(attempt.otp);
        for key in keys {
            let body = serde_json::to_vec(
                &serde_json::json!({ "key": key.expose_secret(), "nonce": attempt.nonce }),
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
            let r = self
                .call_once(
                    Method::PUT,
                    "sys/generate-root/update",
                    Some(("application/json", body)),
                )
                .await?;
            if r.status == 400 {
                // Vault's text is not repeated: it may quote the share it could not use.
                let _ = self.call_once(Method::DELETE, attempt_path, None).await;
                return Ok(GenerateRoot::Refused("HTTP 400".into()));
            }
            if r.status != 200 {
                return Err(self.unexpected("PUT sys/generate-root/update", "Vault", &r));
            }
            let u: Update = r.parse("PUT sys/generate-root/update")?;
            if u.complete {
                return decode(&u.encoded_token, &otp).map(GenerateRoot::Token);
            }
        }
        let _ = self.call_once(Method::DELETE, attempt_path, None).await;
        Ok(GenerateRoot::Refused(format!(
            "{} shares did not complete it",
            keys.len()
        )))
    }
}

/// The root token: base64 of the token XORed with the one-time password.
fn decode(encoded: &str, otp: &SecretString) -> Result<SecretString> {
    use base64::Engine as _;
    let xored = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| {
            Error::Internal("sys/generate-root answered a token that is not base64".into())
        })?;
    let mut token: Vec<u8> = xored
        .iter()
        .zip(otp.expose_secret().bytes())
        .map(|(a, b)| a ^ b)
        .collect();
    let out = String::from_utf8(token.clone())
        .map_err(|_| Error::Internal("sys/generate-root answered a token that is not text".into()));
    zeroize::Zeroize::zeroize(&mut token);
    out.map(SecretString::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_encoded_value_xored_with_the_otp() {
        use base64::Engine as _;
        let otp = SecretString::from("abcdefgh".to_owned());
        let token = b"s.tokenx";
        let x: Vec<u8> = token.iter().zip(b"abcdefgh").map(|(a, b)| a ^ b).collect();
        let enc = base64::engine::general_purpose::STANDARD.encode(x);
        assert_eq!(decode(&enc, &otp).unwrap().expose_secret(), "s.tokenx");
    }
}
