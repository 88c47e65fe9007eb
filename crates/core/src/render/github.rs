//! `github`: workflow commands (a group per target's plan, notice/warning annotations, then one
//! annotation per target's result), plus the pieces the binary writes to `$GITHUB_OUTPUT`
//! ([`outputs`]) and `$GITHUB_STEP_SUMMARY` ([`step_summary`]). The annotations JSON document
//! is the `annotations` output. After an apply, counts are what was applied (and what was
//! rolled back); in a dry run they are the plan's.

use std::io::{self, Write};

use serde_json::json;

use super::text::key_sign;
use super::text::written;
use super::{RenderOptions, Status, TargetDiff, applied_totals, listed, one_line, totals};
use crate::diff::{ChangeKind, TargetPlan};

/// Escapes workflow-command data.
fn esc_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes workflow-command property values.
fn esc_prop(s: &str) -> String {
    esc_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn message(target: &str, c: &crate::diff::SecretChange) -> String {
    let mut m = format!(
        "{target}: {} {}",
        c.name,
        match c.kind {
            ChangeKind::Added => "will be added",
            ChangeKind::Modified => "will be modified",
            ChangeKind::Deleted => "will be deleted",
            ChangeKind::Skipped => "is skipped",
            ChangeKind::Unchanged if c.retag => "needs its ownership tags fixed",
            ChangeKind::Unchanged if c.reencrypts() => "will be re-encrypted under the new KMS key",
            ChangeKind::Unchanged => "needs its settings brought in line",
        }
    );
    if let Some(n) = super::text::numbered(c)
        && matches!(
            c.kind,
            ChangeKind::Added | ChangeKind::Modified | ChangeKind::Deleted
        )
    {
        m.push_str(&format!(" ({n})"));
    }
    if !c.settings.is_empty() {
        m.push_str(&format!(
            " (settings: {})",
            super::text::settings(&c.settings)
        ));
    }
    if !c.keys.is_empty() && c.kind == ChangeKind::Modified {
        let keys: Vec<String> = c
            .keys
            .iter()
            .map(|k| format!("{}{}", key_sign(k.kind), k.key))
            .collect();
        m.push_str(&format!(" (keys: {})", keys.join(", ")));
    }
    if let Some(r) = &c.reason {
        m.push_str(&format!(": {r}"));
    }
    m
}

fn level(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Deleted | ChangeKind::Skipped => "warning",
        _ => "notice",
    }
}

