//! `metav1.Status` bodies worded the way the apiserver words them, because clients
//! (and our assertions) match on `reason`, `code` and `message`.

use crate::path::ResourcePath;
use serde_json::{json, Map, Value};

/// The identity the forbidden-namespace messages name, like an RBAC-denied step pod.
pub const USER: &str = "system:serviceaccount:test:step";

/// A JSON reply: HTTP status plus body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self { code: 200, body }
    }

    /// A failure Status; the HTTP status is the Status `code`.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>, details: Value) -> Self {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "reason": reason,
        });
        if details.as_object().is_some_and(|d| !d.is_empty()) {
            body["details"] = details;
        }
        body["code"] = json!(code);
        Self { code, body }
    }
}

/// `details` for errors about one resource: `{name, group, kind: <plural>}`.
pub fn details(p: &ResourcePath, name: Option<&str>) -> Value {
    let mut d = Map::new();
    if let Some(name) = name {
        d.insert("name".into(), json!(name));
    }
    if !p.group.is_empty() {
        d.insert("group".into(), json!(p.group));
    }
    d.insert("kind".into(), json!(p.resource));
    Value::Object(d)
}

pub fn not_found(p: &ResourcePath, name: &str) -> Reply {
    let message = format!("{} \"{name}\" not found", p.qualified_resource());
    Reply::failure(404, "NotFound", message, details(p, Some(name)))
}

/// A path that names no resource the server knows.
pub fn no_such_resource() -> Reply {
    Reply::failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

pub fn already_exists(p: &ResourcePath, name: &str) -> Reply {
    let message = format!("{} \"{name}\" already exists", p.qualified_resource());
    Reply::failure(409, "AlreadyExists", message, details(p, Some(name)))
}

/// Optimistic-concurrency conflict (stale `resourceVersion`).
pub fn conflict_modified(p: &ResourcePath, name: &str) -> Reply {
    conflict(
        p,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// DeleteOptions precondition mismatch; `field` is `UID` or `ResourceVersion`.
pub fn precondition_failed(
    p: &ResourcePath,
    name: &str,
    field: &str,
    wanted: &str,
    actual: &str,
) -> Reply {
    let why = format!(
        "Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {actual}"
    );
    conflict(p, name, &why)
}

fn conflict(p: &ResourcePath, name: &str, why: &str) -> Reply {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        p.qualified_resource()
    );
    Reply::failure(409, "Conflict", message, details(p, Some(name)))
}

/// RBAC denial, scoped to the namespace in `p` or to the cluster when it has none.
pub fn forbidden(p: &ResourcePath, verb: &str) -> Reply {
    forbidden_as(p, verb, USER)
}

/// [`forbidden`] for another user.
pub fn forbidden_as(p: &ResourcePath, verb: &str, user: &str) -> Reply {
    let subject = match &p.name {
        Some(name) if verb != "create" => format!("{} \"{name}\"", p.qualified_resource()),
        _ => p.qualified_resource(),
    };
    let resource = match &p.subresource {
        Some(sub) => format!("{}/{sub}", p.resource),
        None => p.resource.clone(),
    };
    let scope = match &p.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let message = format!(
        "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        p.group
    );
    let name = p.name.as_deref().filter(|_| verb != "create");
    Reply::failure(403, "Forbidden", message, details(p, name))
}

/// A bearer token no authenticator accepts.
pub fn unauthorized() -> Reply {
    Reply::failure(401, "Unauthorized", "Unauthorized", json!({}))
}

pub fn bad_request(message: impl Into<String>) -> Reply {
    Reply::failure(400, "BadRequest", message, json!({}))
}

pub fn method_not_allowed(message: impl Into<String>) -> Reply {
    Reply::failure(405, "MethodNotAllowed", message, json!({}))
}

/// The Status a successful DELETE returns for built-in kinds.
pub fn deleted(p: &ResourcePath, name: &str, uid: Option<&str>) -> Reply {
    let mut d = details(p, Some(name));
    if let (Some(uid), Some(map)) = (uid, d.as_object_mut()) {
        map.insert("uid".into(), json!(uid));
    }
    Reply::ok(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    }))
}

/// One `field.Error` of apimachinery's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub kind: FieldErrorKind,
    /// Rendered bad value for `Invalid` errors (Go `%q` style).
    pub bad_value: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Forbidden,
    Invalid,
    TooLong,
}

impl FieldError {
    pub fn new(kind: FieldErrorKind, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind,
            bad_value: None,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            bad_value: Some(json!(value).to_string()),
            detail: detail.into(),
        }
    }

    /// `ErrorBody()`: the message without the field path.
    fn body(&self) -> String {
        let mut s = match self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::TooLong => "Too long".to_string(),
            FieldErrorKind::Invalid => match &self.bad_value {
                Some(v) => format!("Invalid value: {v}"),
                None => "Invalid value".to_string(),
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    fn cause_type(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::TooLong => "FieldValueTooLong",
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// `apierrors.NewInvalid`: 422 with one cause per field error.
pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Reply {
    let qualified_kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let aggregate = match errors {
        [] => String::new(),
        [one] => format!(": {one}"),
        many => {
            let all: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!(": [{}]", all.join(", "))
        }
    };
    let message = format!("{qualified_kind} \"{name}\" is invalid{aggregate}");
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.cause_type(), "message": e.body(), "field": e.field}))
        .collect();
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    d.insert("causes".into(), json!(causes));
    Reply::failure(422, "Invalid", message, Value::Object(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_path() -> ResourcePath {
        ResourcePath::parse("/api/v1/namespaces/ns/secrets/s").expect("path")
    }

    #[test]
    fn precondition_body_matches_apiserver() {
        let r = precondition_failed(&secret_path(), "s", "UID", "x", "y");
        let want = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Operation cannot be fulfilled on secrets \"s\": Precondition failed: UID in precondition: x, UID in object meta: y",
            "reason":"Conflict","details":{"name":"s","kind":"secrets"},"code":409});
        assert_eq!(r.body, want);
        assert_eq!(r.code, 409);
    }

    #[test]
    fn forbidden_messages() {
        let list = ResourcePath::parse("/api/v1/namespaces/ns/secrets").expect("path");
        assert_eq!(
            forbidden(&list, "list").body["message"],
            "secrets is forbidden: User \"system:serviceaccount:test:step\" cannot list resource \"secrets\" in API group \"\" in the namespace \"ns\""
        );
        assert_eq!(
            forbidden(&secret_path(), "get").body["message"],
            "secrets \"s\" is forbidden: User \"system:serviceaccount:test:step\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns\""
        );
        let all = ResourcePath::parse("/api/v1/secrets").expect("path");
        assert!(forbidden(&all, "list").body["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("at the cluster scope")));
    }

    #[test]
    fn invalid_aggregates_like_apimachinery() {
        let one = [FieldError::new(
            FieldErrorKind::Forbidden,
            "data",
            "field is immutable when `immutable` is set",
        )];
        assert_eq!(
            invalid("", "Secret", "s", &one).body["message"],
            "Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
        let two = [
            FieldError::new(FieldErrorKind::Required, "data[tls.crt]", ""),
            FieldError::new(FieldErrorKind::Required, "data[tls.key]", ""),
        ];
        assert_eq!(
            invalid("", "Secret", "s", &two).body["message"],
            "Secret \"s\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]"
        );
    }
}
