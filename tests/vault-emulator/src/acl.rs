//! Vault ACL policies in their JSON form, evaluated as `vault/acl.go` does: an exact
//! rule wins, then (for LIST) the rule without the trailing slash, then the longest
//! `*` prefix or the highest-priority `+` pattern. Rules for the same pattern from
//! several policies are merged, and an explicit deny wins. HCL is not parsed: tests
//! write policies as JSON, which Vault accepts too.

use crate::api::Op;
use crate::gofmt;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

const DENY: u32 = 1 << 0;
const CREATE: u32 = 1 << 1;
const READ: u32 = 1 << 2;
const UPDATE: u32 = 1 << 3;
const DELETE: u32 = 1 << 4;
const LIST: u32 = 1 << 5;
const SUDO: u32 = 1 << 6;
const PATCH: u32 = 1 << 7;
const SUBSCRIBE: u32 = 1 << 8;
const RECOVER: u32 = 1 << 9;

/// Vault's built-in `default` policy (vault/policy_store.go `defaultPolicy`), the
/// parts that apply to endpoints the emulator serves or may serve.
pub const DEFAULT_POLICY: &str = r#"{
  "path": {
    "auth/token/lookup-self": {"capabilities": ["read"]},
    "auth/token/renew-self": {"capabilities": ["update"]},
    "auth/token/revoke-self": {"capabilities": ["update"]},
    "sys/capabilities-self": {"capabilities": ["update"]},
    "sys/internal/ui/resultant-acl": {"capabilities": ["read"]},
    "sys/renew": {"capabilities": ["update"]},
    "sys/leases/renew": {"capabilities": ["update"]},
    "sys/leases/lookup": {"capabilities": ["update"]},
    "cubbyhole/*": {"capabilities": ["create", "read", "update", "delete", "list"]},
    "sys/wrapping/wrap": {"capabilities": ["update"]},
    "sys/wrapping/lookup": {"capabilities": ["update"]},
    "sys/wrapping/unwrap": {"capabilities": ["update"]},
    "sys/tools/hash": {"capabilities": ["update"]},
    "sys/tools/hash/*": {"capabilities": ["update"]},
    "sys/control-group/request": {"capabilities": ["update"]},
    "sys/mfa/validate": {"capabilities": ["update"]}
  }
}"#;

impl Op {
    fn capability(self) -> u32 {
        match self {
            Op::Read => READ,
            Op::List => LIST,
            Op::Create => CREATE,
            Op::Update => UPDATE,
            Op::Delete => DELETE,
            Op::Patch => PATCH,
            Op::Header => 0,
        }
    }
}

/// A parsed policy; `text` is what was written, returned on read.
#[derive(Clone, Debug)]
pub struct Policy {
    pub text: String,
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    /// The pattern, trailing `*` stripped for plain prefix rules.
    path: String,
    prefix: bool,
    segment_wildcards: bool,
    capabilities: u32,
}

/// Parses a policy document (vault/policy.go `ParseACLPolicy`): JSON, or HCL made only of
/// `path "<pattern>" { capabilities = [...] }` blocks (decoded as `hcl.Decode` would, into
/// the same tree as the JSON form).
pub fn parse(text: &str) -> Result<Policy, String> {
    if !text.trim_start().starts_with('{') {
        let items = crate::hcl::parse(text).map_err(|e| format!("failed to parse policy: {e}"))?;
        let mut paths = Map::new();
        for item in items {
            match (item.keys.as_slice(), &item.value) {
                ([path, pattern], crate::hcl::Value::Object(_)) if path == "path" => {
                    paths.insert(pattern.clone(), hcl_to_json(&item.value));
                }
                _ => {
                    return Err(format!(
                        "failed to parse policy: invalid key {}",
                        gofmt::quote(&item.keys.join(" "))
                    ))
                }
            }
        }
        let mut rules = Vec::new();
        parse_paths(&paths, &mut rules)?;
        return Ok(Policy {
            text: text.to_string(),
            rules,
        });
    }
    let root: Value = serde_json::from_str(text).map_err(|e| {
        format!("failed to parse policy: emulator accepts JSON policies only (HCL is not supported): {e}")
    })?;
    let Value::Object(top) = root else {
        return Err(
            "failed to parse policy: emulator accepts JSON policies only: expected an object"
                .to_string(),
        );
    };
    let mut rules = Vec::new();
    for (key, value) in &top {
        match key.as_str() {
            "name" => {}
            "path" => match value {
                Value::Object(paths) => parse_paths(paths, &mut rules)?,
                Value::Array(blocks) => {
                    for block in blocks {
                        let Value::Object(paths) = block else {
                            return Err("failed to parse policy: \"path\" blocks must be objects"
                                .to_string());
                        };
                        parse_paths(paths, &mut rules)?;
                    }
                }
                _ => return Err("failed to parse policy: \"path\" must be an object".to_string()),
            },
            other => {
                return Err(format!(
                    "failed to parse policy: invalid key {}",
                    gofmt::quote(other)
                ))
            }
        }
    }
    Ok(Policy {
        text: text.to_string(),
        rules,
    })
}

