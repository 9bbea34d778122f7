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
            .is_some_and(|t| !t.is_empty())
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
        assert!(!es
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("force-sync"));
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
    env.vault.seal().await;
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
    env.vault.unseal().await;
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

/// Vault requests a step made that a fault can hit (everything outside `/v1/sys/`, and the
/// capability check).
fn faultable(env: &Env) -> usize {
    env.vault
        .requests()
        .iter()
        .filter(|(_, p)| e2e::vault::faultable(p))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_every_request_boundary_ends_with_one_new_version() {
    let env = Env::start().await;
    // Secrets to rotate, one per kill point, all at version 1 with a previous history.
    let paths: Vec<String> = (0..12).map(|i| format!("kills/s{i:02}")).collect();
    for p in &paths {
        for v in ["a", "b"] {
            env.vault_root(
                "POST",
                &format!("secret/data/{p}"),
                Some(json!({"data": {"password": v, "user": "u"}})),
            )
            .await;
        }
    }
    let args = |p: &str| {
        vec![
            "--path".to_string(),
            p.to_string(),
            "--key".into(),
            "password=password:length=20".into(),
            "--rotation-id".into(),
            "cron-2026-11-29T00:00".into(),
            "--keep-versions".into(),
            "1".into(),
            "--grace".into(),
            "0s".into(),
        ]
    };
    // How many faultable requests a clean rotation makes.
    let before = faultable(&env);
    env.step("rotate")
        .args(args(&paths[0]))
        .run()
        .await
        .assert_code(0);
    // The last request is the login token's revoke-self: after it the work is done.
    let work = faultable(&env) - before - 1;
    assert!(
        work >= 8,
        "login, read, capabilities, intent, write, finish, metadata, revoke: {work}"
    );

    let mut covered = 0;
    for (k, p) in paths.iter().skip(1).enumerate().take(work) {
        // Killed after k requests: every later request never reaches Vault.
        env.vault.set_fault(Some(fault_injection::Fault::FailAfter {
            ok: k as u32,
            status: 503,
        }));
        let killed = env.step("rotate").args(args(p)).run().await;
        assert_ne!(killed.code, 0, "kill after {k} requests must stop the step");
        env.vault.set_fault(None);
        // The re-run (same rotation id) finishes the job.
        env.step("rotate").args(args(p)).run().await.assert_code(0);
        env.step("rotate").args(args(p)).run().await.assert_code(0);
        assert_eq!(
            env.vault_versions(p).await,
            3,
            "{p}: exactly one new version after a kill at {k}"
        );
        let meta = env.vault_custom_metadata(p).await;
        assert_eq!(
            meta["secops.io/rotation-id"], "cron-2026-11-29T00:00",
            "{p}"
        );
        assert_eq!(meta["secops.io/rotation-versions"], "2->3", "{p}");
        assert!(!meta.contains_key("secops.io/rotation-pending"), "{p}");
        let bytes = env.vault_bytes(p).await;
        assert_eq!(bytes["user"], b"u", "{p}: other keys intact");
        assert_eq!(bytes["password"].len(), 20, "{p}");
        let (_, md) = env
            .vault_root("GET", &format!("secret/metadata/{p}"), None)
            .await;
        assert_ne!(
            md["data"]["versions"]["2"]["deletion_time"],
            json!(""),
            "{p}: old version revoked"
        );
        covered += 1;
    }
    assert_eq!(covered, work);
    println!("kill points covered: {covered} of {work} request boundaries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_gives_exit_4_and_no_partial_state() {
    let env = Env::start().await;
    let path = handed_over(&env).await;
    // Slow Vault: each request waits 1s, so the test can write between rotate's read and write.
    env.vault.set_fault(Some(fault_injection::Fault::Delay(
        std::time::Duration::from_secs(1),
    )));
    let step = env.step("rotate").args([
        "--path",
        path,
        "--key",
        "password=uuid",
        "--rotation-id",
        "c-1",
    ]);
    // Once rotate's read was served (its record has a status), a concurrent writer adds a
    // version; it lands at once, a second before rotate's next request is served.
    let reads = || {
        env.vault
            .proxy
            .records()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/v1/secret/data/apps/db")
            .filter(|r| r.status.is_some())
            .count()
    };
    let handover_reads = reads();
    let concurrent_writer = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while reads() == handover_reads {
            assert!(
                std::time::Instant::now() < deadline,
                "rotate never got to its intent"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (st, _) = env
            .vault_root(
                "POST",
                "secret/data/apps/db",
                Some(json!({"data": {"password": "concurrent"}})),
            )
            .await;
        assert_eq!(st, 200);
    };
    let (run, ()) = tokio::join!(step.run(), concurrent_writer);
    env.vault.set_fault(None);
    run.assert_code(4);
    assert!(run.stderr.contains("concurrent writer"), "{}", run.stderr);
    assert_eq!(
        env.vault_versions(path).await,
        2,
        "only the concurrent writer's version"
    );
    assert_eq!(env.vault_bytes(path).await["password"], b"concurrent");
    let meta = env.vault_custom_metadata(path).await;
    assert!(
        !meta.contains_key("secops.io/rotation-pending"),
        "intent cleared"
    );
    assert!(!meta.contains_key("secops.io/rotation-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_generates_the_value_from_a_password_policy() {
    let env = Env::start().await;
    let path = handed_over(&env).await;
    let policy = "length = 24\nrule \"charset\" {\n  charset = \"abcdefgh\"\n  min-chars = 2\n}\nrule \"charset\" {\n  charset = \"0123\"\n  min-chars = 3\n}\n";
    let (st, body) = env
        .vault_root(
            "PUT",
            "sys/policies/password/strict",
            Some(json!({"policy": policy})),
        )
        .await;
    assert!(st < 300, "{st} {body}");
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "password=policy:strict",
            "--rotation-id",
            "p-1",
        ],
    )
    .await;
    run.assert_code(0);
    let pw = String::from_utf8(env.vault_bytes(path).await["password"].clone()).unwrap();
    assert_eq!(pw.len(), 24);
    assert!(pw.chars().all(|c| "abcdefgh0123".contains(c)), "{pw}");
    assert!(
        pw.chars().filter(|c| "0123".contains(*c)).count() >= 3,
        "{pw}"
    );
    assert_eq!(
        run.audit()[0]["details"]["generators"],
        json!("password=policy")
    );
    // A missing policy is a precondition failure and writes nothing.
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "password=policy:missing",
            "--rotation-id",
            "p-2",
        ],
    )
    .await;
    run.assert_code(3);
    assert_eq!(env.vault_versions(path).await, 2);
}

/// Issue 17: a rotation never runs over another rotation's pending intent whose write may
/// have landed (that rotation's re-run needs the intent to finish without a second version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_rotations_pending_intent_is_never_clobbered() {
    let env = Env::start().await;
    let path = handed_over(&env).await;
    // Rotation "scheduled" recorded its intent on version 1 and wrote version 2, then died.
    let (st, b) = env
        .vault_root(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({"data": {"username": "app", "password": "written-by-scheduled"}})),
        )
        .await;
    assert!(st < 300, "{b}");
    let pending = "1:00ff:abcd:2026-11-29T03:00:00Z";
    let (st, b) = env
        .vault_root(
            "POST",
            &format!("secret/metadata/{path}"),
            Some(json!({"custom_metadata": {"secops.io/rotation-pending": pending}})),
        )
        .await;
    assert!(st < 300, "{b}");
    let run = rotate(
        &env,
        &[
            "--path",
            path,
            "--key",
            "password=uuid",
            "--rotation-id",
            "manual-1",
        ],
    )
    .await;
    run.assert_code(3);
    assert!(
        run.stderr
            .contains("pending intent of rotation \"2026-11-29T03:00:00Z\""),
        "{}",
        run.stderr
    );
    assert_eq!(env.vault_versions(path).await, 2, "nothing written");
    assert_eq!(
        env.vault_custom_metadata(path).await["secops.io/rotation-pending"],
        pending,
        "the other rotation's intent is kept"
    );
}
