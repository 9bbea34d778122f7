//! Random identifiers shaped like Vault's: UUIDs for request and entity IDs, base62
//! for tokens and accessors (Vault 1.10+ service tokens start with `hvs.`).

use uuid::Uuid;

const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub fn uuid() -> String {
    Uuid::new_v4().to_string()
}

/// `n` random base62 characters, drawn without modulo bias from the random bytes of
/// v4 UUIDs (skipping the two bytes that carry version and variant bits).
pub fn base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for (i, b) in Uuid::new_v4().as_bytes().iter().enumerate() {
            if out.len() == n {
                break;
            }
            if i == 6 || i == 8 || *b >= 248 {
                continue;
            }
            out.push(char::from(BASE62[usize::from(*b % 62)]));
        }
    }
    out
}

/// Random bytes, for signatures that only have to be unguessable.
pub fn bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let id = Uuid::new_v4();
        let chunk = id.as_bytes();
        let take = (n - out.len()).min(chunk.len());
        out.extend_from_slice(&chunk[..take]);
    }
    out
}

pub fn service_token() -> String {
    format!("hvs.{}", base62(24))
}

pub fn accessor() -> String {
    base62(24)
}
