//! The shipped Argo templates, run the way Argo runs them (`e2e::argo`): their own steps,
//! flags, env and output wiring, with Vault configured from templates/vault. These tests
//! break when the YAML's wiring breaks, which the step-level tests cannot see.

use e2e::argo::{
    install_vault_config, load_yaml, templates_dir, workflow_file, NodeKind, Phase, Runner,
    WorkflowRun,
};
use e2e::{annotation, label, secret_bytes, Env, SeedSecret};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{json, Value};

use crate::fixtures::binary_blob;

const HANDOVER: &str = "secret-handover.yaml";
const ROTATION: &str = "secret-rotation.yaml";
const PUSH: &str = "push-internal-secrets.yaml";

/// The test servers, with the shipped Vault policies and roles installed.
async fn env() -> Env {
    let env = Env::start().await;
    install_vault_config(&env).await.expect("templates/vault");
    env
}

async fn submit(env: &Env, file: &str, args: &[(&str, &str)]) -> WorkflowRun {
    let url = env.vault.url();
    let mut all = vec![("vault-addr", url.as_str())];
    all.extend_from_slice(args);
    Runner::new(env)
        .submit(workflow_file(file), &all)
        .await
        .expect("submit")
}

async fn hand_over_apps(env: &Env) -> WorkflowRun {
    let run = submit(
        env,
        HANDOVER,
        &[("namespaces", "apps"), ("consume-mode", "ignore")],
    )
    .await;
    run.assert_phase(Phase::Succeeded);
    run
}

/// The handover WorkflowTemplate with `from` replaced by `to` everywhere, in memory.
fn handover_changed(from: &str, to: &str) -> Value {
    let docs = load_yaml(&workflow_file(HANDOVER)).unwrap();
    let wft = docs
        .iter()
        .find(|d| d["kind"] == "WorkflowTemplate")
        .unwrap();
    let text = wft.to_string();
    assert!(text.contains(from), "{from} is in the template");
    serde_json::from_str(&text.replace(from, to)).unwrap()
}

