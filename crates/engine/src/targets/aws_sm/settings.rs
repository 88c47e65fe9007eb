//! Settings beside the value — description, KMS key, extra tags and replica regions: planned
//! from the listing (plus one `DescribeSecret` for a secret whose replica record does not prove
//! its replicas reconciled, and for each deletion), applied without new versions, undone on
//! rollback. What to change is decided purely in `secretsync_core::targets::aws_sm`.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::{ReplicaRegionType, ReplicationStatusType, Tag};
use futures::{StreamExt, stream};
use secretsync_core::diff::{ChangeKind, Listed, SecretChange, SettingChange, TargetPlan};
use secretsync_core::targets::aws_sm::{
    self as rules, REPLICA_ADD, REPLICA_RETRY, Replica, STATUS_FAILED, STATUS_IN_SYNC, Setting,
    TAG_KMS_KEY, TAG_REPLICAS,
};
use tracing::{debug, warn};

use super::client::AwsSmTarget;
use super::error::{map, send};
use crate::error::Result;

/// What `ListSecrets` shows of a secret beside its marks.
#[derive(Debug, Clone, Default)]
pub(super) struct Meta {
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
}

pub(super) use crate::targets::support::apply::Warnings;

/// What applying one secret's settings did, so it can be undone.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// The planned setting changes that were made.
    pub done: Vec<SettingChange>,
    /// Tag keys written or removed: put back from the listed tags on undo.
    pub touched_tags: Vec<String>,
    /// `UpdateSecret` changed the description: the one before (`None`: none).
    pub old_description: Option<Option<String>>,
    /// `UpdateSecret` changed the key: the one before (`None`: `aws/secretsmanager`).
    pub old_kms_key_id: Option<Option<String>>,
    /// Regions this apply replicated to (removed on undo).
    pub added_regions: Vec<String>,
    /// Regions whose in-sync replica this apply removed (replicated again on undo).
    pub removed_regions: Vec<String>,
}

fn replicas_of(statuses: &[ReplicationStatusType]) -> Vec<Replica> {
    statuses
        .iter()
        .filter_map(|s| {
            Some(Replica {
                region: s.region()?.to_string(),
                status: s
                    .status()
                    .map(|st| st.as_str().to_string())
                    .unwrap_or_default(),
                message: s.status_message().map(str::to_string),
            })
        })
        .collect()
}

