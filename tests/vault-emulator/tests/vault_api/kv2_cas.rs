//! Check-and-set (vault-plugin-secrets-kv path_data.go `validateCheckAndSetOption`).

use crate::common::{assert_errors, Vault};
use serde_json::{json, Value};

const MISMATCH: &str = "check-and-set parameter did not match the current version";
const REQUIRED: &str = "check-and-set parameter required for this call";

async fn write(vault: &Vault, key: &str, body: Value) -> crate::common::Res {
    vault
        .root_call("POST", &format!("/v1/secret/data/{key}"), Some(body))
        .await
}

// Vault: kv path_data.go validateCheckAndSetOption
#[tokio::test]
async fn cas_zero_means_create_only_and_mismatch_is_400() {
    let vault = Vault::start().await;
    let first = write(
        &vault,
        "k",
        json!({ "data": { "v": "1" }, "options": { "cas": 0 } }),
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json["data"]["version"], 1);
    // ErrInvalidRequest maps to 400, with the response's message.
    let again = write(
        &vault,
        "k",
        json!({ "data": { "v": "2" }, "options": { "cas": 0 } }),
    )
    .await;
    assert_errors(&again, 400, &[MISMATCH]);
    let stale = write(
        &vault,
        "k",
        json!({ "data": { "v": "2" }, "options": { "cas": 5 } }),
    )
    .await;
    assert_errors(&stale, 400, &[MISMATCH]);
    let negative = write(
        &vault,
        "k",
        json!({ "data": { "v": "2" }, "options": { "cas": -1 } }),
    )
    .await;
    assert_errors(&negative, 400, &[MISMATCH]);
    // Weakly decoded: a numeric string matches.
    let ok = write(
        &vault,
        "k",
        json!({ "data": { "v": "2" }, "options": { "cas": "1" } }),
    )
    .await;
    assert_eq!(ok.json["data"]["version"], 2);
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), Some(2));
}

// Vault: kv path_data.go validateCheckAndSetOption (mapstructure.WeakDecode)
#[tokio::test]
async fn an_unparsable_cas_is_400() {
    let vault = Vault::start().await;
    for cas in [json!("abc"), json!(1.5), json!([1]), json!({})] {
        let res = write(
            &vault,
            "k",
            json!({ "data": {}, "options": { "cas": cas } }),
        )
        .await;
        assert_errors(&res, 400, &["error parsing check-and-set parameter"]);
    }
    // Without `cas`, or with `options: null`, there is no check at all.
    assert_eq!(
        write(&vault, "k", json!({ "data": {}, "options": {} }))
            .await
            .status,
        200
    );
    assert_eq!(
        write(&vault, "k", json!({ "data": {}, "options": null }))
            .await
            .status,
        200
    );
}

