//! Response shapes, routing errors and request parsing.

use crate::common::{assert_errors, client, multi, Vault};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn keys(v: &Value) -> Vec<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

// Vault: sdk/logical/translate_response.go HTTPResponse; kv path_data.go pathDataWrite/pathDataRead
#[tokio::test]
async fn write_and_read_use_the_logical_response_envelope() {
    let vault = Vault::start().await;
    let res = vault
        .root_call(
            "POST",
            "/v1/secret/data/app",
            Some(json!({ "data": { "k": "v" } })),
        )
        .await;
    // sdk/logical/translate_response.go `HTTPResponse`: these nine fields, always.
    assert_eq!(res.status, 200);
    assert_eq!(
        keys(&res.json),
        [
            "auth",
            "data",
            "lease_duration",
            "lease_id",
            "mount_type",
            "renewable",
            "request_id",
            "warnings",
            "wrap_info"
        ]
    );
    assert_eq!(res.json["lease_id"], "");
    assert_eq!(res.json["renewable"], false);
    assert_eq!(res.json["lease_duration"], 0);
    assert_eq!(res.json["wrap_info"], Value::Null);
    assert_eq!(res.json["warnings"], Value::Null);
    assert_eq!(res.json["auth"], Value::Null);
    assert_eq!(res.json["mount_type"], "kv");
    assert_eq!(
        res.json["request_id"].as_str().expect("request_id").len(),
        36
    );
    // path_data.go pathDataWrite: the new version's metadata.
    let data = &res.json["data"];
    assert_eq!(
        keys(data),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(data["version"], 1);
    assert_eq!(data["deletion_time"], "");
    assert_eq!(data["destroyed"], false);
    assert_eq!(data["custom_metadata"], Value::Null);
    let created = data["created_time"].as_str().expect("created_time");
    assert!(
        created.parse::<jiff::Timestamp>().is_ok() && created.ends_with('Z'),
        "{created}"
    );

    // path_data.go pathDataRead: data plus the version's metadata.
    let read = vault.root_call("GET", "/v1/secret/data/app", None).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json["data"]["data"], json!({ "k": "v" }));
    assert_eq!(read.json["data"]["metadata"], res.json["data"]);
    assert_ne!(read.json["request_id"], res.json["request_id"]);
    // Go's json.Encoder ends bodies with a newline.
    assert!(read.text.ends_with("}\n"));
}

// Vault: http/logical.go respondLogical; sdk/logical/response_util.go RespondErrorCommon
#[tokio::test]
async fn nil_responses_are_204_for_writes_and_404_with_empty_errors_for_reads() {
    let vault = Vault::start().await;
    vault.put("gone", json!({ "a": "b" })).await;
    // http/logical.go respondOk(w, nil): 204, no body.
    let del = vault
        .root_call("DELETE", "/v1/secret/data/gone", None)
        .await;
    assert_eq!((del.status, del.text.as_str()), (204, ""));
    // response_util.go RespondErrorCommon: a read of nothing is 404 {"errors":[]}.
    let missing = vault
        .root_call("GET", "/v1/secret/data/never-written", None)
        .await;
    assert_errors(&missing, 404, &[]);
}

// Vault: sdk/framework/backend.go HandleRequest; vault/router.go routeCommon; http/logical.go buildLogicalRequestNoAuth
#[tokio::test]
async fn unknown_paths_operations_and_methods() {
    let vault = Vault::start().await;
    // framework.Backend: ErrUnsupportedPath, wrapped by handleRequest's multierror.
    let res = vault.root_call("GET", "/v1/secret/nonsense/x", None).await;
    assert_errors(&res, 404, &[&multi("unsupported path")]);
    assert_errors(
        &vault.root_call("GET", "/v1/sys/nope", None).await,
        404,
        &[&multi("unsupported path")],
    );
    assert_errors(
        &vault.root_call("GET", "/v1/auth/token/nope", None).await,
        404,
        &[&multi("unsupported path")],
    );
    // data/ needs a key without a trailing slash (matchAllNoTrailingSlashRegex).
    assert_errors(
        &vault.root_call("GET", "/v1/secret/data/", None).await,
        404,
        &[&multi("unsupported path")],
    );
    // vault/router.go routeCommon: no mount at all.
    let res = vault.root_call("GET", "/v1/nomount/x", None).await;
    assert_errors(
        &res,
        404,
        &["no handler for route \"nomount/x\". route entry not found."],
    );
    // ErrUnsupportedOperation is 405.
    let res = vault.root_call("DELETE", "/v1/secret/config", None).await;
    assert_errors(&res, 405, &[&multi("unsupported operation")]);
    // LIST adds a trailing slash, and `config/` matches no pattern.
    let res = vault.root_call("LIST", "/v1/secret/config", None).await;
    assert_errors(&res, 404, &[&multi("unsupported path")]);
    // http/logical.go buildLogicalRequestNoAuth: unknown methods are 405 with no message.
    assert_errors(
        &vault.root_call("FOO", "/v1/secret/data/x", None).await,
        405,
        &[],
    );
    // http/handler.go: outside /v1/ is 404.
    assert_errors(
        &vault.root_call("GET", "/v2/secret/data/x", None).await,
        404,
        &[],
    );
}

