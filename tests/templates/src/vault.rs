//! Vault's side of the templates: each role a step logs in with has its role file and its
//! policy file, binds the ServiceAccount the step's pod runs as, and grants only policies that
//! exist; every role and policy file is used. Role files are checked for the fields of Vault's
//! Kubernetes auth role; policy files are read with a small line parser that understands the
//! `path "..." { capabilities = [...] }` form the templates use and refuses anything else.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::load::Templates;
use crate::xref::{Index, RoleUse};
use crate::{path, Problem};

/// Parameters of `auth/kubernetes/role/:name` (Vault docs, Kubernetes auth API).
const ROLE_FIELDS: [&str; 16] = [
    "bound_service_account_names",
    "bound_service_account_namespaces",
    "bound_service_account_namespace_selector",
    "audience",
    "alias_name_source",
    "token_ttl",
    "token_max_ttl",
    "token_policies",
    "policies",
    "token_bound_cidrs",
    "token_explicit_max_ttl",
    "token_no_default_policy",
    "token_num_uses",
    "token_period",
    "token_type",
    "ttl",
];

const CAPABILITIES: [&str; 10] = [
    "create",
    "read",
    "update",
    "patch",
    "delete",
    "list",
    "sudo",
    "deny",
    "subscribe",
    "recover",
];

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        // Vault also accepts a comma-separated string.
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// An identity allowed by a role's bound names and namespaces.
fn binds(role: &Value, sa: &str, ns: Option<&str>) -> bool {
    let names = strings(&role["bound_service_account_names"]);
    let namespaces = strings(&role["bound_service_account_namespaces"]);
    (names.contains(&"*") || names.contains(&sa))
        && ns.is_none_or(|ns| namespaces.contains(&"*") || namespaces.contains(&ns))
}

