//! `text`: a section per target (names, versions, changed keys with `--diff`), its result,
//! then totals.

use std::io::{self, Write};

use serde_json::Value;

use super::{
    RenderOptions, Status, TargetDiff, applied_totals, listed, one_line, paint, short_version,
    sign, totals,
};
use crate::diff::{ChangeKind, KeyChangeKind, SecretChange, TargetPlan};

/// The value at a dotted key path.
pub(crate) fn at_path<'a>(
    v: Option<&'a crate::secret::SecretValue>,
    path: &str,
) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = v?.expose().get(first)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

pub(crate) fn headline(plan: &TargetPlan) -> String {
    let c = plan.counts();
    format!(
        "Plan for target {}: {} to add, {} to modify, {} to delete, {} unchanged, {} skipped",
        plan.target, c.added, c.modified, c.deleted, c.unchanged, c.skipped
    )
}

/// `v5 (2026-12-01T10:00:00Z) → v6`: the history's numbers of a change, when history is on.
pub(crate) fn numbered(c: &SecretChange) -> Option<String> {
    let show = |n: &crate::diff::Numbered| match &n.time {
        Some(t) => format!("v{} ({t})", n.number),
        None => format!("v{}", n.number),
    };
    let new = c.new_numbered.as_ref().map(show);
    let old = c.old_numbered.as_ref().map(show);
    match (c.kind, old, new) {
        (ChangeKind::Deleted, Some(o), Some(n)) => Some(format!("{o} → deleted as {n}")),
        (_, Some(o), Some(n)) => Some(format!("{o} → {n}")),
        (_, None, Some(n)) => Some(format!("new {n}")),
        (_, Some(o), None) => Some(o),
        (_, None, None) => None,
    }
}

pub(crate) fn change_line(c: &SecretChange, opts: &RenderOptions) -> String {
    let mut line = format!("{} {}", sign(c.kind), c.name);
    if let Some(n) = numbered(c)
        && matches!(
            c.kind,
            ChangeKind::Added | ChangeKind::Modified | ChangeKind::Deleted
        )
    {
        line.push_str(&format!(" ({n})"));
        return finish_line(line, c, opts);
    }
    match c.kind {
        ChangeKind::Added => match &c.new_version {
            Some(_) => line.push_str(&format!(" (new {})", short_version(&c.new_version))),
            None => line.push_str(" (new)"),
        },
        ChangeKind::Modified => line.push_str(&format!(
            " ({} → {})",
            short_version(&c.old_version),
            match &c.new_version {
                Some(_) => short_version(&c.new_version),
                None => "new version".into(),
            }
        )),
        ChangeKind::Deleted => line.push_str(&format!(" ({})", short_version(&c.old_version))),
        _ => {}
    }
    finish_line(line, c, opts)
}

/// What a change line says after its versions.
fn finish_line(mut line: String, c: &SecretChange, opts: &RenderOptions) -> String {
    if c.restore {
        line.push_str(" (restore from pending deletion)");
    }
    if c.adopt {
        line.push_str(" (adopt)");
    }
    if c.retag {
        line.push_str(" (value matches; ownership tags fixed)");
    }
    if !c.settings.is_empty() {
        line.push_str(&format!(" (settings: {})", settings(&c.settings)));
    }
    if !opts.details && c.kind == ChangeKind::Modified && !c.keys.is_empty() {
        let keys: Vec<String> = c
            .keys
            .iter()
            .map(|k| format!("{}{}", key_sign(k.kind), k.key))
            .collect();
        line.push_str(&format!(" [keys: {}]", keys.join(", ")));
    }
    if let Some(r) = &c.reason {
        line.push_str(&format!(": {r}"));
    }
    paint(&line, c.kind, opts.color)
}

