//! What "inert" means, once: mark-consumed writes it and audit-authority judges by it, so the
//! audit can never flag the placeholders the handover itself leaves.
//!
//! Inert data is removed, except for Secret types whose keys the API server requires
//! (`kubernetes.io/ssh-auth` must keep `ssh-privatekey`, a docker config must stay valid JSON,
//! ...): there every key stays, with a placeholder that holds nothing.

/// Secret types the API server validates for required keys.
pub const TYPES_WITH_REQUIRED_KEYS: [&str; 6] = [
    "kubernetes.io/tls",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/dockercfg",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/service-account-token",
];

/// Whether an inert Secret of this type keeps its keys (with placeholders) at all.
pub fn keeps_keys(type_: &str) -> bool {
    TYPES_WITH_REQUIRED_KEYS.contains(&type_)
}

/// The placeholder an inert Secret of `type_` keeps under `key`; `None`: the key is removed.
/// Docker configs must stay valid JSON, and `ssh-privatekey` must not be empty.
pub fn placeholder(type_: &str, key: &str) -> Option<&'static [u8]> {
    if !keeps_keys(type_) {
        return None;
    }
    Some(match key {
        ".dockerconfigjson" | ".dockercfg" => b"{}",
        "ssh-privatekey" => b"consumed",
        _ => b"",
    })
}

/// A value an inert Secret may hold under `key`: empty, or exactly the placeholder.
pub fn holds_nothing(type_: &str, key: &str, value: &[u8]) -> bool {
    value.is_empty() || placeholder(type_, key) == Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_hold_nothing_and_anything_else_does() {
        for t in TYPES_WITH_REQUIRED_KEYS {
            for k in [
                ".dockerconfigjson",
                ".dockercfg",
                "ssh-privatekey",
                "tls.key",
                "x",
            ] {
                let p = placeholder(t, k).expect("kept");
                assert!(holds_nothing(t, k, p), "{t} {k}");
                assert!(!holds_nothing(t, k, b"secret-value"), "{t} {k}");
            }
        }
        assert_eq!(placeholder("Opaque", "password"), None);
        assert!(holds_nothing("Opaque", "password", b""));
        // A placeholder is one only under its own key and type.
        assert!(!holds_nothing("Opaque", "ssh-privatekey", b"consumed"));
        assert!(!holds_nothing(
            "kubernetes.io/ssh-auth",
            "password",
            b"consumed"
        ));
    }
}
