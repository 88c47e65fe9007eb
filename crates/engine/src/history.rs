//! History in the merge store: every version SecretSync made of every secret of every target,
//! and every revision of every target (the records are `secretsync_core::history`'s).
//!
//! Layout below the store's root (`<suffix>`: `.json` on S3, empty in Vault), in the folder the
//! store reserves for itself, so no bundle or secret name can collide with it:
//! * `.secretsync/history/<target>/versions/<relative path>/v<N><suffix>`: version N of one
//!   secret — metadata, keyed fingerprint and the value (`null` for a deletion);
//! * `.secretsync/history/<target>/revisions/r<R><suffix>`: revision R of the target — the
//!   versions it made, the manifest (path → latest version) and the pins.
//!
//! Every record is written with a create-if-absent write: a number is never reused, and two
//! runs that raced past the target's lease could not overwrite each other's history (the second
//! fails, naming the record). Recording an apply costs one store write per changed secret plus
//! one per changed target, and retention removes what falls out of `retain_versions` in one
//! deletion request per target. A run that changes nothing reads the target's latest revision
//! (one listing and one read, for its pins) and writes nothing.
//!
//! Fingerprints are keyed (HMAC-SHA256 under the store's own key, `key_id` in every record): a
//! reader of the metadata alone cannot test a guessed value.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};
use secretsync_core::history::{Change, Revision, ToRecord, VersionRecord, pruned};
use secretsync_core::path::reject_key;
use secretsync_core::secret::SecretValue;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use zeroize::Zeroize;

use crate::error::{Error, ErrorKind, Result};
use crate::store::{MergeStore, Objects};

/// The folder of the history, below the store's root.
pub const ROOT: &str = ".secretsync/history/";
/// Records written or read at once.
const CONCURRENCY: usize = 16;

/// One change to record: what happened to a path, the value it left (none for a deletion),
/// and the backend's id of what was written.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub change: Change,
    pub value: Option<SecretValue>,
    pub backend_version: Option<String>,
}

/// Who recorded it, when, in which run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// RFC 3339, UTC.
    pub time: String,
    pub run_id: String,
    pub author: String,
}

impl Stamp {
    /// Now, for `run_id` and `author`.
    pub fn now(run_id: &str, author: &str) -> Stamp {
        Stamp {
            time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            run_id: run_id.to_string(),
            author: author.to_string(),
        }
    }
}

/// The history of a merge store.
#[derive(Clone)]
pub struct History {
    store: Arc<dyn MergeStore>,
    objects: Arc<dyn Objects>,
    retain: u64,
}

