//! Progress of a long run, on stderr: on a terminal a live line (secrets read, targets planned,
//! writes applied, with rate and ETA); otherwise (CI, `--output json`, stderr redirected) a
//! one-line `progress` log at info level every `--progress-interval`.
//!
//! It learns what happens from the two seams the engine already has: the call observers
//! ([`Observer`]: Vault reads, writes to targets) and the reporter ([`Reporter`]: targets
//! planned and finished). It never sees a path or a value.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secretsync_core::diff::TargetPlan;
use secretsync_core::secret::Collected;
use secretsync_engine::observe::{Attempt, Backend, Observer, Outcome};
use secretsync_engine::pipeline::{Reporter, TargetOutcome};
use tracing::info;

/// Operations that change a target (AWS and Vault names): what "writes applied" counts.
const WRITES: [&str; 19] = [
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "TagResource",
    "UntagResource",
    "UpdateSecretVersionStage",
    "ReplicateSecretToRegions",
    "RemoveRegionsFromReplication",
    "PutParameter",
    "DeleteParameters",
    "AddTagsToResource",
    "RemoveTagsFromResource",
    "kv.write",
    "kv.metadata.write",
    "kv.metadata.delete",
    "kv.delete",
    "kv.undelete",
];

#[derive(Default)]
struct Counts {
    secrets_read: AtomicU64,
    writes: AtomicU64,
}

#[derive(Default)]
struct Phase {
    /// `reading Vault`, `planning`, `applying <target>`, `done`.
    name: String,
    targets_total: usize,
    targets_done: usize,
    /// Changes planned for the target being applied, and the writes seen when it started.
    planned_changes: usize,
    writes_at_start: u64,
    started: Option<Instant>,
    /// When the Vault read ended (its rate is over the read alone).
    read_done: Option<Instant>,
}

/// Shared by the observer, the reporter wrapper and the ticker.
#[derive(Clone)]
pub struct Progress {
    counts: Arc<Counts>,
    phase: Arc<Mutex<Phase>>,
    /// The source Vault's address: reads from a `vault_kv2` target's Vault are not "secrets
    /// read".
    source_vault: Option<String>,
    started: Instant,
}

