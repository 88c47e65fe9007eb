//! The `webhook` target implementation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{
    ChangeKind, Listed, MANAGED_VALUE, SecretChange, TAG_FINGERPRINT, TAG_MANAGED, TAG_OWNER,
    TAG_TARGET, TAG_VERSION, TargetPlan,
};
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::notify::signature;
use secretsync_core::secret::Collected;
use secretsync_core::targets::webhook::{WebhookRules, WebhookSettings};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use zeroize::Zeroize;

use super::error;
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::{LeaseBackend, encode_key};
use crate::store::MergeStore;
use crate::targets::support::apply::{self, Apply, Counted, Failed, Pace, Writes};
use crate::targets::support::{self, Prefetched, payload};
use crate::targets::{ApplyReport, PlanContext, Target};

/// The version of the state object's shape.
const STATE_FORMAT: u32 = 1;

/// What was last delivered, kept in the merge store (no value, ever).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    pub owner: String,
    pub target: String,
    /// Random, made with the state: part of every idempotency key, so that a state deleted
    /// and made again (versions counted from 1 again) never repeats an earlier delivery's key.
    pub epoch: String,
    /// The id of the key the fingerprints were made with (the merge store's).
    pub key_id: Option<String>,
    /// Per name in the receiver.
    pub secrets: BTreeMap<String, Delivered>,
}

/// One name's last delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivered {
    /// The keyed fingerprint of the value delivered.
    pub fingerprint: String,
    /// Counts the deliveries of this name (the `version` of the body).
    pub version: u64,
    /// When it was delivered (RFC 3339).
    pub delivered_at: String,
}

/// The state object's key below the merge store's root (`suffix`: the store's, `.json` on
/// S3).
pub fn state_key(owner: &str, target: &str, suffix: &str) -> String {
    format!(
        ".secretsync/webhook/{}/{}/state{suffix}",
        encode_key(owner),
        encode_key(target)
    )
}

pub struct WebhookTarget {
    name: String,
    owner: String,
    policy: TargetPolicy,
    settings: WebhookSettings,
    store: Arc<dyn MergeStore>,
    leases: Arc<dyn LeaseBackend>,
    http: reqwest::Client,
    calls: AtomicU64,
    observers: crate::observe::Observers,
    endpoint: crate::observe::Endpoint,
    prefetched: Prefetched<State>,
    /// The state the last plan was made from, which the apply updates.
    planned: SyncMutex<Option<State>>,
}

