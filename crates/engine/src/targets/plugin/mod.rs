//! The `plugin` target: an external program that speaks SecretSync's plugin protocol (version
//! 1: JSON lines on stdin/stdout; `docs/targets/plugin.md` is the reference), so a team can add
//! a destination in any language. `examples/plugins/dir_store.py` is one (Python, standard
//! library only).
//!
//! ```yaml
//! targets:
//!   - name: custom
//!     type: plugin
//!     command: [python3, examples/plugins/dir_store.py, --root, /var/lib/secrets]
//!     timeout: 30s                  # per request
//!     env: { STORE_TOKEN: "${STORE_TOKEN}" }
//!     imports: [base]
//! ```
//!
//! The plugin is started when the target is first used (`hello`: its protocol version,
//! capabilities and name rules), is sent one request at a time, and is stopped with `bye` when
//! the run is done. Plan: a paged `list` gives every name below the prefix with its version and
//! marks (the ownership marks SecretSync wrote, which the plugin stores beside the value); values
//! are `read` only where the marks do not prove them unchanged. Apply: every `write` and `delete`
//! is conditional on the version the plan saw (`expected_version`), a write of a value makes
//! the next version, and the marks travel with the value in the same request. On a failure the
//! target is rolled back in reverse order: a created secret is deleted, an update is undone by
//! writing the previous value back, a deletion by writing the deleted value (read just before
//! deleting it) back.
//!
//! The fingerprint key is a secret of the plugin's store like the others
//! (`.secretsync/fingerprint-key`, created with `expected_version: 0`); the lease lives in the
//! S3 merge store's bucket when the config has one ([`crate::lease::s3`]), otherwise in a lock
//! file on this machine ([`crate::lease::local`]: two runs on different machines are then not
//! excluded).
//!
//! A plugin that cannot be started, exits, hangs past `timeout`, prints a line that is not an
//! answer (not JSON, the wrong `id`, longer than 16 MiB) or speaks another protocol version fails
//! its target with an error naming its command and the request; it is stopped, and started again
//! by the next request (a rollback's, typically).
//!
//! Files: `mod.rs` ([`build`], the registry's arm), `client.rs` (the `Target` implementation),
//! `session.rs` (the process: start, one request at a time, time limits, stop), `protocol.rs`
//! (the messages and the bounded line framing), `error.rs` (the plugin's error codes and its
//! failures to answer, worded).

mod client;
pub mod error;
pub mod protocol;
mod session;

use std::sync::Arc;

use secretsync_core::config::TargetConfig;
use secretsync_core::targets::plugin::PluginSettings;

pub use client::{KEY_NAME, PluginTarget};

use super::{Clients, Target};
use crate::error::Result;

/// The target of `cfg`, as the registry ([`super::build`]) builds it: the plugin is started
/// when the target is first used.
pub async fn build(
    cfg: &TargetConfig,
    settings: &PluginSettings,
    clients: &Clients<'_>,
) -> Result<Arc<dyn Target>> {
    let leases = super::support::leases(clients).await;
    Ok(Arc::new(PluginTarget::observed(
        &cfg.name,
        clients.owner,
        &cfg.policy,
        settings,
        leases,
        clients.observers.clone(),
    )))
}
