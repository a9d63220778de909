//! One error type for every Mux call, sorted by what the caller should do about it.

use std::time::Duration;

/// What a caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Mux is unavailable, slow or rate limiting: the same request may succeed later.
    RetryLater,
    /// The request is wrong (400, 422, ...): retrying it unchanged will fail again.
    BadRequest,
    /// The token is missing, wrong or lacks permission (401, 403).
    Credentials,
    /// The asset or live stream does not exist in this environment (404).
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("Mux refused the credentials (HTTP {status}): {message} [request {request_id}]")]
    Credentials {
        status: u16,
        message: String,
        request_id: String,
    },
    #[error("not found in Mux: {message} [request {request_id}]")]
    NotFound { message: String, request_id: String },
    #[error("Mux rejected the request (HTTP {status}, {kind}): {message} [request {request_id}]")]
    BadRequest {
        status: u16,
        kind: String,
        message: String,
        request_id: String,
    },
    #[error("Mux is rate limiting this environment; gave up after {attempts} attempts")]
    RateLimited {
        attempts: u32,
        retry_after: Option<Duration>,
    },
    #[error("Mux is unavailable: {message} (after {attempts} attempts)")]
    Unavailable { message: String, attempts: u32 },
    #[error("Mux answered a body that does not parse: {message} [request {request_id}]")]
    Decode { message: String, request_id: String },
    #[error("invalid Mux client configuration: {0}")]
    Config(String),
}

impl MuxError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MuxError::Credentials { .. } => ErrorKind::Credentials,
            MuxError::NotFound { .. } => ErrorKind::NotFound,
            MuxError::BadRequest { .. } | MuxError::Config(_) => ErrorKind::BadRequest,
            // A garbled body is most likely a proxy or a bad deploy: worth another try.
            MuxError::RateLimited { .. }
            | MuxError::Unavailable { .. }
            | MuxError::Decode { .. } => ErrorKind::RetryLater,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::RetryLater
    }

    /// A short, stable label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            MuxError::Credentials { .. } => "MuxCredentialsRejected",
            MuxError::NotFound { .. } => "NotFound",
            MuxError::BadRequest { .. } => "MuxRejectedRequest",
            MuxError::RateLimited { .. } => "MuxRateLimited",
            MuxError::Unavailable { .. } => "MuxUnavailable",
            MuxError::Decode { .. } => "MuxBadResponse",
            MuxError::Config(_) => "InvalidConfiguration",
        }
    }
}
