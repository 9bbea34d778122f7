//! What goes back on the wire. Vault answers in four shapes: the JSON envelope of
//! `logical.HTTPResponse`, `{"errors":[...]}` (sdk/logical/response_util.go
//! `RespondError`), raw objects from sys/health and friends, and empty bodies.

use crate::{gofmt, ids};
use serde_json::{json, Value};

/// An HTTP answer: status plus a JSON body or none.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self { status, body: None }
    }

    /// `{"errors":["msg"]}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, json!({ "errors": [message.into()] }))
    }

    /// `{"errors":[]}`: what `respondError(w, status, nil)` writes, e.g. for a read of nothing.
    pub fn no_errors(status: u16) -> Self {
        Self::json(status, json!({ "errors": [] }))
    }
}

/// A backend's successful answer, before it is wrapped in the envelope.
#[derive(Debug, Default)]
pub struct Response {
    pub data: Option<Value>,
    pub warnings: Vec<String>,
    pub auth: Option<Value>,
}

impl Response {
    pub fn data(data: Value) -> Self {
        Self {
            data: Some(data),
            ..Self::default()
        }
    }

    pub fn warnings(warnings: Vec<String>) -> Self {
        Self {
            warnings,
            ..Self::default()
        }
    }

    pub fn auth(auth: Value) -> Self {
        Self {
            auth: Some(auth),
            ..Self::default()
        }
    }

    /// Whether a LIST answer has keys; Vault turns one without into a 404.
    pub fn has_keys(&self) -> bool {
        self.data
            .as_ref()
            .and_then(|d| d.get("keys"))
            .and_then(Value::as_array)
            .is_some_and(|keys| !keys.is_empty())
    }

    /// `logical.HTTPResponse` with a fresh request ID. `mount_type` is empty for
    /// bodies a backend renders itself (`logical.RespondWithStatusCode`), because the
    /// router sets it only afterwards.
    pub fn envelope(&self, mount_type: &str) -> Value {
        json!({
            "request_id": ids::uuid(),
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": self.data,
            "wrap_info": null,
            "warnings": if self.warnings.is_empty() { Value::Null } else { json!(self.warnings) },
            "auth": self.auth,
            "mount_type": mount_type,
        })
    }
}

/// What a backend handler returns, mirroring `(*logical.Response, error)`.
#[derive(Debug)]
pub enum Outcome {
    /// A nil response: 404 `{"errors":[]}` for reads and lists, 204 otherwise.
    Nil,
    /// A response wrapped in the envelope, 200.
    Resp(Response),
    /// `logical.RespondWithStatusCode`: the given status with the envelope as the
    /// body, or an empty body when the response is nil.
    Raw { status: u16, resp: Option<Response> },
}

/// An error answer; `message: None` renders as `{"errors":[]}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: Option<String>,
}

pub type Handled = Result<Outcome, ApiError>;

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
        }
    }

    /// `logical.ErrorResponse(msg)` with `logical.ErrInvalidRequest` (or no error):
    /// 400 with the response's message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// A `logical.CodedError(status, msg)` returned as a handler's error: request
    /// handling wraps it in a multierror (vault/request_handling.go), and
    /// `AdjustErrorStatusCode` takes the status from inside it.
    pub fn coded(status: u16, message: impl Into<String>) -> Self {
        Self::new(status, gofmt::multierror(&[message.into()]))
    }

    /// A `logical.CodedError(403, msg)`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }

    /// A missing, unknown, expired or revoked token (`logical.ErrPermissionDenied`,
    /// returned unwrapped by `fetchACLTokenEntryAndEntity`).
    pub fn permission_denied() -> Self {
        Self::forbidden("permission denied")
    }

    /// A valid token whose policies do not allow the operation: `checkToken` appends
    /// `ErrPermissionDenied` to a multierror.
    pub fn acl_denied() -> Self {
        Self::forbidden(gofmt::multierror(&["permission denied".to_string()]))
    }

    /// `logical.ErrUnsupportedPath`, wrapped in a multierror by `handleRequest`.
    pub fn unsupported_path() -> Self {
        Self::new(404, gofmt::multierror(&["unsupported path".to_string()]))
    }

    /// `logical.ErrUnsupportedOperation`: 405.
    pub fn unsupported_operation() -> Self {
        Self::new(
            405,
            gofmt::multierror(&["unsupported operation".to_string()]),
        )
    }

    /// The router's answer for a path under no mount (vault/router.go `routeCommon`).
    pub fn no_handler(path: &str) -> Self {
        Self::new(
            404,
            format!(
                "no handler for route {}. route entry not found.",
                gofmt::quote(path)
            ),
        )
    }

    /// `consts.ErrSealed`.
    pub fn sealed() -> Self {
        Self::new(503, "Vault is sealed")
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        match e.message {
            Some(message) => Reply::error(e.status, message),
            None => Reply::no_errors(e.status),
        }
    }
}
