//! Dry runs (`--dry-run`): a step does every read the real run would do, judges exactly as
//! the real run does, and at each write point records what it would write instead of writing.
//!
//! [`DryRun`] is both the flag (in every step's typed config and in the [`crate::audit::Auditor`])
//! and the recorder of the plan. Write points go through [`DryRun::gate`]: in a real run it
//! runs the write; in a dry run it records a [`PlanItem`] and returns the value the write
//! would have returned, without ever polling the write. Skips and refusals are taken from the
//! audit events the step emits anyway, so the plan's judgements are the real run's.
//! As a second line of defence the Kubernetes and Vault clients refuse every mutating request
//! in a dry run with an internal error (exit 1), so a write point without a gate fails loudly.
//!
//! At the end [`DryRun::finish`] prints one `plan: ...` line per item on stdout (beside the
//! JSON audit lines, which carry `"dryRun": true`) and writes `plan.json` to the outputs.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::outputs::Outputs;

/// What the real run would do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// read-bootstrap would pass a reference on.
    Select,
    /// A new Vault version (or KV v1 data, or provenance metadata) would be written.
    WouldWrite,
    /// A bootstrap Secret would be marked consumed (deleted, blanked or labelled).
    WouldConsume,
    /// A Vault secret would get a new version with new values.
    WouldRotate,
    /// Old Vault versions would be soft-deleted or destroyed.
    WouldRevoke,
    /// An internal Secret would be published to Vault.
    WouldPush,
    /// An ExternalSecret would get its `force-sync` annotation bumped.
    WouldRefresh,
    /// A Kubernetes object would be created.
    WouldCreate,
    /// A Kubernetes object would be patched (annotations, stored material).
    WouldPatch,
    /// Vault would be initialised (`sys/init`).
    WouldInit,
    /// Key shares would be submitted to `sys/unseal`.
    WouldUnseal,
    /// ACL policies and auth roles would be written.
    WouldEstablish,
    /// A token would be revoked.
    WouldRevokeToken,
    /// audit-authority would report this violation (it writes nothing either way).
    Report,
    /// Nothing to do for this object.
    Skip,
    /// The real run refuses it (exit 2 or 3).
    Refuse,
    /// The real run fails on it and is retried or fixed (exit 1, 4 or 5).
    Fail,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Select => "select",
            Action::WouldWrite => "would-write",
            Action::WouldConsume => "would-consume",
            Action::WouldRotate => "would-rotate",
            Action::WouldRevoke => "would-revoke",
            Action::WouldPush => "would-push",
            Action::WouldRefresh => "would-refresh",
            Action::WouldCreate => "would-create",
            Action::WouldPatch => "would-patch",
            Action::WouldInit => "would-init",
            Action::WouldUnseal => "would-unseal",
            Action::WouldEstablish => "would-establish",
            Action::WouldRevokeToken => "would-revoke-token",
            Action::Report => "report",
            Action::Skip => "skip",
            Action::Refuse => "refuse",
            Action::Fail => "fail",
        }
    }
}

/// One line of the plan. Names, paths, versions and reasons only: never a value.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    pub object: String,
    pub action: Action,
    /// `mount/path` in Vault, when the item concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault_path: Option<String>,
    /// The Vault version that would be written, acknowledged or revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PlanItem {
    pub fn new(action: Action, object: impl Into<String>) -> Self {
        PlanItem {
            object: object.into(),
            action,
            vault_path: None,
            version: None,
            reason: None,
        }
    }

    pub fn at(mut self, mount: impl std::fmt::Display, path: impl std::fmt::Display) -> Self {
        self.vault_path = Some(format!("{mount}/{path}"));
        self
    }

    pub fn version(mut self, v: Option<u64>) -> Self {
        self.version = v.filter(|v| *v > 0);
        self
    }

    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The human-readable line printed on stdout.
    pub fn line(&self) -> String {
        let mut s = format!("plan: {} {}", self.action.as_str(), self.object);
        match &self.vault_path {
            Some(p) if self.object != format!("Vault path {p}") => {
                s.push_str(&format!(" -> Vault {p}"))
            }
            _ => {}
        }
        if let Some(v) = self.version {
            s.push_str(&format!(" version {v}"));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(": {r}"));
        }
        s
    }
}

