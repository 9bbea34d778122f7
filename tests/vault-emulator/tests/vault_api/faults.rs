//! Test-only fault injection (`Handle::set_fault`). Vault has nothing like it; these
//! tests pin down the emulator's own contract: faults touch requests outside
//! `/v1/sys/` only, and injected failures are `{"errors":["injected"]}`.

use crate::common::{assert_errors, Vault};
use serde_json::json;
use std::time::{Duration, Instant};
use vault_emulator::Fault;

// Emulator: Fault::Status
#[tokio::test]
async fn a_status_fault_fails_every_non_sys_request_until_cleared() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "a": "1" })).await;
    vault.handle.set_fault(Some(Fault::Status(503)));
    assert_eq!(vault.handle.fault(), Some(Fault::Status(503)));
    for (method, path) in [
        ("GET", "/v1/secret/data/k"),
        ("POST", "/v1/secret/data/k"),
        ("GET", "/v1/auth/token/lookup-self"),
        ("GET", "/v1/nomount/x"),
    ] {
        let res = vault
            .root_call(method, path, Some(json!({ "data": { "a": "2" } })))
            .await;
        assert_errors(&res, 503, &["injected"]);
    }
    // sys/ is exempt: health, the new sys endpoints and the emulator's own.
    let health = vault.root_call("GET", "/v1/sys/health", None).await;
    assert_eq!(health.status, 200, "{}", health.text);
    let random = vault
        .root_call("POST", "/v1/sys/tools/random", Some(json!({})))
        .await;
    assert_eq!(random.status, 200, "{}", random.text);
    // Injected failures are logged like any request, and were not served.
    let log = vault.handle.requests();
    assert!(log.contains(&("POST".to_string(), "/v1/secret/data/k".to_string())));
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), Some(1));
    vault.handle.set_fault(None);
    let res = vault.root_call("GET", "/v1/secret/data/k", None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"]["data"], json!({ "a": "1" }));
}

// Emulator: Fault::FailNext
#[tokio::test]
async fn fail_next_fails_a_number_of_requests_then_clears() {
    let vault = Vault::start().await;
    vault.handle.set_fault(Some(Fault::FailNext {
        count: 2,
        status: 500,
    }));
    let write = || {
        let vault = &vault;
        async move {
            vault
                .root_call(
                    "POST",
                    "/v1/secret/data/k",
                    Some(json!({ "data": { "a": "1" } })),
                )
                .await
        }
    };
    assert_errors(&write().await, 500, &["injected"]);
    // sys requests do not use up the count.
    assert_eq!(
        vault
            .root_call("GET", "/v1/sys/seal-status", None)
            .await
            .status,
        200
    );
    assert_eq!(
        vault.handle.fault(),
        Some(Fault::FailNext {
            count: 1,
            status: 500
        })
    );
    assert_errors(&write().await, 500, &["injected"]);
    assert_eq!(vault.handle.fault(), None);
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), None);
    let res = write().await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"]["version"], 1);
}

// Emulator: Fault::Delay
#[tokio::test]
async fn a_delay_slows_non_sys_requests_only() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "a": "1" })).await;
    let delay = Duration::from_millis(400);
    vault.handle.set_fault(Some(Fault::Delay(delay)));
    let started = Instant::now();
    let res = vault.root_call("GET", "/v1/secret/data/k", None).await;
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    // Served normally once the delay is over.
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"]["data"], json!({ "a": "1" }));
    let started = Instant::now();
    let health = vault.root_call("GET", "/v1/sys/health", None).await;
    assert_eq!(health.status, 200);
    assert!(started.elapsed() < delay, "{:?}", started.elapsed());
    // A client with a shorter timeout gives up.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let err = impatient
        .get(format!("{}/v1/secret/data/k", vault.handle.url()))
        .header("X-Vault-Token", vault.root())
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err}");
}
