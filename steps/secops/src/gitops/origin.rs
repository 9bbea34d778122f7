//! Where in Git a Secret comes from, read from the marks its GitOps controller leaves on it:
//! references only (names, ids), never values, so that the handover's outputs can name the
//! manifests a pull request must remove.

use serde::Serialize;

use super::OwnerRef;
use crate::kube::BootstrapSecret;

/// Argo CD's annotation tracking (`<app>:<group>/<kind>:<namespace>/<name>`).
pub const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's label tracking (the default before 3.0): the Application's name.
pub const ARGOCD_INSTANCE: &str = "app.kubernetes.io/instance";
/// Flux's kustomize-controller: the Kustomization that applied the object.
pub const FLUX_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const FLUX_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";

/// The Git origin of one Secret, as far as its marks tell. Empty: nothing says where it
/// came from (applied by hand, or a tool that leaves no mark).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitOrigin {
    /// Argo CD: the tracking id annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argocd_tracking_id: Option<String>,
    /// Argo CD label tracking (or any tool setting the recommended label): the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argocd_instance: Option<String>,
    /// Flux: `namespace/name` of the Kustomization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flux_kustomization: Option<String>,
    /// The controller owner that renders it from Git (`SealedSecret.bitnami.com/<name>`):
    /// its manifest is the one to remove.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl GitOrigin {
    pub fn of(s: &BootstrapSecret, owner: Option<&OwnerRef>) -> Self {
        let flux = s
            .label(FLUX_NAME)
            .map(|name| match s.label(FLUX_NAMESPACE) {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_owned(),
            });
        GitOrigin {
            argocd_tracking_id: s.annotation(ARGOCD_TRACKING_ID).map(str::to_owned),
            argocd_instance: s.label(ARGOCD_INSTANCE).map(str::to_owned),
            flux_kustomization: flux,
            owner: owner.map(|o| format!("{}/{}", o.kind_group(), o.name)),
        }
    }

    /// Nothing known: no GitOps controller left a mark.
    pub fn is_empty(&self) -> bool {
        *self == GitOrigin::default()
    }

    /// One line for messages: which manifest to remove from Git, or `None`.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(o) = &self.owner {
            parts.push(format!("the manifest of {o}"));
        }
        if let Some(t) = &self.argocd_tracking_id {
            parts.push(format!("Argo CD tracking-id {t}"));
        } else if let Some(i) = &self.argocd_instance {
            parts.push(format!("Argo CD Application {i}"));
        }
        if let Some(k) = &self.flux_kustomization {
            parts.push(format!("Flux Kustomization {k}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}
