//! API semantics as a kube client sees them over HTTP: CRUD, selectors, patches,
//! conflicts, deletes, Status bodies, Events, ExternalSecrets, discovery, accounting.

mod common;

use common::{api_error, env};
use k8s_openapi::api::core::v1::{Event, ObjectReference, Secret};
use k8s_openapi::ByteString;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, Preconditions,
};
use serde_json::json;
use std::collections::BTreeMap;

fn secret(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_string());
    if !labels.is_empty() {
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    s
}

fn value(s: &Secret, key: &str) -> Option<String> {
    let bytes = s.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

async fn names(api: &Api<Secret>, selector: &str) -> Vec<String> {
    let lp = ListParams::default().labels(selector);
    let mut names: Vec<String> = api
        .list(&lp)
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn create_get_and_list_with_label_selectors() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let pp = PostParams::default();
    for (name, app) in [("a", "x"), ("b", "y"), ("c", "z")] {
        let labels: &[(&str, &str)] = if name == "c" {
            &[("app", app)]
        } else {
            &[("app", app), ("tier", "web")]
        };
        api.create(&pp, &secret(name, labels, &[("k", name)]))
            .await
            .expect("create");
    }
    let got = api.get("b").await.expect("get");
    assert_eq!(value(&got, "k").as_deref(), Some("b"));
    assert_eq!(got.metadata.namespace.as_deref(), Some("ns"));
    assert!(got.metadata.uid.is_some());
    assert_eq!(got.type_.as_deref(), Some("Opaque"));

    assert_eq!(names(&api, "").await, ["a", "b", "c"]);
    assert_eq!(names(&api, "app=x").await, ["a"]);
    assert_eq!(names(&api, "app!=x").await, ["b", "c"]);
    assert_eq!(names(&api, "app in (x,z)").await, ["a", "c"]);
    assert_eq!(names(&api, "app notin (x,z)").await, ["b"]);
    assert_eq!(names(&api, "tier").await, ["a", "b"]);
    assert_eq!(names(&api, "!tier").await, ["c"]);
    assert_eq!(names(&api, "tier=web,app!=y").await, ["a"]);

    let other: Api<Secret> = Api::namespaced(env.client.clone(), "other");
    assert!(names(&other, "").await.is_empty());
}

#[tokio::test]
async fn create_existing_is_already_exists() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let s = secret("dup", &[], &[("k", "v")]);
    api.create(&PostParams::default(), &s)
        .await
        .expect("create");
    let err = api_error(api.create(&PostParams::default(), &s).await);
    assert_eq!(
        err,
        (
            409,
            "AlreadyExists".into(),
            "secrets \"dup\" already exists".into()
        )
    );
}