/// `description: "a" → "b", replica:eu-west-1: none → add (…)`.
pub(crate) fn settings(changes: &[crate::diff::SettingChange]) -> String {
    let show = |v: &Option<String>| match v {
        Some(v) => format!("{v:?}"),
        None => "none".into(),
    };
    changes
        .iter()
        .map(|s| {
            let mut t = format!("{}: {} → {}", s.setting, show(&s.old), show(&s.new));
            if let Some(n) = &s.note {
                t.push_str(&format!(" ({})", one_line(n)));
            }
            t
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn key_sign(k: KeyChangeKind) -> &'static str {
    match k {
        KeyChangeKind::Added => "+",
        KeyChangeKind::Removed => "-",
        KeyChangeKind::Changed => "~",
    }
}

pub fn target(plan: &TargetPlan, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", headline(plan))?;
    for c in listed(plan) {
        writeln!(out, "  {}", change_line(c, opts))?;
        if !opts.details {
            continue;
        }
        for k in &c.keys {
            let old = at_path(c.old_value.as_ref(), &k.key)
                .map(|v| opts.policy.display_inline(&k.key, v));
            let new = at_path(c.new_value.as_ref(), &k.key)
                .map(|v| opts.policy.display_inline(&k.key, v));
            let detail = match k.kind {
                KeyChangeKind::Added => format!("+ {}: {}", k.key, new.unwrap_or_default()),
                KeyChangeKind::Removed => format!("- {}: {}", k.key, old.unwrap_or_default()),
                KeyChangeKind::Changed => format!(
                    "~ {}: {} → {}",
                    k.key,
                    old.unwrap_or_default(),
                    new.unwrap_or_default()
                ),
            };
            writeln!(out, "      {detail}")?;
        }
    }
    notes(plan, out)
}

/// The lines under a target's changes: orphans kept, deletions held, refusal.
pub(crate) fn notes(plan: &TargetPlan, out: &mut dyn Write) -> io::Result<()> {
    if let Some(h) = &plan.deletions_held {
        writeln!(out, "  deletions held: {}", one_line(h))?;
        if !plan.orphans_kept.is_empty() {
            writeln!(
                out,
                "  {} managed secret(s) no longer desired, kept until every source is read completely: {}",
                plan.orphans_kept.len(),
                plan.orphans_kept.join(", ")
            )?;
        }
    } else if !plan.orphans_kept.is_empty() {
        writeln!(
            out,
            "  {} managed secret(s) no longer desired, kept because `delete_orphans` is off: {}",
            plan.orphans_kept.len(),
            plan.orphans_kept.join(", ")
        )?;
    }
    for f in &plan.policy.warnings {
        writeln!(
            out,
            "  policy warning ({}): {}",
            f.policy,
            one_line(&f.message)
        )?;
    }
    for f in &plan.policy.denied {
        writeln!(
            out,
            "  policy denied ({}): {}",
            f.policy,
            one_line(&f.message)
        )?;
    }
    if let Some(r) = &plan.refused {
        writeln!(out, "  refused: {}", one_line(r))?;
    }
    Ok(())
}

/// `created 1, updated 0, deleted 0, retagged 0`: what the apply wrote.
pub(crate) fn written(r: &crate::diff::ApplyReport) -> String {
    format!(
        "created {}, updated {}, deleted {}, retagged {}",
        r.created, r.updated, r.deleted, r.retagged
    )
}

/// How one target ended: what was written, rolled back and left changed, and why it failed.
pub fn result(d: &TargetDiff, _opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let t = &d.plan.target;
    let stats = format!(
        "{} API calls in {:.2}s",
        d.aws_calls,
        d.duration_ms as f64 / 1000.0
    );
    let r = d.report();
    let c = d.plan.counts();
    let status = d.status();
    match status {
        Status::Planned => writeln!(
            out,
            "Dry run for {t}: planned only, nothing written ({stats})"
        )?,
        Status::Applied => writeln!(
            out,
            "Result for {t}: {}, unchanged {}, skipped {}; {stats}",
            written(&r),
            c.unchanged,
            c.skipped
        )?,
        Status::RolledBack => writeln!(
            out,
            "Result for {t}: ROLLED BACK after a failure: {}, then rolled back {}; nothing left changed; {stats}",
            written(&r),
            r.rolled_back
        )?,
        Status::PartiallyApplied => writeln!(
            out,
            "Result for {t}: PARTIALLY APPLIED after a failure: {}, then rolled back {}, {} could not be; {} left changed; {stats}",
            written(&r),
            r.rolled_back,
            r.rollback_failures.len(),
            r.left_changed.len()
        )?,
        Status::Failed => writeln!(out, "Result for {t}: FAILED, nothing written; {stats}")?,
        Status::Refused => writeln!(
            out,
            "Result for {t}: REFUSED, nothing written ({}); {stats}",
            written(&r)
        )?,
        Status::NotStarted => writeln!(
            out,
            "Result for {t}: NOT STARTED (the run was cancelled before this target began), nothing written"
        )?,
    }
    // A refusal is printed with the plan, right above.
    if status != Status::Refused
        && let Some(f) = d.failure()
    {
        match d.failure_kind() {
            Some(k) => writeln!(out, "  failure ({k}): {}", one_line(f))?,
            None => writeln!(out, "  failure: {}", one_line(f))?,
        }
    }
    for rf in &r.rollback_failures {
        writeln!(out, "  NOT rolled back (left as written): {}", one_line(rf))?;
    }
    let left = d.left_after_failure();
    if !left.is_empty() {
        writeln!(out, "  left changed: {}", left.join(", "))?;
    }
    for w in &r.warnings {
        writeln!(out, "  warning: {}", one_line(w))?;
    }
    Ok(())
}

pub fn finish(diffs: &[TargetDiff], opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let t = totals(diffs);
    let a = applied_totals(diffs);
    let planned = format!(
        "{} to add, {} to modify, {} to delete, {} unchanged, {} skipped across {} target(s)",
        t.added,
        t.modified,
        t.deleted,
        t.unchanged,
        t.skipped,
        diffs.len(),
    );
    if opts.dry_run {
        return writeln!(
            out,
            "Planned total (dry run: nothing written): {planned}: {}",
            a.statuses_line()
        );
    }
    writeln!(out, "Planned total: {planned}")?;
    let mut line = format!(
        "Applied total: created {}, updated {}, deleted {}, retagged {}",
        a.created, a.updated, a.deleted, a.retagged
    );
    if a.rolled_back > 0 || a.rollback_failures > 0 {
        line.push_str(&format!(
            "; rolled back {}, {} could not be",
            a.rolled_back, a.rollback_failures
        ));
    }
    if a.left_changed > 0 {
        line.push_str(&format!(
            "; {} secret(s) left changed by failed applies",
            a.left_changed
        ));
    }
    writeln!(out, "{line}; targets: {}", a.statuses_line())
}
