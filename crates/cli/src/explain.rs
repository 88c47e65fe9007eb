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
    let transformed = transform_of(&c, &a, &sources, &stored);
    let policy = c.masking.policy(a.show_values);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match a.output {
        VersionOutput::Text => {
            render_text(&e, &policy, &mut out)?;
            if let Some(t) = &transformed {
                transform_text(t, &mut out)?;
            }
        }
        VersionOutput::Json => {
            let mut doc = to_json(&e, &policy);
            if let (Some(t), serde_json::Value::Object(m)) = (&transformed, &mut doc) {
                m.insert("transform".into(), transform_json(t));
            }
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    if let Some(Err(e)) = &transformed {
        return Err(fail(format!(
            "the `transform` of target `{}` fails on this secret, so the pipeline writes nothing to the target: {e}",
            a.target
        )));
    }
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

type TransformResult = std::result::Result<
    secretsync_core::transform::Explained,
    secretsync_core::transform::TransformError,
>;

/// What the target's `transform:` does to the secret (`None`: no block applies to it).
fn transform_of(
    c: &Config,
    a: &ExplainArgs,
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
) -> Option<TransformResult> {
    let t = c.target(&a.target)?;
    if t.transform.is_empty() {
        return None;
    }
    let closure = c.graph.closure(std::slice::from_ref(&a.target));
    let desired = desired_states(c, &closure, sources, stored).ok()?;
    let merged = desired.get(&a.target)?.secrets.get(&a.path)?;
    secretsync_core::transform::explain(&t.transform, &a.path, merged.expose()).transpose()
}

fn transform_text(t: &TransformResult, out: &mut dyn Write) -> std::io::Result<()> {
    use secretsync_core::transform::FinalOrigin;
    let e = match t {
        Ok(e) => e,
        Err(e) => return writeln!(out, "Transform: fails here: {e}"),
    };
    let blocks: Vec<String> = e.blocks.iter().map(|b| (b + 1).to_string()).collect();
    writeln!(
        out,
        "Transformed (transform block{} {}): the keys the target gets",
        if blocks.len() == 1 { "" } else { "s" },
        blocks.join(", ")
    )?;
    let width = e
        .keys
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, o) in &e.keys {
        let from = match o {
            FinalOrigin::Kept => "as merged".to_string(),
            FinalOrigin::From(f) => format!("← {f}"),
            FinalOrigin::Template { block, reads } => format!(
                "← template (block {}) of {}",
                block + 1,
                if reads.is_empty() {
                    "no key".to_string()
                } else {
                    reads.join(", ")
                }
            ),
        };
        writeln!(out, "  {k:<width$}  {from}")?;
    }
    if !e.left_out.is_empty() {
        writeln!(out, "Not sent as such: {}", e.left_out.join(", "))?;
    }
    Ok(())
}

fn transform_json(t: &TransformResult) -> serde_json::Value {
    use secretsync_core::transform::FinalOrigin;
    match t {
        Err(e) => serde_json::json!({"error": e.to_string()}),
        Ok(e) => serde_json::json!({
            "blocks": e.blocks.iter().map(|b| b + 1).collect::<Vec<_>>(),
            "keys": e.keys.iter().map(|(k, o)| match o {
                FinalOrigin::Kept => serde_json::json!({"key": k, "origin": "kept"}),
                FinalOrigin::From(f) => serde_json::json!({"key": k, "origin": "renamed", "from": f}),
                FinalOrigin::Template { block, reads } => serde_json::json!({"key": k, "origin": "template", "block": block + 1, "reads": reads}),
            }).collect::<Vec<_>>(),
            "left_out": e.left_out,
        }),
    }
}