fn provenance(run: &WorkflowRun) -> String {
    format!("{}/{}", run.name, run.uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_template_hands_every_bootstrap_secret_over_once() {
    let env = env().await;
    let seeds = [
        SeedSecret::bootstrap("apps", "db")
            .kv("username", "app")
            .kv("password", "pw-1"),
        SeedSecret::bootstrap("apps", "tls")
            .typed("kubernetes.io/tls")
            .kv("tls.crt", "crt")
            .kv("tls.key", "key"),
        SeedSecret::bootstrap("apps", "blob").kv("bin", binary_blob()),
    ];
    for s in &seeds {
        env.seed(s.clone()).await;
    }
    let run = hand_over_apps(&env).await;

    assert_eq!(run.pod("read-bootstrap").output("count"), "3");
    for template in ["write-vault", "mark-consumed"] {
        let pods = run.pods_of(template);
        assert_eq!(pods.len(), 3, "{template}: one pod per Secret");
        assert!(
            pods.iter().all(|p| p.exit_codes == [0]),
            "{}",
            run.summary()
        );
    }
    let mut mutexes: Vec<&str> = run
        .nodes
        .iter()
        .filter(|n| n.template == "hand-over-one")
        .flat_map(|n| n.mutexes.iter().map(String::as_str))
        .collect();
    mutexes.sort();
    assert_eq!(
        mutexes,
        [
            "secops-handover-apps.blob",
            "secops-handover-apps.db",
            "secops-handover-apps.tls"
        ]
    );
    // write-vault's version output reached mark-consumed through the YAML.
    for mc in run.pods_of("mark-consumed") {
        assert!(mc.args.contains(&"--vault-version=1".to_owned()), "{mc:?}");
    }
    for s in &seeds {
        let path = format!("apps/{}", s.name);
        assert_eq!(env.vault_versions(&path).await, 1, "{path}");
        assert_eq!(env.vault_bytes(&path).await, s.bytes(), "{path}: bytes");
        let meta = env.vault_custom_metadata(&path).await;
        assert_eq!(meta["secops.io/workflow"], provenance(&run), "{path}");
        let live = env.secret("apps", &s.name).await.expect("ignore keeps it");
        assert_eq!(label(&live, "secops.io/state"), Some("consumed"));
        assert_eq!(annotation(&live, "secops.io/vault-version"), Some("1"));
        let by = provenance(&run);
        assert_eq!(
            annotation(&live, "secops.io/consumed-by"),
            Some(by.as_str())
        );
        assert_eq!(annotation(&live, "secops.io/consumed-mode"), Some("ignore"));
        assert_eq!(secret_bytes(&live), s.bytes(), "ignore keeps the data");
    }

    // Again: nothing left to hand over, so the fan-out is skipped and nothing is written.
    let again = hand_over_apps(&env).await;
    assert_eq!(again.pod("read-bootstrap").output("count"), "0");
    assert!(again.pods_of("write-vault").is_empty() && again.pods_of("mark-consumed").is_empty());
    let hand_over = again.nodes_named("hand-over");
    assert_eq!(hand_over.len(), 1, "{}", again.summary());
    assert_eq!(hand_over[0].phase, Phase::Skipped);
    for s in &seeds {
        assert_eq!(env.vault_versions(&format!("apps/{}", s.name)).await, 1);
    }
}

/// The arguments the Sensor in templates/events submits for a Secret: its own parameter
/// list, with `body.metadata.*` written into the indices its `dest` paths name.
fn sensor_arguments(namespace: &str, name: &str) -> Vec<(String, String)> {
    let docs = load_yaml(&templates_dir().join("events/bootstrap-trigger.yaml")).unwrap();
    let sensor = docs.iter().find(|d| d["kind"] == "Sensor").unwrap();
    let trigger = &sensor["spec"]["triggers"][0]["template"]["argoWorkflow"];
    let wf = &trigger["source"]["resource"]["spec"];
    assert_eq!(wf["workflowTemplateRef"]["name"], "secret-handover");
    let mut args: Vec<(String, String)> = wf["arguments"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    for p in trigger["parameters"].as_array().unwrap() {
        let value = match p["src"]["dataKey"].as_str().unwrap() {
            "body.metadata.namespace" => namespace,
            "body.metadata.name" => name,
            other => panic!("the Sensor passes {other}: only metadata may leave the event"),
        };
        let dest = p["dest"].as_str().unwrap();
        let index: usize = dest
            .strip_prefix("spec.arguments.parameters.")
            .and_then(|d| d.strip_suffix(".value"))
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("dest {dest}"));
        args[index].1 = value.into();
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_of_one_secret_as_the_sensor_submits_it() {
    let env = env().await;
    let db = SeedSecret::bootstrap("apps", "db").kv("password", "pw-1");
    env.seed(db.clone()).await;
    env.seed(SeedSecret::bootstrap("apps", "api").kv("token", "t-1"))
        .await;
    let args = sensor_arguments("apps", "db");
    let mut args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let url = env.vault.url();
    args.push(("vault-addr", &url));
    let run = Runner::new(&env)
        .submit(workflow_file(HANDOVER), &args)
        .await
        .unwrap();
    run.assert_phase(Phase::Succeeded);

    assert_eq!(run.pod("read-bootstrap").output("count"), "1");
    assert_eq!(run.pod("write-vault").output("vault-path"), "apps/db");
    assert_eq!(env.vault_bytes("apps/db").await, db.bytes());
    let live = env.secret("apps", "db").await.unwrap();
    assert_eq!(label(&live, "secops.io/state"), Some("consumed"));
    // The other Secret is not touched on either side.
    assert_eq!(env.vault_versions("apps/api").await, 0);
    let api = env.secret("apps", "api").await.unwrap();
    assert_eq!(label(&api, "secops.io/state"), None);
}

fn external_secrets(env: &Env) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    };
    Api::namespaced_with(env.client.clone(), "apps", &ar)
}

async fn force_sync(env: &Env) -> String {
    let es = external_secrets(env).get("db").await.unwrap();
    es.metadata.annotations.unwrap_or_default()["force-sync"].clone()
}

fn rotated(run: &WorkflowRun) -> &str {
    run.pod("rotate").output("rotated")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_template_and_cronworkflow_rotate_once_per_rotation_id() {
    let env = env().await;
    env.seed(
        SeedSecret::bootstrap("apps", "db")
            .kv("username", "app")
            .kv("password", "initial"),
    )
    .await;
    hand_over_apps(&env).await;
    let es: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "db"},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
            "target": {"name": "db"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "apps/db", "property": "password"}}],
        },
    }))
    .unwrap();
    external_secrets(&env)
        .create(&PostParams::default(), &es)
        .await
        .unwrap();

    let args = [
        ("paths", r#"["apps/db"]"#),
        ("keys", "password=uuid"),
        ("refresh-namespaces", "apps"),
    ];
    let first = submit(&env, ROTATION, &args).await;
    first.assert_phase(Phase::Succeeded);
    assert_eq!(rotated(&first), "1");
    assert_eq!(env.vault_versions("apps/db").await, 2);
    let bytes = env.vault_bytes("apps/db").await;
    assert_eq!(bytes["username"], b"app");
    let password = String::from_utf8(bytes["password"].clone()).unwrap();
    assert!(
        password.len() == 36 && password.matches('-').count() == 4,
        "{password}"
    );
    // An empty rotation-id means the workflow uid.
    let meta = env.vault_custom_metadata("apps/db").await;
    assert_eq!(meta["secops.io/rotation-id"], first.uid);
    assert_eq!(force_sync(&env).await, format!("{}-v2", first.uid));

    // The same rotation again (a re-submitted run): no new version.
    let mut same = args.to_vec();
    same.push(("rotation-id", &first.uid));
    let again = submit(&env, ROTATION, &same).await;
    again.assert_phase(Phase::Succeeded);
    assert_eq!(rotated(&again), "0");
    let result: Value = serde_json::from_str(again.pod("rotate").output("result")).unwrap();
    assert_eq!(result[0]["outcome"], "already-rotated");
    assert_eq!(env.vault_versions("apps/db").await, 2);

    // The CronWorkflow: the rotation id is the scheduled time, so a retried or re-submitted
    // scheduled run rotates once.
    let scheduled = "2026-11-29T03:00:00Z";
    for expected_version in [3, 3] {
        let url = env.vault.url();
        let cron = Runner::new(&env)
            .submit_cron(workflow_file(ROTATION), scheduled, &[("vault-addr", &url)])
            .await
            .unwrap();
        cron.assert_phase(Phase::Succeeded);
        let rotate = cron.pod("rotate");
        assert!(
            rotate.args.contains(&format!("--rotation-id={scheduled}")),
            "{rotate:?}"
        );
        assert_eq!(env.vault_versions("apps/db").await, expected_version);
    }
    let meta = env.vault_custom_metadata("apps/db").await;
    assert_eq!(meta["secops.io/rotation-id"], scheduled);
    assert_eq!(force_sync(&env).await, format!("{scheduled}-v3"));
}

