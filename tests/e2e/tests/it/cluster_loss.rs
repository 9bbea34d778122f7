//! Drill: cluster loss with Vault inside the cluster (docs/cluster-loss.md). Cluster A is
//! brought up on a real raft OpenBao, hands over, rotates and is snapshotted; then it is
//! lost whole (its Kubernetes state, the OpenBao process and its raft directory). Cluster B
//! has only what survives outside: Git (the bootstrap Secrets and the age-encrypted unseal
//! material copy), the operators' age identity and the snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use e2e::{vault_call, Env, SeedSecret, StepRun};
use secrecy::ExposeSecret;
use serde_json::Value;

const NS: &str = "secops-authority";
const NAME: &str = "vault-unseal";

fn identity(dir: &Path) -> (PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let path = dir.join("operator.age");
    std::fs::write(&path, id.to_string().expose_secret()).unwrap();
    (path, id.to_public().to_string())
}

fn sa_token(env: &Env, ns: &str, sa: &str) -> String {
    let path = env.dir.path().join(format!("{ns}-{sa}.token"));
    std::fs::write(&path, env.kube.issue_token_for(ns, sa, "vault")).unwrap();
    path.display().to_string()
}

fn templates_vault() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/vault")
}

/// init-authority's bring-up arguments for this cluster (Vault reviews logins with it).
fn authority_args(env: &Env, recipient: &str) -> Vec<String> {
    let d = |s: &str| templates_vault().join(s).display().to_string();
    let reviewer = env.dir.path().join("reviewer.jwt");
    std::fs::write(
        &reviewer,
        env.kube.issue_service_account_token("vault", "vault-auth"),
    )
    .unwrap();
    [
        "--age-recipient",
        recipient,
        "--key-shares",
        "3",
        "--key-threshold",
        "2",
        "--policies-dir",
        &d("policies"),
        "--roles-dir",
        &d("roles"),
        "--password-policies-dir",
        &d("password-policies"),
        "--kubernetes-host",
        &env.kube.server_url(),
        "--kubernetes-ca-file",
        &env.dir.path().join("vault-ca.pem").display().to_string(),
        "--service-account-token-file",
        &sa_token(env, "secops", "secops-init-authority"),
        "--token-reviewer-jwt-file",
        &reviewer.display().to_string(),
        "--secret-namespace",
        NS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn authority_step(env: &Env, name: &'static str, url: &str, args: &[String]) -> StepRun {
    env.step(name)
        .no_vault_defaults()
        .env("VAULT_ADDR", url)
        .args(args.iter().cloned())
        .run()
        .await
}

/// A step logging in to `url` with Kubernetes auth as `role` (ServiceAccount `ns/role`).
async fn step_as(
    env: &Env,
    name: &'static str,
    url: &str,
    ns: &str,
    role: &str,
    args: &[&str],
) -> StepRun {
    env.step(name)
        .no_vault_defaults()
        .env("VAULT_ADDR", url)
        .env("SECOPS_VAULT_AUTH", "kubernetes")
        .env("SECOPS_VAULT_ROLE", role)
        .args([
            "--service-account-token-file".to_owned(),
            sa_token(env, ns, role),
        ])
        .args(args.iter().copied())
        .run()
        .await
}

/// The Git fixtures: the bootstrap Secrets GitOps applies in every cluster.
async fn apply_git(env: &Env) {
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "db-from-git"))
        .await;
    env.seed(SeedSecret::bootstrap("apps", "api").kv("token", "api-from-git"))
        .await;
}

/// The handover as the workflow runs it; write-vault's outcome per Secret name.
async fn handover(env: &Env, url: &str) -> BTreeMap<String, String> {
    let mut outcomes = BTreeMap::new();
    for r in env.discover("apps").await {
        let name = serde_json::from_str::<Value>(&r).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let wv = step_as(
            env,
            "write-vault",
            url,
            "secops",
            "secops-write-vault",
            &["--reference", &r],
        )
        .await;
        wv.assert_code(0);
        let mc = step_as(
            env,
            "mark-consumed",
            url,
            "secops",
            "secops-mark-consumed",
            &["--reference", &r, "--mode", "delete"],
        )
        .await;
        mc.assert_code(0);
        outcomes.insert(name, wv.output("outcome").to_owned());
    }
    outcomes
}

