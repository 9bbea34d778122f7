//! Each step's flags and entry point: flags -> typed config -> handover logic.

use std::collections::BTreeSet;

use clap::{Args, Parser};

use crate::audit::Auditor;
use crate::cli::{
    KubeArgs, OutputArgs, PathArgs, ReferenceArgs, VaultArgs, VaultTarget, WorkflowArgs,
};
use crate::error::Result;
use crate::exit::Exit;
use crate::handover::{mark_consumed, read_bootstrap, write_vault};
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::paths::PathPolicy;
use crate::reference::SecretRef;
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

/// What write-vault and mark-consumed share: one reference, both authorities.
#[derive(Debug, Args)]
pub struct HandoverArgs {
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

/// Validated config for one reference, before any connection is made.
struct Handover {
    reference: SecretRef,
    vault: VaultTarget,
    paths: PathPolicy,
    audit: Auditor,
    outputs: Outputs,
    kube: KubeArgs,
}

impl HandoverArgs {
    /// Checks every flag first, so bad input exits 2 before anything is contacted.
    fn validate(self, step: &'static str, vault_token: Option<String>) -> Result<Handover> {
        Ok(Handover {
            reference: self.reference.reference()?,
            vault: self.vault.config(vault_token)?,
            paths: self.paths.policy()?,
            audit: Auditor {
                step,
                workflow: self.workflow.workflow()?,
            },
            outputs: Outputs::new(self.outputs.outputs_dir),
            kube: self.kube,
        })
    }
}

impl Handover {
    /// Connects to both authorities. Call [`Vault::close`] after, whatever the outcome.
    async fn connect(&self) -> Result<(Kube, Vault)> {
        let kube = Kube::connect(self.kube.config(self.audit.step)).await?;
        let vault = Vault::connect(&self.vault.client).await?;
        Ok((kube, vault))
    }
}

/// Copies one bootstrap Secret into Vault, create-only.
#[derive(Debug, Parser)]
#[command(name = "write-vault", version = VERSION)]
pub struct WriteVaultArgs {
    #[command(flatten)]
    pub handover: HandoverArgs,
}

pub async fn write_vault(a: WriteVaultArgs, vault_token: Option<String>) -> Result<Exit> {
    let h = a.handover.validate("write-vault", vault_token)?;
    let cfg = write_vault::Config {
        reference: h.reference.clone(),
        vault: h.vault.clone(),
        paths: h.paths.clone(),
        workflow: h.audit.workflow.clone(),
    };
    let (kube, vault) = h.connect().await?;
    let res = write_vault::run(&cfg, &kube, &vault, &h.audit, &h.outputs).await;
    vault.close().await;
    res
}

/// Acknowledges a handover by reading Vault back, then marks the bootstrap Secret consumed.
#[derive(Debug, Parser)]
#[command(name = "mark-consumed", version = VERSION)]
pub struct MarkConsumedArgs {
    /// The Vault version write-vault reported (its vault-version output); latest if omitted.
    #[arg(long, value_name = "N")]
    pub vault_version: Option<u64>,
    /// What consumption means: delete the Secret, blank its data (inert), or label it (ignore).
    #[arg(long, env = "SECOPS_CONSUME_MODE", value_enum)]
    pub mode: mark_consumed::Mode,
    #[command(flatten)]
    pub handover: HandoverArgs,
}

pub async fn mark_consumed(a: MarkConsumedArgs, vault_token: Option<String>) -> Result<Exit> {
    let h = a.handover.validate("mark-consumed", vault_token)?;
    let cfg = mark_consumed::Config {
        reference: h.reference.clone(),
        vault_version: a.vault_version.filter(|v| *v > 0),
        mode: a.mode,
        vault: h.vault.clone(),
        paths: h.paths.clone(),
        workflow: h.audit.workflow.clone(),
    };
    let (kube, vault) = h.connect().await?;
    let res = mark_consumed::run(&cfg, &kube, &vault, &h.audit, &h.outputs).await;
    vault.close().await;
    res
}
