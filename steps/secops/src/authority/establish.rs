//! What a Vault needs before any step can use it, declared in `templates/vault` and converged
//! on every run: the KV v2 engine the steps use (with its `max_versions`), the Kubernetes auth
//! method they log in with (configured to reach this cluster's API server), ACL policies
//! (`*.hcl`), Kubernetes-auth roles (`*.json`) and password policies (`*.hcl` in their own
//! directory). A fresh Vault or OpenBao has none of these: only the token auth method and no
//! `secret/` mount.
//!
//! The first run does it with the root token of the initialisation, before revoking it, and
//! first of all establishes the **authority role**: a policy generated from the declaration
//! that may read and write exactly the declared objects (not itself, not mounts), bound to
//! init-authority's own ServiceAccount. Every later run logs in with it and converges
//! without root: what is missing is created, what differs is updated, what is not declared
//! is reported and left alone.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::vault::sys::MountTable;
use crate::vault::Vault;

/// The policies Vault itself owns; never reported as extras.
const BUILT_IN_POLICIES: [&str; 2] = ["default", "root"];

/// What to establish; empty when no directories were given.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// (name, HCL text).
    pub policies: Vec<(String, String)>,
    /// (name, role fields).
    pub roles: Vec<(String, Value)>,
    /// (name, password policy HCL).
    pub password_policies: Vec<(String, String)>,
    pub auth_mount: String,
    /// Where the KV v2 engine is mounted (enabled when absent).
    pub kv_mount: String,
    /// The KV engine's `max_versions` (its `config`), when declared.
    pub kv_max_versions: Option<u32>,
    /// How Vault reaches the API server to review logins' tokens.
    pub kubernetes: KubernetesAuth,
    /// The role later runs converge with; `None` disables converging without root.
    pub authority: Option<Authority>,
}

/// `auth/<mount>/config`: the API server's address and CA. Without a CA, Vault must run in
/// the cluster and read its own service account's CA and token.
#[derive(Debug, Clone, Default)]
pub struct KubernetesAuth {
    pub host: String,
    pub ca_pem: Option<String>,
    /// The reviewer's JWT (a credential: sent to Vault only, never printed).
    pub reviewer_jwt: Option<secrecy::SecretString>,
}

/// init-authority's own Vault role: its name and the ServiceAccount it is bound to.
#[derive(Debug, Clone)]
pub struct Authority {
    pub role: String,
    pub namespace: String,
    pub service_account: String,
}

/// Where the declaration is read from (each optional).
#[derive(Debug, Clone, Default)]
pub struct Sources<'a> {
    pub policies: Option<&'a Path>,
    pub roles: Option<&'a Path>,
    pub password_policies: Option<&'a Path>,
}

/// What a run did to each declared object, and what it found that is not declared.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Objects of the kinds we manage that are not declared: reported, never touched.
    pub extras: Vec<String>,
}

