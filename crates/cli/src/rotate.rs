//! `secretsync rotate`: regenerates the due keys of the `rotation:` blocks in Vault
//! (`secretsync_engine::rotation`) and prints what happened to each (never a value).

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;
use secretsync_core::audit::Event;
use secretsync_engine::audit::AuditLog;
use secretsync_engine::observe::Observers;
use secretsync_engine::retry::Policy;
use secretsync_engine::rotation;
use secretsync_engine::vault::VaultClient;

use crate::cli::{RotateArgs, VersionOutput};
use crate::commands::{Failure, env, load_config};

/// Exit 0 when every due key was rotated (or nothing was due), 1 when a key had a conflict
/// or failed, or a folder could not be listed.
pub async fn run(a: RotateArgs) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    if c.rotation.is_empty() {
        anyhow::bail!(Failure {
            code: 1,
            message: "the config has no `rotation:` block, so nothing is rotated; add one (docs/rotation.md)".into(),
        });
    }
    let vault = VaultClient::connect_with(
        &c.vault,
        &env,
        Observers::default(),
        Policy::new(c.retries.vault_max_attempts),
    )
    .await?;
    // Audited like a pipeline run: the start before anything is written.
    let audit = AuditLog::for_config(&c, &env).await?;
    let run_id = secretsync_engine::audit::new_run_id();
    if let Some(log) = &audit {
        let who = secretsync_core::history::author(&env, None);
        let start = Event::run_started(
            &run_id,
            &secretsync_engine::audit::now(),
            &who,
            if a.force { "rotate --force" } else { "rotate" },
            &secretsync_core::planfile::config_fingerprint(&c),
            &[],
            a.dry_run,
        );
        log.append(vec![start]).await.map_err(|e| {
            anyhow::anyhow!(
                "the audit log could not record the start of the rotation, so nothing was rotated: {}",
                e.message
            )
        })?;
    }
    let plan = rotation::plan(&c, &vault, SystemTime::now(), a.force).await?;
    let report = if a.dry_run {
        plan.report()
    } else {
        rotation::apply(plan, &vault).await
    };
    let audit_error = match &audit {
        Some(log) => log.append(rotation_events(&run_id, &report)).await.err(),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    match a.output {
        VersionOutput::Text => out.write_all(report.render_text().as_bytes())?,
        VersionOutput::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report.render_json())?
        )?,
    }
    out.flush()?;
    if let Some(e) = audit_error {
        anyhow::bail!(Failure {
            code: 1,
            message: format!(
                "the rotation was made, but the audit log could not record it: {}",
                e.message
            ),
        });
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One `rotation` event per secret written, then `run_finished`.
fn rotation_events(run_id: &str, report: &secretsync_core::rotation::Report) -> Vec<Event> {
    use secretsync_core::rotation::KeyStatus;
    let time = secretsync_engine::audit::now();
    let mut events: Vec<Event> = report
        .secrets
        .iter()
        .filter(|s| s.new_version.is_some())
        .map(|s| {
            let keys: Vec<String> = s
                .keys
                .iter()
                .filter(|k| k.status == KeyStatus::Rotated)
                .map(|k| k.key.clone())
                .collect();
            Event::rotation(run_id, &time, &s.source, &s.path, &keys, s.new_version)
        })
        .collect();
    let sum = report.summary();
    events.push(Event::run_finished(
        run_id,
        &time,
        if report.ok() { "success" } else { "failure" },
        Vec::new(),
        (!report.ok())
            .then(|| {
                format!(
                    "{} conflict(s), {} failed, {} unreadable folder(s)",
                    sum.conflicts, sum.failed, sum.incomplete
                )
            })
            .as_deref(),
    ));
    events
}
