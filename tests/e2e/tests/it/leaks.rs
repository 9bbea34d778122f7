//! The non-negotiable: no secret value outside the two authorities. A canary value runs
//! through every scenario and is searched for everywhere a value must never be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use e2e::{Env, SeedSecret, StepRun};
use fault_injection::Fault;
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
                .env("SECOPS_LOG", "trace")
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
    env.vault.seal().await;
    assert_eq!(step!("write-vault", &["--reference", r.as_str()]), 5);
    env.vault.unseal().await;
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
        "internal/leak-push/s",
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

/// `(pid, cmdline, environ)` of every process whose arguments mention `marker`.
fn processes_mentioning(marker: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
            found.push((pid, cmdline, environ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_steps_hold_no_value_in_their_arguments_or_environment() {
    let env = Env::start().await;
    env.seed(
        SeedSecret::bootstrap("apps", "s")
            .kv("password", CANARY)
            .kv("blob", [CANARY.as_bytes(), &[0xff]].concat()),
    )
    .await;
    env.seed(
        SeedSecret::bootstrap("apps", "p")
            .unlabeled()
            .label("secops.io/class", "internal")
            .kv("password", CANARY),
    )
    .await;
    let r = env.only_reference("apps").await;
    // Every Vault request waits, so each step is caught while it runs.
    env.vault
        .set_fault(Some(Fault::Delay(Duration::from_millis(400))));
    let marker = env.kubeconfig.display().to_string();
    let mut sampled = Vec::new();
    let runs: [(&'static str, Vec<&str>); 4] = [
        ("write-vault", vec!["--reference", r.as_str()]),
        (
            "mark-consumed",
            vec!["--reference", r.as_str(), "--mode", "ignore"],
        ),
        (
            "rotate",
            vec![
                "--path",
                "apps/s",
                "--key",
                "password=password",
                "--rotation-id",
                "p1",
            ],
        ),
        (
            "push-secret",
            vec!["--namespaces", "apps", "--namespace", "apps", "--name", "p"],
        ),
    ];
    for (step, args) in runs {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (stop, marker) = (stop.clone(), marker.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.extend(processes_mentioning(&marker));
                    std::thread::sleep(Duration::from_millis(20));
                }
                seen
            })
        };
        let run = env.step(step).args(args).run().await;
        stop.store(true, Ordering::Relaxed);
        let seen = sampler.join().unwrap();
        run.assert_code(0);
        assert!(!seen.is_empty(), "{step} was never seen running");
        for (pid, cmdline, environ) in &seen {
            let cmdline = String::from_utf8_lossy(cmdline);
            let environ = String::from_utf8_lossy(environ);
            assert!(cmdline.contains(step), "pid {pid} is {cmdline}");
            assert_clean(&format!("/proc/{pid}/cmdline of {step}"), &cmdline);
            assert_clean(&format!("/proc/{pid}/environ of {step}"), &environ);
        }
        sampled.push((step, seen.len()));
    }
    env.vault.set_fault(None);
    // The values did reach Vault, so the search above could have found them.
    assert_eq!(
        env.vault_bytes("internal/apps/p").await["password"],
        CANARY.as_bytes()
    );
    println!("sampled running steps: {sampled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_prints_where_never_what_and_exits_1() {
    let env = Env::start().await;
    for step in [
        "read-bootstrap",
        "write-vault",
        "mark-consumed",
        "rotate",
        "push-secret",
    ] {
        let run = env
            .step(step)
            .env("SECOPS_DEBUG_PANIC", format!("value {CANARY}"))
            .args(minimal_args(step))
            .run()
            .await;
        check_panic(step, &run);
    }
}

fn minimal_args(step: &str) -> Vec<&'static str> {
    match step {
        "read-bootstrap" | "push-secret" => vec!["--namespaces", "apps"],
        "write-vault" => vec!["--reference", "{}"],
        "mark-consumed" => vec!["--reference", "{}", "--mode", "delete"],
        _ => vec!["--path", "apps/s", "--key", "password=password"],
    }
}

fn check_panic(step: &str, run: &StepRun) {
    assert_eq!(run.code, 1, "{step}: {}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{step}: error: internal error: the step panicked at"
        )),
        "{step}: {}",
        run.stderr
    );
    assert_clean(&format!("{step} panic"), &run.stderr);
    assert_clean(&format!("{step} panic stdout"), &run.stdout);
}
