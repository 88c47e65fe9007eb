//! What every target implementation shares: the apply ([`apply::run`]; a kind implements
//! [`apply::Apply`] with its backend calls), write pacing ([`Pacer`]), the fingerprint key's
//! get-or-create ([`key`]; a kind implements [`key::KeyStore`] for where it keeps the key), and
//! the plan's steps: the prefetched listing ([`Prefetched`]), the plan options
//! ([`plan_options`]), a plan from marks and the values they cannot prove
//! ([`plan_from_marks`]), the versions writes will make ([`set_new_versions`]) and what a change
//! writes ([`payload`]); the lease of kinds without conditional writes ([`leases`]).

pub mod apply;
pub mod key;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{self, ChangeKind, Listed, PlanOptions, SecretChange, TargetPlan};
use secretsync_core::fingerprint::{FingerprintKey, KEY_LEN};
use secretsync_core::secret::{Collected, Gap, SecretValue};
use secretsync_core::targets::TargetRules;
use tokio::sync::Mutex;
use tracing::debug;

use super::PlanContext;
use crate::error::{Error, ErrorKind, Result};

/// A listing taken ahead of planning ([`super::Target::prefetch`]); the next plan uses it once.
pub struct Prefetched<T>(Mutex<Option<Result<T>>>);

impl<T> Default for Prefetched<T> {
    fn default() -> Self {
        Prefetched(Mutex::new(None))
    }
}

impl<T> Prefetched<T> {
    pub async fn keep(&self, listing: Result<T>) {
        *self.0.lock().await = Some(listing);
    }

    /// The prefetched listing (taken), or the one `list` makes.
    pub async fn take_or(&self, list: impl Future<Output = Result<T>>) -> Result<T> {
        let prefetched = self.0.lock().await.take();
        match prefetched {
            Some(listing) => listing,
            None => list.await,
        }
    }
}

/// What the plan of `target` is made with: its policy and the kind's `rules`, the run's
/// `--allow-mass-delete`, and the gaps of the desired state.
pub fn plan_options(
    target: &str,
    owner: &str,
    policy: &TargetPolicy,
    rules: Arc<dyn TargetRules>,
    ctx: &PlanContext,
    incomplete: &[Gap],
) -> PlanOptions {
    PlanOptions {
        target: target.to_string(),
        rules,
        owner: owner.to_string(),
        adopt_from: policy.adopt_from.clone(),
        prefix: policy.secret_prefix.clone(),
        adopt: policy.adopt,
        delete_orphans: policy.delete_orphans,
        max_deletes: policy.max_deletes,
        max_delete_fraction: policy.max_delete_fraction,
        allow_mass_delete: ctx.allow_mass_delete,
        incomplete: incomplete.to_vec(),
    }
}

/// The plan of a kind whose listing carries the ownership marks: only the values the marks do
/// not prove unchanged are read (`read`, given their names), then the desired state is compared.
pub async fn plan_from_marks<F, Fut>(
    opts: &PlanOptions,
    key: &FingerprintKey,
    desired: &Collected,
    listed: &BTreeMap<String, Listed>,
    read: F,
) -> Result<TargetPlan>
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: Future<Output = Result<BTreeMap<String, SecretValue>>>,
{
    let wanted = diff::needs_value(opts, key, &desired.secrets, listed);
    debug!(target_name = %opts.target, listed = listed.len(), reads = wanted.len(), "listed the target");
    let values = read(wanted).await?;
    Ok(diff::plan(opts, key, &desired.secrets, listed, &values))
}

/// Sets the version each value write of `plan` will make, known before anything is written so
/// the plan can show it (`old → new`).
pub fn set_new_versions(plan: &mut TargetPlan, next: impl Fn(&SecretChange) -> String) {
    for c in &mut plan.changes {
        if matches!(c.kind, ChangeKind::Added | ChangeKind::Modified) && !c.retag {
            c.new_version = Some(next(c));
        }
    }
}

/// The value and fingerprint a change writes (a plan made for applying has both).
pub fn payload(c: &SecretChange) -> Result<(&SecretValue, &str)> {
    let missing = |what: &str| {
        Error::new(
            ErrorKind::Unexpected,
            format!("no {what} to write for `{}`", c.name),
        )
    };
    let value = c.new_value.as_ref().ok_or_else(|| missing("value"))?;
    let fingerprint = c
        .fingerprint
        .as_deref()
        .ok_or_else(|| missing("fingerprint"))?;
    Ok((value, fingerprint))
}

/// Spaces writes evenly: at most `per_second` starts per second (`writes_per_second`, a hard
/// ceiling); `0`: no ceiling (the adaptive limiters of `crate::pacing` still pace every call).
pub struct Pacer {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pacer {
    pub fn new(per_second: u32) -> Self {
        Pacer {
            next: Mutex::new(Instant::now()),
            interval: match per_second {
                0 => Duration::ZERO,
                n => Duration::from_secs_f64(1.0 / n as f64),
            },
        }
    }
    pub async fn wait(&self) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// A new random fingerprint key from the operating system.
pub fn random_key() -> Result<[u8; KEY_LEN]> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("cannot get random bytes from the operating system: {e}"),
        )
    })?;
    Ok(bytes)
}

/// The S3 merge store's bucket when there is one (shared by every machine), else a lock file
/// in the user's cache directory: the lease of every kind without conditional writes of its own
/// (`plugin`, `azure_keyvault`, `gcp_secretmanager`).
pub(crate) async fn leases(clients: &super::Clients<'_>) -> Arc<dyn crate::lease::LeaseBackend> {
    if let (Some(store), Some(aws)) = (clients.merge_store, clients.aws)
        && let Some(leases) = s3_leases(aws, store).await
    {
        return Arc::new(leases);
    }
    Arc::new(crate::lease::local::LocalLeases::in_user_cache(clients.env))
}

/// Leases in an S3 merge store's bucket (under its prefix, with its KMS key, in its region or
/// the default one); `None` when the store is not an S3 one.
pub(crate) async fn s3_leases(
    aws: &crate::aws::AwsContext,
    store: &secretsync_core::config::MergeStoreConfig,
) -> Option<crate::lease::s3::S3Leases> {
    let secretsync_core::config::MergeStoreConfig::S3 {
        bucket,
        prefix,
        region,
        kms_key_id,
    } = store
    else {
        return None;
    };
    let region = region
        .clone()
        .or_else(|| aws.base().region().map(|r| r.to_string()))
        .unwrap_or_else(|| "us-east-1".into());
    let cfg = aws.config_for(&region, None, None).await;
    Some(crate::lease::s3::S3Leases::new(
        aws.s3(&cfg),
        aws.calls.clone(),
        bucket.clone(),
        prefix.clone(),
        kms_key_id.clone(),
    ))
}
