//! Run leases: two runs never apply the same target at once.
//!
//! Before applying a target a run takes a lease on it ([`acquire`]); a second run waits up to
//! its `--lock-timeout` and then fails that target with an [`ErrorKind::Locked`] error naming
//! the holder. A lease is one small record (holder, lease id, expiry) kept by a
//! [`LeaseBackend`]:
//!
//! * [`secrets_manager::SecretsManagerLeases`]: a lock secret `.secretsync/locks/<key>` in the
//!   target's own account and region (works without a merge store);
//! * [`s3::S3Leases`]: an object `<prefix>.secretsync/locks/<key>.json` in the merge store's
//!   bucket.
//! * [`local::LocalLeases`]: a lock file in the user's cache directory, for a `plugin` target
//!   without an S3 merge store (excludes runs on this machine only).
//! * [`vault_kv::VaultKvLeases`]: a KV v2 secret `<mount>.secretsync/locks/<key>` in a
//!   `vault_kv2` target's destination (check-and-set on the KV version).
//!
//! Every change is conditional: a create that fails when the lease exists, and a
//! compare-and-swap against the version the writer read (takeover of an expired lease, and
//! renewal). Two runs that both see an expired lease can therefore not both win. After a
//! won create or takeover the record is read back and must carry this write's nonce — on AWS
//! that always holds; it also catches stores whose conditional writes are not atomic (moto
//! checks, then writes, without a lock).
//!
//! Expiry is absolute time (UTC epoch seconds) in the record, so a crashed run's lease can be
//! taken over once it has expired; the hosts' clocks must agree to well within a quarter of
//! the ttl (the holder gives its lease up that long before it expires). A held [`Lease`]
//! renews itself every ttl/3 in a background task. When a renewal finds another holder (or
//! the lease deleted), [`Lease::lost`] turns true at once; a renewal that merely fails is
//! retried every ttl/9, and if none succeeds before that safety margin `lost` turns true
//! too. The apply must then stop.
//!
//! Lease records are not secret (names of the run, host and user); they are logged freely.

pub mod local;
pub mod s3;
pub mod secrets_manager;
pub mod vault_kv;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};

/// A ttl that suits most runs: renewed every 20 s, taken over 60 s after a crash.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Who holds (or wants) a lease. Shown to the run that has to wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The owner scope of the config that runs (the deployment).
    pub owner: String,
    pub run_id: String,
    pub host: String,
    /// The user or CI actor that started the run.
    pub author: String,
}

impl Holder {
    pub fn new(
        owner: impl Into<String>,
        run_id: impl Into<String>,
        host: impl Into<String>,
        author: impl Into<String>,
    ) -> Holder {
        Holder {
            owner: owner.into(),
            run_id: run_id.into(),
            host: host.into(),
            author: author.into(),
        }
    }

    /// This process: host from `HOSTNAME` or `/etc/hostname`, author from `GITHUB_ACTOR`,
    /// `USER` or `USERNAME` (`unknown` when none is set).
    pub fn detect(owner: impl Into<String>, run_id: impl Into<String>) -> Holder {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let host = env("HOSTNAME")
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "unknown".into());
        let author = env("GITHUB_ACTOR")
            .or_else(|| env("USER"))
            .or_else(|| env("USERNAME"))
            .unwrap_or_else(|| "unknown".into());
        Holder::new(owner, run_id, host, author)
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {} of owner `{}` on host {} started by {}",
            self.run_id, self.owner, self.host, self.author
        )
    }
}

/// What to lease and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSpec {
    /// What the lease protects, e.g. `<owner-scope>/<target>` ([`target_key`]).
    pub key: String,
    /// How long the lease lives without renewal (at least 1 s).
    pub ttl: Duration,
    /// How long to wait for another run's lease (`--lock-timeout`); zero tries once.
    pub wait: Duration,
}

/// The lease key of a target of one deployment.
pub fn target_key(owner_scope: &str, target: &str) -> String {
    format!("{owner_scope}/{target}")
}

/// The record a backend stores, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRecord {
    /// Format version of the record.
    pub secretsync_lease: u32,
    pub owner: String,
    pub run_id: String,
    pub host: String,
    pub author: String,
    /// Unique per acquisition: who holds the lease, beyond the run id.
    pub lease_id: String,
    /// Unique per write: tells a write that landed from one that did not.
    pub nonce: String,
    /// UTC epoch seconds.
    pub acquired_at: u64,
    /// UTC epoch seconds; the lease is free from this second on.
    pub expires_at: u64,
}

