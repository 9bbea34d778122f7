//! Random bytes: `POST /v1/sys/tools/random(/:source)(/:bytes)` (Vault 1.17
//! helper/random/random_api.go HandleRandomAPI, vault/logical_system_paths.go;
//! developer.hashicorp.com/vault/api-docs/system/tools).

use crate::common::{assert_errors, multi, Res, Vault};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

async fn random(vault: &Vault, path: &str, body: Value) -> Res {
    vault
        .root_call("POST", &format!("/v1/sys/tools/random{path}"), Some(body))
        .await
}

fn random_bytes(res: &Res) -> String {
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["data"]["random_bytes"]
        .as_str()
        .expect("random_bytes")
        .to_string()
}

fn base64_len(res: &Res) -> usize {
    STANDARD
        .decode(random_bytes(res))
        .expect("standard base64")
        .len()
}

fn hex_len(res: &Res) -> usize {
    let text = random_bytes(res);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "lowercase hex: {text}"
    );
    text.len() / 2
}

// Vault: HandleRandomAPI (bytes default 32, format default base64)
#[tokio::test]
async fn defaults_are_32_bytes_of_base64() {
    let vault = Vault::start().await;
    let res = random(&vault, "", json!({})).await;
    assert_eq!(base64_len(&res), 32);
    assert_eq!(res.json["mount_type"], "system");
    assert_eq!(res.json["warnings"], Value::Null);
    assert_eq!(
        res.json["data"].as_object().expect("data").len(),
        1,
        "only random_bytes: {}",
        res.text
    );
    // An empty body is the same as `{}`; PUT is the same update operation.
    let res = vault.root_call("PUT", "/v1/sys/tools/random", None).await;
    assert_eq!(base64_len(&res), 32);
    // Two calls differ.
    let a = random_bytes(&random(&vault, "", json!({})).await);
    let b = random_bytes(&random(&vault, "", json!({})).await);
    assert_ne!(a, b);
}

// Vault: HandleRandomAPI; api-docs/system/tools "Generate random bytes"
#[tokio::test]
async fn bytes_and_format_come_from_the_body_or_the_url() {
    let vault = Vault::start().await;
    assert_eq!(
        hex_len(&random(&vault, "", json!({ "bytes": 16, "format": "hex" })).await),
        16
    );
    // Weakly typed, as framework.TypeInt decodes.
    assert_eq!(
        base64_len(&random(&vault, "", json!({ "bytes": "7" })).await),
        7
    );
    // The URL count wins over the body's.
    assert_eq!(
        hex_len(&random(&vault, "/164", json!({ "bytes": 8, "format": "hex" })).await),
        164
    );
    // A valid source alone takes the count from the body.
    assert_eq!(
        base64_len(&random(&vault, "/platform", json!({ "bytes": 5 })).await),
        5
    );
    assert_eq!(base64_len(&random(&vault, "/all/9", json!({})).await), 9);
    assert_eq!(
        hex_len(&random(&vault, "/platform/3", json!({ "format": "hex" })).await),
        3
    );
    // Open source Vault has no entropy augmentation: `seal` warns and still answers.
    let res = random(&vault, "/seal/4", json!({})).await;
    assert_eq!(base64_len(&res), 4);
    assert_eq!(
        res.json["warnings"],
        json!(["no seal/entropy augmentation available, using platform entropy source"])
    );
    // The limit is inclusive: `bytes > APIMaxBytes` is refused.
    assert_eq!(
        base64_len(&random(&vault, "", json!({ "bytes": 131_072 })).await),
        131_072
    );
}

// Vault: HandleRandomAPI's logical.ErrorResponse texts (400, not wrapped)
#[tokio::test]
async fn invalid_requests_are_400_with_vaults_messages() {
    let vault = Vault::start().await;
    for (path, body, message) in [
        (
            "",
            json!({ "bytes": 0 }),
            r#""bytes" cannot be less than 1"#.to_string(),
        ),
        (
            "",
            json!({ "bytes": -4 }),
            r#""bytes" cannot be less than 1"#.to_string(),
        ),
        (
            "/0",
            json!({}),
            r#""bytes" cannot be less than 1"#.to_string(),
        ),
        (
            "",
            json!({ "bytes": 131_073 }),
            r#""bytes" should be less than 131072"#.to_string(),
        ),
        (
            "",
            json!({ "format": "raw" }),
            r#"unsupported encoding format "raw"; must be "hex" or "base64""#.to_string(),
        ),
        (
            "",
            json!({ "format": "" }),
            r#"unsupported encoding format ""; must be "hex" or "base64""#.to_string(),
        ),
        // A segment that is no source is read as the count.
        (
            "/hex",
            json!({}),
            r#"error parsing url-set byte count: strconv.Atoi: parsing "hex": invalid syntax"#
                .to_string(),
        ),
        (
            "/platform/many",
            json!({}),
            r#"error parsing url-set byte count: strconv.Atoi: parsing "many": invalid syntax"#
                .to_string(),
        ),
        (
            "/lava/16",
            json!({}),
            r#"unsupported entropy source "lava"; must be "platform" or "seal", or "all""#
                .to_string(),
        ),
        (
            "",
            json!({ "bytes": "lots" }),
            r#"error converting input lots for field "bytes": cannot parse 'lots' as int"#
                .to_string(),
        ),
    ] {
        let res = random(&vault, path, body.clone()).await;
        assert_errors(&res, 400, &[message.as_str()]);
    }
}

// Vault: vault/logical_system_paths.go (tools/random has only UpdateOperation)
#[tokio::test]
async fn only_writes_are_supported() {
    let vault = Vault::start().await;
    for method in ["GET", "DELETE"] {
        let res = vault.root_call(method, "/v1/sys/tools/random", None).await;
        assert_errors(&res, 405, &[&multi("unsupported operation")]);
    }
    // Other names under tools/ match no route.
    let res = vault
        .root_call("POST", "/v1/sys/tools/randomness", Some(json!({})))
        .await;
    assert_errors(&res, 404, &[&multi("unsupported path")]);
}

// Vault: vault/acl.go (the full path, source and count included, is checked); vault/policy_store.go defaultPolicy
#[tokio::test]
async fn acl_rules_cover_the_full_path_and_sealed_is_503() {
    let vault = Vault::start().await;
    let denied = multi("permission denied");
    // The default policy grants sys/tools/hash but not sys/tools/random.
    let plain = vault.token(&["default"]).await;
    let res = vault
        .call("POST", "/v1/sys/tools/random", &plain, Some(json!({})))
        .await;
    assert_errors(&res, 403, &[&denied]);
    vault
        .policy(
            "random",
            json!({ "path": { "sys/tools/random": { "capabilities": ["update"] } } }),
        )
        .await;
    let token = vault.token(&["random"]).await;
    let res = vault
        .call("POST", "/v1/sys/tools/random", &token, Some(json!({})))
        .await;
    assert_eq!(base64_len(&res), 32);
    // An exact rule does not reach the URL forms.
    let res = vault
        .call("POST", "/v1/sys/tools/random/16", &token, Some(json!({})))
        .await;
    assert_errors(&res, 403, &[&denied]);
    vault.handle.seal();
    assert_errors(
        &random(&vault, "", json!({})).await,
        503,
        &["Vault is sealed"],
    );
}
