//! The `Handle`: stopping and restarting the listener, and the request log.

use crate::common::{client, Vault};
use serde_json::json;

// Emulator: Handle::stop_listening simulates Vault going down (connection refused)
#[tokio::test]
async fn stop_listening_refuses_connections_and_start_listening_resumes() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "v": "1" })).await;
    let url = format!("{}/v1/sys/health", vault.handle.url());
    // A pooled keep-alive connection must not survive the stop either.
    let http = client();
    assert!(http.get(&url).send().await.is_ok());
    vault.handle.stop_listening().await;
    let err = http.get(&url).send().await.expect_err("Vault is down");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert!(client()
        .get(&url)
        .send()
        .await
        .expect_err("refused")
        .is_connect());
    // State is kept while down.
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), Some(1));
    vault.handle.start_listening().await.expect("listens again");
    let res = vault.root_call("GET", "/v1/secret/data/k", None).await;
    assert_eq!(res.json["data"]["data"], json!({ "v": "1" }));
}

// Emulator: Handle::shutdown
#[tokio::test]
async fn shutdown_closes_the_port() {
    let vault = Vault::start().await;
    let url = format!("{}/v1/sys/health", vault.handle.url());
    vault.handle.shutdown().await;
    assert!(client()
        .get(&url)
        .send()
        .await
        .expect_err("refused")
        .is_connect());
}

// Emulator: Handle::requests and sys/emulator/requests
#[tokio::test]
async fn requests_are_logged_without_bodies() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "secret": "do-not-log" })).await;
    vault
        .root_call("GET", "/v1/secret/data/k?version=1", None)
        .await;
    vault.root_call("LIST", "/v1/secret/metadata/", None).await;
    assert_eq!(vault.handle.request_count(), 3);
    assert_eq!(
        vault.handle.requests(),
        [
            ("POST".to_string(), "/v1/secret/data/k".to_string()),
            ("GET".to_string(), "/v1/secret/data/k?version=1".to_string()),
            ("LIST".to_string(), "/v1/secret/metadata/".to_string()),
        ]
    );
    let res = vault
        .root_call("GET", "/v1/sys/emulator/requests", None)
        .await;
    assert_eq!(res.json["data"]["count"], 4);
    assert_eq!(
        res.json["data"]["requests"][0],
        json!({ "method": "POST", "path": "/v1/secret/data/k" })
    );
    assert!(!res.text.contains("do-not-log"));
}
