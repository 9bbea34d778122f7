//! Vault over TLS: only the configured CA (VAULT_CACERT) or, without it, the built-in public
//! roots are trusted; a wrong CA or host name fails closed with exit 2 before any request
//! reaches Vault; VAULT_SKIP_VERIFY works only when set, and warns.

use e2e::{role_of, Env, SeedSecret, StepRun};
use fault_injection::TestPki;

/// A bootstrap Secret ready to hand over, and its reference.
async fn env_with_reference() -> (Env, String) {
    let env = Env::start().await;
    env.seed(SeedSecret::bootstrap("apps", "db").kv("password", "tls-canary-pw"))
        .await;
    let r = env.only_reference("apps").await;
    (env, r)
}

/// write-vault configured by hand (no VAULT_CACERT unless given in `envs`).
async fn write_vault(env: &Env, r: &str, addr: &str, envs: &[(&str, String)]) -> StepRun {
    let role = role_of("write-vault");
    let mut step = env
        .step("write-vault")
        .no_vault_defaults()
        .env("VAULT_ADDR", addr)
        .env("SECOPS_VAULT_ROLE", role)
        .args(["--reference", r])
        .arg("--service-account-token-file")
        .arg(
            env.dir
                .path()
                .join(format!("{role}.token"))
                .display()
                .to_string(),
        );
    for (k, v) in envs {
        step = step.env(k, v.clone());
    }
    step.run().await
}

fn other_ca(env: &Env) -> String {
    let pki = TestPki::generate("an unrelated CA", &["vault.test", "127.0.0.1"]).unwrap();
    let path = env.dir.path().join("other-ca.pem");
    std::fs::write(&path, pki.ca_pem).unwrap();
    path.display().to_string()
}

/// Nothing reached Vault's API and nothing was written.
async fn assert_nothing_reached(env: &Env, before: u64) {
    assert_eq!(env.vault.request_count(), before, "no request got through");
    assert_eq!(env.vault_versions("apps/db").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_ca_verifies_vault_and_the_handover_goes_through() {
    let (env, r) = env_with_reference().await;
    assert!(
        env.vault.url().starts_with("https://"),
        "Env's Vault is on TLS"
    );
    let ca = env.dir.path().join("vault-ca.pem").display().to_string();
    let wv = write_vault(&env, &r, &env.vault.url(), &[("VAULT_CACERT", ca)]).await;
    wv.assert_code(0);
    assert!(!wv.stderr.contains("SKIP_VERIFY"), "{}", wv.stderr);
    assert_eq!(env.vault_versions("apps/db").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_fails_closed_with_exit_2() {
    let (env, r) = env_with_reference().await;
    let before = env.vault.request_count();
    let wrong = other_ca(&env);
    let wv = write_vault(
        &env,
        &r,
        &env.vault.url(),
        &[("VAULT_CACERT", wrong.clone())],
    )
    .await;
    wv.assert_code(2);
    for needle in ["TLS to Vault failed", "VAULT_ADDR", "VAULT_CACERT", &wrong] {
        assert!(wv.stderr.contains(needle), "{needle} in: {}", wv.stderr);
    }
    assert_nothing_reached(&env, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_vault_cacert_only_the_built_in_roots_are_trusted() {
    // The test CA is in no public root store, so the default trust must refuse it.
    let (env, r) = env_with_reference().await;
    let before = env.vault.request_count();
    let wv = write_vault(&env, &r, &env.vault.url(), &[]).await;
    wv.assert_code(2);
    assert!(wv.stderr.contains("built-in public roots"), "{}", wv.stderr);
    assert_nothing_reached(&env, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_name_fails_closed_with_exit_2() {
    let (env, r) = env_with_reference().await;
    // A Vault whose certificate, from a CA the step trusts, names another host only.
    let pki = TestPki::generate("secops test CA 2", &["elsewhere.test"]).unwrap();
    let ca = env.dir.path().join("ca-2.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let bao = e2e::openbao::OpenBao::dev().await;
    let other = fault_injection::start(fault_injection::Options {
        tls: Some(pki.server.clone()),
        ..fault_injection::Options::new(bao.url.clone(), fault_injection::Dialect::Vault)
    })
    .await
    .unwrap();
    let wv = write_vault(
        &env,
        &r,
        &other.url(),
        &[("VAULT_CACERT", ca.display().to_string())],
    )
    .await;
    wv.assert_code(2);
    assert!(wv.stderr.contains("not valid for name"), "{}", wv.stderr);
    assert!(wv.stderr.contains("127.0.0.1"), "{}", wv.stderr);
    assert_eq!(other.request_count(), 0, "no request got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_verify_works_only_when_set_and_warns() {
    let (env, r) = env_with_reference().await;
    let wrong = other_ca(&env);
    let before = env.vault.request_count();
    let off = write_vault(
        &env,
        &r,
        &env.vault.url(),
        &[
            ("VAULT_CACERT", wrong.clone()),
            ("VAULT_SKIP_VERIFY", "false".into()),
        ],
    )
    .await;
    off.assert_code(2);
    assert!(!off.stderr.contains("NOT verified"), "{}", off.stderr);
    assert_nothing_reached(&env, before).await;

    let on = write_vault(
        &env,
        &r,
        &env.vault.url(),
        &[
            ("VAULT_CACERT", wrong),
            ("VAULT_SKIP_VERIFY", "true".into()),
        ],
    )
    .await;
    on.assert_code(0);
    assert!(
        on.stderr.contains("VAULT_SKIP_VERIFY is set") && on.stderr.contains("NOT verified"),
        "{}",
        on.stderr
    );
    assert!(on.stderr.contains("WARN"), "{}", on.stderr);
    assert_eq!(env.vault_versions("apps/db").await, 1);
}
