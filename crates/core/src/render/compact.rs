//! `compact`: one line per target's plan (`CHANGES`, and `REENCRYPT:n` for secrets re-encrypted
//! under a new KMS key), one per target's result after an apply
//! (or a failure), and a total.

use std::io::{self, Write};

use super::{RenderOptions, Status, TargetDiff, applied_totals, one_line, totals};
use crate::diff::{Counts, TargetPlan};

fn line(c: &Counts) -> String {
    let mut s = format!(
        "CHANGES: +{} ~{} -{} ={}",
        c.added, c.modified, c.deleted, c.unchanged
    );
    if c.skipped > 0 {
        s.push_str(&format!(" !{}", c.skipped));
    }
    s
}

/// `+created ~updated -deleted[ *retagged]`
fn written(created: usize, updated: usize, deleted: usize, retagged: usize) -> String {
    let mut s = format!("+{created} ~{updated} -{deleted}");
    if retagged > 0 {
        s.push_str(&format!(" *{retagged}"));
    }
    s
}

pub fn target(plan: &TargetPlan, _opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let reencrypt = plan.changes.iter().filter(|c| c.reencrypts()).count();
    match reencrypt {
        0 => writeln!(out, "{}: {}", plan.target, line(&plan.counts()))?,
        n => writeln!(
            out,
            "{}: {} REENCRYPT:{n}",
            plan.target,
            line(&plan.counts())
        )?,
    }
    if let Some(h) = &plan.deletions_held {
        writeln!(out, "{}: DELETIONS_HELD: {}", plan.target, one_line(h))?;
    }
    Ok(())
}

/// `t: ROLLED_BACK: +1 ~1 -0 UNDONE:2 (why)`; nothing for a plan (the plan line said it).
pub fn result(d: &TargetDiff, _opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let status = d.status();
    if status == Status::Planned && d.error.is_none() {
        return Ok(());
    }
    let r = d.report();
    let mut s = format!(
        "{}: {}: {}",
        d.plan.target,
        status.as_str().to_uppercase(),
        written(r.created, r.updated, r.deleted, r.retagged)
    );
    if r.rolled_back > 0 {
        s.push_str(&format!(" UNDONE:{}", r.rolled_back));
    }
    if !r.rollback_failures.is_empty() {
        s.push_str(&format!(" NOT_UNDONE:{}", r.rollback_failures.len()));
    }
    let left = d.left_after_failure();
    if !left.is_empty() {
        s.push_str(&format!(" LEFT:{}", left.join(",")));
    }
    if let Some(f) = d.failure() {
        match d.failure_kind() {
            Some(k) => s.push_str(&format!(" ({k}: {})", one_line(f))),
            None => s.push_str(&format!(" ({})", one_line(f))),
        }
    }
    writeln!(out, "{s}")
}

pub fn finish(diffs: &[TargetDiff], opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let failed = diffs.iter().filter(|d| d.failed()).count();
    let not_started = diffs.iter().filter(|d| d.not_started).count();
    let mut s = format!("TOTAL: {}", line(&totals(diffs)));
    if opts.dry_run {
        s.push_str(" DRY_RUN");
    } else {
        let a = applied_totals(diffs);
        s.push_str(&format!(
            " APPLIED: {}",
            written(a.created, a.updated, a.deleted, a.retagged)
        ));
        if a.rolled_back > 0 {
            s.push_str(&format!(" UNDONE:{}", a.rolled_back));
        }
        if a.rollback_failures > 0 {
            s.push_str(&format!(" NOT_UNDONE:{}", a.rollback_failures));
        }
        if a.left_changed > 0 {
            s.push_str(&format!(" LEFT:{}", a.left_changed));
        }
    }
    if failed > 0 {
        s.push_str(&format!(" FAILED:{failed}"));
    }
    if not_started > 0 {
        s.push_str(&format!(" NOT_STARTED:{not_started}"));
    }
    writeln!(out, "{s}")
}
