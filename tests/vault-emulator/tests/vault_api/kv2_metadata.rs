//! Key metadata, custom_metadata, PATCH and LIST (vault-plugin-secrets-kv
//! path_metadata.go, path_data.go `pathDataPatch`; http/logical.go for PATCH).

use crate::common::{assert_errors, multi, Vault};
use serde_json::{json, Map, Value};

const PREFIX: &str = "custom_metadata validation failed";

async fn post_meta(vault: &Vault, key: &str, body: Value) -> crate::common::Res {
    vault
        .root_call("POST", &format!("/v1/secret/metadata/{key}"), Some(body))
        .await
}

async fn patch_meta(vault: &Vault, key: &str, body: Value) -> crate::common::Res {
    vault
        .root_call("PATCH", &format!("/v1/secret/metadata/{key}"), Some(body))
        .await
}

async fn custom(vault: &Vault, key: &str) -> Value {
    vault
        .root_call("GET", &format!("/v1/secret/metadata/{key}"), None)
        .await
        .json["data"]["custom_metadata"]
        .clone()
}

// Vault: kv path_metadata.go pathMetadataRead
#[tokio::test]
async fn metadata_read_returns_the_whole_object() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "a": "1" })).await;
    vault.put("k", json!({ "a": "2" })).await;
    let res = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(res.status, 200);
    let data = &res.json["data"];
    let mut fields: Vec<&String> = data.as_object().expect("object").keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "cas_required",
            "created_time",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    assert_eq!(data["current_version"], 2);
    assert_eq!(data["oldest_version"], 0);
    assert_eq!(data["max_versions"], 0);
    assert_eq!(data["cas_required"], false);
    assert_eq!(data["delete_version_after"], "0s");
    assert_eq!(data["custom_metadata"], Value::Null);
    assert_eq!(data["versions"]["1"]["deletion_time"], "");
    assert_eq!(data["versions"]["2"]["destroyed"], false);
    assert_eq!(data["created_time"], data["versions"]["1"]["created_time"]);
    assert_eq!(data["updated_time"], data["versions"]["2"]["created_time"]);
    assert_errors(
        &vault
            .root_call("GET", "/v1/secret/metadata/nope", None)
            .await,
        404,
        &[],
    );
}

// Vault: kv path_metadata.go pathMetadataWrite, pathMetadataPatch
#[tokio::test]
async fn post_replaces_custom_metadata_and_patch_merges_it() {
    let vault = Vault::start().await;
    assert_eq!(
        post_meta(
            &vault,
            "k",
            json!({ "custom_metadata": { "a": "1", "b": "2" } })
        )
        .await
        .status,
        204
    );
    // POST replaces the whole map (ESO's managed-by write clobbers other tags).
    assert_eq!(
        post_meta(&vault, "k", json!({ "custom_metadata": { "c": "3" } }))
            .await
            .status,
        204
    );
    assert_eq!(custom(&vault, "k").await, json!({ "c": "3" }));
    // PATCH merges; null removes a key.
    let res = patch_meta(
        &vault,
        "k",
        json!({ "custom_metadata": { "d": "4", "c": null } }),
    )
    .await;
    assert_eq!((res.status, res.text.as_str()), (204, ""));
    assert_eq!(custom(&vault, "k").await, json!({ "d": "4" }));
    // Other settings are untouched by a custom_metadata patch, and vice versa.
    assert_eq!(
        patch_meta(&vault, "k", json!({ "max_versions": 4 }))
            .await
            .status,
        204
    );
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(meta.json["data"]["max_versions"], 4);
    assert_eq!(meta.json["data"]["custom_metadata"], json!({ "d": "4" }));
    // `custom_metadata: null` clears the map.
    assert_eq!(
        patch_meta(&vault, "k", json!({ "custom_metadata": null }))
            .await
            .status,
        204
    );
    assert_eq!(custom(&vault, "k").await, Value::Null);
    // A POST with no settings at all does nothing, not even create the key.
    assert_eq!(post_meta(&vault, "new", json!({})).await.status, 204);
    assert_eq!(vault.handle.kv2_current_version("secret", "new"), None);
}

// Vault: kv path_metadata.go pathMetadataPatch
#[tokio::test]
async fn patching_missing_metadata_is_an_empty_404() {
    let vault = Vault::start().await;
    // logical.RespondWithStatusCode(nil, req, 404): no body at all.
    let res = patch_meta(&vault, "nope", json!({ "custom_metadata": { "a": "1" } })).await;
    assert_eq!((res.status, res.text.as_str()), (404, ""));
}

// Vault: http/logical.go buildLogicalRequestNoAuth (PATCH)
#[tokio::test]
async fn patch_needs_the_merge_patch_content_type() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "a": "1" })).await;
    let body = json!({ "data": { "b": "2" } });
    // http/logical.go buildLogicalRequestNoAuth.
    let res = vault
        .send(
            "PATCH",
            "/v1/secret/data/k",
            Some("root"),
            Some("application/json"),
            Some(&body),
        )
        .await;
    assert_errors(&res, 415, &["PATCH requires Content-Type of application/merge-patch+json, provided application/json"]);
    let res = vault
        .send("PATCH", "/v1/secret/data/k", Some("root"), None, None)
        .await;
    assert_errors(&res, 400, &["mime: no media type"]);
    let ok = "application/merge-patch+json; charset=utf-8";
    let res = vault
        .send(
            "PATCH",
            "/v1/secret/data/k",
            Some("root"),
            Some(ok),
            Some(&body),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
}

