//! Issue 21: bootstrap Secrets delivered by GitOps controllers (Argo CD self-heal, Flux,
//! Sealed Secrets), modelled by `e2e::gitops`. The handover happens once per secret (RFC
//! 5.4): after the first one, every further sync + chain writes nothing to Vault, and what
//! stays visible is the manifest Git still holds.

use std::time::Instant;

use e2e::gitops::{Delivery, GitOps};
use e2e::{secret_bytes, Env, SeedSecret, StepRun};
use serde_json::Value;

const CYCLES: usize = 3;

/// Every non-read request to the KV mount since `t` (data writes, metadata PATCHes, deletes),
/// as the recording proxy in front of OpenBao saw them.
fn vault_writes_since(env: &Env, t: Instant) -> Vec<(String, String)> {
    env.vault
        .requests_at()
        .into_iter()
        .filter(|(at, m, p)| *at >= t && m != "GET" && p.starts_with("/v1/secret/"))
        .map(|(_, m, p)| (m, p))
        .collect()
}

/// read-bootstrap (told the consume mode) -> write-vault -> mark-consumed for each reference.
async fn chain(env: &Env, ns: &str, mode: &str) -> (StepRun, Vec<(StepRun, StepRun)>) {
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", ns, "--consume-mode", mode])
        .run()
        .await;
    let mut runs = Vec::new();
    for r in rb.references() {
        let r = r.to_string();
        let wv = env.write_vault(&r).await;
        wv.assert_code(0);
        let mc = env
            .mark_consumed(&r, Some(wv.output("vault-version")), mode)
            .await;
        mc.assert_code(0);
        runs.push((wv, mc));
    }
    (rb, runs)
}

async fn audit_authority(env: &Env) -> StepRun {
    env.step("audit-authority")
        .args(["--namespaces", "apps,team"])
        .run()
        .await
}

fn result(run: &StepRun) -> Value {
    serde_json::from_str(run.output("result.json")).expect("result.json")
}

fn argo(app: &str, ignore_consumed_data: bool) -> Delivery {
    Delivery::ArgoCd {
        app: app.into(),
        ignore_consumed_data,
    }
}

/// Argo CD self-heal re-creates a deleted Secret and writes an inert one's data back; Flux
/// honours the annotation mark-consumed leaves. After the first handover, N more syncs and
/// chains make no Vault request that writes (no data, no metadata PATCH); every resurrection
/// is consumed again and said to come from a manifest Git still holds; audit-authority
/// names exactly the manifest that keeps coming back.
#[tokio::test(flavor = "multi_thread")]
async fn self_heal_resurrections_are_consumed_again_without_any_vault_write() {
    let env = Env::start().await;
    let mut git = GitOps::default();
    let db = SeedSecret::bootstrap("apps", "db").kv("password", "argo-delivered-password-1");
    let api = SeedSecret::bootstrap("team", "api").kv("token", "argo-restored-token-1234");
    let web = SeedSecret::bootstrap("team", "web").kv("key", "flux-delivered-key-123456");
    git.manage(db.clone(), argo("apps", false));
    git.manage(api.clone(), argo("team", false));
    git.manage(
        web.clone(),
        Delivery::Flux {
            kustomization: "team".into(),
        },
    );
    assert_eq!(git.sync(&env).await.len(), 3);
    let (_, first_apps) = chain(&env, "apps", "delete").await;
    let (_, first_team) = chain(&env, "team", "inert").await;
    for (wv, mc) in first_apps.iter().chain(&first_team) {
        assert_eq!(wv.output("outcome"), "written");
        assert_eq!(mc.output("outcome"), "consumed");
        assert!(
            result(mc)["gitOrigin"].is_object(),
            "{}",
            mc.output("result.json")
        );
    }
    let web_live = env.secret("team", "web").await.unwrap();
    assert_eq!(
        e2e::annotation(&web_live, "kustomize.toolkit.fluxcd.io/reconcile"),
        Some("disabled")
    );

    let t = Instant::now();
    for cycle in 0..CYCLES {
        let changed = git.sync(&env).await;
        // Argo re-creates apps/db and writes team/api's data back; Flux leaves team/web.
        assert_eq!(changed, ["apps/db", "team/api"], "cycle {cycle}");
        let (_, apps) = chain(&env, "apps", "delete").await;
        let (_, team) = chain(&env, "team", "inert").await;
        assert_eq!(
            apps.len() + team.len(),
            2,
            "cycle {cycle}: only the resurrected"
        );
        for (wv, mc) in apps.iter().chain(&team) {
            assert_eq!(wv.output("outcome"), "resurrected", "cycle {cycle}");
            let audit = wv.audit();
            let reason = audit.last().unwrap()["reason"].as_str().unwrap_or("");
            assert!(reason.contains("Git still holds its manifest"), "{reason}");
            assert!(reason.contains("Argo CD tracking-id"), "{reason}");
            assert_eq!(mc.output("outcome"), "consumed");
            let r = result(mc);
            assert_eq!(r["resurrected"], true, "{r}");
            assert!(r["gitOrigin"]["argocdTrackingId"].is_string(), "{r}");
        }
    }
    assert_eq!(
        vault_writes_since(&env, t),
        Vec::<(String, String)>::new(),
        "no Vault write after the first handover"
    );
    // No value lost: Vault holds each one, once; none is live in Kubernetes.
    for (p, m) in [("apps/db", &db), ("team/api", &api), ("team/web", &web)] {
        assert_eq!(env.vault_versions(p).await, 1, "{p}");
        assert_eq!(env.vault_bytes(p).await, m.bytes(), "{p}");
    }
    assert!(env.secret("apps", "db").await.is_none());
    for name in ["api", "web"] {
        let s = env.secret("team", name).await.unwrap();
        assert!(
            secret_bytes(&s).values().all(|v| v.is_empty()),
            "team/{name} inert"
        );
    }
    let clean = audit_authority(&env).await;
    clean.assert_code(0);
    // The next sync brings team/api's value back: audit-authority names exactly that
    // manifest (apps/db is re-created too, but within its grace period and not yet a copy).
    git.sync(&env).await;
    let found = audit_authority(&env).await;
    let report: Value = serde_json::from_str(found.output("report.json")).unwrap();
    let violations = report["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{report:#}");
    assert_eq!(violations[0]["object"], "Secret team/api");
    let reason = violations[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("Git still holds its manifest (Argo CD tracking-id team:/Secret:team/api)"),
        "{reason}"
    );
    // With the manifests removed from Git (the runbook's pull request), nothing comes back.
    git.remove("apps", "db");
    git.remove("team", "api");
    chain(&env, "team", "inert").await;
    assert!(git.sync(&env).await.is_empty());
    audit_authority(&env).await.assert_code(0);
}

