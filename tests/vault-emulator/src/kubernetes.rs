//! Kubernetes auth (hashicorp/vault-plugin-auth-kubernetes): roles bound to service
//! account names and namespaces, and login. The emulator issues the service account
//! JWTs itself; a JWT it did not issue fails the stand-in for the TokenReview call,
//! which Vault reports as 403 `permission denied`.

use crate::api::{Caller, Op};
use crate::fields::{self, field_error, Data};
use crate::gofmt;
use crate::ids;
use crate::reply::{ApiError, Handled, Outcome, Response};
use crate::state::State;
use crate::token::{sanitize_policies, TokenEntry, DEFAULT_TTL_SECS};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

const NAMESPACE_CLAIM: &str = "kubernetes.io/serviceaccount/namespace";
const NAME_CLAIM: &str = "kubernetes.io/serviceaccount/service-account.name";
const UID_CLAIM: &str = "kubernetes.io/serviceaccount/service-account.uid";
const SECRET_CLAIM: &str = "kubernetes.io/serviceaccount/secret.name";

#[derive(Debug, Clone, Default)]
struct Role {
    names: Vec<String>,
    namespaces: Vec<String>,
    policies: Vec<String>,
    ttl: i64,
    max_ttl: i64,
    no_default_policy: bool,
    audience: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceAccount {
    namespace: String,
    name: String,
    uid: String,
}

/// One Kubernetes auth mount.
#[derive(Debug)]
pub struct Kubernetes {
    pub mount: String,
    roles: BTreeMap<String, Role>,
    config: Map<String, Value>,
    /// JWTs issued by `issue`, i.e. those the stand-in TokenReview accepts.
    issued: HashMap<String, ServiceAccount>,
    uids: HashMap<(String, String), String>,
    entities: HashMap<String, String>,
}

impl Kubernetes {
    pub fn new(mount: &str) -> Self {
        Self {
            mount: mount.to_string(),
            roles: BTreeMap::new(),
            config: Map::new(),
            issued: HashMap::new(),
            uids: HashMap::new(),
            entities: HashMap::new(),
        }
    }

    /// A JWT shaped like a legacy service account token (claims readable, signature
    /// random) that login will accept for `namespace/name`.
    pub fn issue(&mut self, namespace: &str, name: &str) -> String {
        let uid = self
            .uids
            .entry((namespace.to_string(), name.to_string()))
            .or_insert_with(ids::uuid)
            .clone();
        let header = json!({ "alg": "RS256", "kid": "vault-emulator", "typ": "JWT" });
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            NAMESPACE_CLAIM: namespace,
            SECRET_CLAIM: "",
            NAME_CLAIM: name,
            UID_CLAIM: uid,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        });
        let jwt = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(ids::bytes(32)),
        );
        self.issued.insert(
            jwt.clone(),
            ServiceAccount {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid,
            },
        );
        jwt
    }

    /// Whether a role exists, for the create-versus-update ACL decision.
    pub fn exists(&self, rest: &str) -> Option<bool> {
        rest.strip_prefix("role/")
            .map(|name| self.roles.contains_key(name))
    }
}

/// The claims of a JWT, unverified, as `parseAndValidateJWT` reads them.
fn claims(jwt: &str) -> Option<ServiceAccount> {
    let mut parts = jwt.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some(ServiceAccount {
        namespace: text(NAMESPACE_CLAIM),
        name: text(NAME_CLAIM),
        uid: text(UID_CLAIM),
    })
}

/// `strutil.GlobbedStringsMatch`: `*` at the start and/or end of a pattern.
fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() >= 2 => value.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), _) => value.ends_with(suffix),
        (_, Some(prefix)) => value.starts_with(prefix),
        _ => pattern == value,
    }
}

/// A role name as `framework.GenericNameRegex` admits it.
fn valid_role_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().last()) else {
        return false;
    };
    word(first) && word(last) && name.chars().all(|c| word(c) || c == '-' || c == '.')
}

