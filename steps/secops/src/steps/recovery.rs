//! The flags of cluster-loss recovery: the `snapshot-authority` step, init-authority's
//! material copy and `--restore-from`, and unseal's `--material-file`.

use std::path::PathBuf;

use clap::{Args, Parser};
use secrecy::SecretString;

use super::VERSION;
use crate::audit::Auditor;
use crate::authority::{init, restore};
use crate::cli::{KubeArgs, OutputArgs, VaultArgs, WorkflowArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::outputs::Outputs;
use crate::vault::Vault;

/// Takes a raft snapshot of Vault with its own least-privilege role, verifies it, keeps the
/// last N in a directory and writes a copy for Argo's output artifact.
#[derive(Debug, Parser)]
#[command(name = "snapshot-authority", version = VERSION)]
pub struct SnapshotAuthorityArgs {
    /// Directory the snapshots are kept in (a volume that outlives the cluster's Vault).
    #[arg(long, env = "SECOPS_SNAPSHOT_DIR", value_name = "DIR")]
    pub snapshot_dir: PathBuf,
    /// How many snapshots to keep in --snapshot-dir, this one included.
    #[arg(long, env = "SECOPS_SNAPSHOT_KEEP", default_value_t = 24, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub keep: u32,
    /// Also write the snapshot here, for an Argo output artifact (the artifact repository
    /// keeps it off the cluster).
    #[arg(long, env = "SECOPS_SNAPSHOT_ARTIFACT", value_name = "FILE")]
    pub artifact_file: Option<PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn snapshot_authority(
    a: SnapshotAuthorityArgs,
    vault_token: Option<String>,
) -> Result<Exit> {
    let dry_run = a.kube.dry_run.dry_run();
    let cfg = crate::snapshot::Config {
        dir: a.snapshot_dir,
        keep: a.keep as usize,
        artifact: a.artifact_file,
        dry_run: dry_run.clone(),
    };
    crate::snapshot::check(&cfg)?;
    let target = a.vault.target(vault_token, &a.kube, &dry_run)?;
    let audit = Auditor {
        step: "snapshot-authority",
        workflow: a.workflow.workflow()?,
        cluster: None,
        dry_run: dry_run.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let vault = Vault::connect(&target.client).await?;
    let res = crate::snapshot::run(&cfg, &vault, &audit, &outputs).await;
    vault.close().await;
    dry_run.finish("snapshot-authority", &outputs, res)
}

/// init-authority's cluster-loss flags.
#[derive(Debug, Clone, Args)]
pub struct RecoveryArgs {
    /// Also write the stored unseal material (age ciphertext only, never plaintext) to this
    /// file, e.g. an Argo output artifact to commit to Git; rewritten on every run.
    #[arg(long, env = "SECOPS_MATERIAL_OUT", value_name = "FILE")]
    pub material_out: Option<PathBuf>,
    /// Re-establish the authority on an uninitialised Vault from this raft snapshot (a file
    /// snapshot-authority wrote), unsealed by the ORIGINAL material.
    #[arg(long, env = "SECOPS_RESTORE_FROM", value_name = "FILE")]
    pub restore_from: Option<PathBuf>,
    /// With --restore-from: the original material, a copy --material-out wrote (else the
    /// unseal Secret's).
    #[arg(long, env = "SECOPS_MATERIAL_FILE", value_name = "FILE")]
    pub material_file: Option<PathBuf>,
    /// With --restore-from: the age identity that decrypts the original material.
    #[arg(long, env = "SECOPS_AGE_IDENTITY_FILE", value_name = "FILE")]
    pub age_identity_file: Option<PathBuf>,
}

/// unseal's material copy.
#[derive(Debug, Clone, Args)]
pub struct MaterialFileArgs {
    /// Read the material from this file (the age ciphertext init-authority's --material-out
    /// wrote) instead of the unseal Secret.
    #[arg(long, env = "SECOPS_MATERIAL_FILE", value_name = "FILE")]
    pub material_file: Option<PathBuf>,
}

/// init-authority: a restore when `--restore-from` is given, else the initialisation; then
/// the material copy.
pub(super) async fn init_or_restore(
    cfg: &init::Config,
    r: &RecoveryArgs,
    cx: &Ctx<'_>,
    operator_token: Option<SecretString>,
) -> Result<Exit> {
    if r.restore_from.is_none() && (r.material_file.is_some() || r.age_identity_file.is_some()) {
        return Err(Error::Usage(
            "--material-file and --age-identity-file are for --restore-from".into(),
        ));
    }
    if r.material_out.is_some() && matches!(cfg.protection, crate::authority::Protection::Plaintext)
    {
        return Err(Error::Usage(
            "--material-out writes age ciphertext only: it cannot be used with --plaintext-unseal-keys"
                .into(),
        ));
    }
    let exit = match &r.restore_from {
        Some(snapshot) => {
            let how = restore::Restore {
                snapshot: snapshot.clone(),
                material_file: r.material_file.clone(),
                identity_file: r.age_identity_file.clone(),
            };
            restore::run(cfg, &how, cx).await?
        }
        None => init::run(cfg, cx, operator_token).await?,
    };
    if let Some(out) = &r.material_out {
        if !cfg.dry_run.active() {
            crate::authority::copy::write_copy(cx.kube, &cfg.store, out).await?;
        }
    }
    Ok(exit)
}
