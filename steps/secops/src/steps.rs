//! Each step's flags and entry point: flags -> typed config -> handover logic.

use clap::{Args, Parser};

use crate::audit::Auditor;
use crate::cli::{
    ConcurrencyArgs, KubeArgs, OutputArgs, PathArgs, ReferenceArgs, SelectionArgs, VaultArgs,
    VaultTarget, WorkflowArgs,
};
use std::path::PathBuf;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::fleet::{self, ClusterName};
use crate::handover::{mark_consumed, read_bootstrap, write_vault};
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::paths::{PathPolicy, VaultPath};
use crate::plan::DryRun;
use crate::reference::{References, SecretRef};
use crate::vault::Vault;

mod authority;
mod cluster;
mod gitops;
mod recovery;

pub use authority::{init_authority, unseal, InitAuthorityArgs, SealKind, UnsealArgs};
pub use cluster::ClusterArgs;
pub use gitops::{DiscoveryGitopsArgs, GitopsArgs};
pub use recovery::{snapshot_authority, MaterialFileArgs, RecoveryArgs, SnapshotAuthorityArgs};

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
    /// Exit 3 when a Secret was refused (false: report it, write the valid references and
    /// exit 0; for a discovery in a batch pod after the workflow's own discover step).
    #[arg(long, env = "SECOPS_FAIL_ON_REFUSED", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub fail_on_refused: bool,
    #[command(flatten)]
    pub gitops: DiscoveryGitopsArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub paths: PathArgs,
    /// Needed only when --path-prefix contains {cluster}.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn read_bootstrap(a: ReadBootstrapArgs, _vault_token: Option<String>) -> Result<Exit> {
    let dry_run = a.kube.dry_run.dry_run();
    let cluster = a.cluster.optional()?;
    let cfg = read_bootstrap::Config {
        selection: a.selection.selection()?,
        paths: a.paths.policy(cluster.as_ref())?,
        batch_size: a.batch_size as usize,
        fail_on_refused: a.fail_on_refused,
        dry_run: dry_run.clone(),
        owner_kinds: a.gitops.kinds.gitops_owner_kinds,
        consume_mode: a.gitops.consume_mode,
    };
    let audit = Auditor {
        step: "read-bootstrap",
        workflow: a.workflow.workflow()?,
        cluster: cluster.map(|c| c.to_string()),
        dry_run: dry_run.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = Kube::connect(a.kube.config("read-bootstrap")).await?;
    let res = read_bootstrap::run(&cfg, &kube, &audit, &outputs).await;
    dry_run.finish("read-bootstrap", &outputs, res)
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
    pub cluster: ClusterArgs,
    /// Another cluster's other data at a path is Vault's value for the whole fleet: record this
    /// cluster as sharing the path and consume without writing (docs/fleets.md).
    #[arg(long, env = "SECOPS_FLEET_VAULT_AUTHORITATIVE", default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub fleet_vault_authoritative: bool,
    #[command(flatten)]
    pub gitops: GitopsArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

/// Validated config for one reference or a batch, before any connection is made.
struct Handover {
    references: References,
    owner_kinds: crate::gitops::OwnerKinds,
    vault: VaultTarget,
    paths: PathPolicy,
    cluster: ClusterName,
    audit: Auditor,
    outputs: Outputs,
    kube: KubeArgs,
    concurrency: usize,
    fleet_vault_authoritative: bool,
    dry_run: DryRun,
}

impl HandoverArgs {
    /// Checks every flag first, so bad input exits 2 before anything is contacted.
    fn validate(self, step: &'static str, vault_token: Option<String>) -> Result<Handover> {
        let dry_run = self.kube.dry_run.dry_run();
        let cluster = self.cluster.required()?;
        Ok(Handover {
            references: self.reference.references()?,
            vault: self.vault.target(vault_token, &self.kube, &dry_run)?,
            paths: self.paths.policy(Some(&cluster))?,
            owner_kinds: self.gitops.gitops_owner_kinds,
            audit: Auditor {
                step,
                workflow: self.workflow.workflow()?,
                cluster: Some(cluster.to_string()),
                dry_run: dry_run.clone(),
            },
            cluster,
            dry_run,
            outputs: Outputs::new(self.outputs.outputs_dir),
            kube: self.kube,
            concurrency: self.concurrency.get(),
            fleet_vault_authoritative: self.fleet_vault_authoritative,
        })
    }
}

impl Handover {
    /// Connects to both authorities. Call [`Vault::close`] after, whatever the outcome.
    async fn connect(&self) -> Result<(Kube, Vault)> {
        let mut kube = self.kube.config(self.audit.step);
        kube.cluster = Some(self.cluster.to_string());
        let kube = Kube::connect(kube).await?;
        let vault = Vault::connect(&self.vault.client).await?;
        Ok((kube, vault))
    }

    fn context<'a>(&'a self, kube: &'a Kube, vault: &'a Vault) -> Ctx<'a> {
        Ctx::new(kube, vault, &self.audit, &self.outputs)
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
        owner_kinds: h.owner_kinds.clone(),
        workflow: h.audit.workflow.clone(),
        cluster: h.cluster.clone(),
        fleet_vault_authoritative: h.fleet_vault_authoritative,
        dry_run: h.dry_run.clone(),
    };
    let (kube, vault) = h.connect().await?;
    let cx = &h.context(&kube, &vault);
    let res = match (h.references.batch, h.references.items.as_slice()) {
        (false, [one]) => write_vault::run(&config(one), cx).await,
        (_, many) => {
            write_vault::prefetch(&vault, &h.vault, many).await;
            crate::batch::run_all(many, &kube, h.concurrency, &h.outputs, |i, fetch| {
                let cfg = config(&many[i]);
                async move { write_vault::handle(&cfg, cx, fetch).await }
            })
            .await
        }
    };
    vault.close().await;
    h.dry_run.finish("write-vault", &h.outputs, res)
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
        owner_kinds: h.owner_kinds.clone(),
        workflow: h.audit.workflow.clone(),
        cluster: h.cluster.clone(),
        fleet_vault_authoritative: h.fleet_vault_authoritative,
        dry_run: h.dry_run.clone(),
    };
    let (kube, vault) = h.connect().await?;
    let cx = &h.context(&kube, &vault);
    let res = match (h.references.batch, h.references.items.as_slice()) {
        (false, [one]) => mark_consumed::run(&config(one), cx).await,
        (_, many) => {
            crate::batch::run_all(many, &kube, h.concurrency, &h.outputs, |i, fetch| {
                let cfg = config(&many[i]);
                async move { mark_consumed::handle(&cfg, cx, fetch).await }
            })
            .await
        }
    };
    vault.close().await;
    h.dry_run.finish("mark-consumed", &h.outputs, res)
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
    let dry_run = a.kube.dry_run.dry_run();
    let vault_target = a.vault.target(vault_token, &a.kube, &dry_run)?;
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
        dry_run: dry_run.clone(),
    };
    cfg.validate()?;
    let audit = Auditor {
        step: "rotate",
        workflow,
        cluster: None,
        dry_run: dry_run.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = match &cfg.refresh_namespaces {
        Some(_) => Some(Kube::connect(a.kube.config("rotate")).await?),
        None => None,
    };
    let vault = Vault::connect(&cfg.vault.client).await?;
    let res = crate::rotation::run(&cfg, &vault, kube.as_ref(), &audit, &outputs).await;
    vault.close().await;
    dry_run.finish("rotate", &outputs, res)
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
    pub cluster: ClusterArgs,
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
    let cluster = a.cluster.required()?;
    let paths = PathArgs {
        path_prefix: Some(a.path_prefix.clone()),
    }
    .policy(Some(&cluster))?;
    let dry_run = a.kube.dry_run.dry_run();
    let vault_target = a.vault.target(vault_token, &a.kube, &dry_run)?;
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
        cluster: cluster.clone(),
        concurrency: a.concurrency.get(),
        dry_run: dry_run.clone(),
    };
    let audit = Auditor {
        step: "push-secret",
        workflow: cfg.workflow.clone(),
        cluster: Some(cluster.to_string()),
        dry_run: dry_run.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let mut kube = a.kube.config("push-secret");
    kube.cluster = Some(cluster.to_string());
    let kube = Kube::connect(kube).await?;
    let vault = Vault::connect(&cfg.vault.client).await?;
    let cx = Ctx::new(&kube, &vault, &audit, &outputs);
    let res = crate::push::run(&cfg, &cx).await;
    vault.close().await;
    dry_run.finish("push-secret", &outputs, res)
}

