//! Strictness the JSON-schema validators lack: a field nobody declares is an error, as it is
//! for `kubectl apply` (server-side strict field validation). For CRD kinds the declared
//! fields are the CRD's; for core kinds (ServiceAccount, RBAC, ...) they are k8s-openapi's
//! (v1_33): a document that does not survive deserialize-and-serialize unchanged has a field
//! Kubernetes would reject.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::load::Doc;
use crate::{path, Problem};

/// How to read a schema without `properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A structural CRD schema: an object without `properties`, `additionalProperties` or
    /// `x-kubernetes-preserve-unknown-fields` has no fields at all (the API server prunes or,
    /// strictly, rejects them).
    Structural,
    /// A Go-generated JSON schema: an object without `properties` is free-form (e.g. an
    /// embedded Kubernetes resource), so only objects that list properties are checked.
    JsonSchema,
}

/// Collects `(path, message)` for every field of `value` its schema does not declare, and for
/// duplicate keys in `x-kubernetes-list-type: map` lists. `metadata` at the top is skipped:
/// [`check_metadata`] checks it as an ObjectMeta.
pub fn unknown_fields(
    root: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    mode: Mode,
    out: &mut Vec<(String, String)>,
) {
    walk(root, schema, value, at, mode, true, out);
}

fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..64 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix("#/definitions/") {
                Some(def) => s = &root["definitions"][def],
                None => return s,
            },
            None => return s,
        }
    }
    s
}

/// `properties` of a schema and of its `allOf` members.
fn property<'a>(root: &'a Value, s: &'a Value, name: &str) -> (bool, Option<&'a Value>) {
    let mut listed = false;
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        listed = true;
        if let Some(p) = props.get(name) {
            return (true, Some(p));
        }
    }
    for sub in s
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (l, p) = property(root, resolve(root, sub), name);
        listed |= l;
        if p.is_some() {
            return (listed, p);
        }
    }
    (listed, None)
}

