//! A recording, fault-injecting HTTP/1.1 reverse proxy that stands in front of a real test
//! server (OpenBao, the Kubernetes test API server), so faults and request records come
//! from one place whatever the server. Clients talk to [`Handle::url`] instead of the server;
//! each request is logged (never its body), may meet the [`Fault`] set, and is otherwise
//! forwarded as it came.

mod fault;
mod record;
mod reply;
mod server;

pub use fault::{Fault, Hook};
pub use record::Record;
pub use reply::INJECTED;

use anyhow::{bail, Context as _};
use server::{lock, Shared};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::TlsIdentity;

/// The shape of the error bodies the proxy makes up, so clients parse them as the real
/// server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `{"errors":["injected"]}`, as Vault's `respondError`.
    Vault,
    /// A `metav1.Status` worded like the apiserver's for that code.
    Kubernetes,
}

/// How to start the proxy.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The server to forward to, `http://host:port` (plain HTTP only).
    pub upstream: String,
    /// Serve HTTPS with this identity (see [`crate::TestPki`]); plain HTTP when `None`.
    pub tls: Option<TlsIdentity>,
    pub dialect: Dialect,
    /// Raw request paths (before percent-decoding, without the query) that are never
    /// faulted nor counted by a fault, though still recorded; e.g. [`is_vault_sys`].
    pub exempt: Option<fn(&str) -> bool>,
}

impl Options {
    /// Loopback on a free port, plain HTTP, nothing exempt.
    pub fn new(upstream: impl Into<String>, dialect: Dialect) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: upstream.into(),
            tls: None,
            dialect,
            exempt: None,
        }
    }
}

/// Whether a raw path is Vault's `/v1/sys` or under it, percent-encoded or not: health
/// checks and seal control keep working while a fault is set.
pub fn is_vault_sys(path: &str) -> bool {
    let decoded = percent_decode(path);
    decoded == "/v1/sys" || decoded.starts_with("/v1/sys/")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The upstream's `host:port`, from an `http://host:port` URL with no path.
fn upstream_authority(url: &str) -> anyhow::Result<http::uri::Authority> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("upstream URL {url:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("upstream {url:?}: only plain http:// upstreams are supported");
    }
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        bail!("upstream {url:?}: must not have a path or query");
    }
    uri.authority()
        .cloned()
        .with_context(|| format!("upstream {url:?} has no host"))
}

