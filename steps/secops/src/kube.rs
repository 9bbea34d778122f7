//! The Kubernetes side: bootstrap Secrets in, consumption marks and Events out.
//!
//! Secrets are converted to [`BootstrapSecret`] as soon as they arrive, so the printable
//! `k8s_openapi` struct with its `data` never outlives the call that fetched it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Event, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};

use crate::error::{Error, Result};
use crate::secret::{SecretBytes, SecretData};

/// How to reach the Kubernetes API: kubectl's conventions (`--kubeconfig`, `KUBECONFIG`,
/// else in-cluster service account).
#[derive(Debug, Clone, Default)]
pub struct KubeConfig {
    pub kubeconfig: Option<PathBuf>,
    /// Emit a Kubernetes Event per action (the audit trail `kubectl describe` shows).
    pub events: bool,
    /// Reported as the Event's component, e.g. `secops/write-vault`.
    pub component: String,
}

/// A Secret as the steps need it: identity, metadata, and values that cannot print.
#[derive(Debug)]
pub struct BootstrapSecret {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub type_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub immutable: bool,
    pub has_owner_references: bool,
    pub has_finalizers: bool,
    /// `metadata.creationTimestamp` (audit-authority's grace period).
    pub created: Option<jiff::Timestamp>,
    /// Kinds of the owner references (e.g. `ExternalSecret` for ESO's targets).
    pub owner_kinds: Vec<String>,
    pub data: SecretData,
}

impl BootstrapSecret {
    fn from_k8s(mut s: Secret) -> Result<Self> {
        let m = std::mem::take(&mut s.metadata);
        let data = s
            .data
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, SecretBytes::new(v.0)))
            .collect();
        let namespace = m.namespace.unwrap_or_default();
        let name = m.name.unwrap_or_default();
        let uid = m.uid.ok_or_else(|| {
            Error::Internal(format!("Secret {namespace}/{name} came back without a uid"))
        })?;
        Ok(BootstrapSecret {
            uid,
            resource_version: m.resource_version.unwrap_or_default(),
            type_: s.type_.unwrap_or_else(|| "Opaque".to_owned()),
            labels: m.labels.unwrap_or_default(),
            annotations: m.annotations.unwrap_or_default(),
            immutable: s.immutable.unwrap_or(false),
            created: m.creation_timestamp.map(|t| t.0),
            owner_kinds: m
                .owner_references
                .iter()
                .flatten()
                .map(|o| o.kind.clone())
                .collect(),
            has_owner_references: m.owner_references.is_some_and(|o| !o.is_empty()),
            has_finalizers: m.finalizers.is_some_and(|f| !f.is_empty()),
            namespace,
            name,
            data,
        })
    }

    pub fn object(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }

    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.get(k).map(String::as_str)
    }

    pub fn annotation(&self, k: &str) -> Option<&str> {
        self.annotations.get(k).map(String::as_str)
    }
}

/// Identity of the object an Event is about.
#[derive(Debug, Clone)]
pub struct ObjectIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The parts of an ExternalSecret (external-secrets.io/v1) rotation cares about.
#[derive(Debug, Clone)]
pub struct ExternalSecretInfo {
    pub namespace: String,
    pub name: String,
    /// `spec.data[].remoteRef.key` and `spec.dataFrom[].extract.key`.
    pub remote_keys: Vec<String>,
    pub refresh_policy: Option<String>,
    pub refresh_interval: Option<String>,
    pub force_sync: Option<String>,
}

/// ESO's annotation that triggers a refresh (documented `kubectl annotate es X force-sync=...`).
pub const FORCE_SYNC: &str = "force-sync";

fn external_secret_resource() -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    }
}

pub struct Kube {
    client: kube::Client,
    cfg: KubeConfig,
}

