//! What an undelivered POST means for the target: the one place a receiver's answer becomes
//! an [`Error`]. Messages name the receiver by scheme and host only (its path may be a
//! credential).

use crate::error::{Error, ErrorKind};
use crate::hook::Undelivered;

/// `name`'s delivery (`what`: `change`, `deletion`) to `host` was given up.
pub fn undelivered(u: &Undelivered, what: &str, name: &str, host: &str) -> Error {
    undelivered_as(u, &format!("the {what} of `{name}`"), host)
}

/// A batch (`batch_size`) was not delivered: names its first changes and how many.
pub fn undelivered_batch(u: &Undelivered, names: &[&str], host: &str) -> Error {
    let shown: Vec<String> = names.iter().take(3).map(|n| format!("`{n}`")).collect();
    let more = match names.len().saturating_sub(3) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let s = if names.len() == 1 { "" } else { "s" };
    undelivered_as(
        u,
        &format!(
            "the batch of {} change{s} ({}{more})",
            names.len(),
            shown.join(", ")
        ),
        host,
    )
}

fn undelivered_as(u: &Undelivered, subject: &str, host: &str) -> Error {
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
        format!("{subject} was not delivered to {host}: {}{hint}", u.why),
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
