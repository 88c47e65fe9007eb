//! The `plugin` target implementation: the listing (paged `list`), value reads, the
//! fingerprint key kept through the plugin, and the writes and their undo that
//! `support::apply` drives.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{
    ChangeKind, Listed, MANAGED_VALUE, RESERVED_PREFIX, SecretChange, TAG_FINGERPRINT, TAG_HASH,
    TAG_MANAGED, TAG_OWNER, TAG_ROLE, TAG_TARGET, TAG_VERSION, Tags, TargetPlan,
};
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::path::reject_key;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::targets::plugin::PluginRules;
use secretsync_core::targets::plugin::PluginSettings;
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use super::error::{self, in_target};
use super::protocol::{self, Bad};
use super::session::{Reply, Session};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::LeaseBackend;
use crate::targets::support::apply::{self, Apply, Counted, Failed, Pace, Writes};
use crate::targets::support::key::{self, KeyCache, KeyRead, KeyStore};
use crate::targets::support::{self, Prefetched, payload};
use crate::targets::{ApplyReport, PlanContext, Target};

/// The fingerprint key's name in the plugin's store (see `secretsync_core::fingerprint`): a
/// secret like the others, `{"key": "<hex>"}`, created with `expected_version: 0` so that
/// concurrent first runs agree on one key.
pub const KEY_NAME: &str = ".secretsync/fingerprint-key";

/// Entries a listing may hold before the target is refused.
const MAX_LISTED: usize = 1_000_000;
/// Pages a listing may take (a plugin whose cursor never ends is out of step).
const MAX_PAGES: usize = 100_000;

pub struct PluginTarget {
    name: String,
    owner: String,
    policy: TargetPolicy,
    session: Session,
    prefetched: Prefetched<BTreeMap<String, Listed>>,
    key: KeyCache,
    leases: Arc<dyn LeaseBackend>,
}

/// One completed write, and how to undo it.
enum Done {
    Created {
        name: String,
        version: u64,
    },
    Updated {
        name: String,
        old_version: u64,
        new_version: u64,
        /// The value at `old_version`, written back on undo.
        old_value: Option<SecretValue>,
        old_marks: Tags,
    },
    Retagged,
    Deleted {
        name: String,
        version: u64,
        /// What was deleted, written back on undo (`None`: it was already gone).
        old: Option<(SecretValue, Tags)>,
    },
}

