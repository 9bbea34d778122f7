//! Versions: reads by version, soft delete, undelete, destroy and pruning
//! (vault-plugin-secrets-kv path_data.go, path_delete.go, path_destroy.go).

use crate::common::{assert_errors, Vault};
use serde_json::{json, Value};

async fn three_versions(vault: &Vault) {
    for i in 1..=3 {
        vault.put("k", json!({ "v": i.to_string() })).await;
    }
}

// Vault: kv path_data.go pathDataRead
#[tokio::test]
async fn reads_pick_a_version() {
    let vault = Vault::start().await;
    three_versions(&vault).await;
    let at = |q: &'static str| {
        let vault = &vault;
        async move {
            vault
                .root_call("GET", &format!("/v1/secret/data/k{q}"), None)
                .await
        }
    };
    assert_eq!(at("").await.json["data"]["data"]["v"], "3");
    assert_eq!(at("?version=0").await.json["data"]["data"]["v"], "3");
    let v2 = at("?version=2").await;
    assert_eq!(v2.json["data"]["data"]["v"], "2");
    assert_eq!(v2.json["data"]["metadata"]["version"], 2);
    // No such version: a nil response, 404 {"errors":[]}.
    assert_errors(&at("?version=9").await, 404, &[]);
}

// Vault: kv path_data.go pathDataRead; sdk/logical/response.go RespondWithStatusCode
#[tokio::test]
async fn soft_deleted_reads_are_404_with_the_full_envelope() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "v": "1" })).await;
    assert_eq!(
        vault
            .root_call("DELETE", "/v1/secret/data/k", None)
            .await
            .status,
        204
    );
    let res = vault.root_call("GET", "/v1/secret/data/k", None).await;
    // logical.RespondWithStatusCode(resp, req, 404): the envelope, with `mount_type`
    // empty because the backend rendered it before the router set it.
    assert_eq!(res.status, 404);
    assert!(res.json.get("errors").is_none());
    assert_eq!(res.json["mount_type"], "");
    assert_eq!(
        res.json["request_id"].as_str().expect("request id").len(),
        36
    );
    assert_eq!(res.json["data"]["data"], Value::Null);
    let metadata = &res.json["data"]["metadata"];
    assert_eq!(metadata["version"], 1);
    assert_eq!(metadata["destroyed"], false);
    assert!(metadata["deletion_time"]
        .as_str()
        .expect("deletion_time")
        .ends_with('Z'));
    assert_eq!(metadata["custom_metadata"], Value::Null);
    // Deleting again changes nothing.
    let before = metadata["deletion_time"].clone();
    vault.root_call("DELETE", "/v1/secret/data/k", None).await;
    let again = vault.root_call("GET", "/v1/secret/data/k", None).await;
    assert_eq!(again.json["data"]["metadata"]["deletion_time"], before);
}

// Vault: kv path_delete.go, path_destroy.go
#[tokio::test]
async fn delete_undelete_and_destroy_by_version() {
    let vault = Vault::start().await;
    three_versions(&vault).await;
    let post = |path: &'static str, body: Value| {
        let vault = &vault;
        async move {
            vault
                .root_call("POST", &format!("/v1/secret/{path}"), Some(body))
                .await
        }
    };
    let res = post("delete/k", json!({ "versions": [1, 2] })).await;
    assert_eq!((res.status, res.text.as_str()), (204, ""));
    assert_eq!(
        vault
            .root_call("GET", "/v1/secret/data/k?version=1", None)
            .await
            .status,
        404
    );
    assert_eq!(
        vault
            .root_call("GET", "/v1/secret/data/k", None)
            .await
            .status,
        200
    );
    assert_eq!(
        post("undelete/k", json!({ "versions": "1" })).await.status,
        204
    );
    let v1 = vault
        .root_call("GET", "/v1/secret/data/k?version=1", None)
        .await;
    assert_eq!(v1.json["data"]["data"]["v"], "1");
    assert_eq!(v1.json["data"]["metadata"]["deletion_time"], "");
    // Destroyed data is gone for good: undelete skips it.
    assert_eq!(
        post("destroy/k", json!({ "versions": [1] })).await.status,
        204
    );
    assert_eq!(
        post("undelete/k", json!({ "versions": [1] })).await.status,
        204
    );
    let gone = vault
        .root_call("GET", "/v1/secret/data/k?version=1", None)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json["data"]["metadata"]["destroyed"], true);
    assert_eq!(gone.json["data"]["data"], Value::Null);
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(meta.json["data"]["versions"]["1"]["destroyed"], true);
    assert!(meta.json["data"]["versions"]["2"]["deletion_time"]
        .as_str()
        .expect("time")
        .ends_with('Z'));
    // Unknown keys and versions are ignored.
    assert_eq!(
        post("destroy/nope", json!({ "versions": [1] }))
            .await
            .status,
        204
    );
    assert_eq!(
        post("delete/k", json!({ "versions": [99] })).await.status,
        204
    );
}

