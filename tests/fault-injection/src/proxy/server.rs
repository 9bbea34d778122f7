//! The listener, client connections and what happens to each request. Stopping drops the
//! listener, every open connection and every request in flight at once, so clients see
//! what they would see if the server died: refused connections and reset keep-alive ones.

use super::fault::{Action, Rule};
use super::record::{Log, Record, Slot};
use super::{reply, Dialect};
use bytes::Bytes;
use futures::future::{BoxFuture, Shared as SharedFuture};
use futures::FutureExt as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Vault's default `max_request_size`, far above the apiserver's 3 MiB.
const MAX_BODY: usize = 32 * 1024 * 1024;

pub(crate) type Body = BoxBody<Bytes, hyper::Error>;
type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;
/// Resolves when a running hook has finished (or its request was dropped).
type Gate = SharedFuture<BoxFuture<'static, ()>>;

/// What the listener, its connections and the handle share.
pub(crate) struct Shared {
    pub dialect: Dialect,
    pub exempt: Option<fn(&str) -> bool>,
    pub upstream: http::uri::Authority,
    client: Client,
    pub faults: Mutex<Faults>,
    pub log: Log,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub rule: Rule,
    /// Set while a `HookAfter` hook runs: requests wait for it.
    gate: Option<Gate>,
}

/// What one request meets, the hook it waits for first, and (for the request that runs a
/// hook) the sender whose drop lets the others through.
#[derive(Default)]
struct Decision {
    action: Option<Action>,
    wait: Option<Gate>,
    done: Option<oneshot::Sender<()>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent, so a panic elsewhere is harmless.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(
        dialect: Dialect,
        exempt: Option<fn(&str) -> bool>,
        upstream: http::uri::Authority,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            dialect,
            exempt,
            upstream,
            client,
            faults: Mutex::new(Faults::default()),
            log: Log::default(),
        }
    }

    fn decide(&self, method: &str, path: &str) -> Decision {
        let mut faults = lock(&self.faults);
        let wait = match &faults.gate {
            Some(gate) if gate.peek().is_none() => Some(gate.clone()),
            _ => {
                faults.gate = None;
                None
            }
        };
        let action = faults.rule.apply(method, path);
        let done = matches!(action, Some(Action::Hook(_))).then(|| {
            let (done, finished) = oneshot::channel::<()>();
            faults.gate = Some(
                async move {
                    let _ = finished.await;
                }
                .boxed()
                .shared(),
            );
            done
        });
        Decision { action, wait, done }
    }

    /// Sends the request upstream as it came, but for `Host` and hop-by-hop headers.
    async fn forward(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Incoming>, String> {
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.upstream.clone())
            .path_and_query(target)
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = parts.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = parts.headers;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        // The body is already whole; the upstream need not ask for it.
        headers.remove(header::EXPECT);
        let host = HeaderValue::from_str(self.upstream.as_str()).map_err(|e| e.to_string())?;
        headers.insert(header::HOST, host);
        self.client.request(req).await.map_err(|e| describe(&e))
    }
}

/// An error and its causes on one line (the top-level legacy client error says little).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Connection-scoped headers (RFC 9110 7.6.1) belong to one hop, not to the message.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Resolves once `stop` is set or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts connections until stopped, then aborts every connection and returns, dropping
/// the listener.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, shared.clone(), stop.clone(), tls.clone()));
                }
            }
            _ = stopped(&mut stopping) => break,
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    match tls {
        None => http(TokioIo::new(stream), shared, stop).await,
        // A client that does not trust the certificate aborts the handshake; so do we.
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                http(TokioIo::new(stream), shared, stop).await
            }
        }
    }
}

async fn http<I>(io: I, shared: Arc<Shared>, stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let service = service_fn(move |req| {
        let (shared, stop) = (shared.clone(), stop.clone());
        async move { handle(shared, stop, req).await.ok_or(Dropped) }
    });
    let _ = http1::Builder::new().serve_connection(io, service).await;
}

/// An injected connection drop: hyper closes the socket without writing a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection drop")
    }
}

impl std::error::Error for Dropped {}

fn full(res: Response<Bytes>) -> Response<Body> {
    res.map(|b| Full::new(b).map_err(|never| match never {}).boxed())
}

/// `None`: close the connection without a response.
async fn handle(
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    req: Request<Incoming>,
) -> Option<Response<Body>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let target = match parts.uri.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.clone(),
    };
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Limited::new(body, MAX_BODY).collect().await;
    let slot = shared.log.push(Record {
        at: Instant::now(),
        method: parts.method.as_str().to_owned(),
        path: target,
        status: None,
        user_agent,
        faulted: false,
    });
    let body = match body {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            let res = reply::too_large(shared.dialect);
            shared.log.set_status(slot, res.status().as_u16());
            return Some(full(res));
        }
        // The client went away mid-body.
        Err(_) => return None,
    };
    let exempt = shared.exempt.is_some_and(|exempt| exempt(&path));
    let decision = if exempt {
        Decision::default()
    } else {
        shared.decide(parts.method.as_str(), &path)
    };
    if decision.action.is_some() {
        shared.log.set_faulted(slot);
    }
    // Its own task, so a client that gives up (e.g. during a delay) does not cancel a
    // request already on its way upstream; only stopping the listener does.
    tokio::spawn(run(shared, stop, parts, body, decision, slot))
        .await
        .ok()
        .flatten()
}

async fn run(
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    parts: http::request::Parts,
    body: Bytes,
    decision: Decision,
    slot: Slot,
) -> Option<Response<Body>> {
    let res = tokio::select! {
        res = act(&shared, parts, body, decision) => res,
        _ = stopped(&mut stop) => None,
    };
    if let Some(res) = &res {
        shared.log.set_status(slot, res.status().as_u16());
    }
    res
}

async fn act(
    shared: &Shared,
    parts: http::request::Parts,
    body: Bytes,
    decision: Decision,
) -> Option<Response<Body>> {
    let Decision { action, wait, done } = decision;
    if let Some(gate) = wait {
        gate.await;
    }
    let dialect = shared.dialect;
    match &action {
        Some(Action::Fail(code)) => return Some(full(reply::injected(dialect, *code, None))),
        Some(Action::Throttle(secs)) => {
            return Some(full(reply::injected(dialect, 429, Some(*secs))))
        }
        Some(Action::Raw(code, body)) => return Some(full(reply::raw(*code, body))),
        Some(Action::Reset) => return None,
        Some(Action::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Action::Hook(hook)) => {
            hook().await;
            // Lets the requests that arrived meanwhile through.
            drop(done);
        }
        Some(Action::Lost) | None => {}
    }
    let forwarded = shared.forward(parts, body).await;
    if action == Some(Action::Lost) {
        // Served upstream in full, then the answer is lost.
        if let Ok(res) = forwarded {
            let _ = res.into_body().collect().await;
        }
        return None;
    }
    match forwarded {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Some(Response::from_parts(parts, body.boxed()))
        }
        Err(why) => Some(full(reply::bad_gateway(dialect, &why))),
    }
}
