//! Merge stores: where merged bundles are kept between the merge and the sync phase (and for
//! other pipelines to import). One trait ([`MergeStore`]), one registry ([`build`]).
//!
//! ```yaml
//! merge_store: { enabled: true, type: s3, bucket: my-merge-store, prefix: merged/, region: us-east-1 }
//! # or: merge_store: { type: vault, mount: secretsync/merged/ }
//! ```
//!
//! The bundle logic is written once, in [`manifest`], over a small object interface
//! ([`Objects`]: get, put, create-if-absent, delete-many) that each backend implements:
//! [`s3`] (objects in a bucket under a prefix) and [`vault`] (KV v2 secrets under a mount).
//!
//! Layout below the store's root (`<prefix>` or `<mount>`), with `<suffix>` `.json` on S3 and
//! empty in Vault:
//! * `<bundle>/<relative path><suffix>`: one object per secret, its canonical JSON;
//! * `<bundle>.bundle<suffix>`: the manifest, each secret's keyed fingerprint plus whether the
//!   bundle is complete;
//! * `.secretsync/fingerprint-key`: the store's random fingerprint key, created once.

pub mod manifest;
pub mod s3;
pub mod vault;

use std::sync::Arc;

use async_trait::async_trait;
use secretsync_core::config::MergeStoreConfig;
use secretsync_core::secret::Bundle;

pub use manifest::{Manifest, ManifestStore};

use crate::aws::AwsContext;
use crate::error::Result;
use crate::vault::VaultClient;

/// What writing a bundle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub written: usize,
    pub unchanged: usize,
    pub deleted: usize,
    /// Unchanged objects copied in place under the configured KMS key (S3 after a change of
    /// `kms_key_id`).
    pub reencrypted: usize,
}

/// A bundle read back from a store: its secrets (each verified against the manifest) and why
/// it is incomplete, if it is (which source paths the merge phase skipped).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredBundle {
    pub secrets: Bundle,
    pub incomplete: Vec<secretsync_core::secret::Gap>,
}

#[async_trait]
pub trait MergeStore: Send + Sync {
    /// Writes a bundle, replacing what was stored under that name. `incomplete` says which
    /// source paths were skipped while merging it (empty: the bundle is complete).
    async fn write_bundle(
        &self,
        name: &str,
        bundle: &Bundle,
        incomplete: &[secretsync_core::secret::Gap],
        run_id: &str,
    ) -> Result<WriteStats>;
    /// Reads a bundle and verifies every secret against its manifest; `None` when nothing is
    /// stored under that name.
    async fn read_bundle(&self, name: &str) -> Result<Option<StoredBundle>>;
    /// Where it is, for messages (`s3://bucket/prefix/`).
    fn location(&self) -> String;
    /// The objects it keeps bundles in: the history ([`crate::history`]) lives beside them.
    fn objects(&self) -> Arc<dyn Objects>;
    /// The store's fingerprint key (created when `create` and there is none yet).
    async fn fingerprint_key(
        &self,
        create: bool,
    ) -> Result<secretsync_core::fingerprint::FingerprintKey>;
}

/// What a store backend implements: named objects holding JSON. Keys are relative to the
/// store's root and already validated; the backend maps them to its own names.
#[async_trait]
pub trait Objects: Send + Sync {
    /// An object's bytes; `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Creates or replaces an object. `body` is a JSON object.
    async fn put(&self, key: &str, body: &[u8]) -> Result<()>;
    /// Creates an object only if none exists (atomically on the server); `false` when one
    /// already did.
    async fn create(&self, key: &str, body: &[u8]) -> Result<bool>;
    /// Deletes objects; absent ones are fine. An error names every key left undeleted.
    async fn delete_many(&self, keys: &[String]) -> Result<()>;
    /// The names directly below the folder `dir` (a key ending in `/`, or `""` for the root):
    /// objects without the suffix (`v3`), folders with a trailing `/` (`app/`). Read-only: it
    /// finds history records; nothing is ever deleted because it was listed.
    async fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Appended to secret and manifest keys (`.json` on S3).
    fn suffix(&self) -> &'static str;
    /// Where an object is, for messages (`s3://bucket/prefix/key`).
    fn describe(&self, key: &str) -> String;
    /// Where the store is, for messages.
    fn location(&self) -> String;
    /// The KMS key objects are written under (S3 with `kms_key_id`); `None`: the backend does
    /// not choose one.
    fn encryption_key(&self) -> Option<&str> {
        None
    }
    /// Re-encrypts one object under [`Objects::encryption_key`] if it is under another key:
    /// `true` when it was re-encrypted, `false` when it already was under that key or is
    /// absent.
    async fn reencrypt(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
}

/// The registry: one arm per store kind.
pub async fn build(
    cfg: &MergeStoreConfig,
    aws: Option<&AwsContext>,
    vault: Option<&VaultClient>,
) -> Result<Arc<dyn MergeStore>> {
    match cfg {
        MergeStoreConfig::S3 {
            bucket,
            prefix,
            region,
            kms_key_id,
        } => {
            let aws =
                aws.ok_or_else(|| crate::Error::config("the S3 merge store needs AWS access"))?;
            let region = region
                .clone()
                .or_else(|| aws.base().region().map(|r| r.to_string()))
                .unwrap_or_else(|| "us-east-1".into());
            let cfg = aws.config_for(&region, None, None).await;
            Ok(Arc::new(ManifestStore::new(s3::S3Objects::new(
                aws.s3(&cfg),
                aws.calls.clone(),
                bucket.clone(),
                prefix.clone(),
                kms_key_id.clone(),
            ))))
        }
        MergeStoreConfig::Vault { mount } => {
            let vault = vault
                .ok_or_else(|| crate::Error::config("the Vault merge store needs Vault access"))?;
            Ok(Arc::new(ManifestStore::new(vault::VaultObjects::new(
                vault.clone(),
                mount.clone(),
            ))))
        }
    }
}
