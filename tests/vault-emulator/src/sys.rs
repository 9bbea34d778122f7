//! The system backend. Five paths are served by dedicated HTTP handlers in Vault
//! (http/sys_health.go, sys_seal.go, sys_init.go) with raw bodies and their own
//! method checks; they work while sealed. The rest go through the logical request
//! path: ACL policies (`sys/policies/acl`), password policies
//! (`sys/policies/password`), random bytes (`sys/tools/random`) and the emulator's own
//! control endpoints (`sys/emulator/...`, root only), which mirror the `Handle`
//! methods for tests that run the binary. New endpoints are a `SysEndpoint` variant
//! and a match arm.

use crate::acl;
use crate::api::{Caller, Op};
use crate::fields::{self, Data};
use crate::gofmt;
use crate::password::{self, GENERATE_TIMEOUT, MAX_LENGTH, MIN_LENGTH};
use crate::random;
use crate::reply::{ApiError, Handled, Outcome, Reply, Response};
use crate::state::{State, VERSION};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use jiff::Timestamp;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Paths that answer while sealed, besides the raw handlers.
pub fn works_sealed(path: &str) -> bool {
    path.starts_with("sys/emulator/")
}

/// The dedicated handlers; `None` for every other path.
pub fn raw(
    state: &mut State,
    method: &str,
    path: &str,
    query: &Data,
    token: Option<&str>,
    body: &Bytes,
    now: Timestamp,
) -> Option<Reply> {
    Some(match path {
        "sys/health" => health(state, method, query, now),
        "sys/seal-status" if method == "GET" => Reply::json(200, seal_status(state)),
        "sys/unseal" if matches!(method, "PUT" | "POST") => unseal(state, body),
        "sys/init" if method == "GET" => {
            Reply::json(200, json!({ "initialized": state.initialized }))
        }
        "sys/init" if matches!(method, "PUT" | "POST") => init(state, body, now),
        "sys/seal" if matches!(method, "PUT" | "POST") => seal(state, token, now),
        "sys/seal-status" | "sys/unseal" | "sys/init" | "sys/seal" => Reply::no_errors(405),
        _ => return None,
    })
}

/// `handleSysHealth`: the status code depends on state and query overrides; HEAD
/// gets the code only.
fn health(state: &State, method: &str, query: &Data, now: Timestamp) -> Reply {
    if !matches!(method, "GET" | "HEAD") {
        return Reply::no_errors(405);
    }
    let code = |name: &str, default: u16| -> Option<u16> {
        match query.get(name).and_then(Value::as_str) {
            None => Some(default),
            Some(s) => s.parse::<u16>().ok().filter(|c| (100..=999).contains(c)),
        }
    };
    if let Some(v) = query.get("standbyok").and_then(Value::as_str) {
        if !v.is_empty() && fields::parse_go_bool(v).is_none() {
            return Reply::error(400, format!("bad value for standbyok parameter: strconv.ParseBool: parsing {}: invalid syntax", gofmt::quote(v)));
        }
    }
    // Initialised and never a standby here, so only the sealed and active codes apply;
    // the others are still validated as Vault does.
    let (Some(sealed_code), Some(active_code), Some(_), Some(_)) = (
        code("sealedcode", 503),
        code("activecode", 200),
        code("uninitcode", 501),
        code("standbycode", 429),
    ) else {
        return Reply::no_errors(400);
    };
    let (Some(uninit_code), Some(_)) = (code("uninitcode", 501), code("standbycode", 429)) else {
        return Reply::no_errors(400);
    };
    let status = if !state.initialized {
        uninit_code
    } else if state.sealed {
        sealed_code
    } else {
        active_code
    };
    if method == "HEAD" {
        return Reply::empty(status);
    }
    let mut body = json!({
        "initialized": state.initialized,
        "sealed": state.sealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now.as_second(),
        "version": VERSION,
        "enterprise": false,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
        "replication_primary_canary_age_ms": 0,
    });
    if !state.sealed {
        body["cluster_name"] = json!(state.cluster_name);
        body["cluster_id"] = json!(state.cluster_id);
    }
    Reply::json(status, body)
}

