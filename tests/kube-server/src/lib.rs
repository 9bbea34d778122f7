//! Test-only Kubernetes API server on loopback HTTP.
//!
//! Step binaries are real kube clients configured by a kubeconfig file, so they need
//! an HTTP server with real API semantics. The semantics come from the maintained
//! `kube-fake-client` crate (served through `kube::Client::send`); a thin front layer
//! adds only what it lacks (see `front`). This crate is never shipped.

mod accounting;
mod backend;
mod discovery;
mod fault;
mod front;
mod kubeconfig;
mod names;
mod pages;
mod path;
mod query;
mod secret;
mod semantics;
mod server;
mod status;

pub use accounting::{ApiAccess, RequestKey};
pub use fault::{Failure, Fault};
pub use kubeconfig::TOKEN;
pub use status::USER;

use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Namespaces every request into which is denied with 403 Forbidden.
    pub forbidden_namespaces: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            forbidden_namespaces: Vec::new(),
        }
    }
}

/// Binds, builds the in-memory API and starts serving on the current tokio runtime.
///
/// Also installs rustls' ring provider as the process default if none is set: linking
/// kube-fake-client enables both rustls providers, and kube clients then cannot pick one.
pub async fn start(opts: Options) -> anyhow::Result<Handle> {
    install_crypto_provider();
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let backend = backend::Backend::new().await?;
    let front = Arc::new(front::Front::new(backend, addr, &opts.forbidden_namespaces));
    let (shutdown, watcher) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, front.clone(), watcher));
    Ok(Handle {
        addr,
        front,
        shutdown,
        task: Some(task),
    })
}

/// A running server. Dropping it stops the server too, without waiting.
pub struct Handle {
    addr: SocketAddr,
    front: Arc<front::Front>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Handle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig (cluster at [`Handle::url`], a token user, current context
    /// set) whose context defaults to `namespace`.
    pub fn write_kubeconfig(&self, path: &std::path::Path, namespace: &str) -> std::io::Result<()> {
        kubeconfig::write(path, self.addr, namespace)
    }

    /// A kubeconfig whose bearer token is `token`, so this caller's requests can be told
    /// apart in [`Handle::accesses`].
    pub fn write_kubeconfig_as(
        &self,
        path: &std::path::Path,
        namespace: &str,
        token: &str,
    ) -> std::io::Result<()> {
        kubeconfig::write_as(path, self.addr, namespace, token)
    }

    /// Every resource request as RBAC sees it (caller, verb, group, resource, namespace).
    pub fn accesses(&self) -> Vec<ApiAccess> {
        self.front.accounting.accesses()
    }

    /// A kube client talking to this server over HTTP, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        install_crypto_provider();
        let uri = http::Uri::from_maybe_shared(self.url())
            .expect("an http URL built from a socket address is a valid URI");
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).expect("a plain-http kube client always builds")
    }

    pub fn forbid_namespace(&self, ns: &str) {
        self.front.set_forbidden(ns, true);
    }

    pub fn allow_namespace(&self, ns: &str) {
        self.front.set_forbidden(ns, false);
    }

    /// Requests received since start or the last reset, discovery included.
    pub fn request_count(&self) -> u64 {
        self.front.accounting.total()
    }

    /// `(method, path+query)` of every request, in arrival order; never bodies.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.front.accounting.log()
    }

    /// [`Handle::requests`] with each request's arrival time, to merge with another
    /// server's log into the order a client made them.
    pub fn requests_at(&self) -> Vec<(std::time::Instant, String, String)> {
        self.front.accounting.log_at()
    }

    /// Test-only fault injection for every request (see `Fault`); `None` clears it.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.set_fault_for(None, fault)
    }

    /// A fault for requests of one HTTP method only (`Some("PATCH")`); others pass.
    pub fn set_fault_for(&self, method: Option<&str>, fault: Option<Fault>) {
        *self.front.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault::Rule {
            fault,
            method: method.map(str::to_owned),
        };
    }

    /// The fault in force (a counting fault shows what is left).
    pub fn fault(&self) -> Option<Fault> {
        self.front
            .fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fault
            .clone()
    }

    /// Resource requests counted by `(method, resource, namespace)`; namespace is
    /// empty for cluster-scoped requests such as a LIST across all namespaces.
    pub fn request_counts(&self) -> BTreeMap<RequestKey, u64> {
        self.front.accounting.counts()
    }

    /// One entry of [`Handle::request_counts`], 0 when absent.
    pub fn count(&self, method: &str, resource: &str, namespace: &str) -> u64 {
        let key = (
            method.to_string(),
            resource.to_string(),
            namespace.to_string(),
        );
        self.request_counts().get(&key).copied().unwrap_or(0)
    }

    pub fn reset_requests(&self) {
        self.front.accounting.reset()
    }

    /// Stops accepting, lets open connections finish (up to 5 s) and returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: some provider is then set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
