//! The handover chain as a workflow runs it, kill points across both servers, and the
//! invariants every crash, fault and race test checks afterwards.

use std::time::Instant;

use e2e::{label, secret_bytes, Env, SeedSecret, StepRun};
use serde_json::Value;

/// Environment for a step run: (name, value).
pub type Envs<'a> = &'a [(&'a str, &'a str)];

async fn step(env: &Env, name: &'static str, args: Vec<String>, envs: Envs<'_>) -> StepRun {
    let mut s = env.step(name).args(args);
    for (k, v) in envs {
        s = s.env(k, *v);
    }
    s.run().await
}

/// One pass of the chain over `ns`: read-bootstrap, then write-vault and, if it succeeded,
/// mark-consumed per reference. Returns every run (codes are not asserted).
pub async fn chain(env: &Env, ns: &str, mode: &str, envs: Envs<'_>) -> Vec<StepRun> {
    let rb = step(
        env,
        "read-bootstrap",
        vec!["--namespaces".into(), ns.into()],
        envs,
    )
    .await;
    let refs: Vec<String> = if rb.code == 0 {
        rb.references().iter().map(Value::to_string).collect()
    } else {
        Vec::new()
    };
    let mut runs = vec![rb];
    for r in refs {
        let wv = step(
            env,
            "write-vault",
            vec!["--reference".into(), r.clone()],
            envs,
        )
        .await;
        let version = (wv.code == 0).then(|| wv.output("vault-version").to_owned());
        runs.push(wv);
        if let Some(v) = version {
            let args = vec![
                "--reference".into(),
                r,
                "--mode".into(),
                mode.into(),
                "--vault-version".into(),
                v,
            ];
            runs.push(step(env, "mark-consumed", args, envs).await);
        }
    }
    runs
}

/// Re-runs the chain until read-bootstrap finds nothing left and every step of the last
/// pass exited 0; panics after `rounds` passes.
pub async fn until_done(
    env: &Env,
    ns: &str,
    mode: &str,
    envs: Envs<'_>,
    rounds: usize,
) -> Vec<StepRun> {
    let mut all = Vec::new();
    for _ in 0..rounds {
        let runs = chain(env, ns, mode, envs).await;
        let clean = runs.iter().all(|r| r.code == 0);
        let found = runs[0].code == 0 && !runs[0].references().is_empty();
        all.extend(runs);
        if clean && !found {
            return all;
        }
    }
    let last: Vec<_> = all.iter().rev().take(3).map(|r| &r.stderr).collect();
    panic!("{ns}: chain not done after {rounds} rounds; last stderr: {last:?}");
}

