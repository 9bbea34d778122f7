//! The happy path and idempotency of read-bootstrap -> write-vault -> mark-consumed.

use e2e::{annotation, label, secret_bytes, Env, SeedSecret};
use serde_json::json;

use crate::fixtures::all_types;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_byte_for_byte_in_each_mode() {
    let env = Env::start().await;
    for mode in ["delete", "inert", "ignore"] {
        let ns = format!("team-{mode}");
        let seeds = all_types(&ns);
        for s in &seeds {
            env.seed(s.clone()).await;
        }
        let runs = env.handover(&ns, mode).await;
        assert_eq!(runs.len(), seeds.len(), "one chain per Secret");
        for s in &seeds {
            let path = format!("{ns}/{}", s.name);
            assert_eq!(
                env.vault_versions(&path).await,
                1,
                "{path}: exactly one version"
            );
            assert_eq!(
                env.vault_bytes(&path).await,
                s.bytes(),
                "{path}: every byte in Vault"
            );
            let meta = env.vault_custom_metadata(&path).await;
            assert_eq!(meta["secops.io/source"], format!("{ns}/{}", s.name));
            assert_eq!(meta["secops.io/source-type"], s.type_);
            assert_eq!(meta["secops.io/workflow"], "handover-test/wf-uid-1");
            let live = env.secret(&ns, &s.name).await;
            match mode {
                "delete" => assert!(live.is_none(), "{path}: deleted"),
                _ => {
                    let live = live.expect("kept");
                    assert_eq!(label(&live, "secops.io/state"), Some("consumed"));
                    assert_eq!(
                        annotation(&live, "secops.io/vault-path"),
                        Some(path.as_str())
                    );
                    assert_eq!(annotation(&live, "secops.io/vault-version"), Some("1"));
                    assert_eq!(
                        annotation(&live, "secops.io/consumed-by"),
                        Some("handover-test/wf-uid-1")
                    );
                    assert_eq!(annotation(&live, "secops.io/consumed-mode"), Some(mode));
                    assert!(annotation(&live, "secops.io/consumed-at").is_some());
                    let data = secret_bytes(&live);
                    if mode == "ignore" {
                        assert_eq!(data, s.bytes(), "ignore keeps the data");
                    } else if s.type_ == "Opaque" {
                        assert!(data.is_empty(), "{path}: inert removes the data");
                    } else {
                        // Typed Secrets keep their required keys, blanked, to stay valid.
                        assert_eq!(
                            data.keys().collect::<Vec<_>>(),
                            s.bytes().keys().collect::<Vec<_>>()
                        );
                        for (k, v) in &data {
                            let tombstone: &[u8] = match k.as_str() {
                                ".dockerconfigjson" | ".dockercfg" => b"{}",
                                "ssh-privatekey" => b"consumed",
                                _ => b"",
                            };
                            assert_eq!(
                                v.as_slice(),
                                tombstone,
                                "{path}/{k}: inert blanks the value"
                            );
                        }
                    }
                }
            }
        }
        // The audit trail on the Secret: HandedOver then Consumed, for each one.
        let events = env.events(&ns).await;
        for s in &seeds {
            let reasons: Vec<_> = events
                .iter()
                .filter(|e| e.involved_object.name.as_deref() == Some(s.name.as_str()))
                .filter_map(|e| e.reason.clone())
                .collect();
            assert_eq!(reasons, vec!["HandedOver", "Consumed"], "{}", s.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_rerun_is_a_noop() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw-1"))
        .await;
    let r = env.only_reference("apps").await;

    // write-vault three times: one version.
    let mut versions = Vec::new();
    for _ in 0..3 {
        let wv = env.write_vault(&r).await;
        wv.assert_code(0);
        versions.push((
            wv.output("vault-version").to_string(),
            wv.output("outcome").to_string(),
        ));
    }
    assert_eq!(
        versions,
        vec![
            ("1".to_string(), "written".to_string()),
            ("1".into(), "unchanged".into()),
            ("1".into(), "unchanged".into())
        ]
    );
    assert_eq!(env.vault_versions("apps/db").await, 1);

    // mark-consumed twice (ignore mode): the second is a no-op, the Secret is not touched.
    let mc = |_: ()| {
        env.step("mark-consumed")
            .args([
                "--reference",
                &r,
                "--vault-version",
                "1",
                "--mode",
                "ignore",
            ])
            .run()
    };
    mc(()).await.assert_code(0);
    let after_first = env.secret("apps", "db").await.unwrap();
    let second = mc(()).await;
    second.assert_code(0);
    assert_eq!(second.output("outcome"), "unchanged");
    let after_second = env.secret("apps", "db").await.unwrap();
    assert_eq!(
        after_first.metadata.resource_version,
        after_second.metadata.resource_version
    );

    // read-bootstrap now skips it; write-vault on the old reference is still a no-op.
    let rb2 = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps"])
        .run()
        .await;
    rb2.assert_code(0);
    assert!(rb2.references().is_empty());
    assert!(rb2.output("skipped.json").contains("already consumed"));
    let wv = env.write_vault(&r).await;
    wv.assert_code(0);
    assert_eq!(wv.output("outcome"), "unchanged");
    assert_eq!(env.vault_versions("apps/db").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_mode_rerun_after_deletion_is_a_noop() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "api").kv("token", "t-1"))
        .await;
    let r = env.only_reference("apps").await;
    env.write_vault(&r).await.assert_code(0);
    for _ in 0..2 {
        let mc = env.mark_consumed(&r, Some("1"), "delete").await;
        mc.assert_code(0);
    }
    assert!(env.secret("apps", "api").await.is_none());
    // write-vault after the Secret is gone: Vault holds this very handover, so a no-op.
    let wv = env.write_vault(&r).await;
    wv.assert_code(0);
    assert_eq!(wv.output("outcome"), "unchanged");
    assert_eq!(env.vault_versions("apps/api").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_picks_a_path_inside_the_namespace_and_prefix_applies() {
    let env = Env::start().await;
    env.seed(
        SeedSecret::bootstrap("payments", "pg")
            .annotate("secops.io/vault-path", "boot/payments/postgres/admin")
            .kv("password", "x"),
    )
    .await;
    env.seed(SeedSecret::bootstrap("payments", "plain").kv("k", "v"))
        .await;
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "payments", "--path-prefix", "boot"])
        .run()
        .await;
    rb.assert_code(0);
    let mut paths: Vec<String> = rb
        .references()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["boot/payments/plain", "boot/payments/postgres/admin"]
    );
    for r in rb.references() {
        env.step("write-vault")
            .args([
                "--reference".to_string(),
                r.to_string(),
                "--path-prefix".into(),
                "boot".into(),
            ])
            .run()
            .await
            .assert_code(0);
    }
    assert_eq!(env.vault_versions("boot/payments/postgres/admin").await, 1);
    // Without the same prefix, write-vault refuses the reference rather than guess.
    let r = rb.references()[0].to_string();
    let wv = env.write_vault(&r).await;
    wv.assert_code(3);
    assert!(wv.stderr.contains("path-prefix"), "{}", wv.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_login_token_is_revoked_at_exit() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "x").kv("k", "v"))
        .await;
    let r = env.only_reference("apps").await;
    env.write_vault(&r).await.assert_code(0);
    let reqs = env.vault.requests();
    let login = reqs
        .iter()
        .position(|(m, p)| m == "POST" && p.contains("auth/kubernetes/login"));
    let revoke = reqs
        .iter()
        .position(|(m, p)| m == "POST" && p.contains("auth/token/revoke-self"));
    assert!(
        login.is_some() && revoke.is_some() && revoke > login,
        "{reqs:?}"
    );
    assert_eq!(
        reqs.last().map(|(_, p)| p.contains("revoke-self")),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_secret_mode_selects_exactly_one() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "a").kv("k", "1"))
        .await;
    env.seed(SeedSecret::bootstrap("apps", "b").kv("k", "2"))
        .await;
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps", "--namespace", "apps", "--name", "b"])
        .run()
        .await;
    rb.assert_code(0);
    let refs = rb.references();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["name"], json!("b"));
    assert_eq!(refs[0]["keys"], json!(["k"]));
    assert_eq!(rb.output("count"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_hands_over_every_item_and_one_failure_blocks_no_other() {
    let env = Env::start().await;
    for i in 0..5 {
        env.seed(SeedSecret::bootstrap("bulk", &format!("s{i}")).kv("k", format!("v{i}")))
            .await;
    }
    // s3's path already holds someone else's data: that item must fail alone.
    env.vault_root(
        "POST",
        "secret/data/bulk/s3",
        Some(json!({"data": {"k": "other"}})),
    )
    .await;
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "bulk", "--batch-size", "2"])
        .run()
        .await;
    rb.assert_code(0);
    let batches: Vec<serde_json::Value> = serde_json::from_str(rb.output("batches.json")).unwrap();
    assert_eq!(
        batches
            .iter()
            .map(|b| b.as_array().unwrap().len())
            .collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    for batch in &batches {
        let b = batch.to_string();
        let has_s3 = b.contains("\"s3\"");
        let wv = env.write_vault(&b).await;
        wv.assert_code(if has_s3 { 3 } else { 0 });
        let results: Vec<serde_json::Value> =
            serde_json::from_str(wv.output("result.json")).unwrap();
        assert_eq!(results.len(), batch.as_array().unwrap().len());
        let mc = env.mark_consumed(&b, None, "delete").await;
        mc.assert_code(if has_s3 { 3 } else { 0 });
    }
    for i in [0, 1, 2, 4] {
        let path = format!("bulk/s{i}");
        assert_eq!(env.vault_versions(&path).await, 1);
        assert_eq!(
            env.vault_bytes(&path).await["k"],
            format!("v{i}").as_bytes()
        );
        assert!(
            env.secret("bulk", &format!("s{i}")).await.is_none(),
            "s{i} consumed"
        );
    }
    assert_eq!(env.vault_bytes("bulk/s3").await["k"], b"other");
    assert!(
        env.secret("bulk", "s3").await.is_some(),
        "the failed item stays authoritative"
    );
    // One login per batch process, not one per item.
    let logins = env
        .vault
        .requests()
        .iter()
        .filter(|(_, p)| p.contains("/auth/kubernetes/login"))
        .count();
    assert_eq!(logins, 6, "write-vault and mark-consumed once per batch");
}
