//! `side-by-side`: for each changed secret, a table of its changed keys, old | new. Results and
//! totals are the `text` format's.

use std::io::{self, Write};

use super::text::{at_path, change_line, headline, notes};
use super::{RenderOptions, listed};
use crate::diff::TargetPlan;

pub fn target(plan: &TargetPlan, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", headline(plan))?;
    for c in listed(plan) {
        writeln!(
            out,
            "  {}",
            change_line(
                c,
                &super::RenderOptions {
                    details: true,
                    ..opts.clone()
                }
            )
        )?;
        if c.keys.is_empty() {
            continue;
        }
        let rows: Vec<(String, String, String)> = c
            .keys
            .iter()
            .map(|k| {
                let old = at_path(c.old_value.as_ref(), &k.key)
                    .map(|v| opts.policy.display_inline(&k.key, v))
                    .unwrap_or_default();
                let new = at_path(c.new_value.as_ref(), &k.key)
                    .map(|v| opts.policy.display_inline(&k.key, v))
                    .unwrap_or_default();
                (k.key.clone(), old, new)
            })
            .collect();
        let w0 = rows
            .iter()
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(0)
            .max(3);
        let w1 = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .max(3);
        writeln!(out, "      {:<w0$} │ {:<w1$} │ new", "key", "old")?;
        for (k, o, n) in rows {
            writeln!(out, "      {k:<w0$} │ {o:<w1$} │ {n}")?;
        }
    }
    notes(plan, out)
}
