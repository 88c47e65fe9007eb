//! The fingerprint key of a target's account, region or destination (see
//! `secretsync_core::fingerprint`): read once per run, created when missing. The get-or-create
//! steps are here once ([`get_or_create`]); each target kind says where its key is stored and
//! what its store answers ([`KeyStore`]).

use async_trait::async_trait;
use secretsync_core::fingerprint::FingerprintKey;
use tokio::sync::Mutex;
use tracing::{debug, info};

use super::random_key;
use crate::error::{Error, ErrorKind, Result};

/// Reads (and creates, between them) before giving up: enough for a concurrent first run that
/// creates the key at the same time.
const ATTEMPTS: usize = 3;

/// What one read of the stored key found.
pub enum KeyRead<S> {
    /// The key.
    Found(FingerprintKey),
    /// No key: a new one is created in this slot (what a create needs to know about it, such as
    /// the version to check-and-set), unless the plan is a dry run.
    Absent(S),
    /// The read changed something (a key pending deletion was brought back): read again.
    Again,
}

/// Where a target keeps its fingerprint key: the backend calls of [`get_or_create`].
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// What a create needs to know about the absent key it replaces.
    type Slot: Send;
    /// Where the key lives, for messages (`.secretsync/fingerprint-key`).
    fn location(&self) -> String;
    /// Reads the key. `create`: a missing key will be created (so one pending deletion may be
    /// brought back first); `retry`: another attempt follows this one.
    async fn read(&self, create: bool, retry: bool) -> Result<KeyRead<Self::Slot>>;
    /// Stores `key` as the new key, so that only one concurrent creator can succeed. `Ok(false)`:
    /// another one was first (its key is read next); `retry` as for [`KeyStore::read`].
    async fn create(&self, slot: Self::Slot, key: &FingerprintKey, retry: bool) -> Result<bool>;
}

/// The key: read from `store`; created there (random, once; a concurrent creator's key wins)
/// unless `create` is false, in which case a throwaway key serves the plan (dry runs write
/// nothing), so that no fingerprint proves a value unchanged and every managed one is read.
pub async fn get_or_create<S: KeyStore>(
    store: &S,
    target: &str,
    create: bool,
) -> Result<FingerprintKey> {
    for attempt in 0..ATTEMPTS {
        let retry = attempt + 1 < ATTEMPTS;
        let slot = match store.read(create, retry).await? {
            KeyRead::Found(key) => return Ok(key),
            KeyRead::Again => continue,
            KeyRead::Absent(slot) => slot,
        };
        let key = FingerprintKey::from_bytes(random_key()?);
        if !create {
            debug!(target_name = %target, "no fingerprint key yet (dry run): a throwaway one serves the plan");
            return Ok(key);
        }
        if store.create(slot, &key, retry).await? {
            info!(target_name = %target, key_id = %key.id(), location = %store.location(), "created the fingerprint key");
            return Ok(key);
        }
    }
    Err(Error::new(
        ErrorKind::Conflict,
        format!(
            "could not read or create the fingerprint key `{}`; run again",
            store.location()
        ),
    ))
}

/// A target's key once it was read or created (a dry run's throwaway key is not kept: the next
/// plan, when it applies, creates the real one).
#[derive(Default)]
pub struct KeyCache(Mutex<Option<FingerprintKey>>);

impl KeyCache {
    /// The cached key, or the one `fetch` gets (at most one fetch at a time).
    pub async fn get<F>(&self, create: bool, fetch: F) -> Result<FingerprintKey>
    where
        F: Future<Output = Result<FingerprintKey>>,
    {
        let mut cached = self.0.lock().await;
        if let Some(k) = cached.as_ref() {
            return Ok(k.clone());
        }
        let key = fetch.await?;
        if create {
            *cached = Some(key.clone());
        }
        Ok(key)
    }
}
