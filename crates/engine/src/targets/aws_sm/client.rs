//! The `aws_secretsmanager` target implementation.

use std::collections::BTreeMap;
use std::sync::Arc;

use secretsync_core::fingerprint::FingerprintKey;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use secretsync_core::config::{AwsSmSettings as Settings, TargetPolicy};
use secretsync_core::diff::{
    ChangeKind, Listed, MANAGED_VALUE, OWNERSHIP_TAGS, RESERVED_PREFIX, SecretChange,
    TAG_FINGERPRINT, TAG_HASH, TAG_MANAGED, TAG_OWNER, TAG_ROLE, TAG_TARGET, TAG_VERSION,
    TargetPlan,
};
use secretsync_core::secret::{Collected, SecretValue};
use tracing::{debug, warn};

use super::error::{code, map, send};
use super::settings::{Applied, Meta, Warnings, created_replicas};
use crate::aws::{AwsContext, CallCounter};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::targets::support::apply::{self, Apply, Counted, Failed, Pace, Writes};
use crate::targets::support::key::{self, KeyCache, KeyRead, KeyStore};
use crate::targets::support::{self, Prefetched};
use crate::targets::{ApplyReport, PlanContext, Target};

/// The secret holding this account and region's fingerprint key (see
/// `secretsync_core::fingerprint`): readable by exactly those who can read secret values.
pub const KEY_SECRET: &str = ".secretsync/fingerprint-key";

pub struct AwsSmTarget {
    pub(super) name: String,
    owner: String,
    pub(super) policy: TargetPolicy,
    pub(super) settings: Settings,
    pub(super) client: Client,
    pub(super) counter: CallCounter,
    prefetched: Prefetched<Listing>,
    /// The account and region's fingerprint key, once read (or created).
    key: KeyCache,
}

/// Where an account and region's fingerprint key lives: [`KEY_SECRET`], created with
/// `CreateSecret` (which fails for all but one concurrent creator).
struct KeySecret<'a> {
    client: &'a Client,
    counter: &'a CallCounter,
    target: &'a str,
}

#[async_trait]
impl KeyStore for KeySecret<'_> {
    type Slot = ();

    fn location(&self) -> String {
        KEY_SECRET.to_string()
    }

    async fn read(&self, create: bool, retry: bool) -> Result<KeyRead<()>> {
        let got = send(self.counter, "GetSecretValue", || {
            self.client.get_secret_value().secret_id(KEY_SECRET).send()
        })
        .await;
        match got {
            Ok(out) => {
                let hex = out.secret_string().unwrap_or_default();
                FingerprintKey::from_hex(hex).map(KeyRead::Found).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "`{KEY_SECRET}` in the account of target `{}` does not hold a SecretSync fingerprint key; delete it (SecretSync recreates it, and then reads every managed value once)",
                            self.target
                        ),
                    )
                })
            }
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(KeyRead::Absent(())),
            // Pending deletion: bring it back rather than invalidating every mark.
            Err(e) if code(&e) == Some("InvalidRequestException") && create && retry => {
                send(self.counter, "RestoreSecret", || {
                    self.client.restore_secret().secret_id(KEY_SECRET).send()
                })
                .await
                .map_err(|e| map(e, &format!("restoring the fingerprint key `{KEY_SECRET}`")))?;
                Ok(KeyRead::Again)
            }
            Err(e) => Err(map(
                e,
                &format!(
                    "reading the fingerprint key `{KEY_SECRET}` (the role needs secretsmanager:GetSecretValue on it)"
                ),
            )),
        }
    }

    async fn create(&self, (): (), key: &FingerprintKey, retry: bool) -> Result<bool> {
        let mut hex = key.to_hex();
        let res = send(self.counter, "CreateSecret", || self
            .client
            .create_secret()
            .name(KEY_SECRET)
            .description("SecretSync fingerprint key (HMAC for ownership tags). Deleting it makes the next run read every managed value once.")
            .secret_string(hex.as_str())
            .set_tags(Some(vec![
                Tag::builder().key(TAG_MANAGED).value(MANAGED_VALUE).build(),
                Tag::builder().key(TAG_ROLE).value("fingerprint-key").build(),
            ]))
            .send())
            .await;
        zeroize::Zeroize::zeroize(&mut hex);
        match res {
            Ok(_) => Ok(true),
            // Someone else created it first: use theirs.
            Err(e) if code(&e) == Some("ResourceExistsException") && retry => Ok(false),
            Err(e) => Err(map(
                e,
                &format!("creating the fingerprint key `{KEY_SECRET}`"),
            )),
        }
    }
}

