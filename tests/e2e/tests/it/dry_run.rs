//! `--dry-run` on every step: the plan is printed (`plan: ` lines and `plan.json`), both
//! servers are left exactly as they were (every Secret and Event, every Vault path's data and
//! metadata, and no mutating request in either server's log: a dry run may only log in to
//! Vault and revoke its own login token), and a refusal exits with the real run's code.

use std::collections::BTreeMap;

use e2e::{vault_call, Env, SeedSecret, StepRun};
use kube::api::ListParams;
use serde_json::Value;

const APPS: &str = "apps";

/// Everything a step could change, as JSON: the Secrets and Events of `namespaces` and the
/// data and metadata of `paths` in OpenBao's KV v2 mount.
#[derive(Debug, PartialEq)]
struct Snapshot {
    secrets: BTreeMap<String, Value>,
    events: BTreeMap<String, usize>,
    vault: BTreeMap<String, (u16, Value, u16, Value)>,
}

async fn snapshot(env: &Env, namespaces: &[&str], paths: &[&str]) -> Snapshot {
    let mut secrets = BTreeMap::new();
    let mut events = BTreeMap::new();
    for ns in namespaces {
        for s in env
            .secrets(ns)
            .list(&ListParams::default())
            .await
            .expect("list")
        {
            let key = format!("{ns}/{}", s.metadata.name.clone().unwrap_or_default());
            secrets.insert(key, serde_json::to_value(&s).unwrap());
        }
        events.insert(ns.to_string(), env.events(ns).await.len());
    }
    let mut vault = BTreeMap::new();
    for p in paths {
        let (ds, d) = env
            .vault_root("GET", &format!("secret/data/{p}"), None)
            .await;
        let (ms, m) = env
            .vault_root("GET", &format!("secret/metadata/{p}"), None)
            .await;
        vault.insert(
            p.to_string(),
            (ds, d["data"].clone(), ms, m["data"].clone()),
        );
    }
    Snapshot {
        secrets,
        events,
        vault,
    }
}

/// Requests that change Vault: anything but reads, logins, the capability check (a POST
/// that reads) and revoking the login token.
fn vault_mutations(log: &[(String, String)]) -> Vec<(String, String)> {
    log.iter()
        .filter(|(m, p)| {
            !matches!(m.as_str(), "GET" | "LIST")
                && !(m == "POST"
                    && (p.ends_with("/login")
                        || p == "/v1/auth/token/revoke-self"
                        || p == "/v1/sys/capabilities-self"))
        })
        .cloned()
        .collect()
}

/// Requests that change Kubernetes: anything but reads (Events included).
fn kube_mutations(log: &[(String, String)]) -> Vec<(String, String)> {
    log.iter().filter(|(m, _)| m != "GET").cloned().collect()
}

/// Runs `step` (built by the caller with `--dry-run`) and asserts it wrote nothing anywhere
/// and printed its plan; returns the run.
async fn dry(
    env: &Env,
    namespaces: &[&str],
    paths: &[&str],
    step: impl std::future::Future<Output = StepRun>,
) -> StepRun {
    let before = snapshot(env, namespaces, paths).await;
    let (v0, k0) = (env.vault.requests().len(), env.kube.requests().len());
    let run = step.await;
    let vault_writes = vault_mutations(&env.vault.requests()[v0..]);
    let kube_writes = kube_mutations(&env.kube.requests()[k0..]);
    assert!(
        vault_writes.is_empty(),
        "dry run wrote to Vault: {vault_writes:?}"
    );
    assert!(
        kube_writes.is_empty(),
        "dry run wrote to Kubernetes: {kube_writes:?}"
    );
    assert_eq!(
        snapshot(env, namespaces, paths).await,
        before,
        "dry run changed state"
    );
    assert_plan(&run);
    run
}

