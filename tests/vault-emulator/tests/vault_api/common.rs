//! A started emulator plus a plain-HTTP client, and small request helpers.

use reqwest::Method;
use serde_json::{json, Value};
use vault_emulator::{Handle, Options};

pub struct Vault {
    pub handle: Handle,
    client: reqwest::Client,
}

/// A response: status, body parsed as JSON (`Null` when empty) and the raw text.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

impl Res {
    /// The `errors` array of an error body.
    pub fn errors(&self) -> Vec<String> {
        serde_json::from_value(self.json["errors"].clone()).expect("an errors array")
    }
}

pub fn client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`; plain HTTP still builds a TLS config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

impl Vault {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Self {
        let handle = vault_emulator::start(opts).await.expect("emulator starts");
        Self {
            handle,
            client: client(),
        }
    }

    pub fn root(&self) -> String {
        self.handle.root_token().to_string()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Res {
        let method = Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.handle.url()));
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", content_type.unwrap_or("application/json"))
                .body(body.to_string());
        } else if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let res = req.send().await.expect("request completes");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body reads");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        Res { status, json, text }
    }

    /// A request with the given token.
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Res {
        let ct = (method == "PATCH").then_some("application/merge-patch+json");
        self.send(method, path, Some(token), ct, body.as_ref())
            .await
    }

    /// A request with the root token.
    pub async fn root_call(&self, method: &str, path: &str, body: Option<Value>) -> Res {
        let root = self.root();
        self.call(method, path, &root, body).await
    }

    /// Writes `data` to `secret/data/<key>` as root and returns the response data.
    pub async fn put(&self, key: &str, data: Value) -> Value {
        let res = self
            .root_call(
                "POST",
                &format!("/v1/secret/data/{key}"),
                Some(json!({ "data": data })),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        res.json["data"].clone()
    }

    pub async fn policy(&self, name: &str, policy: Value) {
        let res = self
            .root_call(
                "PUT",
                &format!("/v1/sys/policies/acl/{name}"),
                Some(json!({ "policy": policy.to_string() })),
            )
            .await;
        assert_eq!(res.status, 204, "{}", res.text);
    }

    /// A child token of root with these policies and `default`. With none it would
    /// inherit root's policies, as in Vault, so callers always name one.
    pub async fn token(&self, policies: &[&str]) -> String {
        assert!(!policies.is_empty(), "name at least one policy");
        let res = self
            .root_call(
                "POST",
                "/v1/auth/token/create",
                Some(json!({ "policies": policies })),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        res.json["auth"]["client_token"]
            .as_str()
            .expect("client_token")
            .to_string()
    }
}

/// `{"errors":["1 error occurred:\n\t* msg\n\n"]}` text.
pub fn multi(msg: &str) -> String {
    format!("1 error occurred:\n\t* {msg}\n\n")
}

/// Asserts a JSON error body with exactly these messages.
pub fn assert_errors(res: &Res, status: u16, errors: &[&str]) {
    assert_eq!(res.status, status, "{}", res.text);
    assert_eq!(res.json, json!({ "errors": errors }), "{}", res.text);
}
