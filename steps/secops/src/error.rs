//! The library's error type: every variant maps to one documented exit code and says what
//! to do next. No variant carries a secret value: only names, paths, versions and reasons.

use thiserror::Error;

use crate::exit::Exit;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// Bad flags, environment or reference: nothing was done.
    #[error("{0}")]
    Usage(String),
    /// The world is not as the step requires; a human must look.
    #[error("{object}: {reason}; {next}")]
    Precondition {
        object: String,
        reason: String,
        next: String,
    },
    /// A refusal already worded in full (object, reason, next step), e.g. one item of a
    /// batch that the step reported before; exit 3 like [`Error::Precondition`].
    #[error("{0}")]
    Refused(String),
    /// Something changed underneath us or the network failed; retrying may succeed.
    #[error("{0}; retry")]
    Transient(String),
    /// Vault is sealed, uninitialised, standby or unreachable.
    #[error("{0}; retry once Vault is available")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Precondition { .. } | Error::Refused(_) => Exit::Precondition,
            Error::Transient(_) => Exit::Transient,
            Error::Unavailable(_) => Exit::Unavailable,
            Error::Internal(_) => Exit::Internal,
        }
    }

    pub fn precondition(
        object: impl Into<String>,
        reason: impl Into<String>,
        next: impl Into<String>,
    ) -> Self {
        Error::Precondition {
            object: object.into(),
            reason: reason.into(),
            next: next.into(),
        }
    }

    /// A short machine-readable outcome for audit events.
    pub fn outcome(&self) -> &'static str {
        match self {
            Error::Usage(_) => "invalid",
            Error::Precondition { .. } | Error::Refused(_) => "refused",
            Error::Transient(_) => "retry",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "failed",
        }
    }
}
