//! The `webhook` target: for systems with no secret store of their own. Each changed secret is
//! POSTed as JSON to the configured URL, signed, with an idempotency key, retried and paced.
//!
//! ```yaml
//! merge_store: { type: s3, bucket: my-merge-store }
//! targets:
//!   - name: hook
//!     type: webhook
//!     url: http://127.0.0.1:9000/secrets   # https unless loopback
//!     secret: ${HOOK_SECRET}
//!     writes_per_second: 5                 # the target's rate
//!     delete_orphans: true                 # orphans are POSTed as {name, deleted: true}
//!     imports: [base]
//! ```
//!
//! Bodies: `{"name", "path", "version", "value"}` for a change, `{"name", "deleted": true}`
//! for an orphan (only with `delete_orphans`). Headers: `X-SecretSync-Signature:
//! sha256=<hex HMAC-SHA256 of the body under secret>` (`secretsync_core::notify::signature`),
//! `X-SecretSync-Delivery` and `Idempotency-Key` (the same value, derived from owner scope,
//! target, the state's random epoch, name, version and fingerprint: stable across retries and
//! re-runs of one change, never repeated by a state made again),
//! `X-SecretSync-Event` (`secret_changed`, `secret_deleted`), `X-SecretSync-Attempt`. The POST
//! and its retries are [`crate::hook::send`], shared with the run's notifications. With
//! `batch_size` > 1, changes go in `{"secrets": [ … ]}` bodies of up to that many (the
//! `client::batch` module).
//!
//! A webhook has no readable state: what was delivered (per name: the keyed fingerprint of
//! the value, a version counter, the time; never a value) is kept in the S3 merge store at
//! `.secretsync/webhook/<owner scope>/<target>/state.json`, read for the plan like other kinds
//! read their marks, and written after every apply, a failed one included (what was delivered
//! before a failure stays recorded, so a re-run does not send it again). The fingerprints use
//! the merge store's key. Everything in the state is this target's: a webhook has no foreign
//! or unmanaged secrets. A POST cannot be unsent: a failed apply rolls nothing back, and the
//! report names what was delivered as left written. The lease lives in the store's bucket
//! ([`crate::lease::s3`]); a Vault merge store is refused by validation.
//!
//! Files: `mod.rs` ([`build`]), `client.rs` (the `Target`: state, plan, deliveries), `error.rs`
//! (what an undelivered POST means for the target).

mod client;
pub mod error;

use std::sync::Arc;

use secretsync_core::config::{MergeStoreConfig, TargetConfig};
use secretsync_core::targets::webhook::WebhookSettings;

pub use client::{WebhookTarget, state_key};

use super::{Clients, Target};
use crate::error::{Error, Result};

/// The target of `cfg`, as the registry ([`super::build`]) builds it: nothing is sent until
/// it is first used.
pub async fn build(
    cfg: &TargetConfig,
    settings: &WebhookSettings,
    clients: &Clients<'_>,
) -> Result<Arc<dyn Target>> {
    let needs = |what: &str| {
        Error::config(format!(
            "target `{}` is a webhook target, which keeps what it delivered in {what}",
            cfg.name
        ))
    };
    let Some((store_cfg, store)) = &clients.store else {
        return Err(needs(
            "the merge store; configure `merge_store: { type: s3, … }`",
        ));
    };
    let not_s3 = || needs("an S3 merge store (its lease lives in the store's bucket)");
    if !matches!(store_cfg, MergeStoreConfig::S3 { .. }) {
        return Err(not_s3());
    }
    let aws = clients.aws(&cfg.name)?;
    let leases = super::support::s3_leases(aws, store_cfg)
        .await
        .ok_or_else(not_s3)?;
    let http = crate::hook::client(settings.timeout).map_err(Error::config)?;
    Ok(Arc::new(
        WebhookTarget::new(
            &cfg.name,
            clients.owner,
            &cfg.policy,
            settings,
            store.clone(),
            Arc::new(leases),
            http,
        )
        .observed(clients.observers.clone()),
    ))
}
