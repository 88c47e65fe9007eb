//! The run's Prometheus metrics (`docs/metrics.md` lists every one): a registry that is an
//! [`Observer`] of every backend call (counts, durations, errors, pagination, throttling) and
//! records what the pipeline did (phase durations, secrets synced, changes by kind, failed
//! targets, the last success). [`serve`] exposes it over HTTP for the whole run (with
//! `/health` and `/ready`), [`push`] sends the final state to a Pushgateway.
//!
//! [`Metrics`] is a cheap handle; [`Metrics::off`] (the default) makes every method a no-op,
//! so code records unconditionally and a run without metrics pays nothing for them.
//!
//! Labels hold names chosen by the operator or fixed by the code — operation names
//! (`kv.read`, `ListSecrets`), services, target names, kinds and reasons — never a secret
//! path or value. The one exception to "small and fixed" is the circuit breaker's `service`
//! label, which names a Vault address or an AWS account and region.

mod push;
mod serve;

pub use push::push;
pub use serve::{Server, serve};

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use secretsync_core::secret::Collected;

pub use crate::breaker::BreakerState;
use crate::observe::{Attempt, Backend, Observer, Outcome};
use crate::pipeline::{Reporter, TargetOutcome};

/// A timed part of the run: the `phase` label of `secretsync_pipeline_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Clients connected (Vault login, AWS config), the merge store and the targets built.
    Setup,
    /// Vault read (or the merge store's bundles), the fold and the merge store written, with
    /// the targets' first listing beside it.
    Merge,
    /// Every target planned and applied.
    Sync,
    /// The whole run, from the loaded config to the last result.
    Total,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Merge => "merge",
            Phase::Sync => "sync",
            Phase::Total => "total",
        }
    }
}

/// Why a target counts in `secretsync_target_failures_total{target,reason}`: the first that
/// applies of `not_started` (the run was cancelled before it), `plan` (its plan or its lease
/// failed), `refused` (a guard refused the plan), `cancelled` (its apply was interrupted),
/// `apply` (a write failed), `deletions_held` (an incomplete read held deletions back),
/// `invalid` (some secrets were invalid and skipped).
pub fn failure_reason(t: &TargetOutcome) -> Option<&'static str> {
    let report = t.report.as_ref();
    let plan = t.plan.as_ref();
    if t.not_started {
        Some("not_started")
    } else if t.error.is_some() {
        Some("plan")
    } else if plan.is_some_and(|p| p.refused.is_some()) {
        Some("refused")
    } else if report.is_some_and(|r| r.cancelled) {
        Some("cancelled")
    } else if report.is_some_and(|r| r.failure.is_some()) {
        Some("apply")
    } else if plan.is_some_and(|p| p.deletions_held.is_some()) {
        Some("deletions_held")
    } else if plan.is_some_and(|p| p.invalid().next().is_some()) {
        Some("invalid")
    } else {
        None
    }
}

/// Whether a run of `targets` talks to AWS, so that `/ready` waits for an AWS answer: an S3
/// merge store, or a target of an AWS kind (a `vault_kv2` target does not).
pub fn uses_aws<'a>(
    config: &secretsync_core::config::Config,
    targets: impl IntoIterator<Item = &'a String>,
) -> bool {
    use secretsync_core::config::MergeStoreConfig;
    matches!(config.merge_store, Some(MergeStoreConfig::S3 { .. }))
        || targets
            .into_iter()
            .any(|n| config.target(n).is_some_and(|t| t.backend.uses_aws()))
}

// Readiness bits.
const SETUP_DONE: u8 = 1;
const NEEDS_VAULT: u8 = 2;
const NEEDS_AWS: u8 = 4;
const VAULT_ANSWERED: u8 = 8;
const AWS_ANSWERED: u8 = 16;

/// Request durations: loopback calls take a millisecond, a throttled or far region seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Phase durations: from a no-change run's second to a first sync of many thousand secrets.
const PHASE_BUCKETS: [f64; 13] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

struct Inner {
    registry: Registry,
    vault_duration: HistogramVec,
    vault_requests: IntCounterVec,
    vault_errors: IntCounterVec,
    vault_secrets: IntCounter,
    aws_duration: HistogramVec,
    aws_requests: IntCounterVec,
    aws_errors: IntCounterVec,
    aws_pagination: IntCounterVec,
    dest_duration: HistogramVec,
    dest_requests: IntCounterVec,
    dest_errors: IntCounterVec,
    throttled: IntCounterVec,
    phase: HistogramVec,
    synced: IntCounterVec,
    changes: IntCounterVec,
    rolled_back: IntCounterVec,
    planned: IntGaugeVec,
    failures: IntCounterVec,
    breaker: IntGaugeVec,
    last_success: Gauge,
    last_run_success: IntGauge,
    ready: AtomicU8,
}