pub fn check(t: &Templates, idx: &Index, uses: &[RoleUse], out: &mut Vec<Problem>) {
    let mut used_roles = BTreeSet::new();
    let mut store_identities: Vec<(String, String, String)> = Vec::new();

    // Steps that log in with a role.
    for u in uses {
        used_roles.insert(u.role.clone());
        let at = |m: String| Problem::new(&u.file, Some(u.doc), &u.path, m);
        if !t.vault_policies.contains_key(&u.role) {
            out.push(at(format!(
                "no templates/vault/policies/{}.hcl for Vault role {}",
                u.role, u.role
            )));
        }
        let Some(role) = t.vault_roles.get(&u.role) else {
            out.push(at(format!(
                "no templates/vault/roles/{}.json for Vault role {}",
                u.role, u.role
            )));
            continue;
        };
        match &u.service_account {
            None => out.push(at(format!(
                "the pod logging in as Vault role {} has no serviceAccountName",
                u.role
            ))),
            Some(sa) if !binds(&role.content, sa, u.namespace.as_deref()) => out.push(at(format!(
                "Vault role {} does not bind ServiceAccount {sa}{} that this pod runs as",
                u.role,
                u.namespace
                    .as_deref()
                    .map_or(String::new(), |n| format!(" in namespace {n}")),
            ))),
            Some(_) => {}
        }
        // A role with an `audience` takes only tokens for it: the pod must present one.
        if let Some(aud) = role.content["audience"].as_str() {
            if u.token_audience.as_deref() != Some(aud) {
                out.push(at(format!(
                    "Vault role {} accepts tokens for the audience {aud:?} only; this step \
                     presents {} (mount a projected serviceAccountToken with that audience and \
                     point SECOPS_SERVICE_ACCOUNT_TOKEN_FILE at it)",
                    u.role,
                    u.token_audience
                        .as_deref()
                        .map_or("the pod's default token".to_owned(), |a| format!(
                            "a token for {a:?}"
                        )),
                )));
            }
        }
    }

    // SecretStores that log in with a role (ESO's read path).
    for d in t.docs.iter().filter(|d| d.kind().ends_with("SecretStore")) {
        let k8s = &d.value["spec"]["provider"]["vault"]["auth"]["kubernetes"];
        let Some(role) = k8s["role"].as_str() else {
            continue;
        };
        used_roles.insert(role.to_owned());
        if !t.vault_roles.contains_key(role) {
            out.push(Problem::at(
                d,
                "spec.provider.vault.auth.kubernetes.role",
                format!("no templates/vault/roles/{role}.json"),
            ));
        }
        let sa = &k8s["serviceAccountRef"];
        if let Some(name) = sa["name"].as_str() {
            let ns = sa["namespace"].as_str().or(idx.namespace(d)).unwrap_or("");
            store_identities.push((role.to_owned(), name.to_owned(), ns.to_owned()));
            if let Some(r) = t.vault_roles.get(role) {
                if !binds(&r.content, name, Some(ns)) {
                    out.push(Problem::at(
                        d,
                        "spec.provider.vault.auth.kubernetes.serviceAccountRef",
                        format!("Vault role {role} does not bind ServiceAccount {ns}/{name}"),
                    ));
                }
            }
        }
    }

    // Role files.
    let mut used_policies = BTreeSet::new();
    for (name, role) in &t.vault_roles {
        let problem = |p: &str, m: String| Problem::new(&role.file, None, p, m);
        let Some(obj) = role.content.as_object() else {
            out.push(problem("", "a role file is a JSON object".into()));
            continue;
        };
        for k in obj.keys().filter(|k| !ROLE_FIELDS.contains(&k.as_str())) {
            out.push(problem(
                k,
                format!("{k} is not a parameter of a Vault Kubernetes auth role"),
            ));
        }
        if !used_roles.contains(name) {
            out.push(problem(
                "",
                format!("Vault role {name} is used by no step and no SecretStore"),
            ));
        }
        for field in ["token_policies", "policies"] {
            for (i, p) in strings(&role.content[field]).into_iter().enumerate() {
                used_policies.insert(p.to_owned());
                if !t.vault_policies.contains_key(p) && p != "default" {
                    out.push(problem(
                        &path::index(field, i),
                        format!("no templates/vault/policies/{p}.hcl"),
                    ));
                }
            }
        }
        let names = strings(&role.content["bound_service_account_names"]);
        let namespaces = strings(&role.content["bound_service_account_namespaces"]);
        if names.is_empty() || namespaces.is_empty() {
            out.push(problem(
                "",
                "bound_service_account_names and bound_service_account_namespaces are required"
                    .into(),
            ));
        }
        for (i, sa) in names.iter().enumerate() {
            if *sa == "*" {
                out.push(problem(
                    &path::index("bound_service_account_names", i),
                    "\"*\" binds every ServiceAccount".into(),
                ));
                continue;
            }
            let defined = namespaces
                .iter()
                .any(|ns| idx.service_account(Some(ns), sa));
            // ESO's own ServiceAccount is installed by ESO; the store that names it vouches.
            let store = store_identities
                .iter()
                .any(|(r, n, ns)| r == name && n == sa && namespaces.contains(&ns.as_str()));
            if !defined && !store {
                out.push(problem(
                    &path::index("bound_service_account_names", i),
                    format!("no ServiceAccount {sa} in namespace(s) {} in templates/ (and no SecretStore logs in as it)", namespaces.join(", ")),
                ));
            }
        }
    }

    // Policy files.
    for (name, policy) in &t.vault_policies {
        for (line, msg) in parse_policy(&policy.content) {
            out.push(Problem::new(
                &policy.file,
                None,
                format!("line {line}"),
                msg,
            ));
        }
        if !used_policies.contains(name) {
            out.push(Problem::new(
                &policy.file,
                None,
                "",
                format!("policy {name} is granted by no role"),
            ));
        }
    }
}