// Vault: kv path_delete.go, path_destroy.go
#[tokio::test]
async fn empty_version_lists_are_400_with_each_endpoints_text() {
    let vault = Vault::start().await;
    vault.put("k", json!({})).await;
    let post = |path: &'static str, body: Value| {
        let vault = &vault;
        async move {
            vault
                .root_call("POST", &format!("/v1/secret/{path}"), Some(body))
                .await
        }
    };
    // path_delete.go (both endpoints) capitalises; path_destroy.go does not.
    assert_errors(
        &post("delete/k", json!({ "versions": [] })).await,
        400,
        &["No version number provided"],
    );
    assert_errors(
        &post("undelete/k", json!({})).await,
        400,
        &["No version number provided"],
    );
    assert_errors(
        &post("destroy/k", json!({ "versions": [] })).await,
        400,
        &["no version number provided"],
    );
}

// Vault: kv path_data.go KeyMetadata.AddVersion
#[tokio::test]
async fn old_versions_are_pruned_past_max_versions() {
    let vault = Vault::start().await;
    vault
        .root_call(
            "POST",
            "/v1/secret/config",
            Some(json!({ "max_versions": 3 })),
        )
        .await;
    for i in 1..=5 {
        vault.put("k", json!({ "v": i })).await;
    }
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    let versions: Vec<&String> = meta.json["data"]["versions"]
        .as_object()
        .expect("versions")
        .keys()
        .collect();
    assert_eq!(versions, ["3", "4", "5"]);
    assert_eq!(meta.json["data"]["current_version"], 5);
    assert_eq!(meta.json["data"]["oldest_version"], 3);
    assert_errors(
        &vault
            .root_call("GET", "/v1/secret/data/k?version=2", None)
            .await,
        404,
        &[],
    );
    // AddVersion keeps max(key, mount): a smaller key setting does not prune harder.
    vault
        .root_call(
            "POST",
            "/v1/secret/metadata/k",
            Some(json!({ "max_versions": 1 })),
        )
        .await;
    vault.put("k", json!({ "v": 6 })).await;
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(
        meta.json["data"]["versions"]
            .as_object()
            .expect("versions")
            .len(),
        3
    );
    // A larger key setting keeps more.
    vault
        .root_call(
            "POST",
            "/v1/secret/metadata/k",
            Some(json!({ "max_versions": 5 })),
        )
        .await;
    vault.put("k", json!({ "v": 7 })).await;
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(
        meta.json["data"]["versions"]
            .as_object()
            .expect("versions")
            .len(),
        4
    );
}

// Vault: kv path_data.go AddVersion (defaultMaxVersions)
#[tokio::test]
async fn the_default_max_versions_is_ten() {
    let vault = Vault::start().await;
    for i in 1..=11 {
        vault.put("k", json!({ "v": i })).await;
    }
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(
        meta.json["data"]["versions"]
            .as_object()
            .expect("versions")
            .len(),
        10
    );
    assert!(meta.json["data"]["versions"].get("1").is_none());
}

// Vault: kv delete_version_after.go deletionTime; path_data.go pathDataRead
#[tokio::test]
async fn a_future_deletion_time_still_reads() {
    let vault = Vault::start().await;
    let res = vault
        .root_call(
            "POST",
            "/v1/secret/metadata/k",
            Some(json!({ "delete_version_after": "1h" })),
        )
        .await;
    assert_eq!(res.status, 204);
    vault.put("k", json!({ "v": "1" })).await;
    let read = vault.root_call("GET", "/v1/secret/data/k", None).await;
    assert_eq!(read.status, 200);
    assert!(read.json["data"]["metadata"]["deletion_time"]
        .as_str()
        .expect("time")
        .ends_with('Z'));
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(meta.json["data"]["delete_version_after"], "1h0m0s");
}

/// `time.RFC3339Nano` in UTC as `ptypes.TimestampString` renders it: a `Z` suffix
/// and a fraction of 1 to 9 digits without trailing zeros, or none at all.
fn rfc3339_nano(text: &str) -> jiff::Timestamp {
    let (seconds, fraction) = match text.strip_suffix('Z').expect("UTC").split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (text.trim_end_matches('Z'), None),
    };
    assert_eq!(seconds.len(), 19, "{text}");
    if let Some(f) = fraction {
        assert!(
            (1..=9).contains(&f.len())
                && f.bytes().all(|b| b.is_ascii_digit())
                && !f.ends_with('0'),
            "{text}"
        );
    }
    text.parse().expect("RFC 3339")
}

