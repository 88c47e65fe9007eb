//! The `gcp_secretmanager` target implementation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, stream};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_secretmanager_v1::client::SecretManagerService as Client;
use google_cloud_secretmanager_v1::model;
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{
    ChangeKind, Listed, MANAGED_VALUE, Ownership, RESERVED_PREFIX, SecretChange, TAG_FINGERPRINT,
    TAG_HASH, TAG_MANAGED, TAG_OWNER, TAG_ROLE, TAG_TARGET, TAG_VERSION, TargetPlan,
};
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::targets::TargetRules;
use secretsync_core::targets::gcp_secretmanager::{
    GcpSmRules, GcpSmSettings, LABEL_DISABLED, LABEL_FINGERPRINT, LABEL_MANAGED, LABEL_OWNER,
    LABEL_ROLE, LABEL_TARGET, LABEL_VERSION, Replication, decode_id, fingerprint_label,
    fingerprint_of_label, label_value,
};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tracing::{debug, warn};
use zeroize::Zeroize;

use super::error::{self, is_already_exists, is_failed_precondition, is_not_found};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::LeaseBackend;
use crate::observe::{self, Endpoint, Observers, Outcome};
use crate::targets::support::apply::{self, Apply, Counted, Failed, Pace, Writes};
use crate::targets::support::key::{self, KeyCache, KeyRead, KeyStore};
use crate::targets::support::{self, Prefetched, payload};
use crate::targets::{ApplyReport, PlanContext, Target};

/// The fingerprint key's secret id: `.secretsync/fingerprint-key` mapped like every name.
pub const KEY_ID: &str = "_2Esecretsync__fingerprint-key";
/// A JSON object: what a value is.
type Object = Map<String, Value>;
/// Secrets per `ListSecrets` page.
const PAGE_SIZE: i32 = 250;
/// Pages a listing may take before the target is refused (a loop, not a project).
const MAX_PAGES: usize = 100_000;
/// Each attempt's time limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// How one attempt ended: the service's answer, or the observers' refusal to send it.
enum Attempted {
    Answered(GaxError),
    Refused(Error),
}

pub struct GcpSmTarget {
    name: String,
    owner: String,
    policy: TargetPolicy,
    settings: GcpSmSettings,
    client: OnceCell<Client>,
    calls: AtomicU64,
    retry: crate::retry::Policy,
    observers: Observers,
    endpoint: Endpoint,
    prefetched: Prefetched<BTreeMap<String, Listed>>,
    key: KeyCache,
    leases: Arc<dyn LeaseBackend>,
}

/// One completed write, and how to undo it.
pub(crate) enum Done {
    Created {
        id: String,
    },
    Updated {
        id: String,
        /// The value before, to add back as a version.
        old_value: Option<SecretValue>,
        old_labels: HashMap<String, String>,
        /// The version the plan saw (enabled again when the secret was restored).
        restored: Option<String>,
    },
    Retagged {
        id: String,
        old_labels: HashMap<String, String>,
    },
    /// The first step of an orphan's deletion: these versions were disabled.
    Disabled {
        id: String,
        versions: Vec<String>,
        old_labels: HashMap<String, String>,
    },
    /// An orphan disabled by an earlier run, deleted by [`Apply::finish`].
    ToDelete {
        id: String,
    },
    Deleted {
        id: String,
    },
}

fn done_id(d: &Done) -> &str {
    match d {
        Done::Created { id }
        | Done::Updated { id, .. }
        | Done::Retagged { id, .. }
        | Done::Disabled { id, .. }
        | Done::ToDelete { id }
        | Done::Deleted { id } => id,
    }
}

/// The version number at the end of a version's resource name.
fn version_number(name: &str) -> Result<String> {
    name.rsplit_once("/versions/")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "Secret Manager answered a version named `{name}`, which has no version number"
                ),
            )
        })
}

