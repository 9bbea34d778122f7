//! The token store (vault/token_store.go): service tokens with policies, a TTL and a
//! parent, so that revoking a token also revokes the tokens it created. Serves
//! `auth/token/create`, `create-orphan`, `lookup-self` and `revoke-self`.

use crate::api::{Caller, Op};
use crate::fields::{self, field_error, Data};
use crate::gofmt;
use crate::ids;
use crate::reply::{ApiError, Handled, Outcome, Response};
use crate::state::State;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The system default lease TTL, 768h, which tokens without a TTL get.
pub const DEFAULT_TTL_SECS: i64 = 768 * 3600;

#[derive(Clone, Debug)]
pub struct TokenEntry {
    pub id: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub parent: Option<String>,
    pub path: String,
    pub display_name: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub creation: Timestamp,
    /// Seconds; 0 never expires (root tokens).
    pub ttl: i64,
    pub renewable: bool,
    pub entity_id: String,
}

impl TokenEntry {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    fn expire_time(&self) -> Option<Timestamp> {
        if self.ttl > 0 {
            self.creation
                .checked_add(SignedDuration::from_secs(self.ttl))
                .ok()
        } else {
            None
        }
    }

    fn expired(&self, now: Timestamp) -> bool {
        self.expire_time().is_some_and(|t| t <= now)
    }

    /// The `auth` block of a response (sdk/logical/translate_response.go `HTTPAuth`).
    pub fn auth_json(&self) -> Value {
        json!({
            "client_token": self.id,
            "accessor": self.accessor,
            "policies": self.policies,
            "token_policies": self.policies,
            "metadata": self.meta,
            "lease_duration": self.ttl,
            "renewable": self.renewable,
            "entity_id": self.entity_id,
            "token_type": "service",
            "orphan": self.parent.is_none(),
            "mfa_requirement": null,
            "num_uses": 0,
        })
    }

    /// `handleLookup`'s data.
    fn lookup_json(&self, now: Timestamp) -> Value {
        let remaining = self
            .expire_time()
            .map_or(0, |t| t.duration_since(now).as_secs().max(0));
        json!({
            "accessor": self.accessor,
            "creation_time": self.creation.as_second(),
            "creation_ttl": self.ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": self.expire_time().map(gofmt::rfc3339_nano),
            "explicit_max_ttl": 0,
            "id": self.id,
            "issue_time": gofmt::rfc3339_nano(self.creation),
            "meta": self.meta,
            "num_uses": 0,
            "orphan": self.parent.is_none(),
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": remaining,
            "type": "service",
        })
    }
}

#[derive(Debug)]
pub struct TokenStore {
    tokens: HashMap<String, TokenEntry>,
}

impl TokenStore {
    /// A store holding the root token, as `vault server -dev -dev-root-token-id` makes it.
    pub fn new(root_token: &str, now: Timestamp) -> Self {
        let root = TokenEntry {
            id: root_token.to_string(),
            accessor: ids::accessor(),
            policies: vec!["root".to_string()],
            parent: None,
            path: "auth/token/root".to_string(),
            display_name: "root".to_string(),
            meta: None,
            creation: now,
            ttl: 0,
            renewable: false,
            entity_id: String::new(),
        };
        let mut tokens = HashMap::new();
        tokens.insert(root.id.clone(), root);
        Self { tokens }
    }

    /// The id of the configured root token (`-dev-root-token-id`).
    pub fn root_id(&self) -> String {
        self.tokens
            .values()
            .find(|t| t.is_root() && t.path == "auth/token/root" && t.display_name == "root")
            .map(|t| t.id.clone())
            .unwrap_or_default()
    }

    /// A live token; expired ones are treated as revoked.
    pub fn get(&self, id: &str, now: Timestamp) -> Option<&TokenEntry> {
        self.tokens.get(id).filter(|t| !t.expired(now))
    }

    pub fn insert(&mut self, entry: TokenEntry) {
        self.tokens.insert(entry.id.clone(), entry);
    }

    /// Revokes every token but root ones (test-only: a token expiring mid-run).
    pub fn revoke_all_but_root(&mut self) {
        self.tokens.retain(|_, t| t.is_root());
    }

    /// Revokes a token and, recursively, its children.
    pub fn revoke(&mut self, id: &str) {
        let mut pending = vec![id.to_string()];
        while let Some(next) = pending.pop() {
            if self.tokens.remove(&next).is_some() {
                pending.extend(
                    self.tokens
                        .values()
                        .filter(|t| t.parent.as_deref() == Some(next.as_str()))
                        .map(|t| t.id.clone()),
                );
            }
        }
    }
}

/// `policyutil.SanitizePolicies`: trimmed, lower-cased, `root` alone if present,
/// `default` added on request, deduplicated and sorted.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let cleaned: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if cleaned.iter().any(|p| p == "root") {
        return vec!["root".to_string()];
    }
    let mut out = cleaned;
    if add_default && !out.iter().any(|p| p == "default") {
        out.push("default".to_string());
    }
    out.sort();
    out.dedup();
    out
}

pub fn handle(
    state: &mut State,
    caller: Option<&Caller>,
    op: Op,
    rest: &str,
    data: &Data,
    now: Timestamp,
) -> Handled {
    let caller = caller.ok_or_else(ApiError::permission_denied)?;
    let write = matches!(op, Op::Create | Op::Update);
    match rest {
        "create" | "create-orphan" if write => create(state, caller, rest, data, now),
        "lookup-self" if op == Op::Read => {
            let entry = state
                .tokens
                .get(&caller.token.id, now)
                .ok_or_else(ApiError::permission_denied)?;
            Ok(Outcome::Resp(Response::data(entry.lookup_json(now))))
        }
        "revoke-self" if write => {
            state.tokens.revoke(&caller.token.id);
            Ok(Outcome::Nil)
        }
        "create" | "create-orphan" | "lookup-self" | "revoke-self" => {
            Err(ApiError::unsupported_operation())
        }
        _ => Err(ApiError::unsupported_path()),
    }
}

