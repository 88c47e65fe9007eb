//! The pipeline around the pure core: read each needed source once, then fold targets.

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use secretsync_core::config::Config;
use secretsync_core::diff::TargetPlan;
use secretsync_core::fold::desired_states;
use secretsync_core::graph::Import;
use secretsync_core::secret::Collected;
use tracing::{Instrument, info, info_span, warn};

use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::{VaultClient, read_source};

/// The sources the given targets need, directly or through other targets.
pub fn needed_sources(config: &Config, targets: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        for imp in config.graph.imports.get(t).into_iter().flatten() {
            if let Import::Source(s) = imp
                && !out.contains(s)
            {
                out.push(s.clone());
            }
        }
    }
    out
}

/// Reads every needed source once (sources one after another, each with bounded concurrency).
pub async fn read_sources(
    config: &Config,
    vault: &VaultClient,
    names: &[String],
    cancel: &Cancel,
) -> Result<BTreeMap<String, Collected>> {
    let mut out = BTreeMap::new();
    for name in names {
        let source = config
            .source(name)
            .ok_or_else(|| Error::config(format!("unknown source `{name}`")))?;
        let read = read_source(vault, source, config.vault.concurrency, cancel).await?;
        out.insert(name.clone(), read);
    }
    Ok(out)
}

/// The merge phase: the desired state of every target in `selected` and its dependencies.
pub async fn merge_phase(
    config: &Config,
    vault: &VaultClient,
    selected: &[String],
    stored: &BTreeMap<String, Collected>,
    cancel: &Cancel,
    metrics: &crate::metrics::Metrics,
) -> Result<BTreeMap<String, Collected>> {
    merge_phase_with(config, vault, selected, stored, cancel, metrics, false)
        .await
        .map(|(desired, _)| desired)
}

/// [`merge_phase`], and with `provenance` also the winning layer of every key of every
/// selected target's secrets (`pipeline --output json --provenance`; nothing is computed
/// without it).
async fn merge_phase_with(
    config: &Config,
    vault: &VaultClient,
    selected: &[String],
    stored: &BTreeMap<String, Collected>,
    cancel: &Cancel,
    metrics: &crate::metrics::Metrics,
    provenance: bool,
) -> Result<(
    BTreeMap<String, Collected>,
    Option<secretsync_core::explain::Provenance>,
)> {
    let closure = config.graph.closure(selected);
    let sources = read_sources(config, vault, &needed_sources(config, &closure), cancel).await?;
    metrics.sources_read(sources.values());
    let desired = desired_states(config, &closure, &sources, stored)
        .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
    info!(targets = desired.len(), "merge phase done");
    let provenance = provenance.then(|| {
        secretsync_core::explain::provenance(config, &closure, &sources, stored, &desired, selected)
    });
    Ok((desired, provenance))
}

/// The merge-store bundles that the given targets import (`Import::Stored`), each read once;
/// a missing one is an error that says what to do.
pub async fn read_stored(
    config: &Config,
    store: Option<&std::sync::Arc<dyn crate::store::MergeStore>>,
    targets: &[String],
) -> Result<BTreeMap<String, Collected>> {
    let mut stored = BTreeMap::new();
    for t in targets {
        for imp in config.graph.imports.get(t).into_iter().flatten() {
            if let Import::Stored(name) = imp
                && !stored.contains_key(name)
            {
                let store = store
                    .ok_or_else(|| Error::config(format!("import `{name}` needs a merge store")))?;
                let b = store.read_bundle(name).await?.ok_or_else(|| {
                    Error::config(format!("import `{name}` of target `{t}` is not a target, a Vault source, or a bundle in the merge store ({}); fix the name or produce that bundle first", store.location()))
                })?;
                stored.insert(
                    name.clone(),
                    Collected {
                        secrets: b.secrets,
                        incomplete: b.incomplete,
                    },
                );
            }
        }
    }
    Ok(stored)
}

/// What the fold of `target` reads, read as a pipeline run would (the config's Vault
/// settings, its merge store): every source of the target's closure, each once, and the
/// merge-store bundles it imports (`secretsync explain`). Writes nothing.
pub async fn read_layers(
    config: &Config,
    target: &str,
    env: &dyn Fn(&str) -> Option<String>,
    cancel: &Cancel,
) -> Result<(BTreeMap<String, Collected>, BTreeMap<String, Collected>)> {
    use secretsync_core::config::MergeStoreConfig;
    let closure = config.graph.closure(&[target.to_string()]);
    let vault = VaultClient::connect_with(
        &config.vault,
        env,
        crate::observe::Observers::default(),
        crate::retry::Policy::new(config.retries.vault_max_attempts),
    )
    .await?;
    let needs_store = closure.iter().any(|t| {
        config
            .graph
            .imports
            .get(t)
            .is_some_and(|i| i.iter().any(|i| matches!(i, Import::Stored(_))))
    });
    let store = match (&config.merge_store, needs_store) {
        (Some(cfg), true) => {
            let aws = match cfg {
                MergeStoreConfig::S3 { .. } => {
                    Some(crate::aws::AwsContext::load(config.retries.aws_max_attempts, env).await?)
                }
                MergeStoreConfig::Vault { .. } => None,
            };
            Some(crate::store::build(cfg, aws.as_ref(), Some(&vault)).await?)
        }
        _ => None,
    };
    let stored = read_stored(config, store.as_ref(), &closure).await?;
    let sources = read_sources(config, &vault, &needed_sources(config, &closure), cancel).await?;
    Ok((sources, stored))
}

