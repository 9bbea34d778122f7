//! Answers the proxy makes up itself, worded the way the server behind it would word
//! them, so clients classify an injected error as they would a real one.

use super::Dialect;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

/// The message of an injected Vault error.
pub const INJECTED: &str = "injected";

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An injected error; `retry_after` makes it a throttle (429 with `Retry-After`).
pub fn injected(dialect: Dialect, code: u16, retry_after: Option<u32>) -> Response<Bytes> {
    let mut res = match dialect {
        Dialect::Vault => vault_error(code, INJECTED),
        Dialect::Kubernetes => {
            let (reason, message) = kube_wording(code);
            let mut body = kube_status(code, reason, message);
            if let Some(secs) = retry_after {
                body["details"] = json!({ "retryAfterSeconds": secs });
            }
            kube_response(code, &body)
        }
    };
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// The upstream could not be reached: 502, as a gateway answers.
pub fn bad_gateway(dialect: Dialect, why: &str) -> Response<Bytes> {
    let message = format!("fault-injection proxy: the upstream server is unreachable: {why}");
    match dialect {
        Dialect::Vault => vault_error(502, &message),
        Dialect::Kubernetes => kube_response(502, &kube_status(502, "", &message)),
    }
}

/// A request body over the limit the proxy buffers.
pub fn too_large(dialect: Dialect) -> Response<Bytes> {
    let message = "the request body could not be read: length limit exceeded";
    match dialect {
        Dialect::Vault => vault_error(413, message),
        Dialect::Kubernetes => {
            kube_response(413, &kube_status(413, "RequestEntityTooLarge", message))
        }
    }
}

/// `status` with `body` as it is, labelled JSON ([`super::Fault::Garbage`]).
pub fn raw(code: u16, body: &'static str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from_static(body.as_bytes()));
    *res.status_mut() = status(code);
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// `{"errors":["msg"]}` as Vault's `respondError` writes it: Go's JSON encoder ends the
/// body with a newline, and Vault marks every answer `no-store`.
fn vault_error(code: u16, message: &str) -> Response<Bytes> {
    let body = json!({ "errors": [message] });
    let mut res = Response::new(Bytes::from(format!("{body}\n")));
    *res.status_mut() = status(code);
    let headers = res.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The apiserver's reason and wording for an injected failure with this code.
fn kube_wording(code: u16) -> (&'static str, &'static str) {
    match code {
        409 => (
            "Conflict",
            "Operation cannot be fulfilled (injected): the object has been modified; please apply your changes to the latest version and try again",
        ),
        429 => ("TooManyRequests", "injected: too many requests"),
        500 => ("InternalError", "injected: Internal error occurred"),
        503 => (
            "ServiceUnavailable",
            "injected: the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "injected: the server was unable to return a response in the time allotted",
        ),
        _ => ("", INJECTED),
    }
}

/// A failure `metav1.Status`; the HTTP status is its `code`.
fn kube_status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn kube_response(code: u16, body: &Value) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from(body.to_string()));
    *res.status_mut() = status(code);
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
