//! `json`: one versioned document (schema in `docs/diff-json-schema.md`).

use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Value, json};

use super::{RenderOptions, Status, TargetDiff, applied_totals, listed, totals};

/// Schema version of the JSON document.
pub const SCHEMA_VERSION: u32 = 1;

/// One listed change of a target.
fn change(
    d: &TargetDiff,
    c: &crate::diff::SecretChange,
    opts: &RenderOptions,
    provenance: Option<&crate::explain::Provenance>,
) -> Value {
    let show = |v: &Option<crate::secret::SecretValue>| {
        v.as_ref().map(|v| opts.policy.display_object(v.expose()))
    };
    let mut v = json!({
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
    });
    // `--provenance`: which layer each key of a written value comes from (labels, no values).
    if let Some(p) = provenance
        && matches!(
            c.kind,
            crate::diff::ChangeKind::Added | crate::diff::ChangeKind::Modified
        )
        && let Value::Object(m) = &mut v
    {
        m.insert(
            "provenance".into(),
            p.secret_json(&d.plan.target, &c.path)
                .unwrap_or(Value::Null),
        );
    }
    v
}

fn target(d: &TargetDiff, opts: &RenderOptions) -> Value {
    let c = d.plan.counts();
    json!({
        "target": d.plan.target,
        "summary": {"added": c.added, "modified": c.modified, "deleted": c.deleted, "unchanged": c.unchanged, "skipped": c.skipped},
        "orphans_kept": d.plan.orphans_kept,
        "deletions_held": d.plan.deletions_held,
        "refused": d.plan.refused,
        "policy": d.plan.policy,
        "error": d.error,
        "failed": d.failed(),
        "not_started": d.not_started,
        "result": result(d, opts),
    })
}

/// The document, serialized as it is written: the small fields are built as values, the
/// targets and every change one at a time, so printing it costs no copy of the run (at
/// 100,000 changes the value tree alone was several hundred MB).
///
/// Keys are written in the order serde_json's (sorted) maps print them, so the streamed
/// document is byte for byte what printing [`document`] gives (a test holds the two equal).
pub struct Document<'a> {
    pub diffs: &'a [TargetDiff],
    pub opts: &'a RenderOptions,
    /// Run statistics the CLI adds: API calls to targets and stores, Vault requests.
    pub calls: Option<(u64, u64)>,
    /// `--provenance`: adds `provenance` to every added or modified change.
    pub provenance: Option<&'a crate::explain::Provenance>,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Changes<'b>(&'b Document<'b>);
        impl Serialize for Changes<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(None)?;
                for d in self.0.diffs {
                    for c in listed(&d.plan) {
                        seq.serialize_element(&change(d, c, self.0.opts, self.0.provenance))?;
                    }
                }
                seq.end()
            }
        }
        struct Targets<'b>(&'b Document<'b>);
        impl Serialize for Targets<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.diffs.len()))?;
                for d in self.0.diffs {
                    seq.serialize_element(&target(d, self.0.opts))?;
                }
                seq.end()
            }
        }
        let (diffs, opts) = (self.diffs, self.opts);
        let t = totals(diffs);
        let a = applied_totals(diffs);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "applied",
            &if opts.dry_run {
                Value::Null
            } else {
                json!({
                    "created": a.created,
                    "updated": a.updated,
                    "deleted": a.deleted,
                    "retagged": a.retagged,
                    "rolled_back": a.rolled_back,
                    "rollback_failures": a.rollback_failures,
                    "left_changed": a.left_changed,
                })
            },
        )?;
        if let Some((calls, _)) = self.calls {
            m.serialize_entry("aws_calls", &calls)?;
        }
        m.serialize_entry("changes", &Changes(self))?;
        m.serialize_entry("dry_run", &opts.dry_run)?;
        let statuses: serde_json::Map<String, Value> = Status::ALL
            .iter()
            .filter_map(|s| {
                a.statuses
                    .get(s)
                    .map(|n| (s.as_str().to_string(), json!(n)))
            })
            .collect();
        m.serialize_entry("statuses", &statuses)?;
        m.serialize_entry(
            "summary",
            &json!({"added": t.added, "modified": t.modified, "deleted": t.deleted, "unchanged": t.unchanged, "skipped": t.skipped}),
        )?;
        m.serialize_entry("targets", &Targets(self))?;
        if let Some((_, vault)) = self.calls {
            m.serialize_entry("vault_requests", &vault)?;
        }
        m.serialize_entry("version", &SCHEMA_VERSION)?;
        m.end()
    }
}

/// The document as a value (tests; printing streams [`Document`] instead).
pub fn document(diffs: &[TargetDiff], opts: &RenderOptions) -> Value {
    serde_json::to_value(Document {
        diffs,
        opts,
        calls: None,
        provenance: None,
    })
    .unwrap_or(Value::Null)
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

/// Writes the document (streamed) and a newline.
pub fn write(doc: &Document<'_>, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc).map_err(io::Error::other)?;
    writeln!(out)
}

pub fn finish(diffs: &[TargetDiff], opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    write(
        &Document {
            diffs,
            opts,
            calls: None,
            provenance: None,
        },
        out,
    )
}
