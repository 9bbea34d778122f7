//! The thin layer in front of kube-fake-client. It adds only what that crate lacks and
//! a real apiserver would enforce: one-at-a-time request handling (its update is a
//! get-then-insert under separate locks), forbidden namespaces, Secret conversion and
//! validation, delete preconditions, resourceVersion conflicts worded like the
//! apiserver, Status bodies with `details`, and TokenReviews of the service account
//! tokens it issues (see `tokens`). Everything else is forwarded as-is.

use crate::accounting::Accounting;
use crate::backend::{is_custom_resource, object_path, Backend};
use crate::namespaces::Namespaces;
use crate::path::ResourcePath;
use crate::secret;
use crate::semantics::{
    applied_new, apply_patch, assign_name, backend_failure, check_namespace, normalize,
    parse_object, patch_kind, stale, to_vec, PatchKind,
};
use crate::status::{self, FieldError, FieldErrorKind, Reply};
use crate::tokens::{self, Caller, Tokens};
use crate::{discovery, pages, query};
use bytes::Bytes;
use http::Method;
use kube_fake_client::gen::discovery as builtin;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::RwLock;

/// One HTTP request as the front layer sees it.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The bearer token, which names the caller (a test gives each identity its own
    /// kubeconfig so requests can be attributed). Only a TokenReview checks it, since
    /// its callers (Vault's Kubernetes auth) must be authenticated to make one.
    pub user: Option<String>,
}

impl Request {
    fn query_param(&self, key: &str) -> Option<String> {
        query::param(self.query.as_deref(), key)
    }

    /// Path and re-encoded query (minus `drop`), as forwarded to kube-fake-client.
    fn backend_path(&self, drop: &[&str]) -> String {
        match self.query.as_deref().map(|q| query::canonical(q, drop)) {
            Some(q) if !q.is_empty() => format!("{}?{q}", self.path),
            _ => self.path.clone(),
        }
    }
}

pub struct Front {
    backend: Backend,
    addr: SocketAddr,
    /// Held for the whole of every API request: the server is linearizable.
    serial: tokio::sync::Mutex<()>,
    forbidden: RwLock<BTreeSet<String>>,
    pub accounting: Accounting,
    /// Namespace objects, created on first use (see `namespaces`).
    pub namespaces: Namespaces,
    /// Service account tokens and the kubeconfig users' tokens.
    pub tokens: Tokens,
}

impl Front {
    pub fn new(backend: Backend, addr: SocketAddr, forbidden: &[String]) -> Self {
        Self {
            backend,
            addr,
            serial: tokio::sync::Mutex::new(()),
            forbidden: RwLock::new(forbidden.iter().cloned().collect()),
            accounting: Accounting::default(),
            namespaces: Namespaces::default(),
            tokens: Tokens::new(&[crate::TOKEN]),
        }
    }

    pub fn set_forbidden(&self, namespace: &str, forbidden: bool) {
        let mut set = self.forbidden.write().unwrap_or_else(|e| e.into_inner());
        if forbidden {
            set.insert(namespace.to_string());
        } else {
            set.remove(namespace);
        }
    }

