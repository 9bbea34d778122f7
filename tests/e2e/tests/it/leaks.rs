//! The non-negotiable: no secret value outside the two authorities. A canary value runs
//! through every scenario and is searched for everywhere a value must never be.

use base64::Engine as _;
use e2e::{Env, SeedSecret, StepRun};
use serde_json::json;

const CANARY: &str = "CANARY-7f3a9c-do-not-leak";

fn forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        CANARY.to_string(),
        b64.encode(CANARY),
        b64.encode(format!("{CANARY}\u{0}binary")),
        CANARY.chars().rev().collect(),
        "do-not-leak".to_string(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "{what} contains the canary ({f}):\n{text}"
        );
    }
}

fn check_run(run: &StepRun, args: &[String]) {
    assert_clean("stdout", &run.stdout);
    assert_clean("stderr", &run.stderr);
    for (name, body) in &run.outputs {
        assert_clean(&format!("output {name}"), body);
    }
    for a in args {
        assert_clean("process argument", a);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_is_nowhere_but_in_the_two_authorities() {
    let env = Env::start_with(vec!["locked".into()]).await;
    let canary_secret = |ns: &str, name: &str| {
        SeedSecret::bootstrap(ns, name).kv("password", CANARY).kv(
            "binary",
            format!("{CANARY}\u{0}binary")
                .as_bytes()
                .iter()
                .copied()
                .chain([0xffu8])
                .collect::<Vec<u8>>(),
        )
    };
    let mut runs: Vec<(StepRun, Vec<String>)> = Vec::new();
    macro_rules! step {
        ($name:expr, $args:expr) => {{
            let args: Vec<String> = $args.iter().map(|s: &&str| s.to_string()).collect();
            let run = env
                .step($name)
                .args(args.clone())
                .env("SECOPS_LOG", "debug")
                .run()
                .await;
            runs.push((run, args));
            runs.last().unwrap().0.code
        }};
    }

    // Happy path in each mode.
    for mode in ["delete", "inert", "ignore"] {
        let ns = format!("leak-{mode}");
        env.seed(canary_secret(&ns, "s")).await;
        assert_eq!(step!("read-bootstrap", &["--namespaces", ns.as_str()]), 0);
        let r = runs.last().unwrap().0.references()[0].to_string();
        assert_eq!(step!("write-vault", &["--reference", r.as_str()]), 0);
        assert_eq!(step!("write-vault", &["--reference", r.as_str()]), 0);
        assert_eq!(
            step!(
                "mark-consumed",
                &["--reference", r.as_str(), "--mode", mode]
            ),
            0
        );
    }
    // Conflict, change between steps, sealed Vault, refusals.
    env.vault_root(
        "POST",
        "secret/data/leak-conflict/s",
        Some(json!({"data": {"password": "other"}})),
    )
    .await;
    env.seed(canary_secret("leak-conflict", "s")).await;
    step!("read-bootstrap", &["--namespaces", "leak-conflict"]);
    let r = runs.last().unwrap().0.references()[0].to_string();
    assert_eq!(step!("write-vault", &["--reference", r.as_str()]), 3);
    assert_eq!(
        step!(
            "mark-consumed",
            &["--reference", r.as_str(), "--mode", "delete"]
        ),
        3
    );
    env.vault.seal();
    assert_eq!(step!("write-vault", &["--reference", r.as_str()]), 5);
    env.vault.unseal();
    env.seed(canary_secret("leak-refused", "s").unlabeled())
        .await;
    assert_eq!(
        step!(
            "read-bootstrap",
            &[
                "--namespaces",
                "leak-refused",
                "--namespace",
                "leak-refused",
                "--name",
                "s"
            ]
        ),
        3
    );
    assert_eq!(step!("read-bootstrap", &["--namespaces", "locked"]), 3);
    // Rotation keeps the canary in its other keys; push-secret publishes a canary Secret.
    let rotate = [
        "--path",
        "leak-ignore/s",
        "--key",
        "password=password",
        "--rotation-id",
        "leak-1",
        "--keep-versions",
        "1",
        "--grace",
        "0s",
    ];
    assert_eq!(step!("rotate", &rotate), 0);
    assert_eq!(step!("rotate", &rotate), 0);
    env.seed(
        canary_secret("leak-push", "s")
            .unlabeled()
            .label("secops.io/class", "internal"),
    )
    .await;
    assert_eq!(step!("push-secret", &["--namespaces", "leak-push"]), 0);
    assert_eq!(step!("push-secret", &["--namespaces", "leak-push"]), 0);
    let generated = env.vault_bytes("leak-ignore/s").await["password"].clone();
    let generated = String::from_utf8(generated).unwrap();
    for (run, _) in &runs {
        assert!(!run.stdout.contains(&generated) && !run.stderr.contains(&generated));
        for body in run.outputs.values() {
            assert!(!body.contains(&generated), "a generated value in an output");
        }
    }

    for (run, args) in &runs {
        check_run(run, args);
    }
    // Kubernetes: annotations, labels and Events of every namespace touched.
    for ns in [
        "leak-delete",
        "leak-inert",
        "leak-ignore",
        "leak-conflict",
        "leak-refused",
    ] {
        for s in env
            .secrets(ns)
            .list(&Default::default())
            .await
            .unwrap()
            .items
        {
            assert_clean("labels", &format!("{:?}", s.metadata.labels));
            assert_clean("annotations", &format!("{:?}", s.metadata.annotations));
        }
        for e in env.events(ns).await {
            assert_clean("Event", &serde_json::to_string(&e).unwrap());
        }
    }
    // Vault: metadata of every path (values are expected only in data).
    for path in [
        "leak-delete/s",
        "leak-inert/s",
        "leak-ignore/s",
        "leak-conflict/s",
    ] {
        let (_, meta) = env
            .vault_root("GET", &format!("secret/metadata/{path}"), None)
            .await;
        assert_clean("Vault metadata", &meta.to_string());
    }
    // ...and the value really is in Vault, so the search above could have found it.
    assert_eq!(
        env.vault_bytes("internal/leak-push/s").await["password"],
        CANARY.as_bytes()
    );
    assert!(env.vault_bytes("leak-ignore/s").await["binary"].starts_with(CANARY.as_bytes()));
    assert!(runs.len() >= 15, "covered {} step runs", runs.len());
}