/// A number in a listed name (`v12`, `r3`), if it is one.
fn numbered(name: &str, letter: char) -> Option<u64> {
    let digits = name.strip_prefix(letter)?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl History {
    /// The history kept in `store`, keeping `retain` versions of each secret and revisions of
    /// each target.
    pub fn new(store: Arc<dyn MergeStore>, retain: u64) -> History {
        History {
            objects: store.objects(),
            store,
            retain: retain.max(1),
        }
    }

    /// The store's objects (the discovery cache lives beside the history).
    pub fn objects(&self) -> Arc<dyn Objects> {
        self.objects.clone()
    }

    /// Where the history is, for messages.
    pub fn location(&self) -> String {
        self.objects.describe(ROOT)
    }

    fn check(target: &str, path: Option<&str>) -> Result<()> {
        if target.is_empty() || target.contains('/') || target.starts_with('.') {
            return Err(Error::config(format!(
                "`{target}` is not a target name; name a target of the config"
            )));
        }
        if let Some(p) = path
            && let Some(e) = reject_key(p)
        {
            return Err(Error::config(format!(
                "`{p}` is not a secret path: it {e}; give the path relative to the target's prefix, e.g. `app/db`"
            )));
        }
        Ok(())
    }

    fn revisions_dir(target: &str) -> String {
        format!("{ROOT}{target}/revisions/")
    }

    fn versions_dir(target: &str, path: &str) -> String {
        format!("{ROOT}{target}/versions/{path}/")
    }

    fn revision_key(&self, target: &str, r: u64) -> String {
        format!(
            "{}r{r}{}",
            Self::revisions_dir(target),
            self.objects.suffix()
        )
    }

    fn version_key(&self, target: &str, path: &str, n: u64) -> String {
        format!(
            "{}v{n}{}",
            Self::versions_dir(target, path),
            self.objects.suffix()
        )
    }

    async fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(mut bytes) = self.objects.get(key).await? else {
            return Ok(None);
        };
        let parsed = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is not a SecretSync history record ({e}); it was changed by hand: restore it from the store's own versioning or delete it",
                    self.objects.describe(key)
                ),
            )
        });
        bytes.zeroize();
        parsed.map(Some)
    }

    async fn numbers(&self, dir: &str, letter: char) -> Result<Vec<u64>> {
        let mut n: Vec<u64> = self
            .objects
            .list(dir)
            .await?
            .iter()
            .filter_map(|name| numbered(name, letter))
            .collect();
        n.sort_unstable();
        Ok(n)
    }

    /// The numbers of the target's revisions still kept, oldest first.
    pub async fn revision_numbers(&self, target: &str) -> Result<Vec<u64>> {
        Self::check(target, None)?;
        self.numbers(&Self::revisions_dir(target), 'r').await
    }

    /// Revision `r` of the target, if it is kept.
    pub async fn revision(&self, target: &str, r: u64) -> Result<Option<Revision>> {
        Self::check(target, None)?;
        self.read(&self.revision_key(target, r)).await
    }

    /// The target's latest revision; `None` before its first recorded apply.
    pub async fn latest(&self, target: &str) -> Result<Option<Revision>> {
        let Some(&last) = self.revision_numbers(target).await?.last() else {
            return Ok(None);
        };
        match self.revision(target, last).await? {
            Some(r) => Ok(Some(r)),
            None => Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} was listed but cannot be read; re-run (the store may be eventually consistent)",
                    self.objects.describe(&self.revision_key(target, last))
                ),
            )),
        }
    }

    /// Every kept revision of the target, oldest first.
    pub async fn revisions(&self, target: &str) -> Result<Vec<Revision>> {
        let numbers = self.revision_numbers(target).await?;
        let mut out: Vec<Revision> = stream::iter(numbers)
            .map(|r| async move { self.revision(target, r).await })
            .buffered(CONCURRENCY)
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await?;
        out.sort_by_key(|r| r.revision);
        Ok(out)
    }

    /// The numbers of the kept versions of one secret, oldest first.
    pub async fn version_numbers(&self, target: &str, path: &str) -> Result<Vec<u64>> {
        Self::check(target, Some(path))?;
        self.numbers(&Self::versions_dir(target, path), 'v').await
    }

    /// Version `n` of one secret, if it is kept.
    pub async fn version(&self, target: &str, path: &str, n: u64) -> Result<Option<VersionRecord>> {
        Self::check(target, Some(path))?;
        self.read(&self.version_key(target, path, n)).await
    }

    /// Every kept version of one secret, oldest first.
    pub async fn versions(&self, target: &str, path: &str) -> Result<Vec<VersionRecord>> {
        let numbers = self.version_numbers(target, path).await?;
        let mut out: Vec<VersionRecord> = stream::iter(numbers)
            .map(|n| async move { self.version(target, path, n).await })
            .buffered(CONCURRENCY)
            .try_filter_map(|v| async move { Ok(v) })
            .try_collect()
            .await?;
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    async fn create(&self, key: &str, mut body: Vec<u8>) -> Result<()> {
        let created = self.objects.create(key, &body).await;
        body.zeroize();
        if created? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} already exists: another run recorded history for this target at the same time; check `secretsync version list` and re-run",
                    self.objects.describe(key)
                ),
            ))
        }
    }

    /// Records one apply of `target` after `prev` (its latest revision, as read before the
    /// plan): a version per entry, then the revision; then removes what falls out of the
    /// retention (a failure there is a warning: the record is complete). Returns the new
    /// revision. Nothing is written for no entries.
    pub async fn record(
        &self,
        prev: Option<&Revision>,
        target: &str,
        entries: Vec<Entry>,
        stamp: &Stamp,
    ) -> Result<Option<Revision>> {
        self.record_with_pins(prev, target, entries, stamp, None)
            .await
    }

    /// [`History::record`], replacing the pins with `pins` when given (a rollback pins what it
    /// restored; an unpin records a revision that only changes them).
    pub async fn record_with_pins(
        &self,
        prev: Option<&Revision>,
        target: &str,
        entries: Vec<Entry>,
        stamp: &Stamp,
        pins: Option<BTreeMap<String, u64>>,
    ) -> Result<Option<Revision>> {
        Self::check(target, None)?;
        for e in &entries {
            Self::check(target, Some(&e.path))?;
        }
        if entries.is_empty() && pins.is_none() {
            return Ok(None);
        }
        let todo: Vec<ToRecord> = entries
            .iter()
            .map(|e| ToRecord {
                path: e.path.clone(),
                change: e.change,
            })
            .collect();
        let mut revision = Revision::next(
            prev,
            target,
            &todo,
            &stamp.time,
            &stamp.run_id,
            &stamp.author,
        );
        if let Some(p) = pins {
            revision.pins = p;
        }
        let key = self.store.fingerprint_key(true).await?;
        let key_id = key.id();
        let records: Vec<(String, Vec<u8>)> = entries
            .into_iter()
            .zip(&revision.made)
            .map(|(e, made)| {
                let record = VersionRecord {
                    target: target.to_string(),
                    path: e.path.clone(),
                    version: made.version,
                    time: stamp.time.clone(),
                    change: e.change,
                    backend_version: e.backend_version,
                    run_id: stamp.run_id.clone(),
                    author: stamp.author.clone(),
                    revision: revision.revision,
                    fingerprint: e.value.as_ref().map(|v| key.fingerprint(v)),
                    key_id: key_id.clone(),
                    value: e.value,
                };
                let body = serde_json::to_vec(&record).map_err(|e| {
                    Error::new(ErrorKind::Unexpected, format!("encoding a version: {e}"))
                })?;
                Ok((self.version_key(target, &made.path, made.version), body))
            })
            .collect::<Result<_>>()?;
        stream::iter(records)
            .map(|(k, body)| async move { self.create(&k, body).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let body = serde_json::to_vec(&revision)
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("encoding a revision: {e}")))?;
        self.create(&self.revision_key(target, revision.revision), body)
            .await?;
        debug!(target_name = %target, revision = revision.revision, versions = revision.made.len(), "recorded history");
        let (versions, revisions) = pruned(&revision, self.retain);
        let gone: Vec<String> = versions
            .iter()
            .map(|(p, n)| self.version_key(target, p, *n))
            .chain(revisions.iter().map(|r| self.revision_key(target, *r)))
            .collect();
        if !gone.is_empty()
            && let Err(e) = self.objects.delete_many(&gone).await
        {
            warn!(target_name = %target, error = %e.message, "could not remove history past `retain_versions`; those records stay until removed by hand (later applies remove only what falls out after them)");
        }
        Ok(Some(revision))
    }
}

