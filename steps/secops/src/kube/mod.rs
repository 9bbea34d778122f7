//! The Kubernetes side: bootstrap Secrets in, consumption marks and Events out. The only
//! module that uses the kube client: `mod` (the client, Secrets, Namespaces, Events),
//! `secret` (what is kept of a Secret), `external_secrets` (ESO), `classify` (failures).
//!
//! Secrets are converted to [`BootstrapSecret`] as soon as they arrive, so the printable
//! `k8s_openapi` struct with its `data` never outlives the call that fetched it.

mod classify;
mod external_secrets;
mod secret;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Event, Namespace, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::retry::{Failed, RetryPolicy};
use crate::throttle::{Limiter, DEFAULT_DEADLINE};
use classify::{classify, map_err};
pub use external_secrets::{ExternalSecretInfo, FORCE_SYNC};
pub use secret::BootstrapSecret;

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

    /// Records an action on the object. Failure to record is logged, never fatal: the stdout
    /// audit event is the primary trail and the handover itself already happened.
    /// In a dry run no Event is recorded (the plan on stdout is the record).
    pub async fn event(&self, obj: &Identity, warning: bool, reason: &str, message: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

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
        let obj = Identity {
            namespace: "a".into(),
            name: "b".into(),
            uid: "u".into(),
            resource_version: "1".into(),
        };
        kube.event(&obj, false, "Test", "m").await;
    }
}
