//! Vault path validation: one namespace can never write over another's secrets.
//!
//! Paths are checked as text before they are ever put into a URL: ASCII letters, digits,
//! `-`, `_`, `.` in non-empty segments that are not `.` or `..`. That refuses traversal,
//! percent-encoded escapes, control characters and unicode look-alikes in one rule.

use std::fmt;

use thiserror::Error;

use crate::vocab::ANN_VAULT_PATH;

const MAX_PATH_LEN: usize = 512;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("path must be relative (no leading or trailing '/')")]
    Absolute,
    #[error("path has an empty segment ('//')")]
    EmptySegment,
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    #[error("path segment {segment:?} has a character outside [A-Za-z0-9._-] (at byte {at})")]
    BadChar { segment: String, at: usize },
    #[error(
        "path {path:?} is outside the subtree {subtree:?} allowed for namespace {namespace:?}"
    )]
    OutsideSubtree {
        path: String,
        subtree: String,
        namespace: String,
    },
}

/// A validated path under a KV mount (without the mount and without `data/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct VaultPath(String);

impl VaultPath {
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if s.starts_with('/') || s.ends_with('/') {
            return Err(PathError::Absolute);
        }
        for seg in s.split('/') {
            validate_segment(seg)?;
        }
        Ok(VaultPath(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn starts_with(&self, prefix: &VaultPath) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0) && self.0.as_bytes()[prefix.0.len()] == b'/')
    }
}

impl fmt::Display for VaultPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for VaultPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VaultPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn validate_segment(seg: &str) -> Result<(), PathError> {
    if seg.is_empty() {
        return Err(PathError::EmptySegment);
    }
    if seg == "." || seg == ".." {
        return Err(PathError::DotSegment);
    }
    if let Some((at, _)) = seg
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(PathError::BadChar {
            segment: seg.escape_debug().to_string(),
            at,
        });
    }
    Ok(())
}

/// Where the bootstrap Secrets of one namespace may go: `{prefix}/{namespace}`.
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    /// Optional prefix under the mount, e.g. `bootstrap`.
    pub prefix: Option<VaultPath>,
}

impl PathPolicy {
    /// The subtree a namespace's secrets must stay inside.
    pub fn subtree(&self, namespace: &str) -> Result<VaultPath, PathError> {
        match &self.prefix {
            Some(p) => VaultPath::parse(&format!("{p}/{namespace}")),
            None => VaultPath::parse(namespace),
        }
    }

    /// The target of a Secret: its `secops.io/vault-path` annotation if set (a full path under
    /// the mount, which must stay inside the namespace's subtree), else `{subtree}/{name}`.
    pub fn target(
        &self,
        namespace: &str,
        name: &str,
        annotation: Option<&str>,
    ) -> Result<VaultPath, PathError> {
        let subtree = self.subtree(namespace)?;
        let path = match annotation {
            Some(a) => VaultPath::parse(a)?,
            None => VaultPath::parse(&format!("{subtree}/{name}"))?,
        };
        if path == subtree || !path.starts_with(&subtree) {
            return Err(PathError::OutsideSubtree {
                path: path.0,
                subtree: subtree.0,
                namespace: namespace.to_owned(),
            });
        }
        Ok(path)
    }
}

/// What an operator reads when a path annotation is refused.
pub fn annotation_hint() -> String {
    format!(
        "fix or remove the {ANN_VAULT_PATH} annotation: it must be a relative path of [A-Za-z0-9._-] \
         segments inside the namespace's subtree \
         ({{prefix}}/{{namespace}}/), and give every step the same --path-prefix"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_target_is_namespace_slash_name() {
        let p = PathPolicy::default();
        assert_eq!(
            p.target("team-a", "db", None).unwrap().as_str(),
            "team-a/db"
        );
        let p = PathPolicy {
            prefix: Some(VaultPath::parse("bootstrap").unwrap()),
        };
        assert_eq!(
            p.target("team-a", "db", None).unwrap().as_str(),
            "bootstrap/team-a/db"
        );
    }

    #[test]
    fn annotation_may_choose_inside_its_subtree_only() {
        let p = PathPolicy::default();
        assert_eq!(
            p.target("team-a", "db", Some("team-a/postgres/admin"))
                .unwrap()
                .as_str(),
            "team-a/postgres/admin"
        );
        for bad in ["team-b/db", "team-ab/db", "team-a", "other"] {
            assert!(
                matches!(
                    p.target("team-a", "db", Some(bad)),
                    Err(PathError::OutsideSubtree { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn escapes_are_refused() {
        let cases = [
            ("", PathError::Empty),
            ("/team-a/x", PathError::Absolute),
            ("team-a/x/", PathError::Absolute),
            ("team-a//x", PathError::EmptySegment),
            ("team-a/../team-b/x", PathError::DotSegment),
            ("team-a/./x", PathError::DotSegment),
        ];
        for (input, want) in cases {
            assert_eq!(VaultPath::parse(input).unwrap_err(), want, "{input:?}");
        }
        for bad in [
            "team-a/%2e%2e/x",
            "team-a/x\u{0}",
            "team-a/x\ny",
            "team-a/\u{2024}\u{2024}/x", // one-dot leaders look like ".."
            "team-a/x\u{ff0f}y",         // fullwidth solidus
            "team-a/x y",
            "team-a\\..\\x",
            "team-a/x?y",
            "team-a/x#y",
        ] {
            assert!(
                matches!(VaultPath::parse(bad), Err(PathError::BadChar { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            VaultPath::parse(&"a".repeat(513)).unwrap_err(),
            PathError::TooLong
        );
    }

    #[test]
    fn errors_do_not_print_raw_control_characters() {
        let e = VaultPath::parse("a/b\u{1b}[31m").unwrap_err().to_string();
        assert!(!e.contains('\u{1b}'), "{e}");
    }
}