#[tokio::test]
async fn generate_name_and_string_data() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let mut s = Secret::default();
    s.metadata.generate_name = Some("gen-".into());
    s.string_data = Some(BTreeMap::from([("user".into(), "alice".into())]));
    let created = api
        .create(&PostParams::default(), &s)
        .await
        .expect("create");
    let name = created.metadata.name.clone().expect("generated name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(value(&created, "user").as_deref(), Some("alice"));
    assert!(created.string_data.is_none());

    // stringData in a patch lands in data, too.
    let patch = json!({"stringData": {"user": "bob", "extra": "1"}});
    let patched = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    assert_eq!(value(&patched, "user").as_deref(), Some("bob"));
    assert!(patched.string_data.is_none());
    let got = api.get(&name).await.expect("get");
    assert_eq!(value(&got, "extra").as_deref(), Some("1"));
    assert!(got.string_data.is_none());

    let nameless = Secret {
        data: Some(BTreeMap::new()),
        ..Secret::default()
    };
    let err = api_error(api.create(&PostParams::default(), &nameless).await);
    assert_eq!(
        err,
        (
            422,
            "Invalid".into(),
            "Secret \"\" is invalid: metadata.name: Required value: name or generateName is required"
                .into()
        )
    );
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let created = api
        .create(&PostParams::default(), &secret("p", &[], &[("a", "1")]))
        .await
        .expect("create");

    let merge = json!({"metadata": {"labels": {"m": "1"}}, "data": {"b": "Mg=="}});
    let merged = api
        .patch("p", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect("merge patch");
    assert_eq!(value(&merged, "b").as_deref(), Some("2"));
    assert_eq!(value(&merged, "a").as_deref(), Some("1"));
    assert_ne!(
        merged.metadata.resource_version,
        created.metadata.resource_version
    );

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/data/c", "value": "Mw=="},
        {"op": "remove", "path": "/data/a"}
    ]))
    .expect("json patch");
    let jsoned = api
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .expect("json patch applies");
    assert_eq!(value(&jsoned, "c").as_deref(), Some("3"));
    assert_eq!(value(&jsoned, "a"), None);

    // Strategic merge is what kubectl sends by default; for Secrets it merges maps.
    let strategic = json!({"metadata": {"labels": {"s": "1"}}});
    let strat = api
        .patch("p", &PatchParams::default(), &Patch::Strategic(&strategic))
        .await
        .expect("strategic patch");
    let labels = strat.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("m").map(String::as_str), Some("1"));
    assert_eq!(labels.get("s").map(String::as_str), Some("1"));

    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/data/nope"}])).expect("patch");
    let (code, reason, _) = api_error(
        api.patch("p", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn stale_resource_version_conflicts() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let created = api
        .create(&PostParams::default(), &secret("c", &[], &[("a", "1")]))
        .await
        .expect("create");
    let mut first = created.clone();
    first.data = Some(BTreeMap::from([("a".into(), ByteString(b"2".to_vec()))]));
    api.replace("c", &PostParams::default(), &first)
        .await
        .expect("replace with current rv");

    let conflict = (
        409,
        "Conflict".to_string(),
        "Operation cannot be fulfilled on secrets \"c\": the object has been modified; please apply your changes to the latest version and try again".to_string(),
    );
    let mut stale = created.clone();
    stale.data = Some(BTreeMap::from([("a".into(), ByteString(b"3".to_vec()))]));
    let result = api.replace("c", &PostParams::default(), &stale).await;
    if let Err(kube::Error::Api(status)) = &result {
        let details = status.details.as_ref().expect("details");
        assert_eq!(
            (details.name.as_str(), details.kind.as_str()),
            ("c", "secrets")
        );
    }
    assert_eq!(api_error(result), conflict);

    // A merge patch carrying metadata.resourceVersion is a precondition too.
    let old_rv = created.metadata.resource_version.clone();
    let patch = json!({"metadata": {"resourceVersion": old_rv}, "data": {"a": "NA=="}});
    let result = api
        .patch("c", &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    assert_eq!(api_error(result), conflict);
    let current = api.get("c").await.expect("get");
    assert_eq!(value(&current, "a").as_deref(), Some("2"));
    let fresh = json!({"metadata": {"resourceVersion": current.metadata.resource_version}, "data": {"a": "NA=="}});
    let patched = api
        .patch("c", &PatchParams::default(), &Patch::Merge(&fresh))
        .await
        .expect("patch with current rv");
    assert_eq!(value(&patched, "a").as_deref(), Some("4"));

    // PUT without resourceVersion is an unconditional update, as for real Secrets.
    let mut blind = patched.clone();
    blind.metadata.resource_version = None;
    blind.data = Some(BTreeMap::from([("a".into(), ByteString(b"5".to_vec()))]));
    api.replace("c", &PostParams::default(), &blind)
        .await
        .expect("unconditional replace");
}

#[tokio::test]
async fn delete_preconditions_and_success() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let created = api
        .create(&PostParams::default(), &secret("d", &[], &[("a", "1")]))
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    let rv = created.metadata.resource_version.clone().expect("rv");

    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_error(api.delete("d", &wrong_uid).await),
        (
            409,
            "Conflict".into(),
            format!("Operation cannot be fulfilled on secrets \"d\": Precondition failed: UID in precondition: not-the-uid, UID in object meta: {uid}")
        )
    );
    let wrong_rv = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.clone()),
            resource_version: Some("999".into()),
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_error(api.delete("d", &wrong_rv).await),
        (
            409,
            "Conflict".into(),
            format!("Operation cannot be fulfilled on secrets \"d\": Precondition failed: ResourceVersion in precondition: 999, ResourceVersion in object meta: {rv}")
        )
    );
    api.get("d").await.expect("still there");

    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.clone()),
            resource_version: Some(rv),
        }),
        ..DeleteParams::default()
    };
    let deleted = api.delete("d", &right).await.expect("delete");
    let status = deleted
        .right()
        .expect("built-in kinds answer with a Status");
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.kind.as_str(),
            details.uid.as_str()
        ),
        ("d", "secrets", uid.as_str())
    );
    assert_eq!(
        api_error(api.get("d").await),
        (404, "NotFound".into(), "secrets \"d\" not found".into())
    );
}

