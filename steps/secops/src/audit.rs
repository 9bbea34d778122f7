//! The audit trail: one JSON line per action on stdout, never a value.

use std::io::Write;

use serde::Serialize;

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
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
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
    pub source: Option<Source>,
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

/// Writes audit events for one step run.
#[derive(Debug, Clone)]
pub struct Auditor {
    pub step: &'static str,
    pub workflow: Workflow,
    /// `--cluster-name`, on every event of steps that take it.
    pub cluster: Option<String>,
    /// A dry run marks every event and takes the plan's judgements from them.
    pub dry_run: crate::plan::DryRun,
}

impl Auditor {
    pub fn event(
        &self,
        action: &'static str,
        outcome: impl Into<String>,
        source: Option<Source>,
        target: Option<Target>,
        reason: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            time: jiff::Timestamp::now().to_string(),
            step: self.step,
            action,
            outcome: outcome.into(),
            source,
            target,
            workflow: self.workflow.clone(),
            cluster: self.cluster.clone(),
            reason,
            details: None,
            dry_run: self.dry_run.active(),
        }
    }

    /// Prints the event as one line on stdout.
    pub fn emit(&self, ev: &AuditEvent) {
        self.dry_run.from_audit(ev);
        let line = serde_json::to_string(ev).unwrap_or_else(|e| {
            format!(
                r#"{{"step":"{}","outcome":"audit-encoding-failed","reason":"{e}"}}"#,
                self.step
            )
        });
        let mut out = std::io::stdout().lock();
        // A closed stdout must not turn a finished handover into a failure.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
