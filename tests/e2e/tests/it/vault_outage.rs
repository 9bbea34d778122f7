//! Vault sealed or down: exit 5, nothing written anywhere, the bootstrap Secret untouched.

use e2e::{label, Env, SeedSecret};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_vault_gives_exit_5_and_leaves_the_secret_untouched() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let r = env.only_reference("apps").await;
    env.vault.seal().await;
    let wv = env.write_vault(&r).await;
    wv.assert_code(5);
    assert!(wv.stderr.contains("sealed"), "{}", wv.stderr);
    env.vault.unseal().await;
    env.write_vault(&r).await.assert_code(0);
    env.vault.seal().await;
    let before = env.secret("apps", "db").await.unwrap();
    let mc = env.mark_consumed(&r, Some("1"), "delete").await;
    mc.assert_code(5);
    let after = env.secret("apps", "db").await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    assert_eq!(label(&after, "secops.io/state"), None);
    // After unseal, the same step completes.
    env.vault.unseal().await;
    env.mark_consumed(&r, Some("1"), "delete")
        .await
        .assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_vault_gives_exit_5() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let r = env.only_reference("apps").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for step in ["write-vault", "mark-consumed"] {
        let run = env
            .step(step)
            .env("VAULT_ADDR", format!("http://127.0.0.1:{closed}"))
            .args(
                ["--reference", &r, "--mode", "delete"]
                    .iter()
                    .take(if step == "write-vault" { 2 } else { 4 })
                    .copied(),
            )
            .run()
            .await;
        run.assert_code(5);
        assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
    }
    assert!(env.secret("apps", "db").await.is_some());
}
