//! Batches: LIST pages instead of a GET per Secret, bounded concurrency, per-item outcomes in
//! input order, and the documented number of requests per Secret.

use e2e::{Env, SeedSecret};
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

/// Requests to the Kubernetes API on Secrets by verb (get/list/patch/delete), and Events.
fn kube_verbs(env: &Env) -> (Vec<String>, usize) {
    let accesses = env.kube.accesses();
    let secrets = accesses
        .iter()
        .filter(|a| a.resource == "secrets")
        .map(|a| a.verb.clone())
        .collect();
    let events = accesses.iter().filter(|a| a.resource == "events").count();
    (secrets, events)
}

fn count(v: &[String], verb: &str) -> usize {
    v.iter().filter(|x| *x == verb).count()
}

/// Vault requests on KV paths (not login or revoke).
fn vault_kv(env: &Env) -> Vec<(String, String)> {
    env.vault
        .requests()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/secret/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_lists_instead_of_getting_each_secret_and_keeps_each_outcome_apart() {
    let env = Env::start().await;
    for i in 0..10 {
        env.seed(SeedSecret::bootstrap("many", &format!("s{i:02}")).kv("k", format!("v{i}")))
            .await;
    }
    for i in 0..2 {
        env.seed(SeedSecret::bootstrap("few", &format!("f{i}")).kv("k", format!("f{i}")))
            .await;
    }
    let refs = env.discover("many,few").await;
    assert_eq!(refs.len(), 12);
    // After discovery: one Secret is deleted, another loses its bootstrap label. Neither is
    // in the batch's label-selected LIST; each is looked up by name and refused on its own.
    env.secrets("many")
        .delete("s03", &Default::default())
        .await
        .unwrap();
    env.secrets("many")
        .patch(
            "s07",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"secops.io/class": null}}})),
        )
        .await
        .unwrap();
    let batch = format!("[{}]", refs.join(","));
    let file = env.dir.path().join("batch.json");
    std::fs::write(&file, &batch).unwrap();

    env.kube.reset_requests();
    let before = vault_kv(&env).len();
    let wv = env
        .step("write-vault")
        .args([
            "--reference-file",
            file.to_str().unwrap(),
            "--concurrency",
            "3",
        ])
        .run()
        .await;
    wv.assert_code(3);
    let results: Vec<Value> = serde_json::from_str(wv.output("result.json")).unwrap();
    let order: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    let expected: Vec<String> = refs
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r).unwrap();
            format!(
                "{}/{}",
                v["namespace"].as_str().unwrap(),
                v["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(order, expected, "result.json keeps the input order");
    for r in &results {
        let name = r["name"].as_str().unwrap();
        match name {
            "s03" => assert_eq!(r["outcome"], "refused", "{r}"),
            // Un-labelling changed its resourceVersion: re-run the workflow.
            "s07" => assert_eq!(r["outcome"], "retry", "{r}"),
            _ => assert_eq!(r["result"]["outcome"], "written", "{r}"),
        }
    }
    assert!(wv.stderr.contains("no longer exists"), "{}", wv.stderr);
    let (verbs, events) = kube_verbs(&env);
    assert_eq!(count(&verbs, "get"), 0, "no GET per Secret: {verbs:?}");
    // One label-selected page per namespace, one lookup by name per Secret it did not hold.
    assert_eq!(count(&verbs, "list"), 2 + 2, "{verbs:?}");
    assert_eq!(verbs.len(), 4, "{verbs:?}");
    assert_eq!(
        events, 11,
        "10 handed over, 1 refused (a transient failure records none)"
    );
    let kv = vault_kv(&env)[before..].to_vec();
    // Per written Secret: the create-only write and the provenance PATCH; the deleted one:
    // one read to see whether its handover already happened.
    assert_eq!(kv.len(), 10 * 2 + 1, "{kv:?}");

    // mark-consumed over the same batch, inert: one read-back and one PATCH per Secret.
    env.kube.reset_requests();
    let before = vault_kv(&env).len();
    let mc = env
        .step("mark-consumed")
        .args([
            "--reference-file",
            file.to_str().unwrap(),
            "--mode",
            "inert",
        ])
        .env("SECOPS_KUBE_EVENTS", "false")
        .run()
        .await;
    mc.assert_code(3);
    let results: Vec<Value> = serde_json::from_str(mc.output("result.json")).unwrap();
    assert!(mc.stderr.contains("not labeled"), "{}", mc.stderr);
    let consumed = results
        .iter()
        .filter(|r| r["result"]["outcome"] == "consumed")
        .count();
    assert_eq!(consumed, 10, "{results:?}");
    let (verbs, events) = kube_verbs(&env);
    assert_eq!(events, 0, "--kube-events=false records none");
    assert_eq!(count(&verbs, "get"), 0, "{verbs:?}");
    assert_eq!(count(&verbs, "list"), 4, "{verbs:?}");
    assert_eq!(count(&verbs, "patch"), 10, "{verbs:?}");
    let kv = vault_kv(&env)[before..].to_vec();
    assert_eq!(kv.len(), 10, "one read-back per Secret it consumes: {kv:?}");
    for i in [0, 1, 2, 4, 5, 6, 8, 9] {
        let s = env.secret("many", &format!("s{i:02}")).await.unwrap();
        assert_eq!(e2e::label(&s, "secops.io/state"), Some("consumed"));
        assert!(s.data.unwrap_or_default().is_empty(), "inert");
    }
    let s07 = env.secret("many", "s07").await.unwrap();
    assert_eq!(
        e2e::label(&s07, "secops.io/state"),
        None,
        "refused, untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_mode_deletes_the_compared_state_without_a_patch_first() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let r = env.only_reference("apps").await;
    env.write_vault(&r).await.assert_code(0);
    env.kube.reset_requests();
    let mc = env.mark_consumed(&r, None, "delete").await;
    mc.assert_code(0);
    let (verbs, _) = kube_verbs(&env);
    assert_eq!(verbs, vec!["get", "delete"], "{verbs:?}");
    assert!(env.secret("apps", "db").await.is_none());
    let audit = mc.audit();
    assert_eq!(audit.last().unwrap()["outcome"], "consumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_validated() {
    let env = Env::start().await;
    let wv = env
        .step("write-vault")
        .args(["--reference", "[]", "--concurrency", "0"])
        .run()
        .await;
    wv.assert_code(2);
}

/// Discovery over more Secrets than one LIST page holds: read-bootstrap asks for pages of 500
/// (`limit`, then `continue`) and judges each page before it fetches the next, so it never
/// holds every candidate's values; the references it keeps still let it see across pages
/// (two Secrets on different pages that map to one Vault path are both refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_in_pages_and_still_judges_across_them() {
    use futures::StreamExt as _;
    let env = Env::start().await;
    // Pages are in name order: s000..s499 on the first, s500 alone on the second.
    futures::stream::iter(0..501)
        .map(|i| {
            let mut s = SeedSecret::bootstrap("many", &format!("s{i:03}")).kv("k", format!("v{i}"));
            if i == 0 || i == 500 {
                s = s.annotate("secops.io/vault-path", "many/shared");
            }
            env.seed(s)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    env.kube.reset_requests();
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "many"])
        .run()
        .await;
    rb.assert_code(3);
    let lists: Vec<String> = env
        .kube
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "GET" && p.contains("/secrets"))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(lists.len(), 2, "two pages: {lists:?}");
    assert!(
        lists[0].contains("limit=500") && !lists[0].contains("continue="),
        "{lists:?}"
    );
    assert!(
        lists[1].contains("limit=500") && lists[1].contains("continue="),
        "{lists:?}"
    );
    let refs = rb.references();
    assert_eq!(refs.len(), 499);
    assert!(refs
        .iter()
        .all(|r| r["name"] != "s000" && r["name"] != "s500"));
    let refused: Vec<Value> = serde_json::from_str(rb.output("refused.json")).unwrap();
    let names: Vec<&str> = refused
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s000", "s500"], "{refused:?}");
    assert!(refused
        .iter()
        .all(|r| r["reason"].as_str().unwrap().contains("same Vault path")));
    let batches: Vec<Vec<Value>> = serde_json::from_str(rb.output("batches.json")).unwrap();
    assert_eq!(batches.len(), 10, "499 references in batches of 50");
    assert_eq!(
        batches.concat(),
        refs,
        "batches hold the references, in order"
    );
    assert_eq!(rb.output("count"), "499");
    let audit = rb.audit();
    assert_eq!(audit.len(), 501, "one discovery line per Secret");
}

/// Issue 17: the batch workflow keeps namespace names in its Workflow object, not references,
/// so 10,000 bootstrap Secrets stay far under etcd's 1.5 MiB object limit (the references of
/// one namespace travel through the pod's emptyDir). Measured as Argo would store it, and
/// beside what the earlier design (references as parameters, then as each batch's input)
/// would have stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_workflow_object_stays_small_at_10000_references() {
    use e2e::argo::{load_yaml, workflow_file, Phase, Runner};
    use futures::StreamExt;
    const N: usize = 10_000;
    const ETCD_LIMIT: usize = 1536 * 1024;
    let env = Env::start().await;
    futures::stream::iter(0..N)
        .map(|i| {
            env.seed(
                SeedSecret::bootstrap("bulk", &format!("app-{i:05}-db-credentials"))
                    .kv("password", format!("pw-{i}")),
            )
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    // The earlier design stored every reference twice: discovery's `batches` output, and
    // each batch node's input.
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "bulk", "--batch-size", "100"])
        .run()
        .await;
    rb.assert_code(0);
    let before = 2 * rb.output("batches.json").len();
    let url = env.vault.url();
    let file = workflow_file("secret-handover-batch.yaml");
    let run = Runner::new(&env)
        .submit(
            file.clone(),
            &[
                ("vault-addr", url.as_str()),
                ("namespaces", "bulk"),
                ("concurrency", "32"),
                ("consume-mode", "delete"),
            ],
        )
        .await
        .unwrap();
    run.assert_phase(Phase::Succeeded);
    assert_eq!(run.pod("read-bootstrap").output("count"), N.to_string());
    let template = load_yaml(&file).unwrap().remove(0);
    let size = run.stored_size(&template);
    eprintln!(
        "secret-handover-batch at {N} references: Workflow object about {size} bytes \
         (references as parameters, as before: at least {before} bytes; etcd limit {ETCD_LIMIT})"
    );
    assert!(size < 64 * 1024, "{size} bytes");
    assert!(before > ETCD_LIMIT, "the earlier design: {before} bytes");
    assert_eq!(env.vault_versions("bulk/app-09999-db-credentials").await, 1);
    assert!(env
        .secret("bulk", "app-00000-db-credentials")
        .await
        .is_none());
}
