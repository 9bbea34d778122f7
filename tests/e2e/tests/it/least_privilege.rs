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
