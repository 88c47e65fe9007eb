//! Reading one Vault KV v2 source: breadth-first listing with a visited set, a depth limit,
//! `max_secrets` and queue compaction, then bounded-concurrency reads of every secret.

use std::collections::HashSet;

use futures::{StreamExt, stream};
use secretsync_core::config::SourceConfig;
use secretsync_core::secret::{Bundle, Collected, Gap, SecretValue};
use tracing::{debug, info, warn};

use super::client::{ReadOutcome, VaultClient};
use crate::cancel::Cancel;
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

/// Whether a per-path failure can be recorded as a gap (the source is then incomplete and
/// nothing built from it deletes) instead of failing the run: a permission denial or an
/// answer we cannot trust for one folder or secret. Vault being unreachable, throttling or a
/// dead token fail the run: the plan would be mostly gaps.
fn is_gap(e: &Error) -> bool {
    matches!(e.kind, ErrorKind::PermissionDenied | ErrorKind::Unexpected)
}

fn cancelled(cancel: &Cancel) -> Result<()> {
    if cancel.is_cancelled() {
        Err(Error::new(
            ErrorKind::Cancelled,
            "cancelled while reading Vault; nothing was written",
        ))
    } else {
        Ok(())
    }
}

/// One folder's listing: (folder, depth, keys or `None` when it does not exist).
type Listed = (String, usize, Result<Option<Vec<String>>>);

/// What listing a source found: secret paths relative to the source, and the gaps.
#[derive(Debug, Default)]
pub struct Listing {
    pub paths: Vec<String>,
    pub incomplete: Vec<Gap>,
}