    pub async fn handle(&self, req: Request) -> Reply {
        let parsed = ResourcePath::parse(&req.path);
        if req.method == Method::GET {
            if let Some(body) = discovery::respond(&req.path, self.addr) {
                return Reply::ok(body);
            }
        }
        let Some(p) = parsed else {
            return status::no_such_resource();
        };
        if p.group == "authentication.k8s.io" && p.version == "v1" && p.resource == "tokenreviews" {
            return self.token_review(&req, &p);
        }
        let Some((kind, namespaced)) = kind_of(&p) else {
            return status::no_such_resource();
        };
        let watch = req
            .query_param("watch")
            .is_some_and(|v| v != "false" && v != "0");
        let Some(verb) = verb(&req.method, &p, watch) else {
            return status::method_not_allowed(
                "the server does not allow this method on the requested resource",
            );
        };
        self.accounting.access(crate::accounting::ApiAccess {
            user: self.tokens.caller_name(req.user.as_deref()),
            verb: verb.to_string(),
            group: p.group.clone(),
            resource: p.resource.clone(),
            // A request for a namespace itself is in that namespace, as the apiserver's
            // RequestInfo has it (a RoleBinding there can grant `get` on it).
            namespace: match Namespaces::addresses(&p) {
                true => p.name.clone().unwrap_or_default(),
                false => p.namespace.clone().unwrap_or_default(),
            },
        });
        if verb == "watch" {
            return status::method_not_allowed("watch is not supported by kube-server");
        }
        if self.is_forbidden(&p, namespaced) {
            return status::forbidden(&p, verb);
        }
        if req.query_param("dryRun").is_some() {
            return status::bad_request("dryRun is not supported by kube-server");
        }
        if let Some(sub) = &p.subresource {
            let has = sub == "status"
                && (is_custom_resource(&p)
                    || builtin::has_subresource(&p.group, &p.version, &kind, sub));
            if !has {
                return status::no_such_resource();
            }
        }

        let _serial = self.serial.lock().await;
        if Namespaces::addresses(&p) {
            return self.namespaces.handle(&req.method, &p, &req.body);
        }
        if let (Some(ns), "create") = (&p.namespace, verb) {
            self.namespaces.provision(ns);
        }
        match verb {
            "create" => self.create(&req, &p, &kind).await,
            "update" => self.update(&req, &p).await,
            "patch" => self.patch(&req, &p).await,
            "delete" => self.delete(&req, &p).await,
            "deletecollection" => self.delete_collection(&req, &p).await,
            "list" => self.list(&req, &p).await,
            _ => {
                self.forward(&req, &p, req.body.to_vec(), p.name.as_deref())
                    .await
            }
        }
    }

    /// TokenReview is create-only and cluster-scoped, and, unlike the rest of this
    /// server, checks its caller's bearer token: authentication comes before RBAC (a
    /// rejected token is 401 and never reaches it; no token is `system:anonymous`, whom
    /// RBAC denies).
    fn token_review(&self, req: &Request, p: &ResourcePath) -> Reply {
        if p.namespace.is_some() || p.name.is_some() {
            return status::no_such_resource();
        }
        if req.method != Method::POST {
            return status::method_not_allowed(
                "the server does not allow this method on the requested resource",
            );
        }
        let caller = self.tokens.authenticate(req.user.as_deref());
        if caller == Caller::Rejected {
            return status::unauthorized();
        }
        self.accounting.access(crate::accounting::ApiAccess {
            user: self.tokens.caller_name(req.user.as_deref()),
            verb: "create".to_string(),
            group: p.group.clone(),
            resource: p.resource.clone(),
            namespace: String::new(),
        });
        if caller == Caller::Anonymous {
            return status::forbidden_as(p, "create", "system:anonymous");
        }
        tokens::create_review(&self.tokens, &req.body)
    }

    fn is_forbidden(&self, p: &ResourcePath, namespaced: bool) -> bool {
        let set = self.forbidden.read().unwrap_or_else(|e| e.into_inner());
        match &p.namespace {
            Some(ns) => set.contains(ns),
            // A forbidden namespace's own object is as forbidden as what it holds.
            None if Namespaces::addresses(p) => p.name.as_ref().is_some_and(|n| set.contains(n)),
            // A LIST across all namespaces would read the forbidden ones too.
            None => namespaced && !set.is_empty(),
        }
    }

    async fn forward(
        &self,
        req: &Request,
        p: &ResourcePath,
        body: Vec<u8>,
        name: Option<&str>,
    ) -> Reply {
        let answer = self
            .backend
            .send(
                &req.method,
                &req.backend_path(&[]),
                req.content_type.as_deref(),
                body,
            )
            .await;
        match answer {
            Ok(answer) => normalize(p, name, answer),
            Err(message) => backend_failure(&message),
        }
    }

    /// The current object, or the reply to give when there is none.
    async fn existing(&self, p: &ResourcePath, name: &str) -> Result<Option<Value>, Reply> {
        self.backend
            .get(p)
            .await
            .map_err(|answer| normalize(p, Some(name), answer))
    }

