//! Crash consistency: the handover chain and push-secret killed at every request boundary
//! (before the request, and with the request landed but its answer lost), then re-run; the
//! invariants hold after each. Boundaries are counted from an unfaulted run's request logs
//! of both servers. (rotate has its own matrix in `rotate.rs`.)

use std::time::Instant;

use e2e::{secret_bytes, Env, SeedSecret};
use serde_json::json;

use crate::chain::{
    audit_events, chain, check_audit, check_handed_over, check_never_consumed_before_vault,
    clear_faults, kill_at, merged_requests, shape, until_done,
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
