//! Secret semantics kube-fake-client lacks: `stringData` folded into `data` and `type`
//! defaulted (the v1 conversion), then the apiserver's `ValidateSecret` and
//! `ValidateSecretUpdate` (pkg/apis/core/validation), so steps meet real rejections.

use crate::status::{bad_request, FieldError, FieldErrorKind, Reply};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// `core.MaxSecretSize`: total bytes over all data values.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

const IMMUTABLE_DETAIL: &str = "field is immutable when `immutable` is set";

/// Folds `stringData` into `data`, re-encodes `data` canonically and defaults `type`.
/// Errors are the 400 the apiserver gives for bodies it cannot decode.
pub fn normalize(obj: &mut Value) -> Result<(), Reply> {
    let Some(map) = obj.as_object_mut() else {
        return Err(undecodable("the body is not a JSON object"));
    };
    let mut data = decode_data(map.get("data"))?;
    match map.remove("stringData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(strings)) => {
            for (key, value) in strings {
                match value {
                    Value::String(s) => {
                        data.insert(key, s.into_bytes());
                    }
                    Value::Null => {
                        data.insert(key, Vec::new());
                    }
                    _ => return Err(undecodable("stringData values must be strings")),
                }
            }
        }
        Some(_) => return Err(undecodable("stringData must be an object")),
    }
    if data.is_empty() {
        map.remove("data");
    } else {
        let encoded: Map<String, Value> = data
            .into_iter()
            .map(|(k, v)| (k, json!(STANDARD.encode(v))))
            .collect();
        map.insert("data".into(), Value::Object(encoded));
    }
    let untyped = map
        .get("type")
        .is_none_or(|t| t.is_null() || t.as_str() == Some(""));
    if untyped {
        map.insert("type".into(), json!("Opaque"));
    }
    Ok(())
}

fn undecodable(why: impl std::fmt::Display) -> Reply {
    bad_request(format!(
        "Secret in version \"v1\" cannot be handled as a Secret: {why}"
    ))
}

fn decode_data(data: Option<&Value>) -> Result<BTreeMap<String, Vec<u8>>, Reply> {
    let mut out = BTreeMap::new();
    let entries = match data {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(entries)) => entries,
        Some(_) => return Err(undecodable("data must be an object")),
    };
    for (key, value) in entries {
        let bytes = match value {
            Value::Null => Vec::new(),
            Value::String(s) => STANDARD.decode(s).map_err(|e| match e {
                base64::DecodeError::InvalidByte(at, _)
                | base64::DecodeError::InvalidLastSymbol(at, _) => {
                    undecodable(format!("illegal base64 data at input byte {at}"))
                }
                other => undecodable(format!("illegal base64 data: {other}")),
            })?,
            _ => return Err(undecodable("data values must be base64 strings")),
        };
        out.insert(key.clone(), bytes);
    }
    Ok(out)
}

/// The fields validation looks at, read from a normalized Secret.
struct View {
    name: String,
    type_: String,
    immutable: Option<bool>,
    data: BTreeMap<String, Vec<u8>>,
    annotations: BTreeMap<String, String>,
}

impl View {
    fn of(obj: &Value) -> Self {
        let meta = &obj["metadata"];
        let annotations = meta["annotations"]
            .as_object()
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            type_: obj["type"].as_str().unwrap_or("Opaque").to_string(),
            immutable: obj["immutable"].as_bool(),
            // Normalized bodies always decode; anything else validates as empty.
            data: decode_data(obj.get("data")).unwrap_or_default(),
            annotations,
        }
    }
}

/// `ValidateSecret` on a normalized Secret.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    validate_view(&View::of(obj))
}

/// `ValidateSecretUpdate` on normalized Secrets.
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (new, old) = (View::of(new), View::of(old));
    let mut errs = Vec::new();
    if new.type_ != old.type_ {
        errs.push(FieldError::invalid(
            "type",
            &new.type_,
            "field is immutable",
        ));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::new(
                FieldErrorKind::Forbidden,
                "immutable",
                IMMUTABLE_DETAIL,
            ));
        }
        if new.data != old.data {
            errs.push(FieldError::new(
                FieldErrorKind::Forbidden,
                "data",
                IMMUTABLE_DETAIL,
            ));
        }
    }
    errs.extend(validate_view(&new));
    errs
}

fn validate_view(s: &View) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for msg in dns1123_subdomain_errors(&s.name) {
        errs.push(FieldError::invalid("metadata.name", &s.name, msg));
    }
    let mut total = 0usize;
    for (key, value) in &s.data {
        for msg in config_key_errors(key) {
            errs.push(FieldError::invalid(format!("data[{key}]"), key, msg));
        }
        total += value.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::new(
            FieldErrorKind::TooLong,
            "data",
            format!("may not be more than {MAX_SECRET_SIZE} bytes"),
        ));
    }
    let required =
        |key: &str| FieldError::new(FieldErrorKind::Required, format!("data[{key}]"), "");
    let missing = |key: &str| !s.data.contains_key(key);
    let sa_name = "kubernetes.io/service-account.name";
    match s.type_.as_str() {
        "kubernetes.io/service-account-token"
            if s.annotations.get(sa_name).is_none_or(String::is_empty) =>
        {
            errs.push(FieldError::new(
                FieldErrorKind::Required,
                format!("metadata.annotations[{sa_name}]"),
                "",
            ));
        }
        "kubernetes.io/dockercfg" => errs.extend(docker_config(&s.data, ".dockercfg")),
        "kubernetes.io/dockerconfigjson" => {
            errs.extend(docker_config(&s.data, ".dockerconfigjson"))
        }
        "kubernetes.io/basic-auth" if missing("username") && missing("password") => {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if s.data.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            errs.push(required("ssh-privatekey"));
        }
        "kubernetes.io/tls" => {
            errs.extend(
                ["tls.crt", "tls.key"]
                    .into_iter()
                    .filter(|k| missing(k))
                    .map(required),
            );
        }
        _ => {}
    }
    errs
}

