//! KV version 1 with AppRole login, on OpenBao's own KV v1 engine (`secrets enable
//! -version=1 kv`): no versions, no metadata, so handovers are judged by the data alone.

use e2e::openbao::OpenBao;
use e2e::{label, Env, SeedSecret};
use serde_json::json;

/// An OpenBao with KV v1 at `kv/`, the mount the steps are pointed at with `--kv-mount kv`.
async fn kv1_vault() -> OpenBao {
    let bao = OpenBao::dev().await;
    bao.must(
        "POST",
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "1"}}),
    )
    .await;
    bao
}

/// AppRole enabled with one role under `policy`; (role_id file, secret_id file).
async fn approle(
    bao: &OpenBao,
    role: &str,
    policy: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    bao.must("POST", "sys/auth/approle", json!({"type": "approle"}))
        .await;
    bao.must(
        "PUT",
        &format!("sys/policies/acl/{policy}"),
        json!({"policy": "path \"kv/*\" { capabilities = [\"create\", \"read\"] }"}),
    )
    .await;
    bao.must(
        "POST",
        &format!("auth/approle/role/{role}"),
        json!({"token_policies": [policy], "bind_secret_id": true, "token_ttl": "5m"}),
    )
    .await;
    let rid = bao
        .must(
            "GET",
            &format!("auth/approle/role/{role}/role-id"),
            json!({}),
        )
        .await;
    let sid = bao
        .must(
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            json!({}),
        )
        .await;
    let role_id = bao.dir.path().join(format!("{role}.role-id"));
    let secret_id = bao.dir.path().join(format!("{role}.secret-id"));
    std::fs::write(&role_id, rid["data"]["role_id"].as_str().expect("role_id")).unwrap();
    std::fs::write(
        &secret_id,
        sid["data"]["secret_id"].as_str().expect("secret_id"),
    )
    .unwrap();
    (role_id, secret_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv1_handover_with_approle() {
    let env = Env::start().await;
    let rv = kv1_vault().await;
    let (role_id, secret_id) = approle(&rv, "handover", "kv1-handover").await;
    let vault_args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "--kv-version".into(),
            "1".into(),
            "--kv-mount".into(),
            "kv".into(),
            "--vault-auth".into(),
            "approle".into(),
            "--approle-role-id-file".into(),
            role_id.display().to_string(),
            "--approle-secret-id-file".into(),
            secret_id.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    env.seed(
        SeedSecret::bootstrap("apps", "db")
            .kv("username", "admin")
            .kv("password", "pw \u{1F511}"),
    )
    .await;
    env.seed(SeedSecret::bootstrap("apps", "taken").kv("password", "git"))
        .await;
    env.seed(SeedSecret::bootstrap("apps", "bin").kv("blob", [0xffu8, 0x00]))
        .await;
    rv.must("POST", "kv/apps/taken", json!({"password": "vault"}))
        .await;

    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps"])
        .run()
        .await;
    rb.assert_code(0);
    for r in rb.references() {
        let name = r["name"].as_str().unwrap().to_string();
        let wv = env
            .step("write-vault")
            .no_vault_defaults()
            .env("VAULT_ADDR", rv.url.clone())
            .args(vault_args(&["--reference", &r.to_string()]))
            .run()
            .await;
        match name.as_str() {
            "db" => {
                wv.assert_code(0);
                assert_eq!(wv.output("outcome"), "written");
                assert_eq!(wv.output("vault-version"), "0");
                // Again: no-op.
                let again = env
                    .step("write-vault")
                    .no_vault_defaults()
                    .env("VAULT_ADDR", rv.url.clone())
                    .args(vault_args(&["--reference", &r.to_string()]))
                    .run()
                    .await;
                again.assert_code(0);
                assert_eq!(again.output("outcome"), "unchanged");
                let mc = env
                    .step("mark-consumed")
                    .no_vault_defaults()
                    .env("VAULT_ADDR", rv.url.clone())
                    .args(vault_args(&[
                        "--reference",
                        &r.to_string(),
                        "--mode",
                        "ignore",
                    ]))
                    .run()
                    .await;
                mc.assert_code(0);
                // The login token is revoked on the way out, not left to expire.
                assert!(!mc.stderr.contains("did not revoke"), "{}", mc.stderr);
            }
            "taken" => {
                wv.assert_code(3);
            }
            "bin" => {
                wv.assert_code(3);
                assert!(wv.stderr.contains("KV v1"), "{}", wv.stderr);
            }
            other => panic!("unexpected {other}"),
        }
    }
    let (st, body) = rv.root("GET", "kv/apps/db", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        body["data"],
        json!({"username": "admin", "password": "pw \u{1F511}"})
    );
    let (_, taken) = rv.root("GET", "kv/apps/taken", None).await;
    assert_eq!(
        taken["data"],
        json!({"password": "vault"}),
        "conflict left untouched"
    );
    let (st, _) = rv.root("GET", "kv/apps/bin", None).await;
    assert_eq!(st, 404, "nothing written for the refused binary Secret");
    assert_eq!(
        label(&env.secret("apps", "db").await.unwrap(), "secops.io/state"),
        Some("consumed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_or_stopped_kv1_vault_gives_exit_5() {
    let env = Env::start().await;
    let rv = kv1_vault().await;
    let token_file = rv.dir.path().join("token");
    std::fs::write(&token_file, &rv.root_token).unwrap();
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps"])
        .run()
        .await;
    let r = rb.references()[0].to_string();
    let run = |url: String| {
        env.step("write-vault")
            .no_vault_defaults()
            .env("VAULT_ADDR", url)
            .args([
                "--kv-version",
                "1",
                "--kv-mount",
                "kv",
                "--vault-auth",
                "token",
                "--vault-token-file",
                token_file.to_str().unwrap(),
                "--reference",
                &r,
            ])
            .run()
    };
    rv.seal().await;
    let sealed = run(rv.url.clone()).await;
    sealed.assert_code(5);
    rv.unseal().await;
    run(rv.url.clone()).await.assert_code(0);
    let url = rv.url.clone();
    rv.stop();
    run(url).await.assert_code(5);
}