const RECORD_FORMAT: u32 = 1;

impl LeaseRecord {
    /// A fresh record for `holder`'s lease `lease_id`, written at `now_ms` (epoch ms).
    pub fn new(holder: &Holder, lease_id: &str, now_ms: u64, ttl: Duration) -> LeaseRecord {
        LeaseRecord {
            secretsync_lease: RECORD_FORMAT,
            owner: holder.owner.clone(),
            run_id: holder.run_id.clone(),
            host: holder.host.clone(),
            author: holder.author.clone(),
            lease_id: lease_id.to_string(),
            nonce: new_nonce(),
            acquired_at: now_ms / 1000,
            expires_at: expiry(now_ms, ttl),
        }
    }

    /// The same lease, written again with a later expiry.
    fn renewed(&self, now_ms: u64, ttl: Duration) -> LeaseRecord {
        LeaseRecord {
            nonce: new_nonce(),
            expires_at: expiry(now_ms, ttl),
            ..self.clone()
        }
    }

    pub fn holder(&self) -> Holder {
        Holder::new(&self.owner, &self.run_id, &self.host, &self.author)
    }

    /// Whether the lease has expired at `now_ms` (epoch milliseconds).
    pub fn expired_at(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at.saturating_mul(1000)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a lease record serializes")
    }

    /// Parses a stored record; `what` names where it was read from.
    pub fn from_json(s: &str, what: &str) -> Result<LeaseRecord> {
        let r: LeaseRecord = serde_json::from_str(s).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{what} does not hold a SecretSync lease ({e}); if no SecretSync run is \
                     active, delete it"
                ),
            )
        })?;
        if r.secretsync_lease != RECORD_FORMAT {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{what} holds a lease of format {} (this version knows {RECORD_FORMAT}); \
                     upgrade SecretSync on every host that syncs this target",
                    r.secretsync_lease
                ),
            ));
        }
        Ok(r)
    }
}

/// A record as stored, with the backend's token for conditional writes (the secret's
/// version id, the object's ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub record: LeaseRecord,
    pub token: String,
}

/// Where leases are kept. Every write is conditional; not-found is `None`, not an error.
#[async_trait]
pub trait LeaseBackend: Send + Sync {
    /// Where the lease for `key` lives, for messages (`secret .secretsync/locks/x`).
    fn location(&self, key: &str) -> String;

    /// Creates the lease if none exists: `true` when created, `false` when one exists (or
    /// cannot be created right now, e.g. a name still being deleted).
    async fn try_create(&self, key: &str, record: &LeaseRecord) -> Result<bool>;

    /// The lease as stored now, if any.
    async fn current(&self, key: &str) -> Result<Option<Stored>>;

    /// Replaces the lease only if it is still at `expected` (the token read): `Some(token)`
    /// when replaced, `None` when someone else changed or deleted it first. An `Err` or
    /// `None` may still have landed (a retried request): callers read back and compare nonces.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        record: &LeaseRecord,
    ) -> Result<Option<String>>;

    /// Deletes the lease if it is still `ours`: `true` when deleted, `false` when it is gone
    /// or held by someone else (then nothing is deleted).
    async fn delete_if_current(&self, key: &str, ours: &Stored) -> Result<bool>;
}

/// A held lease. Renewed in the background until [`Lease::release`]; dropping it without
/// releasing stops the renewals, so the lease expires after its ttl (as after a crash).
pub struct Lease {
    backend: Arc<dyn LeaseBackend>,
    key: String,
    location: String,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    renewer: Option<JoinHandle<()>>,
}

struct Shared {
    ttl: Duration,
    state: Mutex<Stored>,
    lost: AtomicBool,
    lost_reason: Mutex<Option<String>>,
}

impl Shared {
    fn stored(&self) -> Stored {
        self.state.lock().expect("lease state lock").clone()
    }

    /// The instant (epoch ms) from which this holder no longer trusts its lease.
    fn trusted_until_ms(&self) -> u64 {
        let exp = self.stored().record.expires_at.saturating_mul(1000);
        exp.saturating_sub(margin(self.ttl).as_millis() as u64)
    }