/// The key of one delivery: the same for every attempt of it and for a re-run that sends the
/// same change again (its answer was lost), different for any other change.
fn delivery_id(owner: &str, target: &str, epoch: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in ["secretsync-webhook", owner, target, epoch]
        .iter()
        .chain(parts)
    {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

fn version_of(v: Option<&str>) -> u64 {
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl WebhookTarget {
    pub fn new(
        name: &str,
        owner: &str,
        policy: &TargetPolicy,
        settings: &WebhookSettings,
        store: Arc<dyn MergeStore>,
        leases: Arc<dyn LeaseBackend>,
        http: reqwest::Client,
    ) -> Self {
        // The receiver by its host and port only: a hook URL's path can be its credential.
        let host = crate::observe::url_host(settings.url.expose())
            .unwrap_or_else(|| "unknown".to_string());
        WebhookTarget {
            name: name.to_string(),
            owner: owner.to_string(),
            policy: policy.clone(),
            settings: settings.clone(),
            store,
            leases,
            http,
            calls: AtomicU64::new(0),
            observers: Default::default(),
            endpoint: crate::observe::Endpoint::webhook(&host),
            prefetched: Prefetched::default(),
            planned: SyncMutex::new(None),
        }
    }

    /// Every POST attempt is admitted by and reported to `observers` (metrics, circuit
    /// breakers, tracing) as `webhook/<host>`.
    pub fn observed(mut self, observers: crate::observe::Observers) -> Self {
        self.observers = observers;
        self
    }

    fn key(&self) -> String {
        state_key(&self.owner, &self.name, self.store.objects().suffix())
    }

    /// The state in the merge store; empty when there is none yet (a first run). A state that
    /// does not parse, or that names another owner or target, is an error: it never reads as
    /// "nothing delivered".
    async fn read_state(&self) -> Result<State> {
        let objects = self.store.objects();
        let key = self.key();
        let bytes = objects
            .get(&key)
            .await
            .map_err(|e| error::state(e, &self.name, "reading"))?;
        let Some(bytes) = bytes else {
            return Ok(State {
                format: STATE_FORMAT,
                owner: self.owner.clone(),
                target: self.name.clone(),
                epoch: uuid::Uuid::new_v4().simple().to_string(),
                ..State::default()
            });
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is not a SecretSync webhook state ({e}); restore it, or delete it to deliver every secret again",
                    objects.describe(&key)
                ),
            )
        })?;
        if state.format != STATE_FORMAT
            || state.owner != self.owner
            || state.target != self.name
            || state.epoch.is_empty()
        {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is the state of another target or format (owner `{}`, target `{}`, format {}); restore it, or delete it to deliver every secret again",
                    objects.describe(&key),
                    state.owner,
                    state.target,
                    state.format
                ),
            ));
        }
        Ok(state)
    }

    async fn write_state(&self, state: &State) -> Result<()> {
        let body = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        self.store
            .objects()
            .put(&self.key(), &body)
            .await
            .map_err(|e| error::state(e, &self.name, "writing"))
    }

    /// The merge store's key. A dry run creates nothing: without a key yet, a throwaway one
    /// serves the plan (no fingerprint then proves a value delivered).
    async fn fingerprint_key(&self, dry_run: bool) -> Result<FingerprintKey> {
        match self.store.fingerprint_key(!dry_run).await {
            Ok(k) => Ok(k),
            Err(e) if dry_run => {
                debug!(target_name = %self.name, error = %e.message, "no merge store key yet (dry run): a throwaway one serves the plan");
                Ok(FingerprintKey::from_bytes(support::random_key()?))
            }
            Err(e) => Err(e),
        }
    }

    /// The state as a listing: every name delivered is this target's, at its version, with
    /// its fingerprint.
    fn listed(&self, state: &State, key: &FingerprintKey) -> BTreeMap<String, Listed> {
        let same_key = state.key_id.as_deref() == Some(key.id().as_str());
        state
            .secrets
            .iter()
            .map(|(name, d)| {
                let mut tags = BTreeMap::from([
                    (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
                    (TAG_OWNER.to_string(), self.owner.clone()),
                    (TAG_TARGET.to_string(), self.name.clone()),
                    (TAG_VERSION.to_string(), d.version.to_string()),
                ]);
                // Fingerprints of another key prove nothing: the value is delivered again.
                if same_key {
                    tags.insert(TAG_FINGERPRINT.to_string(), d.fingerprint.clone());
                }
                (
                    name.clone(),
                    Listed {
                        name: name.clone(),
                        tags: Arc::new(tags.into()),
                        current_version: Some(d.version.to_string()),
                        pending_deletion: false,
                    },
                )
            })
            .collect()
    }

    /// POSTs `body` with the signature and the delivery id.
    async fn post(
        &self,
        body: &[u8],
        id: &str,
        event: &str,
        cancel: &Cancel,
    ) -> std::result::Result<u32, crate::hook::Undelivered> {
        let headers = [
            (
                "X-SecretSync-Signature",
                signature(self.settings.secret.expose(), body),
            ),
            ("X-SecretSync-Delivery", id.to_string()),
            ("Idempotency-Key", id.to_string()),
            ("X-SecretSync-Event", event.to_string()),
        ];
        let post = crate::hook::Post {
            url: self.settings.url.expose(),
            body,
            headers: &headers,
            timeout: self.settings.timeout,
            max_attempts: self.settings.max_attempts,
            observe: Some((&self.observers, &self.endpoint)),
        };
        let sent = || {
            self.calls.fetch_add(1, Ordering::Relaxed);
        };
        crate::hook::send(&self.http, &post, &sent, &|| cancel.is_cancelled()).await
    }
}

