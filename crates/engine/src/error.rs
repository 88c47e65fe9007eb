//! The engine's one error type: a kind, a retryability flag, and a message that says what to
//! do. Backends build it at their boundary (wire status codes are interpreted in exactly one
//! place per backend); retry logic looks at `retryable` alone. Messages never carry secret
//! values.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration or input found at run time.
    Config,
    /// Credentials missing, invalid or expired.
    Auth,
    /// The credentials work but lack a permission.
    PermissionDenied,
    /// A limit was exceeded (`max_secrets`, `max_deletes`, AWS sizes).
    Limit,
    /// Throttled by the service.
    Throttled,
    /// The service could not be reached or answered 5xx.
    Unavailable,
    /// The service answered something we cannot use.
    Unexpected,
    /// A conflicting state (e.g. a secret owned by someone else).
    Conflict,
    /// Another run holds the lease on a target and did not release it within the wait
    /// (`--lock-timeout`), or this run lost its lease while applying.
    Locked,
    /// The run was cancelled.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub retryable: bool,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Throttled | ErrorKind::Unavailable);
        Error {
            kind,
            retryable,
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A short label of the kind for reports (`permission denied`).
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            ErrorKind::Config => "configuration error",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Limit => "limit exceeded",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unavailable => "service unavailable",
            ErrorKind::Unexpected => "unreadable answer",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Locked => "held by another run",
        }
    }

    /// Adds context in front of the message (`reading secret/app: ...`).
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
