//! The apply, once for every target kind ([`run`]); a kind implements [`Apply`] with its backend
//! calls (write one change, delete one, undo one) and says how a completed change counts.
//!
//! The order is the same for every kind: writes (creates, updates, re-marks) run concurrently,
//! at most `concurrency` at once and paced to `writes_per_second`; no write starts after one
//! failed or after the run was cancelled. Deletions follow, one at a time, only once every write
//! succeeded; then a kind's finishing step ([`Apply::finish`]), likewise. On a failure or a
//! cancellation everything done is undone, newest first ([`Apply::undo`]), and the report says
//! what could not be.

use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::{StreamExt, stream};
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{ChangeKind, FailureKind, SecretChange, TargetPlan};
use tracing::{info, warn};

use super::Pacer;
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::targets::ApplyReport;

/// Warnings an apply collects without failing (a replica that failed), shared by concurrent
/// writes; reported sorted.
pub type Warnings = SyncMutex<Vec<String>>;

/// What the writes of one apply share.
pub struct Writes<'a> {
    /// Paces the writes: the apply waits for it before each change unless the kind paces its
    /// own calls ([`Apply::paces_each_call`]).
    pub pacer: &'a Pacer,
    pub warnings: &'a Warnings,
}

/// How fast an apply writes: at most `concurrency` changes at once, at most `writes_per_second`
/// write starts a second.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub concurrency: usize,
    pub writes_per_second: u32,
}

impl From<&TargetPolicy> for Pace {
    fn from(p: &TargetPolicy) -> Self {
        Pace {
            concurrency: p.concurrency,
            writes_per_second: p.writes_per_second,
        }
    }
}

/// How a completed change counts in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Created,
    Updated,
    /// Marks or settings rewritten, the value kept.
    Retagged,
    Deleted,
}

/// A change that failed: why, and what it did before failing that a rollback must undo
/// (`None`: nothing, or the kind undid it itself).
pub struct Failed<D> {
    pub error: Error,
    pub partial: Option<D>,
}

impl<D> From<Error> for Failed<D> {
    fn from(error: Error) -> Self {
        Failed {
            error,
            partial: None,
        }
    }
}

impl<D> Failed<D> {
    fn not_attempted(why: &str) -> Self {
        Error::new(ErrorKind::Cancelled, why).into()
    }
}

/// A target kind's half of the apply: its backend calls.
#[async_trait]
pub trait Apply: Send + Sync {
    /// One completed change (or, in [`Failed::partial`], the part of one that was done), and
    /// how to undo it.
    type Done: Send;

    /// Whether the kind waits for the pacer before each of its own calls (a change being
    /// several calls), instead of the apply waiting once per change.
    fn paces_each_call(&self) -> bool {
        false
    }
    /// Whether a change is written in the first phase (deletions come after).
    fn writes(&self, c: &SecretChange) -> bool {
        matches!(c.kind, ChangeKind::Added | ChangeKind::Modified) || c.retag
    }
    /// Creates, updates or re-marks one secret.
    async fn write(
        &self,
        c: &SecretChange,
        w: &Writes<'_>,
    ) -> Result<Self::Done, Failed<Self::Done>>;
    /// Deletes one orphan.
    async fn delete(
        &self,
        c: &SecretChange,
        w: &Writes<'_>,
    ) -> Result<Self::Done, Failed<Self::Done>>;
    fn counted(&self, d: &Self::Done) -> Counted;
    /// The name a completed change leaves changed (`left_changed`); `None` for nothing a user
    /// would call a change (marks fixed on an equal value).
    fn changed<'d>(&self, d: &'d Self::Done) -> Option<&'d str>;
    /// The backend version a completed change made current when it is not the one the plan
    /// chose (a stage moved back to an existing version): `(name, version)`.
    fn made_current<'d>(&self, _d: &'d Self::Done) -> Option<(&'d str, &'d str)> {
        None
    }
    /// The name a rollback of `d` reports; `None`: nothing to undo.
    fn undoable<'d>(&self, d: &'d Self::Done) -> Option<&'d str> {
        self.changed(d)
    }
    async fn undo(&self, d: Self::Done) -> Result<()>;
    /// Whether a completed change has a last step, taken once every write and deletion
    /// succeeded ([`Apply::finish`]).
    fn finishes(&self, _d: &Self::Done) -> bool {
        false
    }
    /// The last step of a completed change (one at a time, paced).
    async fn finish(&self, _d: &mut Self::Done) -> Result<()> {
        Ok(())
    }
    /// What a failure message says about where it happened.
    fn context(&self, e: Error) -> Error {
        e
    }
}

/// Records `e` as the apply's failure (message and kind) and logs it.
fn failed_with(report: &mut ApplyReport, target: &str, e: Error) {
    e.log_for_target(target, "a write failed; the apply stops");
    report.failure_kind = Some(e.failure_kind());
    report.failure = Some(e.message);
}

/// The report of a plan a deletion guard refused (nothing applied), if it was.
pub fn refused(plan: &TargetPlan) -> Option<ApplyReport> {
    plan.refused.as_ref().map(|refused| ApplyReport {
        failure: Some(refused.clone()),
        failure_kind: Some(FailureKind::Refused),
        ..ApplyReport::default()
    })
}

/// Marks `report` as stopped by `cancel` (a signal, a lost lease).
pub fn set_cancelled(report: &mut ApplyReport, cancel: &Cancel) {
    report.cancelled = true;
    report.failure_kind = Some(FailureKind::Cancelled);
    report.failure = Some(format!(
        "{} before every change was applied",
        cancel.reason().unwrap_or_else(|| "cancelled".into())
    ));
}

