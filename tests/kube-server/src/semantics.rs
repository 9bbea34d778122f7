//! Object-level helpers for the front layer: reading request bodies the way the
//! apiserver does, predicting a patch's result, and rewording kube-fake-client's
//! error bodies. Kept free of I/O so the rules are easy to read and test.

use crate::backend::Answer;
use crate::names;
use crate::path::ResourcePath;
use crate::status::{self, Reply};
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// Rewrites kube-fake-client's error bodies into the apiserver's wording and shape.
pub fn normalize(p: &ResourcePath, name: Option<&str>, (code, body): Answer) -> Reply {
    if code < 400 {
        return Reply { code, body };
    }
    let reason = body["reason"].as_str().unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default();
    match (code, reason, name) {
        (404, "NotFound", Some(n)) if message.ends_with(&format!("\"{n}\" not found")) => {
            status::not_found(p, n)
        }
        (404, _, _) => status::no_such_resource(),
        (409, "AlreadyExists", Some(n)) => status::already_exists(p, n),
        (409, "Conflict", Some(n)) if message.starts_with("Resource version mismatch") => {
            status::conflict_modified(p, n)
        }
        _ => {
            let reason = match (reason, code) {
                ("", 400) => "BadRequest",
                ("", 405) => "MethodNotAllowed",
                ("", 422) => "Invalid",
                ("", 500) => "InternalError",
                (reason, _) => reason,
            };
            Reply::failure(code, reason, message, json!({}))
        }
    }
}

pub fn backend_failure(message: &str) -> Reply {
    Reply::failure(
        500,
        "InternalError",
        format!("kube-fake-client could not serve this request: {message}"),
        json!({}),
    )
}

pub fn parse_object(body: &[u8]) -> Result<Value, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(obj @ Value::Object(_)) => match &obj["metadata"] {
            Value::Object(_) | Value::Null => Ok(obj),
            _ => Err(status::bad_request("metadata must be an object")),
        },
        Ok(_) => Err(status::bad_request("the body must be a JSON object")),
        Err(e) => Err(status::bad_request(format!("error decoding body: {e}"))),
    }
}

pub fn check_namespace(p: &ResourcePath, obj: &Value) -> Result<(), Reply> {
    match (&p.namespace, obj["metadata"]["namespace"].as_str()) {
        (Some(url), Some(body)) if !body.is_empty() && body != url => Err(status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(()),
    }
}

/// Ensures `metadata.name`, generating it from `generateName` like the apiserver.
pub fn assign_name(obj: &mut Value) -> Result<String, ()> {
    let meta = metadata_mut(obj).ok_or(())?;
    if let Some(name) = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Ok(name.to_string());
    }
    let prefix = meta
        .get("generateName")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
        .ok_or(())?;
    let name = format!("{prefix}{}", names::random_suffix());
    meta.insert("name".into(), json!(name));
    Ok(name)
}

pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    map.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// Whether `new` carries a resourceVersion precondition that `current` fails.
pub fn stale(new: &Value, current: &Value) -> bool {
    let wanted = new["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    !wanted.is_empty() && Some(wanted) != current["metadata"]["resourceVersion"].as_str()
}

pub fn patch_kind(content_type: Option<&str>) -> PatchKind {
    match content_type.unwrap_or_default() {
        ct if ct.contains("application/json-patch+json") => PatchKind::Json,
        ct if ct.contains("application/merge-patch+json") => PatchKind::Merge,
        ct if ct.contains("application/apply-patch") => PatchKind::Apply,
        _ => PatchKind::Strategic,
    }
}

/// Applies `patch` as kube-fake-client does (strategic and apply as merge patches);
/// `None` when it does not apply, in which case the backend reports the error.
pub fn apply_patch(mut obj: Value, patch: &Value, kind: PatchKind) -> Option<Value> {
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).ok()?;
            json_patch::patch(&mut obj, &ops).ok()?;
        }
        PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => {
            json_patch::merge(&mut obj, patch)
        }
    }
    Some(obj)
}

/// The object a server-side apply creates when nothing exists yet.
pub fn applied_new(mut obj: Value, p: &ResourcePath, name: &str) -> Value {
    if let Some(meta) = metadata_mut(&mut obj) {
        meta.insert("name".into(), json!(name));
        if let Some(ns) = &p.namespace {
            meta.insert("namespace".into(), json!(ns));
        }
    }
    obj
}

pub fn to_vec(obj: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its map keys are strings.
    serde_json::to_vec(obj).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_path() -> ResourcePath {
        ResourcePath::parse("/api/v1/namespaces/ns/secrets/s").expect("path")
    }

    #[test]
    fn rewords_kube_fake_client_errors() {
        // Bodies exactly as kube-fake-client 0.3 produces them: no metadata, no details.
        let nf = json!({"kind":"Status","apiVersion":"v1","status":"Failure",
            "message":"secrets \"s\" not found","reason":"NotFound","code":404});
        let r = normalize(&secret_path(), Some("s"), (404, nf));
        assert_eq!(r.body["details"], json!({"name": "s", "kind": "secrets"}));
        assert_eq!(r.body["metadata"], json!({}));

        let conflict = json!({"kind":"Status","apiVersion":"v1","status":"Failure",
            "message":"Resource version mismatch: expected 2, got 1","reason":"Conflict","code":409});
        let r = normalize(&secret_path(), Some("s"), (409, conflict));
        assert!(r.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Operation cannot be fulfilled on secrets \"s\"")));

        let unnamed = json!({"kind":"Status","status":"Failure","message":"bad","code":400});
        assert_eq!(
            normalize(&secret_path(), None, (400, unnamed)).body["reason"],
            "BadRequest"
        );
    }

    #[test]
    fn predicts_patches_and_preconditions() {
        let cur = json!({"metadata": {"name": "s", "resourceVersion": "3"}, "data": {"a": "x"}});
        let merged = apply_patch(
            cur.clone(),
            &json!({"metadata": {"resourceVersion": "2"}}),
            PatchKind::Merge,
        );
        assert!(merged.as_ref().is_some_and(|m| stale(m, &cur)));
        let plain = apply_patch(
            cur.clone(),
            &json!({"data": {"b": "y"}}),
            PatchKind::Strategic,
        );
        assert!(plain.as_ref().is_some_and(|m| !stale(m, &cur)));
        let bad = json!([{"op": "remove", "path": "/nope"}]);
        assert!(apply_patch(cur, &bad, PatchKind::Json).is_none());
    }

    #[test]
    fn generate_name_and_body_checks() {
        let mut obj = json!({"metadata": {"generateName": "x-"}});
        assert!(assign_name(&mut obj).is_ok_and(|n| n.starts_with("x-") && n.len() == 7));
        assert!(assign_name(&mut json!({"metadata": {}})).is_err());
        assert_eq!(parse_object(b"[1]").err().map(|r| r.code), Some(400));
        assert_eq!(
            parse_object(b"{\"metadata\": 1}").err().map(|r| r.code),
            Some(400)
        );
        let other_ns = json!({"metadata": {"namespace": "other"}});
        assert!(check_namespace(&secret_path(), &other_ns).is_err());
    }
}
