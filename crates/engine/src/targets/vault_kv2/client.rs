//! The `vault_kv2` target implementation.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, stream};
use secretsync_core::config::{TargetPolicy, VaultKv2Settings as Settings};
use secretsync_core::diff::{
    ChangeKind, Listed, MANAGED_VALUE, RESERVED_PREFIX, SecretChange, TAG_FINGERPRINT, TAG_HASH,
    TAG_MANAGED, TAG_OWNER, TAG_ROLE, TAG_TARGET, TAG_VERSION, TargetPlan,
};
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::path::reject_key;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::targets::vault_kv2::VaultKv2Rules;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tracing::{debug, warn};
use zeroize::Zeroize;

use super::error::{changed_since_plan, in_target, maybe_landed};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::vault_kv::{LOCK_FOLDER, VaultKvLeases};
use crate::lease::{LeaseBackend, LeaseRecord, Stored, encode_key};
use crate::observe::Observers;
use crate::targets::support::apply::{self, Apply, Counted, Failed, Pace, Writes};
use crate::targets::support::key::{self, KeyCache, KeyRead, KeyStore};
use crate::targets::support::{self, Prefetched, payload};
use crate::targets::{ApplyReport, PlanContext, Target};
use crate::vault::client::{CasOutcome, KvMetadata, ReadOutcome, VaultClient};

/// The fingerprint key's path below the configured mount (see
/// `secretsync_core::fingerprint`): readable by exactly those who can read the secrets.
pub const KEY_PATH: &str = ".secretsync/fingerprint-key";

/// Entries a listing may hold before the target is refused (a mount pointed at the wrong
/// place, not a destination).
const MAX_LISTED: usize = 1_000_000;

/// The destination, connected on first use.
struct Dest {
    target: String,
    settings: Settings,
    conn: OnceCell<Conn>,
    observers: Observers,
    retry: crate::retry::Policy,
}

struct Conn {
    client: VaultClient,
    /// The KV v2 mount, ending in `/`.
    kv_mount: String,
    /// The folder below it (from the configured mount), empty or ending in `/`.
    sub_path: String,
    leases: Arc<VaultKvLeases>,
}

impl Conn {
    /// The full path below the KV mount of a name (a path below the configured mount).
    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.sub_path)
    }
}

impl Dest {
    fn address(&self) -> &str {
        self.settings.vault.address.as_deref().unwrap_or_default()
    }

    fn err(&self, e: Error) -> Error {
        in_target(e, &self.target, self.address())
    }

    /// Logs in and finds the KV v2 mount; retried on the next use when it fails.
    async fn get(&self) -> Result<&Conn> {
        self.conn
            .get_or_try_init(|| async {
                // Never the environment: VAULT_TOKEN and friends are the source's.
                let client = VaultClient::connect_with(
                    &self.settings.vault,
                    &|_| None,
                    self.observers.clone(),
                    self.retry,
                )
                    .await
                    .map_err(|e| self.err(e))?;
                let mount = &self.settings.mount;
                let (kv_mount, version) =
                    client.mount_of(mount).await.map_err(|e| self.err(e))?;
                if version.as_deref() != Some("2") {
                    return Err(self.err(Error::config(format!(
                        "mount `{kv_mount}` is KV version {}, not 2; point `mount:` at a KV v2 mount",
                        version.unwrap_or_else(|| "1".into())
                    ))));
                }
                let sub_path = mount.strip_prefix(&kv_mount).unwrap_or("").to_string();
                let leases = Arc::new(VaultKvLeases::new(
                    client.clone(),
                    kv_mount.clone(),
                    sub_path.clone(),
                ));
                Ok(Conn {
                    client,
                    kv_mount,
                    sub_path,
                    leases,
                })
            })
            .await
    }
}

/// The lease backend of a target whose connection is made on first use.
struct DestLeases {
    dest: Arc<Dest>,
}

