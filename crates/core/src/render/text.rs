//! `text`: a section per target (names, versions, changed keys with `--diff`), then totals.

use std::io::{self, Write};

use serde_json::Value;

use super::{RenderOptions, TargetDiff, listed, paint, short_version, sign, totals};
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

pub(crate) fn change_line(c: &SecretChange, opts: &RenderOptions) -> String {
    let mut line = format!("{} {}", sign(c.kind), c.name);
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
    if c.restore {
        line.push_str(" (restore from pending deletion)");
    }
    if c.adopt {
        line.push_str(" (adopt)");
    }
    if c.retag {
        line.push_str(" (value matches; ownership tags fixed)");
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
    if !plan.orphans_kept.is_empty() {
        writeln!(
            out,
            "  {} managed secret(s) no longer desired, kept because `delete_orphans` is off: {}",
            plan.orphans_kept.len(),
            plan.orphans_kept.join(", ")
        )?;
    }
    if let Some(r) = &plan.refused {
        writeln!(out, "  refused: {r}")?;
    }
    Ok(())
}

pub fn finish(diffs: &[TargetDiff], opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let t = totals(diffs);
    let failed = diffs.iter().filter(|d| d.error.is_some()).count();
    writeln!(
        out,
        "Total{}: {} added, {} modified, {} deleted, {} unchanged, {} skipped across {} target(s){}",
        if opts.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        t.added,
        t.modified,
        t.deleted,
        t.unchanged,
        t.skipped,
        diffs.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    )
}
