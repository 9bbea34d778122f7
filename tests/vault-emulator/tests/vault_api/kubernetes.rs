//! Kubernetes auth (vault-plugin-auth-kubernetes path_login.go, path_role.go).

use crate::common::{assert_errors, Vault};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

async fn with_role(role: Value) -> Vault {
    let vault = Vault::start().await;
    let res = vault
        .root_call("POST", "/v1/auth/kubernetes/role/app", Some(role))
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    vault
}

fn app_role() -> Value {
    json!({
        "bound_service_account_names": ["app-sa"],
        "bound_service_account_namespaces": ["apps"],
        "token_policies": ["kv-read"],
        "token_ttl": "1h",
    })
}

async fn login(vault: &Vault, body: Value) -> crate::common::Res {
    vault
        .send("POST", "/v1/auth/kubernetes/login", None, None, Some(&body))
        .await
}

// Vault: vault-plugin-auth-kubernetes path_login.go pathLogin; vault/request_handling.go RegisterAuth
#[tokio::test]
async fn login_returns_an_auth_block_with_service_account_metadata() {
    let vault = with_role(app_role()).await;
    let jwt = vault.handle.issue_service_account_token("apps", "app-sa");
    let res = login(&vault, json!({ "role": "app", "jwt": jwt })).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["data"], Value::Null);
    assert_eq!(res.json["mount_type"], "kubernetes");
    let auth = &res.json["auth"];
    assert!(auth["client_token"]
        .as_str()
        .expect("token")
        .starts_with("hvs."));
    assert_eq!(auth["policies"], json!(["default", "kv-read"]));
    assert_eq!(auth["token_policies"], json!(["default", "kv-read"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["orphan"], true);
    assert_eq!(auth["entity_id"].as_str().expect("entity").len(), 36);
    let uid = auth["metadata"]["service_account_uid"]
        .as_str()
        .expect("uid")
        .to_string();
    assert_eq!(
        auth["metadata"],
        json!({
            "role": "app",
            "service_account_name": "app-sa",
            "service_account_namespace": "apps",
            "service_account_secret_name": "",
            "service_account_uid": uid,
        })
    );
    // The token is a real token: lookup-self works through the default policy.
    let token = auth["client_token"].as_str().expect("token");
    let me = vault
        .call("GET", "/v1/auth/token/lookup-self", token, None)
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json["data"]["path"], "auth/kubernetes/login");
    assert_eq!(me.json["data"]["display_name"], "kubernetes-apps-app-sa");
    assert_eq!(me.json["data"]["meta"], auth["metadata"]);
}

// Vault: vault-plugin-auth-kubernetes path_login.go getFieldValueStr, pathLogin
#[tokio::test]
async fn login_field_and_role_errors_are_400() {
    let vault = with_role(app_role()).await;
    let jwt = vault.handle.issue_service_account_token("apps", "app-sa");
    // getFieldValueStr: logical.ErrorResponse("missing %s").
    assert_errors(
        &login(&vault, json!({ "jwt": jwt })).await,
        400,
        &["missing role"],
    );
    assert_errors(
        &login(&vault, json!({ "role": "app" })).await,
        400,
        &["missing jwt"],
    );
    assert_errors(
        &login(&vault, json!({ "role": "", "jwt": jwt })).await,
        400,
        &["missing role"],
    );
    // pathLogin: role lookup.
    let res = login(&vault, json!({ "role": "nope", "jwt": jwt })).await;
    assert_errors(&res, 400, &["invalid role name \"nope\""]);
}

// Vault: vault-plugin-auth-kubernetes path_login.go (TokenReview failure is ErrPermissionDenied)
#[tokio::test]
async fn a_jwt_the_cluster_did_not_issue_is_permission_denied() {
    let vault = with_role(app_role()).await;
    // A failed TokenReview is logical.ErrPermissionDenied: 403.
    let garbage = login(&vault, json!({ "role": "app", "jwt": "not-a-jwt" })).await;
    assert_errors(&garbage, 403, &["permission denied"]);
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "apps",
        "kubernetes.io/serviceaccount/service-account.name": "app-sa",
        "kubernetes.io/serviceaccount/service-account.uid": "forged",
    });
    let forged = format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()));
    assert_errors(
        &login(&vault, json!({ "role": "app", "jwt": forged })).await,
        403,
        &["permission denied"],
    );
}

