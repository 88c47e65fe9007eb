//! `json`: one versioned document (schema in `docs/diff-json-schema.md`).

use std::io::{self, Write};

use serde_json::{Value, json};

use super::{RenderOptions, Status, TargetDiff, applied_totals, listed, totals};

/// Schema version of the JSON document.
pub const SCHEMA_VERSION: u32 = 1;

/// The document as a value (the CLI adds run statistics before printing).
pub fn document(diffs: &[TargetDiff], opts: &RenderOptions) -> Value {
    let t = totals(diffs);
    let mut changes = Vec::new();
    for d in diffs {
        for c in listed(&d.plan) {
            let show = |v: &Option<crate::secret::SecretValue>| {
                v.as_ref().map(|v| opts.policy.display_object(v.expose()))
            };
            changes.push(json!({
                "target": d.plan.target,
                "path": c.path,
                "name": c.name,
                "type": c.kind,
                "keys": c.keys,
                "old_value": show(&c.old_value),
                "new_value": if matches!(c.kind, crate::diff::ChangeKind::Deleted | crate::diff::ChangeKind::Skipped) { Value::Null } else { show(&c.new_value).unwrap_or(Value::Null) },
                "old_version": c.old_version,
                "new_version": c.new_version,
                "old_version_number": c.old_numbered.as_ref().map(|n| n.number),
                "old_version_time": c.old_numbered.as_ref().and_then(|n| n.time.clone()),
                "new_version_number": c.new_numbered.as_ref().map(|n| n.number),
                "new_version_time": c.new_numbered.as_ref().and_then(|n| n.time.clone()),
                "reason": c.reason,
                "restore": c.restore,
                "adopt": c.adopt,
                "settings": c.settings,
                "pinned_version": c.pinned,
            }));
        }
    }
    let a = applied_totals(diffs);
    json!({
        "version": SCHEMA_VERSION,
        "dry_run": opts.dry_run,
        "summary": {"added": t.added, "modified": t.modified, "deleted": t.deleted, "unchanged": t.unchanged, "skipped": t.skipped},
        "applied": if opts.dry_run { Value::Null } else { json!({
            "created": a.created,
            "updated": a.updated,
            "deleted": a.deleted,
            "retagged": a.retagged,
            "rolled_back": a.rolled_back,
            "rollback_failures": a.rollback_failures,
            "left_changed": a.left_changed,
        }) },
        "statuses": Status::ALL.iter().filter_map(|s| a.statuses.get(s).map(|n| (s.as_str().to_string(), json!(n)))).collect::<serde_json::Map<_, _>>(),
        "targets": diffs.iter().map(|d| {
            let c = d.plan.counts();
            json!({
                "target": d.plan.target,
                "summary": {"added": c.added, "modified": c.modified, "deleted": c.deleted, "unchanged": c.unchanged, "skipped": c.skipped},
                "orphans_kept": d.plan.orphans_kept,
                "deletions_held": d.plan.deletions_held,
                "refused": d.plan.refused,
                "error": d.error,
                "failed": d.failed(),
                "not_started": d.not_started,
                "result": result(d, opts),
            })
        }).collect::<Vec<_>>(),
        "changes": changes,
    })
}

/// A target's `result`: how it ended. Counts are `null` in a dry run (nothing was attempted)
/// and numbers otherwise (zero when nothing was written).
fn result(d: &TargetDiff, opts: &RenderOptions) -> Value {
    let status = d.status();
    let r = d.report();
    let n = |v: usize| if opts.dry_run { Value::Null } else { json!(v) };
    json!({
        "status": status,
        "applied": status == Status::Applied,
        "created": n(r.created),
        "updated": n(r.updated),
        "deleted": n(r.deleted),
        "retagged": n(r.retagged),
        "rolled_back": n(r.rolled_back),
        "rollback_failures": if opts.dry_run { Value::Null } else { json!(r.rollback_failures) },
        "left_changed": if opts.dry_run { Value::Null } else { json!(r.left_changed) },
        "failure": d.failure(),
        "failure_kind": d.failure_kind(),
        "cancelled": r.cancelled,
        "warnings": if opts.dry_run { Value::Null } else { json!(r.warnings) },
        "aws_calls": d.aws_calls,
        "duration_ms": d.duration_ms,
    })
}

pub fn finish(diffs: &[TargetDiff], opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let doc = document(diffs, opts);
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&doc).map_err(io::Error::other)?
    )
}