/// Every dry run prints its plan, writes plan.json with the same exit code, and marks its
/// audit events.
fn assert_plan(run: &StepRun) {
    let plan = run.plan();
    let last = plan.last().unwrap_or_else(|| {
        panic!(
            "no plan printed\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    });
    assert!(last.contains("nothing was written"), "{last}");
    let json: Value = serde_json::from_str(run.output("plan.json")).expect("plan.json");
    assert_eq!(json["dryRun"], true);
    assert_eq!(json["exitCode"], run.code, "{json}");
    assert_eq!(
        json["items"].as_array().unwrap().len() + 1,
        plan.len(),
        "one line per item plus the summary: {plan:?}"
    );
    for ev in run.audit() {
        assert_eq!(
            ev["dryRun"], true,
            "audit event without the dry-run mark: {ev}"
        );
        assert!(
            !matches!(
                ev["outcome"].as_str(),
                Some(
                    "written"
                        | "consumed"
                        | "consumed-vault-differs"
                        | "deleting"
                        | "rotated"
                        | "pushed"
                        | "initialized"
                        | "unsealed"
                        | "established"
                )
            ),
            "a dry run's audit claims a change: {ev}"
        );
    }
}

#[track_caller]
fn says(run: &StepRun, line: &str) {
    assert!(
        run.plan().iter().any(|l| l.starts_with(line)),
        "no plan line starting {line:?} in {:#?}",
        run.plan()
    );
}

fn db() -> SeedSecret {
    SeedSecret::bootstrap(APPS, "db")
        .kv("username", "app")
        .kv("password", "pw-dry-run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_bootstrap_plans_what_it_selects_skips_and_refuses_with_the_real_exit_code() {
    let env = Env::start().await;
    env.seed(db()).await;
    env.seed(
        SeedSecret::bootstrap(APPS, "escape")
            .kv("k", "v")
            .annotate("secops.io/vault-path", "other/escape"),
    )
    .await;
    let step = || {
        env.step("read-bootstrap")
            .args(["--namespaces", APPS, "--dry-run"])
            .run()
    };
    let run = dry(&env, &[APPS], &[], step()).await;
    says(&run, "plan: select Secret apps/db");
    says(&run, "plan: refuse Secret apps/escape");
    // It writes nothing anyway, so it hands the references it found on (a dry-run chain).
    assert_eq!(run.references().len(), 1);
    let real = env
        .step("read-bootstrap")
        .args(["--namespaces", APPS])
        .run()
        .await;
    assert_eq!(run.code, real.code, "exit code parity");
    assert_eq!(real.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_vault_plans_version_1_and_a_later_real_run_writes_exactly_that() {
    let env = Env::start().await;
    env.seed(db()).await;
    let r = env.only_reference(APPS).await;
    let step = env
        .step("write-vault")
        .args(["--reference", &r, "--dry-run=true"])
        .run();
    let run = dry(&env, &[APPS], &["apps/db"], step).await;
    run.assert_code(0);
    says(
        &run,
        "plan: would-write Secret apps/db -> Vault secret/apps/db version 1",
    );
    // The outputs tell the next step nothing was written.
    assert_eq!(run.output("outcome"), "would-write");
    assert_eq!(run.output("vault-version"), "1");
    // A dry-run mark-consumed after it plans the consumption that would follow the write.
    let mc = env
        .step("mark-consumed")
        .args(["--reference", &r, "--mode", "delete", "--dry-run"])
        .args(["--vault-version", run.output("vault-version")])
        .run();
    let mc = dry(&env, &[APPS], &["apps/db"], mc).await;
    mc.assert_code(0);
    says(
        &mc,
        "plan: would-consume Secret apps/db -> Vault secret/apps/db version 1: after write-vault writes it",
    );
    assert_eq!(mc.output("outcome"), "would-consume");

    let real = env.write_vault(&r).await;
    real.assert_code(0);
    assert_eq!(real.output("vault-version"), "1");
    assert_eq!(env.vault_versions("apps/db").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_vault_refuses_a_foreign_vault_value_with_the_real_exit_code() {
    let env = Env::start().await;
    env.seed(db()).await;
    let (st, b) = env
        .vault_root(
            "POST",
            "secret/data/apps/db",
            Some(serde_json::json!({"data": {"other": "x"}})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let r = env.only_reference(APPS).await;
    let step = env
        .step("write-vault")
        .args(["--reference", &r])
        .env("SECOPS_DRY_RUN", "true")
        .run();
    let run = dry(&env, &[APPS], &["apps/db"], step).await;
    says(&run, "plan: refuse Secret apps/db");
    let real = env.write_vault(&r).await;
    assert_eq!(run.code, real.code, "exit code parity");
    assert_eq!(real.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_consumed_plans_each_mode_and_refuses_like_the_real_run() {
    let env = Env::start().await;
    env.seed(db()).await;
    env.seed(
        SeedSecret::bootstrap(APPS, "frozen")
            .kv("k", "v")
            .immutable(),
    )
    .await;
    let refs = env.discover(APPS).await;
    for r in &refs {
        env.write_vault(r).await.assert_code(0);
    }
    let (db_ref, frozen_ref) = if refs[0].contains("\"db\"") {
        (&refs[0], &refs[1])
    } else {
        (&refs[1], &refs[0])
    };
    let paths = ["apps/db", "apps/frozen"];
    for (mode, why) in [
        ("delete", "mode delete"),
        ("inert", "mode inert"),
        ("ignore", "mode ignore"),
    ] {
        let step = env
            .step("mark-consumed")
            .args(["--reference", db_ref, "--mode", mode, "--dry-run"])
            .run();
        let run = dry(&env, &[APPS], &paths, step).await;
        run.assert_code(0);
        says(
            &run,
            &format!("plan: would-consume Secret apps/db -> Vault secret/apps/db version 1: {why}"),
        );
    }
    // Inert cannot blank an immutable Secret: the same refusal, the same exit code.
    let step = env
        .step("mark-consumed")
        .args(["--reference", frozen_ref, "--mode", "inert", "--dry-run"])
        .run();
    let run = dry(&env, &[APPS], &paths, step).await;
    says(&run, "plan: refuse Secret apps/frozen");
    let real = env.mark_consumed(frozen_ref, None, "inert").await;
    assert_eq!(run.code, real.code, "exit code parity");
    assert_eq!(real.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_plans_the_new_version_and_the_revocation_and_refuses_like_the_real_run() {
    let env = Env::start().await;
    env.seed(db()).await;
    env.handover(APPS, "ignore").await;
    let args = [
        "--path",
        "apps/db",
        "--key",
        "password=password:length=24",
        "--rotation-id",
        "r-dry",
        "--keep-versions",
        "1",
        "--grace",
        "0s",
    ];
    let step = env.step("rotate").args(args).arg("--dry-run").run();
    let run = dry(&env, &[APPS], &["apps/db"], step).await;
    run.assert_code(0);
    says(
        &run,
        "plan: would-rotate Vault path secret/apps/db version 2: record the intent, then write version 2 (cas=1)",
    );
    says(
        &run,
        "plan: would-revoke Vault path secret/apps/db: soft-delete versions [1]",
    );
    let result: Value = serde_json::from_str(run.output("result.json")).unwrap();
    assert_eq!(result[0]["outcome"], "would-rotate");
    assert_eq!(run.output("rotated"), "0", "nothing was rotated");

    // A key the secret does not hold: the same refusal, the same exit code.
    let bad = [
        "--path",
        "apps/db",
        "--key",
        "nope=uuid",
        "--rotation-id",
        "r-bad",
    ];
    let step = env.step("rotate").args(bad).arg("--dry-run").run();
    let run = dry(&env, &[APPS], &["apps/db"], step).await;
    says(&run, "plan: refuse Vault path secret/apps/db");
    let real = env.step("rotate").args(bad).run().await;
    assert_eq!(run.code, real.code, "exit code parity");
    assert_eq!(real.code, 3);

    // The real run does what the plan said.
    env.step("rotate").args(args).run().await.assert_code(0);
    assert_eq!(env.vault_versions("apps/db").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_plans_the_publication_and_refuses_another_owners_path() {
    let env = Env::start().await;
    let internal = |name: &str| {
        SeedSecret::bootstrap("operators", name)
            .unlabeled()
            .label("secops.io/class", "internal")
            .kv("token", "t-1")
    };
    env.seed(internal("broker")).await;
    let paths = ["internal/operators/broker", "internal/operators/taken"];
    let step = env
        .step("push-secret")
        .args(["--namespaces", "operators", "--dry-run"])
        .run();
    let run = dry(&env, &["operators"], &paths, step).await;
    run.assert_code(0);
    says(
        &run,
        "plan: would-push Secret operators/broker -> Vault secret/internal/operators/broker version 1",
    );
    assert_eq!(run.output("pushed"), "0");

    // A path another writer holds: refused either way, with the same exit code.
    env.seed(internal("taken")).await;
    let (st, b) = env
        .vault_root(
            "POST",
            "secret/data/internal/operators/taken",
            Some(serde_json::json!({"data": {"token": "someone-else"}})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let one = [
        "--namespaces",
        "operators",
        "--namespace",
        "operators",
        "--name",
        "taken",
    ];
    let step = env.step("push-secret").args(one).arg("--dry-run").run();
    let run = dry(&env, &["operators"], &paths, step).await;
    says(&run, "plan: refuse Secret operators/taken");
    let real = env.step("push-secret").args(one).run().await;
    assert_eq!(run.code, real.code, "exit code parity");
    assert_eq!(real.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_authority_reports_its_findings_as_the_plan_and_exits_like_the_real_run() {
    let env = Env::start().await;
    env.seed(db()).await;
    let args = ["--namespaces", APPS, "--grace", "0s"];
    let step = env
        .step("audit-authority")
        .args(args)
        .arg("--dry-run")
        .run();
    let run = dry(&env, &[APPS], &["apps/db"], step).await;
    says(&run, "plan: report Secret apps/db");
    let real = env.step("audit-authority").args(args).run().await;
    assert_eq!(run.code, real.code, "exit code parity");
    assert_eq!(real.code, 3);
}

const AUTH_NS: &str = "secops-authority";

async fn authority_step(
    env: &Env,
    name: &'static str,
    addr: &str,
    args: &[&str],
    dry_run: bool,
) -> StepRun {
    env.step(name)
        .no_vault_defaults()
        .vault_cacert()
        .env("VAULT_ADDR", addr)
        .env("SECOPS_DRY_RUN", dry_run.to_string())
        .args(["--secret-namespace", AUTH_NS])
        .args(args.iter().copied())
        .run()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_authority_and_unseal_plan_without_touching_vault_or_the_material() {
    let env = Env::start().await;
    let vault = e2e::uninitialized_vault().await;
    let addr = vault.url();
    let id = age::x25519::Identity::generate();
    let id_file = env.dir.path().join("op.age");
    std::fs::write(
        &id_file,
        secrecy::ExposeSecret::expose_secret(&id.to_string()),
    )
    .unwrap();
    let recipient = id.to_public().to_string();
    let init_args = ["--age-recipient", recipient.as_str()];

    let k0 = env.kube.requests().len();
    let v0 = vault.requests().len();
    let run = authority_step(&env, "init-authority", &addr, &init_args, true).await;
    run.assert_code(0);
    assert_plan(&run);
    says(
        &run,
        "plan: would-create Secret secops-authority/vault-unseal",
    );
    says(
        &run,
        "plan: would-init Vault: sys/init with 5 shamir key shares, threshold 3",
    );
    says(&run, "plan: would-unseal Vault");
    assert_eq!(run.output("outcome"), "would-initialize");
    assert!(
        !vault.is_initialized().await,
        "a dry run never calls sys/init"
    );
    assert!(env.secret(AUTH_NS, "vault-unseal").await.is_none());
    assert!(vault_mutations(&vault.requests()[v0..]).is_empty());
    assert!(kube_mutations(&env.kube.requests()[k0..]).is_empty());

    // The real run, then a sealed Vault: the unseal dry run opens the material, submits nothing.
    authority_step(&env, "init-authority", &addr, &init_args, false)
        .await
        .assert_code(0);
    vault.seal().await;
    let unseal_args = ["--age-identity-file", id_file.to_str().unwrap()];
    let before = env.secret(AUTH_NS, "vault-unseal").await.unwrap();
    let (k0, v0) = (env.kube.requests().len(), vault.requests().len());
    let run = authority_step(&env, "unseal", &addr, &unseal_args, true).await;
    run.assert_code(0);
    assert_plan(&run);
    says(
        &run,
        "plan: would-unseal Vault: submit the stored key shares",
    );
    assert_eq!(run.output("outcome"), "would-unseal");
    assert!(vault.is_sealed().await, "a dry run submits no key share");
    assert!(vault_mutations(&vault.requests()[v0..]).is_empty());
    assert!(kube_mutations(&env.kube.requests()[k0..]).is_empty());
    assert_eq!(env.secret(AUTH_NS, "vault-unseal").await.unwrap(), before);
    authority_step(&env, "unseal", &addr, &unseal_args, false)
        .await
        .assert_code(0);
    assert!(!vault.is_sealed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_authority_refuses_a_foreign_secret_in_the_way_with_the_real_exit_code() {
    let env = Env::start().await;
    let vault = e2e::uninitialized_vault().await;
    // A Secret of that name that is not the authority's placeholder.
    env.seed(
        SeedSecret::bootstrap(AUTH_NS, "vault-unseal")
            .unlabeled()
            .kv("k", "v"),
    )
    .await;
    let args = ["--plaintext-unseal-keys=true"];
    let before = env.secret(AUTH_NS, "vault-unseal").await.unwrap();
    let run = authority_step(&env, "init-authority", &vault.url(), &args, true).await;
    assert_plan(&run);
    says(&run, "plan: refuse Secret secops-authority/vault-unseal");
    assert_eq!(env.secret(AUTH_NS, "vault-unseal").await.unwrap(), before);
    let real = authority_step(&env, "init-authority", &vault.url(), &args, false).await;
    assert_eq!(run.code, real.code, "exit code parity");
    assert_eq!(real.code, 3);
    assert!(!vault.is_initialized().await);
    // `vault_call` is the harness' raw client: OpenBao answers reads all along.
    let (st, _) = vault_call(&vault.url(), "", "GET", "sys/init", None).await;
    assert_eq!(st, 200);
}

/// The shipped handover WorkflowTemplate with `dry-run=true`, as Argo runs it: every step
/// gets the parameter, the chain succeeds on planned outputs, and nothing changes anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handover_workflow_with_dry_run_true_plans_the_whole_chain_and_writes_nothing() {
    use e2e::argo::{install_vault_config, workflow_file, Phase, Runner};
    let env = Env::start().await;
    install_vault_config(&env).await.expect("templates/vault");
    env.seed(db()).await;
    let before = snapshot(&env, &[APPS], &["apps/db"]).await;
    let (v0, k0) = (env.vault.requests().len(), env.kube.requests().len());
    let url = env.vault.url();
    let args = [
        ("vault-addr", url.as_str()),
        ("namespaces", APPS),
        ("consume-mode", "delete"),
        ("dry-run", "true"),
    ];
    let run = Runner::new(&env)
        .submit(workflow_file("secret-handover.yaml"), &args)
        .await
        .expect("submit");
    run.assert_phase(Phase::Succeeded);
    for template in ["read-bootstrap", "write-vault", "mark-consumed"] {
        let pod = run.pod(template);
        assert!(
            pod.args.iter().any(|a| a == "--dry-run=true"),
            "{template} did not get the parameter: {:?}",
            pod.args
        );
        assert!(pod.stdout.contains("nothing was written"), "{}", pod.stdout);
    }
    assert!(run
        .pod("write-vault")
        .stdout
        .contains("plan: would-write Secret apps/db -> Vault secret/apps/db version 1"));
    assert!(run
        .pod("mark-consumed")
        .stdout
        .contains("plan: would-consume Secret apps/db -> Vault secret/apps/db version 1: after write-vault writes it"));
    assert_eq!(run.pod("mark-consumed").output("outcome"), "would-consume");
    assert!(vault_mutations(&env.vault.requests()[v0..]).is_empty());
    // Argo itself records its workflow's objects; the steps' own requests are what count.
    let step_writes: Vec<_> = kube_mutations(&env.kube.requests()[k0..])
        .into_iter()
        .filter(|(_, p)| p.contains("/secrets") || p.contains("/events"))
        .collect();
    assert!(step_writes.is_empty(), "{step_writes:?}");
    assert_eq!(snapshot(&env, &[APPS], &["apps/db"]).await, before);
}