impl Report {
    fn done(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .created
            .iter()
            .chain(&self.updated)
            .chain(&self.unchanged)
            .cloned()
            .collect();
        all.sort();
        all
    }
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.roles.is_empty() && self.password_policies.is_empty()
    }

    /// Reads `*.hcl` and `*.json` files, named after their file stem; checked before
    /// anything is contacted.
    pub fn load(
        from: Sources<'_>,
        auth_mount: &str,
        kv_mount: &str,
        kubernetes: KubernetesAuth,
    ) -> Result<Self> {
        let mut g = Grants {
            auth_mount: auth_mount.to_owned(),
            kv_mount: kv_mount.to_owned(),
            kubernetes,
            ..Grants::default()
        };
        if let Some(dir) = from.policies {
            for (name, text) in files(dir, "hcl", "--policies-dir", false)? {
                if !text.contains("path") {
                    return Err(Error::Usage(format!(
                        "policy file {name}.hcl in {} has no path rule",
                        dir.display()
                    )));
                }
                g.policies.push((name, text));
            }
        }
        if let Some(dir) = from.roles {
            for (name, text) in files(dir, "json", "--roles-dir", false)? {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| Error::Usage(format!("role file {name}.json is not JSON: {e}")))?;
                if !v.is_object() {
                    return Err(Error::Usage(format!(
                        "role file {name}.json must be a JSON object of role fields"
                    )));
                }
                g.roles.push((name, v));
            }
        }
        if let Some(dir) = from.password_policies {
            // An optional ConfigMap mounts as an empty directory: nothing declared.
            for (name, text) in files(dir, "hcl", "--password-policies-dir", true)? {
                if !text.contains("length") {
                    return Err(Error::Usage(format!(
                        "password policy file {name}.hcl in {} has no length",
                        dir.display()
                    )));
                }
                g.password_policies.push((name, text));
            }
        }
        Ok(g)
    }

    /// The first run, with the root token. The auth method and the authority role come
    /// first: a run stopped after them converges without root on the next run; before them
    /// only an operator token helps (OpenBao 2.5.3+ refuses unauthenticated generate-root by
    /// default; docs/runbook.md). Then the KV engine and everything declared.
    pub async fn establish(&self, root: &Vault) -> Result<Report> {
        if !self.roles.is_empty() || self.authority.is_some() {
            self.ensure_kubernetes_auth(root).await?;
        }
        if let Some(a) = &self.authority {
            root.write_policy(&a.role, &self.authority_policy()).await?;
            root.write_auth_role(&self.auth_mount, &a.role, &self.authority_role(a))
                .await?;
            tracing::info!(role = %a.role, "authority policy and role written");
        }
        self.converge(root).await
    }

    /// Every run after the first, logged in as the authority role (or with an operator token):
    /// the KV engine if it is missing, then creates what is missing, updates what differs,
    /// reports what is not declared. A refusal names the object and says what was
    /// established and what is left.
    pub async fn converge(&self, v: &Vault) -> Result<Report> {
        self.ensure_kv(v).await?;
        let mut report = Report::default();
        let objects = self.objects();
        for (i, o) in objects.iter().enumerate() {
            let outcome = self.converge_one(v, o).await.map_err(|e| {
                let left: Vec<&str> = objects[i..].iter().map(|o| o.label.as_str()).collect();
                match e {
                    Error::Refused(reason) | Error::Precondition { reason, .. } => {
                        Error::precondition(
                            o.label.clone(),
                            format!("{reason} (from {})", o.source),
                            format!(
                                "fix {} and run again; established so far: {:?}; left: {:?}",
                                o.source,
                                report.done(),
                                left
                            ),
                        )
                    }
                    other => other,
                }
            })?;
            match outcome {
                Outcome::Created => report.created.push(o.label.clone()),
                Outcome::Updated => report.updated.push(o.label.clone()),
                Outcome::Unchanged => report.unchanged.push(o.label.clone()),
            }
        }
        report.extras = self.extras(v).await?;
        for e in &report.extras {
            tracing::warn!(object = %e, "not declared in templates/vault: reported, left alone");
        }
        Ok(report)
    }

    /// The declared objects in the order they are converged: password policies (roles'
    /// generators may name them), ACL policies (roles name them), roles, the KV config.
    fn objects(&self) -> Vec<Object> {
        let mut out = Vec::new();
        for (name, hcl) in &self.password_policies {
            out.push(Object {
                label: format!("password policy {name}"),
                source: format!("{name}.hcl (--password-policies-dir)"),
                path: format!("sys/policies/password/{name}"),
                body: json!({ "policy": hcl }),
                compare: Compare::Text("policy"),
            });
        }
        for (name, hcl) in &self.policies {
            out.push(Object {
                label: format!("ACL policy {name}"),
                source: format!("{name}.hcl (--policies-dir)"),
                path: format!("sys/policies/acl/{name}"),
                body: json!({ "policy": hcl }),
                compare: Compare::Text("policy"),
            });
        }
        for (name, role) in &self.roles {
            out.push(Object {
                label: format!("auth role {}/{name}", self.auth_mount),
                source: format!("{name}.json (--roles-dir)"),
                path: format!("auth/{}/role/{name}", self.auth_mount),
                body: role.clone(),
                compare: Compare::Fields,
            });
        }
        if let Some(n) = self.kv_max_versions {
            out.push(Object {
                label: format!("KV engine {}/ config", self.kv_mount),
                source: "--kv-max-versions".into(),
                path: format!("{}/config", self.kv_mount),
                body: json!({ "max_versions": n }),
                compare: Compare::Fields,
            });
        }
        out
    }

    async fn converge_one(&self, v: &Vault, o: &Object) -> Result<Outcome> {
        let current = v.read_config(&o.path).await?;
        let outcome = match &current {
            None => Outcome::Created,
            Some(cur) if o.compare.same(&o.body, cur) => return Ok(Outcome::Unchanged),
            Some(_) => Outcome::Updated,
        };
        v.post_json(&o.path, &o.body, &o.label).await?;
        tracing::info!(object = %o.label, outcome = ?outcome, "converged");
        Ok(outcome)
    }

    /// Policies and roles in Vault that nobody declared (Vault's own and the authority's
    /// aside).
    async fn extras(&self, v: &Vault) -> Result<Vec<String>> {
        let mut ours: BTreeSet<String> = BUILT_IN_POLICIES.iter().map(|s| s.to_string()).collect();
        ours.extend(self.authority.iter().map(|a| a.role.clone()));
        let mut extras = Vec::new();
        let declared = |names: &[(String, String)]| -> BTreeSet<String> {
            names.iter().map(|(n, _)| n.clone()).collect()
        };
        let acl = declared(&self.policies);
        for n in v.list_names("sys/policies/acl").await? {
            if !acl.contains(&n) && !ours.contains(&n) {
                extras.push(format!("ACL policy {n}"));
            }
        }
        if !self.roles.is_empty() {
            let roles: BTreeSet<String> = self.roles.iter().map(|(n, _)| n.clone()).collect();
            for n in v
                .list_names(&format!("auth/{}/role", self.auth_mount))
                .await?
            {
                if !roles.contains(&n) && !ours.contains(&n) {
                    extras.push(format!("auth role {}/{n}", self.auth_mount));
                }
            }
        }
        if !self.password_policies.is_empty() {
            let pw = declared(&self.password_policies);
            for n in v.list_names("sys/policies/password").await? {
                if !pw.contains(&n) {
                    extras.push(format!("password policy {n}"));
                }
            }
        }
        Ok(extras)
    }

    /// Exactly the declared objects, read and written (created or updated), and the lists to
    /// find extras; never this policy itself, never a mount, never a delete.
    pub fn authority_policy(&self) -> String {
        let mut p = String::from(
            "# Generated by init-authority from templates/vault: the declared objects only.\n",
        );
        let mut rule = |path: &str, caps: &str| {
            p.push_str(&format!(
                "path \"{path}\" {{\n  capabilities = [{caps}]\n}}\n"
            ));
        };
        let rw = "\"create\", \"read\", \"update\"";
        // The KV engine the steps use: seen, and enabled if missing (not tuned, not removed).
        rule("sys/mounts", "\"read\"");
        rule(
            &format!("sys/mounts/{}", self.kv_mount),
            "\"create\", \"update\"",
        );
        rule("sys/policies/acl", "\"list\"");
        for (n, _) in &self.policies {
            rule(&format!("sys/policies/acl/{n}"), rw);
        }
        rule(&format!("auth/{}/role", self.auth_mount), "\"list\"");
        for (n, _) in &self.roles {
            rule(&format!("auth/{}/role/{n}", self.auth_mount), rw);
        }
        if !self.password_policies.is_empty() {
            rule("sys/policies/password", "\"list\"");
        }
        for (n, _) in &self.password_policies {
            rule(&format!("sys/policies/password/{n}"), rw);
        }
        if self.kv_max_versions.is_some() {
            rule(&format!("{}/config", self.kv_mount), rw);
        }
        // The verification: the KV mount answers.
        rule(&format!("{}/config", self.kv_mount), "\"read\"");
        p
    }

    fn authority_role(&self, a: &Authority) -> Value {
        json!({
            "bound_service_account_names": [a.service_account],
            "bound_service_account_namespaces": [a.namespace],
            "token_policies": [a.role],
            "token_ttl": 300,
            "token_max_ttl": 900,
        })
    }

    /// KV v2 at `kv_mount`, unless an engine is mounted there already; a KV v1 mount (or
    /// another engine) is a refusal, since the steps would then write what nobody reads.
    async fn ensure_kv(&self, vault: &Vault) -> Result<()> {
        let mounts = vault.mounted(MountTable::Secrets).await?;
        match mounts.get(&format!("{}/", self.kv_mount)) {
            None => {
                vault
                    .enable(
                        MountTable::Secrets,
                        &self.kv_mount,
                        &json!({"type": "kv", "options": {"version": "2"}}),
                    )
                    .await?;
                tracing::info!(mount = %self.kv_mount, "KV v2 secrets engine enabled");
                Ok(())
            }
            Some(m) if m.kind == "kv" && m.version() == Some("2") => Ok(()),
            Some(m) => Err(Error::Refused(format!(
                "Vault mount {}/: it is a {} engine{}, not KV version 2; \
                 the steps need KV v2 there: pass --kv-mount with a free or KV v2 path",
                self.kv_mount,
                m.kind,
                m.version()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default(),
            ))),
        }
    }

    /// The Kubernetes auth method at `auth_mount`, enabled if absent, pointed at this cluster.
    async fn ensure_kubernetes_auth(&self, vault: &Vault) -> Result<()> {
        let methods = vault.mounted(MountTable::Auth).await?;
        match methods.get(&format!("{}/", self.auth_mount)) {
            None => {
                vault
                    .enable(
                        MountTable::Auth,
                        &self.auth_mount,
                        &json!({"type": "kubernetes"}),
                    )
                    .await?;
                tracing::info!(mount = %self.auth_mount, "Kubernetes auth method enabled");
            }
            Some(m) if m.kind == "kubernetes" => {}
            Some(m) => {
                return Err(Error::Refused(format!(
                    "Vault auth mount {}/: it is a {} auth method, not kubernetes; \
                     pass --vault-auth-mount with a free or Kubernetes auth path",
                    self.auth_mount, m.kind
                )))
            }
        }
        let mut config = json!({ "kubernetes_host": self.kubernetes.host });
        if let Some(ca) = &self.kubernetes.ca_pem {
            // Vault outside the cluster: not its own pod's CA and token, these.
            config["kubernetes_ca_cert"] = json!(ca);
            config["disable_local_ca_jwt"] = json!(true);
        }
        if let Some(jwt) = &self.kubernetes.reviewer_jwt {
            use secrecy::ExposeSecret as _;
            config["token_reviewer_jwt"] = json!(jwt.expose_secret());
        }
        let path = format!("auth/{}/config", self.auth_mount);
        vault
            .post_json(&path, &config, &format!("Vault {path}"))
            .await?;
        tracing::info!(mount = %self.auth_mount, host = %self.kubernetes.host, "Kubernetes auth configured");
        Ok(())
    }

    pub fn names(&self) -> Value {
        json!({
            "policies": self.policies.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "roles": self.roles.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "passwordPolicies": self.password_policies.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "authorityRole": self.authority.as_ref().map(|a| &a.role),
        })
    }
}

