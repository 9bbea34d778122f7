//! ESO's ExternalSecrets: which read a path (rotation refreshes them) and the `force-sync`
//! bump that makes ESO refresh now.

use kube::api::{Api, ListParams, Patch, PatchParams};

use super::Kube;
use crate::error::Result;

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

impl Kube {
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
                for (list, key) in [("data", "/remoteRef/key"), ("dataFrom", "/extract/key")] {
                    let items = spec.get(list).and_then(|d| d.as_array());
                    for d in items.into_iter().flatten() {
                        remote_keys.extend(str_at(d, key));
                    }
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
}
