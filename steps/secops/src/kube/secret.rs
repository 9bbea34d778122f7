//! What the steps keep of a Secret: its identity, metadata and values that cannot print.
//! The `k8s_openapi` struct is converted here, as soon as it arrives.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::secret::{SecretBytes, SecretData};

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
    pub(super) fn from_k8s(mut s: Secret) -> Result<Self> {
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

    pub fn identity(&self) -> Identity {
        Identity::new(
            &self.namespace,
            &self.name,
            &self.uid,
            &self.resource_version,
        )
    }

    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.get(k).map(String::as_str)
    }

    pub fn annotation(&self, k: &str) -> Option<&str> {
        self.annotations.get(k).map(String::as_str)
    }
}
