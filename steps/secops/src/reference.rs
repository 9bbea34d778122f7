//! The reference passed between steps (Argo `withParam` items): names and versions, never values.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;

use crate::error::{Error, Result};
use crate::identity::Identity;
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
        let r: SecretRef = serde_json::from_str(json.trim()).map_err(not_a_reference)?;
        r.checked()
    }

    /// The checks serde cannot make: the fields name a real object and stay in bounds.
    fn checked(self) -> Result<Self> {
        let r = self;
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
        // One pass over the list: each item is deserialized and checked as it is read, the
        // first bad one (in order) ending the parse with its own error.
        let mut refused = None;
        let mut de = serde_json::Deserializer::from_str(t);
        let parsed = Batch {
            refused: &mut refused,
        }
        .deserialize(&mut de)
        .and_then(|items| de.end().map(|()| items));
        let items = match (parsed, refused) {
            (_, Some(e)) => return Err(e),
            (Ok(items), None) => items,
            (Err(e), None) if e.classify() == Category::Data => return Err(not_a_reference(e)),
            (Err(e), None) => {
                return Err(Error::Usage(format!(
                    "--reference is not a JSON list of references ({e})"
                )));
            }
        };
        if items.is_empty() {
            return Err(Error::Usage(format!(
                "--reference is an empty list; {REFERENCE_HINT}"
            )));
        }
        Ok(References { items, batch: true })
    }

    pub fn object(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }

    pub fn identity(&self) -> Identity {
        Identity::new(
            &self.namespace,
            &self.name,
            &self.uid,
            &self.resource_version,
        )
    }
}

fn not_a_reference(e: serde_json::Error) -> Error {
    Error::Usage(format!(
        "--reference is not a valid secret reference ({e}); pass one item of \
         read-bootstrap's references.json unchanged"
    ))
}

/// A batch's items, each checked as it is deserialized. A refusal of ours (a check, or more
/// than [`MAX_BATCH`] items) is kept in `refused` and ends the parse.
struct Batch<'a> {
    refused: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for Batch<'_> {
    type Value = Vec<SecretRef>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Batch<'_> {
    type Value = Vec<SecretRef>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of secret references")
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(r) = seq.next_element::<SecretRef>()? {
            if items.len() == MAX_BATCH {
                // Count the rest without keeping it, for the error.
                let mut n = items.len() + 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                *self.refused = Some(Error::Usage(format!(
                    "--reference lists {n} references, more than {MAX_BATCH} in one batch; use \
                     read-bootstrap's batches.json items"
                )));
                return Err(de::Error::custom("refused"));
            }
            match r.checked() {
                Ok(r) => items.push(r),
                Err(e) => {
                    *self.refused = Some(e);
                    return Err(de::Error::custom("refused"));
                }
            }
        }
        Ok(items)
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

    fn item(name: &str) -> serde_json::Value {
        serde_json::json!({"namespace": "apps", "name": name, "uid": "u",
            "resourceVersion": "1", "path": "apps/s", "keys": ["k"]})
    }

    fn usage(r: Result<References>) -> String {
        match r {
            Err(Error::Usage(m)) => m,
            other => panic!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn a_batch_is_its_items_in_order_and_one_reference_is_not_a_batch() {
        let refs = SecretRef::parse_many(&format!(" [{}, {}]\n", item("a"), item("b"))).unwrap();
        assert!(refs.batch);
        let names: Vec<_> = refs.items.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let one = SecretRef::parse_many(&item("a").to_string()).unwrap();
        assert!(!one.batch);
        assert_eq!(
            one.items,
            [SecretRef::parse(&item("a").to_string()).unwrap()]
        );
    }

    #[test]
    fn a_batch_fails_on_its_first_bad_item_with_that_item_s_error() {
        // A check serde cannot make, then a schema error: the first one in order is reported,
        // with the words a single reference gets.
        let list = serde_json::json!([item("a"), item(".."), {"namespace": "apps"}]).to_string();
        let m = usage(SecretRef::parse_many(&list));
        assert!(
            m.starts_with("--reference name \"..\" is not a Secret name"),
            "{m}"
        );
        let list = serde_json::json!([item("a"), {"namespace": "apps"}, item("..")]).to_string();
        let m = usage(SecretRef::parse_many(&list));
        assert!(
            m.starts_with("--reference is not a valid secret reference (missing field"),
            "{m}"
        );
        assert!(m.ends_with("pass one item of read-bootstrap's references.json unchanged"));
        let mut unknown = item("a");
        unknown["data"] = serde_json::json!("x");
        let m = usage(SecretRef::parse_many(
            &serde_json::json!([unknown]).to_string(),
        ));
        assert!(m.contains("unknown field `data`"), "{m}");
    }

    #[test]
    fn a_list_that_is_not_json_empty_or_too_long_is_refused() {
        for bad in [
            "[",
            r#"[{"namespace": "apps","#,
            &format!("[{}] x", item("a")),
            &format!("[{}", item("a")),
        ] {
            let m = usage(SecretRef::parse_many(bad));
            assert!(
                m.starts_with("--reference is not a JSON list of references ("),
                "{m}"
            );
        }
        let m = usage(SecretRef::parse_many(" [ ] "));
        assert!(m.starts_with("--reference is an empty list;"), "{m}");
        let many = serde_json::Value::Array(vec![item("a"); MAX_BATCH + 2]).to_string();
        let m = usage(SecretRef::parse_many(&many));
        assert!(
            m.starts_with("--reference lists 10002 references, more than 10000 in one batch"),
            "{m}"
        );
        let most = serde_json::Value::Array(vec![item("a"); MAX_BATCH]).to_string();
        assert_eq!(SecretRef::parse_many(&most).unwrap().items.len(), MAX_BATCH);
    }
}
