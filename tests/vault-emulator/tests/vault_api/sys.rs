//! Seal, unseal, init and health (http/sys_seal.go, sys_health.go, sys_init.go).

use crate::common::{assert_errors, client, multi, Vault};
use serde_json::{json, Value};
use vault_emulator::Options;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn vault() -> Vault {
    Vault::with(Options {
        unseal_key: KEY.to_string(),
        ..Options::default()
    })
    .await
}

// Vault: vault/request_handling.go switchedLockHandleRequest (consts.ErrSealed); http/handler.go
#[tokio::test]
async fn sealed_vault_answers_503_everywhere_but_the_status_endpoints() {
    let vault = vault().await;
    vault.put("k", json!({ "a": "1" })).await;
    vault.handle.seal();
    assert!(vault.handle.is_sealed());
    // vault/request_handling.go switchedLockHandleRequest: consts.ErrSealed, before the token.
    for (method, path, token) in [
        ("GET", "/v1/secret/data/k", Some("root")),
        ("POST", "/v1/secret/data/k", Some("root")),
        ("GET", "/v1/secret/data/k", Some("bogus")),
        ("GET", "/v1/secret/data/k", None),
        ("GET", "/v1/auth/token/lookup-self", Some("root")),
        ("POST", "/v1/auth/kubernetes/login", None),
        ("GET", "/v1/sys/policies/acl/default", Some("root")),
        ("GET", "/v1/nomount/x", Some("root")),
    ] {
        let res = vault
            .send(method, path, token, None, Some(&json!({})))
            .await;
        assert_errors(&res, 503, &["Vault is sealed"]);
    }
    let health = vault.root_call("GET", "/v1/sys/health", None).await;
    assert_eq!(health.status, 503);
    assert_eq!(health.json["sealed"], true);
    let status = vault.root_call("GET", "/v1/sys/seal-status", None).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.json["sealed"], true);
    assert_eq!(
        vault.root_call("GET", "/v1/sys/init", None).await.json,
        json!({ "initialized": true })
    );
    // Data survives a seal.
    vault.handle.unseal();
    assert_eq!(
        vault
            .root_call("GET", "/v1/secret/data/k", None)
            .await
            .status,
        200
    );
}

// Vault: http/sys_seal.go handleSysUnseal, handleSysSealStatusRaw
#[tokio::test]
async fn seal_status_and_unseal_return_the_raw_status_object() {
    let vault = vault().await;
    let res = vault
        .send("GET", "/v1/sys/seal-status", None, None, None)
        .await;
    assert_eq!(res.status, 200);
    let body = &res.json;
    // SealStatusResponse: no envelope.
    assert!(body.get("request_id").is_none());
    for (field, value) in [
        ("type", json!("shamir")),
        ("initialized", json!(true)),
        ("sealed", json!(false)),
        ("t", json!(1)),
        ("n", json!(1)),
        ("progress", json!(0)),
        ("nonce", json!("")),
        ("version", json!("1.17.0-emulator")),
    ] {
        assert_eq!(body[field], value, "{field}");
    }
    assert!(body["cluster_name"].is_string());

    let seal = vault.root_call("PUT", "/v1/sys/seal", None).await;
    assert_eq!((seal.status, seal.text.as_str()), (204, ""));
    let sealed = vault
        .send("GET", "/v1/sys/seal-status", None, None, None)
        .await;
    assert_eq!(sealed.json["sealed"], true);
    assert!(sealed.json.get("cluster_name").is_none());

    let put = |body: Value| {
        let vault = &vault;
        async move {
            vault
                .send("PUT", "/v1/sys/unseal", None, None, Some(&body))
                .await
        }
    };
    // handleSysUnseal's errors, all 400.
    assert_errors(
        &put(json!({})).await,
        400,
        &["'key' must be specified in request body as JSON, or 'reset' set to true"],
    );
    assert_errors(
        &put(json!({ "key": "not hex!" })).await,
        400,
        &["'key' must be a valid hex or base64 string"],
    );
    let wrong = "ff".repeat(32);
    assert_errors(
        &put(json!({ "key": wrong })).await,
        400,
        &["Unseal failed, invalid key"],
    );
    assert!(vault.handle.is_sealed());
    let ok = put(json!({ "key": KEY })).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json["sealed"], false);
    assert!(!vault.handle.is_sealed());
    assert_errors(
        &put(json!({ "reset": true })).await,
        400,
        &["vault is unsealed"],
    );
}