/// The dry-run switch and the plan it collects. Cheap to clone (shared recorder); `off()` in
/// a real run, where every method is a no-op and [`DryRun::gate`] just runs the write.
#[derive(Clone, Default)]
pub struct DryRun(Option<Arc<Mutex<Vec<PlanItem>>>>);

impl std::fmt::Debug for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DryRun({})", self.active())
    }
}

impl DryRun {
    pub fn new(on: bool) -> Self {
        if on {
            DryRun(Some(Arc::default()))
        } else {
            DryRun(None)
        }
    }

    pub fn off() -> Self {
        DryRun(None)
    }

    pub fn active(&self) -> bool {
        self.0.is_some()
    }

    /// Records an item. The same action on the same object and Vault path again (e.g. the
    /// provenance write after the data write) adds its reason to that item instead of a line.
    pub fn record(&self, item: PlanItem) {
        let Some(plan) = &self.0 else { return };
        let mut items = plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(same) = items.iter_mut().rev().find(|i| {
            i.object == item.object && i.action == item.action && i.vault_path == item.vault_path
        }) {
            same.version = same.version.or(item.version);
            same.reason = match (same.reason.take(), item.reason) {
                (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
                (a, b) => a.or(b),
            };
            return;
        }
        items.push(item);
    }

    /// Whether anything was recorded for `object` yet.
    fn has(&self, object: &str) -> bool {
        self.0.as_ref().is_some_and(|p| {
            p.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|i| i.object == object)
        })
    }

    /// A write point. Real run: awaits `write`. Dry run: records `item()` and returns
    /// `planned` (what the write would have returned); `write` is dropped unpolled, so no
    /// request is ever made.
    pub async fn gate<T, F>(
        &self,
        item: impl FnOnce() -> PlanItem,
        planned: T,
        write: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        if self.active() {
            self.record(item());
            return Ok(planned);
        }
        write.await
    }

    /// Turns an audit event the step emits into a plan item where it is a judgement
    /// (selected, skipped, refused, failed, a violation); would-be writes are recorded by
    /// their gates, so those events add nothing.
    pub fn from_audit(&self, ev: &crate::audit_event::AuditEvent) {
        if !self.active() {
            return;
        }
        let object = match (&ev.source, &ev.target, &ev.details) {
            _ if ev.action == "violation" => ev
                .details
                .as_ref()
                .and_then(|d| d.get("object"))
                .and_then(|o| o.as_str())
                .unwrap_or(ev.step)
                .to_owned(),
            (Some(s), _, _) => format!("Secret {}/{}", s.namespace, s.name),
            (None, Some(t), _) => format!("Vault path {}/{}", t.mount, t.path),
            (None, None, _) => ev.step.to_owned(),
        };
        let action = match (ev.action, ev.outcome.as_str()) {
            ("violation", _) => Action::Report,
            (_, "selected") => Action::Select,
            (_, "refused" | "invalid") => Action::Refuse,
            (_, "retry" | "unavailable" | "failed") => Action::Fail,
            (
                _,
                "skipped"
                | "unchanged"
                | "vault-differs"
                | "already-rotated"
                | "already-unsealed"
                | "already-initialized",
            ) => {
                // A skip after a planned write of the same object (e.g. mark-consumed
                // finishing an earlier delete reports `unchanged`) adds nothing.
                if self.has(&object) {
                    return;
                }
                Action::Skip
            }
            _ => return,
        };
        let mut item = PlanItem::new(action, object);
        if let Some(t) = &ev.target {
            item = item.at(&t.mount, &t.path).version(t.version);
        }
        let reason = match (&ev.reason, action) {
            (Some(r), _) => r.clone(),
            (None, Action::Select) => "a reference to it is passed on".to_owned(),
            (None, _) => ev.outcome.clone(),
        };
        self.record(item.because(reason));
    }

