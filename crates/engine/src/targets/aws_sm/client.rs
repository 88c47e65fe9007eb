//! The `aws_secretsmanager` target implementation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use futures::{StreamExt, stream};
use secretsync_core::config::AwsSmTarget as Settings;
use secretsync_core::diff::{
    self, ChangeKind, Listed, MANAGED_VALUE, PlanOptions, SecretChange, TAG_HASH, TAG_MANAGED,
    TAG_TARGET, TAG_VERSION, TargetPlan,
};
use secretsync_core::secret::{Bundle, SecretValue};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use super::error::map;
use crate::aws::{AwsContext, CallCounter};
use crate::error::{Error, ErrorKind, Result};
use crate::targets::{ApplyReport, Target};

/// Spaces writes evenly: at most `per_second` starts per second.
struct Pacer {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pacer {
    fn new(per_second: u32) -> Self {
        Pacer {
            next: Mutex::new(Instant::now()),
            interval: Duration::from_secs_f64(1.0 / per_second.max(1) as f64),
        }
    }
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

pub struct AwsSmTarget {
    name: String,
    settings: Settings,
    client: Client,
    counter: CallCounter,
    /// A listing taken ahead of planning ([`Target::prefetch`]); used once.
    prefetched: Mutex<Option<Result<BTreeMap<String, Listed>>>>,
}

/// The value a change writes and the version id to write it under (chosen at plan time, so the
/// plan could show it; a fresh one if the plan had none).
fn payload(c: &SecretChange) -> Result<(&SecretValue, String)> {
    let value = c.new_value.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::Unexpected,
            format!("no value to write for `{}`", c.name),
        )
    })?;
    let version = c
        .new_version
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok((value, version))
}

/// One completed write, and how to undo it.
enum Done {
    Created {
        name: String,
    },
    Updated {
        name: String,
        old_version: Option<String>,
        new_version: String,
        old_tags: BTreeMap<String, String>,
        restored: bool,
        /// The new value was written (false: only the restore from deletion happened).
        written: bool,
    },
    Retagged,
    Deleted {
        name: String,
    },
}

impl AwsSmTarget {
    pub async fn new(name: &str, settings: &Settings, aws: &AwsContext) -> Self {
        let cfg = aws
            .config_for(
                &settings.region,
                settings.role_arn.as_deref(),
                settings.external_id.as_deref(),
            )
            .await;
        let counter = CallCounter::default();
        let client = aws.secrets_manager(&cfg, &counter);
        AwsSmTarget {
            name: name.to_string(),
            settings: settings.clone(),
            client,
            counter,
            prefetched: Mutex::new(None),
        }
    }

    fn options(&self) -> PlanOptions {
        PlanOptions {
            target: self.name.clone(),
            prefix: self.settings.secret_prefix.clone(),
            adopt: self.settings.adopt,
            delete_orphans: self.settings.delete_orphans,
            max_deletes: self.settings.max_deletes,
        }
    }

