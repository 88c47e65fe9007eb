//! `secretsync policy test`: the config's policies against every target's current plan, as a
//! dry run (nothing is written anywhere, not even the merge store).

use std::process::ExitCode;

use anyhow::Result;
use secretsync_core::diff::TargetPlan;
use secretsync_engine::pipeline::{self, Reporter, TargetOutcome};
use serde_json::json;

use crate::cli::{PolicyTest, VersionOutput};
use crate::commands::{env, load_config, load_policies, plural};

/// Each target's verdict, or why it could not be planned.
#[derive(Default)]
struct Verdicts {
    rows: Vec<(String, Result<secretsync_core::policy::Verdict, String>)>,
}

impl Reporter for Verdicts {
    fn planned(&mut self, target: &str, plan: &TargetPlan) {
        self.rows
            .push((target.to_string(), Ok(plan.policy.clone())));
    }
    fn finished(&mut self, outcome: &TargetOutcome) {
        // Called here only for a target that has no plan.
        if outcome.plan.is_none() {
            let why = outcome
                .error
                .clone()
                .unwrap_or_else(|| "no plan was made".into());
            self.rows.push((outcome.name.clone(), Err(why)));
        }
    }
}

pub async fn test(a: PolicyTest) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    let Some(policies) = load_policies(&c, &a.config.config)? else {
        anyhow::bail!(
            "the config has no `policies:`; add a block such as `policies: [{{ path: policies/ }}]`"
        );
    };
    let (mut c, _) = secretsync_engine::discovery::apply(c, &env, false).await?;
    // A check, not a run: it is neither audited nor notified.
    c.audit = None;
    c.notifications.clear();
    let opts = pipeline::RunOptions {
        dry_run: true,
        targets: crate::commands::selected_targets(&c, &a.targets)?,
        cancel: crate::commands::cancel_on_signals(),
        parallel_targets: c.max_parallel_targets,
        policies: Some(policies),
        ..Default::default()
    };
    let mut verdicts = Verdicts::default();
    pipeline::run(&c, &opts, &env, &mut verdicts).await?;
    let denied = verdicts
        .rows
        .iter()
        .filter(|(_, v)| v.as_ref().is_ok_and(|v| !v.denied.is_empty()))
        .count();
    let failed = verdicts.rows.iter().filter(|(_, v)| v.is_err()).count();
    match a.output {
        VersionOutput::Json => {
            let targets: Vec<_> = verdicts
                .rows
                .iter()
                .map(|(t, v)| match v {
                    Ok(v) => json!({"target": t, "denied": v.denied, "warnings": v.warnings, "error": null}),
                    Err(e) => json!({"target": t, "denied": [], "warnings": [], "error": e}),
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "targets": targets,
                    "denied_targets": denied,
                    "failed_targets": failed,
                }))?
            );
        }
        VersionOutput::Text => {
            for (t, v) in &verdicts.rows {
                match v {
                    Err(e) => println!("{t}: could not be planned: {e}"),
                    Ok(v) if v.is_empty() => println!("{t}: allowed"),
                    Ok(v) => {
                        println!(
                            "{t}: {}",
                            if v.denied.is_empty() {
                                "allowed, with warnings"
                            } else {
                                "DENIED"
                            }
                        );
                        for f in &v.denied {
                            println!("  deny ({}): {}", f.policy, f.message);
                        }
                        for f in &v.warnings {
                            println!("  warn ({}): {}", f.policy, f.message);
                        }
                    }
                }
            }
            let n = verdicts.rows.len();
            println!(
                "{n} target{} checked: {denied} denied, {failed} could not be planned",
                plural(n)
            );
        }
    }
    Ok(if denied + failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
