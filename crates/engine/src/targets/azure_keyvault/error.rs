//! The one place Key Vault's answers are interpreted: an Azure SDK error (its HTTP status, the
//! service's `{"error": {"code", "message", "innererror"}}` body, `Retry-After`) becomes the
//! engine's [`Error`] with a kind, a retryability flag and a message that says what to fix.
//! Not found is not an error here: callers ask [`Failure::is_not_found`] and answer `None`.

use std::time::Duration;

use azure_core::error::ErrorKind as AzKind;
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// The longest `Retry-After` honoured before the next attempt.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What one failed call answered.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: Option<u16>,
    /// The service's error code (`SecretNotFound`, `Conflict`, `Forbidden`, `Throttled`).
    pub code: Option<String>,
    /// Its inner code (`ObjectIsDeletedButRecoverable`, `ObjectIsBeingDeleted`).
    pub inner: Option<String>,
    /// The service's message (names, never values), cut to 300 characters.
    pub message: String,
    pub retry_after: Option<Duration>,
    /// The SDK's error kind when there was no HTTP answer.
    pub transport: Option<String>,
    /// Not sent: the run's observers refused the attempt (an open circuit breaker).
    pub refused: Option<Error>,
}

impl Failure {
    /// Nothing known yet.
    fn blank() -> Failure {
        Failure {
            status: None,
            code: None,
            inner: None,
            message: String::new(),
            retry_after: None,
            transport: None,
            refused: None,
        }
    }

    pub fn from_azure(e: &azure_core::Error) -> Failure {
        let mut f = Failure::blank();
        match e.kind() {
            AzKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                f.status = Some(u16::from(*status));
                f.code = error_code.clone();
                if let Some(r) = raw_response {
                    f.retry_after = r
                        .headers()
                        .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if let Ok(Value::Object(body)) =
                        serde_json::from_slice::<Value>(r.body().as_ref())
                        && let Some(Value::Object(err)) = body.get("error")
                    {
                        if let Some(Value::String(c)) = err.get("code") {
                            f.code = Some(c.clone());
                        }
                        if let Some(Value::String(m)) = err.get("message") {
                            f.message = m.chars().take(300).collect();
                        }
                        if let Some(Value::Object(i)) = err.get("innererror")
                            && let Some(Value::String(c)) = i.get("code")
                        {
                            f.inner = Some(c.clone());
                        }
                    }
                }
            }
            other => {
                f.transport = Some(format!("{other:?}"));
                f.message = e.to_string().chars().take(300).collect();
            }
        }
        f
    }

    /// An attempt the observers refused (`refusal` says why); never retried.
    pub fn refused(refusal: Error) -> Failure {
        Failure {
            refused: Some(refusal),
            ..Failure::blank()
        }
    }

    /// How the attempt ended, for the observers: not found is an answer like any other.
    pub fn outcome(&self) -> crate::observe::Outcome {
        use crate::observe::Outcome;
        match self.status {
            Some(404) => Outcome::Ok,
            Some(429) => Outcome::Throttled,
            Some(s) if s >= 500 => Outcome::Failed,
            Some(_) => Outcome::Refused,
            None => crate::observe::outcome_of_error(&self.to_error("")),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// Setting or recovering a name that is soft-deleted (409 `ObjectIsDeletedButRecoverable`).
    pub fn is_deleted_but_recoverable(&self) -> bool {
        self.status == Some(409)
            && (self.inner.as_deref() == Some("ObjectIsDeletedButRecoverable")
                || self.message.contains("deleted but recoverable"))
    }

    /// A deletion or recovery still in progress (409 `ObjectIsBeingDeleted` / `…Recovered`).
    pub fn is_in_progress(&self) -> bool {
        self.status == Some(409)
            && matches!(
                self.inner.as_deref(),
                Some("ObjectIsBeingDeleted" | "ObjectIsBeingRecovered")
            )
    }

    fn said(&self) -> String {
        let code = self.code.as_deref().unwrap_or("no error code");
        match (&self.status, self.message.is_empty()) {
            (Some(s), false) => format!("{s} {code}: {}", self.message),
            (Some(s), true) => format!("{s} {code}"),
            (None, _) => self.message.clone(),
        }
    }

    /// The engine error for `what` (`setting \`apps-sdb\``) at `vault`.
    pub fn to_error(&self, what: &str) -> Error {
        if let Some(e) = &self.refused {
            return e.clone();
        }
        let said = self.said();
        let (kind, help) = match self.status {
            None => match self.transport.as_deref() {
                Some("Credential") => (
                    ErrorKind::Auth,
                    "no Azure credential gave a token: set `auth: { token: … }`, or provide one of the identity chain's credentials (workload identity, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, a managed identity, `az login`)",
                ),
                Some("Connection" | "Io") => (
                    ErrorKind::Unavailable,
                    "check `vault_url` and the network (and `ca_cert` for a private CA)",
                ),
                _ => (
                    ErrorKind::Unexpected,
                    "check `vault_url` (and `ca_cert` for a private CA)",
                ),
            },
            Some(401) => (
                ErrorKind::Auth,
                "the vault refused the credentials: check that the token is for `https://vault.azure.net` and not expired, and that the identity is in the vault's tenant",
            ),
            Some(403) => (
                ErrorKind::PermissionDenied,
                "grant the identity the `Key Vault Secrets Officer` role on the vault (RBAC), or an access policy with secret get, list, set, delete, recover (and purge with `purge: true`); a firewall or private endpoint answers 403 too",
            ),
            Some(409) if self.is_deleted_but_recoverable() => (
                ErrorKind::Conflict,
                "the name is soft-deleted: recover it (`az keyvault secret recover`) or, if it is no longer needed, purge it; then run again",
            ),
            Some(409) => (
                ErrorKind::Conflict,
                "another change to this secret is in progress (a deletion or recovery, or another writer); run again",
            ),
            Some(404) => (
                ErrorKind::Conflict,
                "the secret is not there (deleted since the plan?); run again to plan from the vault's state",
            ),
            Some(429) => (
                ErrorKind::Throttled,
                "the vault throttled the requests past every retry: lower `writes_per_second` and `concurrency`, or run when the vault is less busy",
            ),
            Some(400) if self.message.to_ascii_lowercase().contains("tag") => (
                ErrorKind::Limit,
                "Key Vault allows 15 tags per secret: remove extra tags from the secret or from `tags:`",
            ),
            Some(400) => (
                ErrorKind::Unexpected,
                "Key Vault refused the request; check the name and the value's size (25 KiB at most)",
            ),
            Some(408 | 500..=599) => (
                ErrorKind::Unavailable,
                "the vault is unavailable; run again later",
            ),
            Some(_) => (
                ErrorKind::Unexpected,
                "Key Vault answered something unexpected",
            ),
        };
        let retry = match self.retry_after {
            Some(d) if self.status == Some(429) => format!(" (Retry-After {}s)", d.as_secs()),
            _ => String::new(),
        };
        Error::new(
            kind,
            format!("{what}: the vault answered {said}{retry}; {help}"),
        )
    }
}

/// Context for every error of the target: which target, which vault.
pub fn in_target(err: Error, target: &str, vault: &str) -> Error {
    err.context(format!("target `{target}` ({vault})"))
}
