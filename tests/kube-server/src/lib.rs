//! Test-only Kubernetes API server on loopback HTTP.
//!
//! Step binaries are real kube clients configured by a kubeconfig file, so they need
//! an HTTP server with real API semantics. The semantics come from the maintained
//! `kube-fake-client` crate (served through `kube::Client::send`); a thin front layer
//! adds only what it lacks (see `front`). It also issues service account tokens and
//! answers TokenReviews of them, so a Vault/OpenBao Kubernetes auth method can use it
//! as its `kubernetes_host` (see `tokens`). This crate is never shipped.

mod accounting;
mod backend;
mod discovery;
mod front;
mod kubeconfig;
mod names;
mod namespaces;
mod pages;
mod path;
mod query;
mod secret;
mod semantics;
mod server;
mod status;
mod tokens;

pub use accounting::{request_key, ApiAccess, RequestKey};
pub use kubeconfig::TOKEN;
pub use status::USER;
/// `iss` of the issued service account tokens, and the audience they carry unless told
/// otherwise (the API server's own).
pub use tokens::ISSUER as SERVICE_ACCOUNT_ISSUER;

use anyhow::Context as _;
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
    /// apart in [`Handle::accesses`]. The token authenticates from then on (it may
    /// create TokenReviews).
    pub fn write_kubeconfig_as(
        &self,
        path: &std::path::Path,
        namespace: &str,
        token: &str,
    ) -> std::io::Result<()> {
        self.front.tokens.register_caller(token);
        kubeconfig::write_as(path, self.addr, namespace, token)
    }

    /// A token for the service account `namespace/service_account`, shaped like a
    /// projected token (a JWS with an RS256 header, `iss` [`SERVICE_ACCOUNT_ISSUER`],
    /// `sub` `system:serviceaccount:NS:NAME`, `aud` [`SERVICE_ACCOUNT_ISSUER`] and the
    /// `kubernetes.io` claims). Its signature is random bytes: nothing can verify it, and
    /// only a TokenReview by this server authenticates it. The service account gets one
    /// uid, the same for every token issued for it.
    pub fn issue_service_account_token(&self, namespace: &str, service_account: &str) -> String {
        self.front.tokens.issue(namespace, service_account, &[])
    }

    /// [`Handle::issue_service_account_token`] with audiences of its own (as a
    /// `TokenRequest` with `audiences`, or a projected volume with `audience`): a
    /// TokenReview authenticates it only for one of them, and the API server refuses it
    /// as a bearer token unless [`SERVICE_ACCOUNT_ISSUER`] is among them.
    pub fn issue_service_account_token_with_audiences(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
    ) -> String {
        self.front
            .tokens
            .issue(namespace, service_account, audiences)
    }

    /// From now on `token` reviews as invalidated and no longer authenticates; other
    /// tokens of its service account keep working. Unknown tokens are ignored.
    pub fn revoke_service_account_token(&self, token: &str) {
        self.front.tokens.revoke(token)
    }

    /// The uid of a service account a token was issued for (`None` before the first).
    pub fn service_account_uid(&self, namespace: &str, service_account: &str) -> Option<String> {
        self.front.tokens.uid(namespace, service_account)
    }

    /// Every resource request as RBAC sees it (caller, verb, group, resource, namespace).
    /// The caller is the bearer token, or for a token this server issued its service
    /// account's username.
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

    /// Forgets the accesses recorded so far.
    pub fn reset_accesses(&self) {
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