/// How a pipeline run is limited.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    pub merge_only: bool,
    pub sync_only: bool,
    /// Targets to sync; empty means all.
    pub targets: Vec<String>,
    /// Attempts per AWS call, overriding `retries.aws_max_attempts` when set (tests, and
    /// embedders that know better).
    pub aws_max_attempts: Option<u32>,
    /// `--allow-mass-delete`: plans may delete more than `max_delete_fraction`, or everything.
    pub allow_mass_delete: bool,
    /// How long to wait for a target's lease held by another run (`--lock-timeout`).
    pub lock_timeout: std::time::Duration,
    /// Cancelled (a signal) to stop: the Vault read ends, the target being applied is rolled
    /// back, later targets are not started.
    pub cancel: std::sync::Arc<Cancel>,
    /// Who sees every Vault and AWS call of the run (metrics, circuit breakers, tracing).
    pub observers: crate::observe::Observers,
    /// Where phases, plans and results are recorded (off by default).
    pub metrics: crate::metrics::Metrics,
    /// `--plan FILE`: apply exactly this reviewed plan; a target whose fresh plan differs
    /// from it is refused as a whole.
    pub plan_file: Option<std::sync::Arc<secretsync_core::planfile::PlanFile>>,
    /// Targets planned, and then applied, at once (`--parallel-targets`; 0 is taken as 1).
    pub parallel_targets: usize,
    /// The config's policies, compiled (`crate::policy::load`): they judge every plan before
    /// it is applied, and a denied plan is refused.
    pub policies: Option<std::sync::Arc<secretsync_core::policy::Policies>>,
    /// `--provenance`: after the merge phase, hand the reporter the winning layer of every key
    /// ([`Reporter::provenance`]). Off: nothing is computed.
    pub provenance: bool,
}

/// What happened to one target.
#[derive(Debug, Clone)]
pub struct TargetOutcome {
    pub name: String,
    /// Shared with the reporter (it is printed from the same copy).
    pub plan: Option<std::sync::Arc<secretsync_core::diff::TargetPlan>>,
    pub report: Option<crate::targets::ApplyReport>,
    /// Why the target failed (plan or apply), if it did.
    pub error: Option<String>,
    /// What kind of failure [`TargetOutcome::error`] is.
    pub error_kind: Option<secretsync_core::diff::FailureKind>,
    /// The run was cancelled before this target began: no plan, no call, nothing written.
    pub not_started: bool,
    pub calls: u64,
    pub duration: std::time::Duration,
}

impl TargetOutcome {
    pub(crate) fn new(name: &str) -> Self {
        TargetOutcome {
            name: name.to_string(),
            plan: None,
            report: None,
            error: None,
            error_kind: None,
            calls: 0,
            duration: Default::default(),
            not_started: false,
        }
    }

    /// What kind of failure the target had, as the JSON output names it (`denied` for a
    /// plan a policy refused).
    pub fn failure_kind(&self) -> Option<secretsync_core::diff::FailureKind> {
        use secretsync_core::diff::FailureKind;
        if self
            .plan
            .as_ref()
            .is_some_and(|p| p.refused.is_some() && !p.policy.denied.is_empty())
        {
            return Some(FailureKind::Denied);
        }
        self.error_kind
            .or(self.report.as_ref().and_then(|r| r.failure_kind))
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
            || self.not_started
            || self.report.as_ref().is_some_and(|r| r.failure.is_some())
            || self.plan.as_ref().is_some_and(|p| {
                p.refused.is_some() || p.deletions_held.is_some() || p.invalid().next().is_some()
            })
    }
}

/// Receives results as they happen, so plans are shown before they are applied.
pub trait Reporter {
    fn merged(&mut self, _desired: &BTreeMap<String, Collected>, _selected: &[String]) {}
    fn stored(&mut self, _location: &str, _bundle: &str, _stats: crate::store::WriteStats) {}
    fn planned(&mut self, _target: &str, _plan: &secretsync_core::diff::TargetPlan) {}
    fn finished(&mut self, _outcome: &TargetOutcome) {}
    /// The winning layer of every key of the selected targets' secrets, after the merge
    /// phase; only with [`RunOptions::provenance`].
    fn provenance(&mut self, _provenance: secretsync_core::explain::Provenance) {}
    /// Whether [`Reporter::finished`] needs the values in the plan (to print them, masked or
    /// not). When not, they are dropped — and wiped — as soon as the target is applied.
    fn needs_values(&self) -> bool {
        false
    }
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub targets: Vec<TargetOutcome>,
    /// Every gap of the Vault read (skipped paths and why), over all selected targets.
    pub incomplete: Vec<secretsync_core::secret::Gap>,
    pub vault_requests: u64,
    pub aws_calls: u64,
    /// The audit log could not record the run's end (its changes stand).
    pub audit_error: Option<String>,
}