fn internal(name: &str) -> SeedSecret {
    SeedSecret::bootstrap("operators", name)
        .unlabeled()
        .label("secops.io/class", "internal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_template_and_cronworkflow_publish_internal_secrets() {
    let env = env().await;
    let seeds = [
        internal("broker")
            .kv("password", "pw")
            .kv("ca.p12", binary_blob()),
        internal("cache").kv("token", "t"),
    ];
    for s in &seeds {
        env.seed(s.clone()).await;
    }
    let before = env.secret("operators", "broker").await.unwrap();
    let run = submit(&env, PUSH, &[]).await;
    run.assert_phase(Phase::Succeeded);
    assert_eq!(run.pod("push").output("pushed"), "2");
    for s in &seeds {
        let path = format!("internal/operators/{}", s.name);
        assert_eq!(env.vault_versions(&path).await, 1, "{path}");
        assert_eq!(env.vault_bytes(&path).await, s.bytes(), "{path}");
        let meta = env.vault_custom_metadata(&path).await;
        assert_eq!(meta["secops.io/owner"], "push-secret");
        assert_eq!(meta["secops.io/workflow"], provenance(&run));
    }
    let after = env.secret("operators", "broker").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );

    // The CronWorkflow on unchanged sources: no Vault write.
    let url = env.vault.url();
    let cron = Runner::new(&env)
        .submit_cron(
            workflow_file(PUSH),
            "2026-11-29T03:15:00Z",
            &[("vault-addr", &url)],
        )
        .await
        .unwrap();
    cron.assert_phase(Phase::Succeeded);
    assert_eq!(cron.pod("push").output("pushed"), "0");
    assert_eq!(env.vault_versions("internal/operators/broker").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_output_reference_fails_the_run() {
    let env = env().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let broken = handover_changed(
        "steps.write.outputs.parameters.vault-version",
        "steps.write.outputs.parameters.vault-verison",
    );
    let url = env.vault.url();
    let run = Runner::new(&env)
        .submit(broken, &[("vault-addr", &url), ("namespaces", "apps")])
        .await
        .unwrap();
    // (Argo's submit-time validation would refuse this; the runner fails where it is used.)
    run.assert_phase(Phase::Error);
    let consume = run.nodes_named("consume");
    assert_eq!(consume.len(), 1, "{}", run.summary());
    assert_eq!(consume[0].phase, Phase::Error);
    assert!(
        consume[0]
            .message
            .contains("unresolved reference {{steps.write.outputs.parameters.vault-verison}}"),
        "{}",
        run.summary()
    );
    assert!(run.pods_of("mark-consumed").is_empty());
    let live = env.secret("apps", "db").await.unwrap();
    assert_eq!(
        label(&live, "secops.io/state"),
        None,
        "never marked consumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_flag_fails_its_node_with_exit_2_without_retries() {
    let env = env().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let broken = handover_changed("--reference=", "--referense=");
    let url = env.vault.url();
    let run = Runner::new(&env)
        .submit(broken, &[("vault-addr", &url), ("namespaces", "apps")])
        .await
        .unwrap();
    run.assert_phase(Phase::Failed);
    let wv = run.pod("write-vault");
    assert_eq!(wv.phase, Phase::Failed);
    assert_eq!(wv.exit_codes, [2], "a usage error is not retried");
    assert!(wv.stderr.contains("--referense"), "{}", wv.stderr);
    assert!(run.pods_of("mark-consumed").is_empty());
    assert_eq!(env.vault_versions("apps/db").await, 0);
    let live = env.secret("apps", "db").await.unwrap();
    assert_eq!(label(&live, "secops.io/state"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_strategy_retries_transient_and_unavailable_exits_only() {
    let env = env().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    // Vault sealed: exit 5 on every attempt, 1 + limit 4 of them, then the workflow fails.
    env.vault.seal().await;
    let sealed = submit(&env, HANDOVER, &[("namespaces", "apps")]).await;
    sealed.assert_phase(Phase::Failed);
    assert_eq!(sealed.pod("write-vault").exit_codes, [5; 5]);
    assert!(sealed.pods_of("mark-consumed").is_empty());
    env.vault.unseal().await;
    assert_eq!(env.vault_versions("apps/db").await, 0);

    // Vault fails for longer than a pod's own retry budget (4 attempts by default): the
    // retried pod completes the handover.
    env.vault.set_fault(Some(fault_injection::Fault::FailNext {
        count: 4,
        status: 503,
    }));
    let run = hand_over_apps(&env).await;
    let codes = &run.pod("write-vault").exit_codes;
    assert!(
        codes.len() == 2 && [4, 5].contains(&codes[0]) && codes[1] == 0,
        "{codes:?}"
    );
    assert_eq!(env.vault_versions("apps/db").await, 1);
}

/// A discovery that fails before writing its outputs (exit 2 here) ends as a Failed node with
/// its message; the outputs' defaults (`count` 0, `references` []) skip the hand-over instead
/// of failing it as an unresolvable reference (an Error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_discovery_ends_failed_with_its_message_not_as_an_error() {
    let env = env().await;
    let run = submit(
        &env,
        HANDOVER,
        &[
            ("namespaces", "apps"),
            ("secret-namespace", "billing"),
            ("secret-name", "db"),
        ],
    )
    .await;
    let discover = run.pod("read-bootstrap");
    assert_eq!(discover.exit_codes, [2], "{}", run.summary());
    assert_eq!(discover.phase, Phase::Failed);
    assert!(
        discover.message.contains("exit code 2"),
        "{}",
        discover.message
    );
    assert!(discover.stderr.contains("billing"), "{}", discover.stderr);
    let hand_over = run.nodes_named("hand-over");
    assert_eq!(hand_over.len(), 1, "{}", run.summary());
    assert_eq!(hand_over[0].phase, Phase::Skipped, "{}", run.summary());
    assert!(
        run.nodes.iter().all(|n| n.phase != Phase::Error),
        "{}",
        run.summary()
    );
}

/// A pod that died under its step (here: it never started, its Secret volume missing; Argo
/// says Error, as for an evicted or deleted pod) is retried like exit 4 and 5, while a
/// refusal (exit 2, 3) never is; and the identity volume is mounted read-only for its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_error_are_retried_and_the_identity_is_owner_read_only() {
    use e2e::argo::authority_file;
    let env = env().await;
    let runner = e2e::argo::Runner::authority(&env);
    let url = env.vault.url();
    let run = runner
        .submit_cron(
            authority_file("authority-unseal.yaml"),
            "2026-11-29T05:00:00Z",
            &[("vault-addr", url.as_str())],
        )
        .await
        .unwrap();
    run.assert_phase(Phase::Error);
    let pod = run.pod("unseal");
    assert_eq!(pod.exit_codes, [-1; 4], "1 + limit 3\n{}", run.summary());
    assert!(
        pod.message.contains("secops-unseal-identity"),
        "{}",
        pod.message
    );
    // With the identity there: the dev Vault is unsealed, a no-op; the key file is 0400.
    env.seed(
        SeedSecret::bootstrap(runner.namespace(), "secops-unseal-identity")
            .unlabeled()
            .kv(
                "key.txt",
                "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
            ),
    )
    .await;
    let run = runner
        .submit_cron(
            authority_file("authority-unseal.yaml"),
            "2026-11-29T05:05:00Z",
            &[("vault-addr", url.as_str())],
        )
        .await
        .unwrap();
    let pod = run.pod("unseal");
    let key = pod
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--age-identity-file="))
        .expect("identity flag");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400, "{}", run.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_or_invalid_arguments_are_refused_at_submit() {
    let env = env().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let runner = Runner::new(&env);
    let err = runner
        .submit(workflow_file(HANDOVER), &[("namespace", "apps")])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("\"namespace\" is not declared"),
        "{err}"
    );
    let err = runner
        .submit(workflow_file(HANDOVER), &[("consume-mode", "purge")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("enum"), "{err}");
    let typo = runner.submit(workflow_file(ROTATION), &[("rotation-idd", "x")]);
    assert!(typo.await.is_err());
    // Nothing ran.
    assert_eq!(env.vault_versions("apps/db").await, 0);
    let live = env.secret("apps", "db").await.unwrap();
    assert_eq!(label(&live, "secops.io/state"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_of_a_run_is_recorded() {
    let env = env().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let run = hand_over_apps(&env).await;
    let kinds: Vec<(&str, NodeKind, Phase)> = run
        .nodes
        .iter()
        .map(|n| (n.display_name.as_str(), n.kind, n.phase))
        .collect();
    assert_eq!(
        kinds,
        [
            (run.name.as_str(), NodeKind::Steps, Phase::Succeeded),
            ("discover", NodeKind::Pod, Phase::Succeeded),
            ("hand-over", NodeKind::Steps, Phase::Succeeded),
            ("write", NodeKind::Pod, Phase::Succeeded),
            ("consume", NodeKind::Pod, Phase::Succeeded),
        ]
    );
    let write = run.pod("write-vault");
    // The args as written in the YAML, with the outputs volume mapped to a directory.
    let reference = run.pod("read-bootstrap").output("references");
    let item: Value = serde_json::from_str::<Vec<Value>>(reference).unwrap()[0].clone();
    assert_eq!(write.args[0], format!("--reference={item}"));
    assert!(write
        .args
        .iter()
        .any(|a| a.starts_with("--outputs-dir=/") && !a.ends_with("=/outputs")));
    assert_eq!(write.env["SECOPS_VAULT_ROLE"], "secops-write-vault");
    assert_eq!(write.env["VAULT_ADDR"], env.vault.url());
    assert!(write.audit().iter().any(|e| e["outcome"] == "written"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_break_in_the_handover_wiring_fails_the_run() {
    let breaks = [
        // The Vault role another step's ServiceAccount is bound to.
        (
            r#""name":"SECOPS_VAULT_ROLE","value":"secops-write-vault""#,
            r#""name":"SECOPS_VAULT_ROLE","value":"secops-mark-consumed""#,
        ),
        // A ServiceAccount the Vault role does not accept.
        (
            r#""serviceAccountName":"secops-mark-consumed""#,
            r#""serviceAccountName":"secops-write-vault""#,
        ),
        // An output file the step does not write.
        ("/outputs/vault-version", "/outputs/vault_version"),
        // A field the reference does not have.
        ("{{item.name}}", "{{item.nam}}"),
        // A misspelt output in `when`, an undeclared workflow parameter.
        ("parameters.count}} > 0", "parameters.cuont}} > 0"),
        ("parameters.consume-mode}}", "parameters.consume_mode}}"),
        // A command the image does not hold.
        (r#"["/write-vault"]"#, r#"["/mark-consumed"]"#),
    ];
    for (from, to) in breaks {
        let env = env().await;
        env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
            .await;
        let url = env.vault.url();
        let run = Runner::new(&env)
            .submit(handover_changed(from, to), &[("vault-addr", &url)])
            .await
            .unwrap();
        assert_ne!(run.phase, Phase::Succeeded, "{to}\n{}", run.summary());
        let live = env.secret("apps", "db").await.unwrap();
        assert_eq!(label(&live, "secops.io/state"), None, "{to}");
    }
}

/// The handover with `hand-over-one` as a DAG (consume depends on write, listed first), and
/// each `(from, to)` of `changes` applied.
fn handover_as_dag(changes: &[(&str, &str)]) -> Value {
    let mut text = handover_changed("steps.write.outputs", "tasks.write.outputs").to_string();
    for (from, to) in changes {
        text = text.replace(from, to);
    }
    let mut wft: Value = serde_json::from_str(&text).unwrap();
    let templates = wft["spec"]["templates"].as_array_mut().unwrap();
    let one = templates
        .iter_mut()
        .find(|t| t["name"] == "hand-over-one")
        .unwrap();
    let steps = one.as_object_mut().unwrap().remove("steps").unwrap();
    let write = steps[0][0].clone();
    let mut consume = steps[1][0].clone();
    consume["dependencies"] = json!(["write"]);
    one["dag"] = json!({"tasks": [consume, write]});
    wft
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_follows_its_dependencies_and_omits_after_a_failure() {
    let env = env().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "pw"))
        .await;
    let url = env.vault.url();
    let args = [("vault-addr", url.as_str()), ("namespaces", "apps")];
    let runner = Runner::new(&env);

    let broken = handover_as_dag(&[("--reference=", "--referense=")]);
    let run = runner.submit(broken, &args).await.unwrap();
    run.assert_phase(Phase::Failed);
    assert_eq!(run.pod("write-vault").exit_codes, [2]);
    let consume = run.nodes_named("consume");
    assert_eq!(consume.len(), 1, "{}", run.summary());
    assert_eq!(consume[0].phase, Phase::Omitted);
    assert!(run.pods_of("mark-consumed").is_empty());

    let run = runner.submit(handover_as_dag(&[]), &args).await.unwrap();
    run.assert_phase(Phase::Succeeded);
    let names: Vec<&str> = run.nodes.iter().map(|n| n.display_name.as_str()).collect();
    assert_eq!(names[2..], ["hand-over", "write", "consume"]);
    assert!(run.nodes[3].name.ends_with(".hand-over(0).write"));
    assert_eq!(run.pod("mark-consumed").args[1], "--vault-version=1");
    assert_eq!(env.vault_versions("apps/db").await, 1);
    let live = env.secret("apps", "db").await.unwrap();
    assert_eq!(label(&live, "secops.io/state"), Some("consumed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_template_hands_over_in_one_pod_per_namespace() {
    let env = env().await;
    for i in 0..5 {
        env.seed(SeedSecret::bootstrap("apps", &format!("s{i}")).kv("k", format!("v{i}")))
            .await;
    }
    env.seed(SeedSecret::bootstrap("team", "t0").kv("k", "t"))
        .await;
    // Refused by discovery (no data): reported by the discover node, and it stops no pod.
    env.seed(SeedSecret::bootstrap("apps", "empty")).await;
    let run = submit(
        &env,
        "secret-handover-batch.yaml",
        &[("namespaces", "apps,team"), ("consume-mode", "delete")],
    )
    .await;
    run.assert_phase(Phase::Succeeded);
    assert_eq!(
        run.pod("read-bootstrap").exit_codes,
        [3],
        "{}",
        run.summary()
    );
    let pods = run.pods_of("hand-over-namespace");
    assert_eq!(pods.len(), 2, "{}", run.summary());
    let namespaces: Vec<&str> = pods
        .iter()
        .map(|p| p.inputs["namespace"].as_str())
        .collect();
    assert_eq!(namespaces, ["apps", "team"]);
    assert!(
        pods.iter().all(|p| p.exit_codes == [0]),
        "{}",
        run.summary()
    );
    for (ns, name, v) in (0..5)
        .map(|i| ("apps", format!("s{i}"), format!("v{i}")))
        .chain([("team", "t0".to_owned(), "t".to_owned())])
    {
        let path = format!("{ns}/{name}");
        assert_eq!(env.vault_versions(&path).await, 1);
        assert_eq!(env.vault_bytes(&path).await["k"], v.as_bytes());
        assert!(env.secret(ns, &name).await.is_none(), "{path} consumed");
    }
    assert!(env.secret("apps", "empty").await.is_some());
    assert_eq!(env.vault_versions("apps/empty").await, 0);
}

/// `kubectl -n secops create configmap secops-vault-ca --from-file=ca.crt=<pem>`, replacing
/// one that is there.
async fn vault_ca_configmap(env: &Env, pem: &str) {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::DeleteParams;
    let api = Api::<ConfigMap>::namespaced(env.client.clone(), "secops");
    let _ = api
        .delete("secops-vault-ca", &DeleteParams::default())
        .await;
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("secops-vault-ca".into()),
            ..Default::default()
        },
        data: Some([("ca.crt".to_owned(), pem.to_owned())].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm).await.unwrap();
}

/// A Vault with a private CA (docs/install.md "Vault's CA"): the bundle reaches every Vault step from
/// the optional ConfigMap secops-vault-ca through the `vault-cacert` parameter; without the
/// ConfigMap, or with another CA in it, the steps stop with exit 2 and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_vault_ca_comes_from_the_configmap() {
    let env = env().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "ca-canary-pw"))
        .await;
    let args = [
        ("namespaces", "apps"),
        ("consume-mode", "ignore"),
        ("vault-cacert", "/etc/secops/vault-ca/ca.crt"),
    ];
    let refused = |run: &WorkflowRun, needle: &str| {
        run.assert_phase(Phase::Failed);
        let write = run.pod("write-vault");
        // Exit 2 is for a human: no retry.
        assert_eq!(write.exit_codes, [2], "{}", run.summary());
        assert!(write.stderr.contains(needle), "{}", write.stderr);
        assert!(run.pods_of("mark-consumed").is_empty(), "{}", run.summary());
    };

    // The parameter is set but the ConfigMap was never created: the optional volume is empty.
    let before = env.vault.request_count();
    let run = submit(&env, HANDOVER, &args).await;
    refused(&run, "cannot read VAULT_CACERT");

    // Another CA: fails closed before any request reaches Vault's API.
    let other = fault_injection::TestPki::generate("an unrelated CA", &["127.0.0.1"]).unwrap();
    vault_ca_configmap(&env, &other.ca_pem).await;
    let run = submit(&env, HANDOVER, &args).await;
    refused(&run, "TLS to Vault failed");
    assert_eq!(env.vault.request_count(), before, "no request got through");
    assert_eq!(env.vault_versions("apps/db").await, 0);
    let live = env.secret("apps", "db").await.unwrap();
    assert_eq!(label(&live, "secops.io/state"), None);

    // Vault's own CA: both Vault steps verify it from the mounted file, and the handover goes through.
    vault_ca_configmap(&env, &e2e::vault_pki().ca_pem).await;
    let run = submit(&env, HANDOVER, &args).await;
    run.assert_phase(Phase::Succeeded);
    for step in ["write-vault", "mark-consumed"] {
        let cacert = &run.pod(step).env["VAULT_CACERT"];
        assert!(
            cacert.ends_with("volumes/vault-ca/ca.crt"),
            "{step} reads the mounted bundle, not the image's roots: {cacert}"
        );
    }
    assert_eq!(env.vault_versions("apps/db").await, 1);
}
