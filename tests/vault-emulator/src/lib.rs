//! Test-only emulator of the parts of HashiCorp Vault's HTTP API that RustyVault, our
//! real test Vault, lacks: KV version 2, Kubernetes auth login, token helpers,
//! sys seal/health, password policies (`sys/policies/password`) and random bytes
//! (`sys/tools/random`). Step binaries talk to it over loopback HTTP with
//! `VAULT_ADDR` exactly as to Vault, so status codes and bodies follow Vault's
//! source, cited per module. `Handle::set_fault` adds test-only fault injection
//! that Vault does not have. Everything is in memory; nothing here is ever shipped.

mod acl;
mod api;
mod fault;
mod fields;
mod gofmt;
mod hcl;
mod ids;
mod kubernetes;
mod kv2;
mod kv2_http;
mod password;
pub mod pki;
mod random;
mod reply;
mod server;
mod state;
mod sys;
mod token;

use anyhow::{bail, Context as _};
pub use api::Access;
pub use fault::{Failure, Fault};
pub use pki::{TestPki, TlsIdentity};
use server::Shared;
use state::State;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The root token, as `vault server -dev -dev-root-token-id` sets it.
    pub root_token: String,
    /// Mount paths of the KV version 2 engines (default `["secret"]`).
    pub kv2_mounts: Vec<String>,
    /// Mount path of the Kubernetes auth method (default `kubernetes`).
    pub kubernetes_auth_mount: String,
    /// The single unseal key `sys/unseal` accepts, hex or base64.
    pub unseal_key: String,
    /// Serve HTTPS with this identity (see [`TestPki`]); plain HTTP when `None`.
    pub tls: Option<TlsIdentity>,
    /// False: start uninitialised and sealed, as a fresh Vault server; `sys/init` then
    /// generates key shares and a root token. `root_token` stays valid as the tests' backdoor.
    pub initialized: bool,
}

impl Default for Options {
    fn default() -> Self {
        let key: String = ids::bytes(32).iter().map(|b| format!("{b:02x}")).collect();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            root_token: "root".to_string(),
            kv2_mounts: vec!["secret".to_string()],
            kubernetes_auth_mount: "kubernetes".to_string(),
            unseal_key: key,
            tls: None,
            initialized: true,
        }
    }
}

/// Mount paths without surrounding slashes; Vault reserves `sys`, `auth`,
/// `cubbyhole` and `identity`.
fn mount_name(raw: &str, what: &str) -> anyhow::Result<String> {
    let name = raw.trim_matches('/').to_string();
    let first = name.split('/').next().unwrap_or_default();
    if name.is_empty() || name.split('/').any(|s| s.is_empty() || s == "..") {
        bail!("invalid {what} mount path {raw:?}");
    }
    if matches!(first, "sys" | "auth" | "cubbyhole" | "identity") {
        bail!("{what} mount path {raw:?} is reserved by Vault");
    }
    Ok(name)
}

/// Binds and starts serving on the current tokio runtime.
pub async fn start(opts: Options) -> anyhow::Result<Handle> {
    let mut mounts = Vec::new();
    for raw in &opts.kv2_mounts {
        let name = mount_name(raw, "KV v2")?;
        if mounts.contains(&name) {
            bail!("KV v2 mount {name:?} given twice");
        }
        mounts.push(name);
    }
    let kubernetes = opts.kubernetes_auth_mount.trim_matches('/');
    if kubernetes.is_empty()
        || kubernetes == "token"
        || kubernetes.split('/').any(|s| s.is_empty() || s == "..")
    {
        bail!(
            "invalid Kubernetes auth mount path {:?}",
            opts.kubernetes_auth_mount
        );
    }
    if opts.root_token.is_empty() {
        bail!("the root token must not be empty");
    }
    let tls = match &opts.tls {
        Some(identity) => Some(tokio_rustls::TlsAcceptor::from(identity.server_config()?)),
        None => None,
    };
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let mut state = State::new(
        &opts.root_token,
        &mounts,
        kubernetes,
        &opts.unseal_key,
        jiff::Timestamp::now(),
    );
    if !opts.initialized {
        state.initialized = false;
        state.sealed = true;
    }
    let shared: Shared = Arc::new(Mutex::new(state));
    let running = Running::spawn(listener, shared.clone(), tls.clone());
    Ok(Handle {
        addr,
        tls,
        root_token: opts.root_token,
        shared,
        running: Mutex::new(Some(running)),
    })
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    fn spawn(listener: TcpListener, shared: Shared, tls: Option<TlsAcceptor>) -> Self {
        let (stop, watcher) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, shared, watcher, tls));
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A running emulator. Dropping it stops the server without waiting.
pub struct Handle {
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    root_token: String,
    shared: Shared,
    running: Mutex<Option<Running>>,
}