/// The history kept in `config`'s merge store, connected (Vault login, or the AWS config for
/// S3); `None` without a merge store (history is then off).
pub async fn open(
    config: &secretsync_core::config::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<History>> {
    use secretsync_core::config::MergeStoreConfig;
    let Some(cfg) = &config.merge_store else {
        return Ok(None);
    };
    let (aws, vault) = match cfg {
        MergeStoreConfig::S3 { .. } => (
            Some(crate::aws::AwsContext::load(config.retries.aws_max_attempts, env).await?),
            None,
        ),
        MergeStoreConfig::Vault { .. } => (
            None,
            Some(
                crate::vault::VaultClient::connect_with(
                    &config.vault,
                    env,
                    crate::observe::Observers::default(),
                    crate::retry::Policy::new(config.retries.vault_max_attempts),
                )
                .await?,
            ),
        ),
    };
    let store = crate::store::build(cfg, aws.as_ref(), vault.as_ref()).await?;
    Ok(Some(History::new(store, config.retain_versions)))
}

/// What to say when a config has no merge store and a history command was asked for.
pub const HISTORY_OFF: &str = "history is off: it is kept in the merge store, and this config has none; add a `merge_store:` block (type s3 or vault, see docs/configuration.md), and every later apply is recorded";

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn only_numbered_names_count() {
        assert_eq!(numbered("v12", 'v'), Some(12));
        assert_eq!(numbered("r3", 'r'), Some(3));
        for name in ["v", "vx", "v1/", "r1", "v-1", "v1.json", "folder/"] {
            assert_eq!(numbered(name, 'v'), None, "{name}");
        }
    }
}
