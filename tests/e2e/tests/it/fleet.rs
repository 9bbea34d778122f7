//! Fleets: two clusters (two kube-servers) against one real OpenBao. Every row of the conflict
//! rule (docs/fleets.md), push-secret across a rebuild, and a kill point between the data
//! check and the provenance update in each: no value is ever lost (each value lives in Vault
//! or in its bootstrap Secret, or both).

use e2e::{secret_bytes, Env, SeedSecret, Step, StepRun};
use fault_injection::Fault;
use serde_json::{json, Value};

const SHARED_TIMEOUT_ENVS: [(&str, &str); 1] = [("SECOPS_RETRY_ATTEMPTS", "2")];

/// Cluster A (`cluster-a`, the Env's own) and cluster B (`cluster-b`), one Vault.
async fn fleet() -> (Env, Env) {
    let a = Env::start().await;
    let b = a.join_fleet("cluster-b").await;
    (a, b)
}

fn db(ns: &str, name: &str, value: &str) -> SeedSecret {
    SeedSecret::bootstrap(ns, name).kv("password", value)
}

async fn write(env: &Env, r: &str, envs: &[(&str, &str)]) -> StepRun {
    let mut s = env.step("write-vault").args(["--reference", r]);
    for (k, v) in envs {
        s = s.env(k, *v);
    }
    s.run().await
}

async fn consume(env: &Env, r: &str, envs: &[(&str, &str)]) -> StepRun {
    let mut s = env
        .step("mark-consumed")
        .args(["--reference", r, "--mode", "delete"]);
    for (k, v) in envs {
        s = s.env(k, *v);
    }
    s.run().await
}

/// The reference of `ns/name` as read-bootstrap gives it.
async fn reference(env: &Env, ns: &str, name: &str) -> String {
    env.discover(ns)
        .await
        .into_iter()
        .find(|r| r.contains(&format!("\"name\":\"{name}\"")))
        .unwrap_or_else(|| panic!("no reference to {ns}/{name}"))
}

async fn value_in_vault(env: &Env, path: &str) -> Vec<u8> {
    env.vault_bytes(path).await["password"].clone()
}

async fn live_value(env: &Env, ns: &str, name: &str) -> Option<Vec<u8>> {
    env.secret(ns, name)
        .await
        .map(|s| secret_bytes(&s)["password"].clone())
}

/// Kills the step at the provenance PATCH of `path` (before it lands, or landed with its
/// answer lost): after the data check, before the provenance update.
fn kill_at_provenance(env: &Env, path: &str, served: bool) {
    env.vault.set_fault(Some(Fault::KillAt {
        method: "PATCH",
        path: format!("/v1/secret/metadata/{path}"),
        served,
    }));
}

/// Removes the cluster from a path's provenance: a handover made before cluster names
/// (custom_metadata replaced whole, as a POST to metadata does).
async fn make_legacy(env: &Env, path: &str) {
    let mut meta = env.vault_custom_metadata(path).await;
    meta.remove("secops.io/source-cluster");
    let (st, body) = env
        .vault_root(
            "POST",
            &format!("secret/metadata/{path}"),
            Some(json!({ "custom_metadata": meta })),
        )
        .await;
    assert!(st < 300, "{st} {body}");
    assert!(!env
        .vault_custom_metadata(path)
        .await
        .contains_key("secops.io/source-cluster"));
}

fn audit(env: &Env) -> Step<'_> {
    env.step("audit-authority")
        .args(["--namespaces", "apps", "--compare-values", "false"])
}

fn prefixed(env: &Env) -> Step<'_> {
    env.step("read-bootstrap")
        .args(["--namespaces", "apps", "--path-prefix", "fleet/{cluster}"])
}

fn push(env: &Env) -> Step<'_> {
    env.step("push-secret")
        .args(["--namespaces", "operators"])
        .env("SECOPS_RETRY_ATTEMPTS", "2")
}