/// The version a listing or a plan names (absent: 0, no secret).
fn version_of(v: Option<&str>) -> u64 {
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Marks that were true for a value at `from` are true for its copy written at `to`.
fn moved_marks(marks: &Tags, from: u64, to: u64) -> BTreeMap<String, String> {
    let mut m = marks.to_map();
    if m.get(TAG_VERSION).map(String::as_str) == Some(from.to_string().as_str()) {
        m.insert(TAG_VERSION.into(), to.to_string());
    }
    m
}

impl PluginTarget {
    /// The target; the plugin is started when the target is first used.
    pub fn new(
        name: &str,
        owner: &str,
        policy: &TargetPolicy,
        settings: &PluginSettings,
        leases: Arc<dyn LeaseBackend>,
    ) -> Self {
        Self::observed(name, owner, policy, settings, leases, Default::default())
    }

    /// [`PluginTarget::new`], with every request admitted by and reported to `observers`.
    pub fn observed(
        name: &str,
        owner: &str,
        policy: &TargetPolicy,
        settings: &PluginSettings,
        leases: Arc<dyn LeaseBackend>,
        observers: crate::observe::Observers,
    ) -> Self {
        PluginTarget {
            name: name.to_string(),
            owner: owner.to_string(),
            policy: policy.clone(),
            session: Session::new(name, settings).observed(observers),
            prefetched: Prefetched::default(),
            key: KeyCache::default(),
            leases,
        }
    }

    fn err(&self, e: Error) -> Error {
        in_target(e, &self.name)
    }

    fn bad(&self, op: &str, b: Bad) -> Error {
        error::bad_answer(self.session.command(), op, &b)
    }

    /// One request; the plugin's `not_found` is `None`, its other errors are errors about
    /// `what` (`writing \`apps/db\``).
    async fn call(
        &self,
        op: &str,
        what: &str,
        body: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>> {
        match self.session.call(op, body).await? {
            Reply::Ok(m) => Ok(Some(m)),
            Reply::Refused { code, .. } if code == "not_found" => Ok(None),
            Reply::Refused { code, message } => Err(error::refused(what, &code, &message)),
        }
    }

    /// The kind's rules narrowed by the plugin's `hello`.
    async fn rules(&self) -> Result<PluginRules> {
        let h = self.session.hello().await?;
        Ok(PluginRules::default().narrowed(
            h.max_name_bytes,
            h.max_value_bytes,
            h.allowed_punctuation,
        ))
    }

    /// Every secret under the prefix: names, marks, version.
    async fn list(&self) -> Result<BTreeMap<String, Listed>> {
        self.list_inner().await.map_err(|e| self.err(e))
    }

    async fn list_inner(&self) -> Result<BTreeMap<String, Listed>> {
        let prefix = self.policy.secret_prefix.as_str();
        let mut out = BTreeMap::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let body = protocol::request("list", json!({"prefix": prefix, "cursor": cursor}));
            let Some(ok) = self.call("list", "listing", &body).await? else {
                break;
            };
            let (entries, next) = protocol::parse_list(&ok).map_err(|b| self.bad("list", b))?;
            for e in entries {
                if !e.name.starts_with(prefix) {
                    return Err(self.bad(
                        "list",
                        Bad::Shape(format!(
                            "it listed `{}`, which is not below the prefix `{prefix}`",
                            protocol::clean(&e.name)
                        )),
                    ));
                }
                if e.name.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                if let Some(why) = reject_key(&e.name) {
                    warn!(target_name = %self.name, reason = why, "skipping a secret with an unsafe name in the plugin's listing; it is never written or deleted");
                    continue;
                }
                out.insert(
                    e.name.clone(),
                    Listed {
                        name: e.name,
                        tags: Arc::new(e.marks.into()),
                        current_version: (e.version > 0).then(|| e.version.to_string()),
                        pending_deletion: false,
                    },
                );
                if out.len() > MAX_LISTED {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!(
                            "the plugin lists more than {MAX_LISTED} secrets below `{prefix}`; point `secret_prefix` at what this target owns"
                        ),
                    ));
                }
            }
            match next {
                Some(n) if cursor.as_deref() == Some(n.as_str()) => {
                    return Err(self.bad(
                        "list",
                        Bad::Shape("it answered the same `next` cursor twice".into()),
                    ));
                }
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
        Err(self.bad(
            "list",
            Bad::Shape(format!("its listing did not end after {MAX_PAGES} pages")),
        ))
    }

    /// The current value and version of `name` (`None`: not there).
    async fn read(&self, name: &str) -> Result<Option<(SecretValue, u64)>> {
        let body = protocol::request("read", json!({ "name": name }));
        let Some(ok) = self
            .call("read", &format!("reading `{name}`"), &body)
            .await?
        else {
            return Ok(None);
        };
        let (value, version) = protocol::parse_read(ok).map_err(|b| self.bad("read", b))?;
        Ok(Some((SecretValue::new(value), version)))
    }

    /// Reads each name's value; one whose version is no longer the listed one is left out
    /// (it is then written over, checked against the listed version, which fails).
    async fn read_values(
        &self,
        names: Vec<String>,
        listed: &BTreeMap<String, Listed>,
    ) -> Result<BTreeMap<String, SecretValue>> {
        let mut out = BTreeMap::new();
        for name in names {
            let want = version_of(listed.get(&name).and_then(|l| l.current_version.as_deref()));
            match self.read(&name).await.map_err(|e| self.err(e))? {
                Some((value, v)) if v == want => {
                    out.insert(name, value);
                }
                _ => {
                    debug!(target_name = %self.name, secret = %name, "the listed version is gone; it will be written over");
                }
            }
        }
        Ok(out)
    }

    /// Marks after a write of this fingerprint at `version`: what was there (the user's own
    /// marks stay), the ownership marks set, the pre-0.2 plain hash removed.
    fn marks(&self, old: &Tags, fingerprint: &str, version: u64) -> BTreeMap<String, String> {
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

    /// Writes `value` and `marks` over version `expected` (0: the name must not exist); the
    /// plugin stores it as version `expected + 1`.
    async fn write_value(
        &self,
        name: &str,
        value: &SecretValue,
        marks: &BTreeMap<String, String>,
        expected: u64,
    ) -> Result<u64> {
        let mut body = Map::new();
        body.insert("name".into(), Value::String(name.into()));
        body.insert("value".into(), Value::Object(value.expose().clone()));
        body.insert("marks".into(), json!(marks));
        body.insert("expected_version".into(), json!(expected));
        // Wiped when dropped.
        let body = SecretValue::new(protocol::request("write", Value::Object(body)));
        let what = format!("writing `{name}`");
        let ok = self
            .call("write", &what, body.expose())
            .await
            .map_err(|e| changed_since_plan(e, name, expected))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Conflict,
                    format!("{what}: the plugin answered not_found"),
                )
            })?;
        let v = protocol::version(&ok).map_err(|b| self.bad("write", b))?;
        if v != expected + 1 {
            return Err(self.bad(
                "write",
                Bad::Shape(format!(
                    "it stored `{name}` as version {v}; a write over version {expected} makes version {}",
                    expected + 1
                )),
            ));
        }
        Ok(v)
    }

    /// Replaces the marks of `name` at `version` (no new version).
    async fn write_marks(
        &self,
        name: &str,
        marks: &BTreeMap<String, String>,
        version: u64,
    ) -> Result<()> {
        let body = protocol::request(
            "write",
            json!({"name": name, "marks": marks, "expected_version": version}),
        );
        let what = format!("marking `{name}`");
        self.call("write", &what, &body)
            .await
            .map_err(|e| changed_since_plan(e, name, version))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Conflict,
                    format!("{what}: the plugin answered not_found"),
                )
            })?;
        Ok(())
    }

    /// Deletes `name` if it is still at `version`; already gone is fine.
    async fn remove(&self, name: &str, version: u64) -> Result<()> {
        let body = protocol::request("delete", json!({"name": name, "expected_version": version}));
        self.call("delete", &format!("deleting `{name}`"), &body)
            .await
            .map_err(|e| changed_since_plan(e, name, version))?;
        Ok(())
    }

    async fn create(&self, c: &SecretChange) -> Result<Done> {
        let (value, fingerprint) = payload(c)?;
        let marks = self.marks(&Tags::default(), fingerprint, 1);
        let version = self.write_value(&c.name, value, &marks, 0).await?;
        Ok(Done::Created {
            name: c.name.clone(),
            version,
        })
    }

    async fn update(&self, c: &SecretChange) -> Result<Done> {
        let (value, fingerprint) = payload(c)?;
        let old_version = version_of(c.old_version.as_deref());
        if c.retag {
            let marks = self.marks(&c.old_tags, fingerprint, old_version);
            self.write_marks(&c.name, &marks, old_version).await?;
            return Ok(Done::Retagged);
        }
        let mut old_value = c.old_value.clone();
        if old_value.is_none() && old_version > 0 {
            // What a rollback writes back.
            old_value = match self.read(&c.name).await? {
                Some((v, at)) if at == old_version => Some(v),
                _ => return Err(changed_since_plan_error(&c.name, old_version)),
            };
        }
        let marks = self.marks(&c.old_tags, fingerprint, old_version + 1);
        let new_version = self
            .write_value(&c.name, value, &marks, old_version)
            .await?;
        Ok(Done::Updated {
            name: c.name.clone(),
            old_version,
            new_version,
            old_value,
            old_marks: c.old_tags.clone(),
        })
    }

    /// Deletes an orphan at the version the plan saw, after reading what a rollback restores.
    async fn delete(&self, c: &SecretChange) -> Result<Done> {
        let version = version_of(c.old_version.as_deref());
        let old = match self.read(&c.name).await? {
            None => None,
            Some((v, at)) if at == version => Some((v, c.old_tags.clone())),
            Some(_) => return Err(changed_since_plan_error(&c.name, version)),
        };
        if old.is_some() {
            self.remove(&c.name, version).await?;
        }
        Ok(Done::Deleted {
            name: c.name.clone(),
            version,
            old,
        })
    }

    async fn undo(&self, done: Done) -> Result<()> {
        match done {
            Done::Retagged | Done::Deleted { old: None, .. } => Ok(()),
            Done::Created { name, version } => self.remove(&name, version).await.map_err(|e| {
                if e.kind == ErrorKind::Conflict {
                    Error::new(
                        ErrorKind::Conflict,
                        format!("not removed: `{name}` was written again after it was created; it is left as it is"),
                    )
                } else {
                    e
                }
            }),
            Done::Updated {
                name,
                old_version,
                new_version,
                old_value,
                old_marks,
            } => {
                let old = old_value.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("cannot roll back `{name}`: its previous value was not read; it keeps the new value"),
                    )
                })?;
                let marks = moved_marks(&old_marks, old_version, new_version + 1);
                self.write_value(&name, &old, &marks, new_version)
                    .await
                    .map(|_| ())
            }
            Done::Deleted {
                name,
                version,
                old: Some((value, marks)),
            } => {
                let marks = moved_marks(&marks, version, 1);
                self.write_value(&name, &value, &marks, 0).await.map(|_| ())
            }
        }
    }
}

