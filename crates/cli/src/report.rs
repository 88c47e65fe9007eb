//! Printing plans and results as the pipeline produces them (stdout), through the core's
//! renderers. Values never appear unless `--show-values` (and even then not under keys that
//! look sensitive).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use secretsync_core::diff::TargetPlan;
use secretsync_core::mask::MaskPolicy;
use secretsync_core::render::{self, Format, RenderOptions, TargetDiff};
use secretsync_core::secret::Collected;
use secretsync_engine::pipeline::{Reporter, RunSummary, TargetOutcome};
use secretsync_engine::store::WriteStats;

use crate::cli::Output;
use crate::commands::plural;

pub struct Printer {
    output: Output,
    format: Format,
    opts: RenderOptions,
    merge_only: bool,
    merged: Option<(BTreeMap<String, Collected>, Vec<String>)>,
    diffs: Vec<TargetDiff>,
    /// `--provenance` (JSON only): the winning layer of each key, from the merge phase.
    provenance: Option<secretsync_core::explain::Provenance>,
}

fn format_of(o: Output) -> Format {
    match o {
        Output::Text => Format::Text,
        Output::SideBySide => Format::SideBySide,
        Output::Json => Format::Json,
        Output::Github => Format::Github,
        Output::Compact => Format::Compact,
    }
}

/// Why a target counts as failed, in one line.
fn failure(t: &TargetOutcome) -> Option<String> {
    if let Some(e) = &t.error {
        return Some(e.clone());
    }
    if let Some(f) = t.report.as_ref().and_then(|r| r.failure.clone()) {
        return Some(f);
    }
    let plan = t.plan.as_ref()?;
    if let Some(r) = &plan.refused {
        return Some(r.clone());
    }
    let invalid = plan.invalid().count();
    (invalid > 0).then(|| format!("{invalid} invalid secret{} not synced", plural(invalid)))
}

impl Printer {
    pub fn new(
        output: Output,
        policy: MaskPolicy,
        details: bool,
        dry_run: bool,
        merge_only: bool,
    ) -> Self {
        let color = matches!(output, Output::Text | Output::SideBySide)
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none();
        Printer {
            output,
            format: format_of(output),
            opts: RenderOptions {
                policy,
                color,
                details,
                dry_run,
            },
            merge_only,
            merged: None,
            diffs: Vec::new(),
            provenance: None,
        }
    }

    /// Prints what comes after every target; returns whether there were changes.
    pub fn done(&mut self, summary: &RunSummary) -> anyhow::Result<bool> {
        // Buffered: stdout is line-buffered, and a document of 100,000 changes has millions of
        // lines.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if self.merge_only {
            if let Some((desired, selected)) = &self.merged {
                render::desired::render(
                    &mut out,
                    desired,
                    selected,
                    self.output == Output::Json,
                    &self.opts.policy,
                )?;
            }
            out.flush()?;
            return Ok(false);
        }
        let changes = self.diffs.iter().any(|d| d.plan.has_changes());
        match self.format {
            Format::Json => {
                let doc = render::json::Document {
                    diffs: &self.diffs,
                    opts: &self.opts,
                    calls: Some((summary.aws_calls, summary.vault_requests)),
                    provenance: self.provenance.as_ref(),
                };
                render::json::write(&doc, &mut out)?;
            }
            f => {
                f.finish(&self.diffs, &self.opts, &mut out)?;
                if matches!(f, Format::Text | Format::SideBySide) {
                    writeln!(
                        out,
                        "{} API calls to targets and stores, {} Vault requests to sources",
                        summary.aws_calls, summary.vault_requests
                    )?;
                }
            }
        }
        out.flush()?;
        if self.format == Format::Github {
            write_github_files(&self.diffs, &self.opts)?;
        }
        Ok(changes)
    }
}

/// Appends step outputs to `$GITHUB_OUTPUT` and the markdown table to `$GITHUB_STEP_SUMMARY`
/// when those are set (inside GitHub Actions).
fn write_github_files(diffs: &[TargetDiff], opts: &RenderOptions) -> anyhow::Result<()> {
    use std::fs::OpenOptions;
    if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
        let outputs = render::github::outputs(diffs, opts);
        let delimiter = format!("SECRETSYNC_EOF_{}", std::process::id());
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        f.write_all(render::github::output_file_text(&outputs, &delimiter).as_bytes())?;
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        f.write_all(render::github::step_summary(diffs, opts).as_bytes())?;
    }
    Ok(())
}

impl Reporter for Printer {
    /// Only the JSON document prints values after a target is done; every other format lets
    /// the run drop (and wipe) them instead of holding every secret of every target until the
    /// end.
    fn needs_values(&self) -> bool {
        self.format == Format::Json && !self.merge_only
    }

    fn merged(&mut self, desired: &BTreeMap<String, Collected>, selected: &[String]) {
        if self.merge_only {
            self.merged = Some((desired.clone(), selected.to_vec()));
        }
    }

    fn provenance(&mut self, provenance: secretsync_core::explain::Provenance) {
        self.provenance = Some(provenance);
    }

    fn stored(&mut self, location: &str, bundle: &str, stats: WriteStats) {
        if matches!(self.output, Output::Text | Output::SideBySide) {
            let reencrypted = match stats.reencrypted {
                0 => String::new(),
                n => format!(", {n} re-encrypted under the new KMS key"),
            };
            println!(
                "merge store {location}: bundle {bundle}: {} written, {} unchanged, {} deleted{reencrypted}",
                stats.written, stats.unchanged, stats.deleted
            );
        }
    }

    fn planned(&mut self, _target: &str, plan: &TargetPlan) {
        let mut out = std::io::stdout().lock();
        let _ = self.format.target(plan, &self.opts, &mut out);
    }

    fn finished(&mut self, t: &TargetOutcome) {
        let plan = t.plan.clone().unwrap_or_else(|| {
            std::sync::Arc::new(TargetPlan {
                target: t.name.clone(),
                changes: Vec::new(),
                orphans_kept: Vec::new(),
                refused: None,
                deletions_held: None,
                policy: Default::default(),
            })
        });
        let diff = TargetDiff {
            error: failure(t),
            error_kind: t.error_kind,
            applied: t.report.clone(),
            not_started: t.not_started,
            aws_calls: t.calls,
            duration_ms: t.duration.as_millis().try_into().unwrap_or(u64::MAX),
            ..TargetDiff::new(plan)
        };
        {
            let mut out = std::io::stdout().lock();
            let _ = self.format.result(&diff, &self.opts, &mut out);
        }
        if !matches!(self.output, Output::Text | Output::SideBySide)
            && let Some(e) = &t.error
        {
            eprintln!("error: target {} failed: {e}", t.name);
        }
        self.diffs.push(diff);
    }
}
