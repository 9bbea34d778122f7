//! The reference passed between steps (Argo `withParam` items): names and versions, never values.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::{is_dns_label, is_object_name};
use crate::paths::VaultPath;

/// Most keys one Secret may have to be handed over. References carry the key names and Argo
/// keeps every reference in the Workflow object (etcd's 1.5 MiB limit), so keep them small.
pub const MAX_KEYS: usize = 512;
/// Most references in one batch (the largest `--batch-size`).
pub const MAX_BATCH: usize = 10_000;
/// Largest `--reference` / `--reference-file` accepted (a full batch fits easily).
pub const MAX_REFERENCE_BYTES: usize = 8 * 1024 * 1024;

/// What to do about a reference that is not read-bootstrap's.
const REFERENCE_HINT: &str =
    "pass one item of read-bootstrap's references.json (or a list of them) unchanged";

/// What a step was asked to act on: one reference, or a batch (given as a list).
#[derive(Debug, Clone)]
pub struct References {
    pub items: Vec<SecretRef>,
    pub batch: bool,
}

/// One bootstrap Secret to hand over, as read-bootstrap saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// Target path under the KV mount.
    pub path: VaultPath,
    /// Key names only.
    pub keys: Vec<String>,
}

impl SecretRef {
    /// Parses one reference as passed on the command line or in a file.
    pub fn parse(json: &str) -> Result<Self> {
        let r: SecretRef = serde_json::from_str(json.trim()).map_err(|e| {
            Error::Usage(format!(
                "--reference is not a valid secret reference ({e}); pass one item of \
                 read-bootstrap's references.json unchanged"
            ))
        })?;
        for (field, v) in [
            ("namespace", &r.namespace),
            ("name", &r.name),
            ("uid", &r.uid),
            ("resourceVersion", &r.resource_version),
        ] {
            if v.is_empty() || v.len() > 253 || v.chars().any(|c| c.is_control()) {
                return Err(Error::Usage(format!(
                    "--reference field {field} is empty, too long or has control characters; \
                     {REFERENCE_HINT}"
                )));
            }
        }
        // They become URL path segments of the Kubernetes API: no traversal, no separators.
        if !is_dns_label(&r.namespace) {
            return Err(Error::Usage(format!(
                "--reference namespace {:?} is not a namespace name; {REFERENCE_HINT}",
                r.namespace.escape_debug().to_string()
            )));
        }
        if !is_object_name(&r.name) {
            return Err(Error::Usage(format!(
                "--reference name {:?} is not a Secret name; {REFERENCE_HINT}",
                r.name.escape_debug().to_string()
            )));
        }
        if r.keys.len() > MAX_KEYS {
            return Err(Error::Usage(format!(
                "--reference for {} lists {} keys, more than the {MAX_KEYS} a handover takes; \
                 {REFERENCE_HINT}",
                r.object(),
                r.keys.len()
            )));
        }
        Ok(r)
    }

    /// One reference (a JSON object) or a batch (a JSON array of them, even of one).
    pub fn parse_many(json: &str) -> Result<References> {
        if json.len() > MAX_REFERENCE_BYTES {
            return Err(Error::Usage(format!(
                "--reference is {} bytes, more than {MAX_REFERENCE_BYTES}; {REFERENCE_HINT}",
                json.len()
            )));
        }
        let t = json.trim();
        if !t.starts_with('[') {
            return Ok(References {
                items: vec![Self::parse(t)?],
                batch: false,
            });
        }
        let items: Vec<serde_json::Value> = serde_json::from_str(t).map_err(|e| {
            Error::Usage(format!(
                "--reference is not a JSON list of references ({e})"
            ))
        })?;
        if items.is_empty() {
            return Err(Error::Usage(format!(
                "--reference is an empty list; {REFERENCE_HINT}"
            )));
        }
        if items.len() > MAX_BATCH {
            return Err(Error::Usage(format!(
                "--reference lists {} references, more than {MAX_BATCH} in one batch; use \
                 read-bootstrap's batches.json items",
                items.len()
            )));
        }
        Ok(References {
            items: items
                .iter()
                .map(|v| Self::parse(&v.to_string()))
                .collect::<Result<_>>()?,
            batch: true,
        })
    }

    pub fn object(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let r = SecretRef {
            namespace: "team-a".into(),
            name: "db".into(),
            uid: "u-1".into(),
            resource_version: "42".into(),
            path: VaultPath::parse("team-a/db").unwrap(),
            keys: vec!["password".into()],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"resourceVersion\":\"42\""));
        assert_eq!(SecretRef::parse(&json).unwrap(), r);
        let extra = json.replace("{\"namespace\"", "{\"data\":\"x\",\"namespace\"");
        assert!(matches!(SecretRef::parse(&extra), Err(Error::Usage(_))));
    }

    #[test]
    fn rejects_escaping_paths_and_empty_fields() {
        let bad_path = r#"{"namespace":"a","name":"b","uid":"u","resourceVersion":"1","path":"a/../b","keys":[]}"#;
        assert!(matches!(SecretRef::parse(bad_path), Err(Error::Usage(_))));
        let empty_uid =
            r#"{"namespace":"a","name":"b","uid":"","resourceVersion":"1","path":"a/b","keys":[]}"#;
        assert!(matches!(SecretRef::parse(empty_uid), Err(Error::Usage(_))));
        assert!(matches!(SecretRef::parse("not json"), Err(Error::Usage(_))));
    }

    #[test]
    fn names_that_would_move_the_api_url_are_refused() {
        let with = |ns: &str, name: &str| {
            serde_json::json!({"namespace": ns, "name": name, "uid": "u",
                "resourceVersion": "1", "path": "a/b", "keys": []})
            .to_string()
        };
        assert!(SecretRef::parse(&with("apps", "db.v1")).is_ok());
        for (ns, name) in [
            ("..", "db"),
            ("apps", ".."),
            ("apps", "a/b"),
            ("apps", "%2e%2e"),
            ("apps/x", "db"),
            ("Apps", "db"),
            ("apps", "db?watch=1"),
        ] {
            assert!(
                matches!(SecretRef::parse(&with(ns, name)), Err(Error::Usage(_))),
                "{ns} {name}"
            );
        }
    }
}
