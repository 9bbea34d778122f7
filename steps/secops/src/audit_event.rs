//! What an audit line says: an [`AuditEvent`] and its parts, built only from names, paths,
//! versions and reasons. The plan of a dry run reads them too, so they live apart from
//! [`crate::audit`], which writes them.

use serde::Serialize;

use crate::identity::Identity;
use crate::paths::VaultPath;

/// Who ran the step (Argo passes `{{workflow.name}}` and `{{workflow.uid}}`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Workflow {
    pub name: String,
    pub uid: String,
}

impl Workflow {
    /// `name/uid`, or `manual` when run outside a workflow.
    pub fn label(&self) -> String {
        match (self.name.is_empty(), self.uid.is_empty()) {
            (true, true) => "manual".to_owned(),
            (false, true) => self.name.clone(),
            _ => format!("{}/{}", self.name, self.uid),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub mount: String,
    pub path: VaultPath,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// One audit record. Built only from names, paths, versions and reasons.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub time: String,
    pub step: &'static str,
    pub action: &'static str,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    pub workflow: Workflow,
    /// The cluster the step ran in (`--cluster-name`), when it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Step-specific facts (versions, generator kinds, ids); never values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Set on every event of a `--dry-run`: what it describes was judged, not done.
    #[serde(rename = "dryRun", skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}
