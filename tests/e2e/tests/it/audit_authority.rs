//! audit-authority: every kind of violation planted is found; a clean environment is clean.

use e2e::{Env, SeedSecret, StepRun};

use crate::fixtures::all_types;
use serde_json::{json, Value};

const CANARY: &str = "canary-value-4f1d9c2e";

async fn audit(env: &Env, extra: &[&str]) -> StepRun {
    env.step("audit-authority")
        .args(["--namespaces", "apps,team"])
        .args(extra.iter().copied())
        .run()
        .await
}

fn report(run: &StepRun) -> Value {
    serde_json::from_str(run.output("report.json")).expect("report.json")
}

/// A clean handover plus an ESO-managed copy and an unrelated Secret.
async fn clean_env() -> Env {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", CANARY))
        .await;
    env.handover("apps", "delete").await;
    env.seed(
        SeedSecret::bootstrap("apps", "db-synced")
            .unlabeled()
            .label("reconcile.external-secrets.io/managed", "true")
            .kv("password", CANARY),
    )
    .await;
    env.seed(
        SeedSecret::bootstrap("team", "unrelated")
            .unlabeled()
            .kv("token", "something-else-entirely"),
    )
    .await;
    env
}

#[tokio::test]
async fn a_clean_environment_has_no_violations() {
    let env = clean_env().await;
    let run = audit(&env, &[]).await;
    run.assert_code(0);
    assert_eq!(run.output("violations"), "0");
    let r = report(&run);
    assert_eq!(r["violations"], json!([]));
    assert_eq!(r["checked"]["vaultSecrets"], 1);
    assert!(r["checked"]["secrets"].as_u64().unwrap() >= 2);
    let summary = run.audit().into_iter().last().unwrap();
    assert_eq!(summary["outcome"], "clean");
}

#[tokio::test]
async fn every_planted_violation_is_reported_by_reference_only() {
    let env = clean_env().await;
    // 1. A bootstrap Secret never consumed (grace 0s below).
    env.seed(SeedSecret::bootstrap("team", "forgotten").kv("k", "v"))
        .await;
    // 2. Consumed in inert mode, but data came back.
    env.seed(
        SeedSecret::bootstrap("apps", "inert")
            .label("secops.io/state", "consumed")
            .annotate("secops.io/consumed-mode", "inert")
            .kv("password", "refilled-value"),
    )
    .await;
    // 3. A bootstrap Secret where none may be.
    env.seed(SeedSecret::bootstrap("elsewhere", "stray").kv("k", "v"))
        .await;
    // 4. A Vault secret under a handover subtree without provenance.
    let (st, b) = env
        .vault_root(
            "POST",
            "secret/data/team/rogue",
            Some(json!({"data": {"x": "y"}})),
        )
        .await;
    assert!(st < 300, "{b}");
    // 5. Sprawl: a hand-made copy of the handed-over value.
    env.seed(
        SeedSecret::bootstrap("team", "copied")
            .unlabeled()
            .kv("pw", CANARY),
    )
    .await;
    // The cluster-wide LIST is opt-in (it needs the audit-cluster-wide component's binding).
    let run = audit(&env, &["--grace", "0s"]).await;
    run.assert_code(3);
    assert!(!run.stdout.contains("elsewhere/stray"), "{}", run.stdout);
    let run = audit(&env, &["--grace", "0s", "--cluster-wide=true"]).await;
    run.assert_code(3);
    let r = report(&run);
    let kinds: Vec<(String, String)> = r["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["object"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("bootstrap-not-consumed", "Secret team/forgotten"),
        ("inert-holds-data", "Secret apps/inert"),
        (
            "bootstrap-outside-allowed-namespaces",
            "Secret elsewhere/stray",
        ),
        ("vault-without-provenance", "Vault secret secret/team/rogue"),
        ("sprawl", "Secret team/copied"),
    ] {
        assert!(
            kinds.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} missing from {kinds:?}"
        );
    }
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    assert_eq!(run.output("violations"), "5");
    assert_eq!(run.output("count-sprawl"), "1");
    // References only: the copied value is nowhere in what the step wrote.
    let everything = format!("{}{}{:?}", run.stdout, run.stderr, run.outputs);
    assert!(!everything.contains(CANARY));
    assert!(!everything.contains("refilled-value"));
    // Report-only mode.
    audit(&env, &["--grace", "0s", "--fail-on-violations=false"])
        .await
        .assert_code(0);
    // Read-only: no Vault write, no Kubernetes write by the audit.
    let writes = env
        .kube
        .requests()
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .count();
    let again = audit(&env, &["--grace", "0s"]).await;
    again.assert_code(3);
    let writes_after = env
        .kube
        .requests()
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .count();
    assert_eq!(writes, writes_after, "audit-authority wrote to Kubernetes");
}

