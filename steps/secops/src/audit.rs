//! The audit trail: one JSON line per action on stdout, never a value. What a line says is
//! [`crate::audit_event`]; this module writes them.

pub use crate::audit_event::{AuditEvent, Target, Workflow};
use crate::identity::Identity;

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
        source: Option<Identity>,
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
        crate::console::out([line]);
    }
}