fn bad_field(key: &str, data: &Data, e: &str) -> ApiError {
    ApiError::bad_request(field_error(key, data.get(key).unwrap_or(&Value::Null), e))
}

/// `handleCreateCommon`, without roles, batch tokens or use limits.
fn create(
    state: &mut State,
    caller: &Caller,
    endpoint: &str,
    data: &Data,
    now: Timestamp,
) -> Handled {
    let parent = &caller.token;
    let sudo = caller.has_sudo(&format!("auth/token/{endpoint}"), Op::Update);
    let get = |key: &str| data.get(key).unwrap_or(&Value::Null);
    let requested =
        fields::string_slice(get("policies")).map_err(|e| bad_field("policies", data, &e))?;
    let no_default = fields::boolean(get("no_default_policy"))
        .map_err(|e| bad_field("no_default_policy", data, &e))?;
    let no_parent =
        fields::boolean(get("no_parent")).map_err(|e| bad_field("no_parent", data, &e))?;
    let ttl = fields::duration_secs(get("ttl")).map_err(|e| bad_field("ttl", data, &e))?;
    let renewable = match data.get("renewable") {
        None | Some(Value::Null) => true,
        Some(v) => fields::boolean(v).map_err(|e| bad_field("renewable", data, &e))?,
    };
    let display_name = fields::string(data, "display_name").map_err(ApiError::bad_request)?;
    let id = fields::string(data, "id").map_err(ApiError::bad_request)?;
    let token_type = fields::string(data, "type").map_err(ApiError::bad_request)?;
    let meta = match data.get("meta") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(
            m.iter()
                .map(|(k, v)| fields::weak_string(v).map(|s| (k.clone(), s)))
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map_err(|e| bad_field("meta", data, &e))?,
        ),
        Some(other) => {
            return Err(bad_field(
                "meta",
                data,
                &format!("expected a map, got '{}'", gofmt::type_name(other)),
            ))
        }
    };

    if !matches!(token_type.as_str(), "" | "service" | "default") {
        return Err(ApiError::bad_request(
            "the emulator issues service tokens only",
        ));
    }
    if !id.is_empty() {
        if !sudo {
            return Err(ApiError::bad_request(
                "root or sudo privileges required to specify token id",
            ));
        }
        if state.tokens.get(&id, now).is_some() {
            return Err(ApiError::bad_request(
                "token with the given ID already exists",
            ));
        }
    }

    let parent_policies = sanitize_policies(&parent.policies, false);
    let mut add_default = false;
    let policies = if requested.is_empty() {
        parent_policies.clone()
    } else if !sudo {
        if !sanitize_policies(&requested, false)
            .iter()
            .all(|p| parent_policies.contains(p))
        {
            return Err(ApiError::bad_request(
                "child policies must be subset of parent",
            ));
        }
        add_default = !no_default && parent.policies.iter().any(|p| p == "default");
        requested
    } else {
        add_default = !no_default;
        requested
    };
    let mut policies = sanitize_policies(&policies, add_default);
    if no_default {
        policies.retain(|p| p != "default");
    }
    let root = policies.iter().any(|p| p == "root");
    if root && !parent.is_root() {
        return Err(ApiError::bad_request(
            "root tokens may not be created without parent token being root",
        ));
    }

    let orphan = endpoint == "create-orphan" || no_parent;
    if no_parent && endpoint == "create" && !sudo {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let ttl = match ttl {
        t if t > 0 => t,
        _ if root => 0,
        _ => DEFAULT_TTL_SECS,
    };
    let display_name = if display_name.is_empty() {
        "token".to_string()
    } else {
        let sanitized: String = format!("token-{display_name}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        sanitized.trim_end_matches('-').to_string()
    };
    let entry = TokenEntry {
        id: if id.is_empty() {
            ids::service_token()
        } else {
            id
        },
        accessor: ids::accessor(),
        policies,
        parent: if orphan {
            None
        } else {
            Some(parent.id.clone())
        },
        path: format!("auth/token/{endpoint}"),
        display_name,
        meta,
        creation: now,
        ttl,
        renewable: renewable && ttl > 0,
        entity_id: String::new(),
    };
    let auth = entry.auth_json();
    state.tokens.insert(entry);
    Ok(Outcome::Resp(Response::auth(auth)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_matches_policyutil() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sanitize_policies(&p(&["B", " a ", "a"]), true),
            p(&["a", "b", "default"])
        );
        assert_eq!(sanitize_policies(&p(&["x", "root"]), true), p(&["root"]));
        assert_eq!(sanitize_policies(&p(&[]), false), p(&[]));
    }

    #[test]
    fn revoking_a_parent_revokes_children() {
        let now = Timestamp::now();
        let mut store = TokenStore::new("root", now);
        let child = |id: &str, parent: Option<&str>| TokenEntry {
            id: id.to_string(),
            accessor: ids::accessor(),
            policies: vec!["default".to_string()],
            parent: parent.map(str::to_string),
            path: "auth/token/create".to_string(),
            display_name: "token".to_string(),
            meta: None,
            creation: now,
            ttl: 60,
            renewable: true,
            entity_id: String::new(),
        };
        store.insert(child("a", Some("root")));
        store.insert(child("b", Some("a")));
        store.insert(child("c", None));
        store.revoke("a");
        assert!(store.get("a", now).is_none());
        assert!(store.get("b", now).is_none());
        assert!(store.get("c", now).is_some());
        assert!(store.get("root", now).is_some());
    }
}