    fn mark_lost(&self, reason: String) {
        let mut r = self.lost_reason.lock().expect("lease reason lock");
        if r.is_none() {
            *r = Some(reason);
        }
        self.lost.store(true, Ordering::SeqCst);
    }
}

impl Lease {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where the lease is kept, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The record as last written by this run.
    pub fn record(&self) -> LeaseRecord {
        self.shared.stored().record
    }

    /// True once the lease can no longer be trusted: another run took it over or deleted
    /// it, or renewals kept failing until it came within a quarter of its ttl of expiring.
    /// The apply must then stop and roll back. Stays true. Cheap: no network call.
    pub fn lost(&self) -> bool {
        if self.shared.lost.load(Ordering::SeqCst) {
            return true;
        }
        if now_ms() >= self.shared.trusted_until_ms() {
            let exp = fmt_epoch(self.shared.stored().record.expires_at);
            self.shared.mark_lost(format!(
                "the lease could not be renewed before it expires at {exp}"
            ));
            return true;
        }
        false
    }

    /// Why the lease was lost, once [`Lease::lost`] is true.
    pub fn lost_reason(&self) -> Option<String> {
        if !self.lost() {
            return None;
        }
        self.shared
            .lost_reason
            .lock()
            .expect("lease reason lock")
            .clone()
    }

