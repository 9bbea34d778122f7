//! RFC 5.7 failure-mode drills, end to end: one test per failure mode, the step processes
//! (or the shipped WorkflowTemplate through `e2e::argo`) against the test servers, each
//! asserting every property the RFC and the runbook (`docs/runbook.md`) promise. The runbook
//! section of each drill names its test.

use std::time::Instant;

use e2e::argo::{install_vault_config, workflow_file, Phase, Runner, WorkflowRun};
use e2e::{annotation, eso, label, secret_bytes, Env, SeedSecret, StepRun};
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

use crate::chain::{audit_events, chain, check_handed_over, check_never_consumed_before_vault};
use crate::fixtures::binary_blob;

/// Requests to the KV mount since `t` that are not reads: what a step wrote to Vault.
fn vault_writes_since(env: &Env, t: Instant) -> Vec<(String, String)> {
    env.vault
        .requests_at()
        .into_iter()
        .filter(|(at, m, p)| *at >= t && m != "GET" && p.starts_with("/v1/secret/"))
        .map(|(_, m, p)| (m, p))
        .collect()
}

/// Data writes (a new version) since `t`, metadata aside.
fn vault_data_writes_since(env: &Env, t: Instant) -> Vec<(String, String)> {
    vault_writes_since(env, t)
        .into_iter()
        .filter(|(_, p)| !p.starts_with("/v1/secret/metadata/"))
        .collect()
}

/// Every version of a KV v2 secret as Vault's metadata lists them (number, creation time,
/// deletion): any write that created or changed a version changes this.
async fn version_history(env: &Env, path: &str) -> Value {
    let (st, body) = env
        .vault_root("GET", &format!("secret/metadata/{path}"), None)
        .await;
    assert_eq!(st, 200, "{path}: {body}");
    body["data"]["versions"].clone()
}

async fn submit_handover(env: &Env, args: &[(&str, &str)]) -> WorkflowRun {
    let url = env.vault.url();
    let mut all = vec![("vault-addr", url.as_str())];
    all.extend_from_slice(args);
    Runner::new(env)
        .submit(workflow_file("secret-handover.yaml"), &all)
        .await
        .expect("submit")
}

fn audit_of(run: &WorkflowRun, template: &str) -> Vec<Value> {
    run.pods_of(template)
        .iter()
        .flat_map(|p| p.audit())
        .collect()
}

