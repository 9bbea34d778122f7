//! Readable paths inside a document (`spec.templates[2].container`), one spelling for every
//! check so that tests can match on them.

/// `parent.key`, or `parent["a.b/c"]` when the key would be ambiguous.
pub fn key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '$');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// `parent.a.b` for `dotted` = `a.b` (each segment a plain key).
pub fn keys(parent: &str, dotted: &str) -> String {
    dotted.split('.').fold(parent.to_owned(), |p, k| key(&p, k))
}

/// `parent[i]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A JSON pointer (`/spec/templates/2`) in the same spelling, optionally under `prefix`.
pub fn from_pointer(prefix: &str, pointer: &str) -> String {
    let mut out = prefix.to_owned();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        out = match seg.parse::<usize>() {
            Ok(i) => index(&out, i),
            Err(_) => key(&out, &seg),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_keys_indexes_and_pointers() {
        assert_eq!(key("", "spec"), "spec");
        assert_eq!(
            key("metadata.labels", "app.kubernetes.io/part-of"),
            "metadata.labels[\"app.kubernetes.io/part-of\"]"
        );
        assert_eq!(index("spec.templates", 2), "spec.templates[2]");
        assert_eq!(
            from_pointer("", "/spec/templates/2/container"),
            "spec.templates[2].container"
        );
        assert_eq!(from_pointer("x", ""), "x");
    }
}
