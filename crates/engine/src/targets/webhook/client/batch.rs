//! `batch_size` > 1: the changes go in POSTs of up to `batch_size` of them (and at most
//! [`MAX_BATCH_BYTES`] of body), `{"secrets": [item, …]}`, each item the body a change sends
//! alone plus its own `delivery` id, so a receiver can dedupe item by item. The batch is signed
//! as one body and has an idempotency key of its own, derived from its items' ids (a re-run
//! that sends the same batch again sends the same key).
//!
//! Like the one-by-one apply ([`apply::run`]): writes first, then deletions, and only when every
//! write was delivered; paced by `writes_per_second` (here: POSTs per second), one POST at a
//! time; a failure or a signal stops before the next POST. A POST cannot be unsent: what was
//! delivered stays recorded and is reported as left written, and a failed batch is recorded as
//! not delivered, item by item (the next run sends it again, with the same item ids).

use secretsync_core::diff::{ChangeKind, SecretChange, TargetPlan};
use secretsync_core::targets::webhook::MAX_BATCH_BYTES;
use tracing::{info, warn};
use zeroize::{Zeroize, Zeroizing};

use super::{Delivery, Done, Writer, delivery_id, error};
use crate::error::{Error, ErrorKind};
use crate::targets::ApplyReport;
use crate::targets::support::Pacer;
use crate::targets::support::apply::{self, Apply, Counted, Pace};

/// One item ready to go: its bytes (a change's hold the value: wiped when dropped) and what it
/// records.
struct Item {
    bytes: Zeroizing<Vec<u8>>,
    delivery: Delivery,
}

impl Writer<'_> {
    /// Applies `plan` in batches of `batch_size` (the module docs).
    pub(super) async fn run_batches(&self, plan: &TargetPlan, pace: Pace) -> ApplyReport {
        let name = self.target.name.as_str();
        if let Some(refused) = apply::refused(plan) {
            return refused;
        }
        let mut report = ApplyReport::default();
        let pacer = Pacer::new(pace.writes_per_second);
        let mut done: Vec<Done> = Vec::new();
        let writes: Vec<&SecretChange> = plan
            .changes
            .iter()
            .filter(|c| matches!(c.kind, ChangeKind::Added | ChangeKind::Modified) || c.retag)
            .collect();
        let deletions: Vec<&SecretChange> = plan
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .collect();
        let mut failure = self.phase(&writes, false, &pacer, &mut done).await;
        if failure.is_none() {
            failure = self.phase(&deletions, true, &pacer, &mut done).await;
        }
        for d in &done {
            match self.counted(d) {
                Counted::Created => report.created += 1,
                Counted::Updated => report.updated += 1,
                Counted::Retagged => report.retagged += 1,
                Counted::Deleted => report.deleted += 1,
            }
        }
        report.left_changed = done.iter().map(|d| d.name().to_string()).collect();
        match failure {
            Some(Stop::Cancelled) => apply::set_cancelled(&mut report, self.cancel),
            Some(Stop::Failed(e)) => {
                e.log_for_target(name, "a batch was not delivered; the apply stops");
                report.failure_kind = Some(e.failure_kind());
                report.failure = Some(e.message);
            }
            None => {
                info!(target_name = %name, created = report.created, updated = report.updated, deleted = report.deleted, "applied");
            }
        }
        if report.failure.is_some() {
            if !done.is_empty() {
                warn!(target_name = %name, applied = done.len(), "the apply stopped early; what was delivered cannot be undone");
            }
            report.rollback_failures = done
                .iter()
                .rev()
                .map(|d| format!("{}: {}", d.name(), d.not_undone()))
                .collect();
        }
        report.left_changed.sort();
        report.left_changed.dedup();
        report
    }

    /// Sends `changes` (deletions when `deleting`) in batches; what was delivered goes to
    /// `done`. `Some`: why it stopped before the end.
    async fn phase(
        &self,
        changes: &[&SecretChange],
        deleting: bool,
        pacer: &Pacer,
        done: &mut Vec<Done>,
    ) -> Option<Stop> {
        let max = self.target.settings.batch_size.max(1) as usize;
        let mut pending: Vec<Item> = Vec::new();
        let mut bytes = WRAPPER;
        for c in changes {
            let delivery = if deleting {
                self.deletion(c)
            } else {
                match self.change(c) {
                    Ok(d) => d,
                    Err(e) => return Some(Stop::Failed(e)),
                }
            };
            let item = match item(delivery) {
                Ok(i) => i,
                Err(e) => return Some(Stop::Failed(e)),
            };
            if !pending.is_empty()
                && (pending.len() == max || bytes + item.bytes.len() + 1 > MAX_BATCH_BYTES)
            {
                if let Some(stop) = self.send(std::mem::take(&mut pending), pacer, done).await {
                    return Some(stop);
                }
                bytes = WRAPPER;
            }
            bytes += item.bytes.len() + 1;
            pending.push(item);
        }
        if pending.is_empty() {
            return None;
        }
        self.send(pending, pacer, done).await
    }

    /// POSTs one batch; on success records every item of it.
    async fn send(&self, items: Vec<Item>, pacer: &Pacer, done: &mut Vec<Done>) -> Option<Stop> {
        if self.cancel.is_cancelled() {
            return Some(Stop::Cancelled);
        }
        pacer.wait().await;
        if self.cancel.is_cancelled() {
            return Some(Stop::Cancelled);
        }
        let t = self.target;
        let ids: Vec<&str> = items.iter().map(|i| i.delivery.id.as_str()).collect();
        let mut parts = vec!["batch"];
        parts.extend(&ids);
        let id = delivery_id(&t.owner, &t.name, &self.epoch, &parts);
        let mut body =
            Vec::with_capacity(items.iter().map(|i| i.bytes.len() + 1).sum::<usize>() + 16);
        body.extend_from_slice(br#"{"secrets":["#);
        for (n, i) in items.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&i.bytes);
        }
        body.extend_from_slice(b"]}");
        let sent = t.post(&body, &id, "secrets_changed", self.cancel).await;
        body.zeroize();
        if let Err(u) = sent {
            let names: Vec<&str> = items.iter().map(|i| i.delivery.done.name()).collect();
            return Some(Stop::Failed(error::undelivered_batch(
                &u,
                &names,
                &self.host(),
            )));
        }
        for i in items {
            done.push(self.delivered(i.delivery));
        }
        None
    }
}

/// The bytes of a body around its items: `{"secrets":[` and `]}`.
const WRAPPER: usize = 14;

/// Why a batched apply stopped.
enum Stop {
    Cancelled,
    Failed(Error),
}

/// `delivery`'s item: its JSON with its `delivery` id, as bytes.
fn item(mut delivery: Delivery) -> Result<Item, Error> {
    delivery
        .json
        .insert("delivery".into(), delivery.id.clone().into());
    let bytes = Zeroizing::new(
        serde_json::to_vec(&delivery.json)
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
    );
    // The value now lives in the bytes (wiped with the item); the JSON copy goes.
    delivery.json.clear();
    Ok(Item { bytes, delivery })
}