/// Binds and starts serving on the current tokio runtime.
pub async fn start(opts: Options) -> anyhow::Result<Handle> {
    let upstream = upstream_authority(&opts.upstream)?;
    let tls = match &opts.tls {
        Some(identity) => Some(TlsAcceptor::from(identity.server_config()?)),
        None => None,
    };
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(opts.dialect, opts.exempt, upstream));
    let running = Running::spawn(listener, shared.clone(), tls.clone());
    Ok(Handle {
        inner: Arc::new(Inner {
            addr,
            tls,
            upstream: opts.upstream,
            shared,
            running: Mutex::new(Some(running)),
        }),
    })
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    fn spawn(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) -> Self {
        let (stop, watcher) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, shared, watcher, tls));
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Inner {
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    upstream: String,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

/// A running proxy. Clones share it (faults, records, listener). It stops listening on
/// [`Handle::stop_listening`] or [`Handle::shutdown`] through any clone, and when the last
/// clone is dropped (without waiting: the stop signal's sender goes with it).
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("url", &self.url())
            .field("upstream", &self.inner.upstream)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), for `VAULT_ADDR` or a kubeconfig.
    pub fn url(&self) -> String {
        let scheme = if self.inner.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.inner.addr)
    }

    /// The upstream URL as given, to reach the server without the proxy (e.g. from a hook).
    pub fn upstream(&self) -> &str {
        &self.inner.upstream
    }

    /// A fault for every non-exempt request; `None` clears it. Takes effect for the next
    /// request and replaces any method filter.
    pub fn set_fault(&self, f: Option<Fault>) {
        self.set_fault_for(None, f)
    }

    /// A fault for requests of one HTTP method only (`Some("PATCH")`); others pass untouched
    /// and do not advance its counts.
    pub fn set_fault_for(&self, method: Option<&str>, f: Option<Fault>) {
        let mut faults = lock(&self.inner.shared.faults);
        faults.rule.fault = f;
        faults.rule.method = method.map(str::to_owned);
        faults.rule.window = None;
    }

    /// The fault in force; a counting fault shows what is left and reads `None` once spent.
    pub fn fault(&self) -> Option<Fault> {
        lock(&self.inner.shared.faults).rule.fault.clone()
    }

    /// `(METHOD, path?query)` of every request in arrival order, exempt and faulted ones
    /// included; never bodies.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.records()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }

    /// [`Handle::requests`] with each arrival time, to merge with another proxy's log into
    /// the order a client made them.
    pub fn requests_at(&self) -> Vec<(std::time::Instant, String, String)> {
        self.records()
            .into_iter()
            .map(|r| (r.at, r.method, r.path))
            .collect()
    }

    /// Every request with what came of it, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        self.inner.shared.log.records()
    }

    /// Requests received since start or the last [`Handle::reset_requests`].
    pub fn request_count(&self) -> u64 {
        self.inner.shared.log.len() as u64
    }

    /// Forgets the requests so far; those still in flight are not recorded further.
    pub fn reset_requests(&self) {
        self.inner.shared.log.reset()
    }

    /// The requests so far, forgotten at once ([`Handle::records`] then
    /// [`Handle::reset_requests`] without a gap): a long run (the bench) counts them in
    /// chunks instead of keeping and copying an ever longer log.
    pub fn take_records(&self) -> Vec<Record> {
        self.inner.shared.log.take()
    }

    /// Closes the port and drops open connections and requests in flight, as if the server
    /// had gone down; faults and records are kept. Returns once the port refuses connections.
    pub async fn stop_listening(&self) {
        let running = lock(&self.inner.running).take();
        if let Some(running) = running {
            running.stop().await;
        }
    }

    /// Listens again on the same address after [`Handle::stop_listening`]; a no-op while
    /// listening.
    pub async fn start_listening(&self) -> anyhow::Result<()> {
        if lock(&self.inner.running).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.inner.addr)
            .await
            .with_context(|| format!("binding {} again", self.inner.addr))?;
        let running = Running::spawn(listener, self.inner.shared.clone(), self.inner.tls.clone());
        let previous = lock(&self.inner.running).replace(running);
        if let Some(previous) = previous {
            previous.stop().await;
        }
        Ok(())
    }

    /// Stops listening (for every clone) and waits until the port is closed.
    pub async fn shutdown(self) {
        self.stop_listening().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_sys_is_exempt_even_percent_encoded() {
        assert!(is_vault_sys("/v1/sys/health"));
        assert!(is_vault_sys("/v1/%73ys/health"));
        assert!(is_vault_sys("/v1/sys"));
        assert!(!is_vault_sys("/v1/system/x"));
        assert!(!is_vault_sys("/v1/auth/token/lookup-self"));
        assert!(!is_vault_sys("/v1/secret/data/sys"));
        assert_eq!(percent_decode("%zz%4"), "%zz%4", "malformed escapes stay");
    }

    #[test]
    fn upstream_must_be_plain_http_without_path() {
        assert_eq!(
            upstream_authority("http://127.0.0.1:8200")
                .expect("valid")
                .as_str(),
            "127.0.0.1:8200"
        );
        assert!(upstream_authority("http://127.0.0.1:8200/").is_ok());
        assert!(upstream_authority("https://127.0.0.1:8200").is_err());
        assert!(upstream_authority("http://127.0.0.1:8200/v1").is_err());
        assert!(upstream_authority("127.0.0.1:8200").is_err());
    }
}