    /// The plan so far.
    pub fn items(&self) -> Vec<PlanItem> {
        self.0
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Dry run: prints the plan on stdout and writes `plan.json`, then returns the step's own
    /// result (so the exit code is the real run's). A step-level error no item recorded yet
    /// becomes a `refuse`/`fail` item. Real run: returns `res` untouched.
    pub fn finish(&self, step: &str, outputs: &Outputs, res: Result<Exit>) -> Result<Exit> {
        if !self.active() {
            return res;
        }
        if let Err(e) = &res {
            let judged = self
                .items()
                .iter()
                .any(|i| matches!(i.action, Action::Refuse | Action::Fail));
            if !judged {
                let (action, object) = match e {
                    Error::Precondition { object, .. } => (Action::Refuse, object.clone()),
                    Error::Usage(_) => (Action::Refuse, step.to_owned()),
                    _ => (Action::Fail, step.to_owned()),
                };
                self.record(PlanItem::new(action, object).because(e.to_string()));
            }
        }
        let items = self.items();
        let exit = match &res {
            Ok(x) => *x,
            Err(e) => e.exit(),
        };
        let summary = format!(
            "plan: dry run of {step}: {} item(s); nothing was written (exit {} as the real run)",
            items.len(),
            exit.code()
        );
        crate::console::out(items.iter().map(|i| i.line()).chain([summary]));
        let written = outputs.write_json(
            "plan.json",
            &serde_json::json!({
                "step": step,
                "dryRun": true,
                "exitCode": exit.code(),
                "items": items,
            }),
        );
        match (res, written) {
            (Ok(_), Err(e)) => Err(e),
            (res, _) => res,
        }
    }
}

/// The error a client returns when a dry run reaches a write that has no gate: a bug,
/// reported as one (exit 1) instead of writing.
pub fn missed_gate(what: &str) -> Error {
    Error::Internal(format!(
        "dry run reached {what} without a dry-run gate; the request was not sent (this is a bug, please report it)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gate_records_in_a_dry_run_and_never_polls_the_write() {
        let dry = DryRun::new(true);
        let v = dry
            .gate(
                || {
                    PlanItem::new(Action::WouldWrite, "Secret a/b")
                        .at("secret", "a/b")
                        .version(Some(1))
                },
                7u64,
                async { panic!("the write was polled in a dry run") },
            )
            .await
            .unwrap();
        assert_eq!(v, 7);
        dry.record(
            PlanItem::new(Action::WouldWrite, "Secret a/b")
                .at("secret", "a/b")
                .because("record provenance"),
        );
        let items = dry.items();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(
            items[0].line(),
            "plan: would-write Secret a/b -> Vault secret/a/b version 1: record provenance"
        );
        let real = DryRun::off();
        let v = real
            .gate(|| unreachable!(), 0u64, async { Ok(3u64) })
            .await
            .unwrap();
        assert_eq!(v, 3);
        assert!(real.items().is_empty());
    }

    #[test]
    fn finish_keeps_the_real_runs_result_and_writes_the_plan() {
        let d = tempfile::tempdir().unwrap();
        let outputs = Outputs::new(Some(d.path().to_owned()));
        let dry = DryRun::new(true);
        let res = dry.finish(
            "write-vault",
            &outputs,
            Err(Error::precondition(
                "Secret a/b",
                "is immutable",
                "use another mode",
            )),
        );
        assert_eq!(res.unwrap_err().exit(), Exit::Precondition);
        let plan: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join("plan.json")).unwrap())
                .unwrap();
        assert_eq!(plan["exitCode"], 3);
        assert_eq!(plan["items"][0]["action"], "refuse");
        assert_eq!(plan["items"][0]["object"], "Secret a/b");
    }
}
