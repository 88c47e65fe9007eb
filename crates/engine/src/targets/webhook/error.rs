//! What an undelivered POST means for the target: the one place a receiver's answer becomes
//! an [`Error`]. Messages name the receiver by scheme and host only (its path may be a
//! credential).

use crate::error::{Error, ErrorKind};
use crate::hook::Undelivered;

/// `name`'s delivery (`what`: `change`, `deletion`) to `host` was given up.
pub fn undelivered(u: &Undelivered, what: &str, name: &str, host: &str) -> Error {
    let kind = if u.refused {
        ErrorKind::Unexpected
    } else {
        ErrorKind::Unavailable
    };
    let hint = if u.refused {
        "; the receiver refused it: check its logs and the target's `secret`"
    } else {
        "; the receiver is down or overloaded: run again once it answers (what was delivered is recorded and not sent again)"
    };
    Error::new(
        kind,
        format!(
            "the {what} of `{name}` was not delivered to {host}: {}{hint}",
            u.why
        ),
    )
}

/// The state in the merge store could not be read or written.
pub fn state(e: Error, target: &str, doing: &str) -> Error {
    Error::new(
        e.kind,
        format!(
            "target `{target}`: {doing} the webhook state failed: {}",
            e.message
        ),
    )
}