    /// Lists in key order, as etcd does, and pages with `limit`/`continue`
    /// (kube-fake-client returns hash order, truncates and never continues).
    async fn list(&self, req: &Request, p: &ResourcePath) -> Reply {
        let limit = req
            .query_param("limit")
            .and_then(|l| l.parse::<usize>().ok());
        let after = match req.query_param("continue").filter(|c| !c.is_empty()) {
            None => None,
            Some(token) => match pages::after(&token) {
                Some(key) => Some(key),
                None => return status::bad_request("continue key is not valid"),
            },
        };
        let path = req.backend_path(&["limit", "continue"]);
        let answer = self
            .backend
            .send(&Method::GET, &path, None, Vec::new())
            .await;
        match answer {
            Ok((200, list)) => Reply::ok(pages::page(list, after.as_ref(), limit)),
            Ok(answer) => normalize(p, None, answer),
            Err(message) => backend_failure(&message),
        }
    }

    async fn create(&self, req: &Request, p: &ResourcePath, kind: &str) -> Reply {
        let mut obj = match parse_object(&req.body) {
            Ok(obj) => obj,
            Err(reply) => return reply,
        };
        if let Err(reply) = check_namespace(p, &obj) {
            return reply;
        }
        let name = match assign_name(&mut obj) {
            Ok(name) => name,
            Err(()) => {
                let required = FieldError::new(
                    FieldErrorKind::Required,
                    "metadata.name",
                    "name or generateName is required",
                );
                return status::invalid(&p.group, kind, "", &[required]);
            }
        };
        if p.is_secret() {
            if let Err(reply) = secret::normalize(&mut obj) {
                return reply;
            }
            let errs = secret::validate(&obj);
            if !errs.is_empty() {
                return status::invalid("", "Secret", &name, &errs);
            }
        }
        self.forward(req, p, to_vec(&obj), Some(&name)).await
    }