/// The key must be present and hold a JSON object (Go unmarshals it into a map).
fn docker_config(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<FieldError> {
    let Some(bytes) = data.get(key) else {
        return Some(FieldError::new(
            FieldErrorKind::Required,
            format!("data[{key}]"),
            "",
        ));
    };
    let why = match serde_json::from_slice::<Value>(bytes) {
        Err(e) => e.to_string(),
        Ok(Value::Object(_) | Value::Null) => return None,
        Ok(other) => {
            let found = match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            };
            format!(
                "json: cannot unmarshal {found} into Go value of type map[string]interface {{}}"
            )
        }
    };
    Some(FieldError::invalid(
        format!("data[{key}]"),
        "<secret contents redacted>",
        why,
    ))
}

/// `validation.IsConfigMapKey`.
fn config_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let valid_chars = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid_chars {
        errs.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    if key == "." {
        errs.push("must not be '.'".to_string());
    } else if key == ".." {
        errs.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// `validation.IsDNS1123Subdomain` (Secret names).
fn dns1123_subdomain_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(e)) => {
                (f.is_ascii_lowercase() || f.is_ascii_digit())
                    && (e.is_ascii_lowercase() || e.is_ascii_digit())
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            }
            _ => false,
        }
    };
    if !name.split('.').all(label_ok) {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
             validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_string(),
        );
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(type_: &str, data: Value) -> Value {
        let mut s = json!({"metadata": {"name": "s"}, "type": type_, "stringData": data});
        assert!(normalize(&mut s).is_ok());
        s
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn normalize_folds_string_data_and_defaults_type() {
        let mut s = json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eA=="}, "stringData": {"a": "y"}});
        assert!(normalize(&mut s).is_ok());
        assert_eq!(s["data"], json!({"a": "eQ==", "b": "eA=="}));
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());

        let mut bad = json!({"metadata": {"name": "s"}, "data": {"a": "!!!!"}});
        let err = normalize(&mut bad).err().map(|r| r.code);
        assert_eq!(err, Some(400));
    }

    #[test]
    fn type_rules() {
        assert_eq!(
            messages(&validate(&secret(
                "kubernetes.io/tls",
                json!({"tls.crt": "c"})
            ))),
            ["data[tls.key]: Required value"]
        );
        assert!(validate(&secret(
            "kubernetes.io/tls",
            json!({"tls.crt": "", "tls.key": ""})
        ))
        .is_empty());
        assert_eq!(
            messages(&validate(&secret("kubernetes.io/basic-auth", json!({})))).len(),
            2
        );
        assert!(validate(&secret("kubernetes.io/basic-auth", json!({"password": ""}))).is_empty());
        assert_eq!(
            messages(&validate(&secret(
                "kubernetes.io/ssh-auth",
                json!({"ssh-privatekey": ""})
            ))),
            ["data[ssh-privatekey]: Required value"]
        );
        let bad_json = validate(&secret(
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": "{nope"}),
        ));
        assert!(messages(&bad_json)[0].starts_with(
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": "
        ));
        assert!(validate(&secret(
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": "{\"auths\":{}}"})
        ))
        .is_empty());
    }

    #[test]
    fn keys_size_and_name() {
        let errs = messages(&validate(&secret(
            "Opaque",
            json!({"bad key": "x", "..x": "y"}),
        )));
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("data[..x]: Invalid value: \"..x\": must not start with '..'"));
        assert!(
            errs[1].starts_with("data[bad key]: Invalid value: \"bad key\": a valid config key")
        );

        let big = "x".repeat(MAX_SECRET_SIZE + 1);
        assert_eq!(
            messages(&validate(&secret("Opaque", json!({ "k": big })))),
            ["data: Too long: may not be more than 1048576 bytes"]
        );

        let mut upper = json!({"metadata": {"name": "Upper"}});
        assert!(normalize(&mut upper).is_ok());
        assert!(
            messages(&validate(&upper))[0].starts_with("metadata.name: Invalid value: \"Upper\"")
        );
    }

    #[test]
    fn immutable_and_type_updates() {
        let mut old = secret("Opaque", json!({"a": "1"}));
        old["immutable"] = json!(true);
        let mut relabeled = old.clone();
        relabeled["metadata"]["labels"] = json!({"x": "y"});
        assert!(validate_update(&relabeled, &old).is_empty());

        let mut changed = secret("Opaque", json!({"a": "2"}));
        changed["immutable"] = json!(true);
        assert_eq!(
            messages(&validate_update(&changed, &old)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let mut unset = old.clone();
        unset["immutable"] = json!(false);
        assert_eq!(
            messages(&validate_update(&unset, &old)),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        let retyped = secret(
            "kubernetes.io/basic-auth",
            json!({"a": "1", "username": "u"}),
        );
        let plain = secret("Opaque", json!({"a": "1", "username": "u"}));
        assert_eq!(
            messages(&validate_update(&retyped, &plain)),
            ["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]
        );
    }
}
