//! The flags and entry points of the steps that stand up and unseal Vault: init-authority
//! and unseal. They run before any auth method exists, so they log in with no role.

use clap::Parser;
use std::path::PathBuf;

use super::recovery::{self, MaterialFileArgs, RecoveryArgs};
use super::VERSION;
use crate::audit::Auditor;
use crate::cli::{KubeArgs, OutputArgs, WorkflowArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kube::Kube;
use crate::outputs::Outputs;
use crate::vault::Vault;

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
    pub recovery: RecoveryArgs,
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
            crate::vault::sys::check_shares("--key", a.key_shares, a.key_threshold)?;
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
            crate::vault::sys::check_shares("--recovery", a.recovery_shares, a.recovery_threshold)?;
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
            .filter(|(n, s)| crate::names::is_dns_label(n) && crate::names::is_dns_label(s))
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
    let (r, token) = (&a.recovery, operator_token);
    let cx = Ctx::new(&kube, &vault, &audit, &outputs);
    let res = recovery::init_or_restore(&cfg, r, &cx, token).await;
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
        cluster: None,
        dry_run: dry_run.clone(),
    };
    let mut vault_cfg = vault.config(kube.retry.policy())?;
    vault_cfg.limiter = kube.retry.limiter("Vault");
    vault_cfg.dry_run = dry_run.active();
    let vault = Vault::anonymous(&vault_cfg)?;
    let kube = Kube::connect(kube.config(step)).await?;
    Ok((audit, vault, kube, Outputs::new(outputs.outputs_dir)))
}

/// Unseals Vault with the stored material; a no-op when it is unsealed.
#[derive(Debug, Parser)]
#[command(name = "unseal", version = VERSION)]
pub struct UnsealArgs {
    /// age identity file that decrypts the stored material (a mounted Secret, never an argument).
    #[arg(long, env = "SECOPS_AGE_IDENTITY_FILE", value_name = "FILE")]
    pub age_identity_file: Option<PathBuf>,
    #[command(flatten)]
    pub material: MaterialFileArgs,
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
        material_file: a.material.material_file,
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
    let cx = Ctx::new(&kube, &vault, &audit, &outputs);
    let res = crate::authority::unseal::run(&cfg, &cx).await;
    cfg.dry_run.finish("unseal", &outputs, res)
}
