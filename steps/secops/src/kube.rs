//! The Kubernetes side: bootstrap Secrets in, consumption marks and Events out.
//!
//! Secrets are converted to [`BootstrapSecret`] as soon as they arrive, so the printable
//! `k8s_openapi` struct with its `data` never outlives the call that fetched it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Event, Namespace, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};

use crate::error::{Error, Result};
use crate::retry::{Failed, RetryPolicy};
use crate::secret::{SecretBytes, SecretData};
use crate::throttle::{Limiter, DEFAULT_DEADLINE};

/// How to reach the Kubernetes API: kubectl's conventions (`--kubeconfig`, `KUBECONFIG`,
/// else in-cluster service account).
#[derive(Debug, Clone)]
pub struct KubeConfig {
    pub kubeconfig: Option<PathBuf>,
    /// Emit a Kubernetes Event per action (the audit trail `kubectl describe` shows).
    pub events: bool,
    /// Reported as the Event's component, e.g. `secops/write-vault`.
    pub component: String,
    pub cluster: Option<String>, // `--cluster-name`, named in every Event's message
    /// Per-request read timeout (a hung API server ends the attempt).
    pub timeout: std::time::Duration,
    /// Retries inside the run; replaces kube's own default retry layer.
    pub retry: RetryPolicy,
    /// The step's one limiter for the Kubernetes API (APF's 429s slow the whole batch).
    pub limiter: std::sync::Arc<Limiter>,
    /// `--dry-run`: every mutating call is refused (a missed gate is a bug, exit 1) and
    /// Events are not recorded.
    pub dry_run: bool,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            kubeconfig: None,
            events: false,
            component: String::new(),
            cluster: None,
            timeout: std::time::Duration::from_secs(30),
            retry: RetryPolicy::default(),
            limiter: std::sync::Arc::new(Limiter::new(
                "Kubernetes",
                std::time::Instant::now() + DEFAULT_DEADLINE,
            )),
            dry_run: false,
        }
    }
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
    pub has_finalizers: bool,
    /// `metadata.creationTimestamp` (audit-authority's grace period).
    pub created: Option<jiff::Timestamp>,
    /// The owner references (e.g. `ExternalSecret` for ESO's targets, `SealedSecret`).
    pub owners: Vec<crate::gitops::owner::OwnerRef>,
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
            owners: crate::gitops::owner::owners(m.owner_references),
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
        let mut config = match &cfg.kubeconfig {
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
        // kube's default layer retries 429/503/504 up to 15 times with waits up to 1000 s, for
        // every method, events included; our own bounded policy replaces it (see `retrying`).
        config.default_retry = false;
        config.read_timeout = Some(cfg.timeout);
        let client = kube::Client::try_from(config)
            .map_err(|e| Error::Usage(format!("cannot build a Kubernetes client: {e}")))?;
        Ok(Kube { client, cfg })
    }

    /// Defence in depth for `--dry-run`: a mutation that reached the client had no gate.
    fn refuse_in_dry_run(&self, verb: &str, object: &str) -> Result<()> {
        if self.cfg.dry_run {
            return Err(crate::plan::missed_gate(&format!(
                "a Kubernetes {verb} of {object}"
            )));
        }
        Ok(())
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Runs one request that is safe to repeat (a read, a resourceVersion-guarded patch, a
    /// precondition-guarded delete, an idempotent merge patch) within the retry budget.
    async fn retrying<T, F, Fut>(&self, verb: &str, object: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
    {
        let what = format!("{verb} {object}");
        self.cfg
            .retry
            .run(&self.cfg.limiter, &what, || {
                let attempt = f();
                async move { attempt.await.map_err(classify) }
            })
            .await
            .map_err(|e| map_err(e, verb, object))
    }

    /// Runs one request that must not be repeated (a create) in its turn from the limiter: a
    /// throttled answer (the API server refused it unhandled) waits and goes again, any other
    /// failure is returned as it is.
    async fn unrepeatable<T, F, Fut>(
        &self,
        what: &str,
        mut f: F,
    ) -> std::result::Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
    {
        let once = RetryPolicy {
            attempts: 1,
            ..self.cfg.retry
        };
        once.run(&self.cfg.limiter, what, || {
            let attempt = f();
            async move {
                attempt.await.map_err(|e| match classify(e) {
                    Failed::Retryable { error, .. } => Failed::Final(error),
                    other => other,
                })
            }
        })
        .await
    }

    /// `None` when the Secret does not exist.
    pub async fn get_secret(&self, ns: &str, name: &str) -> Result<Option<BootstrapSecret>> {
        let api = self.secrets(ns);
        let object = format!("Secret {ns}/{name}");
        match self.retrying("get", &object, || api.get_opt(name)).await? {
            Some(s) => BootstrapSecret::from_k8s(s).map(Some),
            None => Ok(None),
        }
    }

    /// A namespace's uid, `None` when it does not exist (`handover::resurrection` uses it).
    pub async fn namespace_uid(&self, ns: &str) -> Result<Option<String>> {
        let api = Api::<Namespace>::all(self.client.clone());
        let object = format!("Namespace {ns}");
        let got = self.retrying("get", &object, || api.get_opt(ns)).await?;
        Ok(got.and_then(|n| n.metadata.uid))
    }

    /// One page of a label-selected LIST (`limit`/`continue`), so a batch holds one page of
    /// values at a time. Returns the Secrets and the continue token of the next page.
    pub async fn list_secrets_page(
        &self,
        ns: &str,
        selector: &str,
        limit: u32,
        continue_token: Option<&str>,
    ) -> Result<(Vec<BootstrapSecret>, Option<String>)> {
        let mut lp = ListParams::default().labels(selector).limit(limit);
        if let Some(c) = continue_token {
            lp = lp.continue_token(c);
        }
        let api = self.secrets(ns);
        let list = self
            .retrying("list", &format!("Secrets in namespace {ns}"), || {
                api.list(&lp)
            })
            .await?;
        let next = list.metadata.continue_.filter(|c| !c.is_empty());
        let items = list
            .items
            .into_iter()
            .map(BootstrapSecret::from_k8s)
            .collect::<Result<_>>()?;
        Ok((items, next))
    }

    /// One Secret by name through LIST (`fieldSelector=metadata.name=`), for a batch whose
    /// label-selected pages did not hold it: the same answer as a GET, with the `list` verb
    /// the batch already has. `None` when it does not exist.
    pub async fn find_secret(&self, ns: &str, name: &str) -> Result<Option<BootstrapSecret>> {
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        let api = self.secrets(ns);
        let list = self
            .retrying("list", &format!("Secret {ns}/{name}"), || api.list(&lp))
            .await?;
        match list
            .items
            .into_iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
        {
            Some(s) => BootstrapSecret::from_k8s(s).map(Some),
            None => Ok(None),
        }
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
        self.refuse_in_dry_run("create", &format!("Secret {ns}/{name}"))?;
        let api = self.secrets(ns);
        let pp = PostParams::default();
        match self
            .unrepeatable(&format!("create Secret {ns}/{name}"), || {
                api.create(&pp, &s)
            })
            .await
        {
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
        self.refuse_in_dry_run("patch", &format!("Secret {ns}/{name}"))?;
        patch["metadata"]["resourceVersion"] = resource_version.into();
        let api = self.secrets(ns);
        let pp = PatchParams::default();
        let patch = Patch::Merge(&patch);
        // Guarded by resourceVersion: a repeat of a patch that landed is a 409, never a
        // second change.
        let s = self
            .retrying("patch", &format!("Secret {ns}/{name}"), || {
                api.patch(name, &pp, &patch)
            })
            .await?;
        drop(s.data);
        Ok(s.metadata.resource_version.unwrap_or_default())
    }

    /// Deletes only the exact object we checked (uid and resourceVersion preconditions).
    /// `Ok(false)` when it was already gone.
    pub async fn delete_secret(&self, ns: &str, name: &str, uid: &str, rv: &str) -> Result<bool> {
        self.refuse_in_dry_run("delete", &format!("Secret {ns}/{name}"))?;
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: Some(rv.to_owned()),
            }),
            ..DeleteParams::default()
        };
        let api = self.secrets(ns);
        let object = format!("Secret {ns}/{name}");
        // Guarded by uid and resourceVersion: a repeat of a delete that landed is a 404.
        let deleted = self
            .retrying("delete", &object, || async {
                match api.delete(name, &dp).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(deleted)
    }

    /// One LIST of ExternalSecrets in a namespace.
    pub async fn list_external_secrets(&self, ns: &str) -> Result<Vec<ExternalSecretInfo>> {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), ns, &external_secret_resource());
        let lp = ListParams::default();
        let list = self
            .retrying(
                "list",
                &format!("ExternalSecrets in namespace {ns}"),
                || api.list(&lp),
            )
            .await?;
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
        self.refuse_in_dry_run("patch", &format!("ExternalSecret {ns}/{name}"))?;
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), ns, &external_secret_resource());
        let patch = serde_json::json!({ "metadata": { "annotations": { FORCE_SYNC: value } } });
        let pp = PatchParams::default();
        let patch = Patch::Merge(&patch);
        // Setting one annotation to one value: repeating it changes nothing more.
        self.retrying("patch", &format!("ExternalSecret {ns}/{name}"), || {
            api.patch(name, &pp, &patch)
        })
        .await?;
        Ok(())
    }

    /// Records an action on the object. Failure to record is logged, never fatal: the stdout
    /// audit event is the primary trail and the handover itself already happened.
    /// In a dry run no Event is recorded (the plan on stdout is the record).
    pub async fn event(&self, obj: &ObjectIdentity, warning: bool, reason: &str, message: &str) {
        if !self.cfg.events || self.cfg.dry_run {
            return;
        }
        let now = jiff::Timestamp::now();
        let message = crate::fleet::with_cluster(message, self.cfg.cluster.as_deref());
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
            message: Some(message),
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
        let what = format!("create Event for Secret {}/{}", obj.namespace, obj.name);
        let pp = PostParams::default();
        if let Err(e) = self.unrepeatable(&what, || api.create(&pp, &ev)).await {
            tracing::warn!(
                object = %format!("Secret {}/{}", obj.namespace, obj.name),
                error = %e,
                "could not record a Kubernetes Event; the audit event on stdout stands"
            );
        }
    }
}