/// What ESO reads: each path's latest data, through the shipped read-only role.
async fn eso_view(env: &Env, url: &str) -> BTreeMap<String, Value> {
    let jwt = env
        .kube
        .issue_token_for("external-secrets", "external-secrets", "vault");
    let (st, login) = vault_call(
        url,
        "",
        "POST",
        "auth/kubernetes/login",
        Some(serde_json::json!({"role": "secops-eso-reader", "jwt": jwt})),
    )
    .await;
    assert_eq!(st, 200, "ESO's login: {login}");
    let token = login["auth"]["client_token"].as_str().unwrap();
    let mut out = BTreeMap::new();
    for p in ["apps/db", "apps/api"] {
        let (st, body) = vault_call(url, token, "GET", &format!("secret/data/{p}"), None).await;
        assert_eq!(st, 200, "{p}: {body}");
        out.insert(p.to_owned(), body["data"]["data"].clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_cluster_loss_with_vault_inside_restores_from_a_snapshot_and_the_material_copy() {
    let mut env = Env::start().await;
    // What survives the cluster: Git, the operators' age identity, the snapshot bucket.
    let outside = tempfile::tempdir().unwrap();
    let git = outside.path().join("git");
    let bucket = outside.path().join("bucket");
    std::fs::create_dir_all(&git).unwrap();
    std::fs::create_dir_all(&bucket).unwrap();
    let (id, recipient) = identity(outside.path());
    let material_copy = git.join("vault-unseal.age");

    // --- Cluster A: bring-up (with the material copy for Git), handover, rotation, snapshot.
    // Both clusters' OpenBao run with the same server configuration (as the same Helm values
    // would): the audit device's path, which the snapshot's audit table must match.
    let audit_log = outside.path().join("vault-audit.log");
    let vault_a = e2e::vault::TestVault::fresh_with_audit_log(Some(audit_log.clone())).await;
    let url_a = vault_a.url();
    let mut args = authority_args(&env, &recipient);
    args.extend(["--material-out".into(), material_copy.display().to_string()]);
    let up = authority_step(&env, "init-authority", &url_a, &args).await;
    up.assert_code(0);
    let stored = env.secret(NS, NAME).await.expect("unseal Secret");
    let cipher = stored.data.unwrap()["unseal-keys.json.age"].0.clone();
    assert_eq!(
        std::fs::read(&material_copy).unwrap(),
        cipher,
        "the copy is the stored age ciphertext, byte for byte"
    );
    apply_git(&env).await;
    let first = handover(&env, &url_a).await;
    assert!(first.values().all(|o| o == "written"), "{first:?}");
    step_as(
        &env,
        "rotate",
        &url_a,
        "secops",
        "secops-rotate",
        &[
            "--path",
            "apps/api",
            "--key",
            "token=hex",
            "--rotation-id",
            "r-1",
        ],
    )
    .await
    .assert_code(0);
    let before = eso_view(&env, &url_a).await;
    assert_ne!(
        before["apps/api"]["token"], "api-from-git",
        "rotated in Vault"
    );
    let pvc = tempfile::tempdir().unwrap();
    let artifact = bucket.join("vault.snap");
    let snap = step_as(
        &env,
        "snapshot-authority",
        &url_a,
        NS,
        "secops-snapshot-authority",
        &[
            "--snapshot-dir",
            pvc.path().to_str().unwrap(),
            "--keep",
            "2",
            "--artifact-file",
            artifact.to_str().unwrap(),
        ],
    )
    .await;
    snap.assert_code(0);
    assert_eq!(snap.output("outcome"), "stored");
    let kept = pvc.path().join(snap.output("snapshot-file"));
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        std::fs::read(&artifact).unwrap()
    );
    let audit = snap.audit();
    assert_eq!(audit[0]["details"]["sha256"], snap.output("sha256"));
    println!(
        "snapshot: {} bytes, sha256 {}",
        std::fs::metadata(&artifact).unwrap().len(),
        snap.output("sha256")
    );

    // Least privilege, by OpenBao's audit log: the snapshot role's token made exactly one
    // request besides its login and revoke-self: the read its policy grants.
    let used: Vec<(String, String)> = vault_a
        .bao
        .audit_requests()
        .into_iter()
        .filter(|r| r.policies.iter().any(|p| p == "secops-snapshot-authority"))
        .filter(|r| r.path != "auth/token/revoke-self")
        .map(|r| (r.operation, r.path))
        .collect();
    assert_eq!(
        used,
        [("read".to_owned(), "sys/storage/raft/snapshot".to_owned())]
    );

    // --- Cluster A is lost whole: Kubernetes state, the OpenBao process, its raft directory.
    let raft_dir = vault_a.bao.dir.path().to_owned();
    drop(vault_a);
    assert!(!raft_dir.exists(), "the raft directory is gone");
    drop(pvc);
    env.rebuild_cluster().await;
    assert!(env.secret(NS, NAME).await.is_none(), "a fresh cluster");

    // --- Cluster B: Git applied (bootstrap Secrets, and the unseal Secret from the copy, as
    // docs/cluster-loss.md does it), a fresh OpenBao, the restore, the handover re-run.
    let recovery = Instant::now();
    apply_git(&env).await;
    let material = std::fs::read(&material_copy).unwrap();
    env.seed(
        SeedSecret::bootstrap(NS, NAME)
            .unlabeled()
            .label("secops.io/class", "authority")
            .annotate("secops.io/authority-state", "established")
            .kv("unseal-keys.json.age", material),
    )
    .await;
    let vault_b = e2e::vault::TestVault::fresh_with_audit_log(Some(audit_log)).await;
    let url_b = vault_b.url();
    let mut args = authority_args(&env, &recipient);
    args.extend(
        [
            "--restore-from",
            artifact.to_str().unwrap(),
            "--material-file",
            material_copy.to_str().unwrap(),
            "--age-identity-file",
            id.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let restore = authority_step(&env, "init-authority", &url_b, &args).await;
    if restore.code != 0 {
        let log = std::fs::read_to_string(vault_b.bao.dir.path().join("bao.log"));
        println!("OpenBao's log: {}", log.unwrap_or_default());
    }
    restore.assert_code(0);
    assert_eq!(restore.output("outcome"), "restored", "{}", restore.stderr);
    let result: Value = serde_json::from_str(restore.output("result.json")).unwrap();
    assert_eq!(result["rootTokenRevoked"], true);
    let again = authority_step(&env, "init-authority", &url_b, &args).await;
    again.assert_code(0);
    assert_eq!(
        again.output("outcome"),
        "already-restored",
        "a re-run is a no-op"
    );

    let second = handover(&env, &url_b).await;
    assert_eq!(second["db"], "provenance-updated");
    assert_eq!(second["api"], "vault-differs", "the rotated value wins");
    let after = eso_view(&env, &url_b).await;
    assert_eq!(
        after, before,
        "every value ESO reads is the one before the loss"
    );
    println!(
        "recovery time (Git applied to handover re-run done): {:.1}s",
        recovery.elapsed().as_secs_f64()
    );

    // The restored Vault's keys are the original ones: after a restart, unseal with the
    // material copy brings it back.
    vault_b.bao.restart().await;
    assert!(vault_b.bao.is_sealed().await);
    let un = authority_step(
        &env,
        "unseal",
        &url_b,
        &[
            "--material-file".into(),
            material_copy.display().to_string(),
            "--age-identity-file".into(),
            id.display().to_string(),
            "--secret-namespace".into(),
            NS.into(),
        ],
    )
    .await;
    un.assert_code(0);
    assert_eq!(un.output("outcome"), "unsealed");
    vault_b.bao.wait_active().await;
    assert_eq!(eso_view(&env, &url_b).await, before);

    // No value on any step's output.
    for run in [&up, &snap, &restore, &again, &un] {
        let all = format!("{}{}{:?}", run.stdout, run.stderr, run.outputs);
        assert!(!all.contains("api-from-git") && !all.contains("db-from-git"));
    }
}

/// A snapshot that does not belong to the material is refused with exit 3, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_and_material_of_different_vaults_are_refused() {
    let env = Env::start().await;
    let outside = tempfile::tempdir().unwrap();
    let (id, recipient) = identity(outside.path());
    // Two Vaults, each brought up with its own material.
    let a = e2e::uninitialized_vault().await;
    let copy_a = outside.path().join("a.age");
    let mut args = authority_args(&env, &recipient);
    args.extend([
        "--material-out".into(),
        copy_a.display().to_string(),
        "--secret-name".into(),
        "a".into(),
    ]);
    authority_step(&env, "init-authority", &a.url(), &args)
        .await
        .assert_code(0);
    let b = e2e::uninitialized_vault().await;
    let mut args = authority_args(&env, &recipient);
    args.extend(["--secret-name".into(), "b".into()]);
    authority_step(&env, "init-authority", &b.url(), &args)
        .await
        .assert_code(0);
    let dir = outside.path().join("snapshots");
    std::fs::create_dir_all(&dir).unwrap();
    let s = step_as(
        &env,
        "snapshot-authority",
        &b.url(),
        NS,
        "secops-snapshot-authority",
        &["--snapshot-dir", dir.to_str().unwrap()],
    )
    .await;
    s.assert_code(0);
    let snap_b = dir.join(s.output("snapshot-file"));
    // B's snapshot with A's material, on a fresh Vault.
    let c = e2e::uninitialized_vault().await;
    let mut args = authority_args(&env, &recipient);
    args.extend(
        [
            "--restore-from",
            snap_b.to_str().unwrap(),
            "--material-file",
            copy_a.to_str().unwrap(),
            "--age-identity-file",
            id.to_str().unwrap(),
            "--secret-name",
            "c",
        ]
        .map(String::from),
    );
    let refused = authority_step(&env, "init-authority", &c.url(), &args).await;
    refused.assert_code(3);
    assert!(
        refused.stderr.contains("do not belong together"),
        "{}",
        refused.stderr
    );
    // A damaged snapshot is bad input: exit 2, nothing contacted.
    let bad = outside.path().join("bad.snap");
    std::fs::write(&bad, b"not a snapshot").unwrap();
    let d = e2e::uninitialized_vault().await;
    let mut args = authority_args(&env, &recipient);
    args.extend(
        [
            "--restore-from",
            bad.to_str().unwrap(),
            "--material-file",
            copy_a.to_str().unwrap(),
            "--age-identity-file",
            id.to_str().unwrap(),
        ]
        .map(String::from),
    );
    authority_step(&env, "init-authority", &d.url(), &args)
        .await
        .assert_code(2);
    assert!(!d.bao.is_initialized().await, "nothing contacted");
}
