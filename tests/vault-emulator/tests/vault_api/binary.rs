//! The `vault-emulator` binary: flags, the `listening on` line, and the
//! `/v1/sys/emulator` endpoints that stand in for `Handle` methods.

use crate::common::client;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

// Emulator: the binary's CLI; the API calls follow Vault as in the other tests
#[tokio::test]
async fn the_binary_serves_the_api_on_the_printed_address() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vault-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--kv2-mount",
            "kv",
            "--kv2-mount",
            "other",
        ])
        .env("VAULT_EMULATOR_ROOT_TOKEN", "s3cret")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .expect("reads")
        .expect("a line");
    let url = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let http = client();
    let call = |method: &str, path: &str, body: Value| {
        http.request(method.parse().expect("method"), format!("{url}{path}"))
            .header("X-Vault-Token", "s3cret")
            .json(&body)
            .send()
    };
    let res = call("POST", "/v1/kv/data/app", json!({ "data": { "a": "1" } }))
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 200);
    let res = call("POST", "/v1/other/data/app", json!({ "data": {} }))
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 200);
    let res = call("POST", "/v1/secret/data/app", json!({ "data": {} }))
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 404);

    let res = call(
        "POST",
        "/v1/auth/kubernetes/role/app",
        json!({ "bound_service_account_names": "sa", "bound_service_account_namespaces": "ns" }),
    )
    .await
    .expect("sent");
    assert_eq!(res.status().as_u16(), 204);
    let res = call(
        "POST",
        "/v1/sys/emulator/service-account-token",
        json!({ "namespace": "ns", "service_account": "sa" }),
    )
    .await
    .expect("sent");
    let body: Value = res.json().await.expect("json");
    let jwt = body["data"]["token"].as_str().expect("token");
    let res = http
        .post(format!("{url}/v1/auth/kubernetes/login"))
        .json(&json!({ "role": "app", "jwt": jwt }))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 200);
    child.kill().await.expect("stops");
}
