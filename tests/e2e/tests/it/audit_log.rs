//! The proxy's request records against OpenBao's own audit log: every Vault request the
//! steps made, as the proxy forwarded it, is one OpenBao audited, and the other way round,
//! so request counts taken from the proxy (tests, bench) are Vault's.

use std::collections::BTreeMap;

use e2e::vault::Call;
use e2e::{Env, SeedSecret};
use fault_injection::Fault;

fn counts(calls: Vec<Call>) -> BTreeMap<Call, usize> {
    let mut out = BTreeMap::new();
    for c in calls {
        *out.entry(c).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_vault_requests_are_the_ones_openbao_audited() {
    let env = Env::start().await;
    for ns in ["one", "batch"] {
        for i in 0..3 {
            env.seed(SeedSecret::bootstrap(ns, &format!("s{i}")).kv("password", "audit-canary"))
                .await;
        }
    }
    // The first two Vault requests get an injected 503 (the step retries them): the proxy
    // records them, OpenBao never sees them.
    env.vault.set_fault(Some(Fault::FailNext {
        count: 2,
        status: 503,
    }));
    // The chain per reference, as the single-Secret workflow runs it ...
    let runs = env.handover("one", "delete").await;
    assert_eq!(runs.len(), 3);
    assert!(
        env.vault.fault().is_none(),
        "the injected answers were used"
    );
    // ... and as the batch pod runs it.
    let rb = env
        .step("read-bootstrap")
        .args(["--namespaces", "batch"])
        .run()
        .await;
    rb.assert_code(0);
    let refs = rb.outputs_dir.join("references.json");
    let refs = refs.to_str().unwrap();
    env.step("write-vault")
        .args(["--reference-file", refs])
        .run()
        .await
        .assert_code(0);
    env.step("mark-consumed")
        .args(["--reference-file", refs, "--mode", "inert"])
        .run()
        .await
        .assert_code(0);
    for ns in ["one", "batch"] {
        for i in 0..3 {
            assert_eq!(env.vault_versions(&format!("{ns}/s{i}")).await, 1);
        }
    }

    let faulted = env
        .vault
        .proxy
        .records()
        .iter()
        .filter(|r| r.faulted)
        .count();
    assert_eq!(faulted, 2, "two requests answered by the proxy alone");
    let proxy = counts(env.vault.forwarded_calls());
    let audit = counts(env.vault.audited_calls());
    let only_proxy: Vec<_> = proxy
        .iter()
        .filter(|(c, n)| audit.get(*c) != Some(n))
        .collect();
    let only_audit: Vec<_> = audit
        .iter()
        .filter(|(c, n)| proxy.get(*c) != Some(n))
        .collect();
    assert!(
        only_proxy.is_empty() && only_audit.is_empty(),
        "the proxy and OpenBao's audit log disagree:\nproxy: {only_proxy:?}\naudit: {only_audit:?}"
    );
    let total: usize = proxy.values().sum();
    // 4 processes with Vault per namespace pass: logins, revokes, capability checks,
    // writes, provenance PATCHes and read-backs.
    assert!(total >= 3 * 6 + 2 * 4, "{proxy:?}");
    println!("{total} Vault requests agree one-to-one, by operation and path:");
    for ((kind, path), n) in &proxy {
        println!("  {n} x {kind} {path}");
    }
}
