//! A GitOps controller, modelled: it re-applies the manifests "in Git" as Argo CD self-heal
//! and Flux do (re-create a deleted object, write `data` back when it differs), and the
//! Sealed Secrets controller does for the Secret it owns. What it honours, as the real ones:
//! Flux skips an object annotated `kustomize.toolkit.fluxcd.io/reconcile: disabled`; Argo CD
//! with the shipped `ignoreDifferences` (`RespectIgnoreDifferences=true`) leaves the `data`
//! of a Secret labelled `secops.io/state=consumed` alone.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};

use crate::{secret_bytes, Env, SeedSecret};

/// Which controller delivers a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Argo CD with self-heal; `ignore_consumed_data`: the shipped ignoreDifferences example.
    ArgoCd {
        app: String,
        ignore_consumed_data: bool,
    },
    /// Flux's kustomize-controller (a Kustomization `flux-system/<name>`).
    Flux { kustomization: String },
    /// The Sealed Secrets controller, from the SealedSecret `<name>` (same namespace).
    SealedSecret { name: String },
}

/// The manifests Git holds, and the controller that delivers each.
#[derive(Default)]
pub struct GitOps {
    manifests: Vec<(SeedSecret, Delivery)>,
}

impl GitOps {
    /// Puts a manifest in Git, with the marks its controller leaves on what it applies.
    pub fn manage(&mut self, m: SeedSecret, d: Delivery) {
        let m = match &d {
            Delivery::ArgoCd { app, .. } => {
                let id = format!("{app}:/Secret:{}/{}", m.namespace, m.name);
                m.annotate("argocd.argoproj.io/tracking-id", &id)
            }
            Delivery::Flux { kustomization } => m
                .label("kustomize.toolkit.fluxcd.io/name", kustomization)
                .label("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
            Delivery::SealedSecret { .. } => m,
        };
        self.manifests.push((m, d));
    }

    /// The pull request that removes a manifest from Git.
    pub fn remove(&mut self, ns: &str, name: &str) {
        self.manifests
            .retain(|(m, _)| m.namespace != ns || m.name != name);
    }

    /// One sync of every manifest; returns what it changed (`namespace/name` each).
    pub async fn sync(&self, env: &Env) -> Vec<String> {
        let mut changed = Vec::new();
        for (m, d) in &self.manifests {
            let api = env.secrets(&m.namespace);
            let id = format!("{}/{}", m.namespace, m.name);
            let Some(live) = env.secret(&m.namespace, &m.name).await else {
                let mut s = m.build();
                if let Delivery::SealedSecret { name } = d {
                    s.metadata.owner_references = Some(vec![sealed_owner(name)]);
                }
                api.create(&PostParams::default(), &s)
                    .await
                    .expect("re-create");
                changed.push(id);
                continue;
            };
            if skips_data(&live, d) || secret_bytes(&live) == m.bytes() {
                continue;
            }
            let data: serde_json::Map<String, serde_json::Value> = m
                .build()
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, serde_json::to_value(v).unwrap()))
                .collect();
            // A merge patch of `data` only: labels and annotations others added stay, as a
            // three-way apply of a manifest that does not name them leaves them.
            let patch = serde_json::json!({ "data": data });
            api.patch(&m.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("restore data");
            changed.push(id);
        }
        changed
    }
}

fn skips_data(live: &Secret, d: &Delivery) -> bool {
    let consumed = crate::label(live, "secops.io/state") == Some("consumed");
    match d {
        Delivery::Flux { .. } => {
            crate::annotation(live, "kustomize.toolkit.fluxcd.io/reconcile") == Some("disabled")
        }
        Delivery::ArgoCd {
            ignore_consumed_data,
            ..
        } => *ignore_consumed_data && consumed,
        Delivery::SealedSecret { .. } => false,
    }
}

/// The controller owner reference the Sealed Secrets controller sets.
pub fn sealed_owner(name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "bitnami.com/v1alpha1".into(),
        kind: "SealedSecret".into(),
        name: name.into(),
        uid: format!("00000000-0000-0000-0000-{:0>12}", name.len()),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