// Vault: kv path_config.go; path_metadata.go pathMetadataWrite (cas_required warning)
#[tokio::test]
async fn cas_required_on_the_mount() {
    let vault = Vault::start().await;
    let res = vault
        .root_call(
            "POST",
            "/v1/secret/config",
            Some(json!({ "cas_required": true })),
        )
        .await;
    assert_eq!(res.status, 204);
    let config = vault.root_call("GET", "/v1/secret/config", None).await;
    assert_eq!(
        config.json["data"],
        json!({ "cas_required": true, "delete_version_after": "0s", "max_versions": 0 })
    );
    assert_errors(
        &write(&vault, "k", json!({ "data": {} })).await,
        400,
        &[REQUIRED],
    );
    assert_eq!(
        write(&vault, "k", json!({ "data": {}, "options": { "cas": 0 } }))
            .await
            .status,
        200
    );
    // path_metadata.go: a key cannot opt out; the write succeeds with a warning.
    let res = vault
        .root_call(
            "POST",
            "/v1/secret/metadata/k",
            Some(json!({ "cas_required": false })),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"], Value::Null);
    assert_eq!(
        res.json["warnings"],
        json!(["\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."])
    );
    assert_errors(
        &write(&vault, "k", json!({ "data": {} })).await,
        400,
        &[REQUIRED],
    );
}

// Vault: kv path_metadata.go pathMetadataWrite; path_data.go validateCheckAndSetOption
#[tokio::test]
async fn cas_required_on_a_key() {
    let vault = Vault::start().await;
    vault.put("k", json!({})).await;
    let res = vault
        .root_call(
            "POST",
            "/v1/secret/metadata/k",
            Some(json!({ "cas_required": true })),
        )
        .await;
    assert_eq!(res.status, 204);
    assert_errors(
        &write(&vault, "k", json!({ "data": {} })).await,
        400,
        &[REQUIRED],
    );
    assert_eq!(
        write(&vault, "k", json!({ "data": {}, "options": { "cas": 1 } }))
            .await
            .status,
        200
    );
    // Other keys are unaffected.
    assert_eq!(
        write(&vault, "other", json!({ "data": {} })).await.status,
        200
    );
}

// Vault: kv path_metadata.go pathMetadataWrite (creates KeyMetadata, CurrentVersion 0)
#[tokio::test]
async fn a_metadata_only_key_accepts_cas_zero() {
    let vault = Vault::start().await;
    let res = vault
        .root_call(
            "POST",
            "/v1/secret/metadata/k",
            Some(json!({ "custom_metadata": { "owner": "team" } })),
        )
        .await;
    assert_eq!(res.status, 204);
    // The key exists with current_version 0, so cas 0 is still right.
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), Some(0));
    assert_errors(
        &vault.root_call("GET", "/v1/secret/data/k", None).await,
        404,
        &[],
    );
    let res = write(
        &vault,
        "k",
        json!({ "data": { "v": "1" }, "options": { "cas": 0 } }),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json["data"]["version"], 1);
    assert_eq!(
        res.json["data"]["custom_metadata"],
        json!({ "owner": "team" })
    );
}

// Vault: kv path_data.go pathDataDelete; path_metadata.go pathMetadataDelete
#[tokio::test]
async fn a_soft_deleted_latest_version_still_blocks_cas_zero_until_metadata_delete() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "v": "1" })).await;
    assert_eq!(
        vault
            .root_call("DELETE", "/v1/secret/data/k", None)
            .await
            .status,
        204
    );
    assert_eq!(
        vault
            .root_call("GET", "/v1/secret/data/k", None)
            .await
            .status,
        404
    );
    // current_version is still 1.
    let res = write(
        &vault,
        "k",
        json!({ "data": { "v": "2" }, "options": { "cas": 0 } }),
    )
    .await;
    assert_errors(&res, 400, &[MISMATCH]);
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), Some(1));
    // pathMetadataDelete removes the key; CAS starts over.
    assert_eq!(
        vault
            .root_call("DELETE", "/v1/secret/metadata/k", None)
            .await
            .status,
        204
    );
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), None);
    let res = write(
        &vault,
        "k",
        json!({ "data": { "v": "3" }, "options": { "cas": 0 } }),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json["data"]["version"], 1);
}

// Vault: kv path_data.go pathDataPatch
#[tokio::test]
async fn patch_honours_cas() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "a": "1" })).await;
    let res = vault
        .root_call(
            "PATCH",
            "/v1/secret/data/k",
            Some(json!({ "data": { "b": "2" }, "options": { "cas": 0 } })),
        )
        .await;
    assert_errors(&res, 400, &[MISMATCH]);
    let res = vault
        .root_call(
            "PATCH",
            "/v1/secret/data/k",
            Some(json!({ "data": { "b": "2" }, "options": { "cas": 1 } })),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"]["version"], 2);
}

// Vault: kv path_data.go pathDataWrite (`no data provided`)
#[tokio::test]
async fn missing_or_null_data_is_refused() {
    let vault = Vault::start().await;
    // pathDataWrite: `no data provided` before any CAS check.
    assert_errors(
        &write(&vault, "k", json!({ "options": { "cas": 9 } })).await,
        400,
        &["no data provided"],
    );
    assert_errors(
        &write(&vault, "k", json!({ "data": null })).await,
        400,
        &["no data provided"],
    );
    let empty = vault
        .send("POST", "/v1/secret/data/k", Some("root"), None, None)
        .await;
    assert_errors(&empty, 400, &["no data provided"]);
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), None);
}
