//! The one place Secret Manager's answers are interpreted as errors: the client library's
//! [`google_cloud_gax::error::Error`] (a status with its code, or a transport, credentials or
//! decoding failure) mapped to [`ErrorKind`] with a message that says what to do. Not-found
//! is told apart by [`is_not_found`] so that callers make it an `Option`.

use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;

use crate::error::{Error, ErrorKind};

/// Whether the answer is NOT_FOUND (a missing secret or version).
pub fn is_not_found(e: &GaxError) -> bool {
    e.status().is_some_and(|s| s.code == Code::NotFound)
}

/// Whether the answer is ALREADY_EXISTS.
pub fn is_already_exists(e: &GaxError) -> bool {
    e.status().is_some_and(|s| s.code == Code::AlreadyExists)
}

/// Whether the answer is FAILED_PRECONDITION (a disabled or destroyed version).
pub fn is_failed_precondition(e: &GaxError) -> bool {
    e.status()
        .is_some_and(|s| s.code == Code::FailedPrecondition)
}

/// `e` from `operation` on `what` (a secret id, or the project), as the one [`Error`].
/// `idempotent`: a transport failure may be retried (it is not for writes that add a version,
/// whose first attempt may have landed).
pub fn map(e: &GaxError, operation: &str, what: &str, idempotent: bool) -> Error {
    let at = format!("{operation} `{what}`");
    if let Some(s) = e.status() {
        let msg = s.message.replace('\n', " ");
        let (kind, help) = match s.code {
            Code::PermissionDenied => (
                ErrorKind::PermissionDenied,
                "grant the credentials `roles/secretmanager.admin` on the project (or the secrets), and check that the Secret Manager API is enabled",
            ),
            Code::Unauthenticated => (
                ErrorKind::Auth,
                "the access token is missing, invalid or expired: refresh `auth.token`, or check the Google credentials (GOOGLE_APPLICATION_CREDENTIALS, workload identity)",
            ),
            Code::ResourceExhausted => (
                ErrorKind::Throttled,
                "a Secret Manager quota was exceeded: lower `writes_per_second`/`concurrency`, or ask for a higher quota",
            ),
            Code::AlreadyExists => (
                ErrorKind::Conflict,
                "it was created by someone else meanwhile; run again (the next plan sees it)",
            ),
            Code::Aborted | Code::FailedPrecondition => (
                ErrorKind::Conflict,
                "the secret changed meanwhile or is in a state that refuses this (a disabled or destroyed version); run again, and check that nobody else writes these secrets",
            ),
            Code::InvalidArgument | Code::OutOfRange => (
                ErrorKind::Config,
                "Secret Manager refused the request; check the target's `project`, `location` and `replication`",
            ),
            Code::NotFound => (
                ErrorKind::Config,
                "check `project` and `location` (and that the Secret Manager API is enabled in the project)",
            ),
            Code::Unavailable | Code::Internal | Code::DeadlineExceeded | Code::Unknown => (
                ErrorKind::Unavailable,
                "Secret Manager is unavailable; run again later",
            ),
            _ => (ErrorKind::Unexpected, "an unexpected answer; run again"),
        };
        let mut err = Error::new(
            kind,
            format!(
                "{at}: Secret Manager answered {} ({msg}); {help}",
                s.code.name()
            ),
        );
        if s.code == Code::Unknown && !idempotent {
            err.retryable = false;
        }
        return err;
    }
    if e.is_authentication() {
        return Error::new(
            ErrorKind::Auth,
            format!(
                "{at}: no usable Google credentials ({e}); set `auth.token`, GOOGLE_APPLICATION_CREDENTIALS (a service-account key file), or run with a workload identity"
            ),
        );
    }
    if e.is_timeout() || e.is_io() || e.is_connect() || e.is_transport() || e.is_exhausted() {
        let mut err = Error::new(
            ErrorKind::Unavailable,
            format!(
                "{at}: cannot reach Secret Manager ({e}); check `endpoint`, the network and, with `ca_cert`, the TLS trust (see docs/targets/gcp_secretmanager.md)"
            ),
        );
        // A connection that was never made cannot have written anything.
        if !idempotent && !e.is_connect() {
            err.retryable = false;
        }
        return err;
    }
    if let Some(code) = e.http_status_code() {
        return Error::new(
            if code >= 500 {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Unexpected
            },
            format!("{at}: Secret Manager answered HTTP {code} without a usable error body"),
        );
    }
    Error::new(
        ErrorKind::Unexpected,
        format!("{at}: an answer SecretSync cannot use ({e})"),
    )
}
