//! Restoring from history: a secret to one of its versions (`secretsync version rollback`), a
//! whole target to one of its revisions (`pipeline --targets T --version R`), and releasing
//! pins (`secretsync version unpin`).
//!
//! A restore is planned and applied like any sync — the same ownership rules (an unmanaged
//! secret is refused), the same lease, the same apply with rollback on failure, the same
//! reports — from a desired state made of recorded values instead of Vault's. Where Secrets
//! Manager still holds the recorded AWS version, `AWSCURRENT` is moved back to it and no value
//! is written; otherwise the recorded value is written. The restore is recorded as versions of
//! kind `rollback`, and what it restored is pinned, so that the next scheduled `pipeline` run
//! does not undo it; `unpin` records a revision that releases the pins.

use std::collections::BTreeMap;

use secretsync_core::config::Config;
use secretsync_core::diff::ChangeKind;
use secretsync_core::history::{Change, Revision};
use secretsync_core::secret::{Bundle, Collected};
use tracing::Instrument;

use crate::error::{Error, ErrorKind, Result};
use crate::history::{Entry, History, Stamp};
use crate::pipeline::{Reporter, RunOptions, RunSummary, TargetOutcome};

/// What to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// One secret (its path relative to the target's prefix) to one of its versions.
    Secret { path: String, version: u64 },
    /// The whole target to one of its revisions.
    Revision(u64),
}

fn not_found(msg: String) -> Error {
    Error::new(ErrorKind::Config, msg)
}

