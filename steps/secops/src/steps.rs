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
use crate::gitops::flags::{DiscoveryGitopsArgs, GitopsArgs};
use crate::handover::{mark_consumed, read_bootstrap, write_vault};
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::paths::{PathPolicy, VaultPath};
use crate::plan::DryRun;
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
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn read_bootstrap(a: ReadBootstrapArgs, _vault_token: Option<String>) -> Result<Exit> {
    let dry_run = a.kube.dry_run.dry_run();
    let cfg = read_bootstrap::Config {
        selection: a.selection.selection()?,
        paths: a.paths.policy()?,
        batch_size: a.batch_size as usize,
        fail_on_refused: a.fail_on_refused,
        dry_run: dry_run.clone(),
        owner_kinds: a.gitops.kinds.gitops_owner_kinds,
        consume_mode: a.gitops.consume_mode,
    };
    let audit = Auditor {
        step: "read-bootstrap",
        workflow: a.workflow.workflow()?,
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
    audit: Auditor,
    outputs: Outputs,
    kube: KubeArgs,
    concurrency: usize,
    dry_run: DryRun,
}

impl HandoverArgs {
    /// Checks every flag first, so bad input exits 2 before anything is contacted.
    fn validate(self, step: &'static str, vault_token: Option<String>) -> Result<Handover> {
        let dry_run = self.kube.dry_run.dry_run();
        Ok(Handover {
            references: self.reference.references()?,
            vault: self.vault.target(vault_token, &self.kube, &dry_run)?,
            paths: self.paths.policy()?,
            owner_kinds: self.gitops.gitops_owner_kinds,
            audit: Auditor {
                step,
                workflow: self.workflow.workflow()?,
                dry_run: dry_run.clone(),
            },
            dry_run,
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
        owner_kinds: h.owner_kinds.clone(),
        workflow: h.audit.workflow.clone(),
        dry_run: h.dry_run.clone(),
    };
    let (kube, vault) = h.connect().await?;
    let res = match (h.references.batch, h.references.items.as_slice()) {
        (false, [one]) => write_vault::run(&config(one), &kube, &vault, &h.audit, &h.outputs).await,
        (_, many) => {
            write_vault::prefetch(&vault, &h.vault, many).await;
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
        dry_run: h.dry_run.clone(),
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
        crate::selection::validate_namespaces(ns.iter())?;
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
        concurrency: a.concurrency.get(),
        dry_run: dry_run.clone(),
    };
    let audit = Auditor {
        step: "push-secret",
        workflow: cfg.workflow.clone(),
        dry_run: dry_run.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = Kube::connect(a.kube.config("push-secret")).await?;
    let vault = Vault::connect(&cfg.vault.client).await?;
    let res = crate::push::run(&cfg, &kube, &vault, &audit, &outputs).await;
    vault.close().await;
    dry_run.finish("push-secret", &outputs, res)
}

/// Seal kinds for init-authority, as `vault operator init` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SealKind {
    /// Shamir unseal keys (`-key-shares`, `-key-threshold`).
    Shamir,
    /// Auto-unseal (a `seal` stanza in Vault's config): recovery keys instead.
    Auto,
}

/// Initialises Vault if it is not, stores the unseal material in a Kubernetes Secret first,
/// unseals, establishes policies and auth roles, and revokes the root token.
#[derive(Debug, Parser)]
#[command(name = "init-authority", version = VERSION)]
pub struct InitAuthorityArgs {
    /// Shamir unseal keys, or recovery keys for a Vault that auto-unseals.
    #[arg(long, env = "SECOPS_SEAL", value_enum, default_value = "shamir")]
    pub seal: SealKind,
    /// Unseal key shares (shamir).
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub key_shares: u8,
    /// Shares needed to unseal (shamir).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub key_threshold: u8,
    /// Recovery key shares (auto).
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub recovery_shares: u8,
    /// Recovery shares needed (auto).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub recovery_threshold: u8,
    /// An age X25519 recipient (age1...) the stored material is encrypted to; repeatable.
    #[arg(long = "age-recipient", value_name = "AGE1...")]
    pub age_recipients: Vec<String>,
    /// A file of age recipients, one per line ('#' comments); repeatable.
    #[arg(
        long = "age-recipients-file",
        env = "SECOPS_AGE_RECIPIENTS_FILE",
        value_name = "FILE"
    )]
    pub age_recipients_files: Vec<PathBuf>,
    /// Store the unseal keys in plaintext (only without recipients, on purpose).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub plaintext_unseal_keys: bool,
    /// Directory of Vault ACL policies (*.hcl, named after the file) to write.
    #[arg(long, env = "SECOPS_POLICIES_DIR", value_name = "DIR")]
    pub policies_dir: Option<PathBuf>,
    /// Directory of Kubernetes-auth roles (*.json, named after the file) to write.
    #[arg(long, env = "SECOPS_ROLES_DIR", value_name = "DIR")]
    pub roles_dir: Option<PathBuf>,
    /// Auth mount the roles are written under.
    #[arg(
        long,
        env = "SECOPS_VAULT_AUTH_MOUNT",
        default_value = "kubernetes",
        value_name = "MOUNT"
    )]
    pub vault_auth_mount: String,
    /// The API server Vault sends logins' TokenReviews to; default: this pod's cluster
    /// (https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT).
    #[arg(long, env = "SECOPS_KUBERNETES_HOST", value_name = "URL")]
    pub kubernetes_host: Option<String>,
    /// The API server's CA, for a Vault outside the cluster; without it Vault must run in the
    /// cluster and reads its own service account's CA and token (the default).
    #[arg(long, env = "SECOPS_KUBERNETES_CA_FILE", value_name = "FILE", value_parser = crate::cli::path_or_empty)]
    pub kubernetes_ca_file: Option<PathBuf>,
    /// A JWT of a service account allowed to create TokenReviews (system:auth-delegator), for a
    /// Vault outside the cluster; without it each login's own JWT must be allowed to.
    #[arg(long, env = "SECOPS_TOKEN_REVIEWER_JWT_FILE", value_name = "FILE", value_parser = crate::cli::path_or_empty)]
    pub token_reviewer_jwt_file: Option<PathBuf>,
    /// Directory of password policies (*.hcl, named after the file) to write; rotate's
    /// `--key k=policy:NAME` generators use them.
    #[arg(long, env = "SECOPS_PASSWORD_POLICIES_DIR", value_name = "DIR")]
    pub password_policies_dir: Option<PathBuf>,
    /// The KV v2 engine's max_versions (its config); unset leaves Vault's.
    #[arg(long, env = "SECOPS_KV_MAX_VERSIONS", value_name = "N")]
    pub kv_max_versions: Option<u32>,
    /// This step's own Vault role (generated: exactly the declared objects), through which
    /// later runs converge without a root token; empty disables it.
    #[arg(
        long,
        env = "SECOPS_AUTHORITY_ROLE",
        default_value = "secops-authority",
        value_name = "ROLE"
    )]
    pub authority_role: String,
    /// The ServiceAccount the authority role is bound to: this step's own, NAMESPACE/NAME.
    #[arg(
        long,
        env = "SECOPS_AUTHORITY_SERVICE_ACCOUNT",
        default_value = "secops/secops-init-authority",
        value_name = "NAMESPACE/NAME"
    )]
    pub authority_service_account: String,
    /// This pod's ServiceAccount token, to log in as the authority role.
    #[arg(
        long,
        env = "SECOPS_SERVICE_ACCOUNT_TOKEN_FILE",
        default_value = crate::cli::SA_TOKEN_PATH,
        value_name = "FILE"
    )]
    pub service_account_token_file: PathBuf,
    /// Where the steps' KV v2 engine is (enabled when absent).
    #[arg(
        long,
        env = "SECOPS_KV_MOUNT",
        default_value = "secret",
        value_name = "MOUNT"
    )]
    pub kv_mount: String,
    /// An operator token (e.g. from `vault operator generate-root`) to establish policies and
    /// roles on an already initialised Vault; instead of VAULT_TOKEN.
    #[arg(long, env = "VAULT_TOKEN_FILE", value_name = "FILE")]
    pub vault_token_file: Option<PathBuf>,
    /// How long to keep retrying the store of the material after Vault answered init.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m", value_name = "DURATION")]
    pub store_timeout: std::time::Duration,
    /// How long to wait for an auto-unseal Vault to unseal itself after init.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m", value_name = "DURATION")]
    pub unseal_timeout: std::time::Duration,
    #[command(flatten)]
    pub store: crate::cli::AuthorityStoreArgs,
    #[command(flatten)]
    pub vault: crate::cli::VaultServerArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