impl GcpSmTarget {
    /// The target; the client is built when it is first used.
    pub fn new(
        name: &str,
        owner: &str,
        policy: &TargetPolicy,
        settings: &GcpSmSettings,
        leases: Arc<dyn LeaseBackend>,
    ) -> Self {
        GcpSmTarget {
            name: name.to_string(),
            owner: owner.to_string(),
            policy: policy.clone(),
            settings: settings.clone(),
            client: OnceCell::new(),
            calls: AtomicU64::new(0),
            retry: crate::retry::Policy::new(crate::retry::GCP_MAX_ATTEMPTS),
            observers: Observers::default(),
            endpoint: Endpoint::gcp(
                settings
                    .parent()
                    .strip_prefix("projects/")
                    .unwrap_or(&settings.project),
            ),
            prefetched: Prefetched::default(),
            key: KeyCache::default(),
            leases,
        }
    }

    /// The target over a client made elsewhere (tests: the client library's stub seam).
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = OnceCell::from(client);
        self
    }

    /// Every call is retried by `retry`.
    pub fn retried(mut self, retry: crate::retry::Policy) -> Self {
        self.retry = retry;
        self
    }

    /// Every attempt of every call is admitted by and reported to `observers` (metrics,
    /// circuit breakers, tracing), as `gcp/<project>`.
    pub fn observed(mut self, observers: Observers) -> Self {
        self.observers = observers;
        self
    }

    fn err(&self, e: Error) -> Error {
        e.context(format!(
            "target `{}` (Secret Manager {})",
            self.name,
            self.settings.parent()
        ))
    }

    async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                let mut b = Client::builder()
                    .with_retry_policy(NeverRetry)
                    .with_attempt_timeout(ATTEMPT_TIMEOUT);
                match (&self.settings.endpoint, &self.settings.location) {
                    (Some(e), _) => b = b.with_endpoint(e.clone()),
                    (None, Some(l)) => {
                        b = b.with_endpoint(format!("https://secretmanager.{l}.rep.googleapis.com"))
                    }
                    (None, None) => {}
                }
                if let Some(t) = &self.settings.token {
                    b = b.with_credentials(super::StaticToken::credentials(t)?);
                }
                b.build().await.map_err(|e| {
                    if e.is_default_credentials() {
                        Error::new(
                            ErrorKind::Auth,
                            format!(
                                "no Google credentials found ({e}); set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run with a workload identity, or set `auth.token`"
                            ),
                        )
                    } else {
                        Error::config(format!("cannot set up the Secret Manager client: {e}"))
                    }
                })
            })
            .await
    }

    /// One call through the retry layer; the last attempt's error as the client gave it.
    async fn send<T, F, Fut>(
        &self,
        op: &str,
        what: &str,
        idempotent: bool,
        f: F,
    ) -> Result<std::result::Result<T, GaxError>>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = google_cloud_secretmanager_v1::Result<T>>,
    {
        let client = self.client().await?.clone();
        let judge = |e: &Attempted| match e {
            Attempted::Answered(e) => error::map(e, op, what, idempotent),
            Attempted::Refused(e) => e.clone(),
        };
        let tried = crate::retry::run(&self.retry, op, judge, |_| {
            let call = f(client.clone());
            async {
                let outcome = |r: &std::result::Result<T, GaxError>| match r {
                    Ok(_) => Outcome::Ok,
                    Err(e) if is_not_found(e) => Outcome::Ok,
                    Err(e) => observe::outcome_of_error(&error::map(e, op, what, idempotent)),
                };
                let observed =
                    observe::observed(&self.observers, &self.endpoint, op, outcome, async {
                        self.calls.fetch_add(1, Ordering::Relaxed);
                        call.await
                    })
                    .await;
                match observed {
                    Ok(r) => r.map_err(Attempted::Answered),
                    Err(refused) => Err(Attempted::Refused(refused)),
                }
            }
        })
        .await;
        match tried.result {
            Ok(v) => Ok(Ok(v)),
            Err(Attempted::Answered(e)) => Ok(Err(e)),
            Err(Attempted::Refused(e)) => Err(self.err(e)),
        }
    }

    /// [`Self::send`] with every error mapped; NOT_FOUND is `None`.
    async fn call<T, F, Fut>(
        &self,
        op: &str,
        what: &str,
        idempotent: bool,
        f: F,
    ) -> Result<Option<T>>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = google_cloud_secretmanager_v1::Result<T>>,
    {
        match self.send(op, what, idempotent, f).await? {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(error::map(&e, op, what, idempotent)),
        }
    }

    /// [`Self::call`] where NOT_FOUND is an error too.
    async fn must<T, F, Fut>(&self, op: &str, what: &str, idempotent: bool, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = google_cloud_secretmanager_v1::Result<T>>,
    {
        self.call(op, what, idempotent, f).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                format!("{op} `{what}`: the secret is gone (deleted meanwhile?); run again"),
            )
        })
    }

    fn secret_name(&self, id: &str) -> String {
        format!("{}/secrets/{id}", self.settings.parent())
    }

    /// The core's marks of a secret's labels (owner scope and target names recognised from
    /// their label form, the fingerprint decoded); other labels are kept as they are.
    fn tags_of(&self, labels: &HashMap<String, String>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in labels {
            let (key, value) = match k.as_str() {
                LABEL_MANAGED => (TAG_MANAGED, v.clone()),
                LABEL_OWNER if *v == label_value(&self.owner) => (TAG_OWNER, self.owner.clone()),
                LABEL_OWNER => (TAG_OWNER, v.clone()),
                LABEL_TARGET => {
                    let known = std::iter::once(&self.name)
                        .chain(self.policy.adopt_from.iter())
                        .find(|n| label_value(n) == *v);
                    (TAG_TARGET, known.cloned().unwrap_or_else(|| v.clone()))
                }
                LABEL_FINGERPRINT => (
                    TAG_FINGERPRINT,
                    fingerprint_of_label(v).unwrap_or_else(|| v.clone()),
                ),
                LABEL_VERSION => (TAG_VERSION, v.clone()),
                LABEL_ROLE => (TAG_ROLE, v.clone()),
                other => {
                    out.insert(other.to_string(), v.clone());
                    continue;
                }
            };
            out.insert(key.to_string(), value);
        }
        out
    }

    /// The labels of the core's marks (the inverse of [`Self::tags_of`]).
    fn labels_of<'a>(tags: impl Iterator<Item = (&'a str, &'a String)>) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for (k, v) in tags {
            let (key, value) = match k {
                TAG_MANAGED => (LABEL_MANAGED, v.clone()),
                TAG_OWNER => (LABEL_OWNER, label_value(v)),
                TAG_TARGET => (LABEL_TARGET, label_value(v)),
                TAG_FINGERPRINT => (
                    LABEL_FINGERPRINT,
                    fingerprint_label(v).unwrap_or_else(|| v.clone()),
                ),
                TAG_VERSION => (LABEL_VERSION, v.clone()),
                TAG_ROLE => (LABEL_ROLE, v.clone()),
                TAG_HASH => continue,
                other => {
                    out.insert(other.to_string(), v.clone());
                    continue;
                }
            };
            out.insert(key.to_string(), value);
        }
        out
    }

    /// The labels after writing this fingerprint at `version`: the user's own labels stay,
    /// the marks are set, the disabled mark goes.
    fn marks(
        &self,
        old: &secretsync_core::tags::TagMap,
        fingerprint: Option<&str>,
        version: Option<&str>,
    ) -> HashMap<String, String> {
        let mut labels = Self::labels_of(old.iter());
        labels.remove(LABEL_DISABLED);
        labels.insert(LABEL_MANAGED.into(), MANAGED_VALUE.into());
        labels.insert(LABEL_OWNER.into(), label_value(&self.owner));
        labels.insert(LABEL_TARGET.into(), label_value(&self.name));
        for (k, v) in [(LABEL_FINGERPRINT, fingerprint), (LABEL_VERSION, version)] {
            match v {
                Some(v) if k == LABEL_FINGERPRINT => {
                    labels.insert(k.into(), fingerprint_label(v).unwrap_or_else(|| v.into()));
                }
                Some(v) => {
                    labels.insert(k.into(), v.into());
                }
                None => {
                    labels.remove(k);
                }
            }
        }
        labels
    }

    fn replication(&self) -> Option<model::Replication> {
        if self.settings.location.is_some() {
            return None;
        }
        Some(match &self.settings.replication {
            Replication::Automatic => {
                model::Replication::new().set_automatic(model::replication::Automatic::new())
            }
            Replication::UserManaged(regions) => model::Replication::new().set_user_managed(
                model::replication::UserManaged::new().set_replicas(regions.iter().map(|r| {
                    model::replication::user_managed::Replica::new().set_location(r.clone())
                })),
            ),
        })
    }

    /// Every secret of the project (or location) whose id SecretSync could have written under
    /// the prefix: id, marks, the version the marks name, and whether it is disabled.
    async fn list(&self) -> Result<BTreeMap<String, Listed>> {
        self.list_inner().await.map_err(|e| self.err(e))
    }

    async fn list_inner(&self) -> Result<BTreeMap<String, Listed>> {
        let parent = self.settings.parent();
        let secrets_of = format!("{parent}/secrets/");
        let prefix = &self.policy.secret_prefix;
        let mut out = BTreeMap::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let page = self
                .must("ListSecrets", &parent, true, |c| {
                    c.list_secrets()
                        .set_parent(parent.clone())
                        .set_page_size(PAGE_SIZE)
                        .set_page_token(token.clone())
                        .send()
                })
                .await?;
            for s in page.secrets {
                let id = s.name.strip_prefix(&secrets_of).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("ListSecrets of `{parent}` answered a secret named `{}`, which is not in it", s.name),
                    )
                })?;
                // Ids encoding never makes are nobody's paths: never written, never deleted.
                let Some(full) = decode_id(id) else { continue };
                if full.starts_with(RESERVED_PREFIX) || !full.starts_with(prefix.as_str()) {
                    continue;
                }
                let tags = self.tags_of(&s.labels);
                out.insert(
                    id.to_string(),
                    Listed {
                        name: id.to_string(),
                        current_version: tags.get(TAG_VERSION).cloned(),
                        pending_deletion: s.labels.contains_key(LABEL_DISABLED),
                        tags: Arc::new(tags.into()),
                    },
                );
            }
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            if page.next_page_token == token {
                break;
            }
            token = page.next_page_token;
        }
        Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "ListSecrets of `{parent}` did not end (a page token repeated or more than {MAX_PAGES} pages)"
            ),
        ))
    }

    /// The value of a version (`latest` or a number); `None`: gone, disabled or destroyed.
    async fn access(&self, id: &str, version: &str) -> Result<Option<Map<String, Value>>> {
        let name = format!("{}/versions/{version}", self.secret_name(id));
        let r = self
            .send("AccessSecretVersion", id, true, |c| {
                c.access_secret_version().set_name(name.clone()).send()
            })
            .await?;
        let resp = match r {
            Ok(r) => r,
            Err(e) if is_not_found(&e) || is_failed_precondition(&e) => return Ok(None),
            Err(e) => return Err(error::map(&e, "AccessSecretVersion", id, true)),
        };
        let data = resp.payload.map(|p| p.data).unwrap_or_default();
        match serde_json::from_slice::<Value>(&data) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => {
                debug!(target_name = %self.name, secret = %id, "the value is not a JSON object; it will be overwritten");
                Ok(None)
            }
        }
    }

    async fn read_values(
        &self,
        names: Vec<String>,
        listed: &BTreeMap<String, Listed>,
    ) -> Result<BTreeMap<String, SecretValue>> {
        let reads: Vec<(String, Result<Option<Object>>)> = stream::iter(names)
            .map(|id| async move {
                let version = listed
                    .get(&id)
                    .and_then(|l| l.current_version.clone())
                    .unwrap_or_else(|| "latest".into());
                let r = self.access(&id, &version).await;
                (id, r)
            })
            .buffer_unordered(self.policy.concurrency.max(1))
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for (id, r) in reads {
            if let Some(m) = r.map_err(|e| self.err(e))? {
                out.insert(id, SecretValue::new(m));
            }
        }
        Ok(out)
    }

    /// Adds a version holding `value`; returns its number.
    async fn add_version(&self, id: &str, value: &Map<String, Value>) -> Result<String> {
        let mut json = serde_json::to_vec(value)
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("cannot encode `{id}`: {e}")))?;
        let parent = self.secret_name(id);
        let data = bytes::Bytes::from(json.clone());
        json.zeroize();
        let v = self
            .must("AddSecretVersion", id, false, |c| {
                c.add_secret_version()
                    .set_parent(parent.clone())
                    .set_payload(model::SecretPayload::new().set_data(data.clone()))
                    .send()
            })
            .await?;
        version_number(&v.name)
    }

    async fn set_labels(&self, id: &str, labels: HashMap<String, String>) -> Result<()> {
        let secret = model::Secret::new()
            .set_name(self.secret_name(id))
            .set_labels(labels);
        self.must("UpdateSecret", id, true, |c| {
            c.update_secret()
                .set_secret(secret.clone())
                .set_update_mask(wkt::FieldMask::default().set_paths(["labels"]))
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn delete_secret(&self, id: &str) -> Result<()> {
        let name = self.secret_name(id);
        self.call("DeleteSecret", id, true, |c| {
            c.delete_secret().set_name(name.clone()).send()
        })
        .await
        .map(|_| ())
    }

    /// The numbers of a secret's versions in `state`.
    async fn versions_in(
        &self,
        id: &str,
        state: model::secret_version::State,
    ) -> Result<Vec<String>> {
        let parent = self.secret_name(id);
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let page = self
                .must("ListSecretVersions", id, true, |c| {
                    c.list_secret_versions()
                        .set_parent(parent.clone())
                        .set_page_size(250)
                        .set_page_token(token.clone())
                        .send()
                })
                .await?;
            for v in page.versions {
                if v.state == state {
                    out.push(version_number(&v.name)?);
                }
            }
            if page.next_page_token.is_empty() || page.next_page_token == token {
                return Ok(out);
            }
            token = page.next_page_token;
        }
        Ok(out)
    }

    async fn set_version_enabled(&self, id: &str, version: &str, enabled: bool) -> Result<()> {
        let name = format!("{}/versions/{version}", self.secret_name(id));
        if enabled {
            self.must("EnableSecretVersion", id, true, |c| {
                c.enable_secret_version().set_name(name.clone()).send()
            })
            .await?;
        } else {
            self.must("DisableSecretVersion", id, true, |c| {
                c.disable_secret_version().set_name(name.clone()).send()
            })
            .await?;
        }
        Ok(())
    }

    async fn create(&self, c: &SecretChange) -> Result<Done> {
        let (value, fingerprint) = payload(c)?;
        let id = c.name.clone();
        // Marked as ours from the start, but without a fingerprint or version until the value
        // is there: a secret left without a version never looks up to date.
        let mut secret =
            model::Secret::new().set_labels(self.marks(&Default::default(), None, None));
        if let Some(r) = self.replication() {
            secret = secret.set_replication(r);
        }
        let parent = self.settings.parent();
        match self
            .send("CreateSecret", &id, false, |cl| {
                cl.create_secret()
                    .set_parent(parent.clone())
                    .set_secret_id(id.clone())
                    .set_secret(secret.clone())
                    .send()
            })
            .await?
        {
            Ok(_) => {}
            Err(e) => return Err(error::map(&e, "CreateSecret", &id, false)),
        }
        let done = Done::Created { id: id.clone() };
        let written = async {
            let version = self.add_version(&id, value.expose()).await?;
            self.set_labels(
                &id,
                self.marks(&Default::default(), Some(fingerprint), Some(&version)),
            )
            .await
        }
        .await;
        if let Err(mut err) = written {
            if let Err(u) = self.undo(done).await {
                err.message = format!(
                    "{}; removing the secret just created also failed, it is left without a fingerprint: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(done)
    }

    async fn update(&self, c: &SecretChange) -> Result<Done> {
        let (value, fingerprint) = payload(c)?;
        let id = c.name.clone();
        let old_labels = Self::labels_of(c.old_tags.iter());
        if c.retag {
            self.set_labels(
                &id,
                self.marks(&c.old_tags, Some(fingerprint), c.old_version.as_deref()),
            )
            .await?;
            return Ok(Done::Retagged { id, old_labels });
        }
        let mut restored = None;
        if c.restore {
            // Disabled by an earlier run as an orphan: its version comes back first.
            if let Some(v) = &c.old_version {
                self.set_version_enabled(&id, v, true).await?;
                restored = Some(v.clone());
            }
            if restored.is_some()
                && c.old_tags.get(TAG_FINGERPRINT).map(String::as_str) == Some(fingerprint)
            {
                let done = Done::Updated {
                    id: id.clone(),
                    old_value: None,
                    old_labels,
                    restored,
                };
                let relabel = self
                    .set_labels(
                        &id,
                        self.marks(&c.old_tags, Some(fingerprint), c.old_version.as_deref()),
                    )
                    .await;
                if let Err(mut err) = relabel {
                    if let Err(u) = self.undo(done).await {
                        err.message =
                            format!("{}; disabling it again also failed: {u}", err.message);
                    }
                    return Err(err);
                }
                return Ok(done);
            }
        }
        // What a rollback adds back.
        let old_value = match &c.old_value {
            Some(v) => Some(v.clone()),
            None => match &c.old_version {
                Some(v) => self.access(&id, v).await?.map(SecretValue::new),
                None => self.access(&id, "latest").await?.map(SecretValue::new),
            },
        };
        let done = Done::Updated {
            id: id.clone(),
            old_value,
            old_labels,
            restored,
        };
        let written = async {
            let version = self.add_version(&id, value.expose()).await?;
            self.set_labels(
                &id,
                self.marks(&c.old_tags, Some(fingerprint), Some(&version)),
            )
            .await
        }
        .await;
        if let Err(mut err) = written {
            if let Err(u) = self.undo(done).await {
                err.message = format!("{}; rolling this secret back also failed: {u}", err.message);
            }
            return Err(err);
        }
        Ok(done)
    }

    /// An orphan: disabled now (step one), or deleted when an earlier run disabled it.
    async fn delete(&self, c: &SecretChange) -> Result<Done> {
        let id = c.name.clone();
        if c.old_tags.contains_key(LABEL_DISABLED) {
            return Ok(Done::ToDelete { id });
        }
        let old_labels = Self::labels_of(c.old_tags.iter());
        let enabled = self
            .versions_in(&id, model::secret_version::State::Enabled)
            .await?;
        let mut done = Done::Disabled {
            id: id.clone(),
            versions: Vec::new(),
            old_labels: old_labels.clone(),
        };
        let mut labels = old_labels;
        labels.insert(LABEL_DISABLED.into(), "true".into());
        let res = async {
            for v in &enabled {
                self.set_version_enabled(&id, v, false).await?;
                if let Done::Disabled { versions, .. } = &mut done {
                    versions.push(v.clone());
                }
            }
            self.set_labels(&id, labels).await
        }
        .await;
        if let Err(mut err) = res {
            if let Err(u) = self.undo(done).await {
                err.message = format!(
                    "{}; enabling its versions again also failed: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(done)
    }

    async fn undo(&self, done: Done) -> Result<()> {
        match done {
            Done::Created { id } => self.delete_secret(&id).await,
            Done::Retagged { id, old_labels } => self.set_labels(&id, old_labels).await,
            Done::Updated {
                id,
                old_value,
                old_labels,
                restored,
            } => {
                let mut labels = old_labels;
                if let Some(v) = restored {
                    self.set_version_enabled(&id, &v, false).await?;
                }
                if let Some(old) = old_value {
                    // Versions are immutable: the previous value goes back as a new one, and
                    // marks that were true for the old version are true for its copy.
                    let v = self.add_version(&id, old.expose()).await?;
                    if labels.contains_key(LABEL_VERSION) {
                        labels.insert(LABEL_VERSION.into(), v);
                    }
                    if labels.contains_key(LABEL_DISABLED) {
                        self.set_version_enabled(&id, labels[LABEL_VERSION].as_str(), false)
                            .await?;
                    }
                }
                self.set_labels(&id, labels).await
            }
            Done::Disabled {
                id,
                versions,
                old_labels,
            } => {
                for v in &versions {
                    self.set_version_enabled(&id, v, true).await?;
                }
                self.set_labels(&id, old_labels).await
            }
            Done::ToDelete { .. } => Ok(()),
            Done::Deleted { id } => Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "`{id}` was deleted (its versions had been disabled by an earlier run); it cannot be restored"
                ),
            )),
        }
    }

    /// The second step of orphan deletion: this owner's secrets that an earlier run disabled
    /// and that are still not desired are deleted now, under the same guards as any deletion.
    fn plan_second_step(
        &self,
        opts: &secretsync_core::diff::PlanOptions,
        desired_empty: bool,
        listed: &BTreeMap<String, Listed>,
        plan: &mut TargetPlan,
    ) {
        let stale: Vec<&Listed> = listed
            .values()
            .filter(|l| {
                l.pending_deletion
                    && GcpSmRules.path_of(&opts.prefix, &l.name).is_some()
                    && matches!(
                        l.ownership(opts),
                        Ownership::Ours | Ownership::Inherited { scoped: true }
                    )
                    && !plan.changes.iter().any(|c| c.name == l.name)
            })
            .collect();
        if stale.is_empty() {
            return;
        }
        let names = || stale.iter().map(|l| l.name.clone());
        if !opts.delete_orphans || plan.deletions_held.is_some() || plan.refused.is_some() {
            plan.orphans_kept.extend(names());
            plan.orphans_kept.sort();
            return;
        }
        let deletions = plan
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .count()
            + stale.len();
        if deletions > opts.max_deletes {
            plan.refused = Some(format!(
                "{deletions} managed secrets are to be deleted or disabled, more than `max_deletes` ({}) allows; nothing was changed. If this is expected, raise `max_deletes` on target `{}`",
                opts.max_deletes, opts.target
            ));
            return;
        }
        if desired_empty && !opts.allow_mass_delete {
            plan.refused = Some(format!(
                "the desired state of target `{}` is empty; deleting the {} secrets an earlier run disabled needs `--allow-mass-delete`. Nothing was changed",
                opts.target,
                stale.len()
            ));
            return;
        }
        for l in stale {
            let path = GcpSmRules
                .path_of(&opts.prefix, &l.name)
                .unwrap_or_else(|| l.name.clone());
            let mut c = SecretChange {
                path,
                name: l.name.clone(),
                kind: ChangeKind::Deleted,
                reason: Some("its versions were disabled by an earlier run and it is still not desired: deleted now".into()),
                invalid: false,
                keys: Vec::new(),
                restore: false,
                adopt: false,
                retag: false,
                old_version: l.current_version.clone(),
                new_version: None,
                old_tags: l.tags.clone(),
                old_value: None,
                new_value: None,
                fingerprint: None,
                settings: Vec::new(),
                old_numbered: None,
                new_numbered: None,
                reuse_version: None,
                pinned: None,
            };
            c.old_version = l.current_version.clone();
            plan.changes.push(c);
        }
        plan.changes
            .sort_by(|a, b| a.path.cmp(&b.path).then(a.name.cmp(&b.name)));
    }
}

/// Where the fingerprint key lives: the secret [`KEY_ID`], its latest version holding
/// `{"key": "<64 hex>"}`.
struct KeyEntry<'a>(&'a GcpSmTarget);

#[async_trait]
impl KeyStore for KeyEntry<'_> {
    type Slot = ();

    fn location(&self) -> String {
        self.0.secret_name(KEY_ID)
    }

    async fn read(&self, _create: bool, _retry: bool) -> Result<KeyRead<()>> {
        let t = self.0;
        let name = format!("{}/versions/latest", t.secret_name(KEY_ID));
        let r = t
            .send("AccessSecretVersion", KEY_ID, true, |c| {
                c.access_secret_version().set_name(name.clone()).send()
            })
            .await?;
        let resp = match r {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(KeyRead::Absent(())),
            Err(e) if is_failed_precondition(&e) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the latest version of the fingerprint key `{}` is disabled or destroyed; enable it, or delete the secret (SecretSync then creates a new key and reads every managed value once)",
                        self.location()
                    ),
                ));
            }
            Err(e) => return Err(error::map(&e, "AccessSecretVersion", KEY_ID, true)),
        };
        let data = resp.payload.map(|p| p.data).unwrap_or_default();
        let parsed: Option<FingerprintKey> =
            serde_json::from_slice::<Value>(&data).ok().and_then(|v| {
                v.get("key")
                    .and_then(Value::as_str)
                    .and_then(FingerprintKey::from_hex)
            });
        parsed.map(KeyRead::Found).ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "`{}` does not hold a SecretSync fingerprint key; delete it (SecretSync recreates it, and then reads every managed value once)",
                    self.location()
                ),
            )
        })
    }

    async fn create(&self, _slot: (), key: &FingerprintKey, _retry: bool) -> Result<bool> {
        let t = self.0;
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), MANAGED_VALUE.to_string()),
            (LABEL_ROLE.to_string(), "fingerprint-key".to_string()),
        ]);
        let mut secret = model::Secret::new().set_labels(labels);
        if let Some(r) = t.replication() {
            secret = secret.set_replication(r);
        }
        let parent = t.settings.parent();
        match t
            .send("CreateSecret", KEY_ID, false, |c| {
                c.create_secret()
                    .set_parent(parent.clone())
                    .set_secret_id(KEY_ID)
                    .set_secret(secret.clone())
                    .send()
            })
            .await?
        {
            Ok(_) => {}
            // Another run is creating it: its version is read next, or added below.
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(error::map(&e, "CreateSecret", KEY_ID, false)),
        }
        let existing = t
            .versions_in(KEY_ID, model::secret_version::State::Enabled)
            .await?;
        if !existing.is_empty() {
            return Ok(false);
        }
        let mut value = Map::new();
        value.insert("key".into(), Value::String(key.to_hex()));
        let added = t.add_version(KEY_ID, &value).await;
        if let Some(Value::String(s)) = value.get_mut("key") {
            s.zeroize();
        }
        added?;
        Ok(true)
    }
}

