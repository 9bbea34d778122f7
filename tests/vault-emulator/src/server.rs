//! HTTP/1.1 on loopback, like `vault server -dev`, plain or over TLS. Stopping drops
//! the listener and every open connection at once, so clients see what they would
//! see if Vault died: refused connections and reset keep-alive connections.

use crate::api::{self, Request};
use crate::fault::{Action, INJECTED};
use crate::reply::Reply;
use crate::state::State;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Vault's default `max_request_size`.
const MAX_BODY: usize = 32 * 1024 * 1024;

pub type Shared = Arc<Mutex<State>>;

/// Accepts connections until `stop` changes or its sender is dropped, then aborts
/// every connection and returns, dropping the listener.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(connection(stream, shared.clone(), tls.clone()));
                }
            }
            _ = stop.changed() => break,
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
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

async fn connection(stream: TcpStream, shared: Shared, tls: Option<TlsAcceptor>) {
    match tls {
        None => http(TokioIo::new(stream), shared).await,
        // A client that does not trust the certificate aborts the handshake; so do we.
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                http(TokioIo::new(stream), shared).await
            }
        }
    }
}

async fn http<I>(io: I, shared: Shared)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { respond(&shared, req).await.ok_or(Dropped) }
    });
    let _ = http1::Builder::new().serve_connection(io, service).await;
}

/// `X-Vault-Token`, else an `Authorization: Bearer` token (http/handler.go `requestAuth`).
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.to_string());
    }
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// `None`: drop the connection without a response (an injected fault).
async fn respond(
    shared: &Shared,
    req: hyper::Request<Incoming>,
) -> Option<hyper::Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes());
    let request = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        token: token(&parts.headers),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    let action = shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .fault_action(&request.method, &request.path, request.query.as_deref());
    match action {
        Some(Action::Fail(status)) => return Some(to_response(Reply::error(status, INJECTED))),
        Some(Action::Throttle(secs)) => {
            let mut res = to_response(Reply::error(429, INJECTED));
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            return Some(res);
        }
        Some(Action::Reset) => return None,
        Some(Action::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Action::Raw(status, body)) => {
            let mut res = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Some(res);
        }
        Some(Action::Lost | Action::Seal | Action::RevokeTokens) | None => {}
    }
    let reply = {
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        api::handle(&mut state, request, Timestamp::now())
    };
    (action != Some(Action::Lost)).then(|| to_response(reply))
}

/// Go's `json.Encoder` ends every body with a newline; so does this.
fn to_response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let body = match &reply.body {
        Some(value) => Bytes::from(format!("{value}\n")),
        None => Bytes::new(),
    };
    let mut res = hyper::Response::new(Full::new(body));
    *res.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if reply.body.is_some() || reply.status != 204 {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    res
}
