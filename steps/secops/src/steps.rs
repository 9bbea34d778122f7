//! Each step's flags and entry point: flags -> typed config -> handover logic.

use clap::{Args, Parser};

use crate::audit::Auditor;
use crate::batch::Batch;
use crate::cli::{
    ConcurrencyArgs, KubeArgs, OutputArgs, PathArgs, ReferenceArgs, SelectionArgs, VaultArgs,
    VaultTarget, WorkflowArgs,
};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::handover::{mark_consumed, read_bootstrap, write_vault};
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::paths::{PathPolicy, VaultPath};
use crate::reference::{References, SecretRef};
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
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// References per batch in batches.json (for the one-pod-per-batch template).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
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
        selection: a.selection.selection()?,
        paths: a.paths.policy()?,
        batch_size: a.batch_size as usize,
    };
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
    pub concurrency: ConcurrencyArgs,
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

/// Validated config for one reference or a batch, before any connection is made.
struct Handover {
    references: References,
    vault: VaultTarget,
    paths: PathPolicy,
    audit: Auditor,
    outputs: Outputs,
    kube: KubeArgs,
    concurrency: usize,
}

impl HandoverArgs {
    /// Checks every flag first, so bad input exits 2 before anything is contacted.
    fn validate(self, step: &'static str, vault_token: Option<String>) -> Result<Handover> {
        Ok(Handover {
            references: self.reference.references()?,
            vault: self.vault.config(vault_token)?.with_retry(&self.kube.retry),
            paths: self.paths.policy()?,
            audit: Auditor {
                step,
                workflow: self.workflow.workflow()?,
            },
            outputs: Outputs::new(self.outputs.outputs_dir),
            kube: self.kube,
            concurrency: self.concurrency.get(),
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
    let config = |reference: &SecretRef| write_vault::Config {
        reference: reference.clone(),
        vault: h.vault.clone(),
        paths: h.paths.clone(),
        workflow: h.audit.workflow.clone(),
    };
    let (kube, vault) = h.connect().await?;
    let res = match (h.references.batch, h.references.items.as_slice()) {
        (false, [one]) => write_vault::run(&config(one), &kube, &vault, &h.audit, &h.outputs).await,
        (_, many) => {
            let (kube, vault, audit) = (&kube, &vault, &h.audit);
            let results = crate::batch::for_each(many, kube, h.concurrency, |i, fetch| {
                let cfg = config(&many[i]);
                async move { write_vault::handle(&cfg, kube, vault, audit, fetch).await }
            })
            .await;
            let mut batch = Batch::default();
            for (r, res) in many.iter().zip(results) {
                batch.add(r, res);
            }
            batch.finish(&h.outputs)
        }
    };
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
    if h.references.batch && a.vault_version.is_some_and(|v| v > 0) {
        return Err(Error::Usage(
            "--vault-version names one version; a batch acknowledges each path's latest".into(),
        ));
    }
    let config = |reference: &SecretRef| mark_consumed::Config {
        reference: reference.clone(),
        vault_version: a.vault_version.filter(|v| *v > 0),
        mode: a.mode,
        vault: h.vault.clone(),
        paths: h.paths.clone(),
        workflow: h.audit.workflow.clone(),
    };
    let (kube, vault) = h.connect().await?;
    let res = match (h.references.batch, h.references.items.as_slice()) {
        (false, [one]) => {
            mark_consumed::run(&config(one), &kube, &vault, &h.audit, &h.outputs).await
        }
        (_, many) => {
            let (kube, vault, audit) = (&kube, &vault, &h.audit);
            let results = crate::batch::for_each(many, kube, h.concurrency, |i, fetch| {
                let cfg = config(&many[i]);
                async move { mark_consumed::handle(&cfg, kube, vault, audit, fetch).await }
            })
            .await;
            let mut batch = Batch::default();
            for (r, res) in many.iter().zip(results) {
                batch.add(r, res);
            }
            batch.finish(&h.outputs)
        }
    };
    vault.close().await;
    res
}

/// Rotates keys of KV v2 secrets inside Vault, revokes old versions, refreshes consumers.
#[derive(Debug, Parser)]
#[command(name = "rotate", version = VERSION)]
pub struct RotateArgs {
    /// A KV v2 path (under --kv-mount) to rotate; repeatable.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// A JSON list of paths (e.g. a CronWorkflow parameter written to a file).
    #[arg(long, value_name = "FILE")]
    pub paths_file: Option<PathBuf>,
    /// KEY=GENERATOR: password[:length=N][:classes=lower,upper,digit,symbol], hex[:bytes=N],
    /// base64[:bytes=N], uuid, or policy:NAME (Vault password policy). Repeatable.
    #[arg(long = "key", value_name = "KEY=GENERATOR", value_parser = crate::rotation::generate::parse_key_spec, required = true)]
    pub keys: Vec<(String, crate::rotation::generate::Generator)>,
    /// Idempotency key: re-running with it never makes a second version (default: --workflow-uid).
    #[arg(long, env = "SECOPS_ROTATION_ID", value_name = "ID")]
    pub rotation_id: Option<String>,
    /// Keep the newest N versions (the current one counts).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_versions: Option<u64>,
    /// Keep versions younger than this (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub keep_for: Option<std::time::Duration>,
    /// Keep the previous version until the new one is this old, so consumers can refresh.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1h")]
    pub grace: std::time::Duration,
    /// How old versions are revoked.
    #[arg(long, value_enum, default_value = "delete")]
    pub revoke: crate::rotation::retention::Revoke,
    /// Bump `force-sync` on ExternalSecrets (external-secrets.io/v1) in these namespaces that read a
    /// rotated path (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAMESPACES")]
    pub refresh_external_secrets: Option<Vec<String>>,
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn rotate(a: RotateArgs, vault_token: Option<String>) -> Result<Exit> {
    let mut raw = a.paths.clone();
    if let Some(f) = &a.paths_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::Usage(format!("cannot read --paths-file {}: {e}", f.display())))?;
        let list: Vec<String> = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "--paths-file {} is not a JSON list of paths: {e}",
                f.display()
            ))
        })?;
        raw.extend(list);
    }
    let paths = raw
        .iter()
        .map(|p| VaultPath::parse(p).map_err(|e| Error::Usage(format!("path {p:?}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let workflow = a.workflow.workflow()?;
    let vault_target = a.vault.config(vault_token)?.with_retry(&a.kube.retry);
    if vault_target.kv_version != crate::cli::KvVersion::V2 {
        return Err(Error::Usage(
            "rotate needs KV version 2 (versions and check-and-set); --kv-version 1 is not supported".into(),
        ));
    }
    // An empty list (a template's empty parameter) means no refresh.
    let refresh_namespaces = a
        .refresh_external_secrets
        .map(|v| {
            v.into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty());
    if let Some(ns) = &refresh_namespaces {
        validate_namespaces(ns.iter())?;
    }
    let cfg = crate::rotation::Config {
        paths,
        keys: a.keys,
        rotation_id: crate::selection::nonempty(a.rotation_id)
            .unwrap_or_else(|| workflow.uid.clone()),
        retention: crate::rotation::retention::Retention {
            keep_versions: a.keep_versions,
            keep_for: a.keep_for,
            grace: a.grace,
            revoke: a.revoke,
        },
        refresh_namespaces,
        vault: vault_target,
        workflow: workflow.clone(),
        concurrency: a.concurrency.get(),
    };
    cfg.validate()?;
    let audit = Auditor {
        step: "rotate",
        workflow,
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = match &cfg.refresh_namespaces {
        Some(_) => Some(Kube::connect(a.kube.config("rotate")).await?),
        None => None,
    };
    let vault = Vault::connect(&cfg.vault.client).await?;
    let res = crate::rotation::run(&cfg, &vault, kube.as_ref(), &audit, &outputs).await;
    vault.close().await;
    res
}

/// Publishes operator-generated Secrets (label secops.io/class=internal) into Vault.
#[derive(Debug, Parser)]
#[command(name = "push-secret", version = VERSION)]
pub struct PushSecretArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Prefix under the KV mount: secrets go to {prefix}/{namespace}/{name}.
    #[arg(
        long,
        env = "SECOPS_PUSH_PREFIX",
        default_value = "internal",
        value_name = "PATH"
    )]
    pub path_prefix: String,
    #[command(flatten)]
    pub concurrency: ConcurrencyArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn push_secret(a: PushSecretArgs, vault_token: Option<String>) -> Result<Exit> {
    let selection = a.selection.selection()?;
    let paths = PathArgs {
        path_prefix: Some(a.path_prefix.clone()),
    }
    .policy()?;
    let vault_target = a.vault.config(vault_token)?.with_retry(&a.kube.retry);
    if vault_target.kv_version != crate::cli::KvVersion::V2 {
        return Err(Error::Usage(
            "push-secret needs KV version 2 (check-and-set, metadata)".into(),
        ));
    }
    let cfg = crate::push::Config {
        selection,
        paths,
        vault: vault_target,
        workflow: a.workflow.workflow()?,
        concurrency: a.concurrency.get(),
    };
    let audit = Auditor {
        step: "push-secret",
        workflow: cfg.workflow.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = Kube::connect(a.kube.config("push-secret")).await?;
    let vault = Vault::connect(&cfg.vault.client).await?;
    let res = crate::push::run(&cfg, &kube, &vault, &audit, &outputs).await;
    vault.close().await;
    res
}

fn validate_namespaces<'a>(ns: impl Iterator<Item = &'a String>) -> Result<()> {
    let mut any = false;
    for n in ns {
        any = true;
        if !crate::selection::is_dns_label(n) {
            return Err(Error::Usage(format!("{n:?} is not a namespace name")));
        }
    }
    if !any {
        return Err(Error::Usage("give at least one namespace".into()));
    }
    Ok(())
}