#[async_trait]
impl Target for WebhookTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// In the S3 merge store's bucket (`.secretsync/locks/`).
    fn lease_backend(&self) -> Arc<dyn LeaseBackend> {
        self.leases.clone()
    }

    async fn prefetch(&self) {
        self.prefetched.keep(self.read_state().await).await;
    }

    async fn plan(&self, desired: &Collected, ctx: &PlanContext) -> Result<TargetPlan> {
        let state = self.prefetched.take_or(self.read_state()).await?;
        let key = self.fingerprint_key(ctx.dry_run).await?;
        let listed = self.listed(&state, &key);
        let opts = support::plan_options(
            &self.name,
            &self.owner,
            &self.policy,
            Arc::new(WebhookRules),
            ctx,
            &desired.incomplete,
        );
        // Nothing can be read back from a receiver: a value the state does not prove
        // delivered is sent again (its key-level changes are unknown).
        let read = |_names| async { Ok(BTreeMap::new()) };
        let mut plan = support::plan_from_marks(&opts, &key, desired, &listed, read).await?;
        support::set_new_versions(&mut plan, |c| {
            (version_of(c.old_version.as_deref()) + 1).to_string()
        });
        let mut state = state;
        state.key_id = Some(key.id());
        *self.planned.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
        Ok(plan)
    }

    async fn apply(&self, plan: &TargetPlan, cancel: &Cancel) -> ApplyReport {
        let planned = self
            .planned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let state = match planned {
            Some(s) => s,
            None => match self.read_state().await {
                Ok(s) => s,
                Err(e) => {
                    return ApplyReport {
                        failure_kind: Some(e.failure_kind()),
                        failure: Some(e.message),
                        ..ApplyReport::default()
                    };
                }
            },
        };
        let writer = Writer {
            target: self,
            cancel,
            epoch: state.epoch.clone(),
            state: SyncMutex::new(state),
            delivered: AtomicU64::new(0),
        };
        let pace = Pace::from(&self.policy);
        let mut report = if self.settings.batch_size > 1 {
            writer.run_batches(plan, pace).await
        } else {
            apply::run(&writer, &self.name, pace, plan, cancel).await
        };
        if writer.delivered.load(Ordering::Relaxed) > 0 {
            // Also after a failure: what was delivered is not sent again.
            let state = writer.state.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = self.write_state(&state).await {
                warn!(target_name = %self.name, error = %e.message, "the webhook state was not written; the next run delivers these changes again");
                match &mut report.failure {
                    Some(f) => f.push_str(&format!("; {}", e.message)),
                    None => {
                        report.failure_kind = Some(e.failure_kind());
                        report.failure = Some(format!(
                            "{}; every change was delivered, and the next run delivers them again (same idempotency keys)",
                            e.message
                        ));
                    }
                }
            }
        }
        report
    }
}

mod batch;

/// One delivery.
enum Done {
    /// `created`: the name's first delivery.
    Delivered {
        name: String,
        created: bool,
    },
    Deleted(String),
}

impl Done {
    fn name(&self) -> &str {
        match self {
            Done::Delivered { name, .. } | Done::Deleted(name) => name,
        }
    }

    /// Why a rollback leaves it as it is: a POST cannot be unsent.
    fn not_undone(&self) -> String {
        let what = match self {
            Done::Delivered { .. } => "delivered",
            Done::Deleted(_) => "delivered as deleted",
        };
        format!(
            "{what} before the failure; a webhook delivery cannot be undone (it is recorded, and not sent again)"
        )
    }
}

/// The target's half of the apply ([`apply::run`]): the state it updates as deliveries succeed.
struct Writer<'a> {
    target: &'a WebhookTarget,
    /// A signal also stops a delivery's retries.
    cancel: &'a Cancel,
    /// The state's epoch (in every idempotency key).
    epoch: String,
    state: SyncMutex<State>,
    delivered: AtomicU64,
}