/// Argo CD with the shipped ignoreDifferences example leaves a consumed Secret's data
/// alone: inert holds, and the next syncs change nothing at all.
#[tokio::test(flavor = "multi_thread")]
async fn argo_cd_with_the_ignore_differences_example_keeps_an_inert_secret_inert() {
    // The model's `ignore_consumed_data` is what the shipped example says: the data of
    // Secrets labelled consumed ignored, and a sync that respects it.
    let example =
        e2e::argo::templates_dir().join("../docs/examples/argocd-ignore-consumed-secrets.yaml");
    let doc = &e2e::argo::load_yaml(&example).unwrap()[0];
    let ignored = &doc["spec"]["ignoreDifferences"][0];
    assert_eq!(
        (ignored["group"].as_str(), ignored["kind"].as_str()),
        (Some(""), Some("Secret"))
    );
    let paths: Vec<&str> = ignored["jqPathExpressions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(paths.contains(&r#"select(.metadata.labels["secops.io/state"] == "consumed") | .data"#));
    let options = doc["spec"]["syncPolicy"]["syncOptions"].as_array().unwrap();
    assert!(options.iter().any(|o| o == "RespectIgnoreDifferences=true"));
    let env = Env::start().await;
    let mut git = GitOps::default();
    git.manage(
        SeedSecret::bootstrap("apps", "db").kv("password", "argo-ignored-password-12"),
        argo("apps", true),
    );
    git.sync(&env).await;
    chain(&env, "apps", "inert").await;
    let t = Instant::now();
    for _ in 0..CYCLES {
        assert!(git.sync(&env).await.is_empty());
        let (rb, runs) = chain(&env, "apps", "inert").await;
        rb.assert_code(0);
        assert!(runs.is_empty());
    }
    assert!(vault_writes_since(&env, t).is_empty());
}

/// A SealedSecret-owned bootstrap Secret is handed over (owner allowlisted by default), in
/// ignore mode only: delete and inert are refused by read-bootstrap, naming the mode to use,
/// with nothing written anywhere. Other owners are still refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_secret_owned_secret_is_handed_over_in_ignore_mode_only() {
    let env = Env::start().await;
    let mut git = GitOps::default();
    let sealed = SeedSecret::bootstrap("apps", "db").kv("password", "sealed-delivered-pass-1");
    git.manage(sealed.clone(), Delivery::SealedSecret { name: "db".into() });
    git.sync(&env).await;
    let before = env.secret("apps", "db").await.unwrap();
    let t = Instant::now();
    for mode in ["delete", "inert"] {
        let (rb, runs) = chain(&env, "apps", mode).await;
        rb.assert_code(3);
        assert!(runs.is_empty());
        let refused: Value = serde_json::from_str(rb.output("refused.json")).unwrap();
        let reason = refused[0]["reason"].as_str().unwrap();
        assert!(reason.contains("SealedSecret.bitnami.com db"), "{reason}");
        assert!(
            reason.contains(&format!("--mode {mode} cannot hold")),
            "{reason}"
        );
        assert!(reason.contains("use --mode ignore"), "{reason}");
    }
    assert!(vault_writes_since(&env, t).is_empty());
    let after = env.secret("apps", "db").await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );

    let (rb, runs) = chain(&env, "apps", "ignore").await;
    rb.assert_code(0);
    let origins: Value = serde_json::from_str(rb.output("origins.json")).unwrap();
    assert_eq!(
        origins[0]["gitOrigin"]["owner"],
        "SealedSecret.bitnami.com/db"
    );
    let (wv, mc) = &runs[0];
    assert_eq!(wv.output("outcome"), "written");
    assert_eq!(
        result(mc)["gitOrigin"]["owner"],
        "SealedSecret.bitnami.com/db"
    );
    assert_eq!(env.vault_bytes("apps/db").await, sealed.bytes());
    let t = Instant::now();
    for _ in 0..CYCLES {
        git.sync(&env).await;
        let (_, runs) = chain(&env, "apps", "ignore").await;
        assert!(runs.is_empty());
    }
    assert!(vault_writes_since(&env, t).is_empty());

    // Any other owner, or a SealedSecret reference that is not the controller one: refused.
    let mut other = SeedSecret::bootstrap("team", "x").kv("k", "v").build();
    other.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            kind: "Foo".into(),
            api_version: "example.com/v1".into(),
            controller: Some(true),
            ..e2e::gitops::sealed_owner("x")
        },
    ]);
    let mut loose = SeedSecret::bootstrap("team", "y").kv("k", "v").build();
    loose.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            controller: None,
            ..e2e::gitops::sealed_owner("y")
        },
    ]);
    for s in [other, loose] {
        env.secrets("team")
            .create(&Default::default(), &s)
            .await
            .unwrap();
    }
    let (rb, _) = chain(&env, "team", "ignore").await;
    rb.assert_code(3);
    let refused: Value = serde_json::from_str(rb.output("refused.json")).unwrap();
    assert_eq!(refused.as_array().unwrap().len(), 2, "{refused:#}");
    for r in refused.as_array().unwrap() {
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("has owner references"),
            "{r}"
        );
    }
}

