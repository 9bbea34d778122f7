//! Just enough discovery for kube clients (`/version`, `/api`, `/apis` and the resource
//! lists of the group-versions we serve); kube-fake-client has no HTTP discovery.
//! `authentication.k8s.io/v1` lists only `tokenreviews`, the one resource of it served.

use serde_json::{json, Value};
use std::net::SocketAddr;

/// The ExternalSecret CRD kube-fake-client is told about.
pub const EXTERNAL_SECRETS_GROUP: &str = "external-secrets.io";

/// Responds to a discovery path, or `None` when `path` is not one.
pub fn respond(path: &str, addr: SocketAddr) -> Option<Value> {
    let path = path.trim_end_matches('/');
    let body = match path {
        "/version" => json!({
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0",
            "gitCommit": "kube-server",
            "gitTreeState": "clean",
            "buildDate": "2025-04-23T00:00:00Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}
            ],
        }),
        "/apis" => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                group("authentication.k8s.io"),
                group("events.k8s.io"),
                group(EXTERNAL_SECRETS_GROUP),
            ],
        }),
        "/api/v1" => resource_list(
            "v1",
            &[
                ("secrets", "Secret", &[]),
                ("configmaps", "ConfigMap", &["cm"]),
                ("events", "Event", &["ev"]),
            ],
        ),
        "/apis/authentication.k8s.io/v1" => json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "authentication.k8s.io/v1",
            "resources": [
                {
                    "name": "tokenreviews",
                    "singularName": "tokenreview",
                    "namespaced": false,
                    "kind": "TokenReview",
                    "verbs": ["create"],
                },
            ],
        }),
        "/apis/events.k8s.io/v1" => {
            resource_list("events.k8s.io/v1", &[("events", "Event", &["ev"])])
        }
        "/apis/external-secrets.io/v1" => resource_list(
            "external-secrets.io/v1",
            &[("externalsecrets", "ExternalSecret", &["es"])],
        ),
        _ => return None,
    };
    Some(body)
}

fn group(name: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
}

fn resource_list(group_version: &str, resources: &[(&str, &str, &[&str])]) -> Value {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
    ];
    let resources: Vec<Value> = resources
        .iter()
        .map(|(plural, kind, short)| {
            json!({
                "name": plural,
                "singularName": kind.to_lowercase(),
                "namespaced": true,
                "kind": kind,
                "verbs": verbs,
                "shortNames": short,
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}
