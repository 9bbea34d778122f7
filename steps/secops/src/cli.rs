//! Command-line flags shared by the steps, with the Vault CLI's and kubectl's environment
//! fallbacks. This is the only place that reads the environment; everything below gets typed
//! config structs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use crate::audit::Workflow;
use crate::error::{Error, Result};
use crate::kube::KubeConfig;
use crate::paths::{PathPolicy, VaultPath};
use crate::retry::RetryPolicy;
use crate::throttle::{Limiter, DEFAULT_DEADLINE};
use crate::vault::{VaultAuth, VaultConfig};

pub const SA_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Kubeconfig file. Without it: KUBECONFIG, then ~/.kube/config, then the in-cluster
    /// service account (kubectl's order).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Record a Kubernetes Event on each Secret acted on.
    #[arg(long, env = "SECOPS_KUBE_EVENTS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub kube_events: bool,
    /// Per-request timeout for the Kubernetes API, in seconds.
    #[arg(long, env = "SECOPS_KUBE_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECONDS")]
    pub kube_timeout: u64,
    /// Every step has Kubernetes flags, so the retry budget (for both APIs) lives here.
    #[command(flatten)]
    pub retry: RetryArgs,
    /// ... and so does the dry-run switch.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
}

/// `--dry-run`: print the plan, write nothing anywhere (see `plan`).
#[derive(Debug, Clone, Args)]
pub struct DryRunArgs {
    /// Print the plan (what would be written, consumed, rotated or revoked, and why anything
    /// would be skipped or refused) and write nothing to Kubernetes or Vault; the exit code is
    /// the real run's. `--dry-run` alone means true.
    #[arg(long = "dry-run", env = "SECOPS_DRY_RUN", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub dry_run: bool,
}

impl DryRunArgs {
    /// The switch and plan recorder shared by the step's config, auditor and clients.
    pub fn dry_run(&self) -> crate::plan::DryRun {
        crate::plan::DryRun::new(self.dry_run)
    }
}

impl KubeArgs {
    pub fn config(&self, step: &str) -> KubeConfig {
        KubeConfig {
            dry_run: self.dry_run.dry_run,
            kubeconfig: self.kubeconfig.clone(),
            events: self.kube_events,
            component: format!("secops/{step}"),
            cluster: None,
            timeout: Duration::from_secs(self.kube_timeout),
            retry: self.retry.policy(),
            limiter: self.retry.limiter("Kubernetes"),
        }
    }
}

/// Retries inside the run, for requests that are safe to repeat (see ARCHITECTURE.md).
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// Attempts per request, the first included (1: no retry inside the run).
    #[arg(long, env = "SECOPS_RETRY_ATTEMPTS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20), value_name = "N")]
    pub retry_attempts: u32,
    /// First backoff wait; doubles per attempt, with jitter (e.g. 250ms).
    #[arg(long, env = "SECOPS_RETRY_BASE_DELAY", default_value = "250ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retry_base_delay: Duration,
    /// Longest single wait, a server's Retry-After included; a longer Retry-After ends the
    /// run with exit 4 (Argo retries later).
    #[arg(long, env = "SECOPS_RETRY_MAX_DELAY", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retry_max_delay: Duration,
    /// How long after its start the step keeps waiting for a server that throttles it (429):
    /// throttled requests slow the batch down and go again until then, then fail with exit 4.
    #[arg(long, env = "SECOPS_DEADLINE", default_value = "10m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub deadline: Duration,
}

impl RetryArgs {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retry_attempts,
            base_delay: self.retry_base_delay,
            // A cap below the base would make every wait the cap: keep the order sane.
            max_delay: self.retry_max_delay.max(self.retry_base_delay),
        }
    }

    /// The step's one limiter for `server`, its deadline counted from now (the step's start).
    pub fn limiter(&self, server: &'static str) -> std::sync::Arc<Limiter> {
        std::sync::Arc::new(Limiter::new(
            server,
            std::time::Instant::now() + self.deadline,
        ))
    }
}