// Vault: http/sys_seal.go handleSysSeal; vault/core.go SealWithRequest
#[tokio::test]
async fn sys_seal_needs_root_or_sudo_and_is_a_no_op_when_sealed() {
    let vault = vault().await;
    let token = vault.token(&["nothing"]).await;
    // SealWithRequest: the ACL failure comes back wrapped in a multierror.
    let res = vault.call("PUT", "/v1/sys/seal", &token, None).await;
    assert_errors(&res, 403, &[&multi("permission denied")]);
    let res = vault.send("PUT", "/v1/sys/seal", None, None, None).await;
    assert_errors(&res, 403, &[&multi("permission denied")]);
    vault
        .policy(
            "sealer",
            json!({ "path": { "sys/seal": { "capabilities": ["update", "sudo"] } } }),
        )
        .await;
    let sealer = vault.token(&["sealer"]).await;
    assert_eq!(
        vault
            .call("PUT", "/v1/sys/seal", &sealer, None)
            .await
            .status,
        204
    );
    assert!(vault.handle.is_sealed());
    // Already sealed: SealWithRequest returns nil before looking at the token.
    assert_eq!(
        vault
            .send("PUT", "/v1/sys/seal", None, None, None)
            .await
            .status,
        204
    );
    assert_errors(
        &vault.root_call("GET", "/v1/sys/seal", None).await,
        405,
        &[],
    );
}

