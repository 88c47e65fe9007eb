//! `compact`: one line per target and a total.

use std::io::{self, Write};

use super::{RenderOptions, TargetDiff, totals};
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

pub fn target(plan: &TargetPlan, _opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}: {}", plan.target, line(&plan.counts()))
}

pub fn finish(diffs: &[TargetDiff], _opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let failed = diffs.iter().filter(|d| d.error.is_some()).count();
    writeln!(
        out,
        "TOTAL: {}{}",
        line(&totals(diffs)),
        if failed > 0 {
            format!(" FAILED:{failed}")
        } else {
            String::new()
        }
    )
}
