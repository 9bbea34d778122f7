//! Plain HTTP/1.1 on loopback: kube clients accept `http://` cluster URLs, and tests
//! need no certificates. Each request runs in its own task so a client that hangs up
//! cannot cancel a write half-way through the front layer.

use crate::fault::Action;
use crate::front::{Front, Request};
use crate::status::Reply;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Largest request body accepted (the apiserver's own limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Accepts connections until `shutdown` flips, then drains open connections.
pub async fn serve(listener: TcpListener, front: Arc<Front>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(connection(stream, front.clone(), shutdown.clone()));
                }
            }
            _ = shutdown.changed() => break,
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
}

async fn connection(stream: TcpStream, front: Arc<Front>, mut shutdown: watch::Receiver<bool>) {
    let service = service_fn(move |req| {
        let front = front.clone();
        async move { respond(front, req).await.ok_or(Dropped) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
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

/// `None`: drop the connection without a response (an injected fault).
async fn respond(
    front: Arc<Front>,
    req: hyper::Request<Incoming>,
) -> Option<hyper::Response<Full<Bytes>>> {
    let action = front
        .fault
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .apply(req.method().as_str());
    // Logged as the front layer logs served requests: an empty query is dropped.
    let path_and_query = match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{}?{q}", req.uri().path()),
        _ => req.uri().path().to_owned(),
    };
    let mut lost = false;
    match action {
        Some(Action::Reply(reply, retry_after)) => {
            front
                .accounting
                .record(req.method().as_str(), &path_and_query, None);
            let mut res = to_response(reply);
            if let Some(secs) = retry_after {
                res.headers_mut()
                    .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
            }
            return Some(res);
        }
        Some(Action::Reset) => {
            front
                .accounting
                .record(req.method().as_str(), &path_and_query, None);
            return None;
        }
        Some(Action::Delay(d)) => tokio::time::sleep(d).await,
        Some(Action::Lost) => lost = true,
        None => {}
    }
    let res = serve_request(front, req).await;
    (!lost).then_some(res)
}

async fn serve_request(
    front: Arc<Front>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let reply = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => {
            let request = Request {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: collected.to_bytes(),
                user: parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_string),
            };
            let task = tokio::spawn(async move { front.handle(request).await });
            task.await.unwrap_or_else(|e| {
                Reply::failure(
                    500,
                    "InternalError",
                    format!("handler failed: {e}"),
                    serde_json::json!({}),
                )
            })
        }
        Err(e) => Reply::failure(
            413,
            "RequestEntityTooLarge",
            format!("the request body could not be read: {e}"),
            serde_json::json!({}),
        ),
    };
    to_response(reply)
}

fn to_response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let body = Bytes::from(reply.body.to_string());
    let mut res = hyper::Response::new(Full::new(body));
    *res.status_mut() =
        http::StatusCode::from_u16(reply.code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}
