//! Crash consistency: the handover chain, its cluster-loss path (`provenance-updated`) and
//! push-secret killed at every request boundary (before the request, and with the request
//! landed but its answer lost), then re-run; the invariants hold after each. Boundaries are counted from an unfaulted run's request logs
//! of both servers. (rotate has its own matrix in `rotate.rs`.)

use std::time::Instant;

use e2e::{secret_bytes, Env, SeedSecret};
use serde_json::json;

use crate::chain::{
    audit_events, chain, check_audit, check_handed_over, check_never_consumed_before_vault,
    clear_faults, kill_at, merged_requests, shape, until_done, Server,
};
use crate::fixtures::binary_blob;

/// Killed runs give up fast; the re-runs keep the default budget.
const KILLED: &[(&str, &str)] = &[("SECOPS_RETRY_ATTEMPTS", "2")];

fn seed(ns: &str) -> SeedSecret {
    SeedSecret::bootstrap(ns, "db")
        .kv("username", "app")
        .kv("password", "crash-canary-pw")
        .kv("cert.der", binary_blob())
}

async fn handover_matrix(mode: &str) {
    let env = Env::start().await;
    // An unfaulted chain: its requests, in order, are the boundaries.
    env.seed(seed("base")).await;
    let t0 = Instant::now();
    let runs = chain(&env, "base", mode, &[]).await;
    assert!(runs.iter().all(|r| r.code == 0), "unfaulted chain");
    let log = shape(&merged_requests(&env, t0), "base");
    let n = log.len();
    assert!(n >= 12, "list, get, login, write, patch, ..: {log:?}");

    let mut covered = 0;
    for k in 0..n {
        for served in [false, true] {
            let ns = format!("k{k}-{}", if served { "lost" } else { "dead" });
            let s = seed(&ns);
            env.seed(s.clone()).await;
            let path = format!("{ns}/db");
            let t = Instant::now();
            kill_at(&env, &log, k, served);
            let killed = chain(&env, &ns, mode, KILLED).await;
            clear_faults(&env);
            // The kill took effect at boundary k: the step got exactly that far.
            let reached = shape(&merged_requests(&env, t), &ns);
            assert!(
                reached.len() > k && reached[..=k] == log[..=k],
                "{ns}: the killed chain did not reach boundary {k}: {reached:?}"
            );
            check_never_consumed_before_vault(&env, &s, &path).await;
            let rerun = until_done(&env, &ns, mode, &[], 4).await;
            let mut all = killed;
            all.extend(rerun);
            check_handed_over(&env, &s, &path, mode, &audit_events(&all)).await;
            if served {
                covered += 1;
            }
        }
    }
    println!("mode {mode}: each boundary killed before its request and with its answer lost");
    println!("kill points covered: {covered} of {n} request boundaries");
    assert_eq!(covered, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_delete_survives_a_kill_at_every_request_boundary() {
    handover_matrix("delete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_inert_survives_a_kill_at_every_request_boundary() {
    handover_matrix("inert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_ignore_survives_a_kill_at_every_request_boundary() {
    handover_matrix("ignore").await;
}

/// Hands `seed` over (delete mode) and returns the uid Vault's provenance then names.
async fn handed_over(env: &Env, seed: &SeedSecret) -> String {
    let uid = env.seed(seed.clone()).await.metadata.uid.unwrap();
    env.handover(&seed.namespace, "delete").await;
    assert_eq!(env.secret(&seed.namespace, &seed.name).await, None);
    uid
}

/// The provenance of `path`: (source uid, previous source uids).
async fn provenance(env: &Env, path: &str) -> (String, Vec<String>) {
    let meta = env.vault_custom_metadata(path).await;
    let previous = meta
        .get("secops.io/previous-source-uids")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    (meta["secops.io/source-uid"].clone(), previous)
}

/// The cluster-loss path (RFC 5.7): a bootstrap Secret re-created from Git after a rebuild
/// with the data Vault holds. write-vault's create-only write is refused, it reads and
/// compares, then moves the provenance to the new uid with one metadata PATCH
/// (`provenance-updated`); mark-consumed consumes. Killed at every request boundary of that
/// chain, before the request and with it landed but its answer lost, the re-run converges:
/// no data version added, the provenance moved to the new uid by exactly one PATCH (OpenBao's
/// audit log counts them), the old uid kept once, the Secret consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_loss_relink_survives_a_kill_at_every_request_boundary() {
    let mut env = Env::start().await;
    // An unfaulted run of the path: its requests, in order, are the boundaries.
    let base = seed("base");
    handed_over(&env, &base).await;
    env.rebuild_cluster().await;
    env.seed(base.clone()).await;
    let t0 = Instant::now();
    let runs = chain(&env, "base", "delete", &[]).await;
    assert!(runs.iter().all(|r| r.code == 0), "unfaulted chain");
    assert_eq!(runs[1].output("outcome"), "provenance-updated");
    let log = shape(&merged_requests(&env, t0), "base");
    let n = log.len();
    let patch = (
        Server::Vault,
        "PATCH".to_owned(),
        "/v1/secret/metadata/NS/db".to_owned(),
    );
    let data_check = log
        .iter()
        .position(|r| *r == (Server::Vault, "GET".into(), "/v1/secret/data/NS/db".into()))
        .expect("write-vault reads what Vault holds");
    assert!(
        log.iter().position(|r| *r == patch) > Some(data_check),
        "the provenance PATCH follows the data check: {log:?}"
    );

    // One Secret per kill point, handed over in this cluster, which is then lost too.
    let points: Vec<(usize, bool)> = (0..n).flat_map(|k| [(k, false), (k, true)]).collect();
    let name = |k: usize, served: bool| format!("r{k}-{}", if served { "lost" } else { "dead" });
    let mut old_uids = Vec::new();
    for &(k, served) in &points {
        old_uids.push(handed_over(&env, &seed(&name(k, served))).await);
    }
    env.rebuild_cluster().await;

    let mut covered = 0;
    for (&(k, served), old) in points.iter().zip(&old_uids) {
        let ns = name(k, served);
        let s = seed(&ns);
        let new = env.seed(s.clone()).await.metadata.uid.unwrap();
        assert_ne!(&new, old);
        let path = format!("{ns}/db");
        let audited = env.vault.accesses().len();
        let t = Instant::now();
        kill_at(&env, &log, k, served);
        let killed = chain(&env, &ns, "delete", KILLED).await;
        clear_faults(&env);
        let reached = shape(&merged_requests(&env, t), &ns);
        assert!(
            reached.len() > k && reached[..=k] == log[..=k],
            "{ns}: the killed chain did not reach boundary {k}: {reached:?}"
        );
        // After the kill: Vault's data as it was, the provenance either not moved yet or
        // moved whole (one PATCH), nothing consumed that Vault does not hold.
        assert_eq!(env.vault_versions(&path).await, 1, "{ns}: no data version");
        assert_eq!(env.vault_bytes(&path).await, s.bytes(), "{ns}: data");
        match provenance(&env, &path).await {
            (uid, previous) if uid == *old => assert!(previous.is_empty(), "{ns}: {previous:?}"),
            (uid, previous) if uid == new => {
                assert_eq!(previous, std::slice::from_ref(old), "{ns}")
            }
            (uid, _) => panic!("{ns}: provenance names {uid}, neither {old} nor {new}"),
        }
        check_never_consumed_before_vault(&env, &s, &path).await;

        let rerun = until_done(&env, &ns, "delete", &[], 4).await;
        assert_eq!(env.vault_versions(&path).await, 1, "{ns}: no data version");
        assert_eq!(env.vault_bytes(&path).await, s.bytes(), "{ns}: data");
        assert_eq!(
            provenance(&env, &path).await,
            (new.clone(), vec![old.clone()]),
            "{ns}: the provenance names the new uid and keeps the old one once"
        );
        let meta = env.vault_custom_metadata(&path).await;
        assert!(meta.contains_key("secops.io/source-relinked-at"), "{ns}");
        // Exactly one provenance PATCH reached Vault, whichever run made it.
        let patches = env.vault.accesses()[audited..]
            .iter()
            .filter(|a| a.operation == "patch" && a.path == format!("secret/metadata/{path}"))
            .count();
        assert_eq!(patches, 1, "{ns}: provenance PATCHes OpenBao audited");
        let mut all = killed;
        all.extend(rerun);
        let events = audit_events(&all);
        let writes: Vec<&str> = events
            .iter()
            .filter(|e| e["action"] == "write" && e["source"]["namespace"] == ns)
            .filter_map(|e| e["outcome"].as_str())
            .collect();
        assert!(!writes.contains(&"written"), "{ns}: {writes:?}");
        assert!(
            writes
                .iter()
                .filter(|o| **o == "provenance-updated")
                .count()
                <= 1,
            "{ns}: {writes:?}"
        );
        check_handed_over(&env, &s, &path, "delete", &events).await;
        if served {
            covered += 1;
        }
    }
    println!("cluster loss (provenance-updated): each boundary killed before its request and with its answer lost");
    println!("kill points covered: {covered} of {n} request boundaries");
    assert_eq!(covered, n);
}

fn internal(ns: &str) -> SeedSecret {
    SeedSecret::bootstrap(ns, "broker")
        .unlabeled()
        .label("secops.io/class", "internal")
        .kv("password", "push-canary-pw")
        .kv("ca.p12", binary_blob())
}

async fn push(env: &Env, ns: &str, envs: &[(&str, &str)]) -> e2e::StepRun {
    let mut s = env.step("push-secret").args(["--namespaces", ns]);
    for (k, v) in envs {
        s = s.env(k, *v);
    }
    s.run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_survives_a_kill_at_every_request_boundary() {
    let env = Env::start().await;
    env.seed(internal("base")).await;
    let t0 = Instant::now();
    push(&env, "base", &[]).await.assert_code(0);
    let log = shape(&merged_requests(&env, t0), "base");
    let n = log.len();
    assert!(n >= 5, "list, login, read, write, patch, ..: {log:?}");

    let mut covered = 0;
    for k in 0..n {
        for served in [false, true] {
            let ns = format!("p{k}-{}", if served { "lost" } else { "dead" });
            let s = internal(&ns);
            let created = env.seed(s.clone()).await;
            let path = format!("internal/{ns}/broker");
            let t = Instant::now();
            kill_at(&env, &log, k, served);
            let killed = push(&env, &ns, KILLED).await;
            clear_faults(&env);
            let reached = shape(&merged_requests(&env, t), &ns);
            assert!(
                reached.len() > k && reached[..=k] == log[..=k],
                "{ns}: the killed run did not reach boundary {k}: {reached:?}"
            );
            assert!(env.vault_versions(&path).await <= 1, "{ns}");
            // Re-run until it reports success, then once more: nothing new.
            let mut runs = vec![killed];
            for _ in 0..3 {
                let r = push(&env, &ns, &[]).await;
                let ok = r.code == 0;
                runs.push(r);
                if ok {
                    break;
                }
            }
            runs.last().unwrap().assert_code(0);
            let again = push(&env, &ns, &[]).await;
            again.assert_code(0);
            assert_eq!(again.output("pushed"), "0", "{ns}: a re-run writes nothing");
            assert_eq!(env.vault_versions(&path).await, 1, "{ns}: one version");
            assert_eq!(env.vault_bytes(&path).await, s.bytes(), "{ns}: exact data");
            let meta = env.vault_custom_metadata(&path).await;
            assert_eq!(meta["secops.io/owner"], "push-secret", "{ns}");
            assert_eq!(
                meta["secops.io/source-uid"],
                created.metadata.uid.clone().unwrap(),
                "{ns}: provenance"
            );
            // The source is never touched.
            let live = env.secret(&ns, "broker").await.expect("source kept");
            assert_eq!(
                live.metadata.resource_version,
                created.metadata.resource_version
            );
            assert_eq!(secret_bytes(&live), s.bytes());
            // Audit: at most one `pushed`, every success names version 1.
            let events = audit_events(&runs);
            let pushed = events.iter().filter(|e| e["outcome"] == "pushed").count();
            assert!(pushed <= 1, "{ns}: {pushed} pushed events");
            for e in events
                .iter()
                .filter(|e| e["outcome"] == "pushed" || e["outcome"] == "unchanged")
            {
                assert_eq!(e["target"]["version"], json!(1), "{ns}: {e}");
            }
            if served {
                covered += 1;
            }
        }
    }
    println!("push-secret: each boundary killed before its request and with its answer lost");
    println!("kill points covered: {covered} of {n} request boundaries");
    assert_eq!(covered, n);
    let _ = check_audit;
}