impl Kube {
    pub async fn connect(cfg: KubeConfig) -> Result<Self> {
        let config = match &cfg.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    Error::Usage(format!("cannot read kubeconfig {}: {e}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| {
                        Error::Usage(format!("kubeconfig {} is not usable: {e}", path.display()))
                    })?
            }
            None => kube::Config::infer().await.map_err(|e| {
                Error::Usage(format!(
                    "no Kubernetes configuration found ({e}); run in-cluster or set KUBECONFIG"
                ))
            })?,
        };
        let client = kube::Client::try_from(config)
            .map_err(|e| Error::Usage(format!("cannot build a Kubernetes client: {e}")))?;
        Ok(Kube { client, cfg })
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// `None` when the Secret does not exist.
    pub async fn get_secret(&self, ns: &str, name: &str) -> Result<Option<BootstrapSecret>> {
        match self.secrets(ns).get_opt(name).await {
            Ok(Some(s)) => BootstrapSecret::from_k8s(s).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(map_err(e, "get", &format!("Secret {ns}/{name}"))),
        }
    }

    /// One LIST per namespace.
    pub async fn list_secrets(&self, ns: &str, selector: &str) -> Result<Vec<BootstrapSecret>> {
        let lp = ListParams::default().labels(selector);
        let list = self
            .secrets(ns)
            .list(&lp)
            .await
            .map_err(|e| map_err(e, "list", &format!("Secrets in namespace {ns}")))?;
        list.items
            .into_iter()
            .map(BootstrapSecret::from_k8s)
            .collect()
    }

    /// One LIST across all namespaces (audit-authority: bootstrap Secrets where none may be).
    pub async fn list_secrets_all_namespaces(
        &self,
        selector: &str,
    ) -> Result<Vec<BootstrapSecret>> {
        let lp = ListParams::default().labels(selector);
        let list = Api::<Secret>::all(self.client.clone())
            .list(&lp)
            .await
            .map_err(|e| map_err(e, "list", "Secrets in all namespaces"))?;
        list.items
            .into_iter()
            .map(BootstrapSecret::from_k8s)
            .collect()
    }

    /// Creates an empty Secret, create-only. `Ok(false)` when one of that name exists.
    pub async fn create_empty_secret(
        &self,
        ns: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Result<bool> {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(ns.to_owned()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            ..Secret::default()
        };
        match self.secrets(ns).create(&PostParams::default(), &s).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(map_err(e, "create", &format!("Secret {ns}/{name}"))),
        }
    }

    /// JSON merge patch guarded by `metadata.resourceVersion`: a concurrent change is a 409.
    /// Returns the new resourceVersion.
    pub async fn patch_secret(
        &self,
        ns: &str,
        name: &str,
        resource_version: &str,
        mut patch: serde_json::Value,
    ) -> Result<String> {
        patch["metadata"]["resourceVersion"] = resource_version.into();
        let s = self
            .secrets(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| map_err(e, "patch", &format!("Secret {ns}/{name}")))?;
        drop(s.data);
        Ok(s.metadata.resource_version.unwrap_or_default())
    }

    /// Deletes only the exact object we checked (uid and resourceVersion preconditions).
    /// `Ok(false)` when it was already gone.
    pub async fn delete_secret(&self, ns: &str, name: &str, uid: &str, rv: &str) -> Result<bool> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: Some(rv.to_owned()),
            }),
            ..DeleteParams::default()
        };
        match self.secrets(ns).delete(name, &dp).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(map_err(e, "delete", &format!("Secret {ns}/{name}"))),
        }
    }

    /// One LIST of ExternalSecrets in a namespace.
    pub async fn list_external_secrets(&self, ns: &str) -> Result<Vec<ExternalSecretInfo>> {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), ns, &external_secret_resource());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| map_err(e, "list", &format!("ExternalSecrets in namespace {ns}")))?;
        Ok(list
            .items
            .into_iter()
            .map(|o| {
                let spec = o.data.get("spec").cloned().unwrap_or_default();
                let str_at = |v: &serde_json::Value, p: &str| {
                    v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned)
                };
                let mut remote_keys = Vec::new();
                for d in spec
                    .get("data")
                    .and_then(|d| d.as_array())
                    .into_iter()
                    .flatten()
                {
                    remote_keys.extend(str_at(d, "/remoteRef/key"));
                }
                for d in spec
                    .get("dataFrom")
                    .and_then(|d| d.as_array())
                    .into_iter()
                    .flatten()
                {
                    remote_keys.extend(str_at(d, "/extract/key"));
                }
                ExternalSecretInfo {
                    namespace: ns.to_owned(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                    remote_keys,
                    refresh_policy: str_at(&spec, "/refreshPolicy"),
                    refresh_interval: str_at(&spec, "/refreshInterval"),
                    force_sync: o
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(FORCE_SYNC).cloned()),
                }
            })
            .collect())
    }

    /// Sets ESO's `force-sync` annotation so it refreshes now instead of at its next interval.
    pub async fn bump_force_sync(&self, ns: &str, name: &str, value: &str) -> Result<()> {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), ns, &external_secret_resource());
        let patch = serde_json::json!({ "metadata": { "annotations": { FORCE_SYNC: value } } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| map_err(e, "patch", &format!("ExternalSecret {ns}/{name}")))?;
        Ok(())
    }

    /// Records an action on the object. Failure to record is logged, never fatal: the stdout
    /// audit event is the primary trail and the handover itself already happened.
    pub async fn event(&self, obj: &ObjectIdentity, warning: bool, reason: &str, message: &str) {
        if !self.cfg.events {
            return;
        }
        let now = jiff::Timestamp::now();
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", obj.name)),
                namespace: Some(obj.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                namespace: Some(obj.namespace.clone()),
                name: Some(obj.name.clone()),
                uid: Some(obj.uid.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some(self.cfg.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.cfg.component.clone()),
            reporting_instance: Some(self.cfg.component.clone()),
            action: Some(reason.into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &obj.namespace);
        // Events carry a generated name; the API server fills it in.
        let mut ev = ev;
        ev.metadata.name = None;
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::warn!(
                object = %format!("Secret {}/{}", obj.namespace, obj.name),
                error = %e,
                "could not record a Kubernetes Event; the audit event on stdout stands"
            );
        }
    }
}

/// Maps an API failure to an exit-code class with the next step for the operator.
fn map_err(e: kube::Error, verb: &str, object: &str) -> Error {
    match e {
        kube::Error::Api(s) => {
            let msg = format!("{verb} {object}: {} ({})", s.message, s.code);
            match s.code {
                409 => Error::Transient(format!("{msg}: it changed since it was read")),
                403 => Error::precondition(
                    object,
                    format!("forbidden to {verb} ({})", s.message),
                    "grant the step's ServiceAccount this verb or check --namespaces",
                ),
                401 => Error::precondition(
                    object,
                    "the Kubernetes API rejected our credentials",
                    "check the kubeconfig or the service-account token",
                ),
                404 => Error::precondition(object, "not found", "check the name and namespace"),
                400 | 422 => Error::precondition(
                    object,
                    format!("the API server refused the {verb}: {}", s.message),
                    "inspect the object; this step will not change it",
                ),
                408 | 429 | 500..=599 => Error::Transient(msg),
                _ => Error::Internal(msg),
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            Error::Transient(format!("{verb} {object}: Kubernetes API unreachable: {e}"))
        }
        other => Error::Internal(format!("{verb} {object}: {other}")),
    }
}