impl Handle {
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), for `VAULT_ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// Seals, as `PUT /v1/sys/seal` with the root token would.
    pub fn seal(&self) {
        self.state().sealed = true;
    }

    /// Unseals without a key.
    pub fn unseal(&self) {
        self.state().sealed = false;
    }

    pub fn is_sealed(&self) -> bool {
        self.state().sealed
    }

    pub fn is_initialized(&self) -> bool {
        self.state().initialized
    }

    /// The ACL policy text stored under `name`, if any.
    pub fn acl_policy(&self, name: &str) -> Option<String> {
        self.state().policies.text(name)
    }

    /// Whether the Kubernetes auth role exists.
    pub fn kubernetes_role_exists(&self, name: &str) -> bool {
        self.state().kubernetes.exists(&format!("role/{name}")) == Some(true)
    }

    /// Whether a token is live (e.g. to check a root token was revoked).
    pub fn token_is_live(&self, token: &str) -> bool {
        self.state()
            .tokens
            .get(token, jiff::Timestamp::now())
            .is_some()
    }

    /// A service account JWT that Kubernetes auth login accepts for this service
    /// account (standing in for a token that passes TokenReview).
    pub fn issue_service_account_token(&self, namespace: &str, service_account: &str) -> String {
        self.state().kubernetes.issue(namespace, service_account)
    }

    /// Test-only fault injection for requests outside `/v1/sys/` (see `Fault`);
    /// `None` clears it. Takes effect for the next request.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state().fault = fault;
    }

    /// The fault in force; a `FailNext` shows the failures still to come and reads
    /// `None` once they are spent.
    pub fn fault(&self) -> Option<Fault> {
        self.state().fault.clone()
    }

    /// Requests received so far, whatever their path.
    pub fn request_count(&self) -> u64 {
        self.state().request_count()
    }

    /// `(method, path?query)` of every request in arrival order; never bodies.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state().requests()
    }

    /// [`Handle::requests`] with each request's arrival time, to merge with another
    /// server's log into the order a client made them.
    pub fn requests_at(&self) -> Vec<(std::time::Instant, String, String)> {
        self.state().requests_at()
    }

    /// Every ACL decision for a non-root token, in order: the evidence least-privilege
    /// tests compare with the policies.
    pub fn accesses(&self) -> Vec<Access> {
        self.state().accesses()
    }

    /// The key's `current_version` (0 for metadata-only keys), `None` when the key
    /// has no metadata or the mount does not exist.
    pub fn kv2_current_version(&self, mount: &str, path: &str) -> Option<u64> {
        let state = self.state();
        state.kv.get(mount.trim_matches('/'))?.current_version(path)
    }

    /// Closes the port and drops open connections, as if Vault had gone down;
    /// state is kept. Returns once the port refuses connections.
    pub async fn stop_listening(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            running.stop().await;
        }
    }

    /// Listens again on the same address after `stop_listening`; a no-op while
    /// listening.
    pub async fn start_listening(&self) -> anyhow::Result<()> {
        if self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("binding {} again", self.addr))?;
        let running = Running::spawn(listener, self.shared.clone(), self.tls.clone());
        let previous = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(running);
        if let Some(previous) = previous {
            previous.stop().await;
        }
        Ok(())
    }

    /// Stops the server and waits until the port is closed.
    pub async fn shutdown(self) {
        self.stop_listening().await;
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            let _ = running.stop.send(true);
        }
    }
}