fn refusal_names(run: &StepRun, parts: &[&str]) {
    for p in parts {
        assert!(run.stderr.contains(p), "stderr names {p:?}: {}", run.stderr);
        let audited = run.audit().iter().any(|e| {
            e["outcome"] == "refused" && e["reason"].as_str().is_some_and(|r| r.contains(p))
        });
        assert!(audited, "an audit line names {p:?}: {}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_with_other_data_writes_nothing_and_keeps_its_secret() {
    let (a, b) = fleet().await;
    a.seed(db("apps", "db", "cluster-a")).await;
    a.handover("apps", "delete").await;
    let meta = a.vault_custom_metadata("apps/db").await;
    assert_eq!(meta["secops.io/source-cluster"], "cluster-a");

    // The scenario: B's apps/db holds another value.
    b.seed(db("apps", "db", "cluster-b")).await;
    let r = reference(&b, "apps", "db").await;
    let wv = write(&b, &r, &[]).await;
    wv.assert_code(3);
    refusal_names(&wv, &["cluster-a", "cluster-b", "secret/apps/db"]);
    let mc = consume(&b, &r, &[]).await;
    mc.assert_code(3);
    refusal_names(&mc, &["cluster-a", "cluster-b"]);
    // Nothing written, nothing consumed: both values survive.
    assert_eq!(a.vault_versions("apps/db").await, 1);
    assert_eq!(value_in_vault(&a, "apps/db").await, b"cluster-a");
    assert_eq!(
        live_value(&b, "apps", "db").await.as_deref(),
        Some(&b"cluster-b"[..])
    );
    let warnings: Vec<String> = b
        .events("apps")
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.message)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("cluster-a") && m.contains("cluster-b") && m.contains("apps/db")),
        "{warnings:#?}"
    );
    // B's audit-authority reports the path its layout owns that cluster A wrote; A's does not.
    let run = audit(&b).run().await;
    run.assert_code(3);
    let report: Value = serde_json::from_str(&run.outputs["report.json"]).unwrap();
    assert!(
        report["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["kind"] == "other-cluster" && v["vault_path"] == "secret/apps/db"),
        "{report:#}"
    );
    audit(&a).run().await.assert_code(0);

    // Resolution 1: per-cluster paths ({cluster} in the prefix).
    let rb = prefixed(&b).run().await;
    rb.assert_code(0);
    let r = rb.references()[0].to_string();
    assert!(r.contains("fleet/cluster-b/apps/db"), "{r}");
    let pre = [("SECOPS_PATH_PREFIX", "fleet/{cluster}")];
    write(&b, &r, &pre).await.assert_code(0);
    consume(&b, &r, &pre).await.assert_code(0);
    assert_eq!(
        value_in_vault(&a, "fleet/cluster-b/apps/db").await,
        b"cluster-b"
    );
    assert_eq!(value_in_vault(&a, "apps/db").await, b"cluster-a");
    assert_eq!(live_value(&b, "apps", "db").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_vault_authoritative_declares_vaults_value_the_fleets() {
    let (a, b) = fleet().await;
    a.seed(db("apps", "api", "fleet-value")).await;
    a.handover("apps", "delete").await;
    b.seed(db("apps", "api", "stale-b")).await;
    let r = reference(&b, "apps", "api").await;
    let flag = [("SECOPS_FLEET_VAULT_AUTHORITATIVE", "true")];
    // Killed at the provenance PATCH (recording B as sharing the path): nothing consumed.
    kill_at_provenance(&a, "apps/api", false);
    let killed = write(&b, &r, &[&flag[..], &SHARED_TIMEOUT_ENVS[..]].concat()).await;
    a.vault.set_fault(None);
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    assert!(live_value(&b, "apps", "api").await.is_some());
    let wv = write(&b, &r, &flag).await;
    wv.assert_code(0);
    assert_eq!(wv.output("outcome"), "vault-differs");
    assert_eq!(
        a.vault_custom_metadata("apps/api").await["secops.io/clusters"],
        "cluster-b"
    );
    let mc = consume(&b, &r, &flag).await;
    mc.assert_code(0);
    assert_eq!(mc.output("outcome"), "consumed-vault-differs");
    assert_eq!(a.vault_versions("apps/api").await, 1);
    assert_eq!(value_in_vault(&a, "apps/api").await, b"fleet-value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_with_equal_data_shares_the_path_through_a_kill() {
    let (a, b) = fleet().await;
    for (name, served) in [("shared-dead", false), ("shared-lost", true)] {
        let path = format!("apps/{name}");
        a.seed(db("apps", name, "same-everywhere")).await;
        let r = reference(&a, "apps", name).await;
        write(&a, &r, &[]).await.assert_code(0);
        consume(&a, &r, &[]).await.assert_code(0);
        b.seed(db("apps", name, "same-everywhere")).await;
        let r = reference(&b, "apps", name).await;
        kill_at_provenance(&a, &path, served);
        let killed = write(&b, &r, &SHARED_TIMEOUT_ENVS).await;
        a.vault.set_fault(None);
        assert_ne!(killed.code, 0, "{name}: {}", killed.stderr);
        // Killed between the data check and the provenance update: nothing lost.
        assert!(live_value(&b, "apps", name).await.is_some(), "{name}");
        let wv = write(&b, &r, &[]).await;
        wv.assert_code(0);
        // The landed PATCH (answer lost) already recorded B: the re-run finds it recorded.
        let want = if served { "unchanged" } else { "shared" };
        assert_eq!(wv.output("outcome"), want, "{name}");
        let meta = a.vault_custom_metadata(&path).await;
        assert_eq!(meta["secops.io/source-cluster"], "cluster-a");
        assert_eq!(meta["secops.io/clusters"], "cluster-b");
        // A re-run records nothing new.
        assert_eq!(write(&b, &r, &[]).await.output("outcome"), "unchanged");
        consume(&b, &r, &[]).await.assert_code(0);
        assert_eq!(live_value(&b, "apps", name).await, None);
        assert_eq!(a.vault_versions(&path).await, 1);
        assert_eq!(value_in_vault(&a, &path).await, b"same-everywhere");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_cluster_takes_back_its_paths_through_a_kill() {
    let (mut a, b) = fleet().await;
    a.seed(db("apps", "same", "v1")).await;
    a.seed(db("apps", "rotated", "git-value")).await;
    a.handover("apps", "delete").await;
    // Rotated in Vault since the handover.
    a.vault_root(
        "POST",
        "secret/data/apps/rotated",
        Some(json!({"data": {"password": "rotated-value"}, "options": {"cas": 1}})),
    )
    .await;
    let old_uid = a.vault_custom_metadata("apps/same").await["secops.io/source-uid"].clone();
    a.rebuild_cluster().await;
    a.seed(db("apps", "same", "v1")).await;
    a.seed(db("apps", "rotated", "git-value")).await;
    let r = reference(&a, "apps", "same").await;
    kill_at_provenance(&a, "apps/same", false);
    let killed = write(&a, &r, &SHARED_TIMEOUT_ENVS).await;
    a.vault.set_fault(None);
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    assert!(live_value(&a, "apps", "same").await.is_some());
    let wv = write(&a, &r, &[]).await;
    wv.assert_code(0);
    assert_eq!(wv.output("outcome"), "provenance-updated");
    let meta = a.vault_custom_metadata("apps/same").await;
    assert_eq!(meta["secops.io/previous-source-uids"], old_uid);
    assert_eq!(meta["secops.io/source-cluster"], "cluster-a");
    consume(&a, &r, &[]).await.assert_code(0);
    // Rotated since: Vault is authoritative for its own cluster (as before cluster names).
    let r = reference(&a, "apps", "rotated").await;
    assert_eq!(write(&a, &r, &[]).await.output("outcome"), "vault-differs");
    consume(&a, &r, &[]).await.assert_code(0);
    assert_eq!(value_in_vault(&a, "apps/rotated").await, b"rotated-value");
    // Cluster B with the rotated path's old Git value is another cluster: refused.
    b.seed(db("apps", "rotated", "git-value")).await;
    let r = reference(&b, "apps", "rotated").await;
    write(&b, &r, &[]).await.assert_code(3);
    consume(&b, &r, &[]).await.assert_code(3);
    assert!(live_value(&b, "apps", "rotated").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_before_cluster_names_is_adopted_only_when_nothing_is_lost() {
    let (a, b) = fleet().await;
    a.seed(db("apps", "old-equal", "same")).await;
    a.seed(db("apps", "old-other", "vaults")).await;
    a.handover("apps", "delete").await;
    for p in ["apps/old-equal", "apps/old-other"] {
        make_legacy(&a, p).await;
    }
    // Equal data, another uid (any cluster): adopted, the cluster recorded; killed first at
    // the provenance PATCH, the re-run adopts.
    b.seed(db("apps", "old-equal", "same")).await;
    let r = reference(&b, "apps", "old-equal").await;
    kill_at_provenance(&a, "apps/old-equal", false);
    let killed = write(&b, &r, &SHARED_TIMEOUT_ENVS).await;
    a.vault.set_fault(None);
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    assert!(live_value(&b, "apps", "old-equal").await.is_some());
    let wv = write(&b, &r, &[]).await;
    wv.assert_code(0);
    assert_eq!(wv.output("outcome"), "provenance-updated");
    assert_eq!(
        a.vault_custom_metadata("apps/old-equal").await["secops.io/source-cluster"],
        "cluster-b"
    );
    consume(&b, &r, &[]).await.assert_code(0);
    // Other data, another uid: refused, the value Vault does not hold survives.
    b.seed(db("apps", "old-other", "b-only")).await;
    let r = reference(&b, "apps", "old-other").await;
    let wv = write(&b, &r, &[]).await;
    wv.assert_code(3);
    refusal_names(&wv, &["recorded no cluster", "cluster-b"]);
    consume(&b, &r, &[]).await.assert_code(3);
    assert_eq!(
        live_value(&b, "apps", "old-other").await.as_deref(),
        Some(&b"b-only"[..])
    );
    assert_eq!(value_in_vault(&a, "apps/old-other").await, b"vaults");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_after_a_rebuild_takes_over_through_a_kill_and_another_cluster_never() {
    let (mut a, b) = fleet().await;
    let internal = |v: &str| {
        SeedSecret::bootstrap("operators", "app")
            .unlabeled()
            .label("secops.io/class", "internal")
            .kv("password", v)
    };
    let path = "internal/operators/app";
    a.seed(internal("v1")).await;
    push(&a).run().await.assert_code(0);
    let old_uid = a.vault_custom_metadata(path).await["secops.io/source-uid"].clone();
    a.rebuild_cluster().await;
    a.seed(internal("v2")).await;
    // Killed after the data check, before the new version (the write), then after the write,
    // before the provenance update: each re-run converges, one new version, nothing lost.
    a.vault.set_fault(Some(Fault::KillAt {
        method: "POST",
        path: format!("/v1/secret/data/{path}"),
        served: false,
    }));
    assert_ne!(push(&a).run().await.code, 0);
    a.vault.set_fault(None);
    assert_eq!(value_in_vault(&a, path).await, b"v1");
    kill_at_provenance(&a, path, false);
    assert_ne!(push(&a).run().await.code, 0);
    a.vault.set_fault(None);
    assert_eq!(value_in_vault(&a, path).await, b"v2");
    let run = push(&a).run().await;
    run.assert_code(0);
    let meta = a.vault_custom_metadata(path).await;
    assert_ne!(meta["secops.io/source-uid"], old_uid);
    assert_eq!(meta["secops.io/previous-source-uids"], old_uid);
    assert_eq!(meta["secops.io/source-cluster"], "cluster-a");
    assert_eq!(a.vault_versions(path).await, 2);
    // Another cluster's operators/app never overwrites it.
    b.seed(internal("v-from-b")).await;
    let run = push(&b).run().await;
    run.assert_code(3);
    assert!(run.stderr.contains("cluster-a"), "{}", run.stderr);
    assert_eq!(value_in_vault(&a, path).await, b"v2");
    assert_eq!(a.vault_versions(path).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_name_is_required_and_checked() {
    let env = Env::start().await;
    env.seed(db("apps", "db", "x")).await;
    let r = reference(&env, "apps", "db").await;
    for (value, why) in [("", "is required"), ("Not_A_Name", "not a cluster name")] {
        for step in [
            "write-vault",
            "mark-consumed",
            "push-secret",
            "audit-authority",
        ] {
            let args: Vec<&str> = match step {
                "write-vault" => vec!["--reference", &r],
                "mark-consumed" => vec!["--reference", &r, "--mode", "delete"],
                _ => vec!["--namespaces", "apps"],
            };
            let run = env
                .step(step)
                .env("SECOPS_CLUSTER_NAME", value)
                .args(args)
                .run()
                .await;
            run.assert_code(2);
            assert!(run.stderr.contains(why), "{step}: {}", run.stderr);
        }
    }
    assert!(env.secret("apps", "db").await.is_some());
    assert_eq!(env.vault_versions("apps/db").await, 0);
}