/// `SealStatusResponse`; cluster details only while unsealed.
fn seal_status(state: &State) -> Value {
    let (t, n, progress) = match &state.shamir {
        Some(s) => (s.threshold, s.keys.len(), s.progress.len()),
        None if state.initialized => (1, 1, 0),
        None => (0, 0, 0),
    };
    let mut body = json!({
        "type": "shamir",
        "initialized": state.initialized,
        "sealed": state.sealed,
        "t": t,
        "n": n,
        "progress": progress,
        "nonce": "",
        "version": VERSION,
        "build_date": "2024-06-10T10:11:34Z",
        "migration": false,
        "recovery_seal": false,
        "storage_type": "inmem",
    });
    if !state.sealed {
        body["cluster_name"] = json!(state.cluster_name);
        body["cluster_id"] = json!(state.cluster_id);
    }
    body
}

/// `hex.DecodeString`.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => {
                let digit = |b: u8| char::from(b).to_digit(16);
                u8::try_from(digit(*hi)? << 4 | digit(*lo)?).ok()
            }
            _ => None,
        })
        .collect()
}

/// A key as `handleSysUnseal` decodes it: hex of a plausible key length, else base64.
fn decode_key(key: &str) -> Option<Vec<u8>> {
    match decode_hex(key) {
        Some(bytes) if (16..=33).contains(&bytes.len()) => Some(bytes),
        _ => STANDARD.decode(key).ok(),
    }
}

/// `handleSysUnseal` with one key share: the configured key unseals at once.
fn unseal(state: &mut State, body: &Bytes) -> Reply {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Reply::error(400, "EOF");
    }
    let parsed: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => {
            return Reply::error(400, "failed to parse JSON input: invalid request body")
        }
    };
    let key = match parsed.get("key") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Reply::error(
                400,
                "failed to parse JSON input: json: cannot unmarshal into Go struct field UnsealRequest.key of type string",
            );
        }
    };
    let reset = parsed
        .get("reset")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !reset && key.is_empty() {
        return Reply::error(
            400,
            "'key' must be specified in request body as JSON, or 'reset' set to true",
        );
    }
    if !state.initialized {
        return Reply::error(400, "Vault is not initialized");
    }
    if reset {
        if !state.sealed {
            return Reply::error(400, "vault is unsealed");
        }
        if let Some(s) = &mut state.shamir {
            s.progress.clear();
        }
        return Reply::json(200, seal_status(state));
    }
    let Some(given) = decode_key(key) else {
        return Reply::error(400, "'key' must be a valid hex or base64 string");
    };
    if let (true, Some(s)) = (state.sealed, &mut state.shamir) {
        // vault/core.go unsealFragment: a repeated key share is ignored; at the threshold
        // the shares are combined, and a wrong combination fails and resets the progress.
        if !s.progress.contains(&given) {
            s.progress.push(given);
        }
        if s.progress.len() >= s.threshold {
            let all_valid = s.progress.iter().all(|k| s.keys.contains(k));
            s.progress.clear();
            if !all_valid {
                return Reply::error(400, "Unseal failed, invalid key");
            }
            state.sealed = false;
        }
        return Reply::json(200, seal_status(state));
    }
    if state.sealed {
        let expected =
            decode_key(&state.unseal_key).unwrap_or_else(|| state.unseal_key.as_bytes().to_vec());
        if given != expected {
            return Reply::error(400, "Unseal failed, invalid key");
        }
        state.sealed = false;
    }
    Reply::json(200, seal_status(state))
}