fn validate_namespaces<'a>(ns: impl Iterator<Item = &'a String>) -> Result<()> {
    let mut any = false;
    for n in ns {
        any = true;
        if !crate::names::is_dns_label(n) {
            return Err(Error::Usage(format!("{n:?} is not a namespace name")));
        }
    }
    if !any {
        return Err(Error::Usage("give at least one namespace".into()));
    }
    Ok(())
}

/// Reports every violation of the single-authority guarantees (RFC 5.8). Read-only.
#[derive(Debug, Parser)]
#[command(name = "audit-authority", version = VERSION)]
pub struct AuditAuthorityArgs {
    /// Namespaces bootstrap Secrets may live in (comma-separated); each is checked.
    #[arg(
        long,
        env = "SECOPS_NAMESPACES",
        value_delimiter = ',',
        required = true
    )]
    pub namespaces: Vec<String>,
    /// How long a bootstrap Secret may stay unconsumed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h", value_name = "DURATION")]
    pub grace: std::time::Duration,
    /// Prefix of push-secret's subtree under the KV mount.
    #[arg(
        long,
        env = "SECOPS_PUSH_PREFIX",
        default_value = "internal",
        value_name = "PATH"
    )]
    pub internal_prefix: String,
    /// Compare Secret values with Vault values in memory to find copies not managed by ESO.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub compare_values: bool,
    /// Values shorter than this many bytes are never reported as copies.
    #[arg(long, default_value_t = 8, value_name = "BYTES")]
    pub min_value_bytes: usize,
    /// LIST bootstrap Secrets in all namespaces to find those outside --namespaces. Opt-in:
    /// it needs the right to list every Secret in the cluster.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub cluster_wide: bool,
    /// Secrets per LIST page, i.e. in memory at once (each up to 1 MiB): the memory bound.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=500), value_name = "N")]
    pub page_size: u32,
    /// Exit 3 when violations exist (false: report and exit 0).
    #[arg(long, env = "SECOPS_FAIL_ON_VIOLATIONS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub fail_on_violations: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub paths: PathArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn audit_authority(a: AuditAuthorityArgs, vault_token: Option<String>) -> Result<Exit> {
    let namespaces: Vec<String> = a
        .namespaces
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    validate_namespaces(namespaces.iter())?;
    let cluster = a.cluster.required()?;
    let dry_run = a.kube.dry_run.dry_run();
    let vault_target = a.vault.target(vault_token, &a.kube, &dry_run)?;
    if vault_target.kv_version != crate::cli::KvVersion::V2 {
        return Err(Error::Usage(
            "audit-authority needs KV version 2 (provenance lives in custom_metadata)".into(),
        ));
    }
    let cfg = crate::audit_authority::Config {
        namespaces,
        grace: a.grace,
        mount: vault_target.mount.clone(),
        handover_prefix: a.paths.policy(Some(&cluster))?.prefix,
        internal_prefix: VaultPath::parse(&fleet::substitute(&a.internal_prefix, Some(&cluster))?)
            .map_err(|e| {
                Error::Usage(format!(
                    "--internal-prefix {:?} is not valid: {e}",
                    a.internal_prefix
                ))
            })?,
        compare_values: a.compare_values,
        min_value_bytes: a.min_value_bytes.max(1),
        cluster_wide: a.cluster_wide,
        page_size: a.page_size,
        fail_on_violations: a.fail_on_violations,
        cluster: cluster.clone(),
        dry_run: dry_run.clone(),
    };
    let audit = Auditor {
        step: "audit-authority",
        workflow: a.workflow.workflow()?,
        cluster: Some(cluster.to_string()),
        dry_run: dry_run.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = Kube::connect(a.kube.config("audit-authority")).await?;
    let vault = Vault::connect(&vault_target.client).await?;
    let cx = Ctx::new(&kube, &vault, &audit, &outputs);
    let res = crate::audit_authority::run(&cfg, &cx).await;
    vault.close().await;
    dry_run.finish("audit-authority", &outputs, res)
}
