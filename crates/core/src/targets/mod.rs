//! Target kinds, the pure part: each kind is one module here with its settings (raw YAML shape
//! and validated form, validation beside them) and its rules for the plan (how a relative path
//! becomes a name, which names and sizes the backend accepts). The IO half of each kind lives in
//! `secretsync-engine`'s `targets/<kind>/` folder.
//!
//! Adding a kind: a module here (raw settings through [`crate::raw_target!`], settings,
//! `lower`, rules), one variant in [`crate::config::RawTarget`] and [`crate::config::TargetBackend`]
//! with their match arms, and the engine folder with its arm in `targets::build`.

pub mod aws_sm;
pub mod aws_ssm;
pub mod azure_keyvault;
pub mod gcp_secretmanager;
pub mod plugin;
#[cfg(test)]
mod test_util;
pub mod vault_kv2;
pub mod webhook;

use std::fmt::Debug;

/// What the backend-neutral plan needs to know about a target kind.
pub trait TargetRules: Debug + Send + Sync {
    /// The name in the target for a secret's relative path under `prefix`.
    fn name(&self, prefix: &str, path: &str) -> String {
        format!("{prefix}{path}")
    }
    /// The relative path of a name in the target, if the name is under `prefix` (the inverse
    /// of [`TargetRules::name`]).
    fn path_of(&self, prefix: &str, name: &str) -> Option<String> {
        name.strip_prefix(prefix).map(str::to_string)
    }
    /// Checks a configured `secret_prefix`.
    fn check_prefix(&self, prefix: &str) -> Result<(), String>;
    /// Checks a full name before any write.
    fn check_name(&self, name: &str) -> Result<(), String>;
    /// Checks a value's size (its canonical JSON, in bytes) before any write.
    fn check_size(&self, bytes: usize) -> Result<(), String>;
}