/// One declared object: where it lives in Vault and what it should hold.
struct Object {
    label: String,
    source: String,
    path: String,
    body: Value,
    compare: Compare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// How a declared body is compared with what Vault answers.
#[derive(Debug, Clone, Copy)]
enum Compare {
    /// One text field, compared without trailing whitespace (policy documents).
    Text(&'static str),
    /// Every declared field equal in Vault's answer (which holds defaults for the rest).
    Fields,
}

impl Compare {
    fn same(self, declared: &Value, current: &Value) -> bool {
        match self {
            Compare::Text(f) => {
                let t = |v: &Value| v[f].as_str().map(|s| s.trim_end().to_owned());
                t(declared).is_some() && t(declared) == t(current)
            }
            Compare::Fields => declared.as_object().is_some_and(|d| {
                d.iter()
                    .all(|(k, v)| current.get(k).is_some_and(|c| same_value(v, c)))
            }),
        }
    }
}

/// Vault answers lists for fields set as one string, and numbers for durations given as
/// numbers; anything else must be equal as JSON.
fn same_value(declared: &Value, current: &Value) -> bool {
    match (declared, current) {
        (Value::String(s), Value::Array(a)) => a.len() == 1 && a[0] == *s,
        _ => declared == current,
    }
}

fn files(dir: &Path, ext: &str, flag: &str, may_be_empty: bool) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Usage(format!("cannot read {flag} {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some(ext) {
            continue;
        }
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if !crate::names::is_dns_label(&name) {
            return Err(Error::Usage(format!(
                "{} is not named like a Vault policy or role (lowercase letters, digits, '-')",
                p.display()
            )));
        }
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", p.display())))?;
        out.push((name, text));
    }
    out.sort();
    if out.is_empty() && !may_be_empty {
        return Err(Error::Usage(format!(
            "{flag} {} holds no *.{ext} files",
            dir.display()
        )));
    }
    Ok(out)
}
