//! The one identity of a Kubernetes Secret the steps act on: namespace, name, uid and
//! resourceVersion. It is what audit events name as their source and what Kubernetes Events
//! are recorded against; references ([`crate::reference::SecretRef`]) and live Secrets
//! ([`crate::kube::BootstrapSecret`]) give theirs with `identity()`. Never a value.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
}

impl Identity {
    pub fn new(namespace: &str, name: &str, uid: &str, resource_version: &str) -> Self {
        Identity {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            resource_version: resource_version.to_owned(),
        }
    }

    /// `Secret namespace/name`, as errors and logs name it.
    pub fn object(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }
}