fn hcl_to_json(v: &crate::hcl::Value) -> Value {
    use crate::hcl::Value as H;
    match v {
        H::Str(s) => Value::String(s.clone()),
        H::Int(n) => Value::from(*n),
        H::Float(f) => Value::from(*f),
        H::Bool(b) => Value::Bool(*b),
        H::List(items) => Value::Array(items.iter().map(hcl_to_json).collect()),
        H::Object(items) => Value::Object(
            items
                .iter()
                .map(|i| (i.keys.join(" "), hcl_to_json(&i.value)))
                .collect(),
        ),
    }
}

fn parse_paths(paths: &Map<String, Value>, rules: &mut Vec<Rule>) -> Result<(), String> {
    for (key, body) in paths {
        let bodies: Vec<&Value> = match body {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for body in bodies {
            rules.push(parse_rule(key, body)?);
        }
    }
    Ok(())
}

fn parse_rule(key: &str, body: &Value) -> Result<Rule, String> {
    let fail = |detail: String| {
        format!(
            "failed to parse policy: path {}: {detail}",
            gofmt::quote(key)
        )
    };
    let Value::Object(fields) = body else {
        return Err(fail("path rules must be objects".to_string()));
    };
    let mut capabilities = 0;
    for (field, value) in fields {
        match field.as_str() {
            "capabilities" => {
                let Value::Array(caps) = value else {
                    return Err(fail("capabilities must be a list".to_string()));
                };
                for cap in caps {
                    let name = cap.as_str().unwrap_or_default();
                    capabilities |= match name {
                        "deny" => DENY,
                        "create" => CREATE,
                        "read" => READ,
                        "update" => UPDATE,
                        "delete" => DELETE,
                        "list" => LIST,
                        "sudo" => SUDO,
                        "patch" => PATCH,
                        "subscribe" => SUBSCRIBE,
                        "recover" => RECOVER,
                        _ => {
                            return Err(fail(format!("invalid capability {}", gofmt::quote(name))))
                        }
                    };
                }
            }
            // The pre-0.9 shorthand, still accepted by Vault.
            "policy" => {
                let name = value.as_str().unwrap_or_default();
                capabilities |= match name {
                    "deny" => DENY,
                    "read" => READ | LIST,
                    "write" => READ | LIST | CREATE | UPDATE | DELETE,
                    "sudo" => READ | LIST | CREATE | UPDATE | DELETE | SUDO,
                    _ => return Err(fail(format!("invalid policy {}", gofmt::quote(name)))),
                };
            }
            // Parameter constraints, wrapping TTLs, MFA and control groups narrow what
            // a rule allows; ignoring them would grant more than Vault, so refuse.
            other => {
                return Err(fail(format!(
                    "the emulator does not support {}",
                    gofmt::quote(other)
                )));
            }
        }
    }
    if capabilities & DENY != 0 {
        capabilities = DENY;
    }
    let mut path = key.trim_start_matches('/').to_string();
    if path.contains("+*") {
        return Err(fail(
            "invalid use of wildcards ('+*' is forbidden)".to_string(),
        ));
    }
    let segment_wildcards = path == "+" || path.contains("/+") || path.starts_with("+/");
    let mut prefix = false;
    if !segment_wildcards {
        if let Some(stripped) = path.strip_suffix('*') {
            path = stripped.to_string();
            prefix = true;
        }
    }
    Ok(Rule {
        path,
        prefix,
        segment_wildcards,
        capabilities,
    })
}

/// The merged rules of a token's policies.
#[derive(Clone, Debug, Default)]
pub struct Acl {
    exact: HashMap<String, u32>,
    prefix: HashMap<String, u32>,
    wildcard: HashMap<String, u32>,
}

fn merge(map: &mut HashMap<String, u32>, path: &str, capabilities: u32) {
    let slot = map.entry(path.to_string()).or_insert(0);
    *slot = if *slot & DENY != 0 || capabilities & DENY != 0 {
        DENY
    } else {
        *slot | capabilities
    };
}

impl Acl {
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        let mut acl = Self::default();
        for policy in policies {
            for rule in &policy.rules {
                // `+` patterns keep their trailing `*` (parse_rule does not strip it),
                // as acl.go keys them.
                let map = if rule.segment_wildcards {
                    &mut acl.wildcard
                } else if rule.prefix {
                    &mut acl.prefix
                } else {
                    &mut acl.exact
                };
                merge(map, &rule.path, rule.capabilities);
            }
        }
        acl
    }

    /// `ACL.AllowOperation` without parameter constraints.
    pub fn allows(&self, path: &str, op: Op) -> bool {
        self.capabilities(path, op)
            .is_some_and(|caps| caps & op.capability() != 0)
    }

    /// Whether the matching rule grants `sudo`, which root-protected paths require.
    pub fn has_sudo(&self, path: &str, op: Op) -> bool {
        self.capabilities(path, op)
            .is_some_and(|caps| caps & SUDO != 0)
    }

    fn capabilities(&self, path: &str, op: Op) -> Option<u32> {
        let path = path.trim_start_matches('/');
        if let Some(caps) = self.exact.get(path) {
            return Some(*caps);
        }
        if op == Op::List {
            if let Some(caps) = self.exact.get(path.strip_suffix('/').unwrap_or(path)) {
                return Some(*caps);
            }
            if let Some(trimmed) = path.strip_suffix('/') {
                if let Some(caps) = self.non_exact(trimmed) {
                    return Some(caps);
                }
            }
        }
        self.non_exact(path)
    }

    /// `CheckAllowedFromNonExactPaths`: the longest glob prefix competes with every
    /// matching `+` pattern; the highest priority wins.
    fn non_exact(&self, path: &str) -> Option<u32> {
        let longest = self
            .prefix
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len());
        if self.wildcard.is_empty() {
            return longest.map(|(_, caps)| *caps);
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        if let Some((p, caps)) = longest {
            candidates.push(Candidate {
                first_wildcard: p.len(),
                prefix: true,
                wildcards: 0,
                pattern: p.clone(),
                capabilities: *caps,
            });
        }
        let parts: Vec<&str> = path.split('/').collect();
        for (full, caps) in &self.wildcard {
            if let Some(candidate) = match_wildcard(full, &parts, *caps) {
                candidates.push(candidate);
            }
        }
        candidates
            .into_iter()
            .max_by(|a, b| a.priority_key().cmp(&b.priority_key()))
            .map(|c| c.capabilities)
    }
}