fn region_list(regions: &[String]) -> Vec<ReplicaRegionType> {
    regions
        .iter()
        .map(|r| ReplicaRegionType::builder().region(r).build())
        .collect()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

impl AwsSmTarget {
    /// The replicas of `name` as `DescribeSecret` reports them.
    async fn replicas(&self, name: &str) -> Result<Vec<Replica>> {
        let d = send(&self.counter, "DescribeSecret", || {
            self.client.describe_secret().secret_id(name).send()
        })
        .await
        .map_err(|e| map(e, &format!("describing the replicas of `{name}`")))?;
        Ok(replicas_of(d.replication_status()))
    }

    /// Adds the setting changes to the plan: replicas on creations; description, key, tags and
    /// replicas on secrets that are written or kept; replicas to remove before a deletion.
    pub(super) async fn plan_settings(
        &self,
        plan: &mut TargetPlan,
        listed: &BTreeMap<String, Listed>,
        meta: &BTreeMap<String, Meta>,
    ) -> Result<()> {
        let desired = &self.settings.replica_regions;
        let mut describe = Vec::new();
        for (i, c) in plan.changes.iter_mut().enumerate() {
            match c.kind {
                ChangeKind::Skipped => {}
                ChangeKind::Added => c.settings = rules::replicas_on_create(desired),
                // A primary with replicas cannot be deleted before they are removed. (A
                // refused plan deletes nothing: no need to look.)
                ChangeKind::Deleted if plan.refused.is_none() => describe.push(i),
                ChangeKind::Deleted => {}
                ChangeKind::Modified | ChangeKind::Unchanged => {
                    let Some(l) = listed.get(&c.name) else {
                        continue;
                    };
                    let m = meta.get(&c.name).cloned().unwrap_or_default();
                    c.settings = rules::metadata_changes(
                        &self.settings,
                        &rules::Listing {
                            description: m.description.as_deref(),
                            kms_key_id: m.kms_key_id.as_deref(),
                            tags: &l.tags,
                        },
                    );
                    if !rules::replicas_recorded(desired, &l.tags) {
                        describe.push(i);
                    }
                }
            }
        }
        if describe.is_empty() {
            return Ok(());
        }
        debug!(target_name = %self.name, secrets = describe.len(), "describing replicas the tags do not prove reconciled");
        let names: Vec<String> = describe
            .iter()
            .map(|&i| plan.changes[i].name.clone())
            .collect();
        let found: Vec<Result<Vec<Replica>>> = stream::iter(names)
            .map(|n| async move { self.replicas(&n).await })
            .buffered(self.policy.concurrency.max(1))
            .collect()
            .await;
        for (i, current) in describe.into_iter().zip(found) {
            let current = current?;
            let c = &mut plan.changes[i];
            if c.kind == ChangeKind::Deleted {
                c.settings = rules::replica_changes(&[], &current, None);
            } else {
                let recorded = c.old_tags.get(TAG_REPLICAS).map(String::as_str);
                c.settings
                    .extend(rules::replica_changes(desired, &current, recorded));
            }
        }
        Ok(())
    }

    /// Tags a secret is created with beside the ownership marks: the extra tags and the record
    /// of the key.
    pub(super) fn creation_tags(&self) -> Vec<Tag> {
        let mut out: Vec<Tag> = self.settings.tags.iter().map(|(k, v)| tag(k, v)).collect();
        if let Some(k) = &self.settings.kms_key_id {
            out.push(tag(TAG_KMS_KEY, k));
        }
        out
    }

    /// Reports failed replicas in `statuses` and, when every desired replica is in sync,
    /// records that ([`TAG_REPLICAS`]; removed when no replica is desired and `had_record`).
    /// Best effort: without the record the next run describes the secret again. Returns
    /// whether the record was written or removed.
    pub(super) async fn after_replication(
        &self,
        name: &str,
        statuses: &[Replica],
        warnings: &Warnings,
        had_record: bool,
    ) -> bool {
        let desired = &self.settings.replica_regions;
        for r in statuses.iter().filter(|r| desired.contains(&r.region)) {
            if r.status == STATUS_FAILED {
                warnings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!(
                        "{name}: the replica in {} failed: {}; the next run retries it",
                        r.region,
                        r.message.as_deref().unwrap_or("no reason given")
                    ));
            }
        }
        let in_sync = desired.iter().all(|d| {
            statuses
                .iter()
                .any(|r| r.region == *d && r.status == STATUS_IN_SYNC)
        }) && statuses.iter().all(|r| desired.contains(&r.region));
        if !in_sync {
            return false;
        }
        let written = match rules::replicas_record(desired) {
            Some(record) => send(&self.counter, "TagResource", || {
                self.client
                    .tag_resource()
                    .secret_id(name)
                    .tags(tag(TAG_REPLICAS, &record))
                    .send()
            })
            .await
            .map(|_| ())
            .map_err(|e| map(e, &format!("tagging `{name}`"))),
            None if had_record => send(&self.counter, "UntagResource", || {
                self.client
                    .untag_resource()
                    .secret_id(name)
                    .tag_keys(TAG_REPLICAS)
                    .send()
            })
            .await
            .map(|_| ())
            .map_err(|e| map(e, &format!("untagging `{name}`"))),
            None => return false,
        };
        match written {
            Ok(_) => true,
            Err(e) => {
                warn!(target_name = %self.name, secret = %name, error = %e, "could not record the replicas as in sync; the next run describes them again");
                false
            }
        }
    }

    /// Makes a change's planned settings: `UpdateSecret` for the description and key, one
    /// `TagResource` for the tags, then replicas removed and added, then the replica record.
    /// What was done is in `applied` even when this fails midway.
    pub(super) async fn apply_settings(
        &self,
        c: &SecretChange,
        applied: &mut Applied,
        warnings: &Warnings,
    ) -> Result<()> {
        let name = &c.name;
        let planned: Vec<(Setting, &SettingChange)> = c
            .settings
            .iter()
            .filter_map(|s| Some((Setting::parse(&s.setting)?, s)))
            .collect();
        let find = |want: Setting| planned.iter().find(|(s, _)| *s == want).map(|(_, c)| *c);

        let description = find(Setting::Description);
        let kms = find(Setting::KmsKey);
        if description.is_some() || kms.is_some() {
            let mut req = self.client.update_secret().secret_id(name);
            if let Some(d) = description {
                req = req.set_description(d.new.clone());
            }
            if let Some(k) = kms {
                req = req.set_kms_key_id(k.new.clone());
            }
            send(&self.counter, "UpdateSecret", || req.clone().send())
                .await
                .map_err(|e| map(e, &format!("updating the description or key of `{name}`")))?;
            if let Some(d) = description {
                applied.old_description = Some(d.old.clone());
                applied.done.push(d.clone());
            }
            if let Some(k) = kms {
                applied.old_kms_key_id = Some(k.old.clone());
                applied.done.push(k.clone());
            }
        }

        let mut tags: Vec<Tag> = Vec::new();
        let mut tag_changes = Vec::new();
        for (s, ch) in &planned {
            if let (Setting::Tag(k), Some(v)) = (s, &ch.new) {
                tags.push(tag(k, v));
                tag_changes.push((*ch).clone());
            }
        }
        if let Some(k) = kms.and_then(|k| k.new.as_deref()) {
            tags.push(tag(TAG_KMS_KEY, k));
        }
        if !tags.is_empty() {
            let keys: Vec<String> = tags
                .iter()
                .filter_map(|t| t.key().map(str::to_string))
                .collect();
            send(&self.counter, "TagResource", || {
                self.client
                    .tag_resource()
                    .secret_id(name)
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("tagging `{name}`")))?;
            applied.touched_tags.extend(keys);
            applied.done.extend(tag_changes);
        }

        let mut remove = Vec::new();
        let mut add = Vec::new();
        let mut replica_changes = Vec::new();
        for (s, ch) in &planned {
            if let Setting::Replica(region) = s {
                match ch.new.as_deref() {
                    None => remove.push(region.clone()),
                    Some(REPLICA_RETRY) => {
                        remove.push(region.clone());
                        add.push(region.clone());
                    }
                    Some(REPLICA_ADD) => add.push(region.clone()),
                    Some(_) => continue,
                }
                replica_changes.push((*ch).clone());
            }
        }
        let mut statuses = None;
        if !remove.is_empty() {
            let out = send(&self.counter, "RemoveRegionsFromReplication", || {
                self.client
                    .remove_regions_from_replication()
                    .secret_id(name)
                    .set_remove_replica_regions(Some(remove.clone()))
                    .send()
            })
            .await
            .map_err(|e| {
                map(
                    e,
                    &format!("removing the replicas of `{name}` in {}", remove.join(", ")),
                )
            })?;
            statuses = Some(replicas_of(out.replication_status()));
            // Only a replica that was in sync is worth putting back.
            applied.removed_regions.extend(
                replica_changes
                    .iter()
                    .filter(|ch| ch.new.is_none() && ch.old.as_deref() == Some(STATUS_IN_SYNC))
                    .filter_map(|ch| match Setting::parse(&ch.setting) {
                        Some(Setting::Replica(r)) => Some(r),
                        _ => None,
                    }),
            );
        }
        if !add.is_empty() {
            let out = send(&self.counter, "ReplicateSecretToRegions", || {
                self.client
                    .replicate_secret_to_regions()
                    .secret_id(name)
                    .set_add_replica_regions(Some(region_list(&add)))
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("replicating `{name}` to {}", add.join(", "))))?;
            statuses = Some(replicas_of(out.replication_status()));
            applied.added_regions.extend(add);
        }
        if let Some(statuses) = statuses {
            applied.done.extend(replica_changes);
            // Not recorded (a replica in progress or failed): the old record names another
            // region set than the desired one, so the next run describes the secret again.
            let had_record = c.old_tags.contains_key(TAG_REPLICAS);
            if self
                .after_replication(name, &statuses, warnings, had_record)
                .await
            {
                applied.touched_tags.push(TAG_REPLICAS.into());
            }
        } else if let Some(record) = find(Setting::ReplicasRecord) {
            applied.touched_tags.push(TAG_REPLICAS.into());
            match &record.new {
                Some(v) => {
                    send(&self.counter, "TagResource", || {
                        self.client
                            .tag_resource()
                            .secret_id(name)
                            .tags(tag(TAG_REPLICAS, v))
                            .send()
                    })
                    .await
                    .map_err(|e| map(e, &format!("tagging `{name}`")))?;
                }
                None => {
                    send(&self.counter, "UntagResource", || {
                        self.client
                            .untag_resource()
                            .secret_id(name)
                            .tag_keys(TAG_REPLICAS)
                            .send()
                    })
                    .await
                    .map_err(|e| map(e, &format!("untagging `{name}`")))?;
                }
            }
            applied.done.push(record.clone());
        }
        Ok(())
    }

    /// Puts tags `keys` back to `old` (restored where they existed, removed where not).
    pub(super) async fn restore_tags(
        &self,
        name: &str,
        old: &secretsync_core::tags::TagMap,
        keys: &[String],
    ) -> Result<()> {
        let restore: Vec<Tag> = keys
            .iter()
            .filter_map(|k| old.get(k).map(|v| tag(k, v)))
            .collect();
        let mut remove: Vec<String> = keys
            .iter()
            .filter(|k| !old.contains_key(*k))
            .cloned()
            .collect();
        remove.sort();
        remove.dedup();
        if !restore.is_empty() {
            send(&self.counter, "TagResource", || {
                self.client
                    .tag_resource()
                    .secret_id(name)
                    .set_tags(Some(restore.clone()))
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("restoring the tags of `{name}`")))?;
        }
        if !remove.is_empty() {
            send(&self.counter, "UntagResource", || {
                self.client
                    .untag_resource()
                    .secret_id(name)
                    .set_tag_keys(Some(remove.clone()))
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("removing the tags added to `{name}`")))?;
        }
        Ok(())
    }

    /// Undoes [`AwsSmTarget::apply_settings`]: replicas, then description and key, then tags.
    pub(super) async fn undo_settings(
        &self,
        name: &str,
        old_tags: &secretsync_core::tags::TagMap,
        a: &Applied,
    ) -> Result<()> {
        if !a.added_regions.is_empty() {
            send(&self.counter, "RemoveRegionsFromReplication", || {
                self.client
                    .remove_regions_from_replication()
                    .secret_id(name)
                    .set_remove_replica_regions(Some(a.added_regions.clone()))
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("removing the replicas added to `{name}`")))?;
        }
        if !a.removed_regions.is_empty() {
            send(&self.counter, "ReplicateSecretToRegions", || {
                self.client
                    .replicate_secret_to_regions()
                    .set_add_replica_regions(Some(region_list(&a.removed_regions)))
                    .secret_id(name)
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("replicating `{name}` again")))?;
        }
        if a.old_description.is_some() || a.old_kms_key_id.is_some() {
            let mut req = self.client.update_secret().secret_id(name);
            if let Some(d) = &a.old_description {
                req = req.description(d.clone().unwrap_or_default());
            }
            // An empty key id is the account's `aws/secretsmanager` key.
            if let Some(k) = &a.old_kms_key_id {
                req = req.kms_key_id(k.clone().unwrap_or_default());
            }
            send(&self.counter, "UpdateSecret", || req.clone().send())
                .await
                .map_err(|e| {
                    map(
                        e,
                        &format!("putting back the description or key of `{name}`"),
                    )
                })?;
        }
        self.restore_tags(name, old_tags, &a.touched_tags).await
    }

    /// Removes the replicas a deletion planned to remove; returns the in-sync ones (to put
    /// back if the deletion is undone).
    pub(super) async fn remove_replicas_before_delete(
        &self,
        c: &SecretChange,
    ) -> Result<Vec<String>> {
        let mut regions = Vec::new();
        let mut in_sync = Vec::new();
        for s in &c.settings {
            if let (Some(Setting::Replica(r)), None) = (Setting::parse(&s.setting), &s.new) {
                if s.old.as_deref() == Some(STATUS_IN_SYNC) {
                    in_sync.push(r.clone());
                }
                regions.push(r);
            }
        }
        if !regions.is_empty() {
            send(&self.counter, "RemoveRegionsFromReplication", || {
                self.client
                    .remove_regions_from_replication()
                    .secret_id(&c.name)
                    .set_remove_replica_regions(Some(regions.clone()))
                    .send()
            })
            .await
            .map_err(|e| {
                map(
                    e,
                    &format!(
                        "removing the replicas of `{}` in {} before deleting it",
                        c.name,
                        regions.join(", ")
                    ),
                )
            })?;
        }
        Ok(in_sync)
    }

    /// Replicates `name` to `regions` again (undoing a removal).
    pub(super) async fn replicate_again(&self, name: &str, regions: &[String]) -> Result<()> {
        if regions.is_empty() {
            return Ok(());
        }
        send(&self.counter, "ReplicateSecretToRegions", || {
            self.client
                .replicate_secret_to_regions()
                .secret_id(name)
                .set_add_replica_regions(Some(region_list(regions)))
                .send()
        })
        .await
        .map_err(|e| map(e, &format!("replicating `{name}` again")))?;
        Ok(())
    }

    /// Removes the replicas a creation added (before the creation is undone).
    pub(super) async fn remove_created_replicas(
        &self,
        name: &str,
        regions: &[String],
    ) -> Result<()> {
        if regions.is_empty() {
            return Ok(());
        }
        send(&self.counter, "RemoveRegionsFromReplication", || {
            self.client
                .remove_regions_from_replication()
                .secret_id(name)
                .set_remove_replica_regions(Some(regions.to_vec()))
                .send()
        })
        .await
        .map_err(|e| map(e, &format!("removing the replicas of `{name}`")))?;
        Ok(())
    }
}

/// The statuses in a `CreateSecret` answer.
pub(super) fn created_replicas(statuses: &[ReplicationStatusType]) -> Vec<Replica> {
    replicas_of(statuses)
}
