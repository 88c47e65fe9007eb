//! What the destination's answers mean for this target. The Vault client interprets every
//! status code (one place for all Vault calls, sources and targets alike); this module words
//! the target-level outcomes built on them: a check-and-set that was refused, a write whose
//! answer was lost, a connection that failed.

use crate::error::{Error, ErrorKind};

/// The path changed between the plan and the write (a check-and-set was refused).
pub fn changed_since_plan(name: &str, expected: u64) -> Error {
    let what = if expected == 0 {
        "created by someone else since the plan".to_string()
    } else {
        format!("changed by someone else since the plan (it is no longer at version {expected})")
    };
    Error::new(
        ErrorKind::Conflict,
        format!(
            "`{name}` was {what}; nothing was written to it. Run again to plan from its new state"
        ),
    )
}

/// A write failed in a way that may have landed, and looking could not tell.
pub fn maybe_landed(err: Error, name: &str, version: u64) -> Error {
    Error::new(
        err.kind,
        format!(
            "{}; it may have landed as version {version} and its state could not be checked: look at `{name}`",
            err.message
        ),
    )
}

/// Context for every error of the target: which target, which destination. A credentials
/// problem points at the target's own `auth:` (the client's hints name the source's
/// environment variables, which a target never uses).
pub fn in_target(mut err: Error, target: &str, address: &str) -> Error {
    if err.kind == ErrorKind::Auth {
        err.message = format!(
            "{}; for this target, fix `auth:` in its config (VAULT_TOKEN, VAULT_ROLE_ID and VAULT_SECRET_ID are the source's and are never used)",
            err.message
        );
    }
    err.context(format!("target `{target}` ({address})"))
}
