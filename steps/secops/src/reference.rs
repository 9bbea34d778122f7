//! The reference passed between steps (Argo `withParam` items): names and versions, never values.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::VaultPath;

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
                    "--reference field {field} is empty, too long or has control characters"
                )));
            }
        }
        Ok(r)
    }

    /// One reference (a JSON object) or a batch (a JSON array of them, even of one).
    pub fn parse_many(json: &str) -> Result<References> {
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
            return Err(Error::Usage("--reference is an empty list".into()));
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
}
