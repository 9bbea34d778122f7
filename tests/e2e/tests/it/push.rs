//! push-secret: operator-generated Secrets published into Vault for internal distribution.

use e2e::{secret_bytes, Env, SeedSecret};
use serde_json::json;

use crate::fixtures::binary_blob;

fn internal(ns: &str, name: &str) -> SeedSecret {
    SeedSecret::bootstrap(ns, name)
        .unlabeled()
        .label("secops.io/class", "internal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_push_unchanged_rerun_and_new_version_on_change() {
    let env = Env::start().await;
    let seed = internal("operators", "broker-creds")
        .kv("username", "broker")
        .kv("password", "pw-1")
        .kv("ca.p12", binary_blob());
    env.seed(seed.clone()).await;
    let before = env.secret("operators", "broker-creds").await.unwrap();

    let push = |_: ()| {
        env.step("push-secret")
            .args(["--namespaces", "operators"])
            .run()
    };
    let first = push(()).await;
    first.assert_code(0);
    let res: serde_json::Value = serde_json::from_str(first.output("result.json")).unwrap();
    assert_eq!(res[0]["outcome"], json!("pushed"));
    assert_eq!(res[0]["path"], json!("internal/operators/broker-creds"));
    let path = "internal/operators/broker-creds";
    assert_eq!(env.vault_versions(path).await, 1);
    assert_eq!(
        env.vault_bytes(path).await,
        seed.bytes(),
        "binary round trip"
    );
    let meta = env.vault_custom_metadata(path).await;
    assert_eq!(meta["secops.io/owner"], "push-secret");
    assert_eq!(meta["secops.io/source"], "operators/broker-creds");
    assert_eq!(
        meta["secops.io/source-uid"],
        before.metadata.uid.clone().unwrap()
    );

    // Re-runs on unchanged sources make no Vault writes.
    env.vault.requests();
    let writes_before = vault_writes(&env);
    for _ in 0..3 {
        let again = push(()).await;
        again.assert_code(0);
        assert_eq!(again.output("pushed"), "0");
    }
    assert_eq!(
        vault_writes(&env),
        writes_before,
        "no write on unchanged re-runs"
    );
    assert_eq!(env.vault_versions(path).await, 1);

    // The operator changes the Secret: one new version.
    let mut s = env.secret("operators", "broker-creds").await.unwrap();
    s.data
        .as_mut()
        .unwrap()
        .insert("password".into(), k8s_openapi::ByteString(b"pw-2".to_vec()));
    let replaced = env
        .secrets("operators")
        .replace("broker-creds", &Default::default(), &s)
        .await
        .unwrap();
    let changed = push(()).await;
    changed.assert_code(0);
    assert_eq!(changed.output("pushed"), "1");
    assert_eq!(env.vault_versions(path).await, 2);
    assert_eq!(env.vault_bytes(path).await["password"], b"pw-2");

    // The source Secret is never modified: same resourceVersion, same bytes.
    let after = env.secret("operators", "broker-creds").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        replaced.metadata.resource_version
    );
    assert_eq!(secret_bytes(&after), secret_bytes(&replaced));
    assert_eq!(secret_bytes(&after)["ca.p12"], binary_blob());
    assert_eq!(before.metadata.uid, after.metadata.uid);
}

fn vault_writes(env: &Env) -> usize {
    env.vault
        .requests()
        .iter()
        .filter(|(m, p)| m != "GET" && p.starts_with("/v1/secret/"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_overwrites_a_foreign_secret_and_a_rebuilt_cluster_takes_over_its_own() {
    let env = Env::start().await;
    // Someone else's secret at the path.
    env.vault_root(
        "POST",
        "secret/data/internal/operators/taken",
        Some(json!({"data": {"password": "not-ours"}})),
    )
    .await;
    env.seed(internal("operators", "taken").kv("password", "ours"))
        .await;
    let run = env
        .step("push-secret")
        .args([
            "--namespaces",
            "operators",
            "--namespace",
            "operators",
            "--name",
            "taken",
        ])
        .run()
        .await;
    run.assert_code(3);
    assert!(run.stderr.contains("never overwrites"), "{}", run.stderr);
    assert_eq!(env.vault_versions("internal/operators/taken").await, 1);
    assert_eq!(
        env.vault_bytes("internal/operators/taken").await["password"],
        b"not-ours"
    );

    // Source re-created with a new uid in the same cluster (a rebuild): the same owner, the
    // new uid takes over, the previous one is recorded and the new value is published.
    env.seed(internal("operators", "app").kv("k", "1")).await;
    let push_app = |cluster: &'static str| {
        env.step("push-secret")
            .env("SECOPS_CLUSTER_NAME", cluster)
            .args([
                "--namespaces",
                "operators",
                "--namespace",
                "operators",
                "--name",
                "app",
            ])
    };
    push_app("cluster-a").run().await.assert_code(0);
    let first_uid =
        env.vault_custom_metadata("internal/operators/app").await["secops.io/source-uid"].clone();
    env.secrets("operators")
        .delete("app", &Default::default())
        .await
        .unwrap();
    env.seed(internal("operators", "app").kv("k", "2")).await;
    let run = push_app("cluster-a").run().await;
    run.assert_code(0);
    assert_eq!(run.output("pushed").trim(), "1", "{}", run.stderr);
    assert_eq!(env.vault_bytes("internal/operators/app").await["k"], b"2");
    let meta = env.vault_custom_metadata("internal/operators/app").await;
    assert_ne!(
        meta["secops.io/source-uid"], first_uid,
        "the new uid took over"
    );
    assert_eq!(meta["secops.io/previous-source-uids"], first_uid);
    assert_eq!(meta["secops.io/source-cluster"], "cluster-a");
    // Another cluster's Secret of the same namespace/name never overwrites it.
    let run = push_app("cluster-b").run().await;
    run.assert_code(3);
    assert!(
        run.stderr.contains("cluster \"cluster-a\""),
        "{}",
        run.stderr
    );
    assert_eq!(env.vault_bytes("internal/operators/app").await["k"], b"2");
    assert_eq!(env.vault_versions("internal/operators/app").await, 2);

    // Path annotations may not leave the namespace's internal subtree.
    env.seed(
        internal("operators", "escape")
            .annotate("secops.io/vault-path", "internal/billing/x")
            .kv("k", "v"),
    )
    .await;
    let run = env
        .step("push-secret")
        .args([
            "--namespaces",
            "operators",
            "--namespace",
            "operators",
            "--name",
            "escape",
        ])
        .run()
        .await;
    run.assert_code(3);
    assert_eq!(env.vault_versions("internal/billing/x").await, 0);
}