/// All tags a value write touches: the ownership marks plus the legacy plain hash it removes.
fn touched_tags() -> Vec<String> {
    OWNERSHIP_TAGS
        .iter()
        .copied()
        .chain([TAG_HASH])
        .map(str::to_string)
        .collect()
}

/// What `ListSecrets` shows: the marks the plan works from, and the settings beside them.
type Listing = (BTreeMap<String, Listed>, BTreeMap<String, Meta>);

/// The value a change writes and the version id to write it under (chosen at plan time, so the
/// plan could show it; a fresh one if the plan had none).
fn payload(c: &SecretChange) -> Result<(&SecretValue, String, &str)> {
    let (value, fingerprint) = support::payload(c)?;
    let version = c
        .new_version
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok((value, version, fingerprint))
}

/// A stored value, when it is a JSON object (anything else is overwritten).
fn parse_object(s: &str) -> Option<SecretValue> {
    match serde_json::from_str(s) {
        Ok(serde_json::Value::Object(m)) => Some(SecretValue::new(m)),
        _ => None,
    }
}

/// One completed write, and how to undo it.
enum Done {
    Created {
        name: String,
        /// Regions its creation replicated it to (removed before it is deleted again).
        replicas: Vec<String>,
    },
    Updated {
        name: String,
        old_version: Option<String>,
        new_version: String,
        old_tags: secretsync_core::diff::Tags,
        restored: bool,
        /// The new value was written (false: only the restore from deletion happened).
        written: bool,
        settings: Applied,
    },
    /// Marks or settings rewritten without a new version. With no settings changed (only
    /// ownership marks fixed for an equal value) there is nothing worth undoing.
    Settings {
        name: String,
        old_tags: secretsync_core::diff::Tags,
        applied: Applied,
    },
    Deleted {
        name: String,
        /// In-sync replicas removed before the deletion (replicated again on undo).
        replicas: Vec<String>,
    },
}

impl AwsSmTarget {
    pub async fn new(
        name: &str,
        owner: &str,
        policy: &TargetPolicy,
        settings: &Settings,
        aws: &AwsContext,
    ) -> Self {
        let cfg = aws
            .config_for(
                &settings.region,
                settings.role_arn.as_deref(),
                settings.external_id.as_deref(),
            )
            .await;
        let counter = aws.counter_for(&settings.region, settings.role_arn.as_deref());
        let client = super::client(&cfg, &counter);
        AwsSmTarget {
            name: name.to_string(),
            owner: owner.to_string(),
            policy: policy.clone(),
            settings: settings.clone(),
            client,
            counter,
            prefetched: Prefetched::default(),
            key: KeyCache::default(),
        }
    }