/// Requests both servers received since `since`, in the order the client made them (steps
/// make one request at a time), without the Vault requests faults never touch (`sys/` but
/// the capability check).
pub fn merged_requests(env: &Env, since: Instant) -> Vec<(Server, String, String)> {
    let mut all: Vec<(Instant, Server, String, String)> = env
        .kube
        .requests_at()
        .into_iter()
        .map(|(t, m, p)| (t, Server::Kube, m, p))
        .chain(
            env.vault
                .requests_at()
                .into_iter()
                .filter(|(_, _, p)| e2e::vault::faultable(p))
                .map(|(t, m, p)| (t, Server::Vault, m, p)),
        )
        .filter(|(t, ..)| *t >= since)
        .collect();
    all.sort_by_key(|(t, ..)| *t);
    all.into_iter().map(|(_, s, m, p)| (s, m, p)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Kube,
    Vault,
}

/// Kills the client at boundary `k` of `log` (after `k` requests): both servers refuse
/// everything from there on; with `served`, request `k` itself lands but its answer is lost.
pub fn kill_at(env: &Env, log: &[(Server, String, String)], k: usize, served: bool) {
    let before = |s: Server| log[..k].iter().filter(|(x, ..)| *x == s).count() as u32;
    let on = log[k].0;
    env.kube.set_fault(Some(fault_injection::Fault::KillAfter {
        ok: before(Server::Kube),
        served: served && on == Server::Kube,
    }));
    env.vault.set_fault(Some(fault_injection::Fault::KillAfter {
        ok: before(Server::Vault),
        served: served && on == Server::Vault,
    }));
}

/// The log with namespace `ns` written as `NS`, to compare runs over different namespaces.
pub fn shape(log: &[(Server, String, String)], ns: &str) -> Vec<(Server, String, String)> {
    log.iter()
        .map(|(s, m, p)| (*s, m.clone(), p.replace(ns, "NS")))
        .collect()
}

pub fn clear_faults(env: &Env) {
    env.kube.set_fault(None);
    env.vault.set_fault(None);
}

pub fn audit_events(runs: &[StepRun]) -> Vec<Value> {
    runs.iter().flat_map(StepRun::audit).collect()
}

/// RFC 5.4/5.7 at any moment: a consumed (or deleted, or blanked) bootstrap Secret has its
/// data acknowledged in Vault, byte for byte, in exactly one version; an unconsumed one
/// still holds its data unaltered.
pub async fn check_never_consumed_before_vault(env: &Env, seed: &SeedSecret, path: &str) {
    let what = format!("{}/{}", seed.namespace, seed.name);
    let versions = env.vault_versions(path).await;
    assert!(
        versions <= 1,
        "{what}: {versions} Vault versions for one handover"
    );
    let live = env.secret(&seed.namespace, &seed.name).await;
    let consumed = match &live {
        None => true,
        Some(s) => label(s, "secops.io/state") == Some("consumed"),
    };
    if consumed {
        assert_eq!(versions, 1, "{what}: consumed but Vault holds nothing");
        assert_eq!(
            env.vault_bytes(path).await,
            seed.bytes(),
            "{what}: consumed but Vault does not hold its exact data"
        );
    } else {
        // Not consumed: the Secret is still the authority (a write whose provenance is not
        // recorded yet is finished by the re-run).
        let s = live.expect("live");
        assert_eq!(secret_bytes(&s), seed.bytes(), "{what}: data altered");
    }
}

/// After the chain completed: one version with the exact data, the Secret consumed as the
/// mode says, and the audit trail telling the same story.
pub async fn check_handed_over(
    env: &Env,
    seed: &SeedSecret,
    path: &str,
    mode: &str,
    events: &[Value],
) {
    let what = format!("{}/{}", seed.namespace, seed.name);
    check_never_consumed_before_vault(env, seed, path).await;
    assert_eq!(env.vault_versions(path).await, 1, "{what}: one version");
    let meta = env.vault_custom_metadata(path).await;
    assert_eq!(
        meta["secops.io/source"], what,
        "{what}: provenance recorded"
    );
    let live = env.secret(&seed.namespace, &seed.name).await;
    match (mode, &live) {
        ("delete", None) => {}
        ("inert", Some(s)) => {
            assert_eq!(label(s, "secops.io/state"), Some("consumed"), "{what}");
            assert!(
                secret_bytes(s).values().all(Vec::is_empty),
                "{what}: blanked"
            );
        }
        ("ignore", Some(s)) => {
            assert_eq!(label(s, "secops.io/state"), Some("consumed"), "{what}");
            assert_eq!(secret_bytes(s), seed.bytes(), "{what}: data kept");
        }
        _ => panic!("{what}: mode {mode} but the Secret is {live:?}"),
    }
    check_audit(events, &what, mode);
}

/// The audit trail agrees with the final state: every success names version 1, at most one
/// write created it, and at least one consume event says the Secret was consumed in `mode`.
pub fn check_audit(events: &[Value], what: &str, mode: &str) {
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["source"]["namespace"]
                .as_str()
                .zip(e["source"]["name"].as_str())
                == what.split_once('/')
        })
        .collect();
    let outcome = |e: &Value| e["outcome"].as_str().unwrap_or_default().to_owned();
    let writes: Vec<_> = mine.iter().filter(|e| e["action"] == "write").collect();
    let written = writes.iter().filter(|e| outcome(e) == "written").count();
    assert!(
        written <= 1,
        "{what}: {written} `written` events for one version"
    );
    for e in writes
        .iter()
        .filter(|e| ["written", "unchanged"].contains(&outcome(e).as_str()))
    {
        assert_eq!(e["target"]["version"], 1, "{what}: {e}");
    }
    let consumed: Vec<_> = mine
        .iter()
        .filter(|e| e["action"] == "consume" && outcome(e) == "consumed")
        .collect();
    // A run killed right after its mark landed cannot report it; the re-run's discovery
    // then records the Secret as already consumed (and its annotations say by whom).
    let recorded = mine.iter().any(|e| {
        (e["action"] == "consume"
            && ["consumed", "unchanged", "deleting"].contains(&outcome(e).as_str()))
            || (e["action"] == "discover"
                && outcome(e) == "skipped"
                && e["reason"] == "already consumed")
    });
    assert!(
        recorded,
        "{what}: no event records the consumption: {mine:?}"
    );
    for e in &consumed {
        assert_eq!(e["reason"], format!("mode {mode}"), "{what}: {e}");
        assert_eq!(e["target"]["version"], 1, "{what}: {e}");
    }
    // Every consume before the last success either failed or changed nothing new.
    for e in mine.iter().filter(|e| e["action"] == "consume") {
        let o = outcome(e);
        assert!(
            ["consumed", "unchanged", "deleting", "retry", "unavailable"].contains(&o.as_str()),
            "{what}: unexpected consume outcome {o}: {e}"
        );
    }
}