#[async_trait]
impl LeaseBackend for DestLeases {
    fn location(&self, key: &str) -> String {
        format!(
            "lock secret {}{LOCK_FOLDER}{} at {}",
            self.dest.settings.mount,
            encode_key(key),
            self.dest.address()
        )
    }
    async fn try_create(&self, key: &str, record: &LeaseRecord) -> Result<bool> {
        self.dest.get().await?.leases.try_create(key, record).await
    }
    async fn current(&self, key: &str) -> Result<Option<Stored>> {
        self.dest.get().await?.leases.current(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        record: &LeaseRecord,
    ) -> Result<Option<String>> {
        self.dest
            .get()
            .await?
            .leases
            .compare_and_swap(key, expected, record)
            .await
    }
    async fn delete_if_current(&self, key: &str, ours: &Stored) -> Result<bool> {
        self.dest
            .get()
            .await?
            .leases
            .delete_if_current(key, ours)
            .await
    }
}

pub struct VaultKv2Target {
    name: String,
    owner: String,
    policy: TargetPolicy,
    dest: Arc<Dest>,
    prefetched: Prefetched<BTreeMap<String, Listed>>,
    /// The destination's fingerprint key, once read (or created).
    key: KeyCache,
}

/// Where a destination's fingerprint key lives: [`KEY_PATH`] below the configured mount,
/// created with check-and-set (which fails for all but one concurrent creator). The slot is the
/// version to check-and-set: 0, or a destroyed key's.
struct KeyEntry<'a> {
    conn: &'a Conn,
    path: String,
    target: &'a str,
}

#[async_trait]
impl KeyStore for KeyEntry<'_> {
    type Slot = u64;

    fn location(&self) -> String {
        format!("{}{}", self.conn.kv_mount, self.path)
    }

    async fn read(&self, create: bool, _retry: bool) -> Result<KeyRead<u64>> {
        let (client, mount, path) = (&self.conn.client, self.conn.kv_mount.as_str(), &self.path);
        Ok(match client.read(mount, path).await? {
            ReadOutcome::Found { data, .. } => KeyRead::Found(
                data.get("key")
                    .and_then(Value::as_str)
                    .and_then(FingerprintKey::from_hex)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unexpected,
                            format!(
                                "`{mount}{path}` does not hold a SecretSync fingerprint key; delete it with its metadata (SecretSync recreates it, and then reads every managed value once)"
                            ),
                        )
                    })?,
            ),
            _ if !create => KeyRead::Absent(0),
            ReadOutcome::Missing => KeyRead::Absent(0),
            // Soft-deleted: bring it back rather than invalidating every mark.
            ReadOutcome::Deleted { destroyed: false } => {
                if let Some(meta) = client.read_metadata(mount, path).await? {
                    warn!(target_name = %self.target, "the fingerprint key was soft-deleted; undeleting it");
                    client.undelete(mount, path, &[meta.current_version]).await?;
                }
                KeyRead::Again
            }
            // Destroyed: a new key, written over the destroyed version.
            ReadOutcome::Deleted { destroyed: true } => KeyRead::Absent(
                client
                    .read_metadata(mount, path)
                    .await?
                    .map(|m| m.current_version)
                    .unwrap_or(0),
            ),
        })
    }

    async fn create(&self, cas: u64, key: &FingerprintKey, _retry: bool) -> Result<bool> {
        let (client, mount, path) = (&self.conn.client, self.conn.kv_mount.as_str(), &self.path);
        let mut data = Map::new();
        data.insert("key".into(), Value::String(key.to_hex()));
        let written = client.write_cas(mount, path, &data, cas).await;
        if let Some(Value::String(s)) = data.get_mut("key") {
            s.zeroize();
        }
        match written? {
            CasOutcome::Written(_) => {
                let marks = BTreeMap::from([
                    (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
                    (TAG_ROLE.to_string(), "fingerprint-key".to_string()),
                ]);
                if let Err(e) = client.write_metadata(mount, path, &marks).await {
                    warn!(target_name = %self.target, error = %e.message, "could not mark the fingerprint key; it works unmarked");
                }
                Ok(true)
            }
            // Someone else created it first: read theirs.
            CasOutcome::Mismatch => Ok(false),
        }
    }
}

