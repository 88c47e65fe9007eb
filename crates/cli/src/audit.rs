//! `secretsync audit verify|export`: the audit log (`audit:`; docs/audit.md), read from its
//! file or the merge store.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use secretsync_core::audit::{Broken, Format, Head, csv_header, export_line};
use secretsync_core::config::Config;

use crate::cli::{AuditCommand, AuditFormat, AuditSource};
use crate::commands::{Failure, env, load_config};

pub async fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(a) => {
            let c = load_config(&a.source.config.config)?;
            let (lines, verdict, at) = read(&c, &a.source).await?;
            match verdict {
                Ok(head) => {
                    println!(
                        "audit log OK: {} event{} in {at}, chain intact (last event {}, hash {})",
                        lines.len(),
                        crate::commands::plural(lines.len()),
                        head.seq,
                        &head.hash[..16]
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => broken(&b),
            }
        }
        AuditCommand::Export(a) => {
            let c = load_config(&a.source.config.config)?;
            let since = a.since.as_deref().map(since_time).transpose()?;
            let (lines, verdict, _) = read(&c, &a.source).await?;
            let format = match a.format {
                AuditFormat::Jsonl => Format::Jsonl,
                AuditFormat::Csv => Format::Csv,
            };
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if format == Format::Csv {
                writeln!(out, "{}", csv_header())?;
            }
            for l in &lines {
                if let Some(row) = export_line(l, since.as_deref(), format) {
                    writeln!(out, "{row}")?;
                }
            }
            out.flush()?;
            match verdict {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(b) => broken(&b),
            }
        }
    }
}

fn broken(b: &Broken) -> Result<ExitCode> {
    bail!(Failure {
        code: 1,
        message: format!(
            "the audit log is broken at {b}; the events before it are intact. Keep the log as it is for investigation, and compare it with the other copy (file or merge store) if there is one"
        ),
    })
}

/// The log's verified lines (up to the first broken event), the verdict, and where it is.
async fn read(
    c: &Config,
    s: &AuditSource,
) -> Result<(Vec<String>, std::result::Result<Head, Broken>, String)> {
    let file = match (&s.from, s.store, &c.audit) {
        (Some(f), _, _) => Some(f.clone()),
        (None, true, _) => None,
        (None, false, Some(a)) if a.file.is_some() => a.file.as_ref().map(Into::into),
        (None, false, Some(a)) if a.store => None,
        _ => bail!(
            "the config has no `audit:` block; add `audit: {{ file: <path> }}` (or `store: true`), or name a log with `--from FILE`"
        ),
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the audit log `{}`", path.display()))?;
        let mut head = Head::default();
        let at = path.display().to_string();
        let lines: Vec<&str> = text.split('\n').collect();
        let verdict = secretsync_core::audit::verify(&mut head, &at, lines.iter().copied());
        let kept = match &verdict {
            Ok(n) => *n,
            Err(b) => b.line.saturating_sub(1),
        };
        let good: Vec<String> = lines
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .take(kept)
            .map(str::to_string)
            .collect();
        return Ok((good, verdict.map(|_| head), at));
    }
    let Some(history) = secretsync_engine::history::open(c, &env).await? else {
        bail!("`--store` needs a merge store: configure `merge_store:`");
    };
    let objects = history.objects();
    let at = objects.describe(secretsync_engine::audit::STORE_DIR);
    let (lines, verdict) = secretsync_engine::audit::store_lines(objects).await?;
    Ok((lines, verdict, at))
}

/// `--since`: RFC 3339, a date, or a duration back from now, as the log writes times.
fn since_time(s: &str) -> Result<String> {
    let t = if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        t
    } else if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{s}T00:00:00Z")) {
        t
    } else if let Ok(d) = humantime::parse_duration(s) {
        std::time::SystemTime::now()
            .checked_sub(d)
            .context("`--since` reaches before 1970")?
    } else {
        bail!(
            "`--since {s}` is not a time: write RFC 3339 (`2026-12-01T00:00:00Z`), a date (`2026-12-01`) or a duration back from now (`7d`, `12h`)"
        );
    };
    Ok(humantime::format_rfc3339_seconds(t).to_string())
}