// Vault: http/logical.go parseJSONRequest; vault/request_handling.go handleCancelableRequest
#[tokio::test]
async fn bodies_must_be_json_objects_and_writes_cannot_end_in_a_slash() {
    let vault = Vault::start().await;
    let root = vault.root();
    for body in ["{not json", "[1,2]", "\"text\""] {
        let res = client()
            .post(format!("{}/v1/secret/data/x", vault.handle.url()))
            .header("X-Vault-Token", &root)
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status().as_u16(), 400, "{body}");
        let json: Value = res.json().await.expect("json");
        // http/logical.go: parseJSONRequest failure.
        assert_eq!(json, json!({ "errors": ["error parsing JSON"] }));
    }
    // vault/request_handling.go handleCancelableRequest.
    let res = vault
        .root_call(
            "POST",
            "/v1/secret/metadata/dir/",
            Some(json!({ "max_versions": 1 })),
        )
        .await;
    assert_errors(&res, 400, &["cannot write to a path ending in '/'"]);
}

// Vault: http/logical.go (the logical path is r.URL.Path, i.e. decoded)
#[tokio::test]
async fn url_paths_are_percent_decoded() {
    let vault = Vault::start().await;
    vault
        .put("dir%2Fcaf%C3%A9%20menu", json!({ "x": "1" }))
        .await;
    let res = vault
        .root_call("GET", "/v1/secret/data/dir/café menu", None)
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json["data"]["data"], json!({ "x": "1" }));
    let list = vault
        .root_call("LIST", "/v1/secret/metadata/dir", None)
        .await;
    assert_eq!(list.json["data"]["keys"], json!(["café menu"]));
}

async fn raw_get(vault: &Vault, target: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(vault.handle.addr())
        .await
        .expect("connects");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: vault\r\nX-Vault-Token: root\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    response
}

// Vault: hashicorp/vault#14328, openbao/openbao#2910 (no traversal past the ACL check)
#[tokio::test]
async fn dot_dot_segments_are_rejected() {
    // reqwest normalises `..` away, so these go over a raw socket. Vault must never
    // let a traversal reach a path other than the one ACLs were checked against
    // (cf. hashicorp/vault#14328, openbao#2910).
    let vault = Vault::start().await;
    for target in [
        "/v1/secret/data/a/../b",
        "/v1/secret/data/a/%2e%2e/b",
        "/v1/secret/data/..",
    ] {
        let response = raw_get(&vault, target).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{target}: {response}");
        assert!(
            response.contains(r#"{"errors":["invalid path"]}"#),
            "{target}: {response}"
        );
    }
    // `..` inside a name is not a segment.
    let ok = raw_get(&vault, "/v1/secret/data/a..b").await;
    assert!(ok.starts_with("HTTP/1.1 404"), "{ok}");
}

// Vault: http/handler.go requestAuth
#[tokio::test]
async fn bearer_tokens_and_namespace_headers_are_accepted() {
    let vault = Vault::start().await;
    vault.put("k", json!({ "a": "1" })).await;
    // http/handler.go requestAuth: Authorization: Bearer works like X-Vault-Token.
    let res = client()
        .get(format!("{}/v1/secret/data/k", vault.handle.url()))
        .header("Authorization", format!("Bearer {}", vault.root()))
        .header("X-Vault-Namespace", "ignored/")
        .header("X-Vault-Request", "true")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 200);
}

// Vault: kv path_data.go pathDataWrite/Read (data stored as JSON)
#[tokio::test]
async fn json_string_values_round_trip_byte_for_byte() {
    let vault = Vault::start().await;
    let values = [
        "nul\u{0}inside",
        "control \u{1}\u{1f}\u{7f}",
        "quotes \" and \\ backslashes",
        "lines\r\n\ttabs",
        "non-BMP 😀 𝄞 \u{10FFFF}",
        "separators \u{2028}\u{2029} bom \u{FEFF} nonchar \u{FFFF}",
        "",
    ];
    let data: serde_json::Map<String, Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}-ключ-🔑"), json!(v)))
        .collect();
    vault.put("binary", Value::Object(data.clone())).await;
    let res = vault.root_call("GET", "/v1/secret/data/binary", None).await;
    let back = res.json["data"]["data"].as_object().expect("data");
    assert_eq!(back.len(), values.len());
    for (key, value) in &data {
        let got = back[key].as_str().expect("string");
        assert_eq!(
            got.as_bytes(),
            value.as_str().expect("string").as_bytes(),
            "{key}"
        );
    }
}