/// Lists every secret of a source, breadth first. Returns paths relative to the source. A
/// folder that cannot be listed (other than the source's own folder, which must exist and be
/// listable), vanished, is deeper than `max_depth`, or a key with an unsafe name, is recorded
/// as a gap.
pub async fn list_all(
    client: &VaultClient,
    source: &SourceConfig,
    at: &ResolvedSource,
    concurrency: usize,
    cancel: &Cancel,
) -> Result<Listing> {
    let mut queue: Vec<(String, usize)> = vec![(String::new(), 0)];
    let mut index = 0usize;
    let mut visited: HashSet<String> = HashSet::from([String::new()]);
    let mut out = Listing::default();
    let gap = |path: &str, why: &str| Gap::new(&source.name, path, why);
    let threshold = source.queue_compaction_threshold;
    while index < queue.len() {
        cancelled(cancel)?;
        let end = (index + concurrency.max(1)).min(queue.len());
        let batch: Vec<(String, usize)> = queue[index..end].to_vec();
        index = end;
        let listed: Vec<Listed> = stream::iter(batch)
            .map(|(dir, depth)| async move {
                let keys = client
                    .list(&at.kv_mount, &format!("{}{dir}", at.sub_path))
                    .await;
                (dir, depth, keys)
            })
            .buffered(concurrency.max(1))
            .collect()
            .await;
        for (dir, depth, keys) in listed {
            let keys = match keys {
                Ok(k) => k,
                Err(e) if !dir.is_empty() && is_gap(&e) => {
                    warn!(source = %source.name, folder = %dir, error = %e.message, "could not list a folder; the source is incomplete and its targets will delete nothing");
                    out.incomplete.push(gap(
                        &dir,
                        &format!("could not be listed ({})", e.kind_label()),
                    ));
                    continue;
                }
                Err(e) => return Err(e.context(format!("source `{}`", source.name))),
            };
            let Some(mut keys) = keys else {
                if dir.is_empty() {
                    return Err(Error::config(format!(
                        "source `{}`: `{}` does not exist or holds no secrets; check its `mount:` (an empty source would make the targets that import it plan to delete their secrets, so it is refused)",
                        source.name, source.mount
                    )));
                }
                warn!(source = %source.name, folder = %dir, "folder vanished while listing; the source is incomplete");
                out.incomplete
                    .push(gap(&dir, "vanished between two listings"));
                continue;
            };
            keys.sort();
            for key in keys {
                if let Some(why) = reject_key(&key) {
                    warn!(source = %source.name, folder = %dir, reason = why, "skipping a Vault key with an unsafe name; the source is incomplete");
                    out.incomplete.push(gap(
                        &format!("{dir}{}", key.escape_debug()),
                        &format!("was skipped: its name {why}"),
                    ));
                    continue;
                }
                let path = format!("{dir}{key}");
                if key.ends_with('/') {
                    if depth + 1 > source.max_depth {
                        warn!(source = %source.name, folder = %path, max_depth = source.max_depth, "folder is deeper than the depth limit; the source is incomplete");
                        out.incomplete.push(gap(
                            &path,
                            &format!("is deeper than `max_depth` ({})", source.max_depth),
                        ));
                        continue;
                    }
                    if visited.insert(path.clone()) {
                        queue.push((path, depth + 1));
                    }
                } else {
                    out.paths.push(path);
                    if out.paths.len() > source.max_secrets {
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
    out.paths.sort();
    Ok(out)
}

/// Reads every listed secret with bounded concurrency. Soft-deleted or destroyed secrets were
/// deleted on purpose: they are not desired. A secret that vanished after listing, or whose
/// read was denied or unreadable, is a gap.
pub async fn read_all(
    client: &VaultClient,
    source: &SourceConfig,
    at: &ResolvedSource,
    listing: Listing,
    concurrency: usize,
    cancel: &Cancel,
) -> Result<Collected> {
    let results: Vec<(String, Result<ReadOutcome>)> = stream::iter(listing.paths)
        .map(|rel| async move {
            if cancel.is_cancelled() {
                return (rel, Err(Error::new(ErrorKind::Cancelled, "cancelled")));
            }
            let outcome = client
                .read(&at.kv_mount, &format!("{}{rel}", at.sub_path))
                .await;
            (rel, outcome)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    cancelled(cancel)?;
    let mut out = Collected {
        secrets: Bundle::new(),
        incomplete: listing.incomplete,
    };
    let gap = |path: &str, why: &str| Gap::new(&source.name, path, why);
    for (rel, outcome) in results {
        match outcome {
            Ok(ReadOutcome::Found { data, .. }) => {
                out.secrets.insert(rel, SecretValue::new(data));
            }
            Ok(ReadOutcome::Deleted { destroyed }) => {
                info!(source = %source.name, path = %rel, destroyed, "the latest version is deleted at the source; it is not desired");
            }
            Ok(ReadOutcome::Missing) => {
                warn!(source = %source.name, path = %rel, "secret vanished after listing; the source is incomplete");
                out.incomplete
                    .push(gap(&rel, "vanished between its listing and its read"));
            }
            Err(e) if is_gap(&e) => {
                warn!(source = %source.name, path = %rel, error = %e.message, "could not read a secret; the source is incomplete and its targets will delete nothing");
                out.incomplete.push(gap(
                    &rel,
                    &format!("could not be read ({})", e.kind_label()),
                ));
            }
            Err(e) => return Err(e.context(format!("source `{}`", source.name))),
        }
    }
    out.incomplete.sort();
    Ok(out)
}

/// Resolves, lists and reads a whole source.
pub async fn read_source(
    client: &VaultClient,
    source: &SourceConfig,
    concurrency: usize,
    cancel: &Cancel,
) -> Result<Collected> {
    let at = resolve(client, source).await?;
    let listing = list_all(client, source, &at, concurrency, cancel).await?;
    let count = listing.paths.len();
    let read = read_all(client, source, &at, listing, concurrency, cancel).await?;
    if read.is_complete() {
        info!(source = %source.name, mount = %source.mount, listed = count, read = read.secrets.len(), "read Vault source");
    } else {
        warn!(source = %source.name, mount = %source.mount, listed = count, read = read.secrets.len(), skipped = read.incomplete.len(), "read Vault source incompletely; targets that import it will not delete anything");
    }
    Ok(read)
}
