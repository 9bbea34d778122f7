//! rotate: new values for chosen keys of KV v2 secrets, inside Vault (RFC 5.6).
//!
//! Exactly one new version per rotation id, even if killed between any two requests:
//! 1. read the latest version (V) and its custom_metadata;
//! 2. `secops.io/rotation-id` == id: already done, go on to revocation and refresh;
//! 3. record the intent, `secops.io/rotation-pending = V:salt:fingerprint:id`, where the
//!    fingerprint is a salted SHA-256 of the new values (never the values);
//! 4. write with `cas=V` (a concurrent writer makes this fail: exit 4, nothing half-done);
//! 5. record completion (rotation-id, versions, generators) and clear the intent.
//!
//! A re-run that finds the intent with V+1 present checks the fingerprint: a match means our
//! write landed (finish step 5); otherwise someone else wrote (exit 4).

mod batch;
pub mod generate;
mod protocol;
pub mod retention;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::audit::Workflow;
use crate::cli::VaultTarget;
use crate::error::{Error, Result};
use crate::eso::RefreshReport;
use crate::paths::VaultPath;
use crate::plan::DryRun;
use generate::Generator;
use retention::Retention;

pub use batch::run;

pub const META_ROTATION_ID: &str = "secops.io/rotation-id";
pub const META_ROTATION_PENDING: &str = "secops.io/rotation-pending";
pub const META_ROTATED_AT: &str = "secops.io/rotated-at";
pub const META_ROTATION_VERSIONS: &str = "secops.io/rotation-versions";
pub const META_ROTATION_GENERATORS: &str = "secops.io/rotation-generators";
pub const META_ROTATION_WORKFLOW: &str = "secops.io/rotation-workflow";

#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Vec<VaultPath>,
    pub keys: Vec<(String, Generator)>,
    pub rotation_id: String,
    pub retention: Retention,
    /// Namespaces whose ExternalSecrets are refreshed; `None`: no refresh.
    pub refresh_namespaces: Option<Vec<String>>,
    pub vault: VaultTarget,
    pub workflow: Workflow,
    /// Paths rotated at once (each path's protocol stays sequential).
    pub concurrency: usize,
    /// `--dry-run`: every write below goes through its gate.
    pub dry_run: DryRun,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.paths.is_empty() {
            return Err(Error::Usage(
                "give at least one --path or a --paths-file".into(),
            ));
        }
        if self.keys.is_empty() {
            return Err(Error::Usage(
                "give at least one --key KEY=GENERATOR to rotate".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (k, _) in &self.keys {
            if !seen.insert(k) {
                return Err(Error::Usage(format!("--key {k} is given twice")));
            }
        }
        let id = &self.rotation_id;
        if id.contains("{{") {
            return Err(Error::Usage(format!(
                "the rotation id {id:?} is an unresolved Argo expression; pass the template's \
                 input parameter, not a workflow global"
            )));
        }
        if id.is_empty() || id.len() > 200 || id.chars().any(|c| c.is_control()) {
            return Err(Error::Usage(
                "the rotation id (--rotation-id, else --workflow-uid) must be 1-200 printable characters"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathResult {
    pub path: String,
    /// `rotated`, `already-rotated`, or the failure class.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_version: Option<u64>,
    pub revoked: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn generators_label(keys: &[(String, Generator)]) -> String {
    keys.iter()
        .map(|(k, g)| format!("{k}={}", g.kind()))
        .collect::<Vec<_>>()
        .join(",")
}