    /// Every secret under the prefix, pending deletions included: names, tags, current version;
    /// and beside them, description and key.
    async fn list(&self) -> Result<Listing> {
        let mut req = self
            .client
            .list_secrets()
            .include_planned_deletion(true)
            .max_results(100);
        let prefix = &self.policy.secret_prefix;
        if !prefix.is_empty() {
            req = req.filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(prefix.clone())
                    .build(),
            );
        }
        let mut out = BTreeMap::new();
        let mut meta = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let page = send(&self.counter, "ListSecrets", || {
                req.clone().set_next_token(next.clone()).send()
            })
            .await
            .map_err(|e| map(e, &format!("listing secrets of target `{}`", self.name)))?;
            next = page.next_token().map(str::to_string);
            for s in page.secret_list() {
                let Some(name) = s.name() else { continue };
                // The name filter is a server-side search; keep exact prefix matches only.
                // The tool's own bookkeeping secrets are never desired nor orphans.
                if !name.starts_with(prefix.as_str()) || name.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                let tags: BTreeMap<String, String> = s
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                    })
                    .collect();
                let current_version = s.secret_versions_to_stages().and_then(|m| {
                    // AWS keeps `AWSCURRENT` on one version. An emulator can show it on two
                    // after a stage move (moto); then the one the tool last wrote is the
                    // current one if it is among them, else the smallest id (deterministic;
                    // its value is read and compared, so a wrong guess costs a read, never a
                    // wrong "unchanged").
                    let ours = tags.get(TAG_VERSION);
                    let mut current: Vec<&String> = m
                        .iter()
                        .filter(|(_, stages)| stages.iter().any(|st| st == "AWSCURRENT"))
                        .map(|(v, _)| v)
                        .collect();
                    current.sort();
                    match ours {
                        Some(o) if current.len() > 1 && current.contains(&o) => Some(o.clone()),
                        _ => current.first().map(|v| v.to_string()),
                    }
                });
                out.insert(
                    name.to_string(),
                    Listed {
                        name: name.to_string(),
                        tags: std::sync::Arc::new(tags.into()),
                        current_version,
                        pending_deletion: s.deleted_date().is_some(),
                    },
                );
                meta.insert(
                    name.to_string(),
                    Meta {
                        description: s.description().map(str::to_string),
                        kms_key_id: s.kms_key_id().map(str::to_string),
                    },
                );
            }
            if next.as_deref().is_none_or(str::is_empty) {
                break;
            }
        }
        Ok((out, meta))
    }

    /// Reads values with `BatchGetSecretValue`, 20 names per call. A value is kept only when
    /// it is the version the listing says is current; otherwise (a stale read, a rolled-back
    /// stage on an emulator) that exact version is read with `GetSecretValue`, so a rollback
    /// or a stale read is never mistaken for "up to date".
    async fn read_values(
        &self,
        names: Vec<String>,
        listed: &BTreeMap<String, Listed>,
    ) -> Result<BTreeMap<String, SecretValue>> {
        let mut out = BTreeMap::new();
        let mut stale: Vec<(String, String)> = Vec::new();
        for chunk in names.chunks(20) {
            let resp = send(&self.counter, "BatchGetSecretValue", || {
                self.client
                    .batch_get_secret_value()
                    .set_secret_id_list(Some(chunk.to_vec()))
                    .send()
            })
            .await
            .map_err(|e| {
                map(
                    e,
                    &format!(
                        "reading {} current values of target `{}`",
                        chunk.len(),
                        self.name
                    ),
                )
            })?;
            for v in resp.secret_values() {
                let Some(name) = v.name() else { continue };
                let current = listed.get(name).and_then(|l| l.current_version.clone());
                if current.is_some() && v.version_id().map(str::to_string) != current {
                    stale.push((name.to_string(), current.unwrap_or_default()));
                    continue;
                }
                if let Some(value) = v.secret_string().and_then(parse_object) {
                    out.insert(name.to_string(), value);
                }
            }
            for e in resp.errors() {
                warn!(target_name = %self.name, secret = e.secret_id().unwrap_or(""), code = e.error_code().unwrap_or(""), "could not read a current value; it will be overwritten");
            }
        }
        for (name, version) in stale {
            debug!(target_name = %self.name, secret = %name, "the batch read returned another version than the current one; reading the current version");
            let got = send(&self.counter, "GetSecretValue", || {
                self.client
                    .get_secret_value()
                    .secret_id(&name)
                    .version_id(&version)
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("reading the current version of `{name}`")))?;
            if let Some(value) = got.secret_string().and_then(parse_object) {
                out.insert(name, value);
            }
        }
        Ok(out)
    }

    /// Ownership marks for a value with this fingerprint written at `version`.
    fn tags(&self, fingerprint: &str, version: &str) -> Vec<Tag> {
        [
            (TAG_MANAGED, MANAGED_VALUE),
            (TAG_OWNER, self.owner.as_str()),
            (TAG_TARGET, self.name.as_str()),
            (TAG_FINGERPRINT, fingerprint),
            (TAG_VERSION, version),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
    }

    /// Removes the pre-0.2 plain content hash, if the secret still carries it.
    async fn drop_legacy_tags(&self, c: &SecretChange) -> Result<()> {
        if !c.old_tags.contains_key(TAG_HASH) {
            return Ok(());
        }
        send(&self.counter, "UntagResource", || {
            self.client
                .untag_resource()
                .secret_id(&c.name)
                .tag_keys(TAG_HASH)
                .send()
        })
        .await
        .map_err(|e| {
            map(
                e,
                &format!("removing the old content-hash tag of `{}`", c.name),
            )
        })?;
        Ok(())
    }

    /// After a write failed in a way that may have landed (timeout, lost connection, 5xx):
    /// whether `version` (our client request token) exists on the secret. `None`: unknown.
    async fn landed(&self, name: &str, version: &str) -> Option<bool> {
        match send(&self.counter, "DescribeSecret", || {
            self.client.describe_secret().secret_id(name).send()
        })
        .await
        {
            Ok(d) => Some(
                d.version_ids_to_stages()
                    .is_some_and(|m| m.contains_key(version)),
            ),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Some(false),
            Err(_) => None,
        }
    }

    /// An error of a write that may still have landed: resolved by looking for our version.
    async fn resolve_ambiguous(&self, err: Error, name: &str, version: &str) -> Result<()> {
        if !matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Unexpected) {
            return Err(err);
        }
        match self.landed(name, version).await {
            Some(true) => {
                warn!(target_name = %self.name, secret = %name, "a write reported an error but landed; continuing");
                Ok(())
            }
            Some(false) => Err(err),
            None => Err(Error::new(
                err.kind,
                format!(
                    "{}; it may have landed (version {version}) and its state could not be checked: look at `{name}`",
                    err.message
                ),
            )),
        }
    }

    /// Creates a secret with its description, key, tags and replicas in one call.
    async fn create(&self, c: &SecretChange, warnings: &Warnings) -> Result<Done> {
        let (value, version, fingerprint) = payload(c)?;
        let mut json = value.canonical_json();
        let mut tags = self.tags(fingerprint, &version);
        tags.extend(self.creation_tags());
        let replicas = self.settings.replica_regions.clone();
        let res = send(&self.counter, "CreateSecret", || {
            self.client
                .create_secret()
                .name(&c.name)
                .secret_string(json.as_str())
                .client_request_token(&version)
                .set_tags(Some(tags.clone()))
                .set_description(self.settings.description.clone())
                .set_kms_key_id(self.settings.kms_key_id.clone())
                .set_add_replica_regions((!replicas.is_empty()).then(|| {
                    replicas
                        .iter()
                        .map(|r| {
                            aws_sdk_secretsmanager::types::ReplicaRegionType::builder()
                                .region(r)
                                .build()
                        })
                        .collect()
                }))
                .send()
        })
        .await;
        zeroize::Zeroize::zeroize(&mut json);
        match res {
            Ok(out) => {
                if !replicas.is_empty() {
                    let statuses = created_replicas(out.replication_status());
                    self.after_replication(&c.name, &statuses, warnings, false)
                        .await;
                }
            }
            Err(e) => {
                let err = map(e, &format!("creating `{}`", c.name));
                self.resolve_ambiguous(err, &c.name, &version).await?;
            }
        }
        Ok(Done::Created {
            name: c.name.clone(),
            replicas,
        })
    }

    /// Marks and settings of a secret whose value is kept (no new version).
    async fn retag(&self, c: &SecretChange, warnings: &Warnings) -> Result<Done> {
        let (_, _, fingerprint) = payload(c)?;
        if c.retag {
            let v = c.old_version.clone().unwrap_or_default();
            send(&self.counter, "TagResource", || {
                self.client
                    .tag_resource()
                    .secret_id(&c.name)
                    .set_tags(Some(self.tags(fingerprint, &v)))
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("tagging `{}`", c.name)))?;
            self.drop_legacy_tags(c).await?;
        }
        let mut applied = Applied::default();
        if let Err(mut err) = self.apply_settings(c, &mut applied, warnings).await {
            if let Err(u) = self.undo_settings(&c.name, &c.old_tags, &applied).await {
                err.message = format!(
                    "{}; putting its settings back also failed: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(Done::Settings {
            name: c.name.clone(),
            old_tags: c.old_tags.clone(),
            applied,
        })
    }

    async fn update(
        &self,
        c: &SecretChange,
        listed_tags: secretsync_core::diff::Tags,
        warnings: &Warnings,
    ) -> Result<Done> {
        let (value, mut version, fingerprint) = payload(c)?;
        if c.retag || c.kind == ChangeKind::Unchanged {
            return self.retag(c, warnings).await;
        }
        // A rollback to a version AWS still holds: move `AWSCURRENT` back to it, no new value.
        if !c.restore
            && let (Some(old), Some(reuse)) = (&c.old_version, &c.reuse_version)
            && old != reuse
        {
            match send(&self.counter, "UpdateSecretVersionStage", || {
                self.client
                    .update_secret_version_stage()
                    .secret_id(&c.name)
                    .version_stage("AWSCURRENT")
                    .move_to_version_id(reuse)
                    .remove_from_version_id(old)
                    .send()
            })
            .await
            {
                Ok(_) => {
                    debug!(secret = %c.name, "made the recorded version current again");
                    return self
                        .after_write(c, reuse.clone(), fingerprint, listed_tags, true, warnings)
                        .await;
                }
                // Gone (AWS removes versions without a stage in time): write the value.
                Err(e)
                    if matches!(
                        code(&e),
                        Some(
                            "ResourceNotFoundException"
                                | "InvalidParameterException"
                                | "InvalidRequestException"
                        )
                    ) =>
                {
                    debug!(secret = %c.name, "the recorded version is gone; writing its value");
                }
                Err(e) => {
                    return Err(map(
                        e,
                        &format!("making version {reuse} of `{}` current again", c.name),
                    ));
                }
            }
            version = c
                .new_version
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        }
        if c.restore {
            send(&self.counter, "RestoreSecret", || {
                self.client.restore_secret().secret_id(&c.name).send()
            })
            .await
            .map_err(|e| map(e, &format!("restoring `{}` from pending deletion", c.name)))?;
        }
        let mut json = value.canonical_json();
        let res = send(&self.counter, "PutSecretValue", || {
            self.client
                .put_secret_value()
                .secret_id(&c.name)
                .secret_string(json.as_str())
                .client_request_token(&version)
                .send()
        })
        .await;
        zeroize::Zeroize::zeroize(&mut json);
        let done = |written: bool, settings: Applied| Done::Updated {
            name: c.name.clone(),
            old_version: c.old_version.clone(),
            new_version: version.clone(),
            old_tags: listed_tags.clone(),
            restored: c.restore,
            written,
            settings,
        };
        if let Err(e) = res {
            let err = map(e, &format!("writing `{}`", c.name));
            if let Err(mut err) = self.resolve_ambiguous(err, &c.name, &version).await {
                if c.restore
                    && let Err(u) = self.undo(done(false, Applied::default())).await
                {
                    err.message = format!(
                        "{}; putting it back into pending deletion also failed: {u}",
                        err.message
                    );
                }
                return Err(err);
            }
        }
        self.after_write(c, version, fingerprint, listed_tags, true, warnings)
            .await
    }

    /// After an update made `version` current: the ownership marks, the settings; on a
    /// failure there, the secret is rolled back to where it was.
    async fn after_write(
        &self,
        c: &SecretChange,
        version: String,
        fingerprint: &str,
        listed_tags: secretsync_core::diff::Tags,
        written: bool,
        warnings: &Warnings,
    ) -> Result<Done> {
        let done = |applied: Applied| Done::Updated {
            name: c.name.clone(),
            old_version: c.old_version.clone(),
            new_version: version.clone(),
            old_tags: listed_tags.clone(),
            restored: c.restore,
            written,
            settings: applied,
        };
        let tagged = match send(&self.counter, "TagResource", || {
            self.client
                .tag_resource()
                .secret_id(&c.name)
                .set_tags(Some(self.tags(fingerprint, &version)))
                .send()
        })
        .await
        {
            Ok(_) => self.drop_legacy_tags(c).await,
            Err(e) => Err(map(e, &format!("tagging `{}`", c.name))),
        };
        let mut applied = Applied::default();
        let tagged = match tagged {
            Ok(()) => self.apply_settings(c, &mut applied, warnings).await,
            Err(e) => Err(e),
        };
        if let Err(mut err) = tagged {
            if let Err(u) = self.undo(done(applied)).await {
                err.message = format!(
                    "{}; rolling this secret back also failed, it is left with the new value: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(done(applied))
    }

    /// Deletes a secret (after removing its replicas: AWS refuses to delete a primary that
    /// has any).
    async fn delete(&self, c: &SecretChange) -> Result<Done> {
        let replicas = self.remove_replicas_before_delete(c).await?;
        let mut req = self.client.delete_secret().secret_id(&c.name);
        req = if self.settings.force_delete {
            req.force_delete_without_recovery(true)
        } else {
            req.recovery_window_in_days(self.settings.deletion_recovery_days as i64)
        };
        if let Err(e) = send(&self.counter, "DeleteSecret", || req.clone().send()).await {
            let mut err = map(e, &format!("deleting `{}`", c.name));
            if let Err(u) = self.replicate_again(&c.name, &replicas).await {
                err.message = format!(
                    "{}; its replicas were removed and could not be added back: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(Done::Deleted {
            name: c.name.clone(),
            replicas,
        })
    }

    /// Undoes one completed write.
    async fn undo(&self, done: Done) -> Result<()> {
        match done {
            Done::Settings {
                name,
                old_tags,
                applied,
            } => self.undo_settings(&name, &old_tags, &applied).await,
            Done::Created { name, replicas } => {
                self.remove_created_replicas(&name, &replicas).await?;
                send(&self.counter, "DeleteSecret", || {
                    self.client
                        .delete_secret()
                        .secret_id(&name)
                        .force_delete_without_recovery(true)
                        .send()
                })
                .await
                .map_err(|e| map(e, &format!("rolling back the creation of `{name}`")))?;
                Ok(())
            }
            Done::Updated {
                name,
                old_version,
                new_version,
                old_tags,
                restored,
                written,
                settings,
            } => {
                self.undo_settings(&name, &old_tags, &settings).await?;
                if written {
                    let old = old_version.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unexpected,
                            format!("cannot roll back `{name}`: its previous version is unknown"),
                        )
                    })?;
                    send(&self.counter, "UpdateSecretVersionStage", || {
                        self.client
                            .update_secret_version_stage()
                            .secret_id(&name)
                            .version_stage("AWSCURRENT")
                            .move_to_version_id(&old)
                            .remove_from_version_id(&new_version)
                            .send()
                    })
                    .await
                    .map_err(|e| map(e, &format!("rolling back `{name}` to version {old}")))?;
                    // Ownership tags go back to what they were: restored where they existed,
                    // removed where this run added them (an adoption is undone too).
                    self.restore_tags(&name, &old_tags, &touched_tags()).await?;
                }
                if restored {
                    send(&self.counter, "DeleteSecret", || {
                        self.client
                            .delete_secret()
                            .secret_id(&name)
                            .recovery_window_in_days(self.settings.deletion_recovery_days as i64)
                            .send()
                    })
                    .await
                    .map_err(|e| map(e, &format!("putting `{name}` back into pending deletion")))?;
                }
                Ok(())
            }
            Done::Deleted { name, replicas } => {
                send(&self.counter, "RestoreSecret", || {
                    self.client.restore_secret().secret_id(&name).send()
                })
                .await
                .map_err(|e| map(e, &format!("rolling back the deletion of `{name}`")))?;
                self.replicate_again(&name, &replicas).await
            }
        }
    }
}

/// The name a completed write changed; `None` for ownership marks fixed on an equal value
/// (nothing the user would call a change, and nothing to undo).
fn done_name(d: &Done) -> Option<&str> {
    match d {
        Done::Created { name, .. } | Done::Deleted { name, .. } | Done::Updated { name, .. } => {
            Some(name)
        }
        Done::Settings { name, applied, .. } => (!applied.done.is_empty()).then_some(name.as_str()),
    }
}

#[async_trait]
impl Target for AwsSmTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn calls(&self) -> u64 {
        self.counter.get()
    }

    /// A lock secret in the target's own account and region: works without a merge store,
    /// and locks where the writes happen.
    fn lease_backend(&self) -> Arc<dyn crate::lease::LeaseBackend> {
        super::leases(&self.client, &self.counter)
    }

    async fn prefetch(&self) {
        self.prefetched.keep(self.list().await).await;
    }

    async fn plan(&self, desired: &Collected, ctx: &PlanContext) -> Result<TargetPlan> {
        let (listed, meta) = self.prefetched.take_or(self.list()).await?;
        let store = KeySecret {
            client: &self.client,
            counter: &self.counter,
            target: &self.name,
        };
        let create = !ctx.dry_run;
        let key = self
            .key
            .get(create, key::get_or_create(&store, &self.name, create))
            .await?;
        let rules = Arc::new(secretsync_core::targets::aws_sm::AwsSmRules);
        let opts = support::plan_options(
            &self.name,
            &self.owner,
            &self.policy,
            rules,
            ctx,
            &desired.incomplete,
        );
        let read = |names| self.read_values(names, &listed);
        let mut plan = support::plan_from_marks(&opts, &key, desired, &listed, read).await?;
        // The version ids this apply will write (client request tokens).
        support::set_new_versions(&mut plan, |_| uuid::Uuid::new_v4().to_string());
        self.plan_settings(&mut plan, &listed, &meta).await?;
        Ok(plan)
    }

    async fn apply(&self, plan: &TargetPlan, cancel: &Cancel) -> ApplyReport {
        let pace = Pace::from(&self.policy);
        apply::run(&Writer(self), &self.name, pace, plan, cancel).await
    }
}