/// The history of `config`, or the error that says it is off.
async fn history(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<History> {
    crate::history::open(config, env)
        .await?
        .ok_or_else(|| Error::config(crate::history::HISTORY_OFF))
}

/// Who the change is recorded as (`SECRETSYNC_AUTHOR`, `GITHUB_ACTOR`, the AWS caller).
async fn author(
    aws: Option<&crate::aws::AwsContext>,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let from_env = Some(secretsync_core::history::author(env, None)).filter(|a| a != "unknown");
    crate::pipeline::run_author(aws, from_env.as_deref()).await
}

/// Releases the pins of `target` (all of them, or `path`'s): records a revision that changes
/// only the pins. Returns the paths released (empty: nothing was pinned there).
pub async fn unpin(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    target: &str,
    path: Option<&str>,
) -> Result<Vec<String>> {
    config
        .target(target)
        .ok_or_else(|| not_found(format!("no target `{target}` in the config")))?;
    let history = history(config, env).await?;
    let Some(latest) = history.latest(target).await? else {
        return Ok(Vec::new());
    };
    let mut pins = latest.pins.clone();
    let released: Vec<String> = match path {
        Some(p) => pins
            .remove(p)
            .map(|_| vec![p.to_string()])
            .unwrap_or_default(),
        None => std::mem::take(&mut pins).into_keys().collect(),
    };
    if released.is_empty() {
        return Ok(released);
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let stamp = Stamp::now(&run_id, &author(None, env).await);
    history
        .record_with_pins(Some(&latest), target, Vec::new(), &stamp, Some(pins))
        .await?;
    Ok(released)
}

/// Restores `target` (see [`What`]) and reports it like a pipeline run: the plan through
/// `reporter.planned`, the result through `reporter.finished`. `opts.dry_run` stops after the
/// plan.
pub async fn restore(
    config: &Config,
    opts: &RunOptions,
    env: &dyn Fn(&str) -> Option<String>,
    reporter: &mut dyn Reporter,
    target: &str,
    what: &What,
) -> Result<RunSummary> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("restore", run_id = %run_id, target_name = %target);
    restore_traced(config, opts, env, reporter, target, what, &run_id)
        .instrument(span)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn restore_traced(
    config: &Config,
    opts: &RunOptions,
    env: &dyn Fn(&str) -> Option<String>,
    reporter: &mut dyn Reporter,
    target: &str,
    what: &What,
    run_id: &str,
) -> Result<RunSummary> {
    let tcfg = config
        .target(target)
        .ok_or_else(|| not_found(format!("no target `{target}` in the config")))?;
    let history = history(config, env).await?;
    let latest = history.latest(target).await?.ok_or_else(|| {
        not_found(format!(
            "target `{target}` has no recorded history in {}: nothing to restore",
            history.location()
        ))
    })?;
    // The desired state: the recorded values, each with the AWS version that holds it.
    let mut bundle = Bundle::new();
    let mut reuse: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut tcfg = tcfg.clone();
    match what {
        What::Secret { path, version } => {
            let rec = history
                .version(target, path, *version)
                .await?
                .ok_or_else(|| {
                    not_found(format!(
                        "version {version} of `{path}` in target `{target}` is not in the history; `secretsync version list --target {target} --path {path}` lists what is kept"
                    ))
                })?;
            let value = rec.value.ok_or_else(|| {
                not_found(format!(
                    "version {version} of `{path}` deleted it; roll back to a version that holds a value"
                ))
            })?;
            bundle.insert(path.clone(), value);
            reuse.insert(path.clone(), rec.backend_version);
            // Only this secret: nothing else of the target is touched.
            tcfg.policy.delete_orphans = false;
        }
        What::Revision(r) => {
            let rev: Revision = history.revision(target, *r).await?.ok_or_else(|| {
                not_found(format!(
                    "revision {r} of target `{target}` is not in the history; `secretsync version list --target {target}` lists what is kept"
                ))
            })?;
            for (path, n) in rev.live() {
                let rec = history.version(target, path, n).await?.ok_or_else(|| {
                    not_found(format!(
                        "revision {r} of target `{target}` needs version {n} of `{path}`, which is no longer kept (`retain_versions`); restore a later revision"
                    ))
                })?;
                // A live secret without its value would read as "not in the revision" and be
                // deleted: refuse instead.
                let value = rec.value.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "version {n} of `{path}` in target `{target}` holds no value although revision {r} keeps the secret; the history record was changed by hand: nothing was restored"
                        ),
                    )
                })?;
                bundle.insert(path.to_string(), value);
                reuse.insert(path.to_string(), rec.backend_version);
            }
        }
    }
    tcfg.policy.adopt = false;
    tcfg.policy.adopt_from.clear();

    let aws = if tcfg.backend.uses_aws() {
        Some(
            crate::aws::AwsContext::load(
                opts.aws_max_attempts
                    .unwrap_or(config.retries.aws_max_attempts)
                    .max(1),
                env,
            )
            .await?
            .observe(opts.observers.clone()),
        )
    } else {
        None
    };
    let owner = config.owner_scope();
    // A target that keeps its state in the merge store (`webhook`) gets it; an S3 store is
    // built without a call.
    let store = match &config.merge_store {
        Some(cfg @ secretsync_core::config::MergeStoreConfig::S3 { .. }) if aws.is_some() => {
            Some((cfg, crate::store::build(cfg, aws.as_ref(), None).await?))
        }
        _ => None,
    };
    let clients = crate::targets::Clients {
        aws: aws.as_ref(),
        owner: &owner,
        env,
        observers: opts.observers.clone(),
        retries: config.retries,
        store,
        merge_store: config.merge_store.as_ref(),
    };
    let built = crate::targets::build(&tcfg, &clients).await?;
    let who = author(aws.as_ref(), env).await;
    // Audited like a pipeline run: the start before anything is written.
    let audit = match &config.audit {
        Some(a) => Some(crate::audit::AuditLog::open(a, Some(history.objects()))?),
        None => None,
    };
    if let Some(log) = &audit {
        let command = match what {
            What::Secret { .. } => "version rollback",
            What::Revision(_) => "pipeline --version",
        };
        let start = secretsync_core::audit::Event::run_started(
            run_id,
            &crate::audit::now(),
            &who,
            command,
            &secretsync_core::planfile::config_fingerprint(config),
            &[target.to_string()],
            opts.dry_run,
        );
        log.append(vec![start]).await.map_err(|e| {
            e.context(
                "the audit log could not record the start of the restore, so nothing was restored",
            )
        })?;
    }
    let ctx = crate::targets::PlanContext {
        dry_run: opts.dry_run,
        allow_mass_delete: opts.allow_mass_delete,
    };
    let spec = crate::lease::LeaseSpec {
        key: crate::lease::target_key(&owner, target),
        ttl: crate::lease::DEFAULT_TTL,
        wait: opts.lock_timeout,
    };
    let me = crate::lease::Holder::detect(owner.clone(), run_id.to_string());
    let started = std::time::Instant::now();
    let mut outcome = TargetOutcome::new(target);
    let mut summary = RunSummary::default();
    let desired = Collected::complete(bundle);
    let adjust = |plan: &mut secretsync_core::diff::TargetPlan| {
        // A secret the target does not manage (any more) is refused, not taken over.
        if let What::Secret { path, .. } = what
            && let Some(c) = plan.changes.iter().find(|c| &c.path == path)
            && c.kind == ChangeKind::Skipped
        {
            plan.refused = Some(format!(
                "`{}` cannot be rolled back: {}",
                c.name,
                c.reason
                    .clone()
                    .unwrap_or_else(|| "it is not managed by this target".into())
            ));
        }
        for c in &mut plan.changes {
            if let Some(Some(v)) = reuse.get(&c.path)
                && matches!(c.kind, ChangeKind::Modified)
            {
                c.reuse_version = Some(v.clone());
            }
        }
        secretsync_core::history::annotate(plan, Some(&latest));
        // A rollback writes to the target like any run: the policies judge it too.
        if let Some(p) = &opts.policies {
            p.apply(&tcfg, plan);
        }
    };
    let planned =
        crate::pipeline::plan_under_lease(&*built, &desired, &ctx, spec, me, &opts.cancel, &adjust)
            .await;
    match planned {
        Err(e) => {
            e.log_for_target(target, "restore failed");
            outcome.error_kind = Some(e.failure_kind());
            outcome.error = Some(e.message);
        }
        Ok((mut plan, lease)) => {
            if opts.dry_run {
                plan.changes.iter_mut().for_each(|c| c.new_version = None);
            }
            reporter.planned(target, &plan);
            if !opts.dry_run && plan.refused.is_none() {
                let stop = crate::cancel::Cancel::child(&opts.cancel);
                let watcher = lease.as_ref().map(|l| l.cancel_when_lost(stop.clone()));
                let report = built.apply(&plan, &stop).await;
                if let Some(w) = watcher {
                    w.abort();
                }
                if report.failure.is_none() {
                    match record(
                        &history, &latest, target, &plan, &report, what, run_id, &who,
                    )
                    .await
                    {
                        Ok(rev) => secretsync_core::history::stamp(&mut plan, &rev),
                        Err(e) => {
                            let e = e.context(format!(
                                "the restore was applied, but its history could not be recorded in {}",
                                history.location()
                            ));
                            e.log_for_target(target, "recording history failed");
                            outcome.error_kind = Some(e.failure_kind());
                            outcome.error = Some(e.message);
                        }
                    }
                }
                outcome.report = Some(report);
            }
            if let Some(l) = lease
                && let Err(e) = l.release().await
            {
                tracing::warn!(target_name = %target, error = %e.message, "could not release the target's lease; it expires by itself");
            }
            outcome.plan = Some(std::sync::Arc::new(plan));
        }
    }
    outcome.calls = built.calls();
    outcome.duration = started.elapsed();
    reporter.finished(&outcome);
    summary.aws_calls = outcome.calls + aws.as_ref().map_or(0, |a| a.calls.get());
    summary.targets.push(outcome);
    if let Some(log) = &audit
        && let Err(e) = log
            .append(crate::pipeline::audit_events(run_id, &summary, None))
            .await
    {
        let message = format!(
            "the restore was made, but the audit log could not record it: {}",
            e.message
        );
        tracing::error!("{message}");
        summary.audit_error = Some(message);
    }
    Ok(summary)
}