    /// Cancels `cancel` as soon as the lease is lost (checked every 250 ms), so an apply that
    /// is using it stops and rolls back. Abort the returned task when the apply is done.
    pub fn cancel_when_lost(&self, cancel: Arc<Cancel>) -> JoinHandle<()> {
        let shared = self.shared.clone();
        let key = self.key.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let lost =
                    shared.lost.load(Ordering::SeqCst) || now_ms() >= shared.trusted_until_ms();
                if lost {
                    let why = shared
                        .lost_reason
                        .lock()
                        .expect("lease reason lock")
                        .clone()
                        .unwrap_or_else(|| "it could not be renewed in time".into());
                    warn!(lease = %key, reason = %why, "lost the lease; stopping the apply");
                    cancel.cancel(format!("lost the lease on `{key}`: {why}"));
                    return;
                }
            }
        })
    }

    /// `Ok` while the lease holds; otherwise an [`ErrorKind::Locked`] error that says why.
    pub fn check(&self) -> Result<()> {
        match self.lost_reason() {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "lost the lease on `{}` ({}): {why}; stop applying and re-run once the \
                     other run is done",
                    self.key, self.location
                ),
            )),
        }
    }

    /// Stops renewing and deletes the lease if this run still holds it. A lease that was
    /// lost, or is about to expire, is left alone (someone else may be taking it over).
    pub async fn release(mut self) -> Result<()> {
        self.stop.notify_one();
        if let Some(h) = self.renewer.take() {
            // Let an in-flight renewal finish rather than cut it off mid-write.
            let _ = h.await;
        }
        if self.lost() {
            warn!(key = %self.key, reason = ?self.lost_reason(), "lease was lost before release; leaving it to expire");
            return Ok(());
        }
        let ours = self.shared.stored();
        match self.backend.delete_if_current(&self.key, &ours).await {
            Ok(true) => {
                debug!(key = %self.key, "released lease");
                Ok(())
            }
            Ok(false) => {
                warn!(key = %self.key, "lease was no longer ours at release; left it alone");
                Ok(())
            }
            Err(e) => Err(e.context(format!(
                "releasing the lease on `{}` ({}); it expires at {} without further action",
                self.key,
                self.location,
                fmt_epoch(ours.record.expires_at)
            ))),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(h) = self.renewer.take() {
            h.abort();
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("location", &self.location)
            .field("record", &self.shared.stored().record)
            .field("lost", &self.shared.lost.load(Ordering::SeqCst))
            .finish()
    }
}

/// First pause between polls while another run holds the lease; doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(5);

/// Takes the lease `spec.key` for `me`, waiting up to `spec.wait` while another run holds it
/// (polling with jittered backoff). An expired lease is taken over. Fails with
/// [`ErrorKind::Locked`] naming the holder when the wait runs out, [`ErrorKind::Cancelled`]
/// when `cancel` is set while waiting.
pub async fn acquire(
    backend: Arc<dyn LeaseBackend>,
    spec: LeaseSpec,
    me: Holder,
    cancel: &Cancel,
) -> Result<Lease> {
    if spec.ttl < Duration::from_secs(1) {
        return Err(Error::config(format!(
            "lease ttl {:?} is too short; use at least 1s",
            spec.ttl
        )));
    }
    let key = spec.key.as_str();
    let location = backend.location(key);
    let lease_id = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut pause = FIRST_POLL;
    let mut last_seen: Option<LeaseRecord> = None;
    loop {
        if cancel.is_cancelled() {
            return Err(cancelled(key, &location));
        }
        match attempt(&*backend, key, &location, &me, &lease_id, spec.ttl).await? {
            Attempt::Won(stored) => return Ok(start(backend, key, location, stored, spec.ttl)),
            Attempt::Held(Some(seen)) => last_seen = Some(seen),
            Attempt::Held(None) => {}
        }
        let waited = started.elapsed();
        if waited >= spec.wait {
            return Err(locked(key, &location, last_seen.as_ref(), spec.wait));
        }
        // Wake up soon after the holder's lease would expire, to take it over promptly.
        let mut nap = jitter(pause).min(spec.wait - waited);
        if let Some(seen) = &last_seen {
            let until_expiry = Duration::from_millis(
                seen.expires_at
                    .saturating_mul(1000)
                    .saturating_sub(now_ms())
                    + 50,
            );
            nap = nap.min(until_expiry);
        }
        debug!(key, holder = ?last_seen.as_ref().map(LeaseRecord::holder), pause_ms = nap.as_millis() as u64, "lease is held; waiting");
        if !sleep_unless_cancelled(nap, cancel).await {
            return Err(cancelled(key, &location));
        }
        pause = (pause * 2).min(MAX_POLL);
    }
}

enum Attempt {
    Won(Stored),
    /// Someone else holds it (the record seen, when one was).
    Held(Option<LeaseRecord>),
}

/// One try: create the lease, or take it over if it has expired.
async fn attempt(
    backend: &dyn LeaseBackend,
    key: &str,
    location: &str,
    me: &Holder,
    lease_id: &str,
    ttl: Duration,
) -> Result<Attempt> {
    let record = LeaseRecord::new(me, lease_id, now_ms(), ttl);
    let created = backend
        .try_create(key, &record)
        .await
        .map_err(|e| e.context(format!("taking the lease on `{key}` ({location})")))?;
    let read_ctx = || format!("reading the lease on `{key}` ({location})");
    if created {
        // Read back: a store whose conditional create is not atomic can let two runs create.
        let now = backend
            .current(key)
            .await
            .map_err(|e| e.context(read_ctx()))?;
        return Ok(match now {
            Some(s) if s.record.nonce == record.nonce => {
                info!(
                    key,
                    location,
                    expires_at = s.record.expires_at,
                    "took the lease"
                );
                Attempt::Won(s)
            }
            other => Attempt::Held(other.map(|s| s.record)),
        });
    }
    let Some(old) = backend
        .current(key)
        .await
        .map_err(|e| e.context(read_ctx()))?
    else {
        // Released between our create and our read.
        return Ok(Attempt::Held(None));
    };
    if old.record.nonce == record.nonce {
        // Our create landed, but its retry was refused (the first answer was lost).
        info!(
            key,
            location,
            expires_at = old.record.expires_at,
            "took the lease"
        );
        return Ok(Attempt::Won(old));
    }
    if !old.record.expired_at(now_ms()) {
        return Ok(Attempt::Held(Some(old.record)));
    }
    let record = LeaseRecord::new(me, lease_id, now_ms(), ttl);
    let swapped = backend.compare_and_swap(key, &old.token, &record).await;
    let ctx = || format!("taking over the expired lease on `{key}` ({location})");
    // Won, lost, or unknown (a retried request): the record read back decides.
    let now = match backend.current(key).await {
        Ok(now) => now,
        Err(e) => return Err(swapped.err().unwrap_or(e).context(ctx())),
    };
    match now {
        Some(s) if s.record.nonce == record.nonce => {
            info!(key, location, previous = %old.record.holder(), expired_at = old.record.expires_at, "took over an expired lease");
            Ok(Attempt::Won(s))
        }
        other => match swapped {
            Err(e) if !e.retryable => Err(e.context(ctx())),
            // Someone else was faster, or a passing failure: look again.
            _ => Ok(Attempt::Held(other.map(|s| s.record))),
        },
    }
}

fn start(
    backend: Arc<dyn LeaseBackend>,
    key: &str,
    location: String,
    stored: Stored,
    ttl: Duration,
) -> Lease {
    let shared = Arc::new(Shared {
        ttl,
        state: Mutex::new(stored),
        lost: AtomicBool::new(false),
        lost_reason: Mutex::new(None),
    });
    let stop = Arc::new(Notify::new());
    // In the span of whoever took the lease (the target's), so renewals show up in its trace.
    let renewer = tokio::spawn(
        renew_loop(
            backend.clone(),
            key.to_string(),
            shared.clone(),
            stop.clone(),
        )
        .instrument(tracing::Span::current()),
    );
    Lease {
        backend,
        key: key.to_string(),
        location,
        shared,
        stop,
        renewer: Some(renewer),
    }
}

/// Renews every ttl/3; after a failed renewal retries sooner, until the safety margin.
async fn renew_loop(
    backend: Arc<dyn LeaseBackend>,
    key: String,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
) {
    let every = shared.ttl / 3;
    let mut next = every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.notified() => return,
        }
        let ours = shared.stored();
        let record = ours.record.renewed(now_ms(), shared.ttl);
        let failure = match backend.compare_and_swap(&key, &ours.token, &record).await {
            Ok(Some(token)) => {
                debug!(key = %key, expires_at = record.expires_at, "renewed lease");
                *shared.state.lock().expect("lease state lock") = Stored { record, token };
                next = every;
                continue;
            }
            Ok(None) => "the conditional write was refused".to_string(),
            Err(e) => e.to_string(),
        };
        // Not swapped, or not known whether it was: what is stored now decides.
        let failure = match backend.current(&key).await {
            Ok(Some(now)) if now.record.nonce == record.nonce => {
                debug!(key = %key, expires_at = record.expires_at, "renewed lease");
                *shared.state.lock().expect("lease state lock") = Stored {
                    record,
                    token: now.token,
                };
                next = every;
                continue;
            }
            // Our previous write is still there: still ours, the renewal just did not land.
            Ok(Some(now)) if now.record.nonce == ours.record.nonce => failure,
            Ok(Some(now)) => {
                shared.mark_lost(format!(
                    "{} took it over (its lease expires at {})",
                    now.record.holder(),
                    fmt_epoch(now.record.expires_at)
                ));
                return;
            }
            Ok(None) => {
                shared.mark_lost("it was deleted by someone else".into());
                return;
            }
            Err(e) => format!("{failure}; reading it back: {e}"),
        };
        if now_ms() >= shared.trusted_until_ms() {
            shared.mark_lost(format!(
                "renewals kept failing until it was about to expire ({failure})"
            ));
            return;
        }
        warn!(key = %key, error = %failure, "renewing the lease failed; retrying");
        next = (every / 3).max(Duration::from_millis(100));
    }
}