impl Progress {
    pub fn new(source_vault: Option<String>, targets: usize) -> Progress {
        Progress {
            counts: Arc::default(),
            phase: Arc::new(Mutex::new(Phase {
                name: "reading Vault".into(),
                targets_total: targets,
                ..Phase::default()
            })),
            source_vault,
            started: Instant::now(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The line shown: what is happening, counts, rate and (while applying) ETA.
    pub fn line(&self) -> String {
        let read = self.counts.secrets_read.load(Ordering::Relaxed);
        let writes = self.counts.writes.load(Ordering::Relaxed);
        let p = self.phase();
        let elapsed = p
            .read_done
            .unwrap_or_else(Instant::now)
            .duration_since(self.started)
            .as_secs_f64()
            .max(0.001);
        let mut line = format!(
            "{}: {read} secrets read ({:.0}/s), {}/{} targets done, {writes} writes",
            p.name,
            read as f64 / elapsed,
            p.targets_done,
            p.targets_total
        );
        if let (Some(since), true) = (p.started, p.planned_changes > 0) {
            let done = writes.saturating_sub(p.writes_at_start);
            let secs = since.elapsed().as_secs_f64().max(0.001);
            let rate = done as f64 / secs;
            line.push_str(&format!(
                " ({done} for {} planned changes, {rate:.1}/s",
                p.planned_changes
            ));
            if rate > 0.0 && (done as usize) < p.planned_changes {
                let left = (p.planned_changes - done as usize) as f64 / rate;
                line.push_str(&format!(", ETA {}", eta(Duration::from_secs_f64(left))));
            }
            line.push(')');
        }
        line
    }

    /// Shows progress until the returned guard is dropped: a live line when `live`, else a
    /// log line every `every`.
    pub fn show(&self, live: bool, every: Duration) -> Shown {
        let me = self.clone();
        let bar = live.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            *LIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        });
        let ticking = bar.clone();
        let task = tokio::spawn(async move {
            let tick = if ticking.is_some() {
                Duration::from_millis(200)
            } else {
                every.max(Duration::from_millis(100))
            };
            loop {
                tokio::time::sleep(tick).await;
                match &ticking {
                    Some(bar) => {
                        bar.set_message(me.line());
                        bar.tick();
                    }
                    None => info!(progress = %me.line(), "progress"),
                }
            }
        });
        Shown { task, bar }
    }
}

/// `1m05s`, `42s`.
fn eta(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The live line being shown, if any: log lines are written around it ([`Stderr`]).
static LIVE: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Where log lines go: stderr, with the live progress line (if any) lifted out of the way
/// while a line is written, so the two never garble each other.
#[derive(Clone, Copy, Default)]
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match live {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)),
            None => std::io::stderr().write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

/// Progress being shown; dropping it stops and clears it.
pub struct Shown {
    task: tokio::task::JoinHandle<()>,
    bar: Option<indicatif::ProgressBar>,
}

impl Drop for Shown {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            LIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn attempt(&self, a: &Attempt<'_>) {
        if a.outcome != Outcome::Ok {
            return;
        }
        if a.endpoint.backend == Backend::Vault
            && a.operation == "kv.read"
            && self.source_vault.as_deref() == Some(a.endpoint.scope.as_str())
        {
            self.counts.secrets_read.fetch_add(1, Ordering::Relaxed);
        } else if WRITES.contains(&a.operation) {
            self.counts.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A reporter that tells [`Progress`] what the run is doing, then passes everything on.
pub struct Reporting<'a> {
    pub inner: &'a mut dyn Reporter,
    pub progress: Progress,
}

impl Reporter for Reporting<'_> {
    fn merged(&mut self, desired: &BTreeMap<String, Collected>, selected: &[String]) {
        {
            let mut p = self.progress.phase();
            p.name = "planning".into();
            p.read_done = Some(Instant::now());
        }
        self.inner.merged(desired, selected);
    }
    fn provenance(&mut self, provenance: secretsync_core::explain::Provenance) {
        self.inner.provenance(provenance);
    }
    fn stored(
        &mut self,
        location: &str,
        bundle: &str,
        stats: secretsync_engine::store::WriteStats,
    ) {
        self.inner.stored(location, bundle, stats);
    }
    fn planned(&mut self, target: &str, plan: &TargetPlan) {
        {
            let mut p = self.progress.phase();
            p.name = format!("applying {target}");
            p.planned_changes = plan.counts().changes();
            p.writes_at_start = self.progress.counts.writes.load(Ordering::Relaxed);
            p.started = Some(Instant::now());
        }
        self.inner.planned(target, plan);
    }
    fn finished(&mut self, outcome: &TargetOutcome) {
        {
            let mut p = self.progress.phase();
            p.targets_done += 1;
            p.name = if p.targets_done >= p.targets_total {
                "done".into()
            } else {
                "planning".into()
            };
            p.planned_changes = 0;
            p.started = None;
        }
        self.inner.finished(outcome);
    }
    fn needs_values(&self) -> bool {
        self.inner.needs_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secretsync_engine::observe::Endpoint;

    fn attempt(progress: &Progress, endpoint: &Endpoint, op: &str, outcome: Outcome) {
        progress.attempt(&Attempt {
            endpoint,
            operation: op,
            request_id: "r",
            backend_request_id: None,
            attempt: 1,
            elapsed: Duration::from_millis(1),
            outcome,
            pagination: false,
        });
    }

    #[test]
    fn counts_source_reads_and_successful_writes_only() {
        let p = Progress::new(Some("http://src:8200".into()), 2);
        let src = Endpoint::vault("http://src:8200");
        let other = Endpoint::vault("http://dest:8200");
        let aws = Endpoint::aws("secretsmanager", "default", "us-east-1");
        attempt(&p, &src, "kv.read", Outcome::Ok);
        attempt(&p, &src, "kv.read", Outcome::Ok);
        attempt(&p, &src, "kv.read", Outcome::Failed);
        attempt(&p, &other, "kv.read", Outcome::Ok);
        attempt(&p, &src, "kv.list", Outcome::Ok);
        attempt(&p, &aws, "ListSecrets", Outcome::Ok);
        attempt(&p, &aws, "PutSecretValue", Outcome::Ok);
        attempt(&p, &aws, "PutSecretValue", Outcome::Throttled);
        attempt(&p, &other, "kv.write", Outcome::Ok);
        let line = p.line();
        assert!(
            line.starts_with("reading Vault: 2 secrets read ("),
            "{line}"
        );
        assert!(line.contains("0/2 targets done, 2 writes"), "{line}");
        assert!(!line.contains("ETA"), "{line}");
    }

    #[test]
    fn eta_reads_like_a_duration() {
        assert_eq!(eta(Duration::from_secs(42)), "42s");
        assert_eq!(eta(Duration::from_secs(65)), "1m05s");
    }
}
