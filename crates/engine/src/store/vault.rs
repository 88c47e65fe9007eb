//! The Vault merge store's objects: KV v2 secrets `<mount><key>`, each holding the object's
//! JSON map (a secret's value, a manifest, or the fingerprint key `{"key": ...}`). Deleting an
//! object removes all its versions.

use async_trait::async_trait;
use futures::{StreamExt, stream};
use secretsync_core::config::SourceConfig;
use secretsync_core::secret::SecretValue;
use tokio::sync::OnceCell;

use super::Objects;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::source::{ResolvedSource, resolve};
use crate::vault::{ReadOutcome, VaultClient};

/// Deletions in flight at once.
const DELETE_CONCURRENCY: usize = 8;

pub struct VaultObjects {
    client: VaultClient,
    mount: String,
    at: OnceCell<ResolvedSource>,
}

impl VaultObjects {
    pub fn new(client: VaultClient, mount: String) -> Self {
        VaultObjects {
            client,
            mount,
            at: OnceCell::new(),
        }
    }

    async fn at(&self) -> Result<&ResolvedSource> {
        self.at
            .get_or_try_init(|| async {
                let cfg = SourceConfig {
                    name: "merge_store".into(),
                    mount: self.mount.clone(),
                    max_secrets: 1,
                    queue_compaction_threshold: 1,
                    max_depth: 1,
                };
                resolve(&self.client, &cfg).await
            })
            .await
    }

    /// A body as a KV map (wiped when dropped, like a secret's value).
    fn map(&self, key: &str, body: &[u8]) -> Result<SecretValue> {
        match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(m)) => Ok(SecretValue::new(m)),
            _ => Err(Error::new(
                ErrorKind::Unexpected,
                format!("{} can only hold a JSON object", self.describe(key)),
            )),
        }
    }
}

#[async_trait]
impl Objects for VaultObjects {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let at = self.at().await?;
        match self
            .client
            .read(&at.kv_mount, &format!("{}{key}", at.sub_path))
            .await?
        {
            ReadOutcome::Found { data, .. } => {
                let v = SecretValue::new(data);
                Ok(Some(v.canonical_json().into_bytes()))
            }
            ReadOutcome::Deleted { .. } | ReadOutcome::Missing => Ok(None),
        }
    }

    async fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        let at = self.at().await?;
        let v = self.map(key, body)?;
        self.client
            .write(&at.kv_mount, &format!("{}{key}", at.sub_path), v.expose())
            .await
    }

    async fn create(&self, key: &str, body: &[u8]) -> Result<bool> {
        let at = self.at().await?;
        let v = self.map(key, body)?;
        self.client
            .create(&at.kv_mount, &format!("{}{key}", at.sub_path), v.expose())
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let at = self.at().await?;
        let mut failed: Vec<(String, Error)> = stream::iter(keys.iter().cloned())
            .map(|k| async move {
                self.client
                    .delete_all_versions(&at.kv_mount, &format!("{}{k}", at.sub_path))
                    .await
                    .err()
                    .map(|e| (k, e))
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        let kind = failed[0].1.kind;
        let names: Vec<String> = failed
            .iter()
            .map(|(k, e)| format!("{} ({e})", self.describe(k)))
            .collect();
        let msg = format!(
            "{} object(s) could not be deleted: {}; fix the cause and re-run",
            names.len(),
            names.join(", ")
        );
        Err(Error::new(kind, msg))
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>> {
        let at = self.at().await?;
        Ok(self
            .client
            .list(&at.kv_mount, &format!("{}{dir}", at.sub_path))
            .await?
            .unwrap_or_default())
    }

    fn suffix(&self) -> &'static str {
        ""
    }

    fn describe(&self, key: &str) -> String {
        format!("vault `{}{key}`", self.mount)
    }

    fn location(&self) -> String {
        format!("vault {}", self.mount)
    }
}