/// How Vault reaches this cluster's API server: the flag, else the pod's own service address;
/// needed only when roles are written. Files are read now, before anything is contacted.
fn kubernetes_auth(
    a: &InitAuthorityArgs,
    needed: bool,
) -> Result<crate::authority::establish::KubernetesAuth> {
    let host = a
        .kubernetes_host
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(crate::cli::in_cluster_kubernetes_host);
    let Some(host) = host else {
        return if needed {
            Err(Error::Usage(
                "--roles-dir needs the API server Vault reviews logins with: pass \
                 --kubernetes-host (this pod has no KUBERNETES_SERVICE_HOST)"
                    .into(),
            ))
        } else {
            Ok(Default::default())
        };
    };
    url::Url::parse(&host)
        .map_err(|e| Error::Usage(format!("--kubernetes-host {host:?} is not a URL: {e}")))?;
    let read = |flag: &str, file: &Option<PathBuf>| -> Result<Option<String>> {
        match file.as_deref().filter(|p| !p.as_os_str().is_empty()) {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(p)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|e| Error::Usage(format!("cannot read {flag} {}: {e}", p.display()))),
        }
    };
    Ok(crate::authority::establish::KubernetesAuth {
        host,
        ca_pem: read("--kubernetes-ca-file", &a.kubernetes_ca_file)?,
        reviewer_jwt: read("--token-reviewer-jwt-file", &a.token_reviewer_jwt_file)?
            .map(secrecy::SecretString::from),
    })
}