// Vault: kv path_metadata.go pathMetadataRead; path_delete.go pathDeleteWrite; path_destroy.go pathDestroyWrite
#[tokio::test]
async fn metadata_tracks_each_version_through_delete_and_destroy() {
    let vault = Vault::start().await;
    let mut written = Vec::new();
    for i in 1..=5 {
        written.push(vault.put("k", json!({ "v": i.to_string() })).await);
    }
    let post = |path: &'static str, versions: Value| {
        let vault = &vault;
        async move {
            vault
                .root_call(
                    "POST",
                    &format!("/v1/secret/{path}"),
                    Some(json!({ "versions": versions })),
                )
                .await
        }
    };
    // Older versions, never the latest: 1 destroyed only, 2 deleted then destroyed,
    // 3 deleted only, 4 and 5 untouched.
    assert_eq!(post("delete/k", json!([2, 3])).await.status, 204);
    let deleted = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    let deleted_at = deleted.json["data"]["versions"]["2"]["deletion_time"].clone();
    assert_eq!(post("destroy/k", json!([1, 2])).await.status, 204);

    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(meta.status, 200, "{}", meta.text);
    let data = &meta.json["data"];
    assert_eq!(data["current_version"], 5);
    assert_eq!(data["oldest_version"], 0);
    let versions = data["versions"].as_object().expect("versions");
    let numbers: Vec<&String> = versions.keys().collect();
    assert_eq!(numbers, ["1", "2", "3", "4", "5"]);
    let mut previous = None;
    for (n, write) in (1..=5).zip(&written) {
        let v = &versions[&n.to_string()];
        let fields: Vec<&String> = v.as_object().expect("version").keys().collect();
        assert_eq!(fields, ["created_time", "deletion_time", "destroyed"]);
        // The same created_time the write returned, with nanoseconds.
        assert_eq!(v["created_time"], write["created_time"], "version {n}");
        let created = rfc3339_nano(v["created_time"].as_str().expect("created_time"));
        assert!(previous <= Some(created), "version {n} created in order");
        previous = Some(created);
        let (deleted, destroyed) = match n {
            1 => (false, true),
            2 => (true, true),
            3 => (true, false),
            _ => (false, false),
        };
        assert_eq!(v["destroyed"], destroyed, "version {n}");
        let deletion = v["deletion_time"].as_str().expect("deletion_time");
        if deleted {
            assert!(rfc3339_nano(deletion) >= created, "version {n}");
        } else {
            // Destroying does not set a deletion time.
            assert_eq!(deletion, "", "version {n}");
        }
    }
    // Destroying a deleted version keeps its deletion time.
    assert_eq!(versions["2"]["deletion_time"], deleted_at);
    assert_eq!(data["created_time"], versions["1"]["created_time"]);
    assert_eq!(data["updated_time"], versions["5"]["created_time"]);

    // Reads agree: the latest is live, the others are 404 with their metadata.
    let latest = vault.root_call("GET", "/v1/secret/data/k", None).await;
    assert_eq!(latest.status, 200);
    assert_eq!(latest.json["data"]["data"], json!({ "v": "5" }));
    assert_eq!(
        vault
            .root_call("GET", "/v1/secret/data/k?version=4", None)
            .await
            .json["data"]["data"],
        json!({ "v": "4" })
    );
    for (n, destroyed) in [(1, true), (2, true), (3, false)] {
        let res = vault
            .root_call("GET", &format!("/v1/secret/data/k?version={n}"), None)
            .await;
        assert_eq!(res.status, 404, "version {n}");
        assert_eq!(res.json["data"]["data"], Value::Null);
        assert_eq!(res.json["data"]["metadata"]["version"], n);
        assert_eq!(res.json["data"]["metadata"]["destroyed"], destroyed);
        assert_eq!(
            res.json["data"]["metadata"]["deletion_time"],
            versions[&n.to_string()]["deletion_time"]
        );
    }
    // Undelete brings back only what was not destroyed.
    assert_eq!(post("undelete/k", json!([2, 3])).await.status, 204);
    let meta = vault.root_call("GET", "/v1/secret/metadata/k", None).await;
    assert_eq!(meta.json["data"]["versions"]["3"]["deletion_time"], "");
    assert_eq!(meta.json["data"]["versions"]["2"]["destroyed"], true);
    let v3 = vault
        .root_call("GET", "/v1/secret/data/k?version=3", None)
        .await;
    assert_eq!(v3.json["data"]["data"], json!({ "v": "3" }));
}