/// Whether another attempt may succeed: timeouts, throttling (with the Status'
/// `retryAfterSeconds`, which the apiserver sends along with Retry-After), server errors and
/// transport failures. Conflicts are not retried: the object must be read again first.
fn classify(e: kube::Error) -> Failed<kube::Error> {
    match &e {
        kube::Error::Api(s) if matches!(s.code, 408 | 429 | 500 | 502 | 503 | 504) => {
            let retry_after = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| std::time::Duration::from_secs(s.into()));
            // Priority and Fairness (and max-in-flight) answer 429 before handling the
            // request; a 503 that says when to come back is an overloaded server too.
            if s.code == 429 || (s.code == 503 && retry_after.is_some()) {
                return Failed::Throttled {
                    error: e,
                    retry_after,
                };
            }
            Failed::Retryable {
                error: e,
                retry_after,
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            Failed::Retryable {
                error: e,
                retry_after: None,
            }
        }
        _ => Failed::Final(e),
    }
}

/// Maps an API failure to an exit-code class with the next step for the operator.
fn map_err(e: kube::Error, verb: &str, object: &str) -> Error {
    match e {
        kube::Error::Api(s) => {
            let msg = format!("{verb} {object}: {} ({})", s.message, s.code);
            match s.code {
                // The object was replaced (uid precondition) or a create found one: re-running
                // will not change that, a human must look.
                409 if s.reason == "AlreadyExists"
                    || s.message.contains("Precondition failed: UID") =>
                {
                    Error::precondition(
                        object,
                        format!("{verb} refused: {} (409 {})", s.message, s.reason),
                        "the object was replaced or already exists; inspect it before re-running",
                    )
                }
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
                // A patch only follows a read: the object was deleted since (re-run).
                404 if verb == "patch" => {
                    Error::Transient(format!("{msg}: it was deleted since it was read"))
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    fn api(v: serde_json::Value) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn conflicts_are_transient_unless_the_object_was_replaced() {
        let stale = api(serde_json::json!({"code": 409, "reason": "Conflict",
            "message": "Operation cannot be fulfilled on secrets \"db\": the object has been modified"}));
        assert_eq!(
            map_err(stale, "patch", "Secret a/db").exit(),
            Exit::Transient
        );
        let replaced = api(serde_json::json!({"code": 409, "reason": "Conflict",
            "message": "Operation cannot be fulfilled on secrets \"db\": Precondition failed: UID in precondition: a, UID in object meta: b"}));
        assert_eq!(
            map_err(replaced, "delete", "Secret a/db").exit(),
            Exit::Precondition
        );
        let exists =
            api(serde_json::json!({"code": 409, "reason": "AlreadyExists", "message": "x"}));
        assert_eq!(
            map_err(exists, "create", "Secret a/db").exit(),
            Exit::Precondition
        );
        let gone = api(serde_json::json!({"code": 404, "reason": "NotFound", "message": "x"}));
        assert_eq!(
            map_err(gone, "patch", "Secret a/db").exit(),
            Exit::Transient
        );
    }

    #[tokio::test]
    async fn a_dry_run_client_refuses_every_mutation_before_sending_it() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Nothing listens here: a request that went out would be a transport error (exit 4).
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let kube = Kube {
            client: kube::Client::try_from(config).unwrap(),
            cfg: KubeConfig {
                dry_run: true,
                events: true,
                ..KubeConfig::default()
            },
        };
        let gate = |e: Error| {
            assert_eq!(e.exit(), Exit::Internal, "{e}");
            assert!(e.to_string().contains("dry-run gate"), "{e}");
        };
        gate(
            kube.patch_secret("a", "b", "1", serde_json::json!({}))
                .await
                .unwrap_err(),
        );
        gate(kube.delete_secret("a", "b", "u", "1").await.unwrap_err());
        gate(
            kube.create_empty_secret("a", "b", BTreeMap::new(), BTreeMap::new())
                .await
                .unwrap_err(),
        );
        gate(kube.bump_force_sync("a", "b", "x").await.unwrap_err());
        // Events are simply not recorded in a dry run (no request, no error).
        let obj = ObjectIdentity {
            namespace: "a".into(),
            name: "b".into(),
            uid: "u".into(),
        };
        kube.event(&obj, false, "Test", "m").await;
    }

    #[test]
    fn throttling_and_server_errors_are_retried_with_the_servers_hint() {
        let throttled = api(serde_json::json!({"code": 429, "reason": "TooManyRequests",
            "message": "x", "details": {"retryAfterSeconds": 3}}));
        match classify(throttled) {
            Failed::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Some(std::time::Duration::from_secs(3)))
            }
            _ => panic!("429 is throttling"),
        }
        let bare = api(serde_json::json!({"code": 429, "message": "x"}));
        assert!(matches!(
            classify(bare),
            Failed::Throttled {
                retry_after: None,
                ..
            }
        ));
        let overloaded = api(serde_json::json!({"code": 503, "message": "x",
            "details": {"retryAfterSeconds": 1}}));
        assert!(matches!(classify(overloaded), Failed::Throttled { .. }));
        for code in [500, 502, 503, 504] {
            let e = api(serde_json::json!({"code": code, "message": "x"}));
            assert!(matches!(classify(e), Failed::Retryable { .. }), "{code}");
        }
        for code in [400, 403, 404, 409, 422] {
            let e = api(serde_json::json!({"code": code, "message": "x"}));
            assert!(matches!(classify(e), Failed::Final(_)), "{code}");
        }
    }
}