pub async fn init_authority(a: InitAuthorityArgs, vault_token: Option<String>) -> Result<Exit> {
    use crate::authority::establish::{Authority, Grants, Sources};
    use crate::authority::{init, KeyType, Protection};
    use crate::vault::sys::InitRequest;
    let (key_type, request) = match a.seal {
        SealKind::Shamir => {
            check_shares("--key", a.key_shares, a.key_threshold)?;
            (
                KeyType::Shamir,
                InitRequest {
                    secret_shares: Some(a.key_shares),
                    secret_threshold: Some(a.key_threshold),
                    recovery_shares: None,
                    recovery_threshold: None,
                },
            )
        }
        SealKind::Auto => {
            check_shares("--recovery", a.recovery_shares, a.recovery_threshold)?;
            (
                KeyType::Recovery,
                InitRequest {
                    secret_shares: None,
                    secret_threshold: None,
                    recovery_shares: Some(a.recovery_shares),
                    recovery_threshold: Some(a.recovery_threshold),
                },
            )
        }
    };
    crate::paths::VaultPath::parse(&a.vault_auth_mount).map_err(|e| {
        Error::Usage(format!(
            "--vault-auth-mount {:?} is not valid: {e}",
            a.vault_auth_mount
        ))
    })?;
    let operator_token = match (&a.vault_token_file, vault_token) {
        (Some(f), _) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| {
                    Error::Usage(format!(
                        "cannot read --vault-token-file {}: {e}",
                        f.display()
                    ))
                })?
                .trim()
                .to_owned(),
        ),
        (None, t) => t,
    }
    .map(secrecy::SecretString::from);
    let mut grants = Grants::load(
        Sources {
            policies: a.policies_dir.as_deref(),
            roles: a.roles_dir.as_deref(),
            password_policies: a.password_policies_dir.as_deref(),
        },
        &a.vault_auth_mount,
        &a.kv_mount,
        kubernetes_auth(&a, a.roles_dir.is_some())?,
    )?;
    grants.kv_max_versions = a.kv_max_versions;
    let authority_login = if grants.is_empty() || a.authority_role.is_empty() {
        None
    } else {
        let (namespace, service_account) = a
            .authority_service_account
            .split_once('/')
            .filter(|(n, s)| crate::selection::is_dns_label(n) && crate::selection::is_dns_label(s))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--authority-service-account {:?} is not NAMESPACE/NAME",
                    a.authority_service_account
                ))
            })?;
        grants.authority = Some(Authority {
            role: a.authority_role.clone(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        });
        Some(crate::vault::VaultAuth::Kubernetes {
            role: a.authority_role.clone(),
            mount: a.vault_auth_mount.clone(),
            jwt_file: a.service_account_token_file.clone(),
        })
    };
    let cfg = init::Config {
        store: a.store.store()?,
        request,
        key_type,
        protection: Protection::from_flags(
            &a.age_recipients,
            &a.age_recipients_files,
            a.plaintext_unseal_keys,
        )?,
        grants,
        authority_login,
        store_timeout: a.store_timeout,
        unseal_timeout: a.unseal_timeout,
        dry_run: a.kube.dry_run.dry_run(),
    };
    let (audit, vault, kube, outputs) = authority_clients(
        "init-authority",
        &a.vault,
        &a.kube,
        &a.workflow,
        a.outputs,
        &cfg.dry_run,
    )
    .await?;
    let res = init::run(&cfg, &kube, &vault, operator_token, &audit, &outputs).await;
    cfg.dry_run.finish("init-authority", &outputs, res)
}

