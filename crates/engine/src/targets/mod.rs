//! Targets: where desired states are synced. One trait, one closed registry
//! ([`build`]); each backend lives in its own folder with the same files (config example in
//! `mod.rs`, client, error mapping).

pub mod aws_sm;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use secretsync_core::config::{TargetBackend, TargetConfig};
use secretsync_core::diff::TargetPlan;
use secretsync_core::secret::Bundle;

use crate::aws::AwsContext;
use crate::error::Result;

pub use secretsync_core::diff::ApplyReport;

/// A sync target.
#[async_trait]
pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    /// Reads the target's current state ahead of planning (the pipeline runs this while it
    /// reads Vault); the next [`Target::plan`] uses it instead of reading again.
    async fn prefetch(&self);
    /// Compares the desired state with the target's current state.
    async fn plan(&self, desired: &Bundle) -> Result<TargetPlan>;
    /// Applies a plan as a unit: on a failed write, or when `cancel` is set (Ctrl-C), stops
    /// starting writes, rolls back what it did and reports it.
    async fn apply(&self, plan: &TargetPlan, cancel: &AtomicBool) -> ApplyReport;
    /// API calls made so far (attempts, retries included).
    fn calls(&self) -> u64;
}

/// The registry: one arm per target kind.
pub async fn build(cfg: &TargetConfig, aws: &AwsContext) -> Result<Arc<dyn Target>> {
    match &cfg.backend {
        TargetBackend::AwsSecretsManager(sm) => {
            Ok(Arc::new(aws_sm::AwsSmTarget::new(&cfg.name, sm, aws).await))
        }
    }
}
