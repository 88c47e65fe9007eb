//! The `vault_kv2` target: syncs into another Vault or OpenBao (another cluster, namespace or
//! mount), a common way to feed regional Vaults.
//!
//! ```yaml
//! targets:
//!   - name: regional-vault
//!     type: vault_kv2
//!     address: http://127.0.0.1:8300      # https unless loopback, like `vault.address`
//!     auth: { token: { token: ${OTHER_VAULT_TOKEN} } }   # same shape as `vault.auth`
//!     namespace: team-a                   # optional; ca_cert: optional
//!     mount: synced/                      # KV v2 mount (+ optional sub-path)
//!     secret_prefix: apps/                # path below the mount = prefix + relative path
//!     destroy: false                      # orphans: soft delete (recoverable) by default
//!     delete_orphans: true
//!     imports: [base]
//! ```
//!
//! Plan: the folders under the prefix are listed, then one metadata read per secret gives
//! its ownership marks (`custom_metadata`), `current_version` and whether the latest version
//! is soft-deleted ("pending deletion"); KV v2 has no bulk metadata call. Values are read (at
//! the listed version) only for secrets whose marks do not prove them unchanged. Apply:
//! every write is a check-and-set against the version the plan saw, then the marks are
//! written to `custom_metadata` with the version written; an unchanged secret gets no new
//! version. Orphans are soft-deleted (their listed version, recoverable with `undelete`),
//! or with `destroy: true` soft-deleted and then, once every deletion succeeded, destroyed
//! with their metadata. On a failure the target is rolled back in reverse order: a created
//! secret is removed, an update is undone by writing the previous value back as a new
//! version and restoring the previous `custom_metadata`, a deletion is undeleted.
//!
//! The bookkeeping lives in the destination beside the secrets:
//! `<mount>.secretsync/fingerprint-key` (created with check-and-set 0, so concurrent first
//! runs agree on one key) and the run leases `<mount>.secretsync/locks/<owner>/<target>`
//! ([`crate::lease::vault_kv`]).
//!
//! The connection is made when the target is first used (its lease, or the listing), so a
//! destination that is down fails this target only.
//!
//! Files: `mod.rs` ([`build`], the registry's arm), `client.rs` (the `Target` implementation:
//! the connection, the lease backend on it, listing, value reads, where the fingerprint key is
//! kept, and the writes, the `destroy: true` step and their undo that `support::apply` drives),
//! `error.rs` (the target-level wording of the destination's answers; the Vault client
//! interprets the status codes).

mod client;
pub mod error;

use std::sync::Arc;

use secretsync_core::config::{TargetConfig, VaultKv2Settings};

pub use client::{KEY_PATH, VaultKv2Target};

use super::{Clients, Target};

/// The target of `cfg`, as the registry ([`super::build`]) builds it: nothing is sent until it
/// is first used.
pub fn build(
    cfg: &TargetConfig,
    settings: &VaultKv2Settings,
    clients: &Clients<'_>,
) -> Arc<dyn Target> {
    Arc::new(
        VaultKv2Target::new(&cfg.name, clients.owner, &cfg.policy, settings)
            .observed(clients.observers.clone())
            .retried(crate::retry::Policy::new(
                clients.retries.vault_max_attempts,
            )),
    )
}