// Vault: kv path_data.go pathDataPatch; sdk/framework HandlePatchOperation
#[tokio::test]
async fn data_patch_is_a_json_merge_patch_of_the_current_version() {
    let vault = Vault::start().await;
    vault
        .put(
            "k",
            json!({ "keep": "1", "drop": "2", "nested": { "x": 1, "y": 2 }, "list": [1, 2] }),
        )
        .await;
    let res = vault
        .root_call(
            "PATCH",
            "/v1/secret/data/k",
            Some(json!({ "data": { "drop": null, "nested": { "y": null, "z": 3 }, "list": [3], "new": "n" } })),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["mount_type"], "kv");
    assert_eq!(res.json["data"]["version"], 2);
    let read = vault.root_call("GET", "/v1/secret/data/k", None).await;
    assert_eq!(
        read.json["data"]["data"],
        json!({ "keep": "1", "nested": { "x": 1, "z": 3 }, "list": [3], "new": "n" })
    );
}

// Vault: kv path_data.go pathDataPatch
#[tokio::test]
async fn data_patch_needs_a_live_current_version() {
    let vault = Vault::start().await;
    let body = || Some(json!({ "data": { "a": "1" } }));
    // Missing key, and metadata without versions: 404 with an empty body.
    let res = vault
        .root_call("PATCH", "/v1/secret/data/nope", body())
        .await;
    assert_eq!((res.status, res.text.as_str()), (404, ""));
    post_meta(&vault, "meta-only", json!({ "max_versions": 2 })).await;
    let res = vault
        .root_call("PATCH", "/v1/secret/data/meta-only", body())
        .await;
    assert_eq!((res.status, res.text.as_str()), (404, ""));
    // Deleted current version: 404 with the version metadata, flat, in the envelope.
    vault.put("k", json!({ "a": "0" })).await;
    vault.root_call("DELETE", "/v1/secret/data/k", None).await;
    let res = vault.root_call("PATCH", "/v1/secret/data/k", body()).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json["data"]["version"], 1);
    assert!(res.json["data"]["deletion_time"]
        .as_str()
        .expect("time")
        .ends_with('Z'));
    assert_eq!(res.json["mount_type"], "");
    // `data` is required before anything else.
    let res = vault
        .root_call("PATCH", "/v1/secret/data/k", Some(json!({})))
        .await;
    assert_errors(&res, 400, &["no data provided"]);
}

// Vault: kv path_metadata.go validateCustomMetadata
#[tokio::test]
async fn custom_metadata_limits() {
    let vault = Vault::start().await;
    let map = |n: usize| -> Value {
        Value::Object(
            (0..n)
                .map(|i| (format!("k{i}"), json!("v")))
                .collect::<Map<_, _>>(),
        )
    };
    assert_eq!(
        post_meta(&vault, "k", json!({ "custom_metadata": map(64) }))
            .await
            .status,
        204
    );
    let res = post_meta(&vault, "k", json!({ "custom_metadata": map(65) })).await;
    assert_errors(
        &res,
        400,
        &[&multi(&format!(
            "{PREFIX}: payload must contain at most 64 keys, provided 65"
        ))],
    );

    let key128 = "k".repeat(128);
    let key129 = "k".repeat(129);
    assert_eq!(
        post_meta(&vault, "k", json!({ "custom_metadata": { key128: "v" } }))
            .await
            .status,
        204
    );
    let res = post_meta(
        &vault,
        "k",
        json!({ "custom_metadata": { key129.clone(): "v" } }),
    )
    .await;
    assert_errors(
        &res,
        400,
        &[&multi(&format!(
            "{PREFIX}: length of key \"{key129}\" is 129 but must be 0 < len(key) <= 128"
        ))],
    );
    // Lengths are bytes: 256 two-byte characters are 512 bytes.
    assert_eq!(
        post_meta(
            &vault,
            "k",
            json!({ "custom_metadata": { "a": "é".repeat(256) } })
        )
        .await
        .status,
        204
    );
    let res = post_meta(
        &vault,
        "k",
        json!({ "custom_metadata": { "a": "v".repeat(513) } }),
    )
    .await;
    assert_errors(
        &res,
        400,
        &[&multi(&format!(
            "{PREFIX}: length of value for key \"a\" is 513 but must be 0 < len(value) <= 512"
        ))],
    );
    let res = post_meta(&vault, "k", json!({ "custom_metadata": { "a": "" } })).await;
    assert_errors(
        &res,
        400,
        &[&multi(&format!(
            "{PREFIX}: length of value for key \"a\" is 0 but must be 0 < len(value) <= 512"
        ))],
    );
    let res = post_meta(
        &vault,
        "k",
        json!({ "custom_metadata": { "a": "bell\u{7}" } }),
    )
    .await;
    assert_errors(
        &res,
        400,
        &[&multi(&format!(
            "{PREFIX}: value for key \"a\" contains unprintable characters"
        ))],
    );
    let res = post_meta(
        &vault,
        "k",
        json!({ "custom_metadata": { "tab\tkey": "v" } }),
    )
    .await;
    assert_errors(
        &res,
        400,
        &[&multi(&format!(
            "{PREFIX}: key \"tab\\tkey\" (tab\tkey) contains unprintable characters"
        ))],
    );
    // Several problems are all reported.
    let res = post_meta(&vault, "k", json!({ "custom_metadata": { "": "" } })).await;
    assert_errors(
        &res,
        400,
        &[&format!(
            "2 errors occurred:\n\t* {PREFIX}: length of key \"\" is 0 but must be 0 < len(key) <= 128\n\t* {PREFIX}: length of value for key \"\" is 0 but must be 0 < len(value) <= 512\n\n"
        )],
    );
    // PATCH validates what it is given too.
    let res = patch_meta(
        &vault,
        "k",
        json!({ "custom_metadata": { "b": "v".repeat(513) } }),
    )
    .await;
    assert_eq!(res.status, 400);
}