/// A re-created Secret (same cluster, name and data, a new uid) is resurrected only while its
/// namespace is the one whose uid Vault recorded at the handover. A handover recorded before
/// that rule (no namespace uid), or a namespace deleted and re-created (what a rebuild does),
/// is relinked instead (`provenance-updated`, one metadata PATCH recording the new namespace
/// uid); the next GitOps re-create is then resurrected, with no Vault write.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_namespace_vault_recorded_makes_a_re_created_secret_resurrected() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, DeleteParams};
    const NS_UID: &str = "secops.io/source-namespace-uid";
    let env = Env::start().await;
    // Delivered by Flux (its marks make write-vault read before it tries a create).
    let db = || {
        SeedSecret::bootstrap("apps", "db")
            .kv("password", "namespace-rule-pw-1234")
            .label("kustomize.toolkit.fluxcd.io/name", "apps")
    };
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let ns_uid = |n: Namespace| n.metadata.uid.expect("namespace uid");
    env.seed(db()).await;
    chain(&env, "apps", "delete").await;
    let first = ns_uid(namespaces.get("apps").await.unwrap());
    let meta = env.vault_custom_metadata("apps/db").await;
    assert_eq!(meta[NS_UID], first, "recorded at the handover");

    // A handover from before the rule: nothing recorded, so a re-create is relinked.
    let mut legacy = meta.clone();
    legacy.remove(NS_UID);
    let (st, body) = env
        .vault_root(
            "POST",
            "secret/metadata/apps/db",
            Some(serde_json::json!({ "custom_metadata": legacy })),
        )
        .await;
    assert!(st < 300, "{st} {body}");
    env.seed(db()).await;
    let (_, runs) = chain(&env, "apps", "delete").await;
    assert_eq!(runs[0].0.output("outcome"), "provenance-updated");
    assert_eq!(env.vault_custom_metadata("apps/db").await[NS_UID], first);

    // GitOps re-creates it in the same namespace: resurrected, nothing written.
    env.seed(db()).await;
    let t = Instant::now();
    let (_, runs) = chain(&env, "apps", "delete").await;
    assert_eq!(runs[0].0.output("outcome"), "resurrected");
    assert_eq!(result(&runs[0].1)["resurrected"], true);
    assert!(vault_writes_since(&env, t).is_empty());

    // The namespace deleted and created again (as a rebuild does): relinked, the new
    // namespace uid recorded; the data never written.
    namespaces
        .delete("apps", &DeleteParams::default())
        .await
        .unwrap();
    env.seed(db()).await;
    let second = ns_uid(namespaces.get("apps").await.unwrap());
    assert_ne!(second, first);
    let (_, runs) = chain(&env, "apps", "delete").await;
    assert_eq!(runs[0].0.output("outcome"), "provenance-updated");
    assert_eq!(env.vault_custom_metadata("apps/db").await[NS_UID], second);
    assert_eq!(
        env.vault_versions("apps/db").await,
        1,
        "no data version added"
    );
}