/// The run's metrics; cheap to clone. [`Metrics::off`] (the default) records nothing.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Inner>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Metrics(on)"
        } else {
            "Metrics(off)"
        })
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str], b: &[f64]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(b.to_vec()), labels)
        .expect("a valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    /// Metrics that record nothing (every method is a no-op).
    pub fn off() -> Metrics {
        Metrics(None)
    }

    /// A fresh registry with every metric family registered.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let vault_secrets = IntCounter::new(
            "secretsync_vault_secrets_total",
            "Secrets read from the Vault sources.",
        )
        .expect("a valid metric");
        r.register(Box::new(vault_secrets.clone()))
            .expect("registered once");
        let last_success = Gauge::new(
            "secretsync_last_success_timestamp_seconds",
            "When the last successful run ended (Unix time); absent until one has.",
        )
        .expect("a valid metric");
        let last_run_success = IntGauge::new(
            "secretsync_last_run_success",
            "1 if the last run ended successfully, 0 if it failed; absent while it runs.",
        )
        .expect("a valid metric");
        let build_info = gauge(
            &r,
            "secretsync_build_info",
            "Always 1; the version of SecretSync that runs.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let inner = Inner {
            vault_duration: histogram(
                &r,
                "secretsync_vault_request_duration_seconds",
                "Duration of Vault requests (each attempt), by operation.",
                &["operation"],
                &REQUEST_BUCKETS,
            ),
            vault_requests: counter(
                &r,
                "secretsync_vault_requests_total",
                "Vault requests (each attempt), by operation and outcome (ok, throttled, failed, refused).",
                &["operation", "outcome"],
            ),
            vault_errors: counter(
                &r,
                "secretsync_vault_errors_total",
                "Vault requests that did not succeed, by operation and outcome (throttled, failed, refused).",
                &["operation", "outcome"],
            ),
            vault_secrets,
            aws_duration: histogram(
                &r,
                "secretsync_aws_request_duration_seconds",
                "Duration of AWS requests (each attempt), by service and operation.",
                &["service", "operation"],
                &REQUEST_BUCKETS,
            ),
            aws_requests: counter(
                &r,
                "secretsync_aws_requests_total",
                "AWS requests (each attempt), by service, operation and outcome (ok, throttled, failed, refused).",
                &["service", "operation", "outcome"],
            ),
            aws_errors: counter(
                &r,
                "secretsync_aws_errors_total",
                "AWS requests that did not succeed, by service, operation and outcome (throttled, failed, refused).",
                &["service", "operation", "outcome"],
            ),
            aws_pagination: counter(
                &r,
                "secretsync_aws_pagination_calls_total",
                "AWS requests that fetched a further page of a listing, by service and operation.",
                &["service", "operation"],
            ),
            dest_duration: histogram(
                &r,
                "secretsync_destination_request_duration_seconds",
                "Duration of requests to destinations other than Vault and AWS (each attempt), by backend (gcp, azure, webhook, plugin) and operation.",
                &["backend", "operation"],
                &REQUEST_BUCKETS,
            ),
            dest_requests: counter(
                &r,
                "secretsync_destination_requests_total",
                "Requests to destinations other than Vault and AWS (each attempt), by backend, operation and outcome (ok, throttled, failed, refused).",
                &["backend", "operation", "outcome"],
            ),
            dest_errors: counter(
                &r,
                "secretsync_destination_errors_total",
                "Requests to destinations other than Vault and AWS that did not succeed, by backend, operation and outcome (throttled, failed, refused).",
                &["backend", "operation", "outcome"],
            ),
            throttled: counter(
                &r,
                "secretsync_throttled_total",
                "Requests throttled by the backend (each is retried after a back-off), by backend (vault, aws, gcp, azure, webhook, plugin).",
                &["backend"],
            ),
            phase: histogram(
                &r,
                "secretsync_pipeline_duration_seconds",
                "Duration of the run's phases (setup, merge, sync, total).",
                &["phase"],
                &PHASE_BUCKETS,
            ),
            synced: counter(
                &r,
                "secretsync_secrets_synced_total",
                "Secrets whose value this run wrote to the target (created or updated) and left written.",
                &["target"],
            ),
            changes: counter(
                &r,
                "secretsync_changes_total",
                "Changes applied to the target, by kind (created, updated, deleted, retagged); rolled-back writes included.",
                &["target", "kind"],
            ),
            rolled_back: counter(
                &r,
                "secretsync_rolled_back_total",
                "Writes to the target undone by a rollback after a failed or interrupted apply.",
                &["target"],
            ),
            planned: gauge(
                &r,
                "secretsync_planned_changes",
                "The target's last plan, by kind (add, modify, delete, unchanged, skipped); a dry run's drift.",
                &["target", "kind"],
            ),
            failures: counter(
                &r,
                "secretsync_target_failures_total",
                "Targets that failed, by reason (not_started, plan, refused, cancelled, apply, deletions_held, invalid).",
                &["target", "reason"],
            ),
            breaker: gauge(
                &r,
                "secretsync_circuit_breaker_state",
                "1 for the circuit breaker's current state (closed, open, half_open), 0 for the others, by service.",
                &["service", "state"],
            ),
            last_success,
            last_run_success,
            ready: AtomicU8::new(0),
            registry: r,
        };
        Metrics(Some(Arc::new(inner)))
    }

    /// Whether this handle records anything.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The metrics in the Prometheus text format (0.0.4).
    pub fn encode(&self) -> Result<String, String> {
        let Some(m) = &self.0 else {
            return Ok(String::new());
        };
        prometheus::TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .map_err(|e| format!("cannot encode the metrics: {e}"))
    }

    /// Sets `secretsync_circuit_breaker_state{service,state}`: 1 for `state`, 0 for the other
    /// two. `service` is the breaker's key ([`crate::observe::Endpoint::breaker_key`]:
    /// `vault/<address>`, `aws/<account>/<region>`). Call it when a breaker is created
    /// (closed) and on every transition.
    pub fn set_breaker_state(&self, service: &str, state: BreakerState) {
        let Some(m) = &self.0 else { return };
        for s in BreakerState::ALL {
            m.breaker
                .with_label_values(&[service, s.label()])
                .set(i64::from(s == state));
        }
    }

    /// Records how long a phase took.
    pub fn phase(&self, phase: Phase, elapsed: Duration) {
        let Some(m) = &self.0 else { return };
        m.phase
            .with_label_values(&[phase.label()])
            .observe(elapsed.as_secs_f64());
    }

    /// The Vault sources were read: `secretsync_vault_secrets_total`.
    pub fn sources_read<'a>(&self, sources: impl IntoIterator<Item = &'a Collected>) {
        let Some(m) = &self.0 else { return };
        let n: usize = sources.into_iter().map(|c| c.secrets.len()).sum();
        m.vault_secrets.inc_by(n as u64);
    }

    /// The run's clients and targets are set up ([`Phase::Setup`] took `elapsed`); the run
    /// is ready (`/ready`) once each backend it uses (`vault`, `aws`) has answered once.
    pub fn setup_done(&self, vault: bool, aws: bool, elapsed: Duration) {
        let Some(m) = &self.0 else { return };
        self.phase(Phase::Setup, elapsed);
        let mut bits = SETUP_DONE;
        if vault {
            bits |= NEEDS_VAULT;
        }
        if aws {
            bits |= NEEDS_AWS;
        }
        m.ready.fetch_or(bits, Ordering::Relaxed);
    }

    /// `Ok` when the run is ready (`/ready` answers 200), else what it waits for.
    pub fn readiness(&self) -> Result<(), String> {
        let Some(m) = &self.0 else {
            return Err("metrics are off".into());
        };
        let bits = m.ready.load(Ordering::Relaxed);
        if bits & SETUP_DONE == 0 {
            return Err(
                "connecting to the backends (Vault login, AWS configuration, targets)".into(),
            );
        }
        let mut waiting = Vec::new();
        if bits & NEEDS_VAULT != 0 && bits & VAULT_ANSWERED == 0 {
            waiting.push("Vault");
        }
        if bits & NEEDS_AWS != 0 && bits & AWS_ANSWERED == 0 {
            waiting.push("AWS");
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!("waiting for {} to answer", waiting.join(" and ")))
        }
    }

    /// The run ended: `secretsync_last_run_success`, and on success
    /// `secretsync_last_success_timestamp_seconds`; [`Phase::Total`] took `elapsed`.
    pub fn run_finished(&self, succeeded: bool, elapsed: Duration, now: SystemTime) {
        let Some(m) = &self.0 else { return };
        self.phase(Phase::Total, elapsed);
        m.last_run_success.set(i64::from(succeeded));
        // Registered only now: a scrape while the run goes on shows neither (a 0 would claim
        // a failure). Registering twice is refused, and that is fine.
        let _ = m.registry.register(Box::new(m.last_run_success.clone()));
        if succeeded {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            m.last_success.set(secs);
            let _ = m.registry.register(Box::new(m.last_success.clone()));
        }
    }

    /// A target's plan, as shown (`secretsync_planned_changes`).
    pub fn planned(&self, target: &str, plan: &secretsync_core::diff::TargetPlan) {
        let Some(m) = &self.0 else { return };
        let c = plan.counts();
        for (kind, n) in [
            ("add", c.added),
            ("modify", c.modified),
            ("delete", c.deleted),
            ("unchanged", c.unchanged),
            ("skipped", c.skipped),
        ] {
            m.planned.with_label_values(&[target, kind]).set(n as i64);
        }
    }

    /// A target is done: what its apply wrote, synced and rolled back, and whether (why) it
    /// failed.
    pub fn target_finished(&self, t: &TargetOutcome) {
        let Some(m) = &self.0 else { return };
        let name = t.name.as_str();
        if let Some(r) = &t.report {
            for (kind, n) in [
                ("created", r.created),
                ("updated", r.updated),
                ("deleted", r.deleted),
                ("retagged", r.retagged),
            ] {
                m.changes.with_label_values(&[name, kind]).inc_by(n as u64);
            }
            m.rolled_back
                .with_label_values(&[name])
                .inc_by(r.rolled_back as u64);
            let written = t.plan.as_ref().map_or(0, |p| {
                p.changes
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.kind,
                            secretsync_core::diff::ChangeKind::Added
                                | secretsync_core::diff::ChangeKind::Modified
                        ) && r.left_changed.contains(&c.name)
                    })
                    .count()
            });
            m.synced.with_label_values(&[name]).inc_by(written as u64);
        } else {
            // Present (at 0) for every target that ran, so a rate over it is defined.
            m.synced.with_label_values(&[name]).inc_by(0);
        }
        if let Some(reason) = failure_reason(t) {
            m.failures.with_label_values(&[name, reason]).inc();
        }
    }

    /// A [`Reporter`] that records plans and results here and passes everything on to
    /// `inner`.
    pub fn reporting<'a>(&self, inner: &'a mut dyn Reporter) -> Reporting<'a> {
        Reporting {
            inner,
            metrics: self.clone(),
        }
    }
}