/// The holder stops trusting its lease this long before it expires.
fn margin(ttl: Duration) -> Duration {
    ttl / 4
}

fn locked(key: &str, location: &str, seen: Option<&LeaseRecord>, wait: Duration) -> Error {
    let msg = match seen {
        Some(r) => {
            let exp = fmt_epoch(r.expires_at);
            format!(
                "target lease `{key}` ({location}) is held by {} since {}, until {exp} unless \
                 renewed; waited {}: wait for that run to finish, or raise --lock-timeout (a \
                 crashed run's lease expires at {exp})",
                r.holder(),
                fmt_epoch(r.acquired_at),
                fmt_duration(wait)
            )
        }
        None => format!(
            "could not take the target lease `{key}` ({location}) within {}: it kept changing \
             hands or could not be created; raise --lock-timeout or check who else runs \
             SecretSync on this target",
            fmt_duration(wait)
        ),
    };
    Error::new(ErrorKind::Locked, msg)
}

fn cancelled(key: &str, location: &str) -> Error {
    Error::new(
        ErrorKind::Cancelled,
        format!("cancelled while waiting for the lease on `{key}` ({location})"),
    )
}

/// Sleeps for `d` in short slices; `false` as soon as `cancel` is set.
async fn sleep_unless_cancelled(d: Duration, cancel: &Cancel) -> bool {
    let end = Instant::now() + d;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
}