/// Applies `plan` to the target `name` through its kind's calls (`backend`): on a failed
/// write, or when `cancel` is set (a signal, a lost lease), stops starting writes, rolls back
/// what it did and reports it.
pub async fn run<A: Apply>(
    backend: &A,
    name: &str,
    pace: Pace,
    plan: &TargetPlan,
    cancel: &Cancel,
) -> ApplyReport {
    if let Some(refused) = refused(plan) {
        return refused;
    }
    let mut report = ApplyReport::default();
    let pacer = Pacer::new(pace.writes_per_second);
    let warnings = Warnings::default();
    let w = Writes {
        pacer: &pacer,
        warnings: &warnings,
    };
    let paced_here = !backend.paces_each_call();
    let failed = AtomicBool::new(false);
    let changes = &plan.changes;
    // Indices, not references: a stream of borrowed changes trips the `Send` check of the
    // `async_trait` future.
    let writes: Vec<usize> = (0..changes.len())
        .filter(|&i| backend.writes(&changes[i]))
        .collect();
    // Each result is taken as it comes (not collected first): at 100,000 writes a vector of
    // every result beside the records of what was done was a large part of the memory.
    let mut results = stream::iter(writes)
        .map(|i| {
            let (failed, w) = (&failed, &w);
            async move {
                let c = &changes[i];
                if failed.load(Ordering::Relaxed) || cancel.is_cancelled() {
                    return Err(Failed::not_attempted(
                        "not attempted after an earlier failure",
                    ));
                }
                if paced_here {
                    w.pacer.wait().await;
                    if cancel.is_cancelled() {
                        return Err(Failed::not_attempted("not attempted: cancelled"));
                    }
                }
                let r = backend.write(c, w).await;
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                r
            }
        })
        .buffer_unordered(pace.concurrency.max(1));
    let mut done = Vec::new();
    let mut partial = Vec::new();
    while let Some(r) = results.next().await {
        match r {
            Ok(d) => {
                match backend.counted(&d) {
                    Counted::Created => report.created += 1,
                    Counted::Updated => report.updated += 1,
                    Counted::Retagged => report.retagged += 1,
                    Counted::Deleted => report.deleted += 1,
                }
                done.push(d);
            }
            Err(f) => {
                if f.error.kind != ErrorKind::Cancelled && report.failure.is_none() {
                    failed_with(&mut report, name, backend.context(f.error));
                }
                partial.extend(f.partial);
            }
        }
    }
    drop(results);
    let cancelled = |report: &mut ApplyReport| {
        if cancel.is_cancelled() && report.failure.is_none() {
            set_cancelled(report, cancel);
        }
    };
    cancelled(&mut report);
    if report.failure.is_none() {
        for c in plan
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
        {
            if paced_here {
                pacer.wait().await;
            }
            cancelled(&mut report);
            if report.failure.is_some() {
                break;
            }
            match backend.delete(c, &w).await {
                Ok(d) => {
                    report.deleted += 1;
                    done.push(d);
                }
                Err(f) => {
                    failed_with(&mut report, name, backend.context(f.error));
                    partial.extend(f.partial);
                    break;
                }
            }
        }
    }
    // Only once every write and deletion was made is a last step taken (`vault_kv2` destroys
    // what it deleted recoverably), so a failure before this point loses nothing.
    if report.failure.is_none() {
        for d in done.iter_mut().filter(|d| backend.finishes(d)) {
            cancelled(&mut report);
            if report.failure.is_some() {
                break;
            }
            pacer.wait().await;
            if let Err(e) = backend.finish(d).await {
                failed_with(&mut report, name, backend.context(e));
                break;
            }
        }
    }
    if report.failure.is_some() {
        warn!(target_name = %name, applied = done.len(), "the apply stopped early; rolling the target back");
        rollback(backend, partial, done, &mut report, cancel).await;
    } else {
        report.left_changed = done
            .iter()
            .filter_map(|d| backend.changed(d))
            .map(str::to_string)
            .collect();
        report.versions = done
            .iter()
            .filter_map(|d| backend.made_current(d))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        report.warnings = warnings.into_inner().unwrap_or_else(|e| e.into_inner());
        report.warnings.sort();
        info!(target_name = %name, created = report.created, updated = report.updated, deleted = report.deleted, "applied");
    }
    report.left_changed.sort();
    report.left_changed.dedup();
    report
}

/// Undoes what was written, newest first: the failed changes' partial writes (they came last;
/// not counted as rolled back, as they were never complete), then the completed ones in
/// reverse order. After a second signal the rollback is bounded (`cancel.deadline()`): what it
/// could not undo in time is reported as left written, like what failed to undo.
async fn rollback<A: Apply>(
    backend: &A,
    partial: Vec<A::Done>,
    done: Vec<A::Done>,
    report: &mut ApplyReport,
    cancel: &Cancel,
) {
    let all = partial
        .into_iter()
        .map(|d| (d, false))
        .chain(done.into_iter().rev().map(|d| (d, true)));
    for (d, counted) in all {
        let Some(label) = backend.undoable(&d).map(str::to_string) else {
            continue;
        };
        let undone = match cancel.deadline() {
            Some(deadline) => tokio::time::timeout_at(deadline, backend.undo(d))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Cancelled,
                        "not rolled back: the rollback was cut short by a second signal",
                    ))
                }),
            None => backend.undo(d).await,
        };
        match undone {
            Ok(()) if counted => report.rolled_back += 1,
            Ok(()) => {}
            Err(e) => {
                report.rollback_failures.push(format!("{label}: {e}"));
                report.left_changed.push(label);
            }
        }
    }
}
