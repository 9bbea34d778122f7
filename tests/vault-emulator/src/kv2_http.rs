//! KV v2's HTTP surface (vault-plugin-secrets-kv path_*.go): which path pattern an
//! operation hits, how its fields decode, and which response shape it gets. The
//! rules themselves are in `kv2`.

use crate::api::Op;
use crate::fields::{self, field_error, Data};
use crate::kv2::{self, Cas, CustomMetadataPatch, Kv2, MetaPatch, MetaUpdate, Patched, Read};
use crate::reply::{ApiError, Handled, Outcome, Response};
use jiff::Timestamp;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The mount-relative path patterns of the KV v2 backend.
enum Endpoint<'a> {
    Config,
    /// `data/(?P<path>.*?[^/]$)`: non-empty, no trailing slash.
    Data(&'a str),
    Metadata(&'a str),
    Delete(&'a str),
    Undelete(&'a str),
    Destroy(&'a str),
}

fn endpoint(rest: &str) -> Option<Endpoint<'_>> {
    if rest == "config" {
        return Some(Endpoint::Config);
    }
    let (head, key) = rest.split_once('/')?;
    match head {
        "data" if !key.is_empty() && !key.ends_with('/') => Some(Endpoint::Data(key)),
        "metadata" => Some(Endpoint::Metadata(key)),
        "delete" => Some(Endpoint::Delete(key)),
        "undelete" => Some(Endpoint::Undelete(key)),
        "destroy" => Some(Endpoint::Destroy(key)),
        _ => None,
    }
}

/// The existence check that turns a write into `create` or `update` for the ACL
/// (`dataExistenceCheck`, `metadataExistenceCheck`); `None` where there is none.
pub fn exists(kv: &Kv2, rest: &str) -> Option<bool> {
    match endpoint(rest)? {
        Endpoint::Data(key) | Endpoint::Metadata(key) => Some(kv.exists(key)),
        _ => None,
    }
}

pub fn handle(kv: &mut Kv2, op: Op, rest: &str, data: &Data, now: Timestamp) -> Handled {
    let write = matches!(op, Op::Create | Op::Update);
    match (endpoint(rest).ok_or_else(ApiError::unsupported_path)?, op) {
        (Endpoint::Config, Op::Read) => Ok(Outcome::Resp(Response::data(kv.config().json()))),
        (Endpoint::Config, _) if write => configure(kv, data),
        (Endpoint::Data(key), Op::Read) => read(kv, key, data, now),
        (Endpoint::Data(key), _) if write => write_data(kv, key, data, now),
        (Endpoint::Data(key), Op::Patch) => patch_data(kv, key, data, now),
        (Endpoint::Data(key), Op::Delete) => {
            kv.delete_latest(key, now);
            Ok(Outcome::Nil)
        }
        (Endpoint::Metadata(key), Op::Read) => Ok(kv
            .metadata(key)
            .map_or(Outcome::Nil, |m| Outcome::Resp(Response::data(m)))),
        (Endpoint::Metadata(prefix), Op::List) => Ok(Outcome::Resp(Response::data(
            json!({ "keys": kv.list(prefix) }),
        ))),
        (Endpoint::Metadata(key), _) if write => write_metadata(kv, key, data, now),
        (Endpoint::Metadata(key), Op::Patch) => patch_metadata(kv, key, data),
        (Endpoint::Metadata(key), Op::Delete) => {
            kv.delete_metadata(key);
            Ok(Outcome::Nil)
        }
        // path_delete.go and path_destroy.go differ in the capital letter.
        (Endpoint::Delete(key), _) if write => {
            kv.delete_versions(key, &versions(data, "No version number provided")?, now);
            Ok(Outcome::Nil)
        }
        (Endpoint::Undelete(key), _) if write => {
            kv.undelete_versions(key, &versions(data, "No version number provided")?, now);
            Ok(Outcome::Nil)
        }
        (Endpoint::Destroy(key), _) if write => {
            kv.destroy_versions(key, &versions(data, "no version number provided")?);
            Ok(Outcome::Nil)
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn bad_field(data: &Data, key: &str, detail: &str) -> ApiError {
    ApiError::bad_request(field_error(
        key,
        data.get(key).unwrap_or(&Value::Null),
        detail,
    ))
}

fn optional<T>(
    data: &Data,
    key: &str,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Result<Option<T>, ApiError> {
    data.get(key)
        .map(|v| parse(v).map_err(|e| bad_field(data, key, &e)))
        .transpose()
}

fn configure(kv: &mut Kv2, data: &Data) -> Handled {
    let max_versions = optional(data, "max_versions", fields::int)?;
    let cas_required = optional(data, "cas_required", fields::boolean)?;
    let delete_version_after = optional(data, "delete_version_after", fields::duration_secs)?;
    // `uint32(maxRaw.(int))`, wrapping as Go's conversion does.
    kv.configure(
        max_versions.map(|m| m as u32),
        cas_required,
        delete_version_after,
    );
    Ok(Outcome::Nil)
}

fn read(kv: &Kv2, key: &str, data: &Data, now: Timestamp) -> Handled {
    let version = optional(data, "version", fields::int)?.unwrap_or(0);
    Ok(
        match kv.read(key, u64::try_from(version).unwrap_or(0), now) {
            Read::Missing => Outcome::Nil,
            // `logical.RespondWithStatusCode(resp, req, 404)`: the full envelope, 404.
            Read::Gone { metadata } => Outcome::Raw {
                status: 404,
                resp: Some(Response::data(
                    json!({ "data": null, "metadata": metadata }),
                )),
            },
            Read::Found { metadata, data } => Outcome::Resp(Response::data(
                json!({ "data": data, "metadata": metadata }),
            )),
        },
    )
}

/// The `data` object of a write or patch. A missing or `null` `data` is refused.
fn data_object(data: &Data) -> Result<&Map<String, Value>, ApiError> {
    match data.get("data") {
        None | Some(Value::Null) => Err(ApiError::bad_request("no data provided")),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(bad_field(
            data,
            "data",
            &format!("'' expected a map, got '{}'", kind(other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "invalid",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// `options.cas`, weak-decoded to an int; `options: null` counts as absent.
fn cas(data: &Data) -> Result<Cas, ApiError> {
    match data.get("options") {
        None | Some(Value::Null) => Ok(Cas::Absent),
        Some(Value::Object(options)) => Ok(match options.get("cas") {
            None => Cas::Absent,
            Some(v) => fields::int(v).map_or(Cas::Unparsable, Cas::Value),
        }),
        Some(other) => Err(bad_field(
            data,
            "options",
            &format!("'' expected a map, got '{}'", kind(other)),
        )),
    }
}

fn write_data(kv: &mut Kv2, key: &str, data: &Data, now: Timestamp) -> Handled {
    let object = data_object(data)?.clone();
    let cas = cas(data)?;
    kv.write(key, object, cas, now)
        .map(|metadata| Outcome::Resp(Response::data(metadata)))
        .map_err(|e| ApiError::bad_request(e.message()))
}

fn patch_data(kv: &mut Kv2, key: &str, data: &Data, now: Timestamp) -> Handled {
    let patch = Value::Object(data_object(data)?.clone());
    let cas = cas(data)?;
    match kv
        .patch(key, &patch, cas, now)
        .map_err(|e| ApiError::bad_request(e.message()))?
    {
        Patched::Missing => Ok(Outcome::Raw {
            status: 404,
            resp: None,
        }),
        Patched::Gone { metadata } => Ok(Outcome::Raw {
            status: 404,
            resp: Some(Response::data(metadata)),
        }),
        Patched::Written { metadata } => Ok(Outcome::Resp(Response::data(metadata))),
    }
}

/// `versions` for delete, undelete and destroy; an empty list is an error.
fn versions(data: &Data, empty: &str) -> Result<Vec<i64>, ApiError> {
    let list = optional(data, "versions", fields::int_slice)?.unwrap_or_default();
    if list.is_empty() {
        return Err(ApiError::bad_request(empty));
    }
    Ok(list)
}

/// `custom_metadata` as `parseCustomMetadata` reads it: values weak-decoded to
/// strings, `null` values dropped when `filter_nulls` (PATCH) and kept as `None`.
fn custom_metadata(
    raw: &Map<String, Value>,
    filter_nulls: bool,
) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    raw.iter()
        .map(|(k, v)| {
            if filter_nulls && v.is_null() {
                return Ok((k.clone(), None));
            }
            fields::weak_string(v)
                .map(|s| (k.clone(), Some(s)))
                .map_err(|e| {
                    ApiError::bad_request(format!("{}: {e}", kv2::CUSTOM_METADATA_ERROR_PREFIX))
                })
        })
        .collect()
}

fn present(map: &BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
    map.iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect()
}

fn custom_metadata_object(data: &Data) -> Result<Option<Map<String, Value>>, ApiError> {
    match data.get("custom_metadata") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Map::new())),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(other) => Err(bad_field(
            data,
            "custom_metadata",
            &format!("'' expected a map, got '{}'", kind(other)),
        )),
    }
}

fn non_negative(v: &Value) -> Result<i64, String> {
    let secs = fields::duration_secs(v)?;
    if secs < 0 {
        return Err(format!("cannot provide negative value '{secs}'"));
    }
    Ok(secs)
}

fn write_metadata(kv: &mut Kv2, key: &str, data: &Data, now: Timestamp) -> Handled {
    if key.is_empty() {
        return Err(ApiError::bad_request("missing path"));
    }
    let update = MetaUpdate {
        max_versions: optional(data, "max_versions", fields::int)?.map(|m| m as u32),
        cas_required: optional(data, "cas_required", fields::boolean)?,
        delete_version_after: optional(data, "delete_version_after", non_negative)?,
        custom_metadata: match custom_metadata_object(data)? {
            None => None,
            Some(raw) => {
                let map = present(&custom_metadata(&raw, false)?);
                kv2::validate_custom_metadata(&map).map_err(ApiError::bad_request)?;
                Some(map)
            }
        },
    };
    // Nothing to set: Vault returns before creating the key.
    if update.is_empty() {
        return Ok(Outcome::Nil);
    }
    Ok(warnings(kv.write_metadata(key, update, now)))
}

fn patch_metadata(kv: &mut Kv2, key: &str, data: &Data) -> Handled {
    if key.is_empty() {
        return Err(ApiError::bad_request("missing path"));
    }
    let custom = match data.get("custom_metadata") {
        None => None,
        Some(Value::Null) => Some(CustomMetadataPatch::Clear),
        Some(Value::Object(raw)) => {
            let entries = custom_metadata(raw, true)?;
            kv2::validate_custom_metadata(&present(&entries)).map_err(ApiError::bad_request)?;
            Some(CustomMetadataPatch::Merge(entries))
        }
        Some(other) => {
            return Err(bad_field(
                data,
                "custom_metadata",
                &format!("'' expected a map, got '{}'", kind(other)),
            ));
        }
    };
    let patch = MetaPatch {
        max_versions: optional(data, "max_versions", fields::int)?.map(|m| m as u32),
        cas_required: optional(data, "cas_required", fields::boolean)?,
        delete_version_after: optional(data, "delete_version_after", non_negative)?,
        custom_metadata: custom,
    };
    match kv.patch_metadata(key, patch) {
        // `logical.RespondWithStatusCode(nil, req, 404)`: 404, empty body.
        None => Ok(Outcome::Raw {
            status: 404,
            resp: None,
        }),
        Some(w) => Ok(warnings(w)),
    }
}

fn warnings(warnings: Vec<String>) -> Outcome {
    if warnings.is_empty() {
        Outcome::Nil
    } else {
        Outcome::Resp(Response::warnings(warnings))
    }
}
