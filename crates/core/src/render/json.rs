//! `json`: one versioned document (schema in `docs/diff-json-schema.md`).

use std::io::{self, Write};

use serde_json::{Value, json};

use super::{RenderOptions, TargetDiff, listed, totals};

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
                "reason": c.reason,
                "restore": c.restore,
                "adopt": c.adopt,
            }));
        }
    }
    json!({
        "version": SCHEMA_VERSION,
        "dry_run": opts.dry_run,
        "summary": {"added": t.added, "modified": t.modified, "deleted": t.deleted, "unchanged": t.unchanged, "skipped": t.skipped},
        "targets": diffs.iter().map(|d| {
            let c = d.plan.counts();
            json!({
                "target": d.plan.target,
                "summary": {"added": c.added, "modified": c.modified, "deleted": c.deleted, "unchanged": c.unchanged, "skipped": c.skipped},
                "orphans_kept": d.plan.orphans_kept,
                "refused": d.plan.refused,
                "error": d.error,
                "failed": d.error.is_some(),
            })
        }).collect::<Vec<_>>(),
        "changes": changes,
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
