//! Service account tokens and TokenReview over HTTP, as Vault/OpenBao's Kubernetes auth
//! method uses them: it POSTs a TokenReview with a bearer token of its own (a reviewer
//! token, or the client's token) and trusts `status.user`.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::env;
use http_body_util::BodyExt as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use kube_server::{ApiAccess, Handle, SERVICE_ACCOUNT_ISSUER, TOKEN};
use serde_json::{json, Value};

const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// `(status, body)` of one raw request; `bearer` goes in `Authorization: Bearer`.
async fn send(
    server: &Handle,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(bearer) = bearer {
        req = req.header("authorization", format!("Bearer {bearer}"));
    }
    let req = req
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .expect("request");
    // The server's own client carries no credentials: only the header above does.
    let res = server.client().send(req).await.expect("send");
    let code = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (code, serde_json::from_slice(&bytes).expect("a JSON body"))
}

/// Reviews `token` (with `audiences` when given) as the kubeconfig user.
async fn review(server: &Handle, token: &str, audiences: Option<&[&str]>) -> Value {
    let mut spec = json!({"token": token});
    if let Some(audiences) = audiences {
        spec["audiences"] = json!(audiences);
    }
    let body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec});
    let (code, reply) = send(server, "POST", PATH, Some(TOKEN), &body.to_string()).await;
    assert_eq!(code, 201, "{reply}");
    assert_eq!(reply["kind"], "TokenReview");
    assert_eq!(reply["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(reply["spec"], spec, "the spec is echoed");
    reply["status"].clone()
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// A rejected review as the apiserver serialises it: `authenticated` false (omitted),
/// `user` empty, no audiences, the authenticator's error.
fn rejected(error: &str) -> Value {
    json!({"user": {}, "error": error})
}

#[tokio::test]
async fn an_issued_token_is_a_projected_token_shaped_jws() {
    let env = env("ns", &[]).await;
    let token = env.server.issue_service_account_token("apps", "step");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header = decode(parts[0]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"].as_str().map(str::len), Some(43), "{header}");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[2]).expect("signature").len(),
        256
    );
    let claims = decode(parts[1]);
    let uid = env
        .server
        .service_account_uid("apps", "step")
        .expect("a uid once a token is issued");
    assert_eq!(claims["iss"], SERVICE_ACCOUNT_ISSUER);
    assert_eq!(claims["sub"], "system:serviceaccount:apps:step");
    assert_eq!(claims["aud"], json!([SERVICE_ACCOUNT_ISSUER]));
    assert_eq!(
        claims["kubernetes.io"],
        json!({"namespace": "apps", "serviceaccount": {"name": "step", "uid": uid}})
    );
    let (iat, nbf, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["nbf"].as_u64().expect("nbf"),
        claims["exp"].as_u64().expect("exp"),
    );
    assert!(iat == nbf && exp > iat, "{claims}");
    assert!(claims["jti"].is_string());

    // One uid per service account; every token differs.
    let again = env.server.issue_service_account_token("apps", "step");
    assert_ne!(again, token);
    let claims = decode(again.split('.').nth(1).expect("claims"));
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["uid"],
        uid.as_str()
    );
    env.server.issue_service_account_token("apps", "other");
    env.server.issue_service_account_token("other", "step");
    let others = [
        env.server.service_account_uid("apps", "other"),
        env.server.service_account_uid("other", "step"),
    ];
    assert!(others.iter().all(|o| o.as_ref().is_some_and(|o| *o != uid)));
    assert_ne!(others[0], others[1]);
    assert_eq!(env.server.service_account_uid("apps", "never"), None);
}

#[tokio::test]
async fn an_issued_token_authenticates_as_its_service_account() {
    let env = env("ns", &[]).await;
    let token = env.server.issue_service_account_token("apps", "step");
    let uid = env.server.service_account_uid("apps", "step").expect("uid");
    let jti = decode(token.split('.').nth(1).expect("claims"))["jti"].clone();
    let status = review(&env.server, &token, None).await;
    assert_eq!(
        status,
        json!({
            "authenticated": true,
            "user": {
                "username": "system:serviceaccount:apps:step",
                "uid": uid,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={}", jti.as_str().expect("jti"))]},
            },
            "audiences": [SERVICE_ACCOUNT_ISSUER],
        })
    );
    // Asking for the API server's audience explicitly is the same.
    assert_eq!(
        review(&env.server, &token, Some(&[SERVICE_ACCOUNT_ISSUER])).await,
        status
    );

    // A kube client creating the TokenReview typed, through its kubeconfig, sees it too.
    let api: Api<TokenReview> = Api::all(env.client.clone());
    let created = api
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.clone()),
                    audiences: None,
                },
                ..TokenReview::default()
            },
        )
        .await
        .expect("create TokenReview");
    let status = created.status.expect("status");
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.expect("user");
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:apps:step")
    );
    assert_eq!(user.uid.as_deref(), Some(uid.as_str()));
}

