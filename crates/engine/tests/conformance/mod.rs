//! The conformance suite every target kind passes against its real server: one script over
//! `Arc<dyn Target>`, and a small [`Inspector`] per kind that looks at the server directly (not
//! through the target under test). A kind's test file builds a [`Fixture`] and calls the
//! suite's steps (see `aws_sm` in `target_conformance.rs`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use secretsync_core::config::TargetPolicy;
use secretsync_engine::targets::Target;
use serde_json::Value;

/// Looks at a target's server directly.
#[async_trait]
pub trait Inspector: Send + Sync {
    /// The name the target gives a relative path under `prefix` (as its rules do).
    fn name(&self, prefix: &str, path: &str) -> String;
    /// The current stored value of that name, parsed as JSON; `None` when absent or deleted.
    async fn value(&self, name: &str) -> Option<Value>;
    /// Its ownership marks (AWS tags, KV v2 `custom_metadata`, SSM tags); `None` when absent.
    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>>;
    /// How many versions it has (unchanged secrets must not get new ones).
    async fn versions(&self, name: &str) -> usize;
    /// Writes a secret the tool does not manage (no marks).
    async fn create_unmanaged(&self, name: &str, value: &Value);
    /// Whether it is deleted (gone, pending deletion or soft-deleted: not readable as current).
    async fn is_deleted(&self, name: &str) -> bool;
}

/// Builds the target under test: `(target name, owner scope, policy)`.
pub type MakeTarget =
    Arc<dyn Fn(&str, &str, TargetPolicy) -> BoxFuture<'static, Arc<dyn Target>> + Send + Sync>;

/// One kind's setup for the suite.
#[derive(Clone)]
pub struct Fixture {
    pub make: MakeTarget,
    pub inspector: Arc<dyn Inspector>,
    /// A prefix unique to this run of the suite (every name is below it).
    pub prefix: String,
}
