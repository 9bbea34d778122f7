//! Plain HTTP/1.1 on loopback: kube clients accept `http://` cluster URLs, and tests
//! need no certificates. Each request runs in its own task so a client that hangs up
//! cannot cancel a write half-way through the front layer.

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
        async move { Ok::<_, std::convert::Infallible>(serve_request(front, req).await) }
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
