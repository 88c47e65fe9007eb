//! Leases as KV v2 secrets in a Vault or OpenBao mount (a `vault_kv2` target's own
//! destination), so they lock where the writes happen.
//!
//! The lease for key `k` is the secret `<mount><sub-path>.secretsync/locks/<k>` (the key
//! encoded like lock secret names, [`super::encode_key`], and refused when that is not a
//! safe path); its data is the [`LeaseRecord`] as a JSON map, and the token of a stored lease
//! is its KV version number.
//!
//! * create: a write with check-and-set `0` (refused when the path has a version). A path
//!   whose latest version was destroyed holds no lease: it is taken with check-and-set on
//!   that version;
//! * compare-and-swap (takeover, renewal): a write with check-and-set = the version read;
//!   Vault refuses it atomically when another write came first;
//! * read: the latest version; a soft-deleted latest version (someone deleted the lock by
//!   hand) is undeleted and read again, so a live holder's lease is still honoured;
//! * release: read, then delete every version and the metadata only if the latest version is
//!   still ours. KV v2 has no conditional delete; the check is safe because the holder
//!   releases only while its lease is valid, and nobody takes over a valid lease.
//!
//! Every renewal writes a new version; the mount's `max_versions` trims old ones.
//!
//! Policy on `<mount>data/<sub-path>.secretsync/locks/*`: `create`, `read`, `update`;
//! on `<mount>metadata/<sub-path>.secretsync/locks/*`: `read`, `delete`; on
//! `<mount>undelete/<sub-path>.secretsync/locks/*`: `update`.

use async_trait::async_trait;
use serde_json::Value;
use tracing::warn;

use super::{LeaseBackend, LeaseRecord, Stored, encode_key};
use crate::error::{Error, ErrorKind, Result};
use crate::vault::client::{CasOutcome, ReadOutcome, VaultClient};

/// The folder of every lock, below the configured mount path.
pub const LOCK_FOLDER: &str = ".secretsync/locks/";

/// Longest lock path accepted (below the mount), in bytes.
const MAX_PATH: usize = 1024;

pub struct VaultKvLeases {
    client: VaultClient,
    /// The KV v2 mount, ending in `/`.
    kv_mount: String,
    /// The folder below it, empty or ending in `/`.
    sub_path: String,
}

impl VaultKvLeases {
    /// Leases kept by `client` in `kv_mount` (ending in `/`) below `sub_path` (empty or
    /// ending in `/`).
    pub fn new(client: VaultClient, kv_mount: String, sub_path: String) -> Self {
        VaultKvLeases {
            client,
            kv_mount,
            sub_path,
        }
    }

    /// The lock secret's path below the mount for `key`.
    pub fn lock_path(&self, key: &str) -> Result<String> {
        let path = format!("{}{LOCK_FOLDER}{}", self.sub_path, encode_key(key));
        if let Some(why) = secretsync_core::path::reject_key(&path) {
            return Err(Error::config(format!(
                "the lock secret path for `{key}` {why}; use an owner scope and target name without `.` or `..` path segments"
            )));
        }
        if path.len() > MAX_PATH {
            return Err(Error::config(format!(
                "the lock secret path for `{key}` would be {} bytes (at most {MAX_PATH}); use a shorter owner scope or target name",
                path.len()
            )));
        }
        Ok(path)
    }

    fn describe(&self, path: &str) -> String {
        format!(
            "lock secret {}{path} at {}",
            self.kv_mount,
            self.client.address()
        )
    }

    /// The latest version and its record; a soft-deleted latest version is undeleted once.
    async fn read(&self, path: &str) -> Result<Option<Stored>> {
        for attempt in 0..2 {
            match self.client.read(&self.kv_mount, path).await? {
                ReadOutcome::Found { data, version } => {
                    let text = Value::Object(data).to_string();
                    return Ok(Some(Stored {
                        record: LeaseRecord::from_json(&text, &self.describe(path))?,
                        token: version.to_string(),
                    }));
                }
                ReadOutcome::Missing | ReadOutcome::Deleted { destroyed: true } => return Ok(None),
                ReadOutcome::Deleted { destroyed: false } if attempt == 0 => {
                    let Some(meta) = self.client.read_metadata(&self.kv_mount, path).await? else {
                        return Ok(None);
                    };
                    warn!(
                        secret = %self.describe(path),
                        "the lock secret's latest version is soft-deleted; undeleting it"
                    );
                    self.client
                        .undelete(&self.kv_mount, path, &[meta.current_version])
                        .await?;
                }
                ReadOutcome::Deleted { .. } => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "{} is still deleted after undeleting it; retry shortly",
                            self.describe(path)
                        ),
                    ));
                }
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    fn data(record: &LeaseRecord) -> serde_json::Map<String, Value> {
        match serde_json::to_value(record) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("a lease record serializes to a JSON object"),
        }
    }
}

fn version(token: &str, what: &str) -> Result<u64> {
    token.parse().map_err(|_| {
        Error::new(
            ErrorKind::Unexpected,
            format!("{what}: `{token}` is not a KV version number"),
        )
    })
}

#[async_trait]
impl LeaseBackend for VaultKvLeases {
    fn location(&self, key: &str) -> String {
        match self.lock_path(key) {
            Ok(p) => self.describe(&p),
            Err(_) => format!("lock secret for `{key}` at {}", self.client.address()),
        }
    }

    async fn try_create(&self, key: &str, record: &LeaseRecord) -> Result<bool> {
        let path = self.lock_path(key)?;
        let data = Self::data(record);
        match self
            .client
            .write_cas(&self.kv_mount, &path, &data, 0)
            .await?
        {
            CasOutcome::Written(_) => return Ok(true),
            CasOutcome::Mismatch => {}
        }
        // The path has versions: a lease, or what is left of a destroyed one.
        let Some(meta) = self.client.read_metadata(&self.kv_mount, &path).await? else {
            return Ok(false);
        };
        if meta.current_version > 0 && !meta.current().is_some_and(|v| v.destroyed) {
            return Ok(false);
        }
        Ok(matches!(
            self.client
                .write_cas(&self.kv_mount, &path, &data, meta.current_version)
                .await?,
            CasOutcome::Written(_)
        ))
    }

    async fn current(&self, key: &str) -> Result<Option<Stored>> {
        let path = self.lock_path(key)?;
        self.read(&path).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        record: &LeaseRecord,
    ) -> Result<Option<String>> {
        let path = self.lock_path(key)?;
        let cas = version(expected, &self.describe(&path))?;
        match self
            .client
            .write_cas(&self.kv_mount, &path, &Self::data(record), cas)
            .await?
        {
            CasOutcome::Written(v) => Ok(Some(v.to_string())),
            CasOutcome::Mismatch => Ok(None),
        }
    }

    async fn delete_if_current(&self, key: &str, ours: &Stored) -> Result<bool> {
        let path = self.lock_path(key)?;
        // The version alone is not proof: a lock deleted by hand and created again starts
        // over at version 1.
        match self.client.read(&self.kv_mount, &path).await? {
            ReadOutcome::Found { version, data }
                if version.to_string() == ours.token
                    && data.get("nonce").and_then(Value::as_str)
                        == Some(ours.record.nonce.as_str()) => {}
            _ => return Ok(false),
        }
        self.client
            .delete_all_versions(&self.kv_mount, &path)
            .await?;
        Ok(true)
    }
}
