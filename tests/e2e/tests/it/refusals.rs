//! What must be refused, with which exit code, leaving everything unchanged.

use e2e::{annotation, label, secret_bytes, Env, SeedSecret};
use serde_json::json;

/// Words a next-step clause starts its instruction with: what an operator can do.
const ACTIONS: &[&str] = &[
    "add",
    "ask",
    "audit",
    "check",
    "choose",
    "confirm",
    "create",
    "delete",
    "deliver",
    "drop",
    "fix",
    "give",
    "grant",
    "hand",
    "inspect",
    "label",
    "mark",
    "mount",
    "move",
    "pass",
    "pick",
    "re-run",
    "remove",
    "restore",
    "retry",
    "rotate",
    "run",
    "set",
    "split",
    "store",
    "undelete",
    "unseal",
    "update",
    "use",
    "wipe",
    "re-initialise",
];

/// Every refusal names the object, the reason and the next step for the operator: the
/// library writes them as `{object}: {reason}; {next step}` (`Error::precondition`). Returns
/// (object, reason, next step), or panics saying which part is missing.
#[track_caller]
pub fn refusal_parts(message: &str) -> (&str, &str, &str) {
    let message = message.trim();
    let (object, rest) = message
        .split_once(": ")
        .unwrap_or_else(|| panic!("no object named before ': ' in {message:?}"));
    // The reason ends at the first "; "; the next step may go on with a why ("...; remove the
    // label; tokens are never handed over").
    let (reason, next) = rest
        .split_once("; ")
        .unwrap_or_else(|| panic!("no '; next step' clause in {message:?}"));
    assert!(!object.trim().is_empty(), "empty object in {message:?}");
    assert!(!reason.trim().is_empty(), "empty reason in {message:?}");
    let words: Vec<String> = next
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_ascii_lowercase)
        .collect();
    assert!(
        words.iter().any(|w| ACTIONS.contains(&w.as_str())),
        "the next step {next:?} tells the operator nothing to do, in {message:?}"
    );
    (object, reason, next)
}

/// As [`refusal_parts`], and the object is the one expected (e.g. `Secret apps/db`).
#[track_caller]
pub fn assert_names_object_reason_and_next_step(message: &str, object: &str) {
    let (named, _, _) = refusal_parts(message);
    assert!(
        named.ends_with(object),
        "names {named:?}, not {object:?}: {message:?}"
    );
}

/// The refusal a step printed on stderr (`<step>: error: <message>`), if any.
pub fn stderr_refusal<'a>(step: &str, stderr: &'a str) -> Option<&'a str> {
    let prefix = format!("{step}: error: ");
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
}

#[test]
fn the_refusal_shape_check_catches_each_missing_part() {
    let ok =
        "Secret apps/db: has no data to hand over; add its data in Git, then re-run the handover";
    assert_eq!(refusal_parts(ok).0, "Secret apps/db");
    assert_names_object_reason_and_next_step(ok, "Secret apps/db");
    for bad in [
        "has no data to hand over",
        "Secret apps/db: has no data to hand over",
        "Secret apps/db: has no data; see above",
        "Secret apps/db: is not labeled; only labeled Secrets are handed over",
    ] {
        assert!(
            std::panic::catch_unwind(|| refusal_parts(bad)).is_err(),
            "{bad:?} passed"
        );
    }
}

