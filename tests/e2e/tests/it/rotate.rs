//! rotate: new values inside Vault, idempotent by rotation id, old versions revoked,
//! ExternalSecrets told to refresh.

use e2e::{Env, SeedSecret, StepRun};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{json, Value};

use crate::fixtures::binary_blob;

/// A Vault secret with several keys, one of them binary, made by a real handover.
async fn handed_over(env: &Env) -> &'static str {
    env.seed(
        SeedSecret::bootstrap("apps", "db")
            .kv("username", "app")
            .kv("password", "initial-password")
            .kv("cert.der", binary_blob()),
    )
    .await;
    env.handover("apps", "ignore").await;
    "apps/db"
}

async fn rotate(env: &Env, args: &[&str]) -> StepRun {
    env.step("rotate").args(args.iter().copied()).run().await
}

fn result(run: &StepRun) -> Vec<Value> {
    serde_json::from_str(run.output("result.json")).expect("result.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_one_key_and_keeps_the_others_byte_identical() {
    let env = Env::start().await;
    let path = handed_over(&env).await;
    let before = env.vault_bytes(path).await;
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "cert.der=base64:bytes=48",
            "--rotation-id",
            "r-1",
        ],
    )
    .await;
    run.assert_code(0);
    assert_eq!(env.vault_versions(path).await, 2, "exactly one new version");
    let after = env.vault_bytes(path).await;
    assert_eq!(after["username"], before["username"]);
    assert_eq!(after["password"], before["password"]);
    assert_ne!(after["cert.der"], before["cert.der"]);
    let (data, _) = env.vault_kv2(path).await.unwrap();
    assert_eq!(
        data["cert.der"].as_str().unwrap().len(),
        64,
        "48 random bytes, base64"
    );
    let meta = env.vault_custom_metadata(path).await;
    assert_eq!(meta["secops.io/rotation-id"], "r-1");
    assert_eq!(meta["secops.io/rotation-versions"], "1->2");
    assert!(!meta.contains_key("secops.io/rotation-pending"));
    assert!(
        !meta.contains_key("secops.io/base64-keys"),
        "the rotated key is text now"
    );
    assert_eq!(
        meta["secops.io/source"], "apps/db",
        "provenance survives the PATCH"
    );
    // Audit: versions, generator kinds, id; never a value.
    let ev = run.audit().pop().unwrap();
    assert_eq!(ev["outcome"], json!("rotated"));
    assert_eq!(ev["details"]["oldVersion"], json!(1));
    assert_eq!(ev["details"]["newVersion"], json!(2));
    assert_eq!(ev["details"]["generators"], json!("cert.der=base64"));
    assert_eq!(ev["details"]["rotationId"], json!("r-1"));
    assert!(!run.stdout.contains(data["cert.der"].as_str().unwrap()));

    // The same rotation id again: nothing new, any number of times.
    for _ in 0..2 {
        let again = rotate(
            &env,
            &[
                "--path",
                path,
                "--key",
                "cert.der=base64:bytes=48",
                "--rotation-id",
                "r-1",
            ],
        )
        .await;
        again.assert_code(0);
        assert_eq!(result(&again)[0]["outcome"], json!("already-rotated"));
    }
    assert_eq!(env.vault_versions(path).await, 2);
    // A new id rotates again; the rotation id defaults to the workflow uid.
    let next = rotate(
        &env,
        &["--path", path, "--key", "password=password:length=40"],
    )
    .await;
    next.assert_code(0);
    assert_eq!(env.vault_versions(path).await, 3);
    assert_eq!(
        env.vault_custom_metadata(path).await["secops.io/rotation-id"],
        "wf-uid-1"
    );
    assert_eq!(env.vault_bytes(path).await["password"].len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_old_versions_by_count_keeping_the_previous_through_grace() {
    let env = Env::start().await;
    let path = handed_over(&env).await;
    for i in 2..=4 {
        let id = format!("r-{i}");
        rotate(
            &env,
            &[
                "--path",
                path,
                "--key",
                "password=uuid",
                "--rotation-id",
                &id,
            ],
        )
        .await
        .assert_code(0);
    }
    assert_eq!(env.vault_versions(path).await, 4);
    // keep 1 with a grace period: the previous version (4) stays, 1 to 3 are soft-deleted.
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "password=uuid",
            "--rotation-id",
            "r-5",
            "--keep-versions",
            "1",
            "--grace",
            "1h",
        ],
    )
    .await;
    run.assert_code(0);
    assert_eq!(result(&run)[0]["revoked"], json!([1, 2, 3]));
    let (_, meta) = env
        .vault_root("GET", &format!("secret/metadata/{path}"), None)
        .await;
    let deleted = |v: &str| {
        meta["data"]["versions"][v]["deletion_time"]
            .as_str()
            .unwrap_or("")
            != ""
    };
    assert!(deleted("1") && deleted("2") && deleted("3"));
    assert!(!deleted("4") && !deleted("5"));
    // Destroy with no grace: the previous version goes too, permanently.
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "password=uuid",
            "--rotation-id",
            "r-6",
            "--keep-versions",
            "1",
            "--grace",
            "0s",
            "--revoke",
            "destroy",
        ],
    )
    .await;
    run.assert_code(0);
    let (_, meta) = env
        .vault_root("GET", &format!("secret/metadata/{path}"), None)
        .await;
    for v in ["1", "2", "3", "4", "5"] {
        assert_eq!(
            meta["data"]["versions"][v]["destroyed"],
            json!(true),
            "version {v}"
        );
    }
    assert_eq!(meta["data"]["versions"]["6"]["destroyed"], json!(false));
    // By age: everything is young, so keep-for keeps all.
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "password=uuid",
            "--rotation-id",
            "r-7",
            "--keep-for",
            "1h",
            "--grace",
            "0s",
        ],
    )
    .await;
    run.assert_code(0);
    assert_eq!(result(&run)[0]["revoked"], json!([]));
}

