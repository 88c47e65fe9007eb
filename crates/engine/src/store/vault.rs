//! The Vault KV v2 merge store: `<mount><bundle>/<relative path>` plus a manifest secret
//! `<mount><bundle>.bundle` holding each secret's content hash.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use secretsync_core::config::SourceConfig;
use secretsync_core::secret::{Bundle, SecretValue};
use tokio::sync::OnceCell;

use super::{Manifest, MergeStore, WriteStats, changed_paths};
use crate::error::{Error, ErrorKind, Result};
use crate::vault::source::{ResolvedSource, resolve};
use crate::vault::{ReadOutcome, VaultClient};

pub struct VaultStore {
    client: VaultClient,
    mount: String,
    at: OnceCell<ResolvedSource>,
}

impl VaultStore {
    pub fn new(client: VaultClient, mount: String) -> Self {
        VaultStore {
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

    async fn manifest(&self, name: &str) -> Result<Option<Manifest>> {
        let at = self.at().await?;
        match self
            .client
            .read(&at.kv_mount, &format!("{}{name}.bundle", at.sub_path))
            .await?
        {
            ReadOutcome::Found { data, .. } => {
                serde_json::from_value(serde_json::Value::Object(data))
                    .map(Some)
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Unexpected,
                            format!(
                                "`{}{name}.bundle` is not a SecretSync manifest: {e}",
                                self.mount
                            ),
                        )
                    })
            }
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl MergeStore for VaultStore {
    async fn write_bundle(&self, name: &str, bundle: &Bundle, run_id: &str) -> Result<WriteStats> {
        let at = self.at().await?;
        let old = self.manifest(name).await?.unwrap_or_default();
        let (write, delete, mut manifest) = changed_paths(&old, bundle);
        manifest.bundle = name.to_string();
        manifest.run_id = run_id.to_string();
        stream::iter(write.iter().cloned())
            .map(|p| async move {
                self.client
                    .write(
                        &at.kv_mount,
                        &format!("{}{name}/{p}", at.sub_path),
                        bundle[&p].expose(),
                    )
                    .await
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        for p in &delete {
            self.client
                .delete_all_versions(&at.kv_mount, &format!("{}{name}/{p}", at.sub_path))
                .await?;
        }
        let m = match serde_json::to_value(&manifest) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    "cannot encode the manifest",
                ));
            }
        };
        self.client
            .write(&at.kv_mount, &format!("{}{name}.bundle", at.sub_path), &m)
            .await?;
        Ok(WriteStats {
            written: write.len(),
            unchanged: bundle.len() - write.len(),
            deleted: delete.len(),
        })
    }

    async fn read_bundle(&self, name: &str) -> Result<Option<Bundle>> {
        let at = self.at().await?;
        let Some(manifest) = self.manifest(name).await? else {
            return Ok(None);
        };
        let items: Vec<(String, SecretValue)> = stream::iter(manifest.secrets.keys().cloned())
            .map(|p| async move {
                match self.client.read(&at.kv_mount, &format!("{}{name}/{p}", at.sub_path)).await? {
                    ReadOutcome::Found { data, .. } => Ok((p, SecretValue::new(data))),
                    _ => Err(Error::new(ErrorKind::Unexpected, format!("`{}{name}/{p}` is listed in the manifest but missing; re-run the merge phase", self.mount))),
                }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        Ok(Some(items.into_iter().collect()))
    }

    fn location(&self) -> String {
        format!("vault {}", self.mount)
    }
}