#[tokio::test]
async fn precondition_status_body_is_exact() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let created = api
        .create(&PostParams::default(), &secret("raw", &[], &[]))
        .await
        .expect("create");
    let uid = created.metadata.uid.expect("uid");
    let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "X"}});
    let req = http::Request::delete("/api/v1/namespaces/ns/secrets/raw")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body.to_string().into_bytes()))
        .expect("request");
    let res = env.client.send(req).await.expect("send");
    assert_eq!(res.status(), 409);
    use http_body_util::BodyExt as _;
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let got: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let want = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message": format!("Operation cannot be fulfilled on secrets \"raw\": Precondition failed: UID in precondition: X, UID in object meta: {uid}"),
        "reason":"Conflict","details":{"name":"raw","kind":"secrets"},"code":409});
    assert_eq!(got, want);
}

#[tokio::test]
async fn missing_objects_are_not_found_everywhere() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let nf = (
        404,
        "NotFound".to_string(),
        "secrets \"x\" not found".to_string(),
    );
    let result = api.get("x").await;
    if let Err(kube::Error::Api(status)) = &result {
        let details = status.details.as_ref().expect("details");
        assert_eq!(
            (details.name.as_str(), details.kind.as_str()),
            ("x", "secrets")
        );
    }
    assert_eq!(api_error(result), nf);
    assert_eq!(
        api_error(api.delete("x", &DeleteParams::default()).await),
        nf
    );
    let patch = json!({"data": {}});
    assert_eq!(
        api_error(
            api.patch("x", &PatchParams::default(), &Patch::Merge(&patch))
                .await
        ),
        nf
    );
    assert_eq!(
        api_error(
            api.replace("x", &PostParams::default(), &secret("x", &[], &[]))
                .await
        ),
        nf
    );
    let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    let es: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), "ns", &ApiResource::from_gvk(&gvk));
    assert_eq!(
        api_error(es.get("x").await),
        (
            404,
            "NotFound".into(),
            "externalsecrets.external-secrets.io \"x\" not found".into()
        )
    );
}

#[tokio::test]
async fn delete_collection_returns_the_deleted_list() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    for name in ["one", "two"] {
        api.create(&PostParams::default(), &secret(name, &[("g", "1")], &[]))
            .await
            .expect("create");
    }
    api.create(&PostParams::default(), &secret("keep", &[], &[]))
        .await
        .expect("create");
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("g=1"),
        )
        .await
        .expect("delete collection");
    let list = deleted.left().expect("a list of deleted objects");
    assert_eq!(list.items.len(), 2);
    assert_eq!(names(&api, "").await, ["keep"]);
}

#[tokio::test]
async fn core_and_events_k8s_io_events() {
    let env = env("ns", &[]).await;
    let events: Api<Event> = Api::default_namespaced(env.client.clone());
    let mut ev = Event::default();
    ev.metadata.generate_name = Some("rotation.".into());
    ev.involved_object = ObjectReference {
        kind: Some("Secret".into()),
        name: Some("db".into()),
        namespace: Some("ns".into()),
        ..ObjectReference::default()
    };
    ev.reason = Some("Rotated".into());
    ev.message = Some("rotated".into());
    ev.type_ = Some("Normal".into());
    let created = events
        .create(&PostParams::default(), &ev)
        .await
        .expect("create");
    assert!(created.metadata.name.is_some());
    let listed = events.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].reason.as_deref(), Some("Rotated"));

    use k8s_openapi::api::events::v1::Event as NewEvent;
    let new_events: Api<NewEvent> = Api::default_namespaced(env.client.clone());
    let mut ne = NewEvent::default();
    ne.metadata.name = Some("e1".into());
    ne.reason = Some("Rotated".into());
    new_events
        .create(&PostParams::default(), &ne)
        .await
        .expect("create events.k8s.io");
    assert_eq!(
        new_events
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn external_secrets_as_dynamic_objects() {
    let env = env("ns", &[]).await;
    let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    let ar = ApiResource::from_gvk(&gvk);
    assert_eq!(ar.plural, "externalsecrets");
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "ns", &ar);
    let mut es = DynamicObject::new("db", &ar);
    es.data = json!({"spec": {"refreshInterval": "1h", "target": {"name": "db"}}});
    api.create(&PostParams::default(), &es)
        .await
        .expect("create");

    let patch = json!({"metadata": {"annotations": {"force-sync": "1"}}, "spec": {"refreshInterval": "5m"}});
    let patched = api
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("merge patch");
    assert_eq!(patched.data["spec"]["refreshInterval"], "5m");
    assert_eq!(patched.data["spec"]["target"]["name"], "db");

    let listed = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    let all: Api<DynamicObject> = Api::all_with(env.client.clone(), &ar);
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list all")
            .items
            .len(),
        1
    );

    // CRDs do not take strategic merge patches.
    let (code, reason, _) = api_error(
        api.patch("db", &PatchParams::default(), &Patch::Strategic(&patch))
            .await,
    );
    assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));

    // Custom resources answer a delete with the deleted object.
    let deleted = api
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(deleted.left().is_some());
}