/// Problems of a policy, by line number (1-based).
pub fn parse_policy(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_path = false;
    let mut saw_capabilities = false;
    let mut paths = 0;
    for (n, raw) in text.lines().enumerate() {
        let n = n + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if !in_path {
            let quoted = line
                .strip_prefix("path")
                .map(str::trim_start)
                .and_then(|r| r.strip_suffix('{'))
                .map(str::trim_end)
                .and_then(|r| r.strip_prefix('"'))
                .and_then(|r| r.strip_suffix('"'));
            match quoted {
                Some(p) if !p.is_empty() && !p.contains('"') => {
                    in_path = true;
                    saw_capabilities = false;
                    paths += 1;
                }
                _ => out.push((n, format!("expected `path \"...\" {{`, found {line:?}"))),
            }
            continue;
        }
        if line == "}" {
            if !saw_capabilities {
                out.push((n, "a path block without capabilities grants nothing".into()));
            }
            in_path = false;
            continue;
        }
        // `allowed_parameters = { "name" = [] ... }` on one line: quoted names, each with a
        // list of allowed values (empty: any value).
        if let Some(rest) = line.strip_prefix("allowed_parameters") {
            let body = rest
                .trim_start()
                .strip_prefix('=')
                .map(str::trim)
                .and_then(|r| r.strip_prefix('{'))
                .and_then(|r| r.strip_suffix('}'));
            let ok = body.is_some_and(|b| {
                b.split(']')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .all(|e| {
                        let e = e.trim_start_matches(',').trim();
                        e.split_once('=').is_some_and(|(k, v)| {
                            let k = k.trim();
                            k.len() > 2
                                && k.starts_with('"')
                                && k.ends_with('"')
                                && v.trim().starts_with('[')
                        })
                    })
            });
            if !ok {
                out.push((
                    n,
                    format!(
                        "expected `allowed_parameters = {{ \"name\" = [...] }}`, found {line:?}"
                    ),
                ));
            }
            continue;
        }
        let list = line
            .strip_prefix("capabilities")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('='))
            .map(str::trim)
            .and_then(|r| r.strip_prefix('['))
            .and_then(|r| r.strip_suffix(']'));
        let Some(list) = list else {
            out.push((
                n,
                format!("expected `capabilities = [...]` or `}}`, found {line:?}"),
            ));
            continue;
        };
        saw_capabilities = true;
        for cap in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let c = cap.trim_matches('"');
            let quoted = cap.len() >= 2 && cap.starts_with('"') && cap.ends_with('"');
            if !(quoted && CAPABILITIES.contains(&c)) {
                out.push((
                    n,
                    format!(
                        "{cap} is not a Vault capability ({})",
                        CAPABILITIES.join(", ")
                    ),
                ));
            }
        }
    }
    if in_path {
        out.push((text.lines().count(), "unterminated path block".into()));
    }
    if paths == 0 {
        out.push((1, "the policy grants no path".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_policy_form_the_templates_use() {
        let ok = "# c\npath \"secret/data/*\" {\n  capabilities = [\"create\", \"read\"]\n}\n";
        assert!(parse_policy(ok).is_empty());
        let params = "path \"s/metadata/*\" {\n  capabilities = [\"patch\"]\n  allowed_parameters = { \"custom_metadata\" = [] }\n}\n";
        assert!(
            parse_policy(params).is_empty(),
            "{:?}",
            parse_policy(params)
        );
        let bad_params = "path \"s/*\" {\n  capabilities = [\"patch\"]\n  allowed_parameters = custom_metadata\n}\n";
        assert_eq!(parse_policy(bad_params).len(), 1);
        let bad = "path \"secret/data/*\" {\n  capabilities = [\"write\"]\n  policy = \"read\"\n";
        let found: Vec<usize> = parse_policy(bad).into_iter().map(|(l, _)| l).collect();
        assert_eq!(found, [2, 3, 3]);
    }
}