    async fn update(&self, req: &Request, p: &ResourcePath) -> Reply {
        let name = p.name.clone().unwrap_or_default();
        let mut obj = match parse_object(&req.body) {
            Ok(obj) => obj,
            Err(reply) => return reply,
        };
        if let Err(reply) = check_namespace(p, &obj) {
            return reply;
        }
        let body_name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != name {
            return status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            ));
        }
        let current = match self.existing(p, &name).await {
            Ok(Some(current)) => current,
            Ok(None) => return status::not_found(p, &name),
            Err(reply) => return reply,
        };
        if stale(&obj, &current) {
            return status::conflict_modified(p, &name);
        }
        if p.is_secret() {
            if let Err(reply) = secret::normalize(&mut obj) {
                return reply;
            }
            let errs = secret::validate_update(&obj, &current);
            if !errs.is_empty() {
                return status::invalid("", "Secret", &name, &errs);
            }
        }
        self.forward(req, p, to_vec(&obj), Some(&name)).await
    }

    async fn patch(&self, req: &Request, p: &ResourcePath) -> Reply {
        let name = p.name.clone().unwrap_or_default();
        let patch: Value = match serde_json::from_slice(&req.body) {
            Ok(patch) => patch,
            Err(e) => return status::bad_request(format!("error decoding patch: {e}")),
        };
        let kind = patch_kind(req.content_type.as_deref());
        if kind == PatchKind::Strategic && is_custom_resource(p) {
            return Reply::failure(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                json!({}),
            );
        }
        let current = match self.existing(p, &name).await {
            Ok(current) => current,
            Err(reply) => return reply,
        };
        // What the backend will store, computed with the same json-patch crate it uses.
        let predicted = match &current {
            Some(cur) => apply_patch(cur.clone(), &patch, kind),
            None if kind == PatchKind::Apply => Some(applied_new(patch.clone(), p, &name)),
            None => return status::not_found(p, &name),
        };
        if let (Some(cur), Some(pred)) = (&current, &predicted) {
            if stale(pred, cur) {
                return status::conflict_modified(p, &name);
            }
        }
        let is_secret = p.is_secret() && p.subresource.is_none();
        if let (true, Some(mut pred)) = (is_secret, predicted) {
            if let Err(reply) = secret::normalize(&mut pred) {
                return reply;
            }
            let errs = match &current {
                Some(cur) => secret::validate_update(&pred, cur),
                None => secret::validate(&pred),
            };
            if !errs.is_empty() {
                return status::invalid("", "Secret", &name, &errs);
            }
        }
        let reply = self.forward(req, p, req.body.to_vec(), Some(&name)).await;
        if is_secret && reply.code < 300 && reply.body.get("stringData").is_some() {
            // The backend stored stringData verbatim; fold it into data as the
            // apiserver's conversion would, before anyone can observe it.
            return self.fold_string_data(p, &name, reply.body).await;
        }
        reply
    }

    async fn fold_string_data(&self, p: &ResourcePath, name: &str, mut obj: Value) -> Reply {
        if let Err(reply) = secret::normalize(&mut obj) {
            return reply;
        }
        let answer = self
            .backend
            .send(
                &Method::PUT,
                &object_path(p),
                Some("application/json"),
                to_vec(&obj),
            )
            .await;
        match answer {
            Ok(answer) => normalize(p, Some(name), answer),
            Err(message) => backend_failure(&message),
        }
    }

    async fn delete(&self, req: &Request, p: &ResourcePath) -> Reply {
        let name = p.name.clone().unwrap_or_default();
        let opts: Value = if req.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(opts) => opts,
                Err(e) => return status::bad_request(format!("error decoding DeleteOptions: {e}")),
            }
        };
        if opts["dryRun"].as_array().is_some_and(|d| !d.is_empty()) {
            return status::bad_request("dryRun is not supported by kube-server");
        }
        let pre = &opts["preconditions"];
        let (want_uid, want_rv) = (pre["uid"].as_str(), pre["resourceVersion"].as_str());
        if want_uid.is_some() || want_rv.is_some() {
            let current = match self.existing(p, &name).await {
                Ok(Some(current)) => current,
                Ok(None) => return status::not_found(p, &name),
                Err(reply) => return reply,
            };
            let meta = &current["metadata"];
            let checks = [
                ("UID", want_uid, meta["uid"].as_str()),
                ("ResourceVersion", want_rv, meta["resourceVersion"].as_str()),
            ];
            for (field, want, actual) in checks {
                let actual = actual.unwrap_or_default();
                if let Some(want) = want.filter(|w| *w != actual) {
                    return status::precondition_failed(p, &name, field, want, actual);
                }
            }
        }
        let reply = self.forward(req, p, req.body.to_vec(), Some(&name)).await;
        if reply.code == 200 && !is_custom_resource(p) {
            // Built-in kinds answer a finished delete with a Success Status; custom
            // resources return the deleted object (kube-fake-client always does).
            let uid = reply.body["metadata"]["uid"].as_str();
            return status::deleted(p, &name, uid);
        }
        reply
    }

    async fn delete_collection(&self, req: &Request, p: &ResourcePath) -> Reply {
        // The apiserver answers with the list of what it deleted.
        let listed = self
            .backend
            .send(&Method::GET, &req.backend_path(&[]), None, Vec::new())
            .await;
        let list = match listed {
            Ok((200, list)) => list,
            Ok(answer) => return normalize(p, None, answer),
            Err(message) => return backend_failure(&message),
        };
        let reply = self.forward(req, p, req.body.to_vec(), None).await;
        if reply.code == 200 {
            return Reply::ok(list);
        }
        reply
    }
}

/// `(Kind, namespaced)` for a resource kube-fake-client serves.
fn kind_of(p: &ResourcePath) -> Option<(String, bool)> {
    if is_custom_resource(p) {
        return (p.version == "v1" && p.resource == "externalsecrets")
            .then(|| ("ExternalSecret".to_string(), true));
    }
    let kind = builtin::plural_to_kind(&p.group, &p.version, &p.resource)?;
    let namespaced = builtin::is_namespaced(&p.group, &p.version, kind).unwrap_or(true);
    Some((kind.to_string(), namespaced))
}

fn verb(method: &Method, p: &ResourcePath, watch: bool) -> Option<&'static str> {
    let named = p.name.is_some();
    Some(match (method.as_str(), named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}
