//! Token authentication and the token helpers (vault/token_store.go).

use crate::common::{assert_errors, multi, Vault};
use serde_json::{json, Value};
use std::time::Duration;

// Vault: vault/request_handling.go fetchACLTokenEntryAndEntity
#[tokio::test]
async fn missing_unknown_and_revoked_tokens_are_permission_denied() {
    let vault = Vault::start().await;
    // vault/request_handling.go fetchACLTokenEntryAndEntity: ErrPermissionDenied, unwrapped.
    let none = vault
        .send("GET", "/v1/secret/data/x", None, None, None)
        .await;
    assert_errors(&none, 403, &["permission denied"]);
    let unknown = vault
        .call("GET", "/v1/secret/data/x", "hvs.unknown", None)
        .await;
    assert_errors(&unknown, 403, &["permission denied"]);
    let token = vault.token(&["nothing"]).await;
    assert_eq!(
        vault
            .call("POST", "/v1/auth/token/revoke-self", &token, None)
            .await
            .status,
        204
    );
    let revoked = vault
        .call("GET", "/v1/auth/token/lookup-self", &token, None)
        .await;
    assert_errors(&revoked, 403, &["permission denied"]);
}

// Vault: vault/request_handling.go checkToken
#[tokio::test]
async fn a_valid_token_without_a_policy_gets_the_multierror_denial() {
    let vault = Vault::start().await;
    let token = vault.token(&["nothing"]).await;
    // checkToken appends ErrPermissionDenied to a multierror when the ACL says no.
    let res = vault.call("GET", "/v1/secret/data/x", &token, None).await;
    assert_errors(&res, 403, &[&multi("permission denied")]);
}

// Vault: vault/token_store.go handleCreateCommon; sdk/helper/policyutil SanitizePolicies
#[tokio::test]
async fn token_create_returns_an_auth_block() {
    let vault = Vault::start().await;
    vault
        .policy(
            "reader",
            json!({ "path": { "secret/data/*": { "capabilities": ["read"] } } }),
        )
        .await;
    let res = vault
        .root_call(
            "POST",
            "/v1/auth/token/create",
            Some(json!({ "policies": ["reader"], "ttl": "1h", "meta": { "team": "a" } })),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"], Value::Null);
    assert_eq!(res.json["mount_type"], "token");
    let auth = &res.json["auth"];
    assert!(auth["client_token"]
        .as_str()
        .expect("token")
        .starts_with("hvs."));
    assert_eq!(auth["accessor"].as_str().expect("accessor").len(), 24);
    // policyutil.SanitizePolicies: sorted, `default` added for a sudo (root) parent.
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["token_policies"], json!(["default", "reader"]));
    assert_eq!(auth["metadata"], json!({ "team": "a" }));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["entity_id"], "");
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["orphan"], false);

    // Without a TTL a non-root token gets the system default of 768h.
    let res = vault
        .root_call(
            "POST",
            "/v1/auth/token/create",
            Some(json!({ "policies": "reader" })),
        )
        .await;
    assert_eq!(res.json["auth"]["lease_duration"], 2_764_800);
    // No policies: the child inherits the parent's, so root creates a root token.
    let res = vault
        .root_call("POST", "/v1/auth/token/create", Some(json!({})))
        .await;
    assert_eq!(res.json["auth"]["policies"], json!(["root"]));
    assert_eq!(res.json["auth"]["lease_duration"], 0);
    assert_eq!(res.json["auth"]["renewable"], false);
}

// Vault: vault/token_store.go handleLookup
#[tokio::test]
async fn lookup_self_describes_the_token() {
    let vault = Vault::start().await;
    let created = vault
        .root_call(
            "POST",
            "/v1/auth/token/create",
            Some(json!({ "ttl": "30m", "policies": ["x"], "display_name": "ci job" })),
        )
        .await;
    let token = created.json["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    // The default policy grants read on auth/token/lookup-self.
    let res = vault
        .call("GET", "/v1/auth/token/lookup-self", &token, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let data = &res.json["data"];
    assert_eq!(data["id"], token.as_str());
    assert_eq!(data["accessor"], created.json["auth"]["accessor"]);
    assert_eq!(data["policies"], json!(["default", "x"]));
    assert_eq!(data["path"], "auth/token/create");
    assert_eq!(data["display_name"], "token-ci-job");
    assert_eq!(data["creation_ttl"], 1800);
    assert!((1790..=1800).contains(&data["ttl"].as_i64().expect("ttl")));
    assert_eq!(data["orphan"], false);
    assert_eq!(data["type"], "service");
    assert!(data["expire_time"].is_string());

    let root = vault
        .root_call("GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert_eq!(root.json["data"]["policies"], json!(["root"]));
    assert_eq!(root.json["data"]["path"], "auth/token/root");
    assert_eq!(root.json["data"]["expire_time"], Value::Null);
    assert_eq!(root.json["data"]["orphan"], true);
}

// Vault: vault/token_store.go handleRevokeSelf
#[tokio::test]
async fn revoke_self_is_204_and_revokes_children() {
    let vault = Vault::start().await;
    vault
        .policy(
            "minter",
            json!({ "path": { "auth/token/create": { "capabilities": ["update"] } } }),
        )
        .await;
    let parent = vault.token(&["minter"]).await;
    let child = vault
        .call("POST", "/v1/auth/token/create", &parent, Some(json!({})))
        .await;
    assert_eq!(child.status, 200, "{}", child.text);
    let child = child.json["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    // token_store.go handleRevokeSelf returns nil: 204, and revokes the token tree.
    let res = vault
        .call("POST", "/v1/auth/token/revoke-self", &parent, None)
        .await;
    assert_eq!((res.status, res.text.as_str()), (204, ""));
    assert_eq!(
        vault
            .call("GET", "/v1/auth/token/lookup-self", &child, None)
            .await
            .status,
        403
    );
}

// Vault: vault/token_store.go handleCreateCommon
#[tokio::test]
async fn child_policies_must_be_a_subset_of_the_parent() {
    let vault = Vault::start().await;
    vault
        .policy(
            "minter",
            json!({ "path": { "auth/token/create": { "capabilities": ["update"] } } }),
        )
        .await;
    let parent = vault.token(&["minter"]).await;
    // token_store.go handleCreateCommon without sudo.
    let res = vault
        .call(
            "POST",
            "/v1/auth/token/create",
            &parent,
            Some(json!({ "policies": ["admin"] })),
        )
        .await;
    assert_errors(&res, 400, &["child policies must be subset of parent"]);
    let res = vault
        .call(
            "POST",
            "/v1/auth/token/create",
            &parent,
            Some(json!({ "policies": ["minter"] })),
        )
        .await;
    assert_eq!(res.json["auth"]["policies"], json!(["default", "minter"]));
    // Creating tokens needs a policy on auth/token/create.
    let plain = vault.token(&["nothing"]).await;
    let res = vault
        .call("POST", "/v1/auth/token/create", &plain, Some(json!({})))
        .await;
    assert_errors(&res, 403, &[&multi("permission denied")]);
}

// Vault: vault/token_store.go Lookup (expired tokens are gone)
#[tokio::test]
async fn expired_tokens_stop_working() {
    let vault = Vault::start().await;
    let res = vault
        .root_call(
            "POST",
            "/v1/auth/token/create",
            Some(json!({ "policies": ["x"], "ttl": 1 })),
        )
        .await;
    let token = res.json["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        vault
            .call("GET", "/v1/auth/token/lookup-self", &token, None)
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = vault
        .call("GET", "/v1/auth/token/lookup-self", &token, None)
        .await;
    assert_errors(&res, 403, &["permission denied"]);
}