/// How many items of a batch are in flight at once (each holds one Secret's values).
#[derive(Debug, Clone, Args)]
pub struct ConcurrencyArgs {
    /// Items of a batch handled at once; each failure stays its own.
    #[arg(long, env = "SECOPS_CONCURRENCY", default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
}

impl ConcurrencyArgs {
    pub fn get(&self) -> usize {
        self.concurrency as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    Kubernetes,
    Token,
    Approle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvVersion {
    #[value(name = "1")]
    V1,
    #[value(name = "2")]
    V2,
}

#[derive(Debug, Clone, Args)]
pub struct VaultArgs {
    /// Where Vault is and how its TLS is checked (the authority's own steps share these).
    #[command(flatten)]
    pub server: VaultServerArgs,
    /// How to log in to Vault. The token itself comes from VAULT_TOKEN or --vault-token-file,
    /// never from an argument.
    #[arg(
        long,
        env = "SECOPS_VAULT_AUTH",
        value_enum,
        default_value = "kubernetes"
    )]
    pub vault_auth: AuthMethod,
    /// Vault role for Kubernetes auth.
    #[arg(long, env = "SECOPS_VAULT_ROLE", value_name = "ROLE")]
    pub vault_role: Option<String>,
    /// Auth mount (default: kubernetes or approle).
    #[arg(long, env = "SECOPS_VAULT_AUTH_MOUNT", value_name = "MOUNT")]
    pub vault_auth_mount: Option<String>,
    /// Service-account JWT presented to Vault's Kubernetes auth.
    #[arg(long, env = "SECOPS_SERVICE_ACCOUNT_TOKEN_FILE", default_value = SA_TOKEN_PATH, value_name = "FILE")]
    pub service_account_token_file: PathBuf,
    /// File holding a Vault token (instead of VAULT_TOKEN).
    #[arg(long, env = "VAULT_TOKEN_FILE", value_name = "FILE")]
    pub vault_token_file: Option<PathBuf>,
    /// File holding the AppRole role_id.
    #[arg(long, value_name = "FILE")]
    pub approle_role_id_file: Option<PathBuf>,
    /// File holding the AppRole secret_id.
    #[arg(long, value_name = "FILE")]
    pub approle_secret_id_file: Option<PathBuf>,
    /// KV secrets engine mount.
    #[arg(
        long,
        env = "SECOPS_KV_MOUNT",
        default_value = "secret",
        value_name = "MOUNT"
    )]
    pub kv_mount: String,
    /// KV engine version. Version 1 has no check-and-set: see docs/steps.md (KV v1) for the weaker guarantee.
    #[arg(long, env = "SECOPS_KV_VERSION", value_enum, default_value = "2")]
    pub kv_version: KvVersion,
}

/// This pod's API server, as the kubelet announces it (`KUBERNETES_SERVICE_HOST`/`_PORT`).
pub fn in_cluster_kubernetes_host() -> Option<String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    // An IPv6 service address needs brackets in a URL.
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!("https://{host}:{port}"))
}

/// A path where empty stays empty (clap's own path parser refuses it), for the Vault CLI's
/// "empty is unset" variables.
pub fn path_or_empty(s: &str) -> std::result::Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// Vault's own parsing of VAULT_SKIP_VERIFY (strconv.ParseBool).
fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (use true or false)")),
    }
}

/// The Vault side of a step's configuration.
#[derive(Debug, Clone)]
pub struct VaultTarget {
    pub client: VaultConfig,
    pub mount: VaultPath,
    pub kv_version: KvVersion,
}

impl VaultTarget {
    /// The retry budget comes from [`KubeArgs`] (every step has those flags).
    pub fn with_retry(mut self, retry: &RetryArgs) -> Self {
        self.client.retry = retry.policy();
        self.client.limiter = retry.limiter("Vault");
        self
    }

    /// A dry run's client refuses every mutating request (logins and revoking its own login
    /// token excepted).
    pub fn with_dry_run(mut self, dry_run: &crate::plan::DryRun) -> Self {
        self.client.dry_run = dry_run.active();
        self
    }
}