fn writes(env: &Env) -> Vec<(String, String)> {
    env.vault
        .requests()
        .into_iter()
        .filter(|(m, p)| m != "GET" && p.starts_with("/v1/secret/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_vault_value_is_left_untouched() {
    let env = Env::start().await;
    let (st, _) = env
        .vault_root(
            "POST",
            "secret/data/apps/db",
            Some(json!({"data": {"password": "rotated-in-vault"}})),
        )
        .await;
    assert_eq!(st, 200);
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "from-git"))
        .await;
    let r = env.only_reference("apps").await;
    let wv = env.write_vault(&r).await;
    wv.assert_code(3);
    assert!(wv.stderr.contains("another source"), "{}", wv.stderr);
    assert_eq!(env.vault_versions("apps/db").await, 1);
    assert_eq!(
        env.vault_bytes("apps/db").await["password"],
        b"rotated-in-vault"
    );
    assert!(
        env.vault_custom_metadata("apps/db").await.is_empty(),
        "no provenance written"
    );
    // And mark-consumed refuses to consume without an acknowledgement.
    let mc = env.mark_consumed(&r, Some("1"), "delete").await;
    mc.assert_code(3);
    let live = env.secret("apps", "db").await.expect("still there");
    assert_eq!(label(&live, "secops.io/state"), None);
    assert_eq!(secret_bytes(&live)["password"], b"from-git");
    let audit = wv.audit();
    assert_eq!(audit.last().unwrap()["outcome"], json!("refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_changed_after_read_bootstrap_is_refused() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "v1"))
        .await;
    let r = env.only_reference("apps").await;
    let mut s = env.secret("apps", "db").await.unwrap();
    s.data
        .as_mut()
        .unwrap()
        .insert("password".into(), k8s_openapi::ByteString(b"v2".to_vec()));
    env.secrets("apps")
        .replace("db", &Default::default(), &s)
        .await
        .unwrap();
    let wv = env.write_vault(&r).await;
    wv.assert_code(4);
    assert!(
        wv.stderr.contains("changed since read-bootstrap"),
        "{}",
        wv.stderr
    );
    assert_eq!(env.vault_versions("apps/db").await, 0);

    // Replaced entirely (new uid): refused as a precondition, nothing written.
    env.secrets("apps")
        .delete("db", &Default::default())
        .await
        .unwrap();
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "v3"))
        .await;
    let wv = env.write_vault(&r).await;
    wv.assert_code(3);
    assert!(wv.stderr.contains("was replaced"), "{}", wv.stderr);
    assert_eq!(env.vault_versions("apps/db").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resynced_bootstrap_is_never_written_over_vault() {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "original"))
        .await;
    env.handover("apps", "delete").await;
    assert!(env.secret("apps", "db").await.is_none());

    // GitOps re-creates it, with data Vault no longer holds (rotated since, say).
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "stale-from-git"))
        .await;
    let runs = env.handover("apps", "ignore").await;
    assert_eq!(runs.len(), 1);
    let (wv, mc) = &runs[0];
    assert_eq!(wv.output("outcome"), "vault-differs");
    assert_eq!(mc.output("outcome"), "consumed-vault-differs");
    assert_eq!(env.vault_versions("apps/db").await, 1, "Vault not written");
    assert_eq!(env.vault_bytes("apps/db").await["password"], b"original");
    let live = env.secret("apps", "db").await.unwrap();
    assert_eq!(label(&live, "secops.io/state"), Some("consumed"));
    assert!(annotation(&live, "secops.io/consumed-note")
        .unwrap()
        .contains("vault-differs"));
    let warned =
        env.events("apps").await.iter().any(|e| {
            e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("Consumed")
        });
    assert!(warned, "a Warning Event reports it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlabeled_forbidden_and_escaping_inputs_are_refused() {
    let env = Env::start_with(vec!["locked".into()]).await;
    env.seed(
        SeedSecret::bootstrap("apps", "plain")
            .unlabeled()
            .kv("k", "v"),
    )
    .await;
    env.seed(
        SeedSecret::bootstrap("apps", "wrong-class")
            .unlabeled()
            .label("secops.io/class", "runtime")
            .kv("k", "v"),
    )
    .await;
    env.seed(
        SeedSecret::bootstrap("apps", "escape")
            .annotate("secops.io/vault-path", "apps/../other/x")
            .kv("k", "v"),
    )
    .await;
    env.seed(
        SeedSecret::bootstrap("apps", "other-ns")
            .annotate("secops.io/vault-path", "billing/x")
            .kv("k", "v"),
    )
    .await;
    env.seed(SeedSecret::bootstrap("apps", "fine").kv("k", "v"))
        .await;

    // Unlabeled, by name: exit 3.
    for name in ["plain", "wrong-class"] {
        let rb = env
            .step("read-bootstrap")
            .args([
                "--namespaces",
                "apps",
                "--namespace",
                "apps",
                "--name",
                name,
            ])
            .run()
            .await;
        rb.assert_code(3);
        assert!(
            rb.stderr
                .contains("is not labeled secops.io/class=bootstrap"),
            "{}",
            rb.stderr
        );
    }
    // Outside the allowed namespaces: exit 2.
    let rb = env
        .step("read-bootstrap")
        .args([
            "--namespaces",
            "apps",
            "--namespace",
            "kube-system",
            "--name",
            "x",
        ])
        .run()
        .await;
    rb.assert_code(2);
    // Forbidden by RBAC: exit 3 with the hint.
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "locked"])
        .run()
        .await;
    rb.assert_code(3);
    assert!(rb.stderr.contains("forbidden"), "{}", rb.stderr);
    // Discovery: the escaping ones are refused and reported, the valid one still selected.
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps"])
        .run()
        .await;
    rb.assert_code(3);
    let names: Vec<_> = rb
        .references()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["fine"]);
    let refused: Vec<serde_json::Value> = serde_json::from_str(rb.output("refused.json")).unwrap();
    let refused_names: Vec<_> = refused
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(refused_names, vec!["escape", "other-ns"]);
    assert!(refused[0]["reason"]
        .as_str()
        .unwrap()
        .contains("'.' or '..'"));
    assert!(refused[1]["reason"]
        .as_str()
        .unwrap()
        .contains("outside the subtree"));

    // A forged reference pointing into another namespace's subtree: exit 3, nothing written.
    let forged = json!({"namespace":"apps","name":"fine","uid":"x","resourceVersion":"1","path":"billing/x","keys":["k"]});
    let s = env.secret("apps", "fine").await.unwrap();
    let forged_same_uid = json!({"namespace":"apps","name":"fine","uid":s.metadata.uid,"resourceVersion":s.metadata.resource_version,"path":"billing/x","keys":["k"]});
    for f in [forged, forged_same_uid] {
        let wv = env
            .step("write-vault")
            .args(["--reference".to_string(), f.to_string()])
            .run()
            .await;
        wv.assert_code(3);
    }
    // Malformed references: exit 2.
    for bad in [
        "{}",
        "not json",
        r#"{"namespace":"apps","name":"fine","uid":"u","resourceVersion":"1","path":"/abs","keys":[]}"#,
    ] {
        let wv = env
            .step("write-vault")
            .args(["--reference", bad])
            .run()
            .await;
        wv.assert_code(2);
    }
    assert!(
        writes(&env).is_empty(),
        "no Vault write: {:?}",
        writes(&env)
    );
    // Unknown flag: exit 2.
    env.step("write-vault")
        .arg("--no-such-flag")
        .run()
        .await
        .assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_secrets_for_one_path_are_both_refused() {
    let env = Env::start().await;
    env.seed(
        SeedSecret::bootstrap("apps", "a")
            .annotate("secops.io/vault-path", "apps/shared")
            .kv("k", "1"),
    )
    .await;
    env.seed(
        SeedSecret::bootstrap("apps", "b")
            .annotate("secops.io/vault-path", "apps/shared")
            .kv("k", "2"),
    )
    .await;
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "apps"])
        .run()
        .await;
    rb.assert_code(3);
    assert!(rb.references().is_empty());
    assert!(rb.output("refused.json").contains("same Vault path"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inert_on_an_immutable_secret_is_refused_before_anything_changes() {
    let env = Env::start().await;
    env.seed(
        SeedSecret::bootstrap("apps", "frozen")
            .immutable()
            .kv("k", "v"),
    )
    .await;
    let r = env.only_reference("apps").await;
    env.write_vault(&r).await.assert_code(0);
    let before = env.secret("apps", "frozen").await.unwrap();
    let mc = env.mark_consumed(&r, None, "inert").await;
    mc.assert_code(3);
    assert!(mc.stderr.contains("immutable"), "{}", mc.stderr);
    let after = env.secret("apps", "frozen").await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    // delete mode works on it.
    env.mark_consumed(&r, None, "delete").await.assert_code(0);
    assert!(env.secret("apps", "frozen").await.is_none());
}