impl RunSummary {
    /// A target failed, or the desired state was built from an incomplete read.
    pub fn failed(&self) -> bool {
        self.targets.iter().any(TargetOutcome::failed)
            || !self.incomplete.is_empty()
            || self.audit_error.is_some()
    }
}

/// Runs the pipeline: merge phase (unless `sync_only`), merge store, then per target in
/// topological order: plan, report, apply (unless `dry_run`). One failing target does not stop
/// the others. Errors before the sync phase (Vault unreachable, a missing bundle) fail the run.
///
/// Traced as a `run` span (with the `run_id`) holding the `merge` and `sync` phases, and a
/// `target` span per target under `sync`; backend calls run inside them.
pub async fn run(
    config: &Config,
    opts: &RunOptions,
    env: &dyn Fn(&str) -> Option<String>,
    reporter: &mut dyn Reporter,
) -> Result<RunSummary> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let span = info_span!("run", run_id = %run_id, otel.status_code = tracing::field::Empty);
    let mut notice = None;
    let result = run_traced(config, opts, env, reporter, run_id.clone(), &mut notice)
        .instrument(span.clone())
        .await;
    if result.as_ref().map_or(true, RunSummary::failed) {
        span.record("otel.status_code", "error");
    }
    if !config.notifications.is_empty() {
        // A run that stopped before its targets has no summary: its notice is the error.
        let notice = notice.unwrap_or_else(|| secretsync_core::notify::Notice {
            run_id,
            time: audit_time(),
            command: command_name(opts).to_string(),
            dry_run: opts.dry_run,
            targets: Vec::new(),
            incomplete: 0,
            error: result.as_ref().err().map(|e| e.message.clone()),
        });
        crate::notify::send_all(&config.notifications, &notice, opts.cancel.is_cancelled())
            .instrument(span)
            .await;
    }
    result
}

/// The command a run is recorded and notified as.
fn command_name(opts: &RunOptions) -> &'static str {
    if opts.merge_only {
        "pipeline --merge-only"
    } else if opts.sync_only {
        "pipeline --sync-only"
    } else {
        "pipeline"
    }
}

/// A run's notice (`secretsync_core::notify`): each target's status and counts, the
/// failures and their reasons.
fn notice_of(
    run_id: &str,
    opts: &RunOptions,
    summary: &RunSummary,
    error: Option<&Error>,
) -> secretsync_core::notify::Notice {
    use secretsync_core::notify::{Notice, TargetNotice};
    let targets = summary
        .targets
        .iter()
        .map(|t| {
            let report = t.report.as_ref();
            let planned = t
                .plan
                .as_ref()
                .map_or(0, |p| p.changes.iter().filter(|c| c.writes()).count());
            let status = if t.not_started {
                "not_started"
            } else if t.failed() {
                "failed"
            } else if planned == 0 {
                "unchanged"
            } else if report.is_some() {
                "applied"
            } else {
                "planned"
            };
            TargetNotice {
                name: t.name.clone(),
                status: status.to_string(),
                created: report.map_or(0, |r| r.created),
                updated: report.map_or(0, |r| r.updated),
                deleted: report.map_or(0, |r| r.deleted),
                retagged: report.map_or(0, |r| r.retagged),
                planned,
                failure_kind: t.failure_kind().map(|k| k.as_str().to_string()),
                reason: t
                    .error
                    .clone()
                    .or_else(|| report.and_then(|r| r.failure.clone()))
                    .or_else(|| t.plan.as_ref().and_then(|p| p.refused.clone())),
            }
        })
        .collect();
    let error = match (error, &summary.audit_error) {
        (Some(e), _) => Some(e.message.clone()),
        (None, Some(a)) => Some(a.clone()),
        (None, None) => None,
    };
    Notice {
        run_id: run_id.to_string(),
        time: audit_time(),
        command: command_name(opts).to_string(),
        dry_run: opts.dry_run,
        targets,
        incomplete: summary.incomplete.len(),
        error,
    }
}