impl VaultArgs {
    /// `vault_token_env` is VAULT_TOKEN, read by the binary's edge and passed in.
    /// [`VaultArgs::config`] with the run's retry budget and dry-run mode (both are in
    /// [`KubeArgs`], which every step has).
    pub fn target(
        &self,
        vault_token_env: Option<String>,
        kube: &KubeArgs,
        dry_run: &crate::plan::DryRun,
    ) -> Result<VaultTarget> {
        Ok(self
            .config(vault_token_env)?
            .with_retry(&kube.retry)
            .with_dry_run(dry_run))
    }

    pub fn config(&self, vault_token_env: Option<String>) -> Result<VaultTarget> {
        let server = self.server.config(RetryPolicy::default())?;
        let mount = VaultPath::parse(&self.kv_mount).map_err(|e| {
            Error::Usage(format!("--kv-mount {:?} is not valid: {e}", self.kv_mount))
        })?;
        let auth = match self.vault_auth {
            AuthMethod::Token => {
                let token = match (&self.vault_token_file, vault_token_env) {
                    (Some(f), _) => {
                        zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                            Error::Usage(format!(
                                "cannot read --vault-token-file {}: {e}",
                                f.display()
                            ))
                        })?)
                        .trim()
                        .to_owned()
                    }
                    (None, Some(t)) => t,
                    (None, None) => {
                        return Err(Error::Usage(
                            "--vault-auth token needs VAULT_TOKEN or --vault-token-file".into(),
                        ))
                    }
                };
                VaultAuth::Token(SecretString::from(token))
            }
            AuthMethod::Kubernetes => VaultAuth::Kubernetes {
                role: self.vault_role.clone().ok_or_else(|| {
                    Error::Usage(
                        "--vault-auth kubernetes needs --vault-role (or SECOPS_VAULT_ROLE)".into(),
                    )
                })?,
                mount: self
                    .vault_auth_mount
                    .clone()
                    .unwrap_or_else(|| "kubernetes".into()),
                jwt_file: self.service_account_token_file.clone(),
            },
            AuthMethod::Approle => VaultAuth::AppRole {
                mount: self
                    .vault_auth_mount
                    .clone()
                    .unwrap_or_else(|| "approle".into()),
                role_id_file: self.approle_role_id_file.clone().ok_or_else(|| {
                    Error::Usage("--vault-auth approle needs --approle-role-id-file".into())
                })?,
                secret_id_file: self.approle_secret_id_file.clone().ok_or_else(|| {
                    Error::Usage("--vault-auth approle needs --approle-secret-id-file".into())
                })?,
            },
        };
        if let Some(m) = &self.vault_auth_mount {
            VaultPath::parse(m)
                .map_err(|e| Error::Usage(format!("--vault-auth-mount {m:?} is not valid: {e}")))?;
        }
        Ok(VaultTarget {
            client: VaultConfig { auth, ..server },
            mount,
            kv_version: self.kv_version,
        })
    }
}

/// The connection to one Vault server, with the Vault CLI's variables. Alone, it is the Vault
/// side of the authority's own steps (init-authority, unseal): they talk to Vault before any
/// auth method exists, so there is no login; a token only from a file or VAULT_TOKEN.
#[derive(Debug, Clone, Args)]
pub struct VaultServerArgs {
    /// Vault server address (init-authority and unseal: one node).
    #[arg(long, env = "VAULT_ADDR", value_name = "URL")]
    pub vault_addr: url::Url,
    /// Vault Enterprise namespace.
    #[arg(long, env = "VAULT_NAMESPACE", value_name = "NS")]
    pub vault_namespace: Option<String>,
    /// PEM bundle of the CA(s) that sign Vault's certificate; only these are trusted. Empty is
    /// unset, as in Vault's CLI (the built-in public roots), so a template can always pass it.
    #[arg(long, env = "VAULT_CACERT", value_name = "FILE", value_parser = path_or_empty)]
    pub vault_cacert: Option<PathBuf>,
    /// Do not verify Vault's TLS certificate (never in production).
    #[arg(long, env = "VAULT_SKIP_VERIFY", value_parser = parse_bool, default_value = "false", value_name = "BOOL")]
    pub vault_skip_verify: bool,
    /// Per-request timeout for Vault, in seconds.
    #[arg(
        long,
        env = "SECOPS_VAULT_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub vault_timeout: u64,
}