/// mark-consumed and audit-authority share one definition of inert: the placeholders a
/// typed Secret keeps (the API server requires its keys) are not data.
#[tokio::test]
async fn an_inert_handover_of_every_secret_type_audits_clean() {
    let env = Env::start().await;
    let seeds = all_types("apps");
    for s in &seeds {
        env.seed(s.clone()).await;
    }
    env.handover("apps", "inert").await;
    let run = audit(&env, &["--grace", "0s"]).await;
    let r = report(&run);
    assert_eq!(r["violations"], json!([]), "{}", run.stderr);
    run.assert_code(0);
    assert_eq!(r["checked"]["vaultSecrets"], seeds.len());
    // The same audit still sees a value that came back into one of them.
    let api = env.secrets("apps");
    let mut ssh = api.get("ssh").await.unwrap();
    ssh.data.as_mut().unwrap().insert(
        "ssh-privatekey".into(),
        k8s_openapi::ByteString(b"-----BEGIN OPENSSH PRIVATE KEY-----".to_vec()),
    );
    api.replace("ssh", &Default::default(), &ssh).await.unwrap();
    let run = audit(&env, &["--grace", "0s"]).await;
    run.assert_code(3);
    let kinds: Vec<Value> = report(&run)["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!([v["kind"], v["object"]]))
        .collect();
    assert_eq!(kinds, [json!(["inert-holds-data", "Secret apps/ssh"])]);
}

/// Large Secrets (Helm releases reach 1 MiB each) cost audit-authority one LIST page at a
/// time: values are reduced to keyed digests as each page arrives, so memory stays under the
/// template's limit however many there are, and a copy among them is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_secrets_are_audited_within_the_memory_limit() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", CANARY))
        .await;
    env.handover("apps", "delete").await;
    const N: usize = 48;
    let big = |i: usize| -> Vec<u8> {
        // ~1000 KiB of bytes that differ per Secret (no two are copies of each other).
        (0..1000 * 1024u32)
            .map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i as u8)
            .collect()
    };
    for i in 0..N {
        let mut s = SeedSecret::bootstrap("team", &format!("release-{i:02}"))
            .unlabeled()
            .typed("helm.sh/release.v1")
            .kv("release", big(i));
        if i == 7 {
            s = s.kv("leaked", CANARY);
        }
        env.seed(s).await;
    }
    // For contrast, every Secret in one page (as before paging); measured: ~150 MiB.
    for page in ["500"] {
        let (_, peak) = env
            .step("audit-authority")
            .args(["--namespaces", "apps,team", "--page-size", page])
            .run_measured()
            .await;
        eprintln!(
            "audit-authority over {N} Secrets of 1000 KiB, page size {page}: peak RSS {peak} KiB"
        );
    }
    let (run, peak_kib) = env
        .step("audit-authority")
        .args(["--namespaces", "apps,team"])
        .run_measured()
        .await;
    run.assert_code(3);
    let r = report(&run);
    let kinds: Vec<Value> = r["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!([v["kind"], v["object"]]))
        .collect();
    assert_eq!(kinds, [json!(["sprawl", "Secret team/release-07"])]);
    assert!(r["checked"]["secrets"].as_u64().unwrap() >= N as u64);
    // The limit the template had (it now has 96Mi, for headroom).
    let limit_kib = 64 * 1024;
    eprintln!(
        "audit-authority over {N} Secrets of 1000 KiB: peak RSS {} KiB (default page size 8)",
        peak_kib
    );
    assert!(
        peak_kib > 0 && peak_kib < limit_kib,
        "peak {peak_kib} KiB, limit {limit_kib} KiB"
    );
    assert!(!format!("{}{}", run.stdout, run.stderr).contains(CANARY));
}