async fn run_traced(
    config: &Config,
    opts: &RunOptions,
    env: &dyn Fn(&str) -> Option<String>,
    reporter: &mut dyn Reporter,
    run_id: String,
    notice: &mut Option<secretsync_core::notify::Notice>,
) -> Result<RunSummary> {
    use crate::aws::AwsContext;
    use crate::store;

    let setup_started = std::time::Instant::now();
    let selected: Vec<String> = if opts.targets.is_empty() {
        config.graph.order.clone()
    } else {
        config
            .graph
            .order
            .iter()
            .filter(|n| opts.targets.contains(n))
            .cloned()
            .collect()
    };
    let needs_aws = !opts.merge_only
        || matches!(
            config.merge_store,
            Some(secretsync_core::config::MergeStoreConfig::S3 { .. })
        );
    let aws = if needs_aws {
        Some(
            AwsContext::load(
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
    let needs_vault = !opts.sync_only
        || matches!(
            config.merge_store,
            Some(secretsync_core::config::MergeStoreConfig::Vault { .. })
        );
    let vault = if needs_vault {
        Some(
            VaultClient::connect_with(
                &config.vault,
                env,
                opts.observers.clone(),
                crate::retry::Policy::new(config.retries.vault_max_attempts),
            )
            .await?,
        )
    } else {
        None
    };
    let store = match &config.merge_store {
        Some(cfg) => Some(store::build(cfg, aws.as_ref(), vault.as_ref()).await?),
        None => None,
    };
    let owner = config.owner_scope();
    let mut summary = RunSummary::default();

    // Targets are built up front so their current state can be listed while Vault is read:
    // the two are independent, and on a no-change run they are most of the time.
    let mut targets: BTreeMap<String, std::sync::Arc<dyn crate::targets::Target>> = BTreeMap::new();
    if !opts.merge_only {
        let clients = crate::targets::Clients {
            aws: aws.as_ref(),
            owner: &owner,
            env,
            observers: opts.observers.clone(),
            retries: config.retries,
            store: config.merge_store.as_ref().zip(store.clone()),
            merge_store: config.merge_store.as_ref(),
        };
        for name in &selected {
            if let Some(tcfg) = config.target(name) {
                targets.insert(name.clone(), crate::targets::build(tcfg, &clients).await?);
            }
        }
    }
    let uses_aws = aws.is_some() && crate::metrics::uses_aws(config, targets.keys());
    opts.metrics
        .setup_done(vault.is_some(), uses_aws, setup_started.elapsed());
    let mut reporter = opts.metrics.reporting(reporter);
    // Read now: the environment is not kept past set-up.
    let author_env = Some(secretsync_core::history::author(env, None)).filter(|a| a != "unknown");
    let author = tokio::sync::OnceCell::<String>::new();
    // The audit log records the run's start before anything is synced: a run it cannot
    // record does not run.
    let audit = match &config.audit {
        Some(a) => Some(crate::audit::AuditLog::new(a, store.as_ref())?),
        None => None,
    };
    if let Some(log) = &audit {
        let who = author
            .get_or_init(|| run_author(aws.as_ref(), author_env.as_deref()))
            .await;
        let command = command_name(opts);
        let start = secretsync_core::audit::Event::run_started(
            &run_id,
            &audit_time(),
            who,
            command,
            &secretsync_core::planfile::config_fingerprint(config),
            &selected,
            opts.dry_run,
        );
        log.append(vec![start]).await.map_err(|e| {
            e.context("the audit log could not record the start of the run, so nothing was synced")
        })?;
    }
    let result = sync_targets(
        config,
        opts,
        &mut reporter,
        &selected,
        &targets,
        aws.as_ref(),
        vault.as_ref(),
        store.as_ref(),
        &run_id,
        author_env,
        &author,
        &mut summary,
    )
    .await;
    if let Some(log) = &audit {
        let events = audit_events(&run_id, &summary, result.as_ref().err());
        if let Err(e) = log.append(events).await {
            let message = format!(
                "the run's changes were made, but the audit log could not record them: {}",
                e.message
            );
            tracing::error!("{message}");
            summary.audit_error = Some(message);
        }
    }
    *notice = Some(notice_of(&run_id, opts, &summary, result.as_ref().err()));
    result?;
    Ok(summary)
}

/// Now, as the audit log writes times (RFC 3339, UTC, seconds).
pub(crate) fn audit_time() -> String {
    crate::audit::now()
}

/// The events of a run's end: one per change left applied in a target, then `run_finished`.
pub(crate) fn audit_events(
    run_id: &str,
    summary: &RunSummary,
    error: Option<&Error>,
) -> Vec<secretsync_core::audit::Event> {
    use secretsync_core::audit::Event;
    use secretsync_core::diff::ChangeKind;
    let time = audit_time();
    let mut events = Vec::new();
    let mut targets = Vec::new();
    for t in &summary.targets {
        let report = t.report.as_ref();
        let left: std::collections::HashSet<&str> = report
            .map(|r| r.left_changed.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if let (Some(plan), Some(r)) = (&t.plan, report) {
            for c in plan
                .changes
                .iter()
                .filter(|c| c.writes() && left.contains(c.name.as_str()))
            {
                let change = match c.kind {
                    ChangeKind::Added => "created",
                    ChangeKind::Modified => "updated",
                    ChangeKind::Deleted => "deleted",
                    _ if c.retag => "retagged",
                    _ => "settings",
                };
                let version = r.versions.get(&c.name).or(c.new_version.as_ref());
                events.push(Event::change(
                    run_id,
                    &time,
                    &t.name,
                    &c.path,
                    &c.name,
                    change,
                    version.map(String::as_str),
                    c.fingerprint
                        .as_deref()
                        .filter(|_| c.kind != ChangeKind::Deleted),
                ));
            }
        }
        let status = if t.not_started {
            "not_started"
        } else if t.failed() {
            "failed"
        } else if t.report.is_some() {
            "applied"
        } else {
            "planned"
        };
        targets.push(serde_json::json!({
            "target": t.name,
            "status": status,
            "created": report.map_or(0, |r| r.created),
            "updated": report.map_or(0, |r| r.updated),
            "deleted": report.map_or(0, |r| r.deleted),
            "failure_kind": t.failure_kind().map(|k| k.as_str()),
        }));
    }
    let failed = error.is_some() || summary.failed();
    events.push(Event::run_finished(
        run_id,
        &time,
        if failed { "failure" } else { "success" },
        targets,
        error.map(|e| e.message.as_str()),
    ));
    events
}

/// A target after the plan phase: its plan (and lease) or why it has none.
struct Planned {
    name: String,
    target: Option<std::sync::Arc<dyn crate::targets::Target>>,
    span: tracing::Span,
    started: std::time::Instant,
    outcome: TargetOutcome,
    plan: Option<TargetPlan>,
    lease: Option<crate::lease::Lease>,
    latest: Option<secretsync_core::history::Revision>,
}

/// The apply phase of one planned target: applies its plan (unless a dry run, or the run was
/// cancelled since), records its history, releases its lease. Returns its outcome, and whether
/// it was already reported (a target without a plan was, in the plan phase).
#[allow(clippy::too_many_arguments)]
async fn apply_planned(
    p: Planned,
    opts: &RunOptions,
    cancel: &std::sync::Arc<Cancel>,
    history: &Option<crate::history::History>,
    author: &tokio::sync::OnceCell<String>,
    aws: Option<&crate::aws::AwsContext>,
    author_env: &Option<String>,
    run_id: &str,
) -> (TargetOutcome, bool) {
    let Planned {
        name,
        target,
        span,
        started,
        mut outcome,
        plan,
        lease,
        latest,
    } = p;
    let (Some(mut plan), Some(target)) = (plan, target) else {
        outcome.duration = started.elapsed();
        return (outcome, true);
    };
    if !opts.dry_run && cancel.is_cancelled() {
        // Planned, but the run was cancelled before its turn: nothing is written.
        warn!(target_name = %name, "not started: the run was cancelled");
        outcome.not_started = true;
        outcome.error_kind = Some(secretsync_core::diff::FailureKind::Cancelled);
        outcome.error = Some(format!(
            "not started: {}",
            cancel.reason().unwrap_or_else(|| "cancelled".into())
        ));
    } else if !opts.dry_run {
        // A lost lease stops this target's apply (and rolls it back), not the run.
        let stop = crate::cancel::Cancel::child(cancel);
        let watcher = lease.as_ref().map(|l| l.cancel_when_lost(stop.clone()));
        let report = target.apply(&plan, &stop).instrument(span.clone()).await;
        if let Some(w) = watcher {
            w.abort();
        }
        // Recorded while the lease is still held, so two runs never interleave their history
        // either.
        if let Some(h) = history {
            let who = author
                .get_or_init(|| run_author(aws, author_env.as_deref()))
                .await;
            let stamp = crate::history::Stamp::now(run_id, who);
            match record(h, latest.as_ref(), &name, &plan, &report, &stamp)
                .instrument(span.clone())
                .await
            {
                Ok(Some(rev)) => secretsync_core::history::stamp(&mut plan, &rev),
                Ok(None) => {}
                Err(e) => {
                    let e = e.context(format!(
                        "the changes were applied, but their history could not be recorded in {}",
                        h.location()
                    ));
                    e.log_for_target(&name, "recording history failed");
                    outcome.error_kind = Some(e.failure_kind());
                    outcome.error = Some(e.message);
                }
            }
        }
        outcome.report = Some(report);
    }
    // Released as soon as the target is done, not at the end of the run.
    if let Some(l) = lease
        && let Err(e) = l.release().instrument(span.clone()).await
    {
        warn!(target_name = %name, error = %e.message, "could not release the target's lease; it expires by itself");
    }
    outcome.plan = Some(std::sync::Arc::new(plan));
    if outcome.failed() {
        span.record("otel.status_code", "error");
    }
    outcome.calls = target.calls();
    outcome.duration = started.elapsed();
    (outcome, false)
}

/// Refuses `plan` as a whole when it is not exactly what the plan file holds for its target.
fn refuse_drift(plan: &mut TargetPlan, file: &secretsync_core::planfile::PlanFile) {
    let name = plan.target.clone();
    let why = match file.target(&name) {
        None => Some(format!(
            "target `{name}` is not in the plan file; make a new plan (`--dry-run --plan-out`) that includes it"
        )),
        Some(planned) => {
            let drift = planned.drift(plan);
            (!drift.is_empty()).then(|| {
                format!(
                    "the plan file no longer matches target `{name}`, so nothing is written to it: {}; make a new plan (`--dry-run --plan-out`) and review it",
                    drift.join("; ")
                )
            })
        }
    };
    if let Some(w) = why {
        tracing::warn!(target_name = %name, "{w}");
        plan.refused = Some(w);
    }
}

/// Records what an apply of `plan` left changed in the target's history.
async fn record(
    history: &crate::history::History,
    latest: Option<&secretsync_core::history::Revision>,
    target: &str,
    plan: &TargetPlan,
    report: &crate::targets::ApplyReport,
    stamp: &crate::history::Stamp,
) -> Result<Option<secretsync_core::history::Revision>> {
    let entries: Vec<crate::history::Entry> =
        secretsync_core::history::recorded(plan, &report.left_changed)
            .into_iter()
            .map(|(c, change)| crate::history::Entry {
                path: c.path.clone(),
                change,
                value: (!change.deletes()).then(|| c.new_value.clone()).flatten(),
                backend_version: (!change.deletes()).then(|| c.new_version.clone()).flatten(),
            })
            .collect();
    history.record(latest, target, entries, stamp).await
}

/// Who this run's changes are recorded as: `from_env` (`SECRETSYNC_AUTHOR`, else
/// `GITHUB_ACTOR`), else the AWS caller identity (one STS call, when AWS is in use), else
/// `unknown`.
pub(crate) async fn run_author(
    aws: Option<&crate::aws::AwsContext>,
    from_env: Option<&str>,
) -> String {
    if let Some(a) = from_env {
        return a.to_string();
    }
    let arn = match aws {
        Some(a) => match a.caller_arn().await {
            Ok(arn) => Some(arn),
            Err(e) => {
                tracing::debug!(error = %e.message, "could not learn the AWS caller identity for history");
                None
            }
        },
        None => None,
    };
    secretsync_core::history::author(&|_| None, arn.as_deref())
}

/// A target's plan made under its lease, ready to apply: the lease is taken only once a plan
/// made without it shows something to write, and the plan is then made again from a fresh
/// listing, because the first listing may have been taken while another run was writing.
/// Two runs therefore never interleave their writes, and a run with nothing to change writes
/// nothing at all, not even a lease.
pub(crate) async fn plan_under_lease(
    target: &dyn crate::targets::Target,
    bundle: &Collected,
    ctx: &crate::targets::PlanContext,
    lease_spec: crate::lease::LeaseSpec,
    me: crate::lease::Holder,
    cancel: &Cancel,
    adjust: &(dyn Fn(&mut TargetPlan) + Send + Sync),
) -> Result<(TargetPlan, Option<crate::lease::Lease>)> {
    // `adjust` (pins, a plan file's refusal, history numbers) runs on each plan before it is
    // judged: a plan left with nothing to write takes no lease.
    let mut plan = target.plan(bundle, ctx).await?;
    adjust(&mut plan);
    plan.compact();
    if ctx.dry_run || !plan.has_changes() || plan.refused.is_some() {
        return Ok((plan, None));
    }
    let lease = crate::lease::acquire(target.lease_backend(), lease_spec, me, cancel).await?;
    match target.plan(bundle, ctx).await {
        Ok(mut plan) => {
            adjust(&mut plan);
            plan.compact();
            Ok((plan, Some(lease)))
        }
        Err(e) => {
            if let Err(r) = lease.release().await {
                warn!(target_name = %target.name(), error = %r.message, "could not release the target's lease; it expires by itself");
            }
            Err(e)
        }
    }
}

/// The merge phase and the sync of every target.
#[allow(clippy::too_many_arguments)]
async fn sync_targets(
    config: &Config,
    opts: &RunOptions,
    reporter: &mut dyn Reporter,
    selected: &[String],
    targets: &BTreeMap<String, std::sync::Arc<dyn crate::targets::Target>>,
    aws: Option<&crate::aws::AwsContext>,
    vault: Option<&VaultClient>,
    store: Option<&std::sync::Arc<dyn crate::store::MergeStore>>,
    run_id: &str,
    author_env: Option<String>,
    author: &tokio::sync::OnceCell<String>,
    summary: &mut RunSummary,
) -> Result<()> {
    let cancel = &opts.cancel;
    // One span per target under the sync phase, from its prefetch to its apply.
    let sync_span = if opts.merge_only {
        tracing::Span::none()
    } else {
        info_span!("sync", phase = "sync")
    };
    let target_spans: BTreeMap<&str, tracing::Span> = targets
        .keys()
        .map(|n| {
            let span = info_span!(parent: &sync_span, "target", target_name = %n, otel.status_code = tracing::field::Empty);
            (n.as_str(), span)
        })
        .collect();
    let prefetch = futures::StreamExt::for_each_concurrent(
        futures::stream::iter(
            targets
                .iter()
                .map(|(n, t)| (t.clone(), target_spans[n.as_str()].clone())),
        ),
        4,
        |(t, span)| async move {
            t.prefetch().instrument(span).await;
        },
    );

    let desired_fut = async {
        let desired: BTreeMap<String, Collected> = if opts.sync_only {
            let store = store.ok_or_else(|| {
                Error::config("--sync-only needs a merge store: configure `merge_store`")
            })?;
            let mut out = BTreeMap::new();
            for t in selected {
                match store.read_bundle(t).await? {
                    Some(b) => {
                        out.insert(
                            t.clone(),
                            Collected {
                                secrets: b.secrets,
                                incomplete: b.incomplete,
                            },
                        );
                    }
                    None => {
                        return Err(Error::config(format!(
                            "the merge store ({}) has no bundle for target `{t}`; run the merge phase first (`pipeline --merge-only`)",
                            store.location()
                        )));
                    }
                }
            }
            out
        } else {
            let vault =
                vault.ok_or_else(|| Error::config("Vault is needed for the merge phase"))?;
            let closure = config.graph.closure(selected);
            let stored = read_stored(config, store, &closure).await?;
            let (desired, provenance) = merge_phase_with(
                config,
                vault,
                selected,
                &stored,
                cancel,
                &opts.metrics,
                opts.provenance,
            )
            .await?;
            if let Some(p) = provenance {
                reporter.provenance(p);
            }
            if let (Some(store), false) = (store, opts.dry_run) {
                for (name, bundle) in &desired {
                    if cancel.is_cancelled() {
                        return Err(Error::new(
                            ErrorKind::Cancelled,
                            "cancelled while writing the merge store; bundles already written are complete, the rest were not written, and nothing was synced",
                        ));
                    }
                    let stats = store
                        .write_bundle(name, &bundle.secrets, &bundle.incomplete, run_id)
                        .await?;
                    reporter.stored(&store.location(), name, stats);
                }
            }
            desired
        };
        Ok::<_, Error>(desired)
    }
    .instrument(info_span!("merge", phase = "merge"));
    let merge_started = std::time::Instant::now();
    let (desired, ()) = tokio::join!(desired_fut, prefetch);
    let desired = desired?;
    opts.metrics
        .phase(crate::metrics::Phase::Merge, merge_started.elapsed());
    reporter.merged(&desired, selected);
    for name in selected {
        for r in desired
            .get(name)
            .map(|d| d.incomplete.as_slice())
            .unwrap_or_default()
        {
            if !summary.incomplete.contains(r) {
                summary.incomplete.push(r.clone());
            }
        }
    }
    summary.vault_requests = vault.map_or(0, |v| v.request_count());
    if opts.merge_only {
        summary.aws_calls = aws.map_or(0, |a| a.calls.get());
        return Ok(());
    }
    let owner = config.owner_scope();
    let ctx = crate::targets::PlanContext {
        dry_run: opts.dry_run,
        allow_mass_delete: opts.allow_mass_delete,
    };
    // With a merge store, every apply that changes a target is recorded in its history.
    let history = store.map(|s| crate::history::History::new(s.clone(), config.retain_versions));
    let sync_started = std::time::Instant::now();
    // Two phases, each over the targets in execution order with up to `parallel` at once
    // (sync-phase targets do not wait for each other: every desired state was merged before
    // the sync phase): first every target is planned — its plan printed as soon as it and
    // every plan before it are ready, so plans come out whole and in order — then every plan
    // is applied, results likewise in order. A plan is always shown before its target is
    // written.
    let parallel = opts.parallel_targets.max(1);
    let mut planned_targets: Vec<Planned> = Vec::new();
    {
        let (desired, target_spans) = (&desired, &target_spans);
        let plan_one = |name: &String| {
            let name = name.clone();
            let target = targets.get(&name).cloned();
            let span = target_spans
                .get(name.as_str())
                .cloned()
                .unwrap_or_else(tracing::Span::none);
            let (history, ctx, owner) = (&history, &ctx, &owner);
            async move {
                let name = &name;
                let started = std::time::Instant::now();
                let mut outcome = TargetOutcome::new(name);
                let done = |outcome: TargetOutcome| Planned {
                    name: name.clone(),
                    target: None,
                    span: span.clone(),
                    started,
                    outcome,
                    plan: None,
                    lease: None,
                    latest: None,
                };
                let target = target?;
                if cancel.is_cancelled() {
                    warn!(target_name = %name, "not started: the run was cancelled");
                    outcome.not_started = true;
                    outcome.error_kind = Some(secretsync_core::diff::FailureKind::Cancelled);
                    outcome.error = Some(format!(
                        "not started: {}",
                        cancel.reason().unwrap_or_else(|| "cancelled".into())
                    ));
                    return Some(done(outcome));
                }
                let Some(bundle) = desired.get(name) else {
                    outcome.error_kind = Some(secretsync_core::diff::FailureKind::Unexpected);
                    outcome.error = Some(format!(
                        "no desired state was computed for target `{name}`; this is a bug, please report it"
                    ));
                    return Some(done(outcome));
                };
                // The target's transformations, between the merge and the diff: a secret that
                // cannot be transformed fails the target before anything is read or written.
                let transformed;
                let bundle = match config.target(name).map(|t| t.transform.as_slice()) {
                    Some(blocks) if !blocks.is_empty() => {
                        match secretsync_core::transform::apply(blocks, bundle) {
                            Ok(t) => {
                                transformed = t;
                                &transformed
                            }
                            Err(e) => {
                                let message = format!(
                                    "the `transform` of target `{name}` failed: {e}; nothing was written to it"
                                );
                                warn!(target_name = %name, "{message}");
                                outcome.error_kind =
                                    Some(secretsync_core::diff::FailureKind::Config);
                                outcome.error = Some(message);
                                return Some(done(outcome));
                            }
                        }
                    }
                    _ => bundle,
                };
                let spec = crate::lease::LeaseSpec {
                    key: crate::lease::target_key(owner, name),
                    ttl: crate::lease::DEFAULT_TTL,
                    wait: opts.lock_timeout,
                };
                let me = crate::lease::Holder::detect(owner.clone(), run_id.to_string());
                let latest = match history {
                    Some(h) => match h.latest(name).instrument(span.clone()).await {
                        Ok(r) => r,
                        Err(e) => {
                            let e = e.context(format!(
                                "reading the history of target `{name}` in {}",
                                h.location()
                            ));
                            e.log_for_target(name, "target failed");
                            outcome.error_kind = Some(e.failure_kind());
                            outcome.error = Some(e.message);
                            outcome.calls = target.calls();
                            return Some(done(outcome));
                        }
                    },
                    None => None,
                };
                let adjust = |plan: &mut TargetPlan| {
                    if history.is_some() {
                        secretsync_core::history::annotate(plan, latest.as_ref());
                    }
                    // What a rollback restored stays as it is until it is unpinned.
                    if let Some(l) = &latest {
                        secretsync_core::history::apply_pins(plan, &l.pins);
                    }
                    if let Some(file) = &opts.plan_file {
                        refuse_drift(plan, file);
                    }
                    // Last: the policies judge the plan as it would be applied.
                    if let (Some(p), Some(t)) = (&opts.policies, config.target(name)) {
                        p.apply(t, plan);
                    }
                };
                let planned = plan_under_lease(&*target, bundle, ctx, spec, me, cancel, &adjust)
                    .instrument(span.clone())
                    .await;
                let mut p = done(outcome);
                match planned {
                    Err(e) => {
                        e.log_for_target(name, "target failed");
                        p.outcome.error_kind = Some(e.failure_kind());
                        p.outcome.error = Some(e.message);
                        p.outcome.calls = target.calls();
                    }
                    Ok((mut plan, lease)) => {
                        if opts.dry_run {
                            // Version ids are chosen when writing; a dry run writes nothing.
                            plan.changes.iter_mut().for_each(|c| c.new_version = None);
                        }
                        p.plan = Some(plan);
                        p.lease = lease;
                        p.latest = latest;
                    }
                }
                p.target = Some(target);
                Some(p)
            }
        };
        let mut plans = stream::iter(selected.iter())
            .map(plan_one)
            .buffered(parallel);
        while let Some(p) = plans.next().await {
            let Some(p) = p else { continue };
            match &p.plan {
                Some(plan) => reporter.planned(&p.name, plan),
                None => reporter.finished(&p.outcome),
            }
            planned_targets.push(p);
        }
    }
    // Every plan holds what it writes: the desired states (their trees and paths) are done.
    drop(desired);
    let mut applies =
        stream::iter(planned_targets)
            .map(|p| {
                let history = &history;
                let author_env = &author_env;
                async move {
                    apply_planned(p, opts, cancel, history, author, aws, author_env, run_id).await
                }
            })
            .buffered(parallel);
    let keep_values = reporter.needs_values();
    while let Some((mut outcome, printed)) = applies.next().await {
        // Applied: what the run keeps of the target from here on (its report, the exit code,
        // the plan file) needs no value, unless the reporter prints them.
        if !keep_values && let Some(plan) = &mut outcome.plan {
            std::sync::Arc::make_mut(plan).forget_values();
        }
        if !printed {
            reporter.finished(&outcome);
        }
        summary.targets.push(outcome);
    }
    opts.metrics
        .phase(crate::metrics::Phase::Sync, sync_started.elapsed());
    summary.aws_calls =
        aws.map_or(0, |a| a.calls.get()) + summary.targets.iter().map(|t| t.calls).sum::<u64>();
    Ok(())
}