/// One completed write, and how to undo it.
enum Done {
    Created {
        name: String,
        version: u64,
    },
    Updated {
        name: String,
        /// The version the plan saw (0: the path had no version).
        old_version: u64,
        /// The version this run wrote (when `written`).
        new_version: u64,
        /// The value at `old_version`, to write back.
        old_value: Option<SecretValue>,
        /// `custom_metadata` as listed.
        old_meta: secretsync_core::diff::Tags,
        /// The latest version was soft-deleted and was undeleted first.
        restored: bool,
        /// The new value was written (false: only the undelete happened).
        written: bool,
    },
    Retagged,
    /// Soft-deleted (recoverable).
    Deleted {
        name: String,
        version: u64,
    },
    /// Destroyed with every version and the metadata (`destroy: true`): cannot be undone.
    Destroyed {
        name: String,
    },
}

fn done_name(d: &Done) -> Option<&str> {
    match d {
        Done::Created { name, .. }
        | Done::Updated { name, .. }
        | Done::Deleted { name, .. }
        | Done::Destroyed { name } => Some(name),
        Done::Retagged => None,
    }
}

/// The KV version a listing or a plan names (`None`/absent: 0, no version).
fn version_of(v: Option<&str>) -> u64 {
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Whether two values have the same canonical JSON (the temporaries are wiped).
fn same(a: &SecretValue, b: &SecretValue) -> bool {
    let (mut x, mut y) = (a.canonical_json(), b.canonical_json());
    let eq = x == y;
    x.zeroize();
    y.zeroize();
    eq
}

impl VaultKv2Target {
    /// The target; nothing is sent to the destination until it is first used.
    pub fn new(name: &str, owner: &str, policy: &TargetPolicy, settings: &Settings) -> Self {
        VaultKv2Target {
            name: name.to_string(),
            owner: owner.to_string(),
            policy: policy.clone(),
            dest: Arc::new(Dest {
                target: name.to_string(),
                settings: settings.clone(),
                conn: OnceCell::new(),
                observers: Observers::default(),
                retry: crate::retry::Policy::new(crate::retry::VAULT_MAX_ATTEMPTS),
            }),
            prefetched: Prefetched::default(),
            key: KeyCache::default(),
        }
    }

    /// Every call to the destination Vault is admitted by and reported to `observers`.
    pub fn observed(mut self, observers: Observers) -> Self {
        if let Some(d) = Arc::get_mut(&mut self.dest) {
            d.observers = observers;
        }
        self
    }

    /// Every call to the destination Vault is retried by `retry`.
    pub fn retried(mut self, retry: crate::retry::Policy) -> Self {
        if let Some(d) = Arc::get_mut(&mut self.dest) {
            d.retry = retry;
        }
        self
    }

    fn settings(&self) -> &Settings {
        &self.dest.settings
    }

    fn read_concurrency(&self) -> usize {
        self.settings().vault.concurrency.max(1)
    }

    /// Every secret under the prefix (soft-deleted ones included): names, marks, version.
    async fn list(&self) -> Result<BTreeMap<String, Listed>> {
        self.list_inner().await.map_err(|e| self.dest.err(e))
    }

    async fn list_inner(&self) -> Result<BTreeMap<String, Listed>> {
        let conn = self.dest.get().await?;
        let prefix = self.policy.secret_prefix.as_str();
        // The prefix's folder is listed; at that level only keys that continue the prefix
        // (`apps-` keeps `apps-db`) count.
        let (start, head) = match prefix.rfind('/') {
            Some(i) => (&prefix[..=i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let concurrency = self.read_concurrency();
        let mut names: Vec<String> = Vec::new();
        let mut queue: Vec<String> = vec![start.to_string()];
        let mut index = 0;
        while index < queue.len() {
            let end = (index + concurrency).min(queue.len());
            let batch: Vec<String> = queue[index..end].to_vec();
            index = end;
            let listed: Vec<(String, Result<Option<Vec<String>>>)> = stream::iter(batch)
                .map(|dir| async move {
                    let keys = conn.client.list(&conn.kv_mount, &conn.path(&dir)).await;
                    (dir, keys)
                })
                .buffered(concurrency)
                .collect()
                .await;
            for (dir, keys) in listed {
                // A folder that does not exist (404) holds nothing yet.
                for key in keys?.unwrap_or_default() {
                    if dir == start && !key.starts_with(head) {
                        continue;
                    }
                    let full = format!("{dir}{key}");
                    if full.starts_with(RESERVED_PREFIX) {
                        continue;
                    }
                    if let Some(why) = reject_key(&key) {
                        warn!(target_name = %self.name, folder = %dir, reason = why, "skipping a key with an unsafe name in the destination; it is never written or deleted");
                        continue;
                    }
                    if key.ends_with('/') {
                        queue.push(full);
                    } else {
                        names.push(full);
                    }
                    if names.len() + queue.len() > MAX_LISTED {
                        return Err(Error::new(
                            ErrorKind::Limit,
                            format!(
                                "`{}{prefix}` holds more than {MAX_LISTED} entries; point `mount:` or `secret_prefix` at the folder this target owns",
                                self.settings().mount
                            ),
                        ));
                    }
                }
            }
        }
        let metas: Vec<(String, Result<Option<KvMetadata>>)> = stream::iter(names)
            .map(|name| async move {
                let m = conn
                    .client
                    .read_metadata(&conn.kv_mount, &conn.path(&name))
                    .await;
                (name, m)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for (name, meta) in metas {
            // Gone between the listing and the metadata read: not there.
            let Some(meta) = meta? else { continue };
            out.insert(
                name.clone(),
                Listed {
                    name,
                    current_version: (meta.current_version > 0)
                        .then(|| meta.current_version.to_string()),
                    pending_deletion: meta.current().is_some_and(|s| s.deleted || s.destroyed),
                    tags: std::sync::Arc::new(meta.custom_metadata.into()),
                },
            );
        }
        Ok(out)
    }

    /// Reads each name's value at the version the listing saw, so a write made since is never
    /// mistaken for "up to date". A version deleted meanwhile is left out (it is then
    /// overwritten).
    async fn read_values(
        &self,
        names: Vec<String>,
        listed: &BTreeMap<String, Listed>,
    ) -> Result<BTreeMap<String, SecretValue>> {
        let conn = self.dest.get().await?;
        let reads: Vec<(String, Result<ReadOutcome>)> = stream::iter(names)
            .map(|name| async move {
                let version =
                    version_of(listed.get(&name).and_then(|l| l.current_version.as_deref()));
                let r = conn
                    .client
                    .read_version(&conn.kv_mount, &conn.path(&name), version)
                    .await;
                (name, r)
            })
            .buffer_unordered(self.read_concurrency())
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for (name, r) in reads {
            match r.map_err(|e| self.dest.err(e))? {
                ReadOutcome::Found { data, .. } => {
                    out.insert(name, SecretValue::new(data));
                }
                ReadOutcome::Deleted { .. } | ReadOutcome::Missing => {
                    debug!(target_name = %self.name, secret = %name, "the listed version is gone; it will be overwritten");
                }
            }
        }
        Ok(out)
    }

    /// `custom_metadata` after a write of this fingerprint at `version`: what was there (the
    /// user's own keys stay), the ownership marks set, the pre-0.2 plain hash removed.
    fn marks(
        &self,
        old: &secretsync_core::tags::TagMap,
        fingerprint: &str,
        version: u64,
    ) -> BTreeMap<String, String> {
        let mut m = old.to_map();
        m.remove(TAG_HASH);
        for (k, v) in [
            (TAG_MANAGED, MANAGED_VALUE),
            (TAG_OWNER, self.owner.as_str()),
            (TAG_TARGET, self.name.as_str()),
            (TAG_FINGERPRINT, fingerprint),
            (TAG_VERSION, version.to_string().as_str()),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    /// After a write that was refused or failed in a way that may have landed: whether
    /// `version` holds exactly `value` (an earlier attempt of this write landed and its
    /// answer was lost). `None`: could not tell.
    async fn landed(
        &self,
        conn: &Conn,
        name: &str,
        version: u64,
        value: &SecretValue,
    ) -> Option<bool> {
        let meta = match conn
            .client
            .read_metadata(&conn.kv_mount, &conn.path(name))
            .await
        {
            Ok(m) => m,
            Err(_) => return None,
        };
        if meta.is_none_or(|m| m.current_version != version) {
            return Some(false);
        }
        match conn
            .client
            .read_version(&conn.kv_mount, &conn.path(name), version)
            .await
        {
            Ok(ReadOutcome::Found { data, .. }) => Some(same(&SecretValue::new(data), value)),
            Ok(_) => Some(false),
            Err(_) => None,
        }
    }

    /// Writes `value` over version `cas`; returns the version written. A refused or
    /// ambiguous write is resolved by looking at version `cas + 1`.
    async fn write(
        &self,
        conn: &Conn,
        c: &SecretChange,
        value: &SecretValue,
        cas: u64,
    ) -> Result<u64> {
        let res = conn
            .client
            .write_cas(&conn.kv_mount, &conn.path(&c.name), value.expose(), cas)
            .await;
        let expected = cas + 1;
        let err = match res {
            Ok(CasOutcome::Written(v)) => return Ok(v),
            Ok(CasOutcome::Mismatch) => changed_since_plan(&c.name, cas),
            Err(e) if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Unexpected) => e,
            Err(e) => return Err(e),
        };
        match self.landed(conn, &c.name, expected, value).await {
            Some(true) => {
                warn!(target_name = %self.name, secret = %c.name, "a write reported an error but landed; continuing");
                Ok(expected)
            }
            Some(false) => Err(err),
            None => Err(maybe_landed(err, &c.name, expected)),
        }
    }

    async fn create(&self, c: &SecretChange) -> Result<Done> {
        let conn = self.dest.get().await?;
        let (value, fingerprint) = payload(c)?;
        let version = self.write(conn, c, value, 0).await?;
        let done = Done::Created {
            name: c.name.clone(),
            version,
        };
        let marks = self.marks(&Default::default(), fingerprint, version);
        if let Err(mut err) = conn
            .client
            .write_metadata(&conn.kv_mount, &conn.path(&c.name), &marks)
            .await
        {
            if let Err(u) = self.undo(done).await {
                err.message = format!(
                    "{}; removing the secret just created also failed, it is left without ownership marks: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(done)
    }

    async fn update(&self, c: &SecretChange) -> Result<Done> {
        let conn = self.dest.get().await?;
        let (value, fingerprint) = payload(c)?;
        let path = conn.path(&c.name);
        let old_version = version_of(c.old_version.as_deref());
        if c.retag {
            let marks = self.marks(&c.old_tags, fingerprint, old_version);
            conn.client
                .write_metadata(&conn.kv_mount, &path, &marks)
                .await?;
            return Ok(Done::Retagged);
        }
        let mut done = Done::Updated {
            name: c.name.clone(),
            old_version,
            new_version: 0,
            old_value: c.old_value.clone(),
            old_meta: c.old_tags.clone(),
            restored: c.restore,
            written: false,
        };
        if c.restore {
            // Pending deletion: the soft-deleted version comes back first, so its history
            // stays whole, then the new value goes on top.
            conn.client
                .undelete(&conn.kv_mount, &path, &[old_version])
                .await?;
        } else if c.old_value.is_none() && old_version > 0 {
            // What a rollback writes back, read before it can be trimmed by `max_versions`.
            if let ReadOutcome::Found { data, .. } = conn
                .client
                .read_version(&conn.kv_mount, &path, old_version)
                .await?
                && let Done::Updated { old_value, .. } = &mut done
            {
                *old_value = Some(SecretValue::new(data));
            }
        }
        let new_version = match self.write(conn, c, value, old_version).await {
            Ok(v) => v,
            Err(mut err) => {
                if c.restore
                    && let Err(u) = self.undo(done).await
                {
                    err.message = format!(
                        "{}; putting it back into pending deletion also failed: {u}",
                        err.message
                    );
                }
                return Err(err);
            }
        };
        if let Done::Updated {
            new_version: n,
            written,
            ..
        } = &mut done
        {
            *n = new_version;
            *written = true;
        }
        let marks = self.marks(&c.old_tags, fingerprint, new_version);
        if let Err(mut err) = conn
            .client
            .write_metadata(&conn.kv_mount, &path, &marks)
            .await
        {
            if let Err(u) = self.undo(done).await {
                err.message = format!(
                    "{}; rolling this secret back also failed, it is left with the new value: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(done)
    }

    /// Soft-deletes the version the plan saw (a version written since is left alone).
    async fn delete(&self, c: &SecretChange) -> Result<Done> {
        let conn = self.dest.get().await?;
        let version = version_of(c.old_version.as_deref());
        if version == 0 {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("cannot delete `{}`: its version is unknown", c.name),
            ));
        }
        conn.client
            .delete_versions(&conn.kv_mount, &conn.path(&c.name), &[version])
            .await?;
        Ok(Done::Deleted {
            name: c.name.clone(),
            version,
        })
    }

    /// `destroy: true`: removes a soft-deleted orphan with every version and its metadata,
    /// unless someone wrote a new version since it was deleted.
    async fn destroy(&self, name: &str, version: u64) -> Result<bool> {
        let conn = self.dest.get().await?;
        let path = conn.path(name);
        let meta = conn.client.read_metadata(&conn.kv_mount, &path).await?;
        match meta {
            Some(m) if m.current_version == version => {
                conn.client
                    .delete_all_versions(&conn.kv_mount, &path)
                    .await?;
                Ok(true)
            }
            Some(_) => {
                warn!(target_name = %self.name, secret = %name, "a new version was written after the orphan was deleted; it is not destroyed");
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// Undoes one completed write.
    async fn undo(&self, done: Done) -> Result<()> {
        let conn = self.dest.get().await?;
        let (client, mount) = (&conn.client, conn.kv_mount.as_str());
        match done {
            Done::Retagged => Ok(()),
            Done::Created { name, version } => {
                let path = conn.path(&name);
                match client.read_metadata(mount, &path).await? {
                    None => Ok(()),
                    Some(m) if m.current_version != version => Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "not removed: `{name}` was written again (version {}) after it was created; it is left as it is",
                            m.current_version
                        ),
                    )),
                    Some(_) => client.delete_all_versions(mount, &path).await,
                }
            }
            Done::Updated {
                name,
                old_version,
                new_version,
                old_value,
                mut old_meta,
                restored,
                written,
            } => {
                let path = conn.path(&name);
                if written && restored {
                    // Back to pending deletion: the version this run wrote and the restored
                    // one are soft-deleted again.
                    client
                        .delete_versions(mount, &path, &[old_version, new_version])
                        .await?;
                    return client
                        .write_metadata(mount, &path, &old_meta.to_map())
                        .await;
                }
                if !written {
                    // At most the undelete happened.
                    if restored {
                        return client.delete_versions(mount, &path, &[old_version]).await;
                    }
                    return Ok(());
                }
                let old = old_value.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "cannot roll back `{name}`: its previous value (version {old_version}) could not be read; it keeps the new value"
                        ),
                    )
                })?;
                // KV versions are immutable: the previous value goes back as a new version.
                let restored_as = match client
                    .write_cas(mount, &path, old.expose(), new_version)
                    .await?
                {
                    CasOutcome::Written(v) => v,
                    CasOutcome::Mismatch => {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "not rolled back: `{name}` was written again after version {new_version}; it is left as it is"
                            ),
                        ));
                    }
                };
                // Marks that were true for the old version are true for its copy.
                if old_meta.get(TAG_VERSION) == Some(&old_version.to_string()) {
                    std::sync::Arc::make_mut(&mut old_meta)
                        .insert(TAG_VERSION, restored_as.to_string());
                }
                client
                    .write_metadata(mount, &path, &old_meta.to_map())
                    .await
            }
            Done::Deleted { name, version } => {
                client.undelete(mount, &conn.path(&name), &[version]).await
            }
            Done::Destroyed { name } => Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "`{name}` was destroyed (`destroy: true`) with every version; it cannot be restored"
                ),
            )),
        }
    }
}

#[async_trait]
impl Target for VaultKv2Target {
    fn name(&self) -> &str {
        &self.name
    }

    fn calls(&self) -> u64 {
        self.dest
            .conn
            .get()
            .map(|c| c.client.request_count())
            .unwrap_or(0)
    }

    /// Lock secrets in the destination's own mount: they lock where the writes happen.
    fn lease_backend(&self) -> Arc<dyn LeaseBackend> {
        Arc::new(DestLeases {
            dest: self.dest.clone(),
        })
    }

    async fn prefetch(&self) {
        self.prefetched.keep(self.list().await).await;
    }

    async fn plan(&self, desired: &Collected, ctx: &PlanContext) -> Result<TargetPlan> {
        let listed = self.prefetched.take_or(self.list()).await?;
        let create = !ctx.dry_run;
        let fetch = async {
            let conn = self.dest.get().await?;
            let store = KeyEntry {
                conn,
                path: conn.path(KEY_PATH),
                target: &self.name,
            };
            key::get_or_create(&store, &self.name, create).await
        };
        let key = self
            .key
            .get(create, fetch)
            .await
            .map_err(|e| self.dest.err(e))?;
        let opts = support::plan_options(
            &self.name,
            &self.owner,
            &self.policy,
            Arc::new(VaultKv2Rules),
            ctx,
            &desired.incomplete,
        );
        let read = |names| self.read_values(names, &listed);
        let mut plan = support::plan_from_marks(&opts, &key, desired, &listed, read).await?;
        // The KV version each write will make: a check-and-set on the listed version can
        // only write the next one.
        support::set_new_versions(&mut plan, |c| {
            (version_of(c.old_version.as_deref()) + 1).to_string()
        });
        Ok(plan)
    }

    async fn apply(&self, plan: &TargetPlan, cancel: &Cancel) -> ApplyReport {
        let pace = Pace::from(&self.policy);
        apply::run(&Writer(self), &self.name, pace, plan, cancel).await
    }
}

/// The target's half of the apply ([`apply::run`]).
struct Writer<'a>(&'a VaultKv2Target);