/// The target's half of the apply ([`apply::run`]).
struct Writer<'a>(&'a AwsSmTarget);

#[async_trait]
impl Apply for Writer<'_> {
    type Done = Done;

    /// Values, marks, and settings changed on an equal value.
    fn writes(&self, c: &SecretChange) -> bool {
        matches!(c.kind, ChangeKind::Added | ChangeKind::Modified)
            || (c.kind == ChangeKind::Unchanged && (c.retag || !c.settings.is_empty()))
    }

    async fn write(&self, c: &SecretChange, w: &Writes<'_>) -> Result<Done, Failed<Done>> {
        Ok(match c.kind {
            ChangeKind::Added => self.0.create(c, w.warnings).await?,
            _ => self.0.update(c, c.old_tags.clone(), w.warnings).await?,
        })
    }

    async fn delete(&self, c: &SecretChange, _: &Writes<'_>) -> Result<Done, Failed<Done>> {
        Ok(self.0.delete(c).await?)
    }

    fn counted(&self, d: &Done) -> Counted {
        match d {
            Done::Created { .. } => Counted::Created,
            Done::Updated { .. } => Counted::Updated,
            Done::Settings { .. } => Counted::Retagged,
            Done::Deleted { .. } => Counted::Deleted,
        }
    }

    fn changed<'d>(&self, d: &'d Done) -> Option<&'d str> {
        done_name(d)
    }

    fn made_current<'d>(&self, d: &'d Done) -> Option<(&'d str, &'d str)> {
        match d {
            Done::Updated {
                name, new_version, ..
            } => Some((name, new_version)),
            _ => None,
        }
    }

    async fn undo(&self, d: Done) -> Result<()> {
        self.0.undo(d).await
    }
}
