//! Namespace objects. kube-fake-client cannot address them over HTTP (it reads
//! `/api/v1/namespaces/{name}` as the start of a namespaced path), so they are kept here:
//! each with its own uid, created on first use as the `NamespaceAutoProvision` admission
//! plugin does (creating an object in a namespace that does not exist creates it). A
//! rebuilt cluster in the tests is a fresh server, so its namespaces get new uids, while a
//! Secret GitOps re-creates in a living cluster finds its namespace's uid unchanged.

use crate::path::ResourcePath;
use crate::status::{self, Reply};
use http::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Namespaces {
    objects: Mutex<BTreeMap<String, Value>>,
}

impl Namespaces {
    /// Whether `p` addresses core/v1 namespaces themselves (not an object inside one).
    pub fn addresses(p: &ResourcePath) -> bool {
        p.group.is_empty() && p.namespace.is_none() && p.resource == "namespaces"
    }

    /// The namespace, created with a fresh uid if it does not exist yet.
    pub fn provision(&self, name: &str) -> Value {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects
            .entry(name.to_owned())
            .or_insert_with(|| new_namespace(name))
            .clone()
    }

    /// GET, LIST, create and delete of namespaces (no finalization: a delete removes it).
    pub fn handle(&self, method: &Method, p: &ResourcePath, body: &[u8]) -> Reply {
        if p.subresource.is_some() {
            return status::no_such_resource();
        }
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        match (method.as_str(), p.name.as_deref()) {
            ("GET", Some(name)) => match objects.get(name) {
                Some(ns) => Reply::ok(ns.clone()),
                None => status::not_found(p, name),
            },
            ("GET", None) => Reply::ok(json!({
                "kind": "NamespaceList",
                "apiVersion": "v1",
                "metadata": {},
                "items": objects.values().cloned().collect::<Vec<_>>(),
            })),
            ("POST", None) => {
                let obj: Value = serde_json::from_slice(body).unwrap_or_default();
                let Some(name) = obj["metadata"]["name"].as_str().filter(|n| !n.is_empty()) else {
                    return status::bad_request("a Namespace needs metadata.name");
                };
                if objects.contains_key(name) {
                    return status::already_exists(p, name);
                }
                let ns = new_namespace(name);
                objects.insert(name.to_owned(), ns.clone());
                Reply {
                    code: 201,
                    body: ns,
                }
            }
            ("DELETE", Some(name)) => match objects.remove(name) {
                Some(ns) => Reply::ok(ns),
                None => status::not_found(p, name),
            },
            _ => status::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ),
        }
    }
}

fn new_namespace(name: &str) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "resourceVersion": "1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}
