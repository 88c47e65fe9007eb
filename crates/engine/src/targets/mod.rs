//! Targets: where desired states are synced. One trait ([`Target`]), one closed registry
//! ([`build`]); each kind lives in its own folder with the same files: `mod.rs` (docs with a
//! config example, what lives where, and the kind's `build`: its registry arm), `client.rs`
//! (the [`Target`] implementation), `error.rs` (the one place the backend's answers are
//! interpreted). What the kinds share is in [`support`].
//!
//! Adding a kind, the engine half (the pure half is `secretsync_core::targets::<kind>`):
//!
//! 1. The folder `<kind>/` with those files. `client.rs` makes the plan from the shared steps
//!    ([`support::Prefetched`], [`support::plan_options`], and [`support::plan_from_marks`]
//!    when its listing carries the marks), keeps its fingerprint key through
//!    [`support::key::get_or_create`] (implementing [`support::key::KeyStore`] for where the
//!    key lives), and applies through [`support::apply::run`] (implementing
//!    [`support::apply::Apply`]: write, delete and undo one change).
//! 2. An AWS kind builds its SDK client in its folder from the config
//!    [`AwsContext::config_for`] returns, with its [`crate::aws::CallCounter`] attached
//!    (`.interceptor(counter.clone())`); its `build` checks its service's
//!    `AWS_ENDPOINT_URL_<SERVICE>` with [`crate::aws::check_endpoint_var`] before the client
//!    exists; its `error.rs` lists the service's own codes ([`crate::aws::ServiceErrors`],
//!    read by [`crate::aws::map_error`]); its lease can live in Secrets Manager
//!    ([`aws_sm::client`], [`aws_sm::leases`]). See `aws_ssm`.
//! 3. Registration: its `pub mod` line here and its arm in [`build`] (and its SDK crate in
//!    `Cargo.toml`). Nothing else in the engine names a kind.

pub mod aws_sm;
pub mod aws_ssm;
pub mod azure_keyvault;
pub mod gcp_secretmanager;
pub mod plugin;
pub mod support;
pub mod vault_kv2;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use secretsync_core::config::{TargetBackend, TargetConfig};
use secretsync_core::diff::TargetPlan;
use secretsync_core::secret::Collected;

use crate::aws::AwsContext;
use crate::cancel::Cancel;
use crate::error::Result;

/// What a plan needs from the run beyond the target's settings.
#[derive(Debug, Clone, Default)]
pub struct PlanContext {
    /// Nothing will be written: bookkeeping the plan would create (the fingerprint key) is
    /// not created.
    pub dry_run: bool,
    /// `--allow-mass-delete`.
    pub allow_mass_delete: bool,
}

pub use secretsync_core::diff::ApplyReport;

/// A sync target.
#[async_trait]
pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    /// Reads the target's current state ahead of planning (the pipeline runs this while it
    /// reads Vault); the next [`Target::plan`] uses it instead of reading again.
    async fn prefetch(&self);
    /// Compares the desired state with the target's current state. An incomplete desired
    /// state plans no deletion.
    async fn plan(&self, desired: &Collected, ctx: &PlanContext) -> Result<TargetPlan>;
    /// Applies a plan as a unit: on a failed write, or when `cancel` is set (a signal, a lost
    /// lease), stops starting writes, rolls back what it did and reports it.
    async fn apply(&self, plan: &TargetPlan, cancel: &Cancel) -> ApplyReport;
    /// API calls made so far (attempts, retries included).
    fn calls(&self) -> u64;
    /// Where this target's lease lives (so two runs never apply it at once).
    fn lease_backend(&self) -> Arc<dyn crate::lease::LeaseBackend>;
}

/// What targets are built from: the run's shared clients and identity.
pub struct Clients<'a> {
    /// AWS access (credentials chain, per-role configs), when the run has it.
    pub aws: Option<&'a AwsContext>,
    /// The deployment's owner scope, written into every ownership mark.
    pub owner: &'a str,
    /// The environment, for targets that log in on their own (credentials from env vars) and
    /// for the endpoint override of a target's own service (`AWS_ENDPOINT_URL_<SERVICE>`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Who sees every call (metrics, circuit breakers, tracing); AWS clients get theirs through
    /// [`AwsContext::counter_for`].
    pub observers: crate::observe::Observers,
    /// How calls are retried (`retries:`): a Vault target's per `vault_max_attempts`, GCP's
    /// and Azure's per their own keys; AWS clients get theirs through
    /// [`AwsContext::counter_for`].
    pub retries: secretsync_core::config::RetriesConfig,
    /// The run's merge store and its config, when the config has one: a kind without readable
    /// state of its own (`webhook`) keeps its state there.
    pub store: Option<(
        &'a secretsync_core::config::MergeStoreConfig,
        Arc<dyn crate::store::MergeStore>,
    )>,
    /// The config's merge store, for targets that keep their lease in it (`plugin`).
    pub merge_store: Option<&'a secretsync_core::config::MergeStoreConfig>,
}

impl Clients<'_> {
    fn aws(&self, target: &str) -> Result<&AwsContext> {
        self.aws.ok_or_else(|| {
            crate::Error::config(format!(
                "target `{target}` needs AWS access, which this run has not loaded"
            ))
        })
    }
}

/// The registry: one arm per target kind (each folder's `build`).
pub async fn build(cfg: &TargetConfig, clients: &Clients<'_>) -> Result<Arc<dyn Target>> {
    match &cfg.backend {
        TargetBackend::AwsSecretsManager(settings) => aws_sm::build(cfg, settings, clients).await,
        TargetBackend::VaultKv2(settings) => Ok(vault_kv2::build(cfg, settings, clients)),
        TargetBackend::AwsSsm(settings) => aws_ssm::build(cfg, settings, clients).await,
        TargetBackend::Webhook(settings) => webhook::build(cfg, settings, clients).await,
        TargetBackend::Plugin(settings) => plugin::build(cfg, settings, clients).await,
        TargetBackend::AzureKeyVault(settings) => {
            azure_keyvault::build(cfg, settings, clients).await
        }
        TargetBackend::GcpSecretManager(settings) => {
            gcp_secretmanager::build(cfg, settings, clients).await
        }
    }
}
