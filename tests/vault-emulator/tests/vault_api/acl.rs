//! ACL policies: the sys/policies/acl API (vault/logical_system.go) and their
//! evaluation (vault/acl.go).

use crate::common::{assert_errors, multi, Vault};
use serde_json::json;

// Vault: vault/logical_system.go handlePoliciesSet/Read/List/Delete
#[tokio::test]
async fn policies_can_be_written_read_listed_and_deleted() {
    let vault = Vault::start().await;
    let text = json!({ "path": { "secret/data/*": { "capabilities": ["read"] } } }).to_string();
    let res = vault
        .root_call(
            "PUT",
            "/v1/sys/policies/acl/Reader",
            Some(json!({ "policy": text })),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    // Names are lower-cased (handlePoliciesSet).
    let res = vault
        .root_call("GET", "/v1/sys/policies/acl/reader", None)
        .await;
    assert_eq!(
        res.json["data"],
        json!({ "name": "reader", "policy": text })
    );
    assert_eq!(res.json["mount_type"], "system");
    // LIST includes the implicit root policy.
    let res = vault.root_call("LIST", "/v1/sys/policies/acl", None).await;
    assert_eq!(
        res.json["data"]["keys"],
        json!(["default", "reader", "root"])
    );
    assert_eq!(
        vault
            .root_call("DELETE", "/v1/sys/policies/acl/reader", None)
            .await
            .status,
        204
    );
    assert_errors(
        &vault
            .root_call("GET", "/v1/sys/policies/acl/reader", None)
            .await,
        404,
        &[],
    );
}

// Vault: vault/logical_system.go handlePoliciesSet; vault/policy.go parsePaths
#[tokio::test]
async fn hcl_path_policies_are_accepted_and_protected_ones_refused() {
    let vault = Vault::start().await;
    let hcl = r#"path "secret/*" { capabilities = ["read"] }"#;
    let res = vault
        .root_call(
            "PUT",
            "/v1/sys/policies/acl/hcl",
            Some(json!({ "policy": hcl })),
        )
        .await;
    assert!(res.status < 300, "{}", res.text);
    let res = vault
        .root_call(
            "PUT",
            "/v1/sys/policies/acl/bad",
            Some(json!({ "policy": "x = 1" })),
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(
        res.errors()[0].starts_with("failed to parse policy"),
        "{}",
        res.text
    );
    let res = vault
        .root_call("PUT", "/v1/sys/policies/acl/x", Some(json!({})))
        .await;
    assert_errors(&res, 400, &["'policy' parameter not supplied or empty"]);
    let res = vault
        .root_call(
            "PUT",
            "/v1/sys/policies/acl/root",
            Some(json!({ "policy": "{}" })),
        )
        .await;
    assert_errors(&res, 400, &["cannot update \"root\" policy"]);
    let res = vault
        .root_call("DELETE", "/v1/sys/policies/acl/default", None)
        .await;
    assert_errors(&res, 400, &["cannot delete \"default\" policy"]);
    let bad = json!({ "path": { "a": { "capabilities": ["fly"] } } }).to_string();
    let res = vault
        .root_call(
            "PUT",
            "/v1/sys/policies/acl/bad",
            Some(json!({ "policy": bad })),
        )
        .await;
    assert_errors(
        &res,
        400,
        &["failed to parse policy: path \"a\": invalid capability \"fly\""],
    );
}

// Vault: vault/acl.go AllowOperation (prefix rules)
#[tokio::test]
async fn read_glob_allows_reads_only() {
    let vault = Vault::start().await;
    vault.put("team/app", json!({ "a": "1" })).await;
    vault
        .policy(
            "reader",
            json!({ "path": { "secret/data/team/*": { "capabilities": ["read"] } } }),
        )
        .await;
    let token = vault.token(&["reader"]).await;
    assert_eq!(
        vault
            .call("GET", "/v1/secret/data/team/app", &token, None)
            .await
            .status,
        200
    );
    let denied = multi("permission denied");
    let write = vault
        .call(
            "POST",
            "/v1/secret/data/team/app",
            &token,
            Some(json!({ "data": {} })),
        )
        .await;
    assert_errors(&write, 403, &[&denied]);
    assert_errors(
        &vault
            .call("GET", "/v1/secret/data/other", &token, None)
            .await,
        403,
        &[&denied],
    );
    assert_errors(
        &vault
            .call("GET", "/v1/secret/metadata/team/app", &token, None)
            .await,
        403,
        &[&denied],
    );
}

// Vault: vault/request_handling.go checkToken (RouteExistenceCheck); kv path_data.go dataExistenceCheck
#[tokio::test]
async fn writes_need_create_for_new_keys_and_update_for_existing_ones() {
    let vault = Vault::start().await;
    vault
        .policy(
            "creator",
            json!({ "path": { "secret/data/*": { "capabilities": ["create"] } } }),
        )
        .await;
    vault
        .policy(
            "updater",
            json!({ "path": { "secret/data/*": { "capabilities": ["update"] } } }),
        )
        .await;
    let creator = vault.token(&["creator"]).await;
    let updater = vault.token(&["updater"]).await;
    let body = || Some(json!({ "data": { "v": "1" } }));
    // dataExistenceCheck decides: a key without metadata is a create.
    assert_errors(
        &vault
            .call("POST", "/v1/secret/data/k", &updater, body())
            .await,
        403,
        &[&multi("permission denied")],
    );
    assert_eq!(
        vault
            .call("POST", "/v1/secret/data/k", &creator, body())
            .await
            .status,
        200
    );
    assert_errors(
        &vault
            .call("PUT", "/v1/secret/data/k", &creator, body())
            .await,
        403,
        &[&multi("permission denied")],
    );
    assert_eq!(
        vault
            .call("PUT", "/v1/secret/data/k", &updater, body())
            .await
            .status,
        200
    );
}

// Vault: vault/acl.go AllowOperation (ListOperation, PatchOperation)
#[tokio::test]
async fn list_and_patch_need_their_own_capabilities() {
    let vault = Vault::start().await;
    vault.put("app/one", json!({ "a": "1" })).await;
    vault
        .policy(
            "rw",
            json!({ "path": {
                "secret/data/*": { "capabilities": ["read", "update"] },
                "secret/metadata/*": { "capabilities": ["read"] }
            } }),
        )
        .await;
    vault
        .policy(
            "lister",
            json!({ "path": {
                "secret/metadata/app/": { "capabilities": ["list"] },
                "secret/data/app/one": { "capabilities": ["patch"] }
            } }),
        )
        .await;
    let rw = vault.token(&["rw"]).await;
    let lister = vault.token(&["lister"]).await;
    let denied = multi("permission denied");
    assert_errors(
        &vault
            .call("LIST", "/v1/secret/metadata/app", &rw, None)
            .await,
        403,
        &[&denied],
    );
    let patch = || Some(json!({ "data": { "b": "2" } }));
    assert_errors(
        &vault
            .call("PATCH", "/v1/secret/data/app/one", &rw, patch())
            .await,
        403,
        &[&denied],
    );
    let list = vault
        .call("LIST", "/v1/secret/metadata/app", &lister, None)
        .await;
    assert_eq!(list.json["data"]["keys"], json!(["one"]));
    assert_eq!(
        vault
            .call("PATCH", "/v1/secret/data/app/one", &lister, patch())
            .await
            .status,
        200
    );
}

// Vault: vault/acl.go NewACL (merge, deny) and CheckAllowedFromNonExactPaths
#[tokio::test]
async fn deny_wins_and_segment_wildcards_match_one_segment() {
    let vault = Vault::start().await;
    vault.put("teams/a/db", json!({ "p": "1" })).await;
    vault.put("teams/a/sub/db", json!({ "p": "1" })).await;
    vault.put("teams/b/db", json!({ "p": "1" })).await;
    vault
        .policy(
            "teams",
            json!({ "path": { "secret/data/teams/+/db": { "capabilities": ["read"] } } }),
        )
        .await;
    vault
        .policy(
            "deny-b",
            json!({ "path": { "secret/data/teams/+/db": { "capabilities": ["deny"] } } }),
        )
        .await;
    let teams = vault.token(&["teams"]).await;
    assert_eq!(
        vault
            .call("GET", "/v1/secret/data/teams/a/db", &teams, None)
            .await
            .status,
        200
    );
    assert_eq!(
        vault
            .call("GET", "/v1/secret/data/teams/a/sub/db", &teams, None)
            .await
            .status,
        403
    );
    // The same pattern in two policies merges, and deny wins.
    let both = vault.token(&["teams", "deny-b"]).await;
    assert_eq!(
        vault
            .call("GET", "/v1/secret/data/teams/b/db", &both, None)
            .await
            .status,
        403
    );
}

// Emulator: the ACL decision log least-privilege tests read (not a Vault feature). It names
// the capability Vault checked, create for a new key and update for an existing one
// (request_handling.go checkToken: existence check turns update into create).
#[tokio::test]
async fn every_acl_decision_is_recorded_with_policies_and_capability() {
    let vault = Vault::start().await;
    vault
        .policy(
            "writer",
            json!({ "path": { "secret/data/*": { "capabilities": ["create", "read"] } } }),
        )
        .await;
    let token = vault.token(&["writer"]).await;
    let body = Some(json!({ "data": { "k": "v" } }));
    assert_eq!(
        vault
            .call("POST", "/v1/secret/data/a", &token, body.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        vault
            .call("POST", "/v1/secret/data/a", &token, body)
            .await
            .status,
        403
    );
    let mine: Vec<_> = vault
        .handle
        .accesses()
        .into_iter()
        .filter(|a| a.policies.contains(&"writer".to_string()))
        .map(|a| (a.path, a.capability, a.allowed))
        .collect();
    assert_eq!(
        mine,
        vec![
            ("secret/data/a".to_string(), "create", true),
            ("secret/data/a".to_string(), "update", false),
        ]
    );
}