#[tokio::test]
async fn discovery_endpoints() {
    let env = env("ns", &[]).await;
    let c = &env.client;
    let version = c.apiserver_version().await.expect("version");
    assert_eq!(version.git_version, "v1.33.0");
    assert_eq!(
        c.list_core_api_versions().await.expect("/api").versions,
        ["v1"]
    );
    let groups: Vec<String> = c
        .list_api_groups()
        .await
        .expect("/apis")
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert!(groups.contains(&"external-secrets.io".to_string()));
    assert!(groups.contains(&"events.k8s.io".to_string()));
    let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    let (ar, _) = kube::discovery::pinned_kind(c, &gvk)
        .await
        .expect("pinned kind");
    assert_eq!(ar.plural, "externalsecrets");
    let core = c.list_core_api_resources("v1").await.expect("/api/v1");
    assert!(core.resources.iter().any(|r| r.name == "secrets"));
}

#[tokio::test]
async fn unsupported_requests_fail_loudly() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let (code, _, message) = api_error(
        api.create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &secret("dry", &[], &[]),
        )
        .await,
    );
    assert_eq!(
        (code, message.as_str()),
        (400, "dryRun is not supported by kube-server")
    );
    assert_eq!(api_error(api.get("dry").await).0, 404);
    let unknown: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "ns",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Thing")),
    );
    assert_eq!(api_error(unknown.list(&ListParams::default()).await).0, 404);
}

#[test]
fn request_keys_name_method_resource_and_namespace() {
    let key = |m: &str, p: &str| kube_server::request_key(m, p);
    let k = |m: &str, r: &str, ns: &str| Some((m.to_string(), r.to_string(), ns.to_string()));
    assert_eq!(
        key("GET", "/api/v1/namespaces/ns/secrets/acct"),
        k("GET", "secrets", "ns")
    );
    assert_eq!(
        key("GET", "/api/v1/namespaces/ns/secrets?&labelSelector=a%3Db"),
        k("GET", "secrets", "ns")
    );
    assert_eq!(key("GET", "/api/v1/secrets"), k("GET", "secrets", ""));
    assert_eq!(
        key("POST", "/apis/events.k8s.io/v1/namespaces/apps/events"),
        k("POST", "events", "apps")
    );
    assert_eq!(key("GET", "/api"), None, "discovery is no resource");
    assert_eq!(key("GET", "/version"), None);
}

#[tokio::test]
async fn in_process_client_and_shutdown() {
    let env = env("ns", &[]).await;
    let direct = env.server.client();
    let api: Api<Secret> = Api::namespaced(direct, "seeded");
    api.create(&PostParams::default(), &secret("s", &[], &[("k", "v")]))
        .await
        .expect("seed");
    let seen: Api<Secret> = Api::namespaced(env.client.clone(), "seeded");
    assert_eq!(
        value(&seen.get("s").await.expect("get"), "k").as_deref(),
        Some("v")
    );
    assert!(env.server.url().starts_with("http://127.0.0.1:"));
    let addr = env.server.addr();
    env.server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn binary_writes_kubeconfig_and_serves() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-server"))
        .args(["--listen", "127.0.0.1:0", "--forbid-namespace", "locked"])
        .arg("--kubeconfig-out")
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kube-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = lines.next_line().await.expect("read").expect("a line");
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");

    let client = common::client_from(&path).await;
    let api: Api<Secret> = Api::default_namespaced(client.clone());
    assert!(api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .is_empty());
    let locked: Api<Secret> = Api::namespaced(client, "locked");
    assert_eq!(api_error(locked.list(&ListParams::default()).await).0, 403);
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn server_side_apply_creates_and_updates_secrets() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    let pp = PatchParams::apply("step");
    let applied = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ssa"},
        "stringData": {"token": "t1"}
    });
    let created = api
        .patch("ssa", &pp, &Patch::Apply(&applied))
        .await
        .expect("apply creates");
    assert_eq!(value(&created, "token").as_deref(), Some("t1"));
    assert!(created.string_data.is_none());
    assert_eq!(created.type_.as_deref(), Some("Opaque"));

    let again = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ssa"},
        "stringData": {"token": "t2"}
    });
    let updated = api
        .patch("ssa", &pp, &Patch::Apply(&again))
        .await
        .expect("apply updates");
    assert_eq!(value(&updated, "token").as_deref(), Some("t2"));
    let got = api.get("ssa").await.expect("get");
    assert_eq!(value(&got, "token").as_deref(), Some("t2"));
    assert!(got.string_data.is_none());

    let bad = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ssa-tls"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "c"}
    });
    let (code, _, message) = api_error(api.patch("ssa-tls", &pp, &Patch::Apply(&bad)).await);
    assert_eq!(code, 422, "{message}");
    assert_eq!(api_error(api.get("ssa-tls").await).0, 404);
}

