//! The API semantics proper come from kube-fake-client. Its tower service is private,
//! but `kube::Client::send` hands us its raw HTTP responses, error statuses included.

use crate::discovery::EXTERNAL_SECRETS_GROUP;
use crate::path::ResourcePath;
use http_body_util::BodyExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::client::Body;
use serde_json::Value;
use std::borrow::Cow;

/// An in-memory API server reached through kube-fake-client's mock service.
pub struct Backend {
    client: kube::Client,
}

/// A backend answer: status code and JSON body.
pub type Answer = (u16, Value);

impl Backend {
    pub async fn new() -> anyhow::Result<Self> {
        let client = kube_fake_client::ClientBuilder::new()
            .with_resource::<ExternalSecretKind>()
            .build()
            .await?;
        Ok(Self { client })
    }

    /// Sends one request. `Err` carries the message of a failure the mock service
    /// raised instead of answering (it does that for paths and bodies it cannot parse).
    pub async fn send(
        &self,
        method: &http::Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(path_and_query);
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body)).map_err(|e| e.to_string())?;
        let res = self.client.send(req).await.map_err(|e| e.to_string())?;
        let code = res.status().as_u16();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok((code, body))
    }

    /// GETs the object `p` names; `Ok(None)` when it does not exist.
    pub async fn get(&self, p: &ResourcePath) -> Result<Option<Value>, Answer> {
        let path = object_path(p);
        match self.send(&http::Method::GET, &path, None, Vec::new()).await {
            Ok((200, obj)) => Ok(Some(obj)),
            Ok((404, body)) if body["reason"] == "NotFound" => Ok(None),
            Ok(other) => Err(other),
            Err(message) => Err((500, Value::String(message))),
        }
    }
}

/// The path of the object itself (no subresource, no query).
pub fn object_path(p: &ResourcePath) -> String {
    let mut path = if p.group.is_empty() {
        format!("/api/{}", p.version)
    } else {
        format!("/apis/{}/{}", p.group, p.version)
    };
    if let Some(ns) = &p.namespace {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push('/');
    path.push_str(&p.resource);
    if let Some(name) = &p.name {
        path.push('/');
        path.push_str(name);
    }
    path
}

/// Whether kube-fake-client serves `p` from a registered CRD rather than built-in
/// discovery (the apiserver returns the deleted object for those).
pub fn is_custom_resource(p: &ResourcePath) -> bool {
    p.group == EXTERNAL_SECRETS_GROUP
}

/// Registration-only type for the ExternalSecret CRD; objects are served as JSON.
#[derive(Clone, Debug, Default)]
struct ExternalSecretKind {
    metadata: ObjectMeta,
}

impl kube::Resource for ExternalSecretKind {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "ExternalSecret".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        EXTERNAL_SECRETS_GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "externalsecrets".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