pub fn handle(
    state: &mut State,
    _caller: Option<&Caller>,
    op: Op,
    rest: &str,
    data: &Data,
    now: Timestamp,
) -> Handled {
    let write = matches!(op, Op::Create | Op::Update);
    match rest {
        "login" if write => login(state, data, now),
        "config" if write => {
            state.kubernetes.config = data.clone();
            Ok(Outcome::Nil)
        }
        "config" if op == Op::Read => {
            if state.kubernetes.config.is_empty() {
                Ok(Outcome::Nil)
            } else {
                Ok(Outcome::Resp(Response::data(Value::Object(
                    state.kubernetes.config.clone(),
                ))))
            }
        }
        "role/" if op == Op::List => {
            let keys: Vec<&String> = state.kubernetes.roles.keys().collect();
            Ok(Outcome::Resp(Response::data(json!({ "keys": keys }))))
        }
        "login" | "config" | "role/" => Err(ApiError::unsupported_operation()),
        _ => match rest.strip_prefix("role/") {
            Some(name) if valid_role_name(name) => role(state, op, name, data),
            _ => Err(ApiError::unsupported_path()),
        },
    }
}

fn role(state: &mut State, op: Op, name: &str, data: &Data) -> Handled {
    let roles = &mut state.kubernetes.roles;
    match op {
        Op::Read => Ok(roles.get(name).map_or(Outcome::Nil, |r| {
            Outcome::Resp(Response::data(json!({
                "bound_service_account_names": r.names,
                "bound_service_account_namespaces": r.namespaces,
                "token_policies": r.policies,
                "policies": r.policies,
                "token_ttl": r.ttl,
                "ttl": r.ttl,
                "token_max_ttl": r.max_ttl,
                "max_ttl": r.max_ttl,
                "token_no_default_policy": r.no_default_policy,
                "token_type": "default",
                "audience": r.audience,
                "alias_name_source": "serviceaccount_uid",
            })))
        })),
        Op::Delete => {
            roles.remove(name);
            Ok(Outcome::Nil)
        }
        Op::Create | Op::Update => {
            let existing = roles.get(name).cloned();
            let updated = write_role(existing, op == Op::Create, data)?;
            roles.insert(name.to_string(), updated);
            Ok(Outcome::Nil)
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

/// The value of `new`, else of its deprecated name `old`, with the name used.
fn pick<'a>(
    data: &'a Data,
    new: &'static str,
    old: &'static str,
) -> Option<(&'static str, &'a Value)> {
    data.get(new)
        .map(|v| (new, v))
        .or_else(|| data.get(old).map(|v| (old, v)))
}

/// `pathRoleCreateUpdate`: fields absent on update keep their value; `token_*`
/// names win over the deprecated `policies`/`ttl`/`max_ttl`.
fn write_role(existing: Option<Role>, create: bool, data: &Data) -> Result<Role, ApiError> {
    let mut role = existing.unwrap_or_default();
    let bad = |key: &str, e: String| {
        ApiError::bad_request(field_error(key, data.get(key).unwrap_or(&Value::Null), &e))
    };
    if let Some(v) = data.get("bound_service_account_names") {
        role.names = fields::string_slice(v).map_err(|e| bad("bound_service_account_names", e))?;
    }
    if let Some(v) = data.get("bound_service_account_namespaces") {
        role.namespaces =
            fields::string_slice(v).map_err(|e| bad("bound_service_account_namespaces", e))?;
    }
    if let Some((key, v)) = pick(data, "token_policies", "policies") {
        role.policies = fields::string_slice(v).map_err(|e| bad(key, e))?;
    }
    if let Some((key, v)) = pick(data, "token_ttl", "ttl") {
        role.ttl = fields::duration_secs(v).map_err(|e| bad(key, e))?;
    }
    if let Some((key, v)) = pick(data, "token_max_ttl", "max_ttl") {
        role.max_ttl = fields::duration_secs(v).map_err(|e| bad(key, e))?;
    }
    if let Some(v) = data.get("token_no_default_policy") {
        role.no_default_policy =
            fields::boolean(v).map_err(|e| bad("token_no_default_policy", e))?;
    }
    if data.contains_key("audience") || create {
        role.audience = fields::string(data, "audience").map_err(ApiError::bad_request)?;
    }
    if role.max_ttl > 0 && role.ttl > role.max_ttl {
        return Err(ApiError::bad_request(
            "token ttl should not be greater than token max ttl",
        ));
    }
    if role.names.is_empty() {
        return Err(ApiError::bad_request(
            "\"bound_service_account_names\" can not be empty",
        ));
    }
    if role.names.len() > 1 && role.names.iter().any(|n| n == "*") {
        return Err(ApiError::bad_request("can not mix \"*\" with values"));
    }
    if role.namespaces.is_empty() {
        return Err(ApiError::bad_request(
            "\"bound_service_account_namespaces\" can not be empty",
        ));
    }
    if role.namespaces.len() > 1 && role.namespaces.iter().any(|n| n == "*") {
        return Err(ApiError::bad_request("can not mix \"*\" with values"));
    }
    Ok(role)
}

/// `pathLogin` then `RegisterAuth`: field checks, role, the JWT's claims against
/// the role's bounds, the TokenReview stand-in, then a new orphan service token.
fn login(state: &mut State, data: &Data, now: Timestamp) -> Handled {
    let role_name = fields::string(data, "role").map_err(ApiError::bad_request)?;
    if role_name.is_empty() {
        return Err(ApiError::bad_request("missing role"));
    }
    let jwt = fields::string(data, "jwt").map_err(ApiError::bad_request)?;
    if jwt.is_empty() {
        return Err(ApiError::bad_request("missing jwt"));
    }
    let k8s = &mut state.kubernetes;
    let role = k8s.roles.get(&role_name).cloned().ok_or_else(|| {
        ApiError::bad_request(format!("invalid role name {}", gofmt::quote(&role_name)))
    })?;
    let sa = claims(&jwt).ok_or_else(ApiError::permission_denied)?;
    let any_name = role.names.len() == 1 && role.names.first().is_some_and(|n| n == "*");
    if !any_name && !role.names.iter().any(|p| glob_match(p, &sa.name)) {
        return Err(ApiError::forbidden("service account name not authorized"));
    }
    let any_namespace = role.namespaces.first().is_some_and(|n| n == "*");
    if !any_namespace && !role.namespaces.iter().any(|p| glob_match(p, &sa.namespace)) {
        return Err(ApiError::forbidden("namespace not authorized"));
    }
    if k8s.issued.get(&jwt) != Some(&sa) {
        return Err(ApiError::permission_denied());
    }
    let policies = sanitize_policies(&role.policies, !role.no_default_policy);
    if policies.iter().any(|p| p == "root") {
        return Err(ApiError::bad_request(
            "auth methods cannot create root tokens",
        ));
    }
    let ttl = match (role.ttl, role.max_ttl) {
        (0, 0) => DEFAULT_TTL_SECS,
        (0, max) => max.min(DEFAULT_TTL_SECS),
        (ttl, _) => ttl,
    };
    let entity_id = k8s
        .entities
        .entry(sa.uid.clone())
        .or_insert_with(ids::uuid)
        .clone();
    let meta = BTreeMap::from([
        ("role".to_string(), role_name),
        ("service_account_name".to_string(), sa.name.clone()),
        (
            "service_account_namespace".to_string(),
            sa.namespace.clone(),
        ),
        ("service_account_secret_name".to_string(), String::new()),
        ("service_account_uid".to_string(), sa.uid.clone()),
    ]);
    let entry = TokenEntry {
        id: ids::service_token(),
        accessor: ids::accessor(),
        policies,
        parent: None,
        path: format!("auth/{}/login", k8s.mount),
        display_name: format!(
            "{}-{}-{}",
            k8s.mount.replace('/', "-"),
            sa.namespace,
            sa.name
        ),
        meta: Some(meta),
        creation: now,
        ttl,
        renewable: true,
        entity_id,
    };
    let auth = entry.auth_json();
    state.tokens.insert(entry);
    Ok(Outcome::Resp(Response::auth(auth)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_strutil() {
        assert!(glob_match("*", "x"));
        assert!(glob_match("app-*", "app-1"));
        assert!(glob_match("*-sa", "my-sa"));
        assert!(glob_match("*mid*", "a-mid-b"));
        assert!(!glob_match("app", "app-1"));
    }

    #[test]
    fn issued_tokens_carry_readable_claims() {
        let mut k = Kubernetes::new("kubernetes");
        let jwt = k.issue("ns", "sa");
        let sa = claims(&jwt).expect("claims decode");
        assert_eq!((sa.namespace.as_str(), sa.name.as_str()), ("ns", "sa"));
        assert_eq!(k.issue("ns", "sa").split('.').nth(1), jwt.split('.').nth(1));
    }

    #[test]
    fn role_names_follow_generic_name_regex() {
        assert!(valid_role_name("my-role.v1"));
        assert!(!valid_role_name("-x"));
        assert!(!valid_role_name("a/b"));
        assert!(!valid_role_name(""));
    }
}
