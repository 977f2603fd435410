//! The service-level error: what went wrong, in terms a client can act on. The HTTP layer maps
//! each kind to a status code and an OpenAI-shaped error body in exactly one place.

use std::time::Duration;

/// Result alias for service calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error returned by Cairn's services, classified by who must act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or names something invalid (HTTP 400).
    #[error("{message}")]
    InvalidRequest {
        /// Human-readable explanation.
        message: String,
        /// The request field at fault, if known.
        param: Option<String>,
    },
    /// No credentials, or credentials that do not match an active key (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The key is valid but its role does not allow this action (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The requested model is not configured (HTTP 404, code `model_not_found`).
    #[error("the model '{0}' does not exist")]
    ModelNotFound(String),
    /// The named thing does not exist, or is not visible to the caller (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The thing already exists or the state does not allow the change (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A per-key rate limit (requests or tokens per minute) is exhausted (HTTP 429).
    #[error("{message}")]
    RateLimited {
        /// Which limit, and its value.
        message: String,
        /// When the client may retry.
        retry_after: Duration,
    },
    /// The call's worst-case cost does not fit the key's monthly budget (HTTP 429, code
    /// `budget_exceeded`).
    #[error("{message}")]
    BudgetExceeded {
        /// Spent, held and needed amounts.
        message: String,
        /// When the budget may have room again (calls in flight settle, or the month ends).
        retry_after: Duration,
    },
    /// Every upstream target failed or was unavailable (HTTP 502, or 504 on timeouts).
    #[error("{message}")]
    Upstream {
        /// What happened on the last target tried.
        message: String,
        /// True when the last failure was a timeout.
        timeout: bool,
    },
    /// The upstream rejected the request as invalid; passed through to the client (HTTP 400).
    #[error("{message}")]
    UpstreamRejected {
        /// The upstream's own status code (4xx).
        status: u16,
        /// The upstream's error message.
        message: String,
    },
    /// Cairn is temporarily unable to take the request (HTTP 503).
    #[error("{message}")]
    Unavailable {
        /// Why.
        message: String,
        /// Suggested wait before retrying.
        retry_after: Option<Duration>,
    },
    /// A guard refused the call (HTTP 400 for input guards, 422 for output guards; type
    /// `guard_error`, code `guard_<name>`).
    #[error("blocked by the '{}' guard: {message}", guard.as_str())]
    GuardBlocked {
        /// Which guard.
        guard: crate::guard::GuardKind,
        /// What it found (never the personal data itself).
        message: String,
        /// The request field at fault, if known (`messages[2]`).
        param: Option<String>,
    },
    /// The input is larger than allowed (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// A fault inside Cairn: storage failure, a bug (HTTP 500). Details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A 400 error about one request field.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidRequest { message: message.into(), param: Some(param.into()) }
    }

    /// A 400 error not tied to one field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest { message: message.into(), param: None }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(what) => Error::NotFound(what),
            StoreError::Conflict(what) => Error::Conflict(what),
            StoreError::Backend(msg) => Error::Internal(msg),
        }
    }
}