impl Observer for Metrics {
    fn attempt(&self, a: &Attempt<'_>) {
        let Some(m) = &self.0 else { return };
        let secs = a.elapsed.as_secs_f64();
        let outcome = a.outcome.label();
        let (backend, answered) = match a.endpoint.backend {
            Backend::Vault => {
                let op = a.operation;
                m.vault_duration.with_label_values(&[op]).observe(secs);
                m.vault_requests.with_label_values(&[op, outcome]).inc();
                if a.outcome.is_error() {
                    m.vault_errors.with_label_values(&[op, outcome]).inc();
                }
                ("vault", VAULT_ANSWERED)
            }
            Backend::Aws => {
                let labels = [a.endpoint.service.as_str(), a.operation];
                m.aws_duration.with_label_values(&labels).observe(secs);
                m.aws_requests
                    .with_label_values(&[labels[0], labels[1], outcome])
                    .inc();
                if a.outcome.is_error() {
                    m.aws_errors
                        .with_label_values(&[labels[0], labels[1], outcome])
                        .inc();
                }
                if a.pagination {
                    m.aws_pagination.with_label_values(&labels).inc();
                }
                ("aws", AWS_ANSWERED)
            }
            b @ (Backend::Gcp | Backend::Azure | Backend::Webhook | Backend::Plugin) => {
                let labels = [b.label(), a.operation];
                m.dest_duration.with_label_values(&labels).observe(secs);
                m.dest_requests
                    .with_label_values(&[labels[0], labels[1], outcome])
                    .inc();
                if a.outcome.is_error() {
                    m.dest_errors
                        .with_label_values(&[labels[0], labels[1], outcome])
                        .inc();
                }
                // `/ready` waits for Vault and AWS only.
                (b.label(), 0)
            }
        };
        if a.outcome == Outcome::Throttled {
            m.throttled.with_label_values(&[backend]).inc();
        }
        // An answer (even a refusal or throttling) shows the backend is reachable.
        if a.outcome != Outcome::Failed && m.ready.load(Ordering::Relaxed) & answered == 0 {
            m.ready.fetch_or(answered, Ordering::Relaxed);
        }
    }
}

/// A [`Reporter`] that records into [`Metrics`] and passes everything on.
pub struct Reporting<'a> {
    inner: &'a mut dyn Reporter,
    metrics: Metrics,
}

impl Reporter for Reporting<'_> {
    fn merged(
        &mut self,
        desired: &std::collections::BTreeMap<String, Collected>,
        selected: &[String],
    ) {
        self.inner.merged(desired, selected);
    }
    fn stored(&mut self, location: &str, bundle: &str, stats: crate::store::WriteStats) {
        self.inner.stored(location, bundle, stats);
    }
    fn planned(&mut self, target: &str, plan: &secretsync_core::diff::TargetPlan) {
        self.metrics.planned(target, plan);
        self.inner.planned(target, plan);
    }
    fn finished(&mut self, outcome: &TargetOutcome) {
        self.metrics.target_finished(outcome);
        self.inner.finished(outcome);
    }
    fn needs_values(&self) -> bool {
        self.inner.needs_values()
    }
    fn provenance(&mut self, provenance: secretsync_core::explain::Provenance) {
        self.inner.provenance(provenance);
    }
}

#[cfg(test)]
mod tests;