pub fn target(plan: &TargetPlan, _opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let c = plan.counts();
    writeln!(
        out,
        "::group::{}",
        esc_data(&format!(
            "secretsync plan for {}: +{} ~{} -{} ={} !{}",
            plan.target, c.added, c.modified, c.deleted, c.unchanged, c.skipped
        ))
    )?;
    for ch in listed(plan) {
        let title = format!(
            "secret {}",
            serde_json::to_value(ch.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        writeln!(
            out,
            "::{} title={}::{}",
            level(ch.kind),
            esc_prop(&title),
            esc_data(&message(&plan.target, ch))
        )?;
    }
    if let Some(h) = &plan.deletions_held {
        writeln!(
            out,
            "::warning title=deletions held::{}",
            esc_data(&held_message(plan, h))
        )?;
    }
    for f in &plan.policy.warnings {
        writeln!(
            out,
            "::warning title={}::{}",
            esc_prop(&format!("policy warning ({})", f.policy)),
            esc_data(&format!("{}: {}", plan.target, f.message))
        )?;
    }
    for f in &plan.policy.denied {
        writeln!(
            out,
            "::error title={}::{}",
            esc_prop(&format!("policy denied ({})", f.policy)),
            esc_data(&format!("{}: {}", plan.target, f.message))
        )?;
    }
    if let Some(r) = &plan.refused {
        writeln!(
            out,
            "::error title=target refused::{}",
            esc_data(&format!("{}: {r}", plan.target))
        )?;
    }
    writeln!(out, "::endgroup::")
}

fn held_message(plan: &TargetPlan, held: &str) -> String {
    let mut m = format!("{}: deletions held: {held}", plan.target);
    if !plan.orphans_kept.is_empty() {
        m.push_str(&format!(" (kept: {})", plan.orphans_kept.join(", ")));
    }
    m
}

/// The annotation for how a target ended (`None` for a clean plan or apply): level, title,
/// message.
fn result_annotation(d: &TargetDiff) -> Option<(&'static str, &'static str, String)> {
    let t = &d.plan.target;
    let r = d.report();
    let failure = d.failure().map(one_line).unwrap_or_default();
    let left = d.left_after_failure();
    Some(match d.status() {
        Status::Planned | Status::Applied => {
            let e = d.error.as_ref()?;
            ("error", "target failed", format!("{t}: {}", one_line(e)))
        }
        Status::RolledBack => (
            "error",
            "target rolled back",
            format!(
                "{t}: {failure}; {} were written and {} rolled back; nothing left changed",
                written(&r),
                r.rolled_back
            ),
        ),
        Status::PartiallyApplied => {
            let mut m = format!(
                "{t}: {failure}; {} were written and {} rolled back",
                written(&r),
                r.rolled_back
            );
            if !r.rollback_failures.is_empty() {
                m.push_str(&format!(
                    "; NOT rolled back: {}",
                    one_line(&r.rollback_failures.join("; "))
                ));
            }
            m.push_str(&format!("; left changed: {}", left.join(", ")));
            ("error", "target partially applied", m)
        }
        Status::Failed => (
            "error",
            "target failed",
            format!("{t}: {failure}; nothing written"),
        ),
        Status::Refused => (
            "error",
            "target refused",
            format!("{t}: {failure}; nothing written ({})", written(&r)),
        ),
        Status::NotStarted => (
            "warning",
            "target not started",
            format!("{t}: the run was cancelled before this target began; nothing written"),
        ),
    })
}

/// One annotation per target that did not end cleanly; a notice of what a clean apply wrote.
pub fn result(d: &TargetDiff, _opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    if d.status() == Status::Applied && d.error.is_none() {
        return writeln!(
            out,
            "::notice title=secretsync applied::{}",
            esc_data(&format!("{}: {}", d.plan.target, written(&d.report())))
        );
    }
    // A refusal was annotated with the plan.
    if d.status() == Status::Refused {
        return Ok(());
    }
    match result_annotation(d) {
        Some((level, title, message)) => writeln!(
            out,
            "::{level} title={}::{}",
            esc_prop(title),
            esc_data(&message)
        ),
        None => Ok(()),
    }
}

pub fn finish(diffs: &[TargetDiff], opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let t = totals(diffs);
    let a = applied_totals(diffs);
    let planned = format!(
        "+{} ~{} -{} ={} !{} across {} target(s)",
        t.added,
        t.modified,
        t.deleted,
        t.unchanged,
        t.skipped,
        diffs.len()
    );
    if opts.dry_run {
        return writeln!(
            out,
            "::notice title=secretsync plan::{}",
            esc_data(&format!("planned {planned}: {}", a.statuses_line()))
        );
    }
    writeln!(
        out,
        "::notice title=secretsync::{}",
        esc_data(&format!(
            "applied: created {}, updated {}, deleted {}, retagged {}; rolled back {}; {} left changed by failed applies; planned {planned}: {}",
            a.created,
            a.updated,
            a.deleted,
            a.retagged,
            a.rolled_back,
            a.left_changed,
            a.statuses_line()
        ))
    )
}

/// The annotations JSON document: the plan's changes, held deletions and how each target
/// ended when it did not end cleanly.
pub fn annotations(diffs: &[TargetDiff]) -> serde_json::Value {
    let mut list = Vec::new();
    for d in diffs {
        for c in listed(&d.plan) {
            list.push(json!({"path": c.name, "annotation_level": level(c.kind), "title": d.plan.target, "message": message(&d.plan.target, c)}));
        }
        if let Some(h) = &d.plan.deletions_held {
            list.push(json!({"path": d.plan.target, "annotation_level": "warning", "title": "deletions held", "message": held_message(&d.plan, h)}));
        }
        if let Some((level, title, message)) = result_annotation(d) {
            let level = if level == "error" { "failure" } else { level };
            list.push(json!({"path": d.plan.target, "annotation_level": level, "title": title, "message": message}));
        }
    }
    json!({ "annotations": list })
}

/// Step outputs. `changes`, `added`, `modified`, `deleted`: in a dry run the plan's counts;
/// after an apply what is in effect (applied and not rolled back). `unchanged`, `zero_sum`,
/// `planned_changes`, `rolled_back`, `rollback_failures` (counts), `left_changed` (JSON list of
/// names left changed by failed applies), `failed_targets` and `not_started_targets` (JSON
/// lists of target names), `annotations` (JSON).
pub fn outputs(diffs: &[TargetDiff], opts: &RenderOptions) -> Vec<(String, String)> {
    let mut t = crate::diff::Counts::default();
    for d in diffs {
        t.add(&d.in_effect(opts.dry_run));
    }
    let a = applied_totals(diffs);
    let left: Vec<&String> = diffs.iter().flat_map(|d| d.left_after_failure()).collect();
    let failed: Vec<&String> = diffs
        .iter()
        .filter(|d| d.failed())
        .map(|d| &d.plan.target)
        .collect();
    let not_started: Vec<&String> = diffs
        .iter()
        .filter(|d| d.not_started)
        .map(|d| &d.plan.target)
        .collect();
    vec![
        ("changes".into(), t.changes().to_string()),
        ("added".into(), t.added.to_string()),
        ("modified".into(), t.modified.to_string()),
        ("deleted".into(), t.deleted.to_string()),
        ("unchanged".into(), t.unchanged.to_string()),
        ("zero_sum".into(), (t.changes() == 0).to_string()),
        (
            "planned_changes".into(),
            totals(diffs).changes().to_string(),
        ),
        ("rolled_back".into(), a.rolled_back.to_string()),
        ("rollback_failures".into(), a.rollback_failures.to_string()),
        ("left_changed".into(), json!(left).to_string()),
        ("failed_targets".into(), json!(failed).to_string()),
        ("not_started_targets".into(), json!(not_started).to_string()),
        ("annotations".into(), annotations(diffs).to_string()),
    ]
}

/// Appends outputs in `$GITHUB_OUTPUT` syntax (multi-line values use a heredoc delimiter).
pub fn output_file_text(outputs: &[(String, String)], delimiter: &str) -> String {
    let mut s = String::new();
    for (k, v) in outputs {
        if v.contains('\n') {
            s.push_str(&format!("{k}<<{delimiter}\n{v}\n{delimiter}\n"));
        } else {
            s.push_str(&format!("{k}={v}\n"));
        }
    }
    s
}

/// Markdown-safe table cell text.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// A markdown summary for `$GITHUB_STEP_SUMMARY`: a table per target (the plan in a dry run;
/// what was applied and rolled back after an apply), the failures, held deletions, and the
/// planned changes by name.
pub fn step_summary(diffs: &[TargetDiff], opts: &RenderOptions) -> String {
    let mut s = format!(
        "### SecretSync {}\n\n",
        if opts.dry_run {
            "plan (dry run)"
        } else {
            "sync"
        }
    );
    let t = totals(diffs);
    if opts.dry_run {
        s.push_str("| Target | Added | Modified | Deleted | Unchanged | Skipped | Status |\n|---|---:|---:|---:|---:|---:|---|\n");
        for d in diffs {
            let c = d.plan.counts();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                d.plan.target,
                c.added,
                c.modified,
                c.deleted,
                c.unchanged,
                c.skipped,
                summary_status(d)
            ));
        }
        s.push_str(&format!(
            "| **Total** | {} | {} | {} | {} | {} | |\n",
            t.added, t.modified, t.deleted, t.unchanged, t.skipped
        ));
    } else {
        s.push_str("| Target | Status | Created | Updated | Deleted | Retagged | Rolled back | Planned |\n|---|---|---:|---:|---:|---:|---:|---|\n");
        for d in diffs {
            let c = d.plan.counts();
            let r = d.report();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | +{} ~{} -{} ={} !{} |\n",
                d.plan.target,
                summary_status(d),
                r.created,
                r.updated,
                r.deleted,
                r.retagged,
                r.rolled_back,
                c.added,
                c.modified,
                c.deleted,
                c.unchanged,
                c.skipped
            ));
        }
        let a = applied_totals(diffs);
        s.push_str(&format!(
            "| **Total** | {} | {} | {} | {} | {} | {} | +{} ~{} -{} ={} !{} |\n",
            a.statuses_line(),
            a.created,
            a.updated,
            a.deleted,
            a.retagged,
            a.rolled_back,
            t.added,
            t.modified,
            t.deleted,
            t.unchanged,
            t.skipped
        ));
    }
    let problems: Vec<String> = diffs
        .iter()
        .filter_map(|d| {
            let (_, _, m) = result_annotation(d)?;
            Some(format!("- **{}**: {}", d.status().label(), cell(&m)))
        })
        .collect();
    if !problems.is_empty() {
        s.push_str(&format!(
            "\n**Not applied as planned**\n\n{}\n",
            problems.join("\n")
        ));
    }
    let held: Vec<String> = diffs
        .iter()
        .filter_map(|d| {
            let h = d.plan.deletions_held.as_ref()?;
            Some(format!("- {}", cell(&held_message(&d.plan, h))))
        })
        .collect();
    if !held.is_empty() {
        s.push_str(&format!("\n**Deletions held**\n\n{}\n", held.join("\n")));
    }
    let changes: Vec<String> = diffs
        .iter()
        .flat_map(|d| {
            listed(&d.plan)
                .map(move |c| format!("- `{}` {} `{}`", super::sign(c.kind), d.plan.target, c.name))
        })
        .collect();
    if !changes.is_empty() {
        s.push_str(&format!(
            "\n<details><summary>{} planned change(s)</summary>\n\n{}\n\n</details>\n",
            changes.len(),
            changes.join("\n")
        ));
    }
    s
}

/// The status column: the status, marked when the target failed for another reason (e.g.
/// invalid secrets) although its plan was applied.
fn summary_status(d: &TargetDiff) -> String {
    let s = d.status();
    if d.failed() && matches!(s, Status::Applied | Status::Planned) {
        format!("{} (failed)", s.label())
    } else {
        s.label().to_string()
    }
}