/// Records a restore: a `rollback` version of every secret it left changed (a `delete` for
/// one the restored revision did not hold), and the pins: the restored secret, or every secret
/// of the restored revision and every one the restore deleted, at its version now.
#[allow(clippy::too_many_arguments)]
async fn record(
    history: &History,
    latest: &Revision,
    target: &str,
    plan: &secretsync_core::diff::TargetPlan,
    report: &crate::targets::ApplyReport,
    what: &What,
    run_id: &str,
    author: &str,
) -> Result<Revision> {
    let entries: Vec<Entry> = secretsync_core::history::recorded(plan, &report.left_changed)
        .into_iter()
        .map(|(c, change)| Entry {
            path: c.path.clone(),
            change: if change.deletes() {
                Change::Delete
            } else {
                Change::Rollback
            },
            value: (!change.deletes()).then(|| c.new_value.clone()).flatten(),
            backend_version: report
                .versions
                .get(&c.name)
                .cloned()
                .or_else(|| c.new_version.clone()),
        })
        .collect();
    let changed: BTreeMap<String, ()> = entries.iter().map(|e| (e.path.clone(), ())).collect();
    let restored: Vec<String> = match what {
        What::Secret { path, .. } => vec![path.clone()],
        // Everything the revision holds, and what the restore deleted because the revision did
        // not hold it (pinned as deleted, so the next run does not create it again).
        What::Revision(_) => plan
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    c.kind,
                    ChangeKind::Added | ChangeKind::Modified | ChangeKind::Unchanged
                ) || changed.contains_key(&c.path)
            })
            .map(|c| c.path.clone())
            .collect(),
    };
    let mut pins = latest.pins.clone();
    // The version each restored secret is at once this is recorded: the next number where it
    // changed, its latest otherwise.
    for p in &restored {
        let now = latest.latest(p).map_or(0, |l| l.version);
        let v = if changed.contains_key(p) {
            now + 1
        } else {
            now
        };
        if v > 0 {
            pins.insert(p.clone(), v);
        }
    }
    let stamp = Stamp::now(run_id, author);
    history
        .record_with_pins(Some(latest), target, entries, &stamp, Some(pins))
        .await?
        .ok_or_else(|| Error::new(ErrorKind::Unexpected, "a restore recorded nothing"))
}
