//! Kubernetes naming rules: what the API accepts as a namespace and as an object name.
//! Checked before a name reaches a URL, by references and selections alike.

/// A Kubernetes namespace name (RFC 1123 label).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes object name as the API accepts it in a URL: a DNS subdomain
/// (lowercase alphanumerics, `-`, `.`; at most 253), never `.` or `..`.
pub fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}
