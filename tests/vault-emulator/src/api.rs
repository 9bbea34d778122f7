//! From HTTP request to logical operation and back, with Vault's checks in Vault's
//! order: path sanity and the dedicated sys handlers (http/handler.go), method to
//! operation and body parsing (http/logical.go), then seal, token, existence check
//! and ACL (vault/request_handling.go), then the backend, then the response shape
//! (sdk/logical/response_util.go `RespondErrorCommon`).

use crate::acl::Acl;
use crate::fields::{self, Data};
use crate::reply::{ApiError, Handled, Outcome, Reply};
use crate::state::State;
use crate::token::TokenEntry;
use crate::{gofmt, kubernetes, kv2_http, sys, token};
use bytes::Bytes;
use jiff::Timestamp;
use percent_encoding::percent_decode_str;
use serde_json::Value;

const MERGE_PATCH: &str = "application/merge-patch+json";

/// An HTTP request as the transport hands it over.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    /// From `X-Vault-Token`, else `Authorization: Bearer`.
    pub token: Option<String>,
    pub content_type: Option<String>,
    /// `None` when the body exceeded the size limit.
    pub body: Option<Bytes>,
}

/// `logical.Operation`, after the existence check has split writes into create
/// and update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    List,
    Create,
    Update,
    Delete,
    Patch,
    Header,
}

impl Op {
    /// The ACL capability this operation needs.
    pub fn capability_name(self) -> &'static str {
        match self {
            Op::Read | Op::Header => "read",
            Op::List => "list",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Patch => "patch",
        }
    }
}

/// One ACL decision, recorded for least-privilege tests: which policies asked for which
/// capability on which path, and whether they had it. Never a body or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub policies: Vec<String>,
    pub path: String,
    pub capability: &'static str,
    pub allowed: bool,
}

/// The authenticated caller of a request.
#[derive(Debug)]
pub struct Caller {
    pub token: TokenEntry,
    acl: Acl,
}

impl Caller {
    /// Root, or `sudo` on the path.
    pub fn has_sudo(&self, path: &str, op: Op) -> bool {
        self.token.is_root() || self.acl.has_sudo(path, op)
    }
}

/// Where a logical path is mounted.
enum Target {
    Sys(String),
    Token(String),
    Kubernetes(String),
    Kv { mount: String, rest: String },
    Unmounted,
}

impl Target {
    fn resolve(state: &State, path: &str) -> Self {
        if let Some(rest) = path.strip_prefix("sys/") {
            return Target::Sys(rest.to_string());
        }
        if let Some(rest) = path.strip_prefix("auth/token/") {
            return Target::Token(rest.to_string());
        }
        if let Some(rest) = path
            .strip_prefix("auth/")
            .and_then(|p| p.strip_prefix(state.kubernetes.mount.as_str()))
            .and_then(|p| p.strip_prefix('/'))
        {
            return Target::Kubernetes(rest.to_string());
        }
        match state.kv_mount(path) {
            Some(mount) => {
                let rest = path[mount.len() + 1..].to_string();
                Target::Kv { mount, rest }
            }
            None => Target::Unmounted,
        }
    }

    fn mount_type(&self) -> &'static str {
        match self {
            Target::Sys(_) => "system",
            Target::Token(_) => "token",
            Target::Kubernetes(_) => "kubernetes",
            Target::Kv { .. } => "kv",
            Target::Unmounted => "",
        }
    }

    /// Login paths take no token (the backend's `PathsSpecial.Unauthenticated`).
    fn unauthenticated(&self) -> bool {
        matches!(self, Target::Kubernetes(rest) if rest == "login")
    }

    fn exists(&self, state: &State) -> Option<bool> {
        match self {
            Target::Kv { mount, rest } => state
                .kv
                .get(mount)
                .and_then(|kv| kv2_http::exists(kv, rest)),
            Target::Kubernetes(rest) => state.kubernetes.exists(rest),
            _ => None,
        }
    }
}