struct Candidate {
    first_wildcard: usize,
    prefix: bool,
    wildcards: usize,
    pattern: String,
    capabilities: u32,
}

impl Candidate {
    /// acl.go's ordering, greatest wins: a later first wildcard, not a prefix, fewer
    /// `+` segments, a longer pattern, then the lexicographically greater one.
    fn priority_key(&self) -> (usize, bool, std::cmp::Reverse<usize>, usize, &str) {
        (
            self.first_wildcard,
            !self.prefix,
            std::cmp::Reverse(self.wildcards),
            self.pattern.len(),
            &self.pattern,
        )
    }
}

fn match_wildcard(full: &str, parts: &[&str], capabilities: u32) -> Option<Candidate> {
    if full.is_empty() {
        return None;
    }
    let first_wildcard = full.find('+').unwrap_or(0);
    let (pattern, prefix) = match full.strip_suffix('*') {
        Some(stripped) => (stripped, true),
        None => (full, false),
    };
    let segments: Vec<&str> = pattern.split('/').collect();
    if parts.len() < segments.len() || (!prefix && segments.len() != parts.len()) {
        return None;
    }
    let mut wildcards = 0;
    for (i, segment) in segments.iter().enumerate() {
        let last = i == segments.len() - 1;
        if *segment == "+" {
            wildcards += 1;
        } else if !(*segment == parts[i] || (prefix && last && parts[i].starts_with(segment))) {
            return None;
        }
    }
    Some(Candidate {
        first_wildcard,
        prefix,
        wildcards,
        pattern: pattern.to_string(),
        capabilities,
    })
}

