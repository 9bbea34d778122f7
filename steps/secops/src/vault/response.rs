//! A Vault answer before it is interpreted, and the wiping of bodies that may hold values.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A response whose body has not been interpreted yet. Bodies may hold secret values, so
/// this type only parses into caller-chosen types and never prints the body.
pub(crate) struct Response {
    pub status: u16,
    pub(super) body: bytes::Bytes,
    pub(super) retry_after: Option<Duration>,
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
pub(super) fn wiped_on_drop(body: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from_owner(zeroize::Zeroizing::new(body))
}

fn wipe(body: bytes::Bytes) -> Option<bytes::BytesMut> {
    let mut b = body.try_into_mut().ok()?;
    zeroize::Zeroize::zeroize(&mut b[..]);
    Some(b)
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