#[tokio::test]
async fn unknown_revoked_and_garbled_tokens_do_not_authenticate() {
    let env = env("ns", &[]).await;
    let token = env.server.issue_service_account_token("apps", "step");
    let kept = env.server.issue_service_account_token("apps", "step");

    env.server.revoke_service_account_token(&token);
    assert_eq!(
        review(&env.server, &token, None).await,
        rejected("[invalid bearer token, service account token has been invalidated]")
    );
    // Other tokens of the same service account still work.
    assert_eq!(
        review(&env.server, &kept, None).await["authenticated"],
        true
    );

    // A token of another server (another cluster) or one with edited claims fails the
    // signature check; anything else no authenticator recognises.
    let elsewhere = kube_server::start(Default::default())
        .await
        .expect("server");
    let foreign = elsewhere.issue_service_account_token("apps", "step");
    let bad_signature =
        rejected("[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]");
    assert_eq!(review(&env.server, &foreign, None).await, bad_signature);
    let parts: Vec<&str> = kept.split('.').collect();
    let mut claims = decode(parts[1]);
    claims["sub"] = json!("system:serviceaccount:apps:admin");
    claims["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(review(&env.server, &forged, None).await, bad_signature);
    for garbage in ["garbage", "a.b.c", &format!("{kept}.x.y")] {
        assert_eq!(
            review(&env.server, garbage, None).await,
            rejected("invalid bearer token"),
            "{garbage}"
        );
    }
}

#[tokio::test]
async fn audiences_must_meet() {
    let env = env("ns", &[]).await;
    let vault =
        env.server
            .issue_service_account_token_with_audiences("apps", "step", &["vault", "other"]);
    let status = review(&env.server, &vault, Some(&["bao", "vault"])).await;
    assert_eq!(status["authenticated"], true);
    assert_eq!(status["audiences"], json!(["vault"]), "the intersection");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:apps:step"
    );

    // Without audiences the API server reviews for itself.
    assert_eq!(
        review(&env.server, &vault, None).await,
        rejected(&format!(
            "[invalid bearer token, token audiences [\"vault\" \"other\"] is invalid for the target audiences [\"{SERVICE_ACCOUNT_ISSUER}\"]]"
        ))
    );
    let api = env.server.issue_service_account_token("apps", "step");
    assert_eq!(
        review(&env.server, &api, Some(&["vault"])).await,
        rejected(&format!(
            "[invalid bearer token, token audiences [\"{SERVICE_ACCOUNT_ISSUER}\"] is invalid for the target audiences [\"vault\"]]"
        ))
    );
    // The audience mismatch is found before the revocation, as the apiserver does.
    env.server.revoke_service_account_token(&vault);
    assert_eq!(
        review(&env.server, &vault, Some(&["nope"])).await["error"],
        "[invalid bearer token, token audiences [\"vault\" \"other\"] is invalid for the target audiences [\"nope\"]]"
    );
}