/// Named ACL policies (`sys/policies/acl`). `root` is implicit and never stored.
#[derive(Debug)]
pub struct PolicyStore {
    policies: BTreeMap<String, Policy>,
}

impl PolicyStore {
    pub fn new() -> Self {
        let mut policies = BTreeMap::new();
        if let Ok(default) = parse(DEFAULT_POLICY) {
            policies.insert("default".to_string(), default);
        }
        Self { policies }
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    /// The stored text of a policy, as written.
    pub fn text(&self, name: &str) -> Option<String> {
        self.policies.get(name).map(|p| p.text.clone())
    }

    pub fn set(&mut self, name: &str, policy: Policy) {
        self.policies.insert(name.to_string(), policy);
    }

    pub fn remove(&mut self, name: &str) {
        self.policies.remove(name);
    }

    /// Policy names for LIST, with the implicit `root` as Vault lists it.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.policies.keys().cloned().collect();
        names.push("root".to_string());
        names.sort();
        names
    }

    /// The ACL of a token's policies; names without a policy are ignored, as in Vault.
    pub fn acl(&self, names: &[String]) -> Acl {
        Acl::new(names.iter().filter_map(|n| self.policies.get(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        let policy = parse(text).expect("policy parses");
        Acl::new([&policy])
    }

    #[test]
    fn glob_and_exact_rules() {
        let a = acl(
            r#"{"path":{"secret/data/*":{"capabilities":["read"]},"secret/data/x":{"capabilities":["update"]}}}"#,
        );
        assert!(a.allows("secret/data/a/b", Op::Read));
        assert!(!a.allows("secret/data/a", Op::Update));
        // The exact rule replaces the glob for its path; it does not add to it.
        assert!(a.allows("secret/data/x", Op::Update));
        assert!(!a.allows("secret/data/x", Op::Read));
        assert!(!a.allows("secret/metadata/a", Op::Read));
    }

    #[test]
    fn segment_wildcards_and_priority() {
        let a = acl(
            r#"{"path":{"secret/+/team/*":{"capabilities":["read"]},"secret/data/team/*":{"capabilities":["deny"]}}}"#,
        );
        assert!(a.allows("secret/metadata/team/x", Op::Read));
        // A glob whose first wildcard comes later outranks the `+` pattern.
        assert!(!a.allows("secret/data/team/x", Op::Read));
        let b = acl(r#"{"path":{"secret/+/x":{"capabilities":["read"]}}}"#);
        assert!(b.allows("secret/data/x", Op::Read));
        assert!(!b.allows("secret/data/x/y", Op::Read));
    }

    #[test]
    fn deny_wins_across_policies() {
        let allow = parse(r#"{"path":{"secret/*":{"capabilities":["read"]}}}"#).expect("parses");
        let deny = parse(r#"{"path":{"secret/*":{"capabilities":["deny"]}}}"#).expect("parses");
        let a = Acl::new([&allow, &deny]);
        assert!(!a.allows("secret/a", Op::Read));
    }

    #[test]
    fn list_matches_without_trailing_slash() {
        let a = acl(r#"{"path":{"secret/metadata/app":{"capabilities":["list"]}}}"#);
        assert!(a.allows("secret/metadata/app/", Op::List));
        assert!(!a.allows("secret/metadata/app/", Op::Read));
    }

    #[test]
    fn hcl_paths_parse_like_json_and_unknown_capabilities_are_rejected() {
        let hcl = parse("# c\npath \"secret/*\" { capabilities = [\"read\", \"list\"] }\npath \"a/+/b\" {\n  capabilities = [\"update\"]\n}\n")
            .expect("HCL path blocks parse");
        let a = Acl::new([&hcl]);
        assert!(a.allows("secret/x/y", Op::Read));
        assert!(a.allows("secret/x/", Op::List));
        assert!(!a.allows("secret/x", Op::Update));
        assert!(a.allows("a/z/b", Op::Update));
        let other = parse("length = 20").expect_err("only path blocks");
        assert!(other.contains("invalid key"), "{other}");
        let bad = parse(r#"{"path":{"a":{"capabilities":["fly"]}}}"#).expect_err("bad capability");
        assert_eq!(
            bad,
            "failed to parse policy: path \"a\": invalid capability \"fly\""
        );
    }
}