#[async_trait]
impl Target for GcpSmTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn lease_backend(&self) -> Arc<dyn LeaseBackend> {
        self.leases.clone()
    }

    async fn prefetch(&self) {
        self.prefetched.keep(self.list().await).await;
    }

    async fn plan(&self, desired: &Collected, ctx: &PlanContext) -> Result<TargetPlan> {
        let listed = self.prefetched.take_or(self.list()).await?;
        let create = !ctx.dry_run;
        let store = KeyEntry(self);
        let fetch = key::get_or_create(&store, &self.name, create);
        let key = self.key.get(create, fetch).await.map_err(|e| self.err(e))?;
        let opts = support::plan_options(
            &self.name,
            &self.owner,
            &self.policy,
            Arc::new(GcpSmRules),
            ctx,
            &desired.incomplete,
        );
        let read = |names| self.read_values(names, &listed);
        let mut plan = support::plan_from_marks(&opts, &key, desired, &listed, read).await?;
        self.plan_second_step(&opts, desired.secrets.is_empty(), &listed, &mut plan);
        Ok(plan)
    }

    async fn apply(&self, plan: &TargetPlan, cancel: &Cancel) -> ApplyReport {
        let pace = Pace::from(&self.policy);
        apply::run(&Writer(self), &self.name, pace, plan, cancel).await
    }
}