#[tokio::test]
async fn the_caller_must_authenticate() {
    let env = env("ns", &[]).await;
    let token = env.server.issue_service_account_token("apps", "step");
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
        .to_string();
    let unauthorized = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401});

    let revoked = env.server.issue_service_account_token("apps", "gone");
    env.server.revoke_service_account_token(&revoked);
    let vault_only =
        env.server
            .issue_service_account_token_with_audiences("apps", "step", &["vault"]);
    let elsewhere = kube_server::start(Default::default())
        .await
        .expect("server");
    let foreign = elsewhere.issue_service_account_token("apps", "step");
    for bearer in ["nope", &revoked, &vault_only, &foreign] {
        assert_eq!(
            send(&env.server, "POST", PATH, Some(bearer), &body).await,
            (401, unauthorized.clone()),
            "{bearer}"
        );
    }

    // No token at all is system:anonymous, whom RBAC does not let create TokenReviews.
    let (code, status) = send(&env.server, "POST", PATH, None, &body).await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "tokenreviews.authentication.k8s.io is forbidden: User \"system:anonymous\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
    );

    // The kubeconfig token, a token given to write_kubeconfig_as, and an issued service
    // account token (as OpenBao uses the client's own JWT when it has no reviewer JWT).
    let dir = tempfile::tempdir().expect("tempdir");
    env.server
        .write_kubeconfig_as(&dir.path().join("kubeconfig"), "ns", "vault-reviewer")
        .expect("kubeconfig");
    for bearer in [TOKEN, "vault-reviewer", &token] {
        let (code, review) = send(&env.server, "POST", PATH, Some(bearer), &body).await;
        assert_eq!(code, 201, "{bearer}: {review}");
        assert_eq!(review["status"]["authenticated"], true);
    }
}