// Vault: http/sys_health.go getSysHealth
#[tokio::test]
async fn health_codes_follow_state_and_query_overrides() {
    let vault = vault().await;
    let res = vault.send("GET", "/v1/sys/health", None, None, None).await;
    assert_eq!(res.status, 200);
    for (field, value) in [
        ("initialized", json!(true)),
        ("sealed", json!(false)),
        ("standby", json!(false)),
        ("performance_standby", json!(false)),
        ("version", json!("1.17.0-emulator")),
    ] {
        assert_eq!(res.json[field], value, "{field}");
    }
    assert!(res.json["server_time_utc"].is_i64());
    assert!(res.json.get("request_id").is_none());
    let status = |query: &'static str| {
        let vault = &vault;
        async move {
            vault
                .send("GET", &format!("/v1/sys/health{query}"), None, None, None)
                .await
                .status
        }
    };
    assert_eq!(status("?activecode=299").await, 299);
    assert_eq!(status("?standbyok=true").await, 200);
    // fetchStatusCode: an unparsable code is 400 with no message.
    let bad = vault
        .send("GET", "/v1/sys/health?uninitcode=abc", None, None, None)
        .await;
    assert_errors(&bad, 400, &[]);
    vault.handle.seal();
    assert_eq!(status("").await, 503);
    assert_eq!(status("?sealedcode=200").await, 200);
    let sealed = vault.send("GET", "/v1/sys/health", None, None, None).await;
    assert_eq!(sealed.json["sealed"], true);
    assert!(sealed.json.get("cluster_id").is_none());
    // HEAD: the code, no body.
    let head = client()
        .head(format!("{}/v1/sys/health", vault.handle.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(head.status().as_u16(), 503);
    assert_eq!(head.text().await.expect("body"), "");
    assert_errors(
        &vault.send("POST", "/v1/sys/health", None, None, None).await,
        405,
        &[],
    );
}

// Vault: http/sys_init.go handleSysInitGet/Put
#[tokio::test]
async fn init_reports_initialized() {
    let vault = vault().await;
    let res = vault.send("GET", "/v1/sys/init", None, None, None).await;
    assert_eq!(
        (res.status, res.json.clone()),
        (200, json!({ "initialized": true }))
    );
    let res = vault
        .send(
            "PUT",
            "/v1/sys/init",
            None,
            None,
            Some(&json!({ "secret_shares": 1 })),
        )
        .await;
    assert_errors(&res, 400, &["Vault is already initialized"]);
}

// Vault: http/sys_init.go handleSysInitPut, vault/seal_config.go Validate, vault/core.go
// unsealFragment (repeated share ignored; a bad combination fails with
// ErrBarrierInvalidKey and resets progress), http/sys_health.go (501 while uninitialised).
#[tokio::test]
async fn an_uninitialised_server_initialises_once_and_unseals_with_threshold_shares() {
    let vault = Vault::with(Options {
        initialized: false,
        ..Options::default()
    })
    .await;
    let init = |b: Value| {
        let vault = &vault;
        async move {
            vault
                .send("PUT", "/v1/sys/init", None, None, Some(&b))
                .await
        }
    };
    assert_eq!(
        vault.root_call("GET", "/v1/sys/init", None).await.json,
        json!({ "initialized": false })
    );
    assert_eq!(
        vault.root_call("GET", "/v1/sys/health", None).await.status,
        501
    );
    for (body, msg) in [
        (
            json!({"secret_shares": 3, "secret_threshold": 4}),
            "threshold cannot be larger than shares",
        ),
        (
            json!({"secret_shares": 3, "secret_threshold": 1}),
            "threshold must be greater than one for multiple shares",
        ),
        (
            json!({"secret_shares": 0, "secret_threshold": 0}),
            "shares must be at least one",
        ),
    ] {
        let res = init(body).await;
        assert_eq!(res.status, 400);
        assert!(
            res.json["errors"][0].as_str().unwrap().contains(msg),
            "{}",
            res.json
        );
    }
    let res = init(json!({"secret_shares": 3, "secret_threshold": 2})).await;
    assert_eq!(res.status, 200);
    let keys: Vec<String> = serde_json::from_value(res.json["keys"].clone()).unwrap();
    let b64: Vec<String> = serde_json::from_value(res.json["keys_base64"].clone()).unwrap();
    assert_eq!((keys.len(), b64.len()), (3, 3));
    let root = res.json["root_token"].as_str().unwrap().to_owned();
    // Exactly once.
    assert_errors(
        &init(json!({"secret_shares": 1, "secret_threshold": 1})).await,
        400,
        &["Vault is already initialized"],
    );
    assert!(vault.handle.is_sealed());
    let unseal = |k: &str| {
        let vault = &vault;
        let b = json!({ "key": k });
        async move {
            vault
                .send("PUT", "/v1/sys/unseal", None, None, Some(&b))
                .await
        }
    };
    // A foreign share is only found out at the threshold, and resets the progress.
    let other = "ab".repeat(33);
    assert_eq!(unseal(&keys[0]).await.json["progress"], 1);
    assert_errors(&unseal(&other).await, 400, &["Unseal failed, invalid key"]);
    let st = vault
        .root_call("GET", "/v1/sys/seal-status", None)
        .await
        .json;
    assert_eq!(
        (
            st["sealed"].clone(),
            st["progress"].clone(),
            st["t"].clone(),
            st["n"].clone()
        ),
        (json!(true), json!(0), json!(2), json!(3))
    );
    // A repeated share does not count; hex and base64 forms of two shares unseal.
    assert_eq!(unseal(&keys[1]).await.json["progress"], 1);
    assert_eq!(unseal(&keys[1]).await.json["progress"], 1);
    let done = unseal(&b64[2]).await;
    assert_eq!(done.json["sealed"], false, "{}", done.json);
    let me = vault
        .send("GET", "/v1/auth/token/lookup-self", Some(&root), None, None)
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json["data"]["policies"], json!(["root"]));
}