/// The target's half of the apply ([`apply::run`]).
struct Writer<'a>(&'a GcpSmTarget);

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
            Done::Retagged { .. } => Counted::Retagged,
            Done::Disabled { .. } | Done::ToDelete { .. } | Done::Deleted { .. } => {
                Counted::Deleted
            }
        }
    }

    fn changed<'d>(&self, d: &'d Done) -> Option<&'d str> {
        match d {
            Done::Retagged { .. } => None,
            d => Some(done_id(d)),
        }
    }

    fn undoable<'d>(&self, d: &'d Done) -> Option<&'d str> {
        match d {
            Done::ToDelete { .. } => None,
            d => Some(done_id(d)),
        }
    }

    async fn undo(&self, d: Done) -> Result<()> {
        self.0.undo(d).await
    }

    /// Orphans disabled by an earlier run are deleted once every other change succeeded.
    fn finishes(&self, d: &Done) -> bool {
        matches!(d, Done::ToDelete { .. })
    }

    async fn finish(&self, d: &mut Done) -> Result<()> {
        if let Done::ToDelete { id } = d {
            self.0.delete_secret(id).await?;
            *d = Done::Deleted { id: id.clone() };
        } else {
            warn!(target_name = %self.0.name, "nothing to finish");
        }
        Ok(())
    }

    fn context(&self, e: Error) -> Error {
        self.0.err(e)
    }
}