#[tokio::test]
async fn malformed_reviews_are_bad_requests() {
    let env = env("ns", &[]).await;
    let token = env.server.issue_service_account_token("apps", "step");
    let cases = [
        ("{not json".to_string(), "the object provided is unrecognized (must be of type TokenReview): couldn't get version/kind; json parse error: "),
        ("[]".to_string(), "the object provided is unrecognized (must be of type TokenReview): "),
        (json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}}).to_string(),
            "token is required for TokenReview in authentication"),
        (json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}).to_string(),
            "token is required for TokenReview in authentication"),
        (json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": 7}}).to_string(),
            "TokenReview in version \"v1\" cannot be handled as a TokenReview: "),
        (json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token, "audiences": "vault"}}).to_string(),
            "TokenReview in version \"v1\" cannot be handled as a TokenReview: "),
        (json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": "x"}).to_string(),
            "TokenReview in version \"v1\" cannot be handled as a TokenReview: "),
        (json!({"apiVersion": "v1", "kind": "TokenReview", "spec": {"token": token}}).to_string(),
            "the API version in the data (v1) does not match the expected API version (authentication.k8s.io/v1)"),
        (json!({"apiVersion": "authentication.k8s.io/v1", "kind": "Secret", "spec": {"token": token}}).to_string(),
            "Secret in version \"v1\" cannot be handled as a TokenReview: no kind \"Secret\" is registered"),
    ];
    for (body, message) in cases {
        let (code, status) = send(&env.server, "POST", PATH, Some(TOKEN), &body).await;
        assert_eq!(code, 400, "{body}: {status}");
        assert_eq!(
            (&status["kind"], &status["reason"], &status["code"]),
            (&json!("Status"), &json!("BadRequest"), &json!(400)),
            "{body}"
        );
        let got = status["message"].as_str().expect("message");
        assert!(got.starts_with(message), "{body}: {got}");
    }
    // apiVersion and kind may be left out: the path says what the body is.
    let (code, review) = send(
        &env.server,
        "POST",
        PATH,
        Some(TOKEN),
        &json!({"spec": {"token": token}}).to_string(),
    )
    .await;
    assert_eq!(
        (code, &review["status"]["authenticated"]),
        (201, &json!(true))
    );

    // Create is the only verb, on the cluster-scoped collection only.
    assert_eq!(send(&env.server, "GET", PATH, Some(TOKEN), "").await.0, 405);
    let named = format!("{PATH}/x");
    assert_eq!(
        send(&env.server, "PUT", &named, Some(TOKEN), "{}").await.0,
        404
    );
    let namespaced = "/apis/authentication.k8s.io/v1/namespaces/ns/tokenreviews";
    assert_eq!(
        send(&env.server, "POST", namespaced, Some(TOKEN), "{}")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn reviews_are_recorded_as_rbac_sees_them() {
    let env = env("ns", &[]).await;
    let token = env.server.issue_service_account_token("secops", "vault");
    let body = json!({"spec": {"token": token}}).to_string();
    env.server.reset_accesses();
    send(&env.server, "POST", PATH, Some(TOKEN), &body).await;
    send(&env.server, "POST", PATH, Some(&token), &body).await;
    send(&env.server, "POST", PATH, Some("nope"), &body).await;
    let access = |user: &str| ApiAccess {
        user: user.to_string(),
        verb: "create".into(),
        group: "authentication.k8s.io".into(),
        resource: "tokenreviews".into(),
        namespace: String::new(),
    };
    // A service account is recorded by its username, never by its token; a rejected
    // token never reaches authorization.
    assert_eq!(
        env.server.accesses(),
        vec![access(TOKEN), access("system:serviceaccount:secops:vault")]
    );
}

#[tokio::test]
async fn discovery_lists_token_reviews() {
    let env = env("ns", &[]).await;
    let c = &env.client;
    let groups = c.list_api_groups().await.expect("/apis").groups;
    let group = groups
        .iter()
        .find(|g| g.name == "authentication.k8s.io")
        .expect("authentication.k8s.io is listed");
    assert_eq!(
        group
            .preferred_version
            .as_ref()
            .map(|v| v.group_version.as_str()),
        Some("authentication.k8s.io/v1")
    );
    let list = c
        .list_api_group_resources("authentication.k8s.io/v1")
        .await
        .expect("/apis/authentication.k8s.io/v1");
    let names: Vec<&str> = list.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["tokenreviews"]);
    let r = &list.resources[0];
    assert_eq!(
        (r.kind.as_str(), r.namespaced, r.verbs.clone()),
        ("TokenReview", false, vec!["create".to_string()])
    );
    let gvk = kube::api::GroupVersionKind::gvk("authentication.k8s.io", "v1", "TokenReview");
    let (ar, caps) = kube::discovery::pinned_kind(c, &gvk)
        .await
        .expect("pinned kind");
    assert_eq!(ar.plural, "tokenreviews");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
}

#[tokio::test]
async fn the_binary_issues_tokens_on_request() {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--service-account-token", "secops/write-vault"])
        .args(["--service-account-token", "apps/reader"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kube-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut tokens = Vec::new();
    let url = loop {
        let line = lines.next_line().await.expect("read").expect("a line");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("service-account-token"), "{line}");
        let sa = words.next().expect("NS/NAME").to_string();
        tokens.push((sa, words.next().expect("token").to_string()));
    };
    let names: Vec<&str> = tokens.iter().map(|(sa, _)| sa.as_str()).collect();
    assert_eq!(names, ["secops/write-vault", "apps/reader"]);

    // Reviewed with the token itself as the bearer, as OpenBao does without a reviewer JWT.
    // kube-fake-client links both rustls providers: pick one, as kube_server::start does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
    let (sa, token) = &tokens[0];
    let req = http::Request::post(PATH)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(kube::client::Body::from(
            json!({"spec": {"token": token}}).to_string().into_bytes(),
        ))
        .expect("request");
    let res = client.send(req).await.expect("send");
    assert_eq!(res.status(), 201, "{sa}");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let review: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:secops:write-vault"
    );

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-server"))
        .args(["--service-account-token", "no-slash"])
        .output()
        .await
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected NAMESPACE/NAME"));
    child.kill().await.expect("kill");
}