/// Between half and all of `d` ("equal jitter"), so waiting runs do not poll in step.
fn jitter(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    d / 2 + d / 2 * r / 1000
}

fn new_nonce() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Epoch seconds from which a lease written at `now_ms` with `ttl` is free (rounded up, so
/// a lease never lives shorter than its ttl).
fn expiry(now_ms: u64, ttl: Duration) -> u64 {
    (now_ms + ttl.as_millis() as u64).div_ceil(1000)
}

/// Milliseconds since the Unix epoch (UTC).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-11-29T10:14:08Z`.
pub fn fmt_epoch(secs: u64) -> String {
    aws_smithy_types::DateTime::from_secs(secs as i64)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| format!("epoch second {secs}"))
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Encodes a lease key into the characters AWS allows in secret names (`A-Za-z0-9/_+=.@-`),
/// one-to-one: `_` and every other byte become `_xx` (hex), so distinct keys never share a
/// lease.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'+' | b'=' | b'.' | b'@' | b'-' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("_{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> Holder {
        Holder::new("acme", "run-1", "ci-7", "alice")
    }

    #[test]
    fn keys_encode_one_to_one_into_aws_name_characters() {
        let check = |key: &str, expected: &str| assert_eq!(encode_key(key), expected, "{key}");
        check("acme/production", "acme/production");
        check("a_b", "a_5fb");
        check("a b", "a_20b");
        check("a_20b", "a_5f20b");
        check("ünï", "_c3_bcn_c3_af");
        check("x.y@z+1=2-3", "x.y@z+1=2-3");
    }

    #[test]
    fn expiry_is_rounded_up_to_whole_seconds() {
        assert_eq!(expiry(10_000, Duration::from_secs(2)), 12);
        assert_eq!(expiry(10_001, Duration::from_secs(2)), 13);
        let r = LeaseRecord::new(&holder(), "l", 10_001, Duration::from_secs(2));
        assert!(!r.expired_at(12_999));
        assert!(r.expired_at(13_000));
    }

    #[test]
    fn records_round_trip_and_renewal_keeps_the_lease_id() {
        let r = LeaseRecord::new(&holder(), "l1", 5_000, Duration::from_secs(60));
        let back = LeaseRecord::from_json(&r.to_json(), "x").unwrap();
        assert_eq!(back, r);
        let n = r.renewed(30_000, Duration::from_secs(60));
        assert_eq!((n.lease_id.as_str(), n.acquired_at), ("l1", 5));
        assert_eq!(n.expires_at, 90);
        assert_ne!(n.nonce, r.nonce);
    }

    #[test]
    fn a_foreign_value_is_an_error_that_says_what_to_do() {
        let e = LeaseRecord::from_json(r#"{"password":"x"}"#, "secret .secretsync/locks/a")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unexpected);
        assert!(
            e.message
                .contains("secret .secretsync/locks/a does not hold a SecretSync lease")
        );
        assert!(e.message.contains("delete it"));
    }

    #[test]
    fn the_timeout_error_names_the_holder_the_expiry_and_what_to_do() {
        let r = LeaseRecord::new(&holder(), "l", 1_764_411_248_000, Duration::from_secs(60));
        let e = locked(
            "acme/prod",
            "secret .secretsync/locks/acme/prod",
            Some(&r),
            Duration::from_secs(30),
        );
        assert_eq!(e.kind, ErrorKind::Locked);
        assert_eq!(
            e.message,
            "target lease `acme/prod` (secret .secretsync/locks/acme/prod) is held by run run-1 of \
             owner `acme` on host ci-7 started by alice since 2025-11-29T10:14:08Z, until \
             2025-11-29T10:15:08Z unless renewed; waited 30s: wait for that run to finish, or \
             raise --lock-timeout (a crashed run's lease expires at 2025-11-29T10:15:08Z)"
        );
    }

    #[test]
    fn jitter_stays_between_half_and_all() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_millis(1000));
        }
    }
}
