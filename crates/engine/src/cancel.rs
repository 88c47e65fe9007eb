//! Cancellation: a signal (Ctrl-C, SIGTERM) or a lost lease asks the run to stop. The first
//! request stops new work (no new writes, no new targets, the Vault read ends); the target
//! being applied is rolled back. A second signal bounds that rollback to
//! [`HURRY_BUDGET`]; what it could not undo in time is reported as left written.
//!
//! A [`Cancel`] may have a parent: a target's token (cancelled when its lease is lost) is
//! cancelled whenever the run's is.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long a hurried rollback may take in all.
pub const HURRY_BUDGET: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
pub struct Cancel {
    /// 0: running; 1: stop requested; 2: hurry (second signal).
    level: AtomicU8,
    reason: Mutex<Option<String>>,
    deadline: Mutex<Option<Instant>>,
    parent: Option<Arc<Cancel>>,
}

impl Cancel {
    pub fn new() -> Arc<Self> {
        Arc::new(Cancel::default())
    }

    /// A token cancelled by itself or by `parent`.
    pub fn child(parent: &Arc<Cancel>) -> Arc<Self> {
        Arc::new(Cancel {
            parent: Some(parent.clone()),
            ..Default::default()
        })
    }

    /// Asks to stop; the first reason given is kept for the report.
    pub fn cancel(&self, reason: impl Into<String>) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason.into());
        }
        let _ = self
            .level
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// A second request: rollback continues but within [`HURRY_BUDGET`].
    pub fn hurry(&self) {
        self.cancel("cancelled");
        self.level.store(2, Ordering::SeqCst);
        let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            *d = Some(Instant::now() + HURRY_BUDGET);
        }
    }

    fn level(&self) -> u8 {
        let own = self.level.load(Ordering::SeqCst);
        own.max(self.parent.as_ref().map_or(0, |p| p.level()))
    }

    pub fn is_cancelled(&self) -> bool {
        self.level() >= 1
    }

    /// Why it was cancelled (the first reason, own before the parent's).
    pub fn reason(&self) -> Option<String> {
        let own = self
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        own.or_else(|| self.parent.as_ref().and_then(|p| p.reason()))
    }

    /// The time by which a hurried rollback must end, if hurried.
    pub fn deadline(&self) -> Option<Instant> {
        let own = *self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        match (own, self.parent.as_ref().and_then(|p| p.deadline())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn children_follow_parents_and_keep_their_own_reason() {
        let run = Cancel::new();
        let target = Cancel::child(&run);
        assert!(!target.is_cancelled());
        target.cancel("lease lost");
        assert!(target.is_cancelled() && !run.is_cancelled());
        assert_eq!(target.reason().as_deref(), Some("lease lost"));
        let other = Cancel::child(&run);
        run.cancel("SIGTERM");
        assert!(other.is_cancelled());
        assert_eq!(other.reason().as_deref(), Some("SIGTERM"));
        assert!(other.deadline().is_none());
        run.hurry();
        assert!(other.deadline().is_some());
    }
}
