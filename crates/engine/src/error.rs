//! The engine's one error type: a kind, a retryability flag, a message that says what to do,
//! and — for an error of a backend call — the call's facts ([`CallFacts`]: operation, path or
//! name, attempts, elapsed time, request id). Backends build it at their boundary (wire status
//! codes are interpreted in exactly one place per backend); the retry layer
//! ([`crate::retry`]) looks at `retryable` alone. Messages never carry secret values.

use std::fmt;
use std::time::Duration;

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
    /// The backend call that failed, when one did (the message says the same in words).
    pub call: Option<Box<CallFacts>>,
}

/// What a failed backend call was, as structured fields (`--log-format json`, spans): never a
/// secret value; the path or name is the secret's, as in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// The API operation (`kv.list`, `GetSecretValue`).
    pub operation: String,
    /// The Vault path or the AWS resource the call was about (`secret/metadata/app`,
    /// `prod/db`), or empty.
    pub path: String,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// All attempts and the waits between them.
    pub elapsed: Duration,
    /// The backend's request id when it sent one, else ours.
    pub request_id: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Throttled | ErrorKind::Unavailable);
        Error {
            kind,
            retryable,
            message: message.into(),
            call: None,
        }
    }

    /// The same error with the facts of the call it came from.
    pub fn with_call(mut self, facts: CallFacts) -> Self {
        self.call = Some(Box::new(facts));
        self
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

    /// The short name of the kind in reports and structured logs (`auth`, `throttled`,
    /// `unreachable`, `conflict`, …): see [`secretsync_core::diff::FailureKind`].
    pub fn failure_kind(&self) -> secretsync_core::diff::FailureKind {
        use secretsync_core::diff::FailureKind as F;
        match self.kind {
            ErrorKind::Config => F::Config,
            ErrorKind::Auth => F::Auth,
            ErrorKind::PermissionDenied => F::Permission,
            ErrorKind::Limit => F::Limit,
            ErrorKind::Throttled => F::Throttled,
            ErrorKind::Unavailable => F::Unreachable,
            ErrorKind::Unexpected => F::Unexpected,
            ErrorKind::Conflict => F::Conflict,
            ErrorKind::Locked => F::Locked,
            ErrorKind::Cancelled => F::Cancelled,
        }
    }

    /// Logs this error at `error` for `target`, with the failed call's facts as fields
    /// (`failure_kind`, `operation`, `path`, `attempts`, `elapsed_ms`, `request_id`; keys of
    /// their own under `--log-format json`).
    pub fn log_for_target(&self, target: &str, what: &str) {
        let kind = self.failure_kind().as_str();
        match self.call.as_deref() {
            Some(c) => tracing::error!(
                target_name = %target,
                failure_kind = kind,
                operation = %c.operation,
                path = %c.path,
                attempts = c.attempts,
                elapsed_ms = c.elapsed.as_millis() as u64,
                request_id = %c.request_id,
                error = %self.message,
                "{what}"
            ),
            None => tracing::error!(
                target_name = %target,
                failure_kind = kind,
                error = %self.message,
                "{what}"
            ),
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