fn external_secret(name: &str, key: &str, extra_spec: Value) -> DynamicObject {
    let mut spec = json!({
        "refreshInterval": "1h",
        "secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
        "target": {"name": name},
        "data": [{"secretKey": "password", "remoteRef": {"key": key, "property": "password"}}],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_secrets_reading_the_path_are_refreshed_and_others_untouched() {
    let env = Env::start().await;
    let path = handed_over(&env).await;
    let ar = kube::api::ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "consumers", &ar);
    for es in [
        external_secret("direct", "apps/db", json!({})),
        external_secret("with-mount", "secret/data/apps/db", json!({})),
        external_secret("other-path", "apps/db-other", json!({})),
        external_secret(
            "created-once",
            "apps/db",
            json!({"refreshPolicy": "CreatedOnce"}),
        ),
        external_secret("interval-zero", "apps/db", json!({"refreshInterval": "0"})),
    ] {
        api.create(&PostParams::default(), &es).await.unwrap();
    }
    let before_other = api.get("other-path").await.unwrap();
    let args = [
        "--path",
        path,
        "--key",
        "password=uuid",
        "--rotation-id",
        "r-1",
        "--refresh-external-secrets",
        "consumers",
    ];
    let run = rotate(&env, &args).await;
    run.assert_code(0);
    let refresh = &result(&run)[0]["refresh"];
    assert_eq!(
        refresh["refreshed"],
        json!(["consumers/direct", "consumers/with-mount"])
    );
    assert_eq!(refresh["notRefreshable"].as_array().unwrap().len(), 2);
    for name in ["direct", "with-mount"] {
        let es = api.get(name).await.unwrap();
        assert_eq!(
            es.metadata.annotations.unwrap()["force-sync"],
            "r-1-v2",
            "{name} bumped"
        );
    }
    let other = api.get("other-path").await.unwrap();
    assert_eq!(
        other.metadata.resource_version,
        before_other.metadata.resource_version
    );
    for name in ["created-once", "interval-zero"] {
        let es = api.get(name).await.unwrap();
        assert!(es
            .metadata
            .annotations
            .unwrap_or_default()
            .get("force-sync")
            .is_none());
    }
    // A re-run of the same rotation leaves them as they are.
    let again = rotate(&env, &args).await;
    again.assert_code(0);
    assert_eq!(
        result(&again)[0]["refresh"]["unchanged"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_vault_and_bad_input_change_nothing() {
    let env = Env::start().await;
    let path = handed_over(&env).await;
    env.vault.seal();
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "password=uuid",
            "--rotation-id",
            "s-1",
        ],
    )
    .await;
    run.assert_code(5);
    env.vault.unseal();
    assert_eq!(env.vault_versions(path).await, 1);
    for (args, code) in [
        (vec!["--path", path, "--key", "password=nonsense"], 2),
        (vec!["--path", "apps/../x", "--key", "password=uuid"], 2),
        (vec!["--path", path], 2),
        (
            vec![
                "--path",
                path,
                "--key",
                "password=uuid",
                "--key",
                "password=hex",
            ],
            2,
        ),
        (
            vec![
                "--path",
                path,
                "--key",
                "no-such-key=uuid",
                "--rotation-id",
                "x",
            ],
            3,
        ),
        (
            vec![
                "--path",
                "apps/missing",
                "--key",
                "password=uuid",
                "--rotation-id",
                "x",
            ],
            3,
        ),
        (
            vec![
                "--path",
                path,
                "--key",
                "password=uuid",
                "--rotation-id",
                "x",
                "--kv-version",
                "1",
            ],
            2,
        ),
    ] {
        rotate(&env, &args).await.assert_code(code);
    }
    assert_eq!(env.vault_versions(path).await, 1);
    assert!(!env
        .vault_custom_metadata(path)
        .await
        .contains_key("secops.io/rotation-pending"));
}
