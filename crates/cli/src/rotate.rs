//! `secretsync rotate`: regenerates the due keys of the `rotation:` blocks in Vault
//! (`secretsync_engine::rotation`) and prints what happened to each (never a value).

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;
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
    let plan = rotation::plan(&c, &vault, SystemTime::now(), a.force).await?;
    let report = if a.dry_run {
        plan.report()
    } else {
        rotation::apply(plan, &vault).await
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
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