    /// Every secret under the prefix, pending deletions included: names, tags, current version.
    async fn list(&self) -> Result<BTreeMap<String, Listed>> {
        let mut req = self
            .client
            .list_secrets()
            .include_planned_deletion(true)
            .max_results(100);
        let prefix = &self.settings.secret_prefix;
        if !prefix.is_empty() {
            req = req.filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(prefix.clone())
                    .build(),
            );
        }
        let mut pages = req.into_paginator().send();
        let mut out = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| map(e, &format!("listing secrets of target `{}`", self.name)))?;
            for s in page.secret_list() {
                let Some(name) = s.name() else { continue };
                // The name filter is a server-side search; keep exact prefix matches only.
                if !name.starts_with(prefix.as_str()) {
                    continue;
                }
                let tags = s
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                    })
                    .collect();
                let current_version = s.secret_versions_to_stages().and_then(|m| {
                    m.iter()
                        .find(|(_, stages)| stages.iter().any(|st| st == "AWSCURRENT"))
                        .map(|(v, _)| v.clone())
                });
                out.insert(
                    name.to_string(),
                    Listed {
                        name: name.to_string(),
                        tags,
                        current_version,
                        pending_deletion: s.deleted_date().is_some(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Reads values with `BatchGetSecretValue`, 20 names per call.
    async fn read_values(&self, names: Vec<String>) -> Result<BTreeMap<String, SecretValue>> {
        let mut out = BTreeMap::new();
        for chunk in names.chunks(20) {
            let resp = self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.to_vec()))
                .send()
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
                let (Some(name), Some(s)) = (v.name(), v.secret_string()) else {
                    continue;
                };
                if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(s) {
                    out.insert(name.to_string(), SecretValue::new(m));
                }
            }
            for e in resp.errors() {
                warn!(target_name = %self.name, secret = e.secret_id().unwrap_or(""), code = e.error_code().unwrap_or(""), "could not read a current value; it will be overwritten");
            }
        }
        Ok(out)
    }

    fn tags(&self, hash: &str, version: &str) -> Vec<Tag> {
        [
            (TAG_MANAGED, MANAGED_VALUE),
            (TAG_TARGET, self.name.as_str()),
            (TAG_HASH, hash),
            (TAG_VERSION, version),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
    }

    async fn create(&self, c: &SecretChange) -> Result<Done> {
        let (value, version) = payload(c)?;
        let mut json = value.canonical_json();
        let res = self
            .client
            .create_secret()
            .name(&c.name)
            .secret_string(json.as_str())
            .client_request_token(&version)
            .set_tags(Some(self.tags(&value.content_hash(), &version)))
            .send()
            .await;
        zeroize::Zeroize::zeroize(&mut json);
        res.map_err(|e| map(e, &format!("creating `{}`", c.name)))?;
        Ok(Done::Created {
            name: c.name.clone(),
        })
    }

    async fn update(
        &self,
        c: &SecretChange,
        listed_tags: BTreeMap<String, String>,
    ) -> Result<Done> {
        let (value, version) = payload(c)?;
        let hash = value.content_hash();
        if c.retag {
            let v = c.old_version.clone().unwrap_or_default();
            self.client
                .tag_resource()
                .secret_id(&c.name)
                .set_tags(Some(self.tags(&hash, &v)))
                .send()
                .await
                .map_err(|e| map(e, &format!("tagging `{}`", c.name)))?;
            return Ok(Done::Retagged);
        }
        if c.restore {
            self.client
                .restore_secret()
                .secret_id(&c.name)
                .send()
                .await
                .map_err(|e| map(e, &format!("restoring `{}` from pending deletion", c.name)))?;
        }
        let mut json = value.canonical_json();
        let res = self
            .client
            .put_secret_value()
            .secret_id(&c.name)
            .secret_string(json.as_str())
            .client_request_token(&version)
            .send()
            .await;
        zeroize::Zeroize::zeroize(&mut json);
        let done = |written: bool| Done::Updated {
            name: c.name.clone(),
            old_version: c.old_version.clone(),
            new_version: version.clone(),
            old_tags: listed_tags.clone(),
            restored: c.restore,
            written,
        };
        if let Err(e) = res {
            let mut err = map(e, &format!("writing `{}`", c.name));
            if c.restore
                && let Err(u) = self.undo(done(false)).await
            {
                err.message = format!(
                    "{}; putting it back into pending deletion also failed: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        if let Err(e) = self
            .client
            .tag_resource()
            .secret_id(&c.name)
            .set_tags(Some(self.tags(&hash, &version)))
            .send()
            .await
        {
            let mut err = map(e, &format!("tagging `{}`", c.name));
            if let Err(u) = self.undo(done(true)).await {
                err.message = format!(
                    "{}; rolling this secret back also failed, it is left with the new value: {u}",
                    err.message
                );
            }
            return Err(err);
        }
        Ok(done(true))
    }

    async fn delete(&self, c: &SecretChange) -> Result<Done> {
        let mut req = self.client.delete_secret().secret_id(&c.name);
        req = if self.settings.force_delete {
            req.force_delete_without_recovery(true)
        } else {
            req.recovery_window_in_days(self.settings.deletion_recovery_days as i64)
        };
        req.send()
            .await
            .map_err(|e| map(e, &format!("deleting `{}`", c.name)))?;
        Ok(Done::Deleted {
            name: c.name.clone(),
        })
    }

    /// Undoes one completed write.
    async fn undo(&self, done: Done) -> Result<()> {
        match done {
            Done::Retagged => Ok(()),
            Done::Created { name } => {
                self.client
                    .delete_secret()
                    .secret_id(&name)
                    .force_delete_without_recovery(true)
                    .send()
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
            } => {
                if written {
                    let old = old_version.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unexpected,
                            format!("cannot roll back `{name}`: its previous version is unknown"),
                        )
                    })?;
                    self.client
                        .update_secret_version_stage()
                        .secret_id(&name)
                        .version_stage("AWSCURRENT")
                        .move_to_version_id(&old)
                        .remove_from_version_id(&new_version)
                        .send()
                        .await
                        .map_err(|e| map(e, &format!("rolling back `{name}` to version {old}")))?;
                    // Ownership tags go back to what they were: restored where they existed,
                    // removed where this run added them (an adoption is undone too).
                    let ownership = [TAG_MANAGED, TAG_TARGET, TAG_HASH, TAG_VERSION];
                    let restore: Vec<Tag> = ownership
                        .iter()
                        .filter_map(|k| {
                            old_tags
                                .get(*k)
                                .map(|v| Tag::builder().key(*k).value(v).build())
                        })
                        .collect();
                    let remove: Vec<String> = ownership
                        .iter()
                        .filter(|k| !old_tags.contains_key(**k))
                        .map(|k| k.to_string())
                        .collect();
                    if !restore.is_empty() {
                        self.client
                            .tag_resource()
                            .secret_id(&name)
                            .set_tags(Some(restore))
                            .send()
                            .await
                            .map_err(|e| map(e, &format!("restoring the tags of `{name}`")))?;
                    }
                    if !remove.is_empty() {
                        self.client
                            .untag_resource()
                            .secret_id(&name)
                            .set_tag_keys(Some(remove))
                            .send()
                            .await
                            .map_err(|e| {
                                map(e, &format!("removing the ownership tags added to `{name}`"))
                            })?;
                    }
                }
                if restored {
                    self.client
                        .delete_secret()
                        .secret_id(&name)
                        .recovery_window_in_days(self.settings.deletion_recovery_days as i64)
                        .send()
                        .await
                        .map_err(|e| {
                            map(e, &format!("putting `{name}` back into pending deletion"))
                        })?;
                }
                Ok(())
            }
            Done::Deleted { name } => {
                self.client
                    .restore_secret()
                    .secret_id(&name)
                    .send()
                    .await
                    .map_err(|e| map(e, &format!("rolling back the deletion of `{name}`")))?;
                Ok(())
            }
        }
    }

    async fn rollback(&self, done: Vec<Done>, report: &mut ApplyReport) {
        for d in done.into_iter().rev() {
            let label = match &d {
                Done::Created { name } | Done::Deleted { name } | Done::Updated { name, .. } => {
                    name.clone()
                }
                Done::Retagged => continue,
            };
            match self.undo(d).await {
                Ok(()) => report.rolled_back += 1,
                Err(e) => report.rollback_failures.push(format!("{label}: {e}")),
            }
        }
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

    async fn prefetch(&self) {
        let listed = self.list().await;
        *self.prefetched.lock().await = Some(listed);
    }

    async fn plan(&self, desired: &Bundle) -> Result<TargetPlan> {
        let prefetched = self.prefetched.lock().await.take();
        let listed = match prefetched {
            Some(listed) => listed?,
            None => self.list().await?,
        };
        let opts = self.options();
        let wanted = diff::needs_value(&opts, desired, &listed);
        debug!(target_name = %self.name, listed = listed.len(), reads = wanted.len(), "listed the target");
        let values = self.read_values(wanted).await?;
        let mut plan = diff::plan(&opts, desired, &listed, &values);
        // The version ids this apply will write, known before anything is written so the
        // plan can show them (`old → new`).
        for c in &mut plan.changes {
            if matches!(c.kind, ChangeKind::Added | ChangeKind::Modified) && !c.retag {
                c.new_version = Some(uuid::Uuid::new_v4().to_string());
            }
        }
        Ok(plan)
    }

    async fn apply(&self, plan: &TargetPlan, cancel: &AtomicBool) -> ApplyReport {
        let mut report = ApplyReport::default();
        if let Some(refused) = &plan.refused {
            report.failure = Some(refused.clone());
            return report;
        }
        let pacer = Arc::new(Pacer::new(self.settings.writes_per_second));
        let failed = Arc::new(AtomicBool::new(false));
        let changes = &plan.changes;
        let writes: Vec<usize> = (0..changes.len())
            .filter(|&i| {
                matches!(changes[i].kind, ChangeKind::Added | ChangeKind::Modified)
                    || changes[i].retag
            })
            .collect();
        let results: Vec<Result<Done>> = stream::iter(writes)
            .map(|i| {
                let pacer = pacer.clone();
                let failed = failed.clone();
                async move {
                    let c = &changes[i];
                    if failed.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                        return Err(Error::new(
                            ErrorKind::Cancelled,
                            "not attempted after an earlier failure",
                        ));
                    }
                    pacer.wait().await;
                    let r = match c.kind {
                        ChangeKind::Added => self.create(c).await,
                        _ => self.update(c, c.old_tags.clone()).await,
                    };
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut done = Vec::new();
        for r in results {
            match r {
                Ok(d) => {
                    match &d {
                        Done::Created { .. } => report.created += 1,
                        Done::Updated { .. } => report.updated += 1,
                        Done::Retagged => report.retagged += 1,
                        Done::Deleted { .. } => report.deleted += 1,
                    }
                    done.push(d);
                }
                Err(e) if e.kind == ErrorKind::Cancelled => {}
                Err(e) => {
                    if report.failure.is_none() {
                        report.failure = Some(e.message);
                    }
                }
            }
        }
        let cancelled = |report: &mut ApplyReport| {
            if cancel.load(Ordering::Relaxed) && report.failure.is_none() {
                report.failure = Some("cancelled (Ctrl-C) before every change was applied".into());
            }
        };
        cancelled(&mut report);
        if report.failure.is_none() {
            for c in plan
                .changes
                .iter()
                .filter(|c| c.kind == ChangeKind::Deleted)
            {
                cancelled(&mut report);
                if report.failure.is_some() {
                    break;
                }
                pacer.wait().await;
                match self.delete(c).await {
                    Ok(d) => {
                        report.deleted += 1;
                        done.push(d);
                    }
                    Err(e) => {
                        report.failure = Some(e.message);
                        break;
                    }
                }
            }
        }
        if report.failure.is_some() {
            warn!(target_name = %self.name, applied = done.len(), "the apply stopped early; rolling the target back");
            self.rollback(done, &mut report).await;
        } else {
            info!(target_name = %self.name, created = report.created, updated = report.updated, deleted = report.deleted, "applied");
        }
        report
    }
}