/// Serves one request against the state.
pub fn handle(state: &mut State, req: Request, now: Timestamp) -> Reply {
    state.record(&req.method, &req.path, req.query.as_deref());
    let Some(body) = req.body else {
        return Reply::error(413, "error parsing JSON");
    };
    let Some(raw) = req.path.strip_prefix("/v1/") else {
        return Reply::no_errors(404);
    };
    let Ok(path) = percent_decode_str(raw)
        .decode_utf8()
        .map(|p| p.into_owned())
    else {
        return Reply::error(400, "invalid path");
    };
    // cleanhttp.PrintablePathCheckHandler: a bare 400.
    if !path.chars().all(gofmt::is_print) {
        return Reply::empty(400);
    }
    if path.split('/').any(|segment| segment == "..") {
        return Reply::error(400, "invalid path");
    }
    let query = parse_query(req.query.as_deref());
    if let Some(reply) = sys::raw(
        state,
        &req.method,
        &path,
        &query,
        req.token.as_deref(),
        &body,
        now,
    ) {
        return reply;
    }
    if path.is_empty() {
        return Reply::no_errors(404);
    }
    let (op, path, data) =
        match logical(&req.method, path, query, req.content_type.as_deref(), &body) {
            Ok(parts) => parts,
            Err(reply) => return reply,
        };
    if state.sealed && !sys::works_sealed(&path) {
        return ApiError::sealed().into();
    }
    if op == Op::Update && path.ends_with('/') {
        return Reply::error(400, "cannot write to a path ending in '/'");
    }
    let target = Target::resolve(state, &path);
    let mut op = op;
    let caller = if target.unauthenticated() {
        None
    } else {
        let policies = req
            .token
            .as_deref()
            .and_then(|t| state.tokens.get(t, now))
            .map(|e| e.policies.clone());
        let authorized = authorize(state, &target, &path, &mut op, req.token.as_deref(), now);
        if let Some(policies) = policies {
            state.record_access(Access {
                policies,
                path: path.clone(),
                capability: op.capability_name(),
                allowed: authorized.is_ok(),
            });
        }
        match authorized {
            Ok(caller) => Some(caller),
            Err(e) => return e.into(),
        }
    };
    let result = match &target {
        Target::Sys(rest) => sys::handle(state, caller.as_ref(), op, rest, &data, now),
        Target::Token(rest) => token::handle(state, caller.as_ref(), op, rest, &data, now),
        Target::Kubernetes(rest) => {
            kubernetes::handle(state, caller.as_ref(), op, rest, &data, now)
        }
        Target::Kv { mount, rest } => match state.kv.get_mut(mount) {
            Some(kv) => kv2_http::handle(kv, op, rest, &data, now),
            None => Err(ApiError::unsupported_path()),
        },
        Target::Unmounted => Err(ApiError::no_handler(&path)),
    };
    render(result, op, target.mount_type())
}

/// `buildLogicalRequestNoAuth`: the operation, the path (LIST adds a trailing
/// slash) and the request data (JSON body for writes, query otherwise).
fn logical(
    method: &str,
    mut path: String,
    mut query: Data,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<(Op, String, Data), Reply> {
    let op = match method {
        "GET" => match query.get("list").and_then(Value::as_str) {
            Some(list) if !list.is_empty() => match fields::parse_go_bool(list) {
                Some(true) => {
                    query.remove("list");
                    Op::List
                }
                Some(false) => Op::Read,
                None => return Err(Reply::no_errors(400)),
            },
            _ => Op::Read,
        },
        "POST" | "PUT" => {
            return Ok((Op::Update, path, parse_body(body)?));
        }
        "PATCH" => {
            check_merge_patch(content_type)?;
            return Ok((Op::Patch, path, parse_body(body)?));
        }
        "DELETE" => Op::Delete,
        "LIST" => Op::List,
        "HEAD" => Op::Header,
        _ => return Err(Reply::no_errors(405)),
    };
    if op == Op::List && !path.ends_with('/') {
        path.push('/');
    }
    Ok((op, path, query))
}

/// PATCH takes only `application/merge-patch+json` (`mime.ParseMediaType` first).
fn check_merge_patch(content_type: Option<&str>) -> Result<(), Reply> {
    let media = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.is_empty() {
        return Err(Reply::error(400, "mime: no media type"));
    }
    if !media.contains('/') {
        return Err(Reply::error(400, "mime: expected slash after first token"));
    }
    if media != MERGE_PATCH {
        return Err(Reply::error(
            415,
            format!("PATCH requires Content-Type of {MERGE_PATCH}, provided {media}"),
        ));
    }
    Ok(())
}

/// A JSON object body; empty or `null` is no data.
fn parse_body(body: &Bytes) -> Result<Data, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Data::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Data::new()),
        Ok(_) | Err(_) => Err(Reply::error(400, "error parsing JSON")),
    }
}

/// `parseQuery`: one value as a string, repeated values as a list.
fn parse_query(query: Option<&str>) -> Data {
    let mut data = Data::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let key = key.into_owned();
        let value = Value::String(value.into_owned());
        match data.get_mut(&key) {
            None => {
                data.insert(key, value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    data.remove("help");
    data
}

/// `checkToken`: a live token, then create-or-update, then the ACL (root passes).
fn authorize(
    state: &State,
    target: &Target,
    path: &str,
    op: &mut Op,
    token: Option<&str>,
    now: Timestamp,
) -> Result<Caller, ApiError> {
    let entry = token
        .and_then(|t| state.tokens.get(t, now))
        .cloned()
        .ok_or_else(ApiError::permission_denied)?;
    if *op == Op::Update && target.exists(state) == Some(false) {
        *op = Op::Create;
    }
    let acl = state.policies.acl(&entry.policies);
    if !entry.is_root() && !acl.allows(path, *op) {
        return Err(ApiError::acl_denied());
    }
    Ok(Caller { token: entry, acl })
}

/// The HTTP shape of a backend's answer.
fn render(result: Handled, op: Op, mount_type: &str) -> Reply {
    match result {
        Err(e) => e.into(),
        Ok(Outcome::Nil) if matches!(op, Op::Read | Op::List | Op::Header) => Reply::no_errors(404),
        Ok(Outcome::Nil) => Reply::empty(204),
        Ok(Outcome::Resp(resp))
            if op == Op::List && !resp.has_keys() && resp.warnings.is_empty() =>
        {
            Reply::no_errors(404)
        }
        Ok(Outcome::Resp(resp)) => Reply::json(200, resp.envelope(mount_type)),
        Ok(Outcome::Raw {
            status,
            resp: Some(resp),
        }) => Reply::json(status, resp.envelope("")),
        Ok(Outcome::Raw { status, resp: None }) => Reply::empty(status),
    }
}