/// Key shares made by `sys/init`. The emulator does not split a real master key: any
/// `threshold` distinct shares unseal, and any other share fails at the threshold, which is
/// what a client of Vault's Shamir seal can observe.
#[derive(Debug, Clone)]
pub struct Shamir {
    pub keys: Vec<Vec<u8>>,
    pub threshold: usize,
    pub progress: Vec<Vec<u8>>,
}

/// `handleSysInitPut` and `SealConfig.Validate` (vault/seal_config.go): checks the share
/// counts, then answers the key shares (hex and base64) and a root token exactly once, and
/// leaves the server sealed.
fn init(state: &mut State, body: &Bytes, now: Timestamp) -> Reply {
    if state.initialized {
        return Reply::error(400, "Vault is already initialized");
    }
    let parsed: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => {
            return Reply::error(400, "failed to parse JSON input: invalid request body")
        }
    };
    let int = |k: &str| parsed.get(k).and_then(Value::as_i64).unwrap_or(0);
    let (shares, threshold) = (int("secret_shares"), int("secret_threshold"));
    let invalid = |m: &str| {
        Reply::error(
            400,
            format!("failed to initialize barrier: invalid seal configuration: {m}"),
        )
    };
    if shares < 1 {
        return invalid("shares must be at least one");
    }
    if threshold < 1 {
        return invalid("threshold must be at least one");
    }
    if shares > 1 && threshold == 1 {
        return invalid("threshold must be greater than one for multiple shares");
    }
    if shares > 255 {
        return invalid("shares must be less than 256");
    }
    if threshold > shares {
        return invalid("threshold cannot be larger than shares");
    }
    let keys: Vec<Vec<u8>> = (0..shares).map(|_| crate::ids::bytes(33)).collect();
    let root = format!("hvs.{}", crate::ids::base62(24));
    let mut entry = state
        .tokens
        .get(&state.tokens.root_id(), now)
        .cloned()
        .expect("the configured root token exists");
    entry.id = root.clone();
    entry.accessor = crate::ids::accessor();
    entry.creation = now;
    state.tokens.insert(entry);
    let body = json!({
        "keys": keys.iter().map(|k| k.iter().map(|b| format!("{b:02x}")).collect::<String>()).collect::<Vec<_>>(),
        "keys_base64": keys.iter().map(|k| STANDARD.encode(k)).collect::<Vec<_>>(),
        "root_token": root,
    });
    state.shamir = Some(Shamir {
        keys,
        threshold: threshold as usize,
        progress: Vec::new(),
    });
    state.initialized = true;
    state.sealed = true;
    Reply::json(200, body)
}

/// `handleSysSeal` / `SealWithRequest`: needs `update` and `sudo` on `sys/seal`;
/// sealing a sealed Vault is a no-op.
fn seal(state: &mut State, token: Option<&str>, now: Timestamp) -> Reply {
    if state.sealed {
        return Reply::empty(204);
    }
    let denied = || ApiError::acl_denied().into();
    let Some(entry) = token.and_then(|t| state.tokens.get(t, now)) else {
        return denied();
    };
    if !entry.is_root() {
        let acl = state.policies.acl(&entry.policies);
        if !(acl.allows("sys/seal", Op::Update) && acl.has_sudo("sys/seal", Op::Update)) {
            return denied();
        }
    }
    state.sealed = true;
    Reply::empty(204)
}

