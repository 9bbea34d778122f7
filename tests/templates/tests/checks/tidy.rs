//! The code's own rules over the real `steps/` (none broken), and each rule on synthetic
//! sources that break it exactly once (each must fire there, and only there).

use template_checks::tidy::{self, Source, BIG_FILES};
use template_checks::{report, Locations, Problem};

use super::assert_exactly;

#[test]
fn the_step_sources_keep_the_rules() {
    let loc = Locations::locate().unwrap_or_else(|e| panic!("{e}"));
    let problems = tidy::check(&loc.repo);
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn the_real_sources_are_found() {
    let loc = Locations::locate().unwrap_or_else(|e| panic!("{e}"));
    let sources = tidy::load(&loc.repo);
    for p in [
        "steps/secops/src/kube/mod.rs",
        "steps/secops/src/vault/kv.rs",
        "steps/rotate/src/main.rs",
    ] {
        assert!(sources.iter().any(|s| s.path == p), "{p} not loaded");
    }
}

fn src(path: &str, text: &str) -> Source {
    Source::new(path, text)
}

const LIB: &str = "steps/secops/src/";

fn at(path: &str) -> String {
    format!("{LIB}{path}")
}

#[test]
fn reqwest_outside_vault_is_found() {
    let s = [
        src(&at("vault/kv.rs"), "use reqwest::Method;"),
        src(
            &at("push.rs"),
            "// reqwest in a comment\nlet m = \"reqwest\";\nlet c = reqwest::Client::new();",
        ),
    ];
    assert_exactly(
        &tidy::reqwest_only_in_vault(&s),
        &[("push.rs", "line 3", "`reqwest`")],
    );
}

#[test]
fn the_kube_client_outside_the_kube_module_is_found() {
    let s = [
        src(&at("kube/mod.rs"), "use kube::api::Api;"),
        src(&at("kube/classify.rs"), "fn f(e: kube::Error) {}"),
        src(
            &at("batch.rs"),
            "use crate::kube::Kube;\nuse kube::Client;\nfn f(_: super::kube::X) {}",
        ),
    ];
    assert_exactly(
        &tidy::kube_client_only_in_kube(&s),
        &[("batch.rs", "line 2", "`kube`")],
    );
}

#[test]
fn environment_reads_outside_the_entry_are_found() {
    let s = [
        src(&at("cli.rs"), "std::env::var(\"A\"); #[arg(env = \"B\")] x"),
        src(&at("run.rs"), "EnvFilter::try_from_env(\"SECOPS_LOG\")"),
        src(
            &at("kube.rs"),
            "let h = std::env::var_os(\"HOME\");\nlet n = env!(\"CARGO_PKG_VERSION\");",
        ),
        src(&at("push.rs"), "#[arg(long,\n env = \"X\")]"),
    ];
    assert_exactly(
        &tidy::env_only_at_the_entry(&s),
        &[
            ("kube.rs", "line 1", "`env`"),
            ("push.rs", "line 2", "`env`"),
        ],
    );
}

#[test]
fn printing_outside_the_printer_is_found() {
    let s = [
        src(
            &at("console.rs"),
            "println!(\"x\"); std::io::stdout().lock();",
        ),
        src(
            &at("batch.rs"),
            "eprintln!(\"{e}\");\nlet p = \"println!\";",
        ),
        src(&at("plan.rs"), "let o = std::io::stdout().lock();"),
        src(&at("run.rs"), "fmt().with_writer(std::io::stderr)"),
        src(&at("audit.rs"), "dbg!(x); fn print(x: u8) {} print(1);"),
    ];
    assert_exactly(
        &tidy::printing_only_in_the_printer(&s),
        &[
            ("batch.rs", "line 1", "`eprintln`"),
            ("plan.rs", "line 1", "`stdout`"),
            ("run.rs", "line 1", "`stderr`"),
            ("audit.rs", "line 1", "`dbg`"),
        ],
    );
}

#[test]
fn a_main_that_grows_or_does_its_own_thing_is_found() {
    let thin = "//! `rotate`\nfn main() -> std::process::ExitCode {\n    secops::run::main(\"rotate\", secops::steps::rotate)\n}\n";
    let grown = format!("{thin}\nfn helper() {{}}\nfn other() {{}}\n");
    let s = [
        src("steps/rotate/src/main.rs", thin),
        src("steps/unseal/src/main.rs", &grown),
        src("steps/push-secret/src/main.rs", "fn main() { do_it() }"),
        src(&at("main.rs"), &grown),
    ];
    assert_exactly(
        &tidy::thin_mains(&s),
        &[
            ("unseal/src/main.rs", "line 7", "7 lines"),
            (
                "push-secret/src/main.rs",
                "line 1",
                "calls secops::run::main",
            ),
        ],
    );
}

#[test]
fn a_file_past_its_limit_is_found_and_a_stale_exception_too() {
    let lines = |n: usize| "x\n".repeat(n);
    let big = [
        ("steps/secops/src/big.rs", 700),
        ("steps/secops/src/was_big.rs", 650),
    ];
    let s = [
        src(&at("small.rs"), &lines(600)),
        src(&at("grown.rs"), &lines(601)),
        src(&at("big.rs"), &lines(701)),
        src(&at("was_big.rs"), &lines(580)),
    ];
    assert_exactly(
        &tidy::file_sizes(&s, &big),
        &[
            ("grown.rs", "line 601", "more than 600"),
            ("/big.rs", "line 701", "the 700 it is frozen at"),
            ("was_big.rs", "line 580", "remove it from tidy::BIG_FILES"),
        ],
    );
    // The frozen sizes are the real ones at most: the list never allows growth it did not see.
    for (p, n) in BIG_FILES {
        assert!(*n > tidy::MAX_LINES, "{p}");
    }
}

#[test]
fn a_code_map_missing_or_inventing_a_module_is_found() {
    let s = [
        src(&at("lib.rs"), ""),
        src(&at("run.rs"), ""),
        src(&at("vault/mod.rs"), ""),
        src(&at("vault/kv.rs"), ""),
        src(&at("vault/sys.rs"), ""),
    ];
    let map = "## Code map\n\n- `steps/secops` — the library.\n  - `run` — main.\n  - `vault` — client (`kv`: KV v2;\n    `sys`).\n  - `ghost` — nothing.\n";
    assert_exactly(
        &tidy::code_map(&s, map),
        &[("ARCHITECTURE.md", "Code map", "`ghost`, which is no module")],
    );
    let without_sys = map.replace("\n    `sys`)", ")");
    let p: Vec<Problem> = tidy::code_map(&s, &without_sys);
    assert!(
        p.iter().any(|p| p.message.contains("`vault::sys` exists")),
        "{}",
        report(&p)
    );
}

#[test]
fn an_import_cycle_is_found_and_its_edges_named() {
    let s = [
        src(
            &at("audit.rs"),
            "pub struct Auditor { d: crate::plan::DryRun }",
        ),
        src(
            &at("plan.rs"),
            "use crate::error::Error;\n\nfn f(e: &crate::audit::AuditEvent) {}",
        ),
        src(&at("error.rs"), ""),
        src(&at("batch.rs"), "use crate::kube::Kube;"),
        src(&at("kube.rs"), "mod tests { use super::*; }"),
    ];
    assert_exactly(
        &tidy::no_import_cycles(&s),
        &[(
            LIB,
            "audit, plan",
            "audit -> plan (line 1), plan -> audit (line 3)",
        )],
    );
    let broken = [
        src(&at("plan.rs"), "use crate::audit_event::AuditEvent;"),
        s[0].clone(),
        src(&at("audit_event.rs"), ""),
    ];
    assert!(tidy::no_import_cycles(&broken).is_empty());
}

/// One name per thing: every step crate under `steps/` (the `secops` library aside) is built
/// by the Makefile's STEPS, has its image (`images/<step>/Containerfile` copying its binary),
/// and its binary passes `.containerignore`. A step added without one of them fails CI late,
/// in the image build; this fails it at once, naming what is missing.
#[test]
fn every_step_has_its_build_entry_image_and_context() {
    let loc = Locations::locate().unwrap_or_else(|e| panic!("{e}"));
    let read =
        |p: &str| std::fs::read_to_string(loc.repo.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let makefile = read("Makefile");
    let steps_line = makefile
        .lines()
        .find(|l| l.starts_with("STEPS :="))
        .expect("Makefile: a STEPS := line");
    let built: Vec<&str> = steps_line["STEPS :=".len()..].split_whitespace().collect();
    let ignore = read(".containerignore");
    let mut missing = Vec::new();
    let mut steps = Vec::new();
    for e in std::fs::read_dir(loc.repo.join("steps")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "secops" || !e.path().join("Cargo.toml").exists() {
            continue;
        }
        steps.push(name.clone());
        if !built.contains(&name.as_str()) {
            missing.push(format!("{name}: not in the Makefile's STEPS"));
        }
        let binary = format!("target/x86_64-unknown-linux-musl/release/{name}");
        match std::fs::read_to_string(loc.repo.join("images").join(&name).join("Containerfile")) {
            Ok(c) if c.contains(&binary) => {}
            Ok(_) => missing.push(format!("{name}: its Containerfile does not copy {binary}")),
            Err(_) => missing.push(format!("{name}: no images/{name}/Containerfile")),
        }
        if !ignore.lines().any(|l| l.trim() == format!("!{binary}")) {
            missing.push(format!(
                "{name}: .containerignore does not let {binary} through"
            ));
        }
    }
    for b in &built {
        if !steps.iter().any(|s| s == b) {
            missing.push(format!(
                "{b}: in the Makefile's STEPS but no steps/{b} crate"
            ));
        }
    }
    assert!(steps.len() >= 9, "steps found: {steps:?}");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