impl VaultServerArgs {
    /// `retry`: the step's one retry budget (it lives with the Kubernetes flags).
    pub fn config(&self, retry: RetryPolicy) -> Result<VaultConfig> {
        if !matches!(self.vault_addr.scheme(), "http" | "https") {
            return Err(Error::Usage(format!(
                "VAULT_ADDR {} must be an http:// or https:// URL",
                self.vault_addr
            )));
        }
        Ok(VaultConfig {
            addr: self.vault_addr.clone(),
            namespace: self.vault_namespace.clone().filter(|n| !n.is_empty()),
            cacert: self
                .vault_cacert
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
            skip_verify: self.vault_skip_verify,
            auth: VaultAuth::Token(SecretString::from(String::new())),
            timeout: Duration::from_secs(self.vault_timeout.max(1)),
            retry,
            limiter: std::sync::Arc::new(Limiter::new(
                "Vault",
                std::time::Instant::now() + DEFAULT_DEADLINE,
            )),
            dry_run: false,
        })
    }
}

/// Where the unseal material lives.
#[derive(Debug, Clone, Args)]
pub struct AuthorityStoreArgs {
    /// Namespace of the unseal-material Secret (dedicated; only these steps may touch it).
    #[arg(
        long,
        env = "SECOPS_AUTHORITY_NAMESPACE",
        default_value = "secops-authority",
        value_name = "NS"
    )]
    pub secret_namespace: String,
    /// Name of the unseal-material Secret.
    #[arg(
        long,
        env = "SECOPS_AUTHORITY_SECRET",
        default_value = "vault-unseal",
        value_name = "NAME"
    )]
    pub secret_name: String,
}

impl AuthorityStoreArgs {
    pub fn store(&self) -> Result<crate::authority::Store> {
        if !crate::names::is_dns_label(&self.secret_namespace) {
            return Err(Error::Usage(format!(
                "--secret-namespace {:?} is not a namespace name",
                self.secret_namespace
            )));
        }
        if self.secret_name.is_empty()
            || self.secret_name.len() > 253
            || !self
                .secret_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(Error::Usage(format!(
                "--secret-name {:?} is not a Secret name",
                self.secret_name
            )));
        }
        Ok(crate::authority::Store {
            namespace: self.secret_namespace.clone(),
            name: self.secret_name.clone(),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct PathArgs {
    /// Prefix under the KV mount; a namespace's secrets go to {prefix}/{namespace}/...; may
    /// contain {cluster} (the --cluster-name) for per-cluster paths.
    #[arg(long, env = "SECOPS_PATH_PREFIX", value_name = "PATH")]
    pub path_prefix: Option<String>,
}

impl PathArgs {
    /// `{cluster}` in the prefix becomes the cluster name (refused without one).
    pub fn policy(&self, cluster: Option<&crate::fleet::ClusterName>) -> Result<PathPolicy> {
        let prefix = match self.path_prefix.as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                VaultPath::parse(&crate::fleet::substitute(p, cluster)?)
                    .map_err(|e| Error::Usage(format!("--path-prefix {p:?} is not valid: {e}")))?,
            ),
        };
        Ok(PathPolicy { prefix })
    }
}

#[derive(Debug, Clone, Args)]
pub struct WorkflowArgs {
    /// Workflow name for provenance and audit (Argo: {{workflow.name}}).
    #[arg(
        long,
        env = "SECOPS_WORKFLOW_NAME",
        default_value = "",
        value_name = "NAME"
    )]
    pub workflow_name: String,
    /// Workflow uid for provenance and audit (Argo: {{workflow.uid}}).
    #[arg(
        long,
        env = "SECOPS_WORKFLOW_UID",
        default_value = "",
        value_name = "UID"
    )]
    pub workflow_uid: String,
}

