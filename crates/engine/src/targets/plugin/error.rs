//! The one place a plugin's answers are interpreted as errors: its error codes mapped to
//! [`ErrorKind`], and the ways a plugin can fail to answer (it could not start, exited, hung,
//! printed something that is not an answer). Every message names the plugin's command and the
//! request, never a value (a plugin's own message is kept, made printable and cut short).

use std::time::Duration;

use super::protocol::Bad;
use crate::error::{Error, ErrorKind};

/// An error code a plugin answered (`error.code`), as an [`ErrorKind`].
pub fn kind_of(code: &str) -> ErrorKind {
    match code {
        "conflict" => ErrorKind::Conflict,
        "permission" => ErrorKind::PermissionDenied,
        "unavailable" => ErrorKind::Unavailable,
        "invalid" => ErrorKind::Config,
        _ => ErrorKind::Unexpected,
    }
}

/// The plugin refused a request: its code and message.
pub fn refused(what: &str, code: &str, message: &str) -> Error {
    let code_shown = if code.is_empty() { "(no code)" } else { code };
    let mut e = Error::new(
        kind_of(code),
        format!("{what}: the plugin answered `{code_shown}`: {message}"),
    );
    if ![
        "conflict",
        "permission",
        "unavailable",
        "invalid",
        "not_found",
    ]
    .contains(&code)
    {
        e.message
            .push_str(" (an unknown error code; plugins answer not_found, conflict, permission, unavailable or invalid)");
    }
    e
}

/// The program could not be started.
pub fn not_started(command: &str, e: &std::io::Error) -> Error {
    Error::config(format!(
        "cannot start the plugin `{command}`: {e}; check `command:` (the program is looked up in PATH, relative paths from the current directory)"
    ))
}

/// No answer within the request's time limit: the plugin is stopped.
pub fn timed_out(command: &str, op: &str, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "the plugin `{command}` did not answer `{op}` within {}; it was stopped (raise `timeout:` if it is only slow)",
            humantime::format_duration(limit)
        ),
    )
}

/// The plugin closed its stdout or exited before answering (`status`: how it ended, when known).
pub fn exited(command: &str, op: &str, status: Option<String>) -> Error {
    let how = status.map(|s| format!(" ({s})")).unwrap_or_default();
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "the plugin `{command}` exited before answering `{op}`{how}; its stderr is logged at debug level"
        ),
    )
}

/// Writing the request or reading the answer failed at the pipe.
pub fn io(command: &str, op: &str, e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("talking to the plugin `{command}` during `{op}` failed: {e}"),
    )
}

/// An answer that is not one (the plugin is stopped: it is out of step).
pub fn bad_answer(command: &str, op: &str, bad: &Bad) -> Error {
    let what = match bad {
        Bad::NotJson(why) => format!("answered `{op}` with a line that is {why}"),
        Bad::Shape(why) => format!("gave an unusable answer to `{op}`: {why}"),
        Bad::WrongId { expected, got } => format!(
            "answered request {expected} (`{op}`) with the id {}; it is out of step",
            got.map(|g| g.to_string())
                .unwrap_or_else(|| "missing".into())
        ),
    };
    Error::new(
        ErrorKind::Unexpected,
        format!(
            "the plugin `{command}` {what}; it was stopped (see the protocol in docs/targets/plugin.md)"
        ),
    )
}

/// A line longer than the limit (the plugin is stopped).
pub fn too_long(command: &str, op: &str, max: usize) -> Error {
    Error::new(
        ErrorKind::Unexpected,
        format!(
            "the plugin `{command}` answered `{op}` with a line longer than {} MiB; it was stopped",
            max >> 20
        ),
    )
}

/// Context for every error of the target.
pub fn in_target(err: Error, target: &str) -> Error {
    err.context(format!("target `{target}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(kind_of("conflict"), ErrorKind::Conflict);
        assert_eq!(kind_of("permission"), ErrorKind::PermissionDenied);
        assert_eq!(kind_of("unavailable"), ErrorKind::Unavailable);
        assert_eq!(kind_of("invalid"), ErrorKind::Config);
        assert_eq!(kind_of("other"), ErrorKind::Unexpected);
        let e = refused("writing `a`", "weird", "no");
        assert!(e.message.contains("unknown error code"), "{e}");
        assert!(
            !refused("writing `a`", "conflict", "no")
                .message
                .contains("unknown")
        );
    }
}
