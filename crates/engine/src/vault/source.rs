//! Reading one Vault KV v2 source: breadth-first listing with a visited set, a depth limit,
//! `max_secrets` and queue compaction, then bounded-concurrency reads of every secret.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt, stream};
use secretsync_core::config::SourceConfig;
use secretsync_core::secret::{Bundle, SecretValue};
use tracing::{debug, info, warn};

use super::client::{ReadOutcome, VaultClient};
use crate::error::{Error, ErrorKind, Result};

/// Where a source lives once Vault has told us its mount.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSource {
    /// The KV v2 mount, ending in `/` (`team/kv/`).
    pub kv_mount: String,
    /// The folder below the mount, empty or ending in `/` (`base/`).
    pub sub_path: String,
}

/// Asks Vault which mount the configured path belongs to and checks it is KV v2.
pub async fn resolve(client: &VaultClient, source: &SourceConfig) -> Result<ResolvedSource> {
    let (mount, version) = client
        .mount_of(&source.mount)
        .await
        .map_err(|e| e.context(format!("source `{}`", source.name)))?;
    if version.as_deref() != Some("2") {
        return Err(Error::config(format!(
            "source `{}`: mount `{mount}` is KV version {}, not 2; SecretSync reads KV v2 only",
            source.name,
            version.unwrap_or_else(|| "1".into())
        )));
    }
    let sub_path = source.mount.strip_prefix(&mount).unwrap_or("").to_string();
    Ok(ResolvedSource {
        kv_mount: mount,
        sub_path,
    })
}

pub use secretsync_core::path::reject_key;

/// Lists every secret of a source, breadth first. Returns paths relative to the source.
pub async fn list_all(
    client: &VaultClient,
    source: &SourceConfig,
    at: &ResolvedSource,
    concurrency: usize,
) -> Result<Vec<String>> {
    let mut queue: Vec<(String, usize)> = vec![(String::new(), 0)];
    let mut index = 0usize;
    let mut visited: HashSet<String> = HashSet::from([String::new()]);
    let mut secrets: Vec<String> = Vec::new();
    let threshold = source.queue_compaction_threshold;
    while index < queue.len() {
        let end = (index + concurrency.max(1)).min(queue.len());
        let batch: Vec<(String, usize)> = queue[index..end].to_vec();
        index = end;
        let listed: Vec<(String, usize, Option<Vec<String>>)> = stream::iter(batch)
            .map(|(dir, depth)| async move {
                let keys = client
                    .list(&at.kv_mount, &format!("{}{dir}", at.sub_path))
                    .await;
                keys.map(|k| (dir, depth, k))
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
            .map_err(|e: Error| e.context(format!("source `{}`", source.name)))?;
        for (dir, depth, keys) in listed {
            let Some(mut keys) = keys else {
                if dir.is_empty() {
                    return Err(Error::config(format!(
                        "source `{}`: `{}` does not exist or holds no secrets; check its `mount:` (an empty source would make the targets that import it plan to delete their secrets, so it is refused)",
                        source.name, source.mount
                    )));
                } else {
                    warn!(source = %source.name, folder = %dir, "folder vanished while listing; skipping it");
                }
                continue;
            };
            keys.sort();
            for key in keys {
                if let Some(why) = reject_key(&key) {
                    warn!(source = %source.name, folder = %dir, reason = why, "skipping a Vault key with an unsafe name");
                    continue;
                }
                let path = format!("{dir}{key}");
                if key.ends_with('/') {
                    if depth + 1 > source.max_depth {
                        warn!(source = %source.name, folder = %path, max_depth = source.max_depth, "folder is deeper than the depth limit; skipping it");
                        continue;
                    }
                    if visited.insert(path.clone()) {
                        queue.push((path, depth + 1));
                    }
                } else {
                    secrets.push(path);
                    if secrets.len() > source.max_secrets {
                        return Err(Error::new(
                            ErrorKind::Limit,
                            format!(
                                "source `{}` ({}) has more than {} secrets (its `max_secrets`); raise `max_secrets` for this source or point `mount:` at a narrower folder",
                                source.name, source.mount, source.max_secrets
                            ),
                        ));
                    }
                }
            }
        }
        if index > threshold && index > queue.len() / 2 {
            let old = queue.len();
            queue.drain(..index);
            index = 0;
            debug!(source = %source.name, old_size = old, new_size = queue.len(), "compacted the listing queue");
        }
    }
    secrets.sort();
    Ok(secrets)
}

/// Reads every listed secret with bounded concurrency. Soft-deleted or destroyed secrets and
/// secrets that vanished after listing are skipped with a warning.
pub async fn read_all(
    client: &VaultClient,
    source: &SourceConfig,
    at: &ResolvedSource,
    paths: Vec<String>,
    concurrency: usize,
) -> Result<Bundle> {
    let results: Vec<(String, ReadOutcome)> = stream::iter(paths)
        .map(|rel| async move {
            let outcome = client
                .read(&at.kv_mount, &format!("{}{rel}", at.sub_path))
                .await?;
            Ok::<_, Error>((rel, outcome))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
        .map_err(|e| e.context(format!("source `{}`", source.name)))?;
    let mut bundle = Bundle::new();
    for (rel, outcome) in results {
        match outcome {
            ReadOutcome::Found { data, .. } => {
                bundle.insert(rel, SecretValue::new(data));
            }
            ReadOutcome::Deleted { destroyed } => {
                warn!(source = %source.name, path = %rel, destroyed, "the latest version is deleted at the source; skipping it");
            }
            ReadOutcome::Missing => {
                warn!(source = %source.name, path = %rel, "secret vanished after listing; skipping it");
            }
        }
    }
    Ok(bundle)
}

/// Resolves, lists and reads a whole source.
pub async fn read_source(
    client: &VaultClient,
    source: &SourceConfig,
    concurrency: usize,
) -> Result<Bundle> {
    let at = resolve(client, source).await?;
    let paths = list_all(client, source, &at, concurrency).await?;
    let count = paths.len();
    let bundle = read_all(client, source, &at, paths, concurrency).await?;
    info!(source = %source.name, mount = %source.mount, listed = count, read = bundle.len(), "read Vault source");
    Ok(bundle)
}
