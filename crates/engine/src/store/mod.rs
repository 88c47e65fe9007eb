//! Merge stores: where merged bundles are kept between the merge and the sync phase (and for
//! other pipelines to import). One trait, one registry ([`build`]).
//!
//! ```yaml
//! merge_store: { enabled: true, type: s3, bucket: my-merge-store, prefix: merged/, region: us-east-1 }
//! # or: merge_store: { type: vault, mount: secretsync/merged/ }
//! ```
//!
//! Layout: one object per secret, `<prefix><bundle>/<relative path>.json`, plus a manifest
//! `<prefix><bundle>.bundle.json` listing each secret's content hash. Writing a bundle reads
//! the manifest, writes only secrets whose hash changed, deletes secrets no longer in the
//! bundle, then writes the manifest; reading a bundle reads the manifest and then each secret.

pub mod s3;
pub mod vault;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secretsync_core::config::MergeStoreConfig;
use secretsync_core::secret::Bundle;
use serde::{Deserialize, Serialize};

use crate::aws::AwsContext;
use crate::error::Result;
use crate::vault::VaultClient;

/// What a stored bundle holds: relative path -> content hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub bundle: String,
    pub secrets: BTreeMap<String, String>,
    pub run_id: String,
}

/// What writing a bundle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub written: usize,
    pub unchanged: usize,
    pub deleted: usize,
}

#[async_trait]
pub trait MergeStore: Send + Sync {
    /// Writes a bundle, replacing what was stored under that name.
    async fn write_bundle(&self, name: &str, bundle: &Bundle, run_id: &str) -> Result<WriteStats>;
    /// Reads a bundle; `None` when nothing is stored under that name.
    async fn read_bundle(&self, name: &str) -> Result<Option<Bundle>>;
    /// Where it is, for messages (`s3://bucket/prefix/`).
    fn location(&self) -> String;
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
            Ok(Arc::new(s3::S3Store::new(
                aws.s3(&cfg),
                bucket.clone(),
                prefix.clone(),
                kms_key_id.clone(),
            )))
        }
        MergeStoreConfig::Vault { mount } => {
            let vault = vault
                .ok_or_else(|| crate::Error::config("the Vault merge store needs Vault access"))?;
            Ok(Arc::new(vault::VaultStore::new(
                vault.clone(),
                mount.clone(),
            )))
        }
    }
}

/// Plans a bundle write against the previous manifest: (paths to write, paths to delete).
pub fn changed_paths(old: &Manifest, bundle: &Bundle) -> (Vec<String>, Vec<String>, Manifest) {
    let mut new = Manifest::default();
    let mut write = Vec::new();
    for (path, v) in bundle {
        let h = secretsync_core::fingerprint::legacy_content_hash(v);
        if old.secrets.get(path) != Some(&h) {
            write.push(path.clone());
        }
        new.secrets.insert(path.clone(), h);
    }
    let delete = old
        .secrets
        .keys()
        .filter(|p| !bundle.contains_key(*p))
        .cloned()
        .collect();
    (write, delete, new)
}