/// The logical system paths the emulator serves.
enum SysEndpoint<'a> {
    AclPolicyList,
    AclPolicy(&'a str),
    /// `policies/password/?$` (LIST only).
    PasswordPolicyList,
    /// `policies/password/(?P<name>.+)$`; names may contain slashes.
    PasswordPolicy(&'a str),
    /// `policies/password/(?P<name>.+)/generate$` (read only).
    PasswordGenerate(&'a str),
    /// `tools/random(/:source)(/:urlbytes)`, captures empty when absent.
    Random {
        source: &'a str,
        urlbytes: &'a str,
    },
    ServiceAccountToken,
    Requests,
}

fn endpoint(rest: &str) -> Option<SysEndpoint<'_>> {
    match rest {
        "policies/acl" | "policies/acl/" => Some(SysEndpoint::AclPolicyList),
        "policies/password" | "policies/password/" => Some(SysEndpoint::PasswordPolicyList),
        "emulator/service-account-token" => Some(SysEndpoint::ServiceAccountToken),
        "emulator/requests" => Some(SysEndpoint::Requests),
        _ => {
            if let Some(name) = rest.strip_prefix("policies/acl/") {
                return (!name.contains('/')).then_some(SysEndpoint::AclPolicy(name));
            }
            if let Some(name) = rest.strip_prefix("policies/password/") {
                return Some(match name.strip_suffix("/generate") {
                    Some(policy) if !policy.is_empty() => SysEndpoint::PasswordGenerate(policy),
                    _ => SysEndpoint::PasswordPolicy(name),
                });
            }
            let (source, urlbytes) = random::route(rest.strip_prefix("tools/random")?)?;
            Some(SysEndpoint::Random { source, urlbytes })
        }
    }
}

pub fn handle(
    state: &mut State,
    caller: Option<&Caller>,
    op: Op,
    rest: &str,
    data: &Data,
    _now: Timestamp,
) -> Handled {
    let caller = caller.ok_or_else(ApiError::permission_denied)?;
    let write = matches!(op, Op::Create | Op::Update);
    match (endpoint(rest).ok_or_else(ApiError::unsupported_path)?, op) {
        (SysEndpoint::AclPolicyList, Op::List | Op::Read) => Ok(Outcome::Resp(Response::data(
            json!({ "keys": state.policies.names() }),
        ))),
        (SysEndpoint::AclPolicy(name), Op::Read) => {
            let name = name.trim().to_lowercase();
            Ok(state.policies.get(&name).map_or(Outcome::Nil, |p| {
                Outcome::Resp(Response::data(json!({ "name": name, "policy": p.text })))
            }))
        }
        (SysEndpoint::AclPolicy(name), _) if write => write_policy(state, name, data),
        (SysEndpoint::AclPolicy(name), Op::Delete) => {
            let name = name.trim().to_lowercase();
            if name == "root" || name == "default" {
                return Err(ApiError::bad_request(format!(
                    "cannot delete {} policy",
                    gofmt::quote(&name)
                )));
            }
            state.policies.remove(&name);
            Ok(Outcome::Nil)
        }
        (SysEndpoint::PasswordPolicyList, Op::List) => Ok(Outcome::Resp(Response::data(
            json!({ "keys": state.passwords.names() }),
        ))),
        (SysEndpoint::PasswordPolicy(name), Op::Read) => {
            let stored = state.passwords.get(name).ok_or_else(no_password_policy)?;
            Ok(Outcome::Resp(Response::data(
                json!({ "policy": stored.text }),
            )))
        }
        (SysEndpoint::PasswordPolicy(name), _) if write => write_password_policy(state, name, data),
        (SysEndpoint::PasswordPolicy(name), Op::Delete) => {
            state.passwords.remove(name);
            Ok(Outcome::Nil)
        }
        (SysEndpoint::PasswordGenerate(name), Op::Read) => {
            let stored = state.passwords.get(name).ok_or_else(no_password_policy)?;
            let password = stored
                .generator
                .generate(Instant::now() + GENERATE_TIMEOUT)
                .map_err(|e| {
                    ApiError::coded(
                        500,
                        format!("failed to generate password from policy: {}", e.message()),
                    )
                })?;
            Ok(Outcome::Resp(Response::data(
                json!({ "password": password }),
            )))
        }
        (SysEndpoint::Random { source, urlbytes }, _) if write => {
            random::handle(source, urlbytes, data)
        }
        (SysEndpoint::ServiceAccountToken, _) if write => {
            require_root(caller)?;
            let namespace = fields::string(data, "namespace").map_err(ApiError::bad_request)?;
            let service_account =
                fields::string(data, "service_account").map_err(ApiError::bad_request)?;
            if namespace.is_empty() || service_account.is_empty() {
                return Err(ApiError::bad_request(
                    "missing namespace or service_account",
                ));
            }
            let token = state.kubernetes.issue(&namespace, &service_account);
            Ok(Outcome::Resp(Response::data(json!({ "token": token }))))
        }
        (SysEndpoint::Requests, Op::Read) => {
            require_root(caller)?;
            let requests: Vec<Value> = state
                .requests()
                .into_iter()
                .map(|(method, path)| json!({ "method": method, "path": path }))
                .collect();
            Ok(Outcome::Resp(Response::data(
                json!({ "count": state.request_count(), "requests": requests }),
            )))
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn require_root(caller: &Caller) -> Result<(), ApiError> {
    if caller.token.is_root() {
        Ok(())
    } else {
        Err(ApiError::permission_denied())
    }
}

/// `handlePoliciesSet`: names are lower-cased, `root` is fixed, the text may be
/// base64-encoded.
fn write_policy(state: &mut State, name: &str, data: &Data) -> Handled {
    let name = name.trim().to_lowercase();
    let mut text = fields::string(data, "policy").map_err(ApiError::bad_request)?;
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "'policy' parameter not supplied or empty",
        ));
    }
    if name == "root" {
        return Err(ApiError::bad_request("cannot update \"root\" policy"));
    }
    if let Some(decoded) = STANDARD
        .decode(&text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        text = decoded;
    }
    let policy = acl::parse(&text).map_err(ApiError::bad_request)?;
    state.policies.set(&name, policy);
    Ok(Outcome::Nil)
}

/// `handlePoliciesPasswordGet` / `Generate` on a name with nothing stored.
fn no_password_policy() -> ApiError {
    ApiError::coded(404, "policy does not exist")
}

/// `handlePoliciesPasswordSet`: the text may be base64-encoded (Go's decoder skips
/// line breaks); it must parse, give a length of 4 to 100, and yield ten passwords
/// within a second. Success is a bare 204 (`RespondWithStatusCode`).
fn write_password_policy(state: &mut State, name: &str, data: &Data) -> Handled {
    let mut text = fields::string(data, "policy").map_err(ApiError::bad_request)?;
    if text.is_empty() {
        return Err(ApiError::coded(400, "missing policy"));
    }
    let unwrapped: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    if let Ok(decoded) = STANDARD.decode(unwrapped) {
        text = String::from_utf8_lossy(&decoded).into_owned();
    }
    let generator = password::parse(&text)
        .map_err(|e| ApiError::coded(400, format!("invalid password policy: {e}")))?;
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&generator.length) {
        return Err(ApiError::coded(
            400,
            format!("passwords must be between {MIN_LENGTH} and {MAX_LENGTH} characters"),
        ));
    }
    const ATTEMPTS: usize = 10;
    let deadline = Instant::now() + GENERATE_TIMEOUT;
    let failed = (0..ATTEMPTS)
        .filter(|_| generator.generate(deadline).is_err())
        .count();
    let timeout = gofmt::duration(GENERATE_TIMEOUT.as_secs() as i64);
    if failed == ATTEMPTS {
        return Err(ApiError::coded(
            400,
            format!("unable to generate password from provided policy in {timeout}: are the rules impossible?"),
        ));
    }
    if failed > 0 {
        return Err(ApiError::coded(
            400,
            format!("failed to generate passwords {failed} times out of {ATTEMPTS} attempts in {timeout} - is the policy too restrictive?"),
        ));
    }
    state
        .passwords
        .set(name, password::Stored { text, generator });
    Ok(Outcome::Raw {
        status: 204,
        resp: None,
    })
}
