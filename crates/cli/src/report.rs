//! Printing plans and results as the pipeline produces them (stdout). Values never appear
//! unless `--show-values`.

use std::collections::BTreeMap;
use std::io::Write;

use secretsync_core::diff::{ChangeKind, KeyChangeKind, TargetPlan};
use secretsync_core::secret::Bundle;
use secretsync_engine::pipeline::{Reporter, RunSummary, TargetOutcome};
use secretsync_engine::store::WriteStats;
use serde_json::{Value, json};

use crate::cli::Output;
use crate::commands::{plural, print_desired};

pub struct Printer {
    output: Output,
    show_values: bool,
    dry_run: bool,
    merged: Option<(BTreeMap<String, Bundle>, Vec<String>)>,
    json_targets: Vec<Value>,
}

fn sign(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "+",
        ChangeKind::Modified => "~",
        ChangeKind::Deleted => "-",
        ChangeKind::Unchanged => "=",
        ChangeKind::Skipped => "!",
    }
}

fn key_sign(k: KeyChangeKind) -> &'static str {
    match k {
        KeyChangeKind::Added => "+",
        KeyChangeKind::Removed => "-",
        KeyChangeKind::Changed => "~",
    }
}

pub fn plan_json(plan: &TargetPlan) -> Value {
    let c = plan.counts();
    json!({
        "summary": c,
        "changes": plan.changes.iter().filter(|ch| ch.kind != ChangeKind::Unchanged || ch.retag).map(|ch| json!({
            "path": ch.path,
            "name": ch.name,
            "type": ch.kind,
            "keys": ch.keys,
            "reason": ch.reason,
            "restore": ch.restore,
            "adopt": ch.adopt,
        })).collect::<Vec<_>>(),
        "orphans_kept": plan.orphans_kept,
        "refused": plan.refused,
    })
}

impl Printer {
    pub fn new(output: Output, show_values: bool, dry_run: bool) -> Self {
        Printer {
            output,
            show_values,
            dry_run,
            merged: None,
            json_targets: Vec::new(),
        }
    }

    /// Prints what is left at the end of the run.
    pub fn done(&mut self, summary: &RunSummary) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if summary.targets.is_empty() {
            // merge-only: the merged state is the result
            if let Some((desired, selected)) = &self.merged {
                print_desired(desired, selected, self.output, self.show_values)?;
            }
            return Ok(());
        }
        match self.output {
            Output::Json => {
                let mut total = secretsync_core::diff::Counts::default();
                for t in &summary.targets {
                    if let Some(p) = &t.plan {
                        total.add(&p.counts());
                    }
                }
                let doc = json!({
                    "dry_run": self.dry_run,
                    "summary": total,
                    "targets": self.json_targets,
                    "aws_calls": summary.aws_calls,
                    "vault_requests": summary.vault_requests,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            }
            Output::Text => {
                let failed = summary.targets.iter().filter(|t| t.failed()).count();
                writeln!(
                    out,
                    "{} target{} {}, {failed} failed; {} AWS calls, {} Vault requests",
                    summary.targets.len(),
                    plural(summary.targets.len()),
                    if self.dry_run {
                        "planned (dry run: nothing written)"
                    } else {
                        "synced"
                    },
                    summary.aws_calls,
                    summary.vault_requests
                )?;
            }
        }
        Ok(())
    }
}

impl Reporter for Printer {
    fn merged(&mut self, desired: &BTreeMap<String, Bundle>, selected: &[String]) {
        self.merged = Some((desired.clone(), selected.to_vec()));
    }

    fn stored(&mut self, location: &str, bundle: &str, stats: WriteStats) {
        if self.output == Output::Text {
            println!(
                "merge store {location}: bundle {bundle}: {} written, {} unchanged, {} deleted",
                stats.written, stats.unchanged, stats.deleted
            );
        }
    }