impl WorkflowArgs {
    pub fn workflow(&self) -> Result<Workflow> {
        for (flag, v) in [
            ("--workflow-name", &self.workflow_name),
            ("--workflow-uid", &self.workflow_uid),
        ] {
            if v.len() > 253 || v.chars().any(|c| c.is_control() || c == '/') {
                return Err(Error::Usage(format!(
                    "{flag} must be at most 253 characters without '/' or control characters"
                )));
            }
        }
        Ok(Workflow {
            name: self.workflow_name.clone(),
            uid: self.workflow_uid.clone(),
        })
    }
}

/// Which Secrets a discovering step acts on (read-bootstrap, push-secret).
#[derive(Debug, Clone, Args)]
pub struct SelectionArgs {
    /// Namespaces Secrets may be read from (comma-separated); discovery lists each.
    #[arg(
        long,
        env = "SECOPS_NAMESPACES",
        value_delimiter = ',',
        required = true
    )]
    pub namespaces: Vec<String>,
    /// One Secret in this namespace (with --name) instead of selecting by label.
    #[arg(long, requires = "name")]
    pub namespace: Option<String>,
    /// Name of the one Secret (with --namespace).
    #[arg(long, requires = "namespace")]
    pub name: Option<String>,
    /// Extra label selector, ANDed with the step's class label (secops.io/class=...).
    #[arg(long)]
    pub selector: Option<String>,
}

impl SelectionArgs {
    pub fn selection(&self) -> Result<crate::selection::Selection> {
        crate::selection::Selection::new(
            &self.namespaces,
            self.namespace.clone(),
            self.name.clone(),
            self.selector.clone(),
        )
    }
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Directory for Argo output parameter files (an emptyDir in the pod).
    #[arg(long, env = "SECOPS_OUTPUTS_DIR", value_name = "DIR")]
    pub outputs_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ReferenceArgs {
    /// One reference (JSON) from read-bootstrap's references.json, e.g. Argo's {{item}}, or a
    /// JSON list of them (a batch: one process, one Vault login, worst exit code).
    #[arg(long, value_name = "JSON", conflicts_with = "reference_file")]
    pub reference: Option<String>,
    /// A file holding one reference.
    #[arg(long, value_name = "FILE")]
    pub reference_file: Option<PathBuf>,
}

impl ReferenceArgs {
    /// One reference or, for a batch, a JSON list of them.
    pub fn references(&self) -> Result<crate::reference::References> {
        let text = match (&self.reference, &self.reference_file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| {
                Error::Usage(format!("cannot read --reference-file {}: {e}", f.display()))
            })?,
            (None, None) => {
                return Err(Error::Usage(
                    "pass the secret to act on with --reference JSON or --reference-file FILE"
                        .into(),
                ))
            }
        };
        crate::reference::SecretRef::parse_many(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_verify_parses_like_vault() {
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool(""), Ok(false));
        assert!(parse_bool("yes").is_err());
    }

    #[derive(clap::Parser)]
    struct Server {
        #[command(flatten)]
        vault: VaultServerArgs,
    }

    fn server(args: &[&str]) -> VaultConfig {
        use clap::Parser;
        let args = ["step", "--vault-addr=https://vault.vault.svc:8200"]
            .iter()
            .chain(args);
        Server::try_parse_from(args)
            .unwrap()
            .vault
            .config(RetryPolicy::default())
            .unwrap()
    }

    /// Vault's CLI ignores an empty VAULT_CACERT; the templates always pass the parameter.
    #[test]
    fn empty_cacert_is_unset_like_vault() {
        assert_eq!(server(&["--vault-cacert="]).cacert, None);
        assert_eq!(server(&[]).cacert, None);
        assert_eq!(
            server(&["--vault-cacert=/etc/secops/vault-ca/ca.crt"]).cacert,
            Some(PathBuf::from("/etc/secops/vault-ca/ca.crt"))
        );
    }
}
