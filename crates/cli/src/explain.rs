//! `secretsync explain`: where each key of one target's secret comes from. Reads what the
//! target's fold reads (its closure's sources, the stored bundles it imports; nothing else, and
//! nothing is written), then prints `core::explain`'s answer. No value is printed without
//! `--show-values`, and sensitive-looking keys stay masked with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use secretsync_core::config::Config;
use secretsync_core::diag::closest;
use secretsync_core::explain::{Explanation, explain, render_text, to_json};
use secretsync_core::fold::desired_states;
use secretsync_core::secret::Collected;

use crate::cli::{ExplainArgs, VersionOutput};
use crate::commands::{Failure, env, load_config};

fn fail(message: String) -> anyhow::Error {
    Failure { code: 1, message }.into()
}

pub async fn run(a: ExplainArgs) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    let (c, _) = secretsync_engine::discovery::apply(c, &env, a.refresh_discovery).await?;
    check_target(&c, &a.target)?;
    let cancel = crate::commands::cancel_on_signals();
    let (sources, stored) =
        secretsync_engine::pipeline::read_layers(&c, &a.target, &env, &cancel).await?;
    let mut e = match explain(&c, &a.target, &a.path, &sources, &stored)
        .map_err(|e| fail(e.to_string()))?
    {
        Some(e) => e,
        None => return Err(not_desired(&c, &a, &sources, &stored)),
    };
    if let Some(k) = &a.key {
        only_key(&mut e, k)?;
    }
    let policy = c.masking.policy(a.show_values);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match a.output {
        VersionOutput::Text => render_text(&e, &policy, &mut out)?,
        VersionOutput::Json => {
            serde_json::to_writer_pretty(&mut out, &to_json(&e, &policy))?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    for g in &e.incomplete {
        tracing::warn!(gap = %g, "the Vault read was incomplete at this secret: a layer may be missing, and the pipeline does not write it");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_target(c: &Config, target: &str) -> Result<()> {
    if c.target(target).is_some() {
        return Ok(());
    }
    let names = c.targets.iter().map(|t| t.name.as_str());
    let hint = match closest(target, names) {
        Some(n) => format!("did you mean `{n}`?"),
        None => "`secretsync graph` lists the targets".into(),
    };
    Err(fail(format!("no target `{target}` in the config; {hint}")))
}

/// The path is not in the target's desired state: say so, with the closest path.
fn not_desired(
    c: &Config,
    a: &ExplainArgs,
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
) -> anyhow::Error {
    let closure = c.graph.closure(std::slice::from_ref(&a.target));
    let near = desired_states(c, &closure, sources, stored)
        .ok()
        .and_then(|d| d.get(&a.target).cloned())
        .and_then(|d| closest(&a.path, d.secrets.keys().map(String::as_str)).map(str::to_string));
    let hint = match near {
        Some(p) => format!(" (did you mean `{p}`?)"),
        None => String::new(),
    };
    fail(format!(
        "`{}` is not in the desired state of target `{}`{hint}; list its secrets with `secretsync pipeline --config {} --merge-only --dry-run --targets {}` (paths are relative to each source's `mount:`)",
        a.path,
        a.target,
        a.config.config.display(),
        a.target
    ))
}

/// Keeps only key `k` (dotted), or says which keys there are.
fn only_key(e: &mut Explanation, k: &str) -> Result<()> {
    if !e.keys.iter().any(|p| p.key == k) {
        let hint = match closest(k, e.keys.iter().map(|p| p.key.as_str())) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!(
                "its keys: {}",
                e.keys
                    .iter()
                    .map(|p| p.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(fail(format!(
            "key `{k}` is not in `{}` of target `{}`; {hint}",
            e.path, e.target
        )));
    }
    e.keys.retain(|p| p.key == k);
    Ok(())
}