/// What init-authority and unseal both work with: their audit trail, Vault without a login
/// (they run before any auth method exists), Kubernetes (the unseal material) and outputs.
async fn authority_clients(
    step: &'static str,
    vault: &crate::cli::VaultServerArgs,
    kube: &KubeArgs,
    workflow: &WorkflowArgs,
    outputs: OutputArgs,
    dry_run: &crate::plan::DryRun,
) -> Result<(Auditor, Vault, Kube, Outputs)> {
    let audit = Auditor {
        step,
        workflow: workflow.workflow()?,
        dry_run: dry_run.clone(),
    };
    let mut vault_cfg = vault.config(kube.retry.policy())?;
    vault_cfg.limiter = kube.retry.limiter("Vault");
    vault_cfg.dry_run = dry_run.active();
    let vault = Vault::anonymous(&vault_cfg)?;
    let kube = Kube::connect(kube.config(step)).await?;
    Ok((audit, vault, kube, Outputs::new(outputs.outputs_dir)))
}

/// `SealConfig.Validate`'s rules, checked before anything is contacted.
fn check_shares(flag: &str, shares: u8, threshold: u8) -> Result<()> {
    if threshold > shares {
        return Err(Error::Usage(format!(
            "{flag}-threshold {threshold} is larger than {flag}-shares {shares}"
        )));
    }
    if shares > 1 && threshold == 1 {
        return Err(Error::Usage(format!(
            "{flag}-threshold must be greater than one for multiple shares"
        )));
    }
    Ok(())
}

/// Unseals Vault with the stored material; a no-op when it is unsealed.
#[derive(Debug, Parser)]
#[command(name = "unseal", version = VERSION)]
pub struct UnsealArgs {
    /// age identity file that decrypts the stored material (a mounted Secret, never an argument).
    #[arg(long, env = "SECOPS_AGE_IDENTITY_FILE", value_name = "FILE")]
    pub age_identity_file: Option<PathBuf>,
    #[command(flatten)]
    pub store: crate::cli::AuthorityStoreArgs,
    #[command(flatten)]
    pub vault: crate::cli::VaultServerArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

pub async fn unseal(a: UnsealArgs, _vault_token: Option<String>) -> Result<Exit> {
    let cfg = crate::authority::unseal::Config {
        store: a.store.store()?,
        identity_file: a.age_identity_file,
        dry_run: a.kube.dry_run.dry_run(),
    };
    let (audit, vault, kube, outputs) = authority_clients(
        "unseal",
        &a.vault,
        &a.kube,
        &a.workflow,
        a.outputs,
        &cfg.dry_run,
    )
    .await?;
    let res = crate::authority::unseal::run(&cfg, &kube, &vault, &audit, &outputs).await;
    cfg.dry_run.finish("unseal", &outputs, res)
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
    crate::selection::validate_namespaces(namespaces.iter())?;
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
        handover_prefix: a.paths.policy()?.prefix,
        internal_prefix: VaultPath::parse(&a.internal_prefix).map_err(|e| {
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
        dry_run: dry_run.clone(),
    };
    let audit = Auditor {
        step: "audit-authority",
        workflow: a.workflow.workflow()?,
        dry_run: dry_run.clone(),
    };
    let outputs = Outputs::new(a.outputs.outputs_dir);
    let kube = Kube::connect(a.kube.config("audit-authority")).await?;
    let vault = Vault::connect(&vault_target.client).await?;
    let res = crate::audit_authority::run(&cfg, &kube, &vault, &audit, &outputs).await;
    vault.close().await;
    dry_run.finish("audit-authority", &outputs, res)
}