/// Bootstrap failure: GitOps delivered only part of the bootstrap Secrets and some are
/// malformed. The shipped workflow hands over the valid ones, reports the rest (exit 3 on the
/// discover node, an audit line per refusal naming it, the reason and the next step), leaves
/// no partial state, and completes on a re-run once the Secrets are fixed and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_bootstrap_failure_hands_over_the_valid_and_completes_once_fixed() {
    let env = Env::start().await;
    install_vault_config(&env).await.expect("templates/vault");
    let valid = [
        SeedSecret::bootstrap("apps", "db")
            .kv("username", "app")
            .kv("password", "db-pw"),
        SeedSecret::bootstrap("apps", "blob").kv("cert.der", binary_blob()),
    ];
    for s in &valid {
        env.seed(s.clone()).await;
    }
    // Malformed: a path annotation escaping the namespace's subtree, and an empty Secret.
    let escape = SeedSecret::bootstrap("apps", "escape")
        .annotate("secops.io/vault-path", "billing/payments")
        .kv("token", "escape-token");
    env.seed(escape.clone()).await;
    env.seed(SeedSecret::bootstrap("apps", "empty")).await;
    // `late` is not delivered yet.
    let late = SeedSecret::bootstrap("apps", "late").kv("key", "late-key");

    let run = submit_handover(&env, &[("namespaces", "apps"), ("consume-mode", "delete")]).await;
    // The refusals stop nobody else: the workflow goes on with the valid references.
    run.assert_phase(Phase::Succeeded);
    let discover = run.pod("read-bootstrap");
    assert_eq!(discover.exit_codes, [3], "{}", run.summary());
    assert_eq!(discover.phase, Phase::Failed);
    assert_eq!(discover.output("count"), "2");
    let refused: Vec<Value> = discover
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "discover" && e["outcome"] == "refused")
        .collect();
    let names: Vec<&str> = refused
        .iter()
        .map(|e| e["source"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{refused:?}");
    assert!(
        names.contains(&"escape") && names.contains(&"empty"),
        "{names:?}"
    );
    for e in &refused {
        let reason = e["reason"].as_str().unwrap();
        let name = e["source"]["name"].as_str().unwrap();
        crate::refusals::assert_names_object_reason_and_next_step(
            reason,
            &format!("Secret apps/{name}"),
        );
    }
    for template in ["write-vault", "mark-consumed"] {
        let pods = run.pods_of(template);
        assert_eq!(pods.len(), 2, "{template}: the valid ones only");
        assert!(
            pods.iter().all(|p| p.exit_codes == [0]),
            "{}",
            run.summary()
        );
    }
    for s in &valid {
        let path = format!("apps/{}", s.name);
        check_handed_over(&env, s, &path, "delete", &audit_of(&run, "mark-consumed")).await;
    }
    // No partial state: no Vault path for the refused, nothing of theirs consumed or altered.
    for path in ["apps/escape", "billing/payments", "apps/empty", "apps/late"] {
        assert_eq!(env.vault_versions(path).await, 0, "{path}");
    }
    check_never_consumed_before_vault(&env, &escape, "apps/escape").await;
    let empty = env.secret("apps", "empty").await.expect("kept");
    assert_eq!(label(&empty, "secops.io/state"), None);

    // The operator fixes Git: the annotation goes, the empty one gets its data, `late` arrives.
    let fix = json!({"metadata": {"annotations": {"secops.io/vault-path": null}}});
    env.secrets("apps")
        .patch("escape", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .unwrap();
    let fill = json!({"data": {"key": "ZW1wdHktbm8tbW9yZQ=="}});
    env.secrets("apps")
        .patch("empty", &PatchParams::default(), &Patch::Merge(&fill))
        .await
        .unwrap();
    env.seed(late.clone()).await;
    let fixed_escape = SeedSecret::bootstrap("apps", "escape").kv("token", "escape-token");
    let fixed_empty = SeedSecret::bootstrap("apps", "empty").kv("key", "empty-no-more");

    let t = Instant::now();
    let rerun = submit_handover(&env, &[("namespaces", "apps"), ("consume-mode", "delete")]).await;
    rerun.assert_phase(Phase::Succeeded);
    assert_eq!(
        rerun.pod("read-bootstrap").exit_codes,
        [0],
        "{}",
        rerun.summary()
    );
    assert_eq!(rerun.pod("read-bootstrap").output("count"), "3");
    for s in [&fixed_escape, &fixed_empty, &late] {
        let path = format!("apps/{}", s.name);
        check_handed_over(&env, s, &path, "delete", &audit_of(&rerun, "mark-consumed")).await;
    }
    // What was handed over the first time is not written again.
    let again: Vec<_> = vault_data_writes_since(&env, t)
        .into_iter()
        .filter(|(_, p)| p.ends_with("/apps/db") || p.ends_with("/apps/blob"))
        .collect();
    assert!(again.is_empty(), "{again:?}");
    for s in &valid {
        assert_eq!(env.vault_versions(&format!("apps/{}", s.name)).await, 1);
    }
    assert_eq!(env.vault_versions("billing/payments").await, 0);
}

fn seeds(ns: &str) -> Vec<SeedSecret> {
    (1..=4)
        .map(|i| {
            SeedSecret::bootstrap(ns, &format!("s{i}"))
                .kv("password", format!("pw-{i}"))
                .kv("cert.der", binary_blob())
        })
        .collect()
}

/// write-vault then mark-consumed over one batch of references, as the batch pod runs them
/// (mark-consumed only when write-vault succeeded: a containerSet dependency).
async fn batch_pass(env: &Env, refs_file: &str, mode: &str) -> (StepRun, Option<StepRun>) {
    let wv = env
        .step("write-vault")
        .env("SECOPS_CONCURRENCY", "1")
        .env("SECOPS_RETRY_ATTEMPTS", "2")
        .args(["--reference-file", refs_file])
        .run()
        .await;
    if wv.code != 0 {
        return (wv, None);
    }
    let mc = env
        .step("mark-consumed")
        .args(["--reference-file", refs_file, "--mode", mode])
        .run()
        .await;
    (wv, Some(mc))
}

/// A batch item's outcome: `result.outcome` when it succeeded, else the failure class.
fn item_outcome(item: &Value) -> String {
    item["result"]["outcome"]
        .as_str()
        .or(item["outcome"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn results(run: &StepRun) -> Vec<Value> {
    serde_json::from_str(run.output("result.json")).expect("result.json")
}

/// Handover failure: Vault fails (503) or rejects (403) mid-batch. The items Vault took are
/// done; for the failed ones Vault is unchanged, their bootstrap Secrets stay authoritative
/// and unconsumed; a re-run of the same batch completes them, one version each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_handover_failure_mid_batch_leaves_the_failed_authoritative_and_a_rerun_completes() {
    let env = Env::start().await;
    for (ns, status, code) in [("fails", 503u16, 5), ("rejects", 403, 3)] {
        let seeds = seeds(ns);
        for s in &seeds {
            env.seed(s.clone()).await;
        }
        let rb = env
            .step("read-bootstrap")
            .args(["--namespaces", ns])
            .run()
            .await;
        rb.assert_code(0);
        let refs_file = rb.outputs_dir.join("references.json");
        let refs_file = refs_file.to_str().unwrap();
        // login, the batch's capability check, then write + provenance PATCH per item, one
        // item at a time: the first two items land, Vault fails every request after.
        env.vault
            .set_fault(Some(fault_injection::Fault::FailAfter { ok: 6, status }));
        let (wv, mc) = batch_pass(&env, refs_file, "inert").await;
        env.vault.set_fault(None);
        wv.assert_code(code);
        assert!(mc.is_none());
        let per_item = results(&wv);
        assert_eq!(per_item.len(), 4, "{per_item:?}");
        for (i, item) in per_item.iter().enumerate() {
            let path = format!("{ns}/s{}", i + 1);
            if i < 2 {
                assert_eq!(item_outcome(item), "written", "{path}: {item}");
                assert_eq!(env.vault_versions(&path).await, 1, "{path}");
            } else {
                let failed = if status == 403 {
                    "refused"
                } else {
                    "unavailable"
                };
                assert_eq!(item_outcome(item), failed, "{path}: {item}");
                let error = item["error"].as_str().unwrap();
                assert!(error.contains(&path), "{path}: {error}");
                if status == 403 {
                    crate::refusals::refusal_parts(error);
                }
                assert_eq!(
                    env.vault_versions(&path).await,
                    0,
                    "{path}: Vault unchanged"
                );
            }
        }
        // Nothing is consumed; every bootstrap Secret still holds its data.
        for s in &seeds {
            let live = env.secret(ns, &s.name).await.expect("kept");
            assert_eq!(label(&live, "secops.io/state"), None, "{}", s.name);
            assert_eq!(secret_bytes(&live), s.bytes(), "{}", s.name);
            check_never_consumed_before_vault(&env, s, &format!("{ns}/{}", s.name)).await;
        }

        // Vault is back (or the policy fixed): the same batch again completes every item.
        let (wv, mc) = batch_pass(&env, refs_file, "inert").await;
        wv.assert_code(0);
        let outcomes: Vec<String> = results(&wv).iter().map(item_outcome).collect();
        assert_eq!(outcomes, ["unchanged", "unchanged", "written", "written"]);
        let mc = mc.expect("consumed after the write");
        mc.assert_code(0);
        let mut runs = vec![wv, mc];
        runs.extend(chain(&env, ns, "inert", &[]).await);
        for s in &seeds {
            let path = format!("{ns}/{}", s.name);
            check_handed_over(&env, s, &path, "inert", &audit_events(&runs)).await;
        }
    }
}

fn internal(ns: &str, name: &str, value: &str) -> SeedSecret {
    SeedSecret::bootstrap(ns, name)
        .unlabeled()
        .label("secops.io/class", "internal")
        .kv("password", value)
}

async fn rotate(env: &Env, id: &str) -> StepRun {
    env.step("rotate")
        .env("SECOPS_RETRY_ATTEMPTS", "2")
        .args([
            "--path",
            "apps/db",
            "--key",
            "password=hex:bytes=16",
            "--rotation-id",
            id,
        ])
        .run()
        .await
}

async fn push(env: &Env) -> StepRun {
    env.step("push-secret")
        .env("SECOPS_RETRY_ATTEMPTS", "2")
        .args(["--namespaces", "platform"])
        .run()
        .await
}

/// Runtime authority failure: Vault sealed, then down, for a while. rotate and push-secret
/// exit 5 and write nothing; the Secrets ESO materialized stay as they are (and a sync that
/// cannot read Vault leaves them); after unseal or restart the very same scheduled commands
/// complete without any manual repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_runtime_authority_failure_exits_5_keeps_materialized_secrets_and_resumes() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "initial"))
        .await;
    env.handover("apps", "delete").await;
    eso::apply_external_secret(&env, "apps", "db", "apps/db", &[]).await;
    let report = eso::sync(&env, "apps").await;
    assert_eq!(report.synced, ["apps/db"], "{report:?}");
    let first = env.secret("apps", "db").await.expect("materialized");
    assert_eq!(secret_bytes(&first)["password"], b"initial");
    env.seed(internal("platform", "broker", "broker-pw-1"))
        .await;

    for (outage, rotation_id) in [
        ("sealed", "2026-01-01T00:00:00Z"),
        ("down", "2026-01-08T00:00:00Z"),
    ] {
        let version = env.vault_versions("apps/db").await;
        let materialized = env.secret("apps", "db").await.expect("materialized");
        let t = Instant::now();
        match outage {
            "sealed" => env.vault.seal().await,
            _ => env.vault.stop_listening().await,
        }
        let r = rotate(&env, rotation_id).await;
        r.assert_code(5);
        let p = push(&env).await;
        p.assert_code(5);
        for run in [&r, &p] {
            assert!(
                run.stderr.contains("retry once Vault is available"),
                "{outage}: {}",
                run.stderr
            );
        }
        // ESO cannot read either: it keeps the Secret it materialized, unchanged.
        let report = eso::sync(&env, "apps").await;
        assert_eq!(report.not_synced.len(), 1, "{outage}: {report:?}");
        let live = env.secret("apps", "db").await.expect("still materialized");
        assert_eq!(
            live.metadata.resource_version, materialized.metadata.resource_version,
            "{outage}: the materialized Secret is untouched"
        );
        assert_eq!(secret_bytes(&live), secret_bytes(&materialized), "{outage}");
        // Vault back: nothing was written during the outage.
        match outage {
            "sealed" => env.vault.unseal().await,
            _ => env.vault.start_listening().await.unwrap(),
        }
        let writes = vault_writes_since(&env, t);
        assert!(writes.is_empty(), "{outage}: {writes:?}");
        assert_eq!(env.vault_versions("apps/db").await, version, "{outage}");

        // The next scheduled run: the same commands, no repair.
        let r = rotate(&env, rotation_id).await;
        r.assert_code(0);
        assert_eq!(
            env.vault_versions("apps/db").await,
            version + 1,
            "{outage}: one rotation"
        );
        rotate(&env, rotation_id).await.assert_code(0);
        assert_eq!(
            env.vault_versions("apps/db").await,
            version + 1,
            "{outage}: once per id"
        );
        push(&env).await.assert_code(0);
        assert_eq!(
            env.vault_bytes("internal/platform/broker").await["password"],
            b"broker-pw-1"
        );
        // And ESO picks the rotated value up on its next sync.
        let report = eso::sync(&env, "apps").await;
        assert_eq!(report.synced, ["apps/db"], "{report:?}");
        let now = env.secret("apps", "db").await.unwrap();
        assert_eq!(
            secret_bytes(&now)["password"],
            env.vault_bytes("apps/db").await["password"]
        );
        assert_ne!(
            secret_bytes(&now)["password"],
            secret_bytes(&materialized)["password"]
        );
    }
}

/// The Secrets GitOps delivers, again and again: the same fixtures every time.
fn git_fixtures() -> Vec<SeedSecret> {
    vec![
        SeedSecret::bootstrap("apps", "db")
            .kv("username", "app")
            .kv("password", "db-pw-from-git"),
        SeedSecret::bootstrap("apps", "api").kv("token", "api-token-from-git"),
        SeedSecret::bootstrap("apps", "blob").kv("cert.der", binary_blob()),
    ]
}

async fn apply_git(env: &Env) -> Vec<String> {
    let mut uids = Vec::new();
    for s in git_fixtures() {
        let created = env.seed(s).await;
        uids.push(created.metadata.uid.unwrap());
    }
    eso::apply_external_secret(env, "apps", "db", "apps/db", &[]).await;
    eso::apply_external_secret(env, "apps", "api", "apps/api", &[]).await;
    eso::apply_external_secret(env, "apps", "blob", "apps/blob", &["cert.der"]).await;
    uids
}

fn outcome_of(runs: &[StepRun], step_action: &str, name: &str) -> Vec<String> {
    audit_events(runs)
        .into_iter()
        .filter(|e| e["action"] == step_action && e["source"]["name"] == name)
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// Cluster loss: Kubernetes is rebuilt from Git, so every bootstrap Secret comes back with a
/// new uid while Vault holds the runtime secrets, one of them rotated since. Re-running the
/// handover is not stuck and never writes Vault data: the equal ones are consumed with their
/// provenance moved to the new uid (the old uid kept), the rotated one is consumed without a
/// write and reported (Vault is authoritative). ESO then restores every Secret from Vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_cluster_loss_consumes_recreated_secrets_without_writing_vault_and_eso_restores() {
    let mut env = Env::start().await;
    let old_uids = apply_git(&env).await;
    let first = chain(&env, "apps", "delete", &[]).await;
    assert!(first.iter().all(|r| r.code == 0));
    assert_eq!(eso::sync(&env, "apps").await.synced.len(), 3);
    // Rotated in Vault since: Git still holds the bootstrap value.
    env.step("rotate")
        .args([
            "--path",
            "apps/api",
            "--key",
            "token=hex",
            "--rotation-id",
            "r-1",
        ])
        .run()
        .await
        .assert_code(0);
    let rotated = env.vault_bytes("apps/api").await["token"].clone();
    let mut before = Vec::new();
    for p in ["apps/db", "apps/api", "apps/blob"] {
        before.push((
            p,
            env.vault_versions(p).await,
            version_history(&env, p).await,
        ));
    }
    assert_eq!(before[1].1, 2);

    // The cluster is lost and rebuilt from Git: same Secrets, new uids; Vault keeps its state.
    env.rebuild_cluster().await;
    assert!(env.secret("apps", "db").await.is_none(), "a fresh cluster");
    let new_uids = apply_git(&env).await;
    for (o, n) in old_uids.iter().zip(&new_uids) {
        assert_ne!(o, n);
    }

    // The handover again, as the workflow runs it, with write-vault run twice per Secret (an
    // Argo retry, or a re-submitted workflow): the second is a no-op.
    let t = Instant::now();
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps"])
        .run()
        .await;
    rb.assert_code(0);
    let refs = rb.references();
    assert_eq!(refs.len(), 3, "all three found again");
    // First the plan, as an operator would look at it after a rebuild: a dry run names the
    // provenance move and the Vault-differs case, and sends Vault no write at all.
    let dry_at = Instant::now();
    let mut plans = Vec::new();
    for r in &refs {
        let dry = env
            .step("write-vault")
            .args(["--reference", &r.to_string(), "--dry-run"])
            .run()
            .await;
        dry.assert_code(0);
        plans.extend(dry.plan().iter().map(|l| l.to_string()));
    }
    assert!(
        vault_writes_since(&env, dry_at).is_empty(),
        "a dry run writes nothing"
    );
    for name in ["db", "blob"] {
        assert!(
            plans.iter().any(|l| l.starts_with(&format!(
                "plan: would-write Secret apps/{name} -> Vault secret/apps/{name} version 1: the Secret was re-created"
            ))),
            "{name}: {plans:#?}"
        );
    }
    assert!(
        plans.iter().any(|l| l
            .starts_with("plan: skip Secret apps/api -> Vault secret/apps/api version 2")
            && l.contains("Vault is authoritative")),
        "{plans:#?}"
    );
    let mut runs = vec![rb];
    for r in refs {
        let r = r.to_string();
        let wv = env.write_vault(&r).await;
        wv.assert_code(0);
        let again = env.write_vault(&r).await;
        again.assert_code(0);
        let mc = env
            .mark_consumed(&r, Some(wv.output("vault-version")), "delete")
            .await;
        mc.assert_code(0);
        runs.extend([wv, again, mc]);
    }
    // No Vault data write at all: write-vault's one create-only (cas=0) attempt per run was
    // refused by Vault, every version is as it was (same numbers, same creation times), and
    // the only other non-read requests are the two provenance PATCHes.
    let mut attempts: Vec<String> = vault_writes_since(&env, t)
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [
            "PATCH /v1/secret/metadata/apps/blob",
            "PATCH /v1/secret/metadata/apps/db",
            "POST /v1/secret/data/apps/api",
            "POST /v1/secret/data/apps/api",
            "POST /v1/secret/data/apps/blob",
            "POST /v1/secret/data/apps/blob",
            "POST /v1/secret/data/apps/db",
            "POST /v1/secret/data/apps/db",
        ]
    );
    for (p, v, versions) in &before {
        assert_eq!(env.vault_versions(p).await, *v, "{p}: no new version");
        assert_eq!(
            &version_history(&env, p).await,
            versions,
            "{p}: versions untouched"
        );
    }
    // Equal data: consumed as a no-op for Vault, provenance moved, old uid kept.
    for (i, name) in [(0, "db"), (2, "blob")] {
        assert_eq!(
            outcome_of(&runs, "write", name),
            ["provenance-updated", "unchanged"],
            "{name}"
        );
        assert_eq!(
            outcome_of(&runs, "consume", name),
            ["deleting", "consumed"],
            "{name}"
        );
        assert!(
            env.secret("apps", name).await.is_none(),
            "{name}: consumed (deleted)"
        );
        let meta = env.vault_custom_metadata(&format!("apps/{name}")).await;
        assert_eq!(meta["secops.io/source-uid"], new_uids[i], "{name}");
        assert_eq!(
            meta["secops.io/previous-source-uids"], old_uids[i],
            "{name}"
        );
        assert_eq!(
            env.vault_bytes(&format!("apps/{name}")).await,
            git_fixtures()[i].bytes()
        );
    }
    // Rotated since: consumed without a write, reported, Vault authoritative.
    assert_eq!(
        outcome_of(&runs, "write", "api"),
        ["vault-differs", "vault-differs"]
    );
    assert_eq!(
        outcome_of(&runs, "consume", "api"),
        ["deleting", "consumed-vault-differs"]
    );
    assert!(env.secret("apps", "api").await.is_none());
    assert_eq!(env.vault_bytes("apps/api").await["token"], rotated);
    let meta = env.vault_custom_metadata("apps/api").await;
    assert_eq!(meta["secops.io/source-uid"], old_uids[1], "untouched");
    let report = audit_events(&runs)
        .into_iter()
        .find(|e| e["action"] == "write" && e["source"]["name"] == "api")
        .unwrap();
    assert_eq!(report["target"]["path"], "apps/api");
    assert_eq!(report["target"]["version"], 2);
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("Vault is authoritative"),
        "{report}"
    );
    let warning = env.events("apps").await.into_iter().find(|e| {
        e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("VaultAuthoritative")
    });
    let warning = warning.expect("a Warning Event on the re-created Secret");
    let msg = warning.message.unwrap_or_default();
    assert!(msg.contains("secret/apps/api version 2"), "{msg}");
    assert!(msg.contains("Vault is authoritative"), "{msg}");
    assert_eq!(
        warning.involved_object.uid.as_deref(),
        Some(new_uids[1].as_str())
    );

    // A later run finds nothing left and touches Vault no more.
    let t = Instant::now();
    let again = chain(&env, "apps", "delete", &[]).await;
    again[0].assert_code(0);
    assert!(again[0].references().is_empty());
    let writes = vault_writes_since(&env, t);
    assert!(writes.is_empty(), "{writes:?}");

    // Materialization: ESO restores every Secret from Vault, the rotated value included.
    let report = eso::sync(&env, "apps").await;
    assert_eq!(report.synced.len(), 3, "{report:?}");
    for (i, s) in git_fixtures().iter().enumerate() {
        let live = env.secret("apps", &s.name).await.expect("restored");
        assert_eq!(label(&live, eso::MANAGED_LABEL), Some("true"));
        assert_eq!(annotation(&live, "secops.io/consumed-by"), None);
        let want = env.vault_bytes(&format!("apps/{}", s.name)).await;
        assert_eq!(secret_bytes(&live), want, "{}", s.name);
        if i != 1 {
            assert_eq!(secret_bytes(&live), s.bytes(), "{}: the Git value", s.name);
        }
    }
    assert_eq!(
        secret_bytes(&env.secret("apps", "api").await.unwrap())["token"],
        rotated,
        "the rotated value, not Git's"
    );
}
