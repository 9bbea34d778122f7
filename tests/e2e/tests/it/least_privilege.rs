//! Least privilege by evidence: every shipped workflow runs with the shipped RBAC and Vault
//! policies while the test servers record each request as an authorization decision. A step
//! that uses anything its Role or policy does not grant fails; a grant no step used fails too.

use std::collections::{BTreeMap, BTreeSet};

use e2e::argo::{load_yaml, templates_dir, workflow_file, Phase, Runner};
use e2e::{Env, SeedSecret};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;

const NS: &str = "secops";

/// (verb, group, resource) a ServiceAccount may use in target namespaces, from the shipped
/// ClusterRoles bound by targets/*/rolebindings.yaml.
fn rbac_grants() -> BTreeMap<String, BTreeSet<(String, String, String)>> {
    let dir = templates_dir();
    let roles = load_yaml(&dir.join("rbac/step-roles.yaml")).unwrap();
    let mut bindings = load_yaml(&dir.join("targets/apps/rolebindings.yaml")).unwrap();
    // audit-authority's ClusterRole has its own file; its optional cluster-wide binding is
    // the audit-cluster-wide component's (the audit below runs with it).
    let mut roles = roles;
    roles.extend(load_yaml(&dir.join("rbac/audit-authority.yaml")).unwrap());
    bindings.extend(load_yaml(&dir.join("audit-cluster-wide/cluster-role-binding.yaml")).unwrap());
    let mut out: BTreeMap<String, BTreeSet<_>> = BTreeMap::new();
    for b in &bindings {
        let role = b["roleRef"]["name"].as_str().unwrap();
        let rules = roles
            .iter()
            .find(|r| r["metadata"]["name"] == role)
            .unwrap_or_else(|| panic!("ClusterRole {role}"))["rules"]
            .as_array()
            .unwrap()
            .clone();
        for s in b["subjects"].as_array().unwrap() {
            let sa = s["name"].as_str().unwrap().to_owned();
            for rule in &rules {
                for g in rule["apiGroups"].as_array().unwrap() {
                    for r in rule["resources"].as_array().unwrap() {
                        for v in rule["verbs"].as_array().unwrap() {
                            out.entry(sa.clone()).or_default().insert((
                                v.as_str().unwrap().to_owned(),
                                g.as_str().unwrap().to_owned(),
                                r.as_str().unwrap().to_owned(),
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}

/// (path pattern, capability) per shipped Vault policy.
fn vault_grants() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(templates_dir().join("vault/policies")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        // The shipped policies are `path "P" { capabilities = [..] }` blocks, one per line.
        let mut set = BTreeSet::new();
        let mut path = None;
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("path \"") {
                path = Some(rest.split('"').next().unwrap().to_owned());
            } else if let Some(rest) = l.strip_prefix("capabilities") {
                let list = rest.split(['[', ']']).nth(1).expect("capabilities list");
                for c in list.split(',').map(|c| c.trim().trim_matches('"')) {
                    if !c.is_empty() {
                        set.insert((
                            path.clone().expect("path before capabilities"),
                            c.to_owned(),
                        ));
                    }
                }
            }
        }
        assert!(!set.is_empty(), "{} grants nothing", p.display());
        out.insert(name, set);
    }
    out
}

/// Vault's glob rules as the policies use them: a trailing `*` prefix and `+` for one segment.
fn matches(pattern: &str, path: &str) -> bool {
    fn go(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (Some(&"+"), Some(_)) => go(&p[1..], &s[1..]),
            (Some(last), _) if p.len() == 1 && last.ends_with('*') => {
                let prefix = &last[..last.len() - 1];
                s.first().is_some_and(|x| x.starts_with(prefix))
                    || (prefix.is_empty() && !s.is_empty())
            }
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            (None, None) => true,
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    go(&p, &s)
}

#[test]
fn the_glob_matcher_follows_vault() {
    assert!(matches("secret/data/*", "secret/data/apps/db"));
    assert!(matches(
        "secret/data/internal/*",
        "secret/data/internal/ops/x"
    ));
    assert!(!matches("secret/data/internal/*", "secret/data/apps/x"));
    assert!(matches(
        "sys/policies/password/+/generate",
        "sys/policies/password/p/generate"
    ));
    assert!(!matches(
        "sys/policies/password/+/generate",
        "sys/policies/password/a/b/generate"
    ));
}

fn external_secret(name: &str, key: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
            "target": {"name": name},
            "data": [{"secretKey": "password", "remoteRef": {"key": key, "property": "password"}}],
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_uses_exactly_what_its_role_and_policy_grant() {
    let env = Env::start().await;
    let (st, body) = env
        .vault_root(
            "PUT",
            "sys/policies/password/strong",
            Some(json!({"policy": "length = 20\nrule \"charset\" {\n  charset = \"abcdefghijklmnop0123456789\"\n}\n"})),
        )
        .await;
    assert!(st < 300, "{st} {body}");
    for i in 0..3 {
        env.seed(SeedSecret::bootstrap("apps", &format!("b{i}")).kv("password", "pw"))
            .await;
    }
    env.seed(
        SeedSecret::bootstrap("apps", "op")
            .unlabeled()
            .label("secops.io/class", "internal")
            .kv("k", "v"),
    )
    .await;
    let ar = ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    };
    Api::<DynamicObject>::namespaced_with(env.client.clone(), "apps", &ar)
        .create(&PostParams::default(), &external_secret("db", "apps/b1"))
        .await
        .unwrap();
    // A plain Secret: audit-authority compares its value with Vault's (data read).
    env.seed(
        SeedSecret::bootstrap("apps", "plain")
            .unlabeled()
            .kv("k", "not-a-copy-of-anything"),
    )
    .await;
    let runner = Runner::new(&env);
    let url = env.vault.url();
    let url = url.as_str();
    // Every workflow, exercising every grant: delete mode (secrets delete), a batch, a
    // rotation with revocation by destroy and by delete, a policy generator, an ESO refresh,
    // and a push.
    for (file, args) in [
        (
            "secret-handover.yaml",
            vec![
                ("namespaces", "apps"),
                ("secret-namespace", "apps"),
                ("secret-name", "b0"),
                ("consume-mode", "delete"),
            ],
        ),
        (
            "secret-handover-batch.yaml",
            vec![("namespaces", "apps"), ("consume-mode", "delete")],
        ),
        (
            "secret-rotation.yaml",
            vec![
                ("paths", r#"["apps/b1"]"#),
                ("keys", "password=policy:strong"),
                ("rotation-id", "r1"),
                ("keep-versions", "1"),
                ("grace", "0s"),
                ("revoke", "destroy"),
                ("refresh-namespaces", "apps"),
            ],
        ),
        (
            "secret-rotation.yaml",
            vec![
                ("paths", r#"["apps/b1"]"#),
                ("keys", "password=uuid"),
                ("rotation-id", "r2"),
                ("keep-versions", "1"),
                ("grace", "0s"),
                ("revoke", "delete"),
                ("refresh-namespaces", "apps"),
            ],
        ),
        (
            "push-internal-secrets.yaml",
            vec![("namespaces", "apps"), ("path-prefix", "internal")],
        ),
        // Read-only; finds the ExternalSecret-less copies this test leaves (exit 3 is fine).
        (
            "authority-audit.yaml",
            vec![
                ("namespaces", "apps"),
                ("fail-on-violations", "false"),
                ("cluster-wide", "true"),
            ],
        ),
    ] {
        let mut all = vec![("vault-addr", url)];
        all.extend(args);
        let run = runner.submit(workflow_file(file), &all).await.unwrap();
        run.assert_phase(Phase::Succeeded);
    }
    // Delete mode deletes without patching first; the other modes patch. One Secret by the
    // single-Secret workflow, the others by a batch.
    for name in ["i0", "i1", "i2"] {
        env.seed(SeedSecret::bootstrap("apps", name).kv("password", "pw"))
            .await;
    }
    for (file, args) in [
        (
            "secret-handover.yaml",
            vec![
                ("namespaces", "apps"),
                ("secret-namespace", "apps"),
                ("secret-name", "i0"),
                ("consume-mode", "ignore"),
            ],
        ),
        (
            "secret-handover-batch.yaml",
            vec![("namespaces", "apps"), ("consume-mode", "inert")],
        ),
    ] {
        let mut all = vec![("vault-addr", url)];
        all.extend(args);
        let run = runner.submit(workflow_file(file), &all).await.unwrap();
        run.assert_phase(Phase::Succeeded);
    }
    // A Secret whose path Vault already holds: write-vault reads to judge, and refuses.
    env.vault_root(
        "POST",
        "secret/data/apps/taken",
        Some(json!({"data": {"password": "vault's"}})),
    )
    .await;
    env.seed(SeedSecret::bootstrap("apps", "taken").kv("password", "git's"))
        .await;
    let run = runner
        .submit(
            workflow_file("secret-handover.yaml"),
            &[
                ("vault-addr", url),
                ("namespaces", "apps"),
                ("secret-namespace", "apps"),
                ("secret-name", "taken"),
            ],
        )
        .await
        .unwrap();
    run.assert_phase(Phase::Failed);
    assert_eq!(run.pod("write-vault").exit_code(), Some(3));

    // The operator changes its Secret: push-secret updates Vault.
    let mut op = env.secret("apps", "op").await.unwrap();
    op.data
        .as_mut()
        .unwrap()
        .insert("k".into(), k8s_openapi::ByteString(b"v2".to_vec()));
    env.secrets("apps")
        .replace("op", &Default::default(), &op)
        .await
        .unwrap();
    runner
        .submit(
            workflow_file("push-internal-secrets.yaml"),
            &[("vault-addr", url), ("namespaces", "apps")],
        )
        .await
        .unwrap()
        .assert_phase(Phase::Succeeded);
    assert_eq!(env.vault_versions("internal/apps/op").await, 2);

    // Kubernetes: what each ServiceAccount did, against what it was granted.
    let grants = rbac_grants();
    let mut used: BTreeMap<String, BTreeSet<(String, String, String)>> = BTreeMap::new();
    for a in env.kube.accesses() {
        let Some(sa) = a.user.strip_prefix(&format!("system:serviceaccount:{NS}:")) else {
            continue;
        };
        let key = (a.verb.clone(), a.group.clone(), a.resource.clone());
        assert!(
            grants.get(sa).is_some_and(|g| g.contains(&key)),
            "{sa} used {key:?} in {} without a grant",
            a.namespace
        );
        // Only audit-authority lists across namespaces (its ClusterRoleBinding).
        let cluster_wide = sa == "secops-audit-authority" && a.namespace.is_empty();
        assert!(
            a.namespace == "apps" || cluster_wide,
            "{sa} left the target namespace ({})",
            a.namespace
        );
        used.entry(sa.to_owned()).or_default().insert(key);
    }
    for (sa, granted) in &grants {
        let unused: Vec<_> = granted
            .difference(used.get(sa).unwrap_or(&BTreeSet::new()))
            .cloned()
            .collect();
        assert!(
            unused.is_empty(),
            "{sa} is granted {unused:?} that no step used"
        );
    }
    // Vault: each policy's grants against the ACL decisions OpenBao's audit device recorded
    // for tokens holding it (logins and a token's own lookups need no policy).
    let policies = vault_grants();
    let mut used: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for a in env.vault.accesses() {
        if a.policies.is_empty() || a.path.starts_with("auth/") {
            continue;
        }
        // The one denial by design: write-vault's create-only write meeting an existing
        // secret. Its policy lacks `update`, so Vault itself refuses the overwrite.
        let create_only_probe = a.operation == "update"
            && a.path.starts_with("secret/data/")
            && a.policies
                .iter()
                .any(|p| p == "secops-write-vault" || p == "secops-handover-batch");
        assert!(
            a.allowed || create_only_probe,
            "{:?} was denied {} on {}",
            a.policies,
            a.operation,
            a.path
        );
        if !a.allowed {
            continue;
        }
        for p in &a.policies {
            if let Some(rules) = policies.get(p) {
                for (pattern, cap) in rules {
                    if *cap == a.operation && matches(pattern, &a.path) {
                        used.entry(p.clone())
                            .or_default()
                            .insert((pattern.clone(), cap.clone()));
                    }
                }
            }
        }
    }
    for (name, rules) in &policies {
        if name == "secops-eso-reader" {
            continue; // ESO's, exercised by ESO, not by our steps.
        }
        if name == "secops-snapshot-authority" {
            // Raft snapshots need raft storage, not this dev server: the cluster-loss drill
            // checks its use on raft OpenBao's audit log.
            continue;
        }
        let unused: Vec<_> = rules
            .difference(used.get(name).unwrap_or(&BTreeSet::new()))
            .cloned()
            .collect();
        assert!(
            unused.is_empty(),
            "Vault policy {name} grants {unused:?} that no step used"
        );
    }
}

// Narrower policies: OpenBao's ACL engine, asked by each step before its first write
// (sys/capabilities-self), makes the step refuse with exit 3 and nothing written.

/// What a refusal must leave as it was, and where the request logs stood.
struct Untouched {
    vault: Vec<(String, VaultState)>,
    secrets: Vec<(String, String, Option<SecretState>)>,
    vault_log: usize,
    kube_log: usize,
    audit_log: usize,
    /// Events in `apps` so far.
    events: usize,
}

/// Versions, custom_metadata and latest data of a Vault path.
type VaultState = (u64, BTreeMap<String, String>, Option<serde_json::Value>);

/// resourceVersion, labels, annotations and data of a live Secret.
type SecretState = (
    Option<String>,
    Option<BTreeMap<String, String>>,
    Option<BTreeMap<String, String>>,
    BTreeMap<String, Vec<u8>>,
);

async fn secret_state(env: &Env, ns: &str, name: &str) -> Option<SecretState> {
    env.secret(ns, name).await.map(|s| {
        (
            s.metadata.resource_version.clone(),
            s.metadata.labels.clone(),
            s.metadata.annotations.clone(),
            e2e::secret_bytes(&s),
        )
    })
}

async fn vault_state(env: &Env, path: &str) -> VaultState {
    (
        env.vault_versions(path).await,
        env.vault_custom_metadata(path).await,
        env.vault_kv2(path).await.map(|(data, _)| data),
    )
}

async fn untouched(env: &Env, paths: &[&str], secrets: &[(&str, &str)]) -> Untouched {
    let mut vault = Vec::new();
    for p in paths {
        vault.push((p.to_string(), vault_state(env, p).await));
    }
    let mut live = Vec::new();
    for (ns, name) in secrets {
        live.push((
            ns.to_string(),
            name.to_string(),
            secret_state(env, ns, name).await,
        ));
    }
    Untouched {
        vault,
        secrets: live,
        vault_log: env.vault.requests().len(),
        kube_log: env.kube.requests().len(),
        audit_log: env.vault.accesses().len(),
        events: env.events("apps").await.len(),
    }
}

/// Replaces a shipped policy in this test's OpenBao; the step's role still names it.
async fn narrow(env: &Env, policy: &str, hcl: &str) {
    let (st, body) = env
        .vault_root(
            "PUT",
            &format!("sys/policies/acl/{policy}"),
            Some(json!({ "policy": hcl })),
        )
        .await;
    assert!(st < 300, "policy {policy}: {st} {body}");
}

/// `step` refused with exit 3, a message `{object}: {reason}; {next}` naming each missing
/// `(capability, path)` and the policy to fix, and wrote nothing: both authorities' state as
/// before, no mutating request through either proxy (logins, the capability check and the
/// login token's revocation change no secret; a Warning Event is the refusal's record), and
/// no write by a step's token in OpenBao's own audit log. `checked`: the refusal came from
/// the capability check (else from Vault denying a read).
#[track_caller]
fn assert_refused(
    run: &e2e::StepRun,
    missing: &[(&str, &str)],
    policy: &str,
    checked: bool,
) -> String {
    run.assert_code(3);
    let (cap, path) = missing[0];
    let needle = format!("`{cap}` on {path}");
    let message = run
        .stderr
        .lines()
        .filter_map(|l| l.split_once(": error: ").map(|(_, m)| m))
        .find(|m| m.contains(&needle))
        .unwrap_or_else(|| panic!("no refusal naming {needle}; stderr:\n{}", run.stderr))
        .to_owned();
    let (object, reason, next) = crate::refusals::refusal_parts(&message);
    assert!(object.starts_with("Vault path "), "{message}");
    for (cap, path) in missing {
        let named = format!("`{cap}` on {path}");
        assert!(reason.contains(&named), "reason misses {named}: {message}");
        assert!(next.contains(&named), "next step misses {named}: {message}");
    }
    assert!(reason.contains(policy), "reason misses {policy}: {message}");
    assert!(
        next.contains(&format!("Vault policy {policy}")),
        "next step misses the policy to fix: {message}"
    );
    if checked {
        assert!(reason.contains("nothing was written"), "{message}");
    }
    println!("refused: {message}");
    message
}

async fn assert_nothing_written(env: &Env, before: &Untouched, checked: bool) {
    for (path, state) in &before.vault {
        assert_eq!(vault_state(env, path).await, *state, "Vault path {path}");
    }
    for (ns, name, state) in &before.secrets {
        assert_eq!(
            secret_state(env, ns, name).await,
            *state,
            "Secret {ns}/{name}"
        );
    }
    let vault_log = env.vault.requests()[before.vault_log..].to_vec();
    let writes: Vec<_> = vault_log
        .iter()
        .filter(|(m, p)| {
            !matches!(m.as_str(), "GET" | "LIST")
                && !(m == "POST"
                    && (p.ends_with("/login")
                        || p == "/v1/sys/capabilities-self"
                        || p == "/v1/auth/token/revoke-self"))
        })
        .collect();
    assert!(writes.is_empty(), "Vault writes went out: {writes:?}");
    let asked = vault_log
        .iter()
        .any(|(m, p)| m == "POST" && p == "/v1/sys/capabilities-self");
    assert!(
        asked || !checked,
        "no capability check before writing: {vault_log:?}"
    );
    let kube: Vec<_> = env.kube.requests()[before.kube_log..]
        .iter()
        .filter(|(m, p)| m != "GET" && !(m == "POST" && p.contains("/events")))
        .cloned()
        .collect();
    assert!(kube.is_empty(), "Kubernetes writes went out: {kube:?}");
    // OpenBao's own record: no step token wrote anything (it saw only logins, reads, the
    // capability check and the token's revocation).
    let audited: Vec<_> = env.vault.accesses()[before.audit_log..]
        .iter()
        .filter(|a| {
            !matches!(a.operation.as_str(), "read" | "list")
                && !a.path.starts_with("auth/")
                && a.path != "sys/capabilities-self"
        })
        .map(|a| (a.operation.clone(), a.path.clone()))
        .collect();
    assert!(audited.is_empty(), "OpenBao audited writes: {audited:?}");
}

/// Every Event in `apps` since `before` is a Warning: the refusal's record.
async fn only_warnings(env: &Env, before: &Untouched) {
    let events = env.events("apps").await;
    assert!(events.len() > before.events, "the refusal is recorded");
    for e in &events[before.events..] {
        assert_eq!(e.type_.as_deref(), Some("Warning"), "{e:?}");
    }
}

async fn bootstrap_reference(env: &Env) -> String {
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "lp-canary"))
        .await;
    env.only_reference("apps").await
}

const WRITE_VAULT_WITHOUT_PATCH: &str = r#"path "secret/data/*" {
  capabilities = ["create", "read"]
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_vault_without_patch_on_metadata_refuses_before_writing() {
    let env = Env::start().await;
    let r = bootstrap_reference(&env).await;
    narrow(&env, "secops-write-vault", WRITE_VAULT_WITHOUT_PATCH).await;
    let before = untouched(&env, &["apps/db"], &[("apps", "db")]).await;
    let wv = env.write_vault(&r).await;
    // Without the check, the data write would land and its provenance PATCH fail: a
    // version nobody could tell apart from a foreign one.
    assert_refused(
        &wv,
        &[("patch", "secret/metadata/apps/db")],
        "secops-write-vault",
        true,
    );
    assert_nothing_written(&env, &before, true).await;
    only_warnings(&env, &before).await;
    // The shipped policy back: the same reference hands over.
    install_shipped(&env, "secops-write-vault").await;
    env.write_vault(&r).await.assert_code(0);
    assert_eq!(env.vault_versions("apps/db").await, 1);
}

async fn install_shipped(env: &Env, policy: &str) {
    let hcl = std::fs::read_to_string(templates_dir().join(format!("vault/policies/{policy}.hcl")))
        .unwrap();
    narrow(env, policy, &hcl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_vault_with_mark_consumeds_policy_refuses_before_writing() {
    let env = Env::start().await;
    let r = bootstrap_reference(&env).await;
    // write-vault's role hands out mark-consumed's shipped policy (read only).
    let (st, role) = env
        .vault_root("GET", "auth/kubernetes/role/secops-write-vault", None)
        .await;
    assert_eq!(st, 200, "{role}");
    let mut role = role["data"].clone();
    role["token_policies"] = json!(["secops-mark-consumed"]);
    role["policies"] = json!(["secops-mark-consumed"]);
    let (st, body) = env
        .vault_root(
            "POST",
            "auth/kubernetes/role/secops-write-vault",
            Some(role),
        )
        .await;
    assert!(st < 300, "{st} {body}");
    let before = untouched(&env, &["apps/db"], &[("apps", "db")]).await;
    let wv = env.write_vault(&r).await;
    assert_refused(
        &wv,
        &[
            ("create", "secret/data/apps/db"),
            ("patch", "secret/metadata/apps/db"),
        ],
        "secops-mark-consumed",
        true,
    );
    assert_nothing_written(&env, &before, true).await;
    only_warnings(&env, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_vault_batch_refuses_each_item_after_one_capability_check() {
    let env = Env::start().await;
    for i in 0..3 {
        env.seed(SeedSecret::bootstrap("apps", &format!("b{i}")).kv("password", "lp-canary"))
            .await;
    }
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps"])
        .run()
        .await;
    rb.assert_code(0);
    let refs = rb.outputs_dir.join("references.json");
    narrow(&env, "secops-write-vault", WRITE_VAULT_WITHOUT_PATCH).await;
    let paths = ["apps/b0", "apps/b1", "apps/b2"];
    let secrets = [("apps", "b0"), ("apps", "b1"), ("apps", "b2")];
    let before = untouched(&env, &paths, &secrets).await;
    let wv = env
        .step("write-vault")
        .args(["--reference-file", refs.to_str().unwrap()])
        .run()
        .await;
    for p in paths {
        assert_refused(
            &wv,
            &[("patch", &format!("secret/metadata/{p}"))],
            "secops-write-vault",
            true,
        );
    }
    assert_nothing_written(&env, &before, true).await;
    // The batch asked once for all its paths, before its first item.
    let checks = env.vault.requests()[before.vault_log..]
        .iter()
        .filter(|(_, p)| p == "/v1/sys/capabilities-self")
        .count();
    assert_eq!(checks, 1, "one capability check per batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_refuses_as_the_real_run_with_a_narrower_policy() {
    let env = Env::start().await;
    let r = bootstrap_reference(&env).await;
    narrow(&env, "secops-write-vault", WRITE_VAULT_WITHOUT_PATCH).await;
    let before = untouched(&env, &["apps/db"], &[("apps", "db")]).await;
    let wv = env
        .step("write-vault")
        .args(["--reference", &r, "--dry-run"])
        .run()
        .await;
    assert_refused(
        &wv,
        &[("patch", "secret/metadata/apps/db")],
        "secops-write-vault",
        true,
    );
    assert!(
        wv.plan()
            .iter()
            .any(|l| l.starts_with("plan: refuse Secret apps/db") && l.contains("`patch`")),
        "{:?}",
        wv.plan()
    );
    assert_nothing_written(&env, &before, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_consumed_without_read_on_data_refuses_before_consuming() {
    let env = Env::start().await;
    let r = bootstrap_reference(&env).await;
    let wv = env.write_vault(&r).await;
    wv.assert_code(0);
    narrow(
        &env,
        "secops-mark-consumed",
        "path \"secret/metadata/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    let before = untouched(&env, &["apps/db"], &[("apps", "db")]).await;
    let mc = env
        .mark_consumed(&r, Some(wv.output("vault-version")), "delete")
        .await;
    // mark-consumed writes nothing to Vault: its read-back, which comes before any
    // Kubernetes write, is what Vault denies.
    assert_refused(
        &mc,
        &[("read", "secret/data/apps/db")],
        "secops-mark-consumed",
        false,
    );
    assert_nothing_written(&env, &before, false).await;
    only_warnings(&env, &before).await;
}

/// A secret with two versions, rotated with retention (keep 1, no grace) by `revoke`.
async fn rotation(env: &Env, revoke: &str) -> e2e::StepRun {
    env.step("rotate")
        .args([
            "--path",
            "apps/db",
            "--key",
            "password=uuid",
            "--rotation-id",
            "r1",
            "--keep-versions",
            "1",
            "--grace",
            "0s",
            "--revoke",
            revoke,
        ])
        .run()
        .await
}

async fn seed_two_versions(env: &Env) {
    for v in ["a", "b"] {
        let (st, body) = env
            .vault_root(
                "POST",
                "secret/data/apps/db",
                Some(json!({"data": {"password": v, "user": "u"}})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_without_update_on_data_refuses_before_recording_its_intent() {
    let env = Env::start().await;
    seed_two_versions(&env).await;
    narrow(
        &env,
        "secops-rotate",
        r#"path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "patch"] }
path "secret/delete/*" { capabilities = ["update"] }
"#,
    )
    .await;
    let before = untouched(&env, &["apps/db"], &[]).await;
    let run = rotation(&env, "delete").await;
    // Without the check the intent would be recorded, then the write denied.
    assert_refused(
        &run,
        &[("update", "secret/data/apps/db")],
        "secops-rotate",
        true,
    );
    assert_nothing_written(&env, &before, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_without_delete_refuses_before_writing_a_version() {
    let env = Env::start().await;
    seed_two_versions(&env).await;
    narrow(
        &env,
        "secops-rotate",
        r#"path "secret/data/*" { capabilities = ["read", "update"] }
path "secret/metadata/*" { capabilities = ["read", "patch"] }
path "secret/destroy/*" { capabilities = ["update"] }
"#,
    )
    .await;
    let before = untouched(&env, &["apps/db"], &[]).await;
    let run = rotation(&env, "delete").await;
    // Without the check the new version would exist and its old ones stay unrevoked.
    assert_refused(
        &run,
        &[("update", "secret/delete/apps/db")],
        "secops-rotate",
        true,
    );
    assert_nothing_written(&env, &before, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_without_destroy_refuses_before_writing_a_version() {
    let env = Env::start().await;
    seed_two_versions(&env).await;
    narrow(
        &env,
        "secops-rotate",
        r#"path "secret/data/*" { capabilities = ["read", "update"] }
path "secret/metadata/*" { capabilities = ["read", "patch"] }
path "secret/delete/*" { capabilities = ["update"] }
"#,
    )
    .await;
    let before = untouched(&env, &["apps/db"], &[]).await;
    let run = rotation(&env, "destroy").await;
    assert_refused(
        &run,
        &[("update", "secret/destroy/apps/db")],
        "secops-rotate",
        true,
    );
    assert_nothing_written(&env, &before, true).await;
}

async fn seed_internal(env: &Env, value: &str) {
    env.seed(
        SeedSecret::bootstrap("apps", "op")
            .unlabeled()
            .label("secops.io/class", "internal")
            .kv("password", value),
    )
    .await;
}

async fn push(env: &Env, extra: &[&str]) -> e2e::StepRun {
    env.step("push-secret")
        .args(["--namespaces", "apps"])
        .args(extra.iter().copied())
        .run()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_outside_internal_is_refused_with_nothing_written() {
    let env = Env::start().await;
    seed_internal(&env, "lp-canary").await;
    let before = untouched(&env, &["shared/apps/op"], &[("apps", "op")]).await;
    let run = push(&env, &["--path-prefix", "shared"]).await;
    // The shipped policy grants nothing outside internal/: Vault denies even the read that
    // judges what is there, before any write.
    assert_refused(
        &run,
        &[("read", "secret/data/shared/apps/op")],
        "secops-push-secret",
        false,
    );
    assert_nothing_written(&env, &before, false).await;
    only_warnings(&env, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_without_patch_on_metadata_refuses_before_writing() {
    let env = Env::start().await;
    seed_internal(&env, "lp-canary").await;
    narrow(
        &env,
        "secops-push-secret",
        r#"path "secret/data/internal/*" { capabilities = ["create", "read", "update"] }
"#,
    )
    .await;
    let before = untouched(&env, &["internal/apps/op"], &[("apps", "op")]).await;
    let run = push(&env, &[]).await;
    assert_refused(
        &run,
        &[("patch", "secret/metadata/internal/apps/op")],
        "secops-push-secret",
        true,
    );
    assert_nothing_written(&env, &before, true).await;
    only_warnings(&env, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_without_update_refuses_to_publish_a_change() {
    let env = Env::start().await;
    seed_internal(&env, "lp-canary").await;
    push(&env, &[]).await.assert_code(0);
    // The operator changes its Secret; the policy may create but not update.
    let mut op = env.secret("apps", "op").await.unwrap();
    op.data.as_mut().unwrap().insert(
        "password".into(),
        k8s_openapi::ByteString(b"lp-canary-2".to_vec()),
    );
    env.secrets("apps")
        .replace("op", &Default::default(), &op)
        .await
        .unwrap();
    narrow(
        &env,
        "secops-push-secret",
        r#"path "secret/data/internal/*" { capabilities = ["create", "read"] }
path "secret/metadata/internal/*" { capabilities = ["patch"] }
"#,
    )
    .await;
    let before = untouched(&env, &["internal/apps/op"], &[("apps", "op")]).await;
    let run = push(&env, &[]).await;
    assert_refused(
        &run,
        &[("update", "secret/data/internal/apps/op")],
        "secops-push-secret",
        true,
    );
    assert_nothing_written(&env, &before, true).await;
}

/// A merge PATCH of `secret/metadata/<path>` with `token`, as the steps send it; the status.
async fn patch_metadata(env: &Env, token: &str, path: &str, body: serde_json::Value) -> u16 {
    let ca = reqwest::Certificate::from_pem(e2e::vault_pki().ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    client
        .patch(format!("{}/v1/secret/metadata/{path}", env.vault.url()))
        .header("X-Vault-Token", token)
        .header("Content-Type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The roles that record provenance or rotation state may PATCH `custom_metadata` only
/// (`allowed_parameters` in their policies), never a secret's version settings
/// (`max_versions`, `delete_version_after`, `cas_required`): checked on OpenBao.
#[tokio::test]
async fn metadata_patches_may_change_custom_metadata_only() {
    let env = Env::start().await;
    for path in ["apps/x", "internal/apps/x"] {
        let (st, b) = env
            .vault_root(
                "POST",
                &format!("secret/data/{path}"),
                Some(json!({"data": {"k": "v"}})),
            )
            .await;
        assert!(st < 300, "{b}");
    }
    for (role, path) in [
        ("secops-write-vault", "apps/x"),
        ("secops-handover-batch", "apps/x"),
        ("secops-rotate", "apps/x"),
        ("secops-push-secret", "internal/apps/x"),
    ] {
        let jwt = std::fs::read_to_string(env.dir.path().join(format!("{role}.token"))).unwrap();
        let (st, body) = e2e::vault_call(
            &env.vault.url(),
            "",
            "POST",
            "auth/kubernetes/login",
            Some(json!({"role": role, "jwt": jwt})),
        )
        .await;
        assert_eq!(st, 200, "{role}: {body}");
        let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
        let custom = json!({"custom_metadata": {"secops.io/probe": role}});
        assert_eq!(
            patch_metadata(&env, &token, path, custom).await,
            204,
            "{role}"
        );
        for settings in [
            json!({"max_versions": 1}),
            json!({"delete_version_after": "1s"}),
            json!({"cas_required": false, "custom_metadata": {"secops.io/probe": "x"}}),
        ] {
            assert_eq!(
                patch_metadata(&env, &token, path, settings.clone()).await,
                403,
                "{role} may not PATCH {settings}"
            );
        }
        let (_, meta) = env
            .vault_root("GET", &format!("secret/metadata/{path}"), None)
            .await;
        assert_eq!(meta["data"]["max_versions"], 0, "{role}");
        assert_eq!(meta["data"]["delete_version_after"], "0s", "{role}");
        assert_eq!(meta["data"]["custom_metadata"]["secops.io/probe"], role);
    }
}

/// The step roles take only tokens for the audience `vault` (the templates' projected
/// `vault-token`), so the pod's API token, or a token stolen from another service, cannot
/// log in: checked on OpenBao.
#[tokio::test]
async fn step_roles_take_only_tokens_for_vault() {
    let env = Env::start().await;
    let url = env.vault.url();
    for role in e2e::STEP_ROLES {
        let login = |jwt: String| {
            e2e::vault_call(
                &url,
                "",
                "POST",
                "auth/kubernetes/login",
                Some(json!({"role": role, "jwt": jwt})),
            )
        };
        let api_token = env
            .kube
            .issue_service_account_token(e2e::STEP_SA_NAMESPACE, role);
        let (st, body) = login(api_token).await;
        assert_eq!(st, 403, "{role} with the API server's audience: {body}");
        let vault_token =
            env.kube
                .issue_token_for(e2e::STEP_SA_NAMESPACE, role, e2e::VAULT_AUDIENCE);
        let (st, body) = login(vault_token).await;
        assert_eq!(st, 200, "{role} with the audience vault: {body}");
    }
}

/// The policy knobs of `templates/settings/` narrow every step policy to a KV mount and a
/// handover prefix: `kubectl kustomize templates/authority/` with `kv/.../bootstrap/*`, its
/// generated `secops-vault-grants` loaded into OpenBao as init-authority would, then the chain
/// with `--kv-mount kv --path-prefix bootstrap` works, and the same identity is refused
/// outside the prefix.
#[tokio::test]
async fn narrowed_policies_from_the_rendered_knobs_work_on_openbao() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("templates");
    copy_dir(&templates_dir(), &copy);
    let settings = copy.join("settings/settings.yaml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    for (from, to) in [
        ("secret/data/*", "kv/data/bootstrap/*"),
        ("secret/metadata/*", "kv/metadata/bootstrap/*"),
        ("secret/data/internal/*", "kv/data/internal/*"),
        ("secret/metadata/internal/*", "kv/metadata/internal/*"),
        ("secret/delete/*", "kv/delete/bootstrap/*"),
        ("secret/destroy/*", "kv/destroy/bootstrap/*"),
    ] {
        let line = |v: &str| format!(": {v}\n");
        assert!(text.contains(&line(from)), "settings: {from}");
        text = text.replace(&line(from), &line(to));
    }
    std::fs::write(&settings, text).unwrap();
    let kubectl = std::env::var("SECOPS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = std::process::Command::new(kubectl)
        .arg("kustomize")
        .arg(copy.join("authority"))
        .output()
        .expect("kubectl (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let grants = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "secops-vault-grants")
        .expect("secops-vault-grants");
    let (st, b) = env
        .vault_root(
            "POST",
            "sys/mounts/kv",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert!(st < 300, "{b}");
    for (key, v) in grants["data"].as_object().unwrap() {
        if let Some(name) = key.strip_suffix(".hcl") {
            let policy = v.as_str().unwrap();
            assert!(!policy.contains("\"secret/"), "{name} still grants secret/");
            let (st, b) = env
                .vault_root(
                    "PUT",
                    &format!("sys/policies/acl/{name}"),
                    Some(json!({ "policy": policy })),
                )
                .await;
            assert!(st < 300, "{name}: {b}");
        }
    }
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let narrowed = ["--kv-mount", "kv", "--path-prefix", "bootstrap"];
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps", "--path-prefix", "bootstrap"])
        .run()
        .await;
    rb.assert_code(0);
    let r = rb.references()[0].to_string();
    env.step("write-vault")
        .args(["--reference", &r])
        .args(narrowed)
        .run()
        .await
        .assert_code(0);
    env.step("mark-consumed")
        .args(["--reference", &r, "--mode", "delete"])
        .args(narrowed)
        .run()
        .await
        .assert_code(0);
    let (st, b) = env
        .vault_root("GET", "kv/data/bootstrap/apps/db", None)
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["data"]["password"], "pw");
    // Outside the prefix, and in the default mount, Vault itself refuses write-vault's role.
    let jwt = std::fs::read_to_string(env.dir.path().join("secops-write-vault.token")).unwrap();
    let (_, login) = e2e::vault_call(
        &env.vault.url(),
        "",
        "POST",
        "auth/kubernetes/login",
        Some(json!({"role": "secops-write-vault", "jwt": jwt})),
    )
    .await;
    let token = login["auth"]["client_token"].as_str().unwrap();
    for path in ["kv/data/apps/x", "secret/data/apps/x"] {
        let (st, _) = e2e::vault_call(
            &env.vault.url(),
            token,
            "POST",
            path,
            Some(json!({"options": {"cas": 0}, "data": {"k": "v"}})),
        )
        .await;
        assert_eq!(st, 403, "{path}");
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