// Vault: vault-plugin-auth-kubernetes path_login.go parseAndValidateJWT
#[tokio::test]
async fn unbound_service_account_or_namespace_is_403() {
    let vault = with_role(app_role()).await;
    // parseAndValidateJWT: CodedError(403, ...).
    let other_sa = vault.handle.issue_service_account_token("apps", "other");
    let res = login(&vault, json!({ "role": "app", "jwt": other_sa })).await;
    assert_errors(&res, 403, &["service account name not authorized"]);
    let other_ns = vault
        .handle
        .issue_service_account_token("elsewhere", "app-sa");
    let res = login(&vault, json!({ "role": "app", "jwt": other_ns })).await;
    assert_errors(&res, 403, &["namespace not authorized"]);
}

// Vault: vault-plugin-auth-kubernetes path_login.go (StrListContainsGlob); default lease TTL 768h
#[tokio::test]
async fn wildcards_and_globs_bind_any_matching_account() {
    let vault = with_role(json!({
        "bound_service_account_names": "*",
        "bound_service_account_namespaces": "team-*",
        "policies": "legacy-name",
    }))
    .await;
    let jwt = vault
        .handle
        .issue_service_account_token("team-a", "anything");
    let res = login(&vault, json!({ "role": "app", "jwt": jwt })).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json["auth"]["policies"],
        json!(["default", "legacy-name"])
    );
    // No token_ttl: the system default lease TTL of 768h.
    assert_eq!(res.json["auth"]["lease_duration"], 2_764_800);
    let jwt = vault.handle.issue_service_account_token("prod", "anything");
    assert_eq!(
        login(&vault, json!({ "role": "app", "jwt": jwt }))
            .await
            .status,
        403
    );
}

// Vault: vault-plugin-auth-kubernetes path_role.go pathRoleCreateUpdate
#[tokio::test]
async fn roles_validate_bindings_and_read_back() {
    let vault = Vault::start().await;
    let res = vault
        .root_call(
            "POST",
            "/v1/auth/kubernetes/role/r",
            Some(json!({ "bound_service_account_namespaces": ["a"] })),
        )
        .await;
    assert_errors(
        &res,
        400,
        &["\"bound_service_account_names\" can not be empty"],
    );
    let res = vault
        .root_call(
            "POST",
            "/v1/auth/kubernetes/role/r",
            Some(json!({ "bound_service_account_names": ["a"] })),
        )
        .await;
    assert_errors(
        &res,
        400,
        &["\"bound_service_account_namespaces\" can not be empty"],
    );
    let res = vault
        .root_call(
            "POST",
            "/v1/auth/kubernetes/role/r",
            Some(json!({ "bound_service_account_names": ["*", "a"], "bound_service_account_namespaces": ["a"] })),
        )
        .await;
    assert_errors(&res, 400, &["can not mix \"*\" with values"]);
    let res = vault
        .root_call("POST", "/v1/auth/kubernetes/role/r", Some(app_role()))
        .await;
    assert_eq!(res.status, 204);
    let res = vault
        .root_call("GET", "/v1/auth/kubernetes/role/r", None)
        .await;
    assert_eq!(
        res.json["data"]["bound_service_account_names"],
        json!(["app-sa"])
    );
    assert_eq!(res.json["data"]["token_ttl"], 3600);
    let list = vault
        .root_call("LIST", "/v1/auth/kubernetes/role", None)
        .await;
    assert_eq!(list.json["data"]["keys"], json!(["r"]));
    assert_eq!(
        vault
            .root_call("DELETE", "/v1/auth/kubernetes/role/r", None)
            .await
            .status,
        204
    );
    assert_errors(
        &vault
            .root_call("GET", "/v1/auth/kubernetes/role/r", None)
            .await,
        404,
        &[],
    );
}

// Emulator: sys/emulator/service-account-token; login per vault-plugin-auth-kubernetes path_login.go
#[tokio::test]
async fn the_emulator_endpoint_issues_tokens_for_the_root_token_only() {
    let vault = with_role(app_role()).await;
    let body = json!({ "namespace": "apps", "service_account": "app-sa" });
    let res = vault
        .root_call(
            "POST",
            "/v1/sys/emulator/service-account-token",
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let jwt = res.json["data"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        login(&vault, json!({ "role": "app", "jwt": jwt }))
            .await
            .status,
        200
    );
    vault
        .policy(
            "everything",
            json!({ "path": { "*": { "capabilities": ["create", "update", "read", "sudo"] } } }),
        )
        .await;
    let not_root = vault.token(&["everything"]).await;
    let res = vault
        .call(
            "POST",
            "/v1/sys/emulator/service-account-token",
            &not_root,
            Some(body),
        )
        .await;
    assert_errors(&res, 403, &["permission denied"]);
}