// Vault: kv path_metadata.go parseCustomMetadata
#[tokio::test]
async fn non_string_custom_metadata_values_are_weakly_decoded() {
    let vault = Vault::start().await;
    let res = post_meta(
        &vault,
        "k",
        json!({ "custom_metadata": { "n": 5, "t": true, "f": false } }),
    )
    .await;
    assert_eq!(res.status, 204);
    assert_eq!(
        custom(&vault, "k").await,
        json!({ "n": "5", "t": "1", "f": "0" })
    );
    let res = post_meta(&vault, "k", json!({ "custom_metadata": { "l": ["x"] } })).await;
    assert_eq!(res.status, 400);
    assert!(
        res.errors()[0].starts_with(&format!("{PREFIX}: ")),
        "{}",
        res.text
    );
}

// Vault: kv path_metadata.go pathMetadataList; http/logical.go (LIST, ?list=true)
#[tokio::test]
async fn list_returns_names_and_folders() {
    let vault = Vault::start().await;
    for key in ["app/db", "app/api/key", "app/api", "top"] {
        vault.put(key, json!({})).await;
    }
    post_meta(&vault, "app/meta-only", json!({ "max_versions": 1 })).await;
    let res = vault
        .root_call("LIST", "/v1/secret/metadata/app", None)
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json["data"],
        json!({ "keys": ["api", "api/", "db", "meta-only"] })
    );
    // GET ?list=true is the same operation.
    let res = vault
        .root_call("GET", "/v1/secret/metadata/?list=true", None)
        .await;
    assert_eq!(res.json["data"]["keys"], json!(["app/", "top"]));
    // Nothing under a prefix: 404 {"errors":[]}.
    assert_errors(
        &vault
            .root_call("LIST", "/v1/secret/metadata/none/", None)
            .await,
        404,
        &[],
    );
    // Soft-deleted keys are still listed; metadata-deleted ones are not.
    vault.root_call("DELETE", "/v1/secret/data/top", None).await;
    vault
        .root_call("DELETE", "/v1/secret/metadata/app/db", None)
        .await;
    let res = vault
        .root_call("GET", "/v1/secret/metadata?list=true", None)
        .await;
    assert_eq!(res.json["data"]["keys"], json!(["app/", "top"]));
    let res = vault
        .root_call("LIST", "/v1/secret/metadata/app/", None)
        .await;
    assert_eq!(
        res.json["data"]["keys"],
        json!(["api", "api/", "meta-only"])
    );
}

// Vault: kv path_metadata.go pathMetadataDelete
#[tokio::test]
async fn metadata_delete_removes_every_version() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "v": "1" })).await;
    vault.put("k", json!({ "v": "2" })).await;
    let res = vault
        .root_call("DELETE", "/v1/secret/metadata/k", None)
        .await;
    assert_eq!((res.status, res.text.as_str()), (204, ""));
    assert_errors(
        &vault
            .root_call("GET", "/v1/secret/data/k?version=1", None)
            .await,
        404,
        &[],
    );
    assert_errors(
        &vault.root_call("GET", "/v1/secret/metadata/k", None).await,
        404,
        &[],
    );
    // Deleting nothing is fine too.
    assert_eq!(
        vault
            .root_call("DELETE", "/v1/secret/metadata/k", None)
            .await
            .status,
        204
    );
}

// Vault: vault/router.go (one backend per mount)
#[tokio::test]
async fn additional_kv2_mounts_are_independent() {
    let vault = Vault::with(vault_emulator::Options {
        kv2_mounts: vec!["secret".into(), "team/kv".into()],
        ..vault_emulator::Options::default()
    })
    .await;
    let res = vault
        .root_call(
            "POST",
            "/v1/team/kv/data/k",
            Some(json!({ "data": { "a": "1" } })),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(vault.handle.kv2_current_version("team/kv", "k"), Some(1));
    assert_eq!(vault.handle.kv2_current_version("secret", "k"), None);
}