    fn planned(&mut self, target: &str, plan: &TargetPlan) {
        if self.output != Output::Text {
            return;
        }
        let c = plan.counts();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "Plan for target {target}: {} to add, {} to modify, {} to delete, {} unchanged, {} skipped",
            c.added, c.modified, c.deleted, c.unchanged, c.skipped
        );
        for ch in plan
            .changes
            .iter()
            .filter(|ch| ch.kind != ChangeKind::Unchanged || ch.retag)
        {
            let mut line = format!("  {} {}", sign(ch.kind), ch.name);
            if ch.restore {
                line.push_str(" (restore from pending deletion)");
            }
            if ch.adopt {
                line.push_str(" (adopt)");
            }
            if ch.retag {
                line.push_str(" (value matches; fix ownership tags)");
            }
            if ch.kind == ChangeKind::Modified && !ch.keys.is_empty() {
                let keys: Vec<String> = ch
                    .keys
                    .iter()
                    .map(|k| format!("{}{}", key_sign(k.kind), k.key))
                    .collect();
                line.push_str(&format!(" [keys: {}]", keys.join(", ")));
            }
            if let Some(r) = &ch.reason {
                line.push_str(&format!(": {r}"));
            }
            let _ = writeln!(out, "{line}");
        }
        if !plan.orphans_kept.is_empty() {
            let _ = writeln!(
                out,
                "  {} managed secret{} no longer desired, kept because `delete_orphans` is off: {}",
                plan.orphans_kept.len(),
                plural(plan.orphans_kept.len()),
                plan.orphans_kept.join(", ")
            );
        }
        if let Some(r) = &plan.refused {
            let _ = writeln!(out, "  refused: {r}");
        }
    }

    fn finished(&mut self, t: &TargetOutcome) {
        if self.output == Output::Json {
            self.json_targets.push(json!({
                "target": t.name,
                "plan": t.plan.as_ref().map(plan_json),
                "result": t.report.as_ref().map(|r| json!({
                    "created": r.created, "updated": r.updated, "deleted": r.deleted, "retagged": r.retagged,
                    "failure": r.failure, "rolled_back": r.rolled_back, "rollback_failures": r.rollback_failures,
                })),
                "error": t.error,
                "aws_calls": t.calls,
                "duration_ms": t.duration.as_millis() as u64,
                "failed": t.failed(),
            }));
            return;
        }
        let mut out = std::io::stdout().lock();
        let secs = t.duration.as_secs_f64();
        if let Some(e) = &t.error {
            let _ = writeln!(
                out,
                "Target {} FAILED: {e} ({} AWS calls, {secs:.2}s)",
                t.name, t.calls
            );
            return;
        }
        let c = t.plan.as_ref().map(|p| p.counts()).unwrap_or_default();
        match &t.report {
            None => {
                let _ = writeln!(
                    out,
                    "Dry run for {}: nothing written ({} AWS calls, {secs:.2}s)",
                    t.name, t.calls
                );
            }
            Some(r) => {
                let _ = writeln!(
                    out,
                    "Result for {}: created {}, updated {}, deleted {}, unchanged {}, skipped {}; {} AWS calls in {secs:.2}s",
                    t.name, r.created, r.updated, r.deleted, c.unchanged, c.skipped, t.calls
                );
                if let Some(f) = &r.failure {
                    let _ = writeln!(out, "  FAILED: {f}");
                    let _ = writeln!(
                        out,
                        "  rolled back {} change{}",
                        r.rolled_back,
                        plural(r.rolled_back)
                    );
                    for rf in &r.rollback_failures {
                        let _ = writeln!(out, "  NOT rolled back (left as written): {rf}");
                    }
                }
            }
        }
        if let Some(p) = &t.plan {
            for ch in p.invalid() {
                let _ = writeln!(
                    out,
                    "  invalid secret {} not synced: {}",
                    ch.name,
                    ch.reason.as_deref().unwrap_or("")
                );
            }
        }
    }
}