#[tokio::test]
async fn lists_are_ordered_and_paginate() {
    let env = env("ns", &[]).await;
    let api: Api<Secret> = Api::default_namespaced(env.client.clone());
    for name in ["e", "b", "d", "a", "c"] {
        api.create(&PostParams::default(), &secret(name, &[("p", "1")], &[]))
            .await
            .expect("create");
    }
    assert_eq!(names(&api, "p=1").await, ["a", "b", "c", "d", "e"]);
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("p=1").limit(2);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.expect("page");
        pages += 1;
        seen.extend(page.items.into_iter().filter_map(|s| s.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(
        (pages, seen),
        (
            3,
            vec!["a", "b", "c", "d", "e"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
}

/// Least-privilege tests attribute each request to a caller by its kubeconfig token and see
/// it as RBAC would: verb, group, resource, namespace.
#[tokio::test]
async fn requests_are_recorded_as_rbac_sees_them_per_caller() {
    let env = env("default", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig-step");
    env.server
        .write_kubeconfig_as(&path, "apps", "system:serviceaccount:secops:step")
        .unwrap();
    let step = common::client_from(&path).await;
    let secrets: Api<Secret> = Api::namespaced(step, "apps");
    secrets
        .create(&PostParams::default(), &secret("s", &[], &[("k", "v")]))
        .await
        .unwrap();
    secrets.get("s").await.unwrap();
    secrets.list(&ListParams::default()).await.unwrap();
    secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    secrets.delete("s", &DeleteParams::default()).await.unwrap();
    let seen: Vec<(String, String)> = env
        .server
        .accesses()
        .into_iter()
        .filter(|a| a.user == "system:serviceaccount:secops:step")
        .map(|a| {
            assert_eq!(
                (a.group.as_str(), a.resource.as_str(), a.namespace.as_str()),
                ("", "secrets", "apps")
            );
            (a.verb, a.resource)
        })
        .collect();
    let verbs: Vec<&str> = seen.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(verbs, vec!["create", "get", "list", "patch", "delete"]);
}

/// Namespaces are created on first use with a uid of their own (NamespaceAutoProvision); the
/// uid stays while the namespace lives and a fresh server (a rebuilt cluster) has new ones.
#[tokio::test]
async fn namespaces_are_provisioned_on_first_use_with_a_stable_uid() {
    use k8s_openapi::api::core::v1::Namespace;
    let first = env("ns", &[]).await;
    let namespaces: Api<Namespace> = Api::all(first.client.clone());
    assert!(namespaces.get_opt("ns").await.expect("get").is_none());
    let api: Api<Secret> = Api::default_namespaced(first.client.clone());
    let pp = PostParams::default();
    api.create(&pp, &secret("a", &[], &[("k", "v")]))
        .await
        .expect("create");
    let uid = namespaces.get("ns").await.expect("get").metadata.uid;
    assert!(uid.as_deref().is_some_and(|u| !u.is_empty()));
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    api.create(&pp, &secret("a", &[], &[("k", "v")]))
        .await
        .expect("re-create");
    assert_eq!(namespaces.get("ns").await.expect("get").metadata.uid, uid);
    let listed = namespaces.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    let fresh = env("ns", &[]).await;
    let other: Api<Secret> = Api::namespaced(fresh.client.clone(), "ns");
    other
        .create(&pp, &secret("a", &[], &[("k", "v")]))
        .await
        .expect("create");
    let again: Api<Namespace> = Api::all(fresh.client.clone());
    assert_ne!(again.get("ns").await.expect("get").metadata.uid, uid);
}