/// What one change delivers: the JSON sent for it (a change's holds the value), its delivery
/// id, and what the state records once it was delivered.
struct Delivery {
    json: serde_json::Map<String, serde_json::Value>,
    id: String,
    done: Done,
    /// `None`: a deletion (the name leaves the state).
    record: Option<Delivered>,
}

impl Writer<'_> {
    fn record(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// The delivery of a created or updated secret: `{name, path, version, value}`.
    fn change(&self, c: &SecretChange) -> Result<Delivery> {
        let t = self.target;
        let (value, fingerprint) = payload(c)?;
        let version = version_of(c.new_version.as_deref()).max(1);
        let serde_json::Value::Object(json) = serde_json::json!({
            "name": c.name,
            "path": c.path,
            "version": version,
            "value": value.expose(),
        }) else {
            unreachable!("an object literal")
        };
        let id = delivery_id(
            &t.owner,
            &t.name,
            &self.epoch,
            &[&c.name, &version.to_string(), fingerprint],
        );
        Ok(Delivery {
            json,
            id,
            done: Done::Delivered {
                name: c.name.clone(),
                created: c.kind == ChangeKind::Added,
            },
            record: Some(Delivered {
                fingerprint: fingerprint.to_string(),
                version,
                delivered_at: String::new(),
            }),
        })
    }

    /// The delivery of a deletion: `{name, deleted: true}`.
    fn deletion(&self, c: &SecretChange) -> Delivery {
        let t = self.target;
        let mut json = serde_json::Map::new();
        json.insert("name".into(), c.name.clone().into());
        json.insert("deleted".into(), true.into());
        let old = c.old_version.as_deref().unwrap_or("0");
        Delivery {
            json,
            id: delivery_id(&t.owner, &t.name, &self.epoch, &[&c.name, "deleted", old]),
            done: Done::Deleted(c.name.clone()),
            record: None,
        }
    }

    /// Records `d` as delivered now.
    fn delivered(&self, d: Delivery) -> Done {
        let name = d.done.name().to_string();
        self.record(|s| match d.record {
            Some(mut r) => {
                r.delivered_at =
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
                s.secrets.insert(name, r);
            }
            None => {
                s.secrets.remove(&name);
            }
        });
        d.done
    }
    fn host(&self) -> String {
        self.target.settings.describe()
    }
}

#[async_trait]
impl Apply for Writer<'_> {
    type Done = Done;

    async fn write(&self, c: &SecretChange, _: &Writes<'_>) -> Result<Done, Failed<Done>> {
        let d = self.change(c)?;
        let mut body = serde_json::to_vec(&d.json)
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let sent = self
            .target
            .post(&body, &d.id, "secret_changed", self.cancel)
            .await;
        body.zeroize();
        sent.map_err(|u| error::undelivered(&u, "change", &c.name, &self.host()))?;
        Ok(self.delivered(d))
    }

    async fn delete(&self, c: &SecretChange, _: &Writes<'_>) -> Result<Done, Failed<Done>> {
        let d = self.deletion(c);
        let body = serde_json::to_vec(&d.json)
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        self.target
            .post(&body, &d.id, "secret_deleted", self.cancel)
            .await
            .map_err(|u| error::undelivered(&u, "deletion", &c.name, &self.host()))?;
        Ok(self.delivered(d))
    }

    fn counted(&self, d: &Done) -> Counted {
        match d {
            Done::Delivered { created: true, .. } => Counted::Created,
            Done::Delivered { .. } => Counted::Updated,
            Done::Deleted(_) => Counted::Deleted,
        }
    }

    fn changed<'d>(&self, d: &'d Done) -> Option<&'d str> {
        Some(d.name())
    }

    /// A POST cannot be unsent: it stays delivered, and the report says so.
    async fn undo(&self, d: Done) -> Result<()> {
        Err(Error::new(ErrorKind::Unexpected, d.not_undone()))
    }
}
