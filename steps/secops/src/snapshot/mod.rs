//! snapshot-authority: a raft snapshot of the runtime authority, taken with its own
//! least-privilege role (`read` on `sys/storage/raft/snapshot` only), verified against the
//! checksums it carries, written atomically under a timestamped name to a directory that
//! outlives the cluster (a PVC) and to an Argo output artifact, the last `keep` kept.
//! The audit line names the file, its size and sha256; never a token.

pub mod store;
pub mod verify;

use std::path::PathBuf;

use crate::audit::Auditor;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::outputs::Outputs;
use crate::plan::{Action, PlanItem};
use crate::vault::Vault;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where snapshots are kept (checked to be a directory before Vault is contacted).
    pub dir: PathBuf,
    /// How many snapshots to keep in `dir`, this one included.
    pub keep: usize,
    /// A copy for Argo's output artifact (the artifact repository keeps it off-cluster).
    pub artifact: Option<PathBuf>,
    pub dry_run: crate::plan::DryRun,
}

/// Checks the flags' files before anything is contacted: bad input is exit 2.
pub fn check(cfg: &Config) -> Result<()> {
    if !cfg.dir.is_dir() {
        return Err(Error::Usage(format!(
            "--snapshot-dir {} is not a directory (mount the snapshot volume there)",
            cfg.dir.display()
        )));
    }
    if cfg.keep == 0 {
        return Err(Error::Usage("--keep must be at least 1".into()));
    }
    Ok(())
}

pub async fn run(cfg: &Config, vault: &Vault, audit: &Auditor, outputs: &Outputs) -> Result<Exit> {
    let snapshot = vault.raft_snapshot().await?;
    let verified = verify::verify(&snapshot).map_err(|e| {
        Error::precondition(
            "Vault raft snapshot",
            format!("the snapshot Vault sent {e}; nothing was stored, earlier snapshots are kept"),
            "run the step again; if it fails again, check Vault's raft storage and logs",
        )
    })?;
    let sha256 = verify::sha256_hex(&snapshot);
    let name = store::file_name(jiff::Timestamp::now());
    let path = cfg.dir.join(&name);
    let (outcome, removed) = if cfg.dry_run.active() {
        cfg.dry_run.record(
            PlanItem::new(Action::WouldWrite, format!("file {}", path.display())).because(format!(
                "a verified raft snapshot ({} bytes, {} members checked); keep the last {}",
                snapshot.len(),
                verified.checked,
                cfg.keep
            )),
        );
        ("would-store", Vec::new())
    } else {
        store::write_atomic(&path, &snapshot)?;
        if let Some(a) = &cfg.artifact {
            store::write_atomic(a, &snapshot)?;
        }
        ("stored", store::prune(&cfg.dir, cfg.keep)?)
    };
    let details = serde_json::json!({
        "file": path.display().to_string(),
        "size": snapshot.len(),
        "sha256": sha256,
        "checked": verified.checked,
        "keep": cfg.keep,
        "removed": removed,
    });
    let mut ev = audit.event("snapshot", outcome, None, None, None);
    ev.details = Some(details.clone());
    audit.emit(&ev);
    outputs.write("outcome", outcome)?;
    outputs.write("snapshot-file", &name)?;
    outputs.write("sha256", &sha256)?;
    outputs.write("size", &snapshot.len().to_string())?;
    outputs.write_json("result.json", &details)?;
    tracing::info!(file = %path.display(), size = snapshot.len(), %sha256, "snapshot {outcome}");
    Ok(Exit::Done)
}