fn walk(
    root: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    mode: Mode,
    top: bool,
    out: &mut Vec<(String, String)>,
) {
    let s = resolve(root, schema);
    match value {
        Value::Object(m) => {
            let preserve = s["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
            for (k, v) in m {
                if top && k == "metadata" {
                    continue;
                }
                let p = path::key(at, k);
                let (listed, declared) = property(root, s, k);
                if let Some(ps) = declared {
                    walk(root, ps, v, &p, mode, false, out);
                    continue;
                }
                match s.get("additionalProperties") {
                    Some(Value::Bool(true)) => continue,
                    Some(a @ Value::Object(_)) => {
                        walk(root, a, v, &p, mode, false, out);
                        continue;
                    }
                    _ => {}
                }
                let report = !preserve
                    && match mode {
                        Mode::Structural => true,
                        Mode::JsonSchema => listed,
                    };
                if report {
                    out.push((p, format!("unknown field {k:?}")));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(root, item_schema, v, &path::index(at, i), mode, false, out);
                }
            }
            if s["x-kubernetes-list-type"] == "map" {
                let keys: Vec<&str> = s["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut seen = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    let key: Vec<&Value> = keys.iter().map(|k| &v[*k]).collect();
                    if seen.contains(&key) {
                        out.push((
                            path::index(at, i),
                            format!(
                                "duplicate entry: another item has the same {}",
                                keys.join(", ")
                            ),
                        ));
                    } else {
                        seen.push(key);
                    }
                }
            }
        }
        _ => {}
    }
}

/// `metadata` of a CRD kind parses strictly as an ObjectMeta and names the object.
pub fn check_metadata(doc: &Doc, out: &mut Vec<Problem>) {
    check_metadata_at(doc, "", &doc.value, false, out);
}

/// As [`check_metadata`], for a resource embedded at `at` (e.g. the Workflow a Sensor
/// submits, which may use `generateName`).
pub fn check_metadata_at(
    doc: &Doc,
    at: &str,
    value: &Value,
    generate: bool,
    out: &mut Vec<Problem>,
) {
    let mpath = path::key(at, "metadata");
    let meta = &value["metadata"];
    if !meta.is_object() {
        out.push(Problem::at(doc, mpath, "metadata is required"));
        return;
    }
    let mut found = Vec::new();
    roundtrip::<ObjectMeta>(meta, &mpath, &mut found);
    let name = meta["name"].as_str().unwrap_or("");
    let gen = meta["generateName"].as_str().unwrap_or("");
    let generated = generate && !gen.is_empty();
    if name.is_empty() && !generated {
        found.push((
            path::key(&mpath, "name"),
            "metadata.name is required".into(),
        ));
    }
    out.extend(found.into_iter().map(|(p, m)| Problem::at(doc, p, m)));
}

/// Deserializes into `T`, serializes back and reports what did not survive.
fn roundtrip<T: DeserializeOwned + Serialize>(
    input: &Value,
    at: &str,
    out: &mut Vec<(String, String)>,
) {
    match serde_json::from_value::<T>(input.clone()) {
        Ok(t) => match serde_json::to_value(&t) {
            Ok(back) => diff(input, &back, at, out),
            Err(e) => out.push((at.to_owned(), format!("does not serialize back: {e}"))),
        },
        Err(e) => out.push((at.to_owned(), format!("does not parse: {e}"))),
    }
}

fn diff(input: &Value, back: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = path::key(at, k);
                match b.get(k) {
                    Some(w) => diff(v, w, &p, out),
                    None if v.is_null() => {
                        out.push((p, format!("null value for {k:?} is dropped")))
                    }
                    None => out.push((p, format!("unknown field {k:?}"))),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(v, w, &path::index(at, i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((
            at.to_owned(),
            format!("value {a} does not round-trip (reads back as {b})"),
        )),
    }
}

macro_rules! core_kinds {
    ($($t:ty),* $(,)?) => {
        /// (apiVersion, kind) of the core types the checker knows.
        pub const CORE_KINDS: &[(&str, &str)] = &[$((<$t as Resource>::API_VERSION, <$t as Resource>::KIND)),*];

        fn roundtrip_core(api_version: &str, kind: &str, v: &Value, out: &mut Vec<(String, String)>) -> bool {
            $(
                if api_version == <$t as Resource>::API_VERSION && kind == <$t as Resource>::KIND {
                    roundtrip::<$t>(v, "", out);
                    return true;
                }
            )*
            false
        }
    };
}

core_kinds!(
    k8s_openapi::api::core::v1::ServiceAccount,
    k8s_openapi::api::core::v1::ConfigMap,
    k8s_openapi::api::core::v1::Secret,
    k8s_openapi::api::core::v1::PersistentVolumeClaim,
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::core::v1::ResourceQuota,
    k8s_openapi::api::core::v1::LimitRange,
    k8s_openapi::api::rbac::v1::Role,
    k8s_openapi::api::rbac::v1::ClusterRole,
    k8s_openapi::api::rbac::v1::RoleBinding,
    k8s_openapi::api::rbac::v1::ClusterRoleBinding,
    k8s_openapi::api::apps::v1::Deployment,
    k8s_openapi::api::apps::v1::StatefulSet,
    k8s_openapi::api::apps::v1::DaemonSet,
    k8s_openapi::api::batch::v1::Job,
    k8s_openapi::api::batch::v1::CronJob,
    k8s_openapi::api::networking::v1::NetworkPolicy,
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
    k8s_openapi::api::scheduling::v1::PriorityClass,
);

/// Strict parse of a core object; false if the kind is not a core kind.
pub fn check_core(doc: &Doc, out: &mut Vec<Problem>) -> bool {
    let (api_version, kind) = (doc.api_version(), doc.kind());
    let mut found = Vec::new();
    if !roundtrip_core(api_version, kind, &doc.value, &mut found) {
        let Some((served, _)) = CORE_KINDS.iter().find(|(_, k)| *k == kind) else {
            return false;
        };
        found.push((
            "apiVersion".into(),
            format!("{kind} is served as {served}, not {api_version}"),
        ));
    } else if doc.name().is_empty() {
        found.push(("metadata.name".into(), "metadata.name is required".into()));
    }
    out.extend(found.into_iter().map(|(p, m)| Problem::at(doc, p, m)));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structural_objects_without_properties_have_no_fields() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}, "none": {"type": "object"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "env": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }});
        let value = json!({
            "metadata": {"whatever": 1},
            "spec": {"a": "x", "b": 1, "none": {"c": 1}},
            "free": {"anything": {"goes": 1}},
            "labels": {"x": "y"},
            "env": [{"name": "A"}, {"name": "A", "valu": "1"}]
        });
        let mut out = Vec::new();
        unknown_fields(&schema, &schema, &value, "", Mode::Structural, &mut out);
        let mut paths: Vec<_> = out.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort();
        assert_eq!(
            paths,
            ["env[1]", "env[1].valu", "spec.b", "spec.none.c"],
            "{out:?}"
        );
    }

    #[test]
    fn a_dropped_field_is_unknown() {
        let mut out = Vec::new();
        roundtrip::<k8s_openapi::api::core::v1::ServiceAccount>(
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "lables": {}}}),
            "",
            &mut out,
        );
        assert_eq!(
            out,
            [(
                "metadata.lables".to_owned(),
                "unknown field \"lables\"".to_owned()
            )]
        );
    }
}