#[async_trait]
impl Apply for Writer<'_> {
    type Done = Done;

    async fn write(&self, c: &SecretChange, _: &Writes<'_>) -> Result<Done, Failed<Done>> {
        Ok(match c.kind {
            ChangeKind::Added => self.0.create(c).await?,
            _ => self.0.update(c).await?,
        })
    }

    async fn delete(&self, c: &SecretChange, _: &Writes<'_>) -> Result<Done, Failed<Done>> {
        Ok(self.0.delete(c).await?)
    }

    fn counted(&self, d: &Done) -> Counted {
        match d {
            Done::Created { .. } => Counted::Created,
            Done::Updated { .. } => Counted::Updated,
            Done::Retagged => Counted::Retagged,
            Done::Deleted { .. } | Done::Destroyed { .. } => Counted::Deleted,
        }
    }

    fn changed<'d>(&self, d: &'d Done) -> Option<&'d str> {
        done_name(d)
    }

    async fn undo(&self, d: Done) -> Result<()> {
        self.0.undo(d).await
    }

    /// `destroy: true`: once every deletion was made (recoverably), they are made final.
    fn finishes(&self, d: &Done) -> bool {
        self.0.settings().destroy && matches!(d, Done::Deleted { .. })
    }

    async fn finish(&self, d: &mut Done) -> Result<()> {
        if let Done::Deleted { name, version } = d
            && self.0.destroy(name, *version).await?
        {
            *d = Done::Destroyed { name: name.clone() };
        }
        Ok(())
    }

    fn context(&self, e: Error) -> Error {
        self.0.dest.err(e)
    }
}
