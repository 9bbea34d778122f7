//! The semantics the front layer adds on top of kube-fake-client: forbidden namespaces,
//! immutable Secrets, Secret validation and linearizable updates.

mod common;

use common::{api_error, env};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;

fn secret(name: &str, type_: &str, data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_string());
    s.type_ = Some(type_.to_string());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    s
}

fn invalid(name: &str, detail: &str) -> (u16, String, String) {
    (
        422,
        "Invalid".to_string(),
        format!("Secret \"{name}\" is invalid: {detail}"),
    )
}

const USER: &str = "system:serviceaccount:test:step";

#[tokio::test]
async fn forbidden_namespaces() {
    let env = env("open", &["locked"]).await;
    let c = env.client.clone();
    let locked: Api<Secret> = Api::namespaced(c.clone(), "locked");

    assert_eq!(
        api_error(locked.get("s").await),
        (
            403,
            "Forbidden".into(),
            format!("secrets \"s\" is forbidden: User \"{USER}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"locked\"")
        )
    );
    assert_eq!(
        api_error(locked.list(&ListParams::default()).await),
        (
            403,
            "Forbidden".into(),
            format!("secrets is forbidden: User \"{USER}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"locked\"")
        )
    );
    let (code, _, message) = api_error(
        locked
            .create(&PostParams::default(), &secret("s", "Opaque", &[]))
            .await,
    );
    assert_eq!(code, 403);
    assert!(
        message.contains("cannot create resource \"secrets\""),
        "{message}"
    );
    let patch = json!({});
    let (_, _, message) = api_error(
        locked
            .patch("s", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert!(message.contains("cannot patch resource"), "{message}");

    // A LIST across namespaces would include the forbidden one.
    let all: Api<Secret> = Api::all(c.clone());
    assert_eq!(
        api_error(all.list(&ListParams::default()).await),
        (
            403,
            "Forbidden".into(),
            format!("secrets is forbidden: User \"{USER}\" cannot list resource \"secrets\" in API group \"\" at the cluster scope")
        )
    );

    let open: Api<Secret> = Api::namespaced(c.clone(), "open");
    open.list(&ListParams::default())
        .await
        .expect("other namespaces work");

    env.server.allow_namespace("locked");
    locked
        .create(&PostParams::default(), &secret("s", "Opaque", &[]))
        .await
        .expect("allowed now");
    all.list(&ListParams::default())
        .await
        .expect("list all allowed");
    env.server.forbid_namespace("open");
    assert_eq!(api_error(open.get("x").await).0, 403);
    locked.get("s").await.expect("locked is allowed");
}

#[tokio::test]
async fn immutable_secrets() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let mut s = secret("imm", "Opaque", &[("a", "1")]);
    s.immutable = Some(true);
    let created = api
        .create(&PostParams::default(), &s)
        .await
        .expect("create");

    // Metadata stays mutable.
    let labels = json!({"metadata": {"labels": {"rotated": "yes"}}});
    api.patch("imm", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("label patch");

    let data_forbidden = invalid(
        "imm",
        "data: Forbidden: field is immutable when `immutable` is set",
    );
    let data = json!({"data": {"a": "Mg=="}});
    assert_eq!(
        api_error(
            api.patch("imm", &PatchParams::default(), &Patch::Merge(&data))
                .await
        ),
        data_forbidden
    );
    let string_data = json!({"stringData": {"b": "new"}});
    assert_eq!(
        api_error(
            api.patch("imm", &PatchParams::default(), &Patch::Merge(&string_data))
                .await
        ),
        data_forbidden
    );
    // stringData equal to what is stored changes nothing, so it is allowed.
    let same = json!({"stringData": {"a": "1"}});
    api.patch("imm", &PatchParams::default(), &Patch::Merge(&same))
        .await
        .expect("no-op stringData");

    let mut current = api.get("imm").await.expect("get");
    current.data = Some(BTreeMap::from([("a".into(), ByteString(b"9".to_vec()))]));
    assert_eq!(
        api_error(api.replace("imm", &PostParams::default(), &current).await),
        data_forbidden
    );

    let mut unset = api.get("imm").await.expect("get");
    unset.immutable = Some(false);
    assert_eq!(
        api_error(api.replace("imm", &PostParams::default(), &unset).await),
        invalid(
            "imm",
            "immutable: Forbidden: field is immutable when `immutable` is set"
        )
    );
    let unset_patch = json!({"immutable": null});
    assert_eq!(
        api_error(
            api.patch("imm", &PatchParams::default(), &Patch::Merge(&unset_patch))
                .await
        )
        .0,
        422
    );

    let got = api.get("imm").await.expect("get");
    assert_eq!(got.data, created.data);
    api.delete("imm", &Default::default())
        .await
        .expect("immutable Secrets can be deleted");
}

#[tokio::test]
async fn secret_type_validation() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let pp = PostParams::default();
    let create = |s: Secret| {
        let api = api.clone();
        async move { api.create(&PostParams::default(), &s).await }
    };

    assert_eq!(
        api_error(create(secret("t1", "kubernetes.io/tls", &[("tls.crt", "c")])).await),
        invalid("t1", "data[tls.key]: Required value")
    );
    assert_eq!(
        api_error(create(secret("t2", "kubernetes.io/tls", &[])).await),
        invalid(
            "t2",
            "[data[tls.crt]: Required value, data[tls.key]: Required value]"
        )
    );
    let (code, _, message) = api_error(
        create(secret(
            "d1",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", "{not json")],
        ))
        .await,
    );
    assert_eq!(code, 422);
    assert!(message.starts_with(
        "Secret \"d1\" is invalid: data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": "
    ), "{message}");
    assert_eq!(
        api_error(create(secret("d2", "kubernetes.io/dockerconfigjson", &[])).await),
        invalid("d2", "data[.dockerconfigjson]: Required value")
    );
    assert_eq!(
        api_error(create(secret("b1", "kubernetes.io/basic-auth", &[("x", "y")])).await),
        invalid(
            "b1",
            "[data[username]: Required value, data[password]: Required value]"
        )
    );
    assert_eq!(
        api_error(
            create(secret(
                "s1",
                "kubernetes.io/ssh-auth",
                &[("ssh-privatekey", "")]
            ))
            .await
        ),
        invalid("s1", "data[ssh-privatekey]: Required value")
    );
    let (code, _, message) = api_error(create(secret("k1", "Opaque", &[("no/slash", "x")])).await);
    assert_eq!(code, 422);
    assert!(message.starts_with("Secret \"k1\" is invalid: data[no/slash]: Invalid value: \"no/slash\": a valid config key must consist of alphanumeric characters"), "{message}");
    let big = "x".repeat(1024 * 1024 + 1);
    assert_eq!(
        api_error(create(secret("big", "Opaque", &[("k", &big)])).await),
        invalid("big", "data: Too long: may not be more than 1048576 bytes")
    );
    let exact = "x".repeat(1024 * 1024);
    create(secret("max", "Opaque", &[("k", &exact)]))
        .await
        .expect("exactly 1 MiB is allowed");

    for ok in [
        secret(
            "tls",
            "kubernetes.io/tls",
            &[("tls.crt", "c"), ("tls.key", "k")],
        ),
        secret(
            "dcj",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", "{\"auths\":{}}")],
        ),
        secret("ba", "kubernetes.io/basic-auth", &[("password", "")]),
        secret("ssh", "kubernetes.io/ssh-auth", &[("ssh-privatekey", "k")]),
        secret("custom", "example.com/anything", &[("k", "v")]),
    ] {
        api.create(&pp, &ok).await.expect("valid Secret");
    }

    // Validation applies to updates and patches, and type is immutable.
    let drop_key = json!({"data": {"tls.key": null}});
    assert_eq!(
        api_error(
            api.patch("tls", &PatchParams::default(), &Patch::Merge(&drop_key))
                .await
        ),
        invalid("tls", "data[tls.key]: Required value")
    );
    let retype = json!({"type": "Opaque"});
    assert_eq!(
        api_error(
            api.patch("tls", &PatchParams::default(), &Patch::Merge(&retype))
                .await
        ),
        invalid("tls", "type: Invalid value: \"Opaque\": field is immutable")
    );
    let mut current = api.get("ba").await.expect("get");
    current.data = Some(BTreeMap::new());
    assert_eq!(
        api_error(api.replace("ba", &PostParams::default(), &current).await),
        invalid(
            "ba",
            "[data[username]: Required value, data[password]: Required value]"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_write_loses_no_update() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    api.create(
        &PostParams::default(),
        &secret("counter", "Opaque", &[("n", "0")]),
    )
    .await
    .expect("create");

    const WRITERS: usize = 8;
    const INCREMENTS: usize = 5;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let api = api.clone();
        tasks.spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..INCREMENTS {
                loop {
                    let mut s = api.get("counter").await.expect("get");
                    let n: u64 = s
                        .data
                        .as_ref()
                        .and_then(|d| d.get("n"))
                        .and_then(|b| std::str::from_utf8(&b.0).ok()?.parse().ok())
                        .expect("counter value");
                    let next = (n + 1).to_string().into_bytes();
                    s.data = Some(BTreeMap::from([("n".into(), ByteString(next))]));
                    match api.replace("counter", &PostParams::default(), &s).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(status)) if status.code == 409 => conflicts += 1,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            }
            conflicts
        });
    }
    let mut conflicts = 0;
    while let Some(done) = tasks.join_next().await {
        conflicts += done.expect("writer task");
    }
    let s = api.get("counter").await.expect("get");
    let n = s.data.and_then(|d| d.get("n").cloned()).map(|b| b.0);
    assert_eq!(n, Some((WRITERS * INCREMENTS).to_string().into_bytes()));
    eprintln!("{conflicts} conflicts were retried");
}