/// A refused conditional write, worded for the plan it came from.
fn changed_since_plan(e: Error, name: &str, expected: u64) -> Error {
    if e.kind != ErrorKind::Conflict {
        return e;
    }
    let mut c = changed_since_plan_error(name, expected);
    c.message = format!("{} ({})", c.message, e.message);
    c
}

fn changed_since_plan_error(name: &str, expected: u64) -> Error {
    let what = if expected == 0 {
        "created by someone else since the plan".to_string()
    } else {
        format!("changed by someone else since the plan (it is no longer at version {expected})")
    };
    Error::new(
        ErrorKind::Conflict,
        format!(
            "`{name}` was {what}; nothing was written to it. Run again to plan from its new state"
        ),
    )
}

/// Where the fingerprint key lives: [`KEY_NAME`] in the plugin's store.
struct KeyEntry<'a>(&'a PluginTarget);

#[async_trait]
impl KeyStore for KeyEntry<'_> {
    type Slot = ();

    fn location(&self) -> String {
        format!(
            "{KEY_NAME} (in the store of the plugin `{}`)",
            self.0.session.command()
        )
    }

    async fn read(&self, _create: bool, _retry: bool) -> Result<KeyRead<()>> {
        Ok(match self.0.read(KEY_NAME).await? {
            None => KeyRead::Absent(()),
            Some((v, _)) => KeyRead::Found(
                v.expose()
                    .get("key")
                    .and_then(Value::as_str)
                    .and_then(FingerprintKey::from_hex)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unexpected,
                            format!(
                                "`{KEY_NAME}` in the plugin's store does not hold a SecretSync fingerprint key; delete it (SecretSync recreates it, and then reads every managed value once)"
                            ),
                        )
                    })?,
            ),
        })
    }

    async fn create(&self, _: (), key: &FingerprintKey, _retry: bool) -> Result<bool> {
        let mut m = Map::new();
        m.insert("key".into(), Value::String(key.to_hex()));
        let value = SecretValue::new(m);
        let marks = BTreeMap::from([
            (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
            (TAG_ROLE.to_string(), "fingerprint-key".to_string()),
        ]);
        match self.0.write_value(KEY_NAME, &value, &marks, 0).await {
            Ok(_) => Ok(true),
            // Someone else created it first: read theirs.
            Err(e) if e.kind == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Target for PluginTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn calls(&self) -> u64 {
        self.session.calls()
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
        let rules = self.rules().await.map_err(|e| self.err(e))?;
        let opts = support::plan_options(
            &self.name,
            &self.owner,
            &self.policy,
            Arc::new(rules),
            ctx,
            &desired.incomplete,
        );
        let read = |names| self.read_values(names, &listed);
        let mut plan = support::plan_from_marks(&opts, &key, desired, &listed, read).await?;
        // A write over the listed version makes the next one.
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
struct Writer<'a>(&'a PluginTarget);

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
            Done::Deleted { .. } => Counted::Deleted,
        }
    }

    fn changed<'d>(&self, d: &'d Done) -> Option<&'d str> {
        match d {
            Done::Created { name, .. }
            | Done::Updated { name, .. }
            | Done::Deleted { name, .. } => Some(name),
            Done::Retagged => None,
        }
    }

    async fn undo(&self, d: Done) -> Result<()> {
        self.0.undo(d).await
    }

    fn context(&self, e: Error) -> Error {
        self.0.err(e)
    }
}
