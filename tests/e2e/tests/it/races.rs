//! Concurrency: two handover chains, and two rotations (same and different rotation ids),
//! started at once on the same secrets, several times. Each race has exactly one winner and
//! no lost update; the loser is a no-op or exits 4. Vault answers slowly (a delay fault) so
//! the two processes always overlap.

use std::time::Duration;

use e2e::{Env, SeedSecret, StepRun};
use serde_json::{json, Value};

use crate::chain::{audit_events, chain, check_handed_over};

const REPETITIONS: usize = 4;

fn slow_vault(env: &Env) {
    env.vault
        .set_fault(Some(fault_injection::Fault::Delay(Duration::from_millis(
            120,
        ))));
}

async fn race_handover(mode: &str) {
    let env = Env::start().await;
    for i in 0..REPETITIONS {
        let ns = format!("race{i}");
        let seed = SeedSecret::bootstrap(&ns, "db")
            .kv("username", "app")
            .kv("password", format!("race-canary-{i}"));
        env.seed(seed.clone()).await;
        slow_vault(&env);
        let (a, b) = tokio::join!(chain(&env, &ns, mode, &[]), chain(&env, &ns, mode, &[]));
        env.vault.set_fault(None);
        let runs: Vec<StepRun> = a.into_iter().chain(b).collect();
        for r in &runs {
            assert!(
                r.code == 0 || r.code == 4,
                "{ns}: a racer exits 0 or 4, got {}: {}",
                r.code,
                r.stderr
            );
        }
        let events = audit_events(&runs);
        let count = |action: &str, outcome: &str| {
            events
                .iter()
                .filter(|e| e["action"] == action && e["outcome"] == outcome)
                .count()
        };
        assert_eq!(
            count("write", "written"),
            1,
            "{ns}: one writer wins: {events:?}"
        );
        assert_eq!(
            count("consume", "consumed"),
            1,
            "{ns}: one marker wins: {events:?}"
        );
        check_handed_over(&env, &seed, &format!("{ns}/db"), mode, &events).await;
    }
    println!("{REPETITIONS} handover races ({mode}): one winner each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handover_chains_racing_have_one_winner_delete() {
    race_handover("delete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handover_chains_racing_have_one_winner_inert() {
    race_handover("inert").await;
}

async fn rotate(env: &Env, path: &str, id: &str) -> StepRun {
    env.step("rotate")
        .args([
            "--path",
            path,
            "--key",
            "password=password:length=24",
            "--rotation-id",
            id,
        ])
        .run()
        .await
}

fn outcome(run: &StepRun) -> Value {
    let res: Value = serde_json::from_str(run.output("result.json")).expect("result.json");
    res[0]["outcome"].clone()
}

async fn race_rotation(same_id: bool) {
    let env = Env::start().await;
    for i in 0..REPETITIONS {
        let path = format!("races/r{i}");
        env.vault_root(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({"data": {"password": "v1", "user": "u"}})),
        )
        .await;
        let (id_a, id_b) = if same_id {
            ("nightly-1".to_string(), "nightly-1".to_string())
        } else {
            (format!("a-{i}"), format!("b-{i}"))
        };
        slow_vault(&env);
        let (a, b) = tokio::join!(rotate(&env, &path, &id_a), rotate(&env, &path, &id_b));
        env.vault.set_fault(None);
        let rotated: Vec<&StepRun> = [&a, &b]
            .into_iter()
            .filter(|r| r.code == 0 && outcome(r) == json!("rotated"))
            .collect();
        assert_eq!(
            rotated.len(),
            1,
            "{path}: one winner; a: {} b: {}",
            a.stderr,
            b.stderr
        );
        let winner_id = if std::ptr::eq(rotated[0], &a) {
            &id_a
        } else {
            &id_b
        };
        for r in [&a, &b] {
            if std::ptr::eq(r, rotated[0]) {
                continue;
            }
            // The loser: a no-op (same id, already rotated) or exit 4, writing nothing.
            match r.code {
                0 => {
                    assert!(same_id, "{path}: a different id cannot be a no-op");
                    assert_eq!(outcome(r), json!("already-rotated"), "{path}");
                }
                4 => assert!(r.stderr.contains("concurrent writer"), "{}", r.stderr),
                c => panic!("{path}: loser exited {c}: {}", r.stderr),
            }
        }
        assert_eq!(
            env.vault_versions(&path).await,
            2,
            "{path}: exactly one new version"
        );
        let meta = env.vault_custom_metadata(&path).await;
        assert_eq!(&meta["secops.io/rotation-id"], winner_id, "{path}");
        assert_eq!(meta["secops.io/rotation-versions"], "1->2", "{path}");
        assert!(
            !meta.contains_key("secops.io/rotation-pending"),
            "{path}: no intent left"
        );
        let bytes = env.vault_bytes(&path).await;
        assert_eq!(bytes["user"], b"u", "{path}: other keys kept");
        assert_eq!(
            bytes["password"].len(),
            24,
            "{path}: the winner's value stands"
        );
    }
    println!(
        "{REPETITIONS} rotation races ({} ids): one winner each",
        if same_id { "same" } else { "different" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_with_the_same_id_racing_make_one_version() {
    race_rotation(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_with_different_ids_racing_have_one_winner() {
    race_rotation(false).await;
}
