//! Each step's flags and entry point: flags -> typed config -> handover logic.

use std::collections::BTreeSet;

use clap::Parser;

use crate::audit::Auditor;
use crate::cli::{KubeArgs, OutputArgs, PathArgs, ReferenceArgs, VaultArgs, WorkflowArgs};
use crate::error::Result;
use crate::exit::Exit;
use crate::handover::{mark_consumed, read_bootstrap, write_vault};
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::vault::Vault;

/// Version and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SECOPS_GIT_REVISION"),
    ")"
);

/// Finds bootstrap Secrets and writes references to them. Reads only.
#[derive(Debug, Parser)]
#[command(name = "read-bootstrap", version = VERSION)]
pub struct ReadBootstrapArgs {
    /// Namespaces bootstrap Secrets may be read from (comma-separated); discovery lists each.
    #[arg(
        long,
        env = "SECOPS_NAMESPACES",
        value_delimiter = ',',
        required = true
    )]
    pub namespaces: Vec<String>,
    /// Select one Secret in this namespace (with --name) instead of discovery.
    #[arg(long, requires = "name")]
    pub namespace: Option<String>,
    /// Name of the one Secret to select (with --namespace).
    #[arg(long, requires = "namespace")]
    pub name: Option<String>,
    /// Extra label selector, ANDed with secops.io/class=bootstrap.
    #[arg(long, conflicts_with = "name")]
    pub selector: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub paths: PathArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn read_bootstrap(a: ReadBootstrapArgs, _vault_token: Option<String>) -> Result<Exit> {
    let cfg = read_bootstrap::Config {
        namespaces: a
            .namespaces
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<BTreeSet<_>>(),
        single: a.namespace.zip(a.name),
        selector: a.selector,
        paths: a.paths.policy()?,
    };
    cfg.validate()?;
    let audit = Auditor {
        step: "read-bootstrap",
        workflow: a.workflow.workflow()?,
    };
    let kube = Kube::connect(a.kube.config("read-bootstrap")).await?;
    read_bootstrap::run(&cfg, &kube, &audit, &Outputs::new(a.outputs.outputs_dir)).await
}

/// Copies one bootstrap Secret into Vault, create-only.
#[derive(Debug, Parser)]
#[command(name = "write-vault", version = VERSION)]
pub struct WriteVaultArgs {
    #[command(flatten)]
    pub reference: ReferenceArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub paths: PathArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn write_vault(a: WriteVaultArgs, vault_token: Option<String>) -> Result<Exit> {
    let cfg = write_vault::Config {
        reference: a.reference.reference()?,
        vault: a.vault.config(vault_token)?,
        paths: a.paths.policy()?,
        workflow: a.workflow.workflow()?,
    };
    let audit = Auditor {
        step: "write-vault",
        workflow: cfg.workflow.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = Kube::connect(a.kube.config("write-vault")).await?;
    let vault = Vault::connect(&cfg.vault.client).await?;
    let res = write_vault::run(&cfg, &kube, &vault, &audit, &outputs).await;
    vault.close().await;
    res
}

/// Acknowledges a handover by reading Vault back, then marks the bootstrap Secret consumed.
#[derive(Debug, Parser)]
#[command(name = "mark-consumed", version = VERSION)]
pub struct MarkConsumedArgs {
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// The Vault version write-vault reported (its vault-version output); latest if omitted.
    #[arg(long, value_name = "N")]
    pub vault_version: Option<u64>,
    /// What consumption means: delete the Secret, blank its data (inert), or label it (ignore).
    #[arg(long, env = "SECOPS_CONSUME_MODE", value_enum)]
    pub mode: mark_consumed::Mode,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub paths: PathArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn mark_consumed(a: MarkConsumedArgs, vault_token: Option<String>) -> Result<Exit> {
    let cfg = mark_consumed::Config {
        reference: a.reference.reference()?,
        vault_version: match a.vault_version {
            Some(0) => None,
            v => v,
        },
        mode: a.mode,
        vault: a.vault.config(vault_token)?,
        paths: a.paths.policy()?,
        workflow: a.workflow.workflow()?,
    };
    let audit = Auditor {
        step: "mark-consumed",
        workflow: cfg.workflow.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = Kube::connect(a.kube.config("mark-consumed")).await?;
    let vault = Vault::connect(&cfg.vault.client).await?;
    let res = mark_consumed::run(&cfg, &kube, &vault, &audit, &outputs).await;
    vault.close().await;
    res
}
