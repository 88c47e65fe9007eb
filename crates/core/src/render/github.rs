//! `github`: workflow commands (a group per target, notice/warning annotations), plus the
//! pieces the binary writes to `$GITHUB_OUTPUT` ([`outputs`]) and `$GITHUB_STEP_SUMMARY`
//! ([`step_summary`]). The annotations JSON document is the `annotations` output.

use std::io::{self, Write};

use serde_json::json;

use super::text::key_sign;
use super::{RenderOptions, TargetDiff, listed, totals};
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
            ChangeKind::Unchanged => "needs its ownership tags fixed",
        }
    );
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
    if let Some(r) = &plan.refused {
        writeln!(
            out,
            "::error title=target refused::{}",
            esc_data(&format!("{}: {r}", plan.target))
        )?;
    }
    writeln!(out, "::endgroup::")
}

pub fn finish(diffs: &[TargetDiff], opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    for d in diffs {
        if let Some(e) = &d.error {
            writeln!(
                out,
                "::error title=target failed::{}",
                esc_data(&format!("{}: {e}", d.plan.target))
            )?;
        }
    }
    let t = totals(diffs);
    writeln!(
        out,
        "::notice title=secretsync{}::{}",
        if opts.dry_run { " plan" } else { "" },
        esc_data(&format!(
            "+{} ~{} -{} ={} !{} across {} target(s)",
            t.added,
            t.modified,
            t.deleted,
            t.unchanged,
            t.skipped,
            diffs.len()
        ))
    )
}

/// The annotations JSON document.
pub fn annotations(diffs: &[TargetDiff]) -> serde_json::Value {
    let mut list = Vec::new();
    for d in diffs {
        for c in listed(&d.plan) {
            list.push(json!({"path": c.name, "annotation_level": level(c.kind), "title": format!("{}", d.plan.target), "message": message(&d.plan.target, c)}));
        }
        if let Some(e) = &d.error {
            list.push(json!({"path": d.plan.target, "annotation_level": "failure", "title": d.plan.target, "message": e}));
        }
    }
    json!({ "annotations": list })
}

/// Step outputs: `changes`, `added`, `modified`, `deleted`, `unchanged`, `zero_sum`,
/// `annotations` (JSON).
pub fn outputs(diffs: &[TargetDiff], _opts: &RenderOptions) -> Vec<(String, String)> {
    let t = totals(diffs);
    vec![
        ("changes".into(), t.changes().to_string()),
        ("added".into(), t.added.to_string()),
        ("modified".into(), t.modified.to_string()),
        ("deleted".into(), t.deleted.to_string()),
        ("unchanged".into(), t.unchanged.to_string()),
        ("zero_sum".into(), (t.changes() == 0).to_string()),
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

/// A markdown summary for `$GITHUB_STEP_SUMMARY`: a table per target and the changed names.
pub fn step_summary(diffs: &[TargetDiff], opts: &RenderOptions) -> String {
    let mut s = format!(
        "### SecretSync {}\n\n",
        if opts.dry_run {
            "plan (dry run)"
        } else {
            "sync"
        }
    );
    s.push_str("| Target | Added | Modified | Deleted | Unchanged | Skipped | Status |\n|---|---:|---:|---:|---:|---:|---|\n");
    for d in diffs {
        let c = d.plan.counts();
        let status = if d.error.is_some() || d.plan.refused.is_some() {
            "failed"
        } else {
            "ok"
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {status} |\n",
            d.plan.target, c.added, c.modified, c.deleted, c.unchanged, c.skipped
        ));
    }
    let t = totals(diffs);
    s.push_str(&format!(
        "| **Total** | {} | {} | {} | {} | {} | |\n",
        t.added, t.modified, t.deleted, t.unchanged, t.skipped
    ));
    let changes: Vec<String> = diffs
        .iter()
        .flat_map(|d| {
            listed(&d.plan)
                .map(move |c| format!("- `{}` {} `{}`", super::sign(c.kind), d.plan.target, c.name))
        })
        .collect();
    if !changes.is_empty() {
        s.push_str(&format!(
            "\n<details><summary>{} change(s)</summary>\n\n{}\n\n</details>\n",
            changes.len(),
            changes.join("\n")
        ));
    }
    s
}
