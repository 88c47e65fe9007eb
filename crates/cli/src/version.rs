//! `secretsync version list|show`: the history the merge store keeps (`engine::history`).
//! Values are masked unless `--show-values` (and sensitive-looking keys stay masked then too,
//! like every other output).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};
use secretsync_core::diff::key_changes;
use secretsync_core::history::{Revision, VersionRecord};
use secretsync_core::mask::MaskPolicy;
use secretsync_engine::history::{HISTORY_OFF, History};
use serde_json::{Value, json};

use crate::cli::{
    VersionCommand, VersionList, VersionOutput, VersionRollback, VersionShow, VersionUnpin,
};
use crate::commands::{Failure, env, load_config};

pub async fn run(cmd: VersionCommand) -> Result<ExitCode> {
    match cmd {
        VersionCommand::List(a) => list(a).await,
        VersionCommand::Show(a) => show(a).await,
        VersionCommand::Rollback(a) => Box::pin(rollback(a)).await,
        VersionCommand::Unpin(a) => unpin(a).await,
    }
}

async fn rollback(a: VersionRollback) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    open(&c, &a.target).await?;
    let opts = secretsync_engine::pipeline::RunOptions {
        dry_run: a.dry_run,
        targets: vec![a.target.clone()],
        lock_timeout: a.lock_timeout,
        cancel: crate::commands::cancel_on_signals(),
        policies: crate::commands::load_policies(&c, &a.config.config)?,
        ..Default::default()
    };
    let mut reporter = crate::report::Printer::new(
        a.output,
        c.masking.policy(a.show_values),
        false,
        a.dry_run,
        false,
    );
    let summary = secretsync_engine::restore::restore(
        &c,
        &opts,
        &env,
        &mut reporter,
        &a.target,
        &secretsync_engine::restore::What::Secret {
            path: a.path.clone(),
            version: a.version,
        },
    )
    .await?;
    crate::commands::conclude(&mut reporter, summary, a.exit_code)
}

async fn unpin(a: VersionUnpin) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    open(&c, &a.target).await?;
    let released =
        secretsync_engine::restore::unpin(&c, &env, &a.target, a.path.as_deref()).await?;
    if released.is_empty() {
        bail!(Failure {
            code: 1,
            message: match &a.path {
                Some(p) => format!("`{p}` is not pinned in target `{}`", a.target),
                None => format!("target `{}` has no pins", a.target),
            },
        });
    }
    println!(
        "Unpinned in target `{}`: {}; the next pipeline run syncs {} from Vault again",
        a.target,
        released.join(", "),
        if released.len() == 1 { "it" } else { "them" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The history of the config's merge store, or the error that says history is off.
async fn open(config: &secretsync_core::config::Config, target: &str) -> Result<History> {
    if config.target(target).is_none() {
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        bail!(Failure {
            code: 1,
            message: format!(
                "no target `{target}` in the config; its targets: {}",
                names.join(", ")
            ),
        });
    }
    match secretsync_engine::history::open(config, &env).await? {
        Some(h) => Ok(h),
        None => bail!(Failure {
            code: 1,
            message: HISTORY_OFF.to_string(),
        }),
    }
}

async fn list(a: VersionList) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    let history = open(&c, &a.target).await?;
    let mut out = std::io::stdout().lock();
    match &a.path {
        Some(path) => {
            let versions = history.versions(&a.target, path).await?;
            let pins = history
                .latest(&a.target)
                .await?
                .map(|r| r.pins)
                .unwrap_or_default();
            let pinned = |v: &VersionRecord| pins.get(path) == Some(&v.version);
            if versions.is_empty() {
                bail!(Failure {
                    code: 1,
                    message: format!(
                        "no recorded versions of `{path}` in target `{}` ({}); `secretsync version list --target {}` lists what its applies changed",
                        a.target,
                        history.location(),
                        a.target
                    ),
                });
            }
            match a.output {
                VersionOutput::Json => {
                    let doc = json!({
                        "target": a.target,
                        "path": path,
                        "versions": versions.iter().map(|v| json!({
                            "version": v.version,
                            "time": v.time,
                            "change": v.change,
                            "author": v.author,
                            "run_id": v.run_id,
                            "revision": v.revision,
                            "backend_version": v.backend_version,
                            "pinned": pinned(v),
                        })).collect::<Vec<_>>(),
                    });
                    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
                }
                VersionOutput::Text => {
                    writeln!(
                        out,
                        "Versions of `{path}` in target `{}` ({} kept):",
                        a.target,
                        versions.len()
                    )?;
                    let rows: Vec<[String; 6]> = versions
                        .iter()
                        .map(|v| {
                            [
                                format!("v{}", v.version),
                                v.time.clone(),
                                v.change.to_string(),
                                v.author.clone(),
                                v.run_id.clone(),
                                if pinned(v) {
                                    "pinned".into()
                                } else {
                                    String::new()
                                },
                            ]
                        })
                        .collect();
                    table(
                        &mut out,
                        ["VERSION", "TIME", "CHANGE", "AUTHOR", "RUN ID", ""],
                        &rows,
                    )?;
                }
            }
        }
        None => {
            let revisions = history.revisions(&a.target).await?;
            if revisions.is_empty() {
                bail!(Failure {
                    code: 1,
                    message: format!(
                        "no recorded revisions of target `{}` ({}): nothing has been applied to it with history on",
                        a.target,
                        history.location()
                    ),
                });
            }
            match a.output {
                VersionOutput::Json => {
                    let doc = json!({
                        "target": a.target,
                        "revisions": revisions.iter().map(revision_json).collect::<Vec<_>>(),
                    });
                    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
                }
                VersionOutput::Text => {
                    writeln!(
                        out,
                        "Revisions of target `{}` ({} kept):",
                        a.target,
                        revisions.len()
                    )?;
                    let rows: Vec<[String; 6]> = revisions
                        .iter()
                        .map(|r| {
                            [
                                format!("r{}", r.revision),
                                r.time.clone(),
                                made(r),
                                r.author.clone(),
                                r.run_id.clone(),
                                if r.pins.is_empty() {
                                    String::new()
                                } else {
                                    format!("{} pinned", r.pins.len())
                                },
                            ]
                        })
                        .collect();
                    table(
                        &mut out,
                        ["REVISION", "TIME", "CHANGES", "AUTHOR", "RUN ID", ""],
                        &rows,
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `2 create, 1 update`.
fn made(r: &Revision) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in &r.made {
        *counts.entry(m.change.as_str()).or_default() += 1;
    }
    if counts.is_empty() {
        return "pins only".into();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn revision_json(r: &Revision) -> Value {
    json!({
        "revision": r.revision,
        "time": r.time,
        "author": r.author,
        "run_id": r.run_id,
        "made": r.made,
        "secrets": r.live().count(),
        "pins": r.pins,
    })
}

/// A left-aligned table with a header.
fn table<const N: usize>(
    out: &mut dyn Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "  {}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "  {}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// A version's value as it may be shown.
fn shown(v: &VersionRecord, policy: &MaskPolicy) -> Value {
    v.value
        .as_ref()
        .map(|x| policy.display_object(x.expose()))
        .unwrap_or(Value::Null)
}

async fn one(history: &History, target: &str, path: &str, n: u64) -> Result<VersionRecord> {
    if let Some(v) = history.version(target, path, n).await? {
        return Ok(v);
    }
    let kept = history.version_numbers(target, path).await?;
    let kept = match (kept.first(), kept.last()) {
        (Some(a), Some(b)) if a == b => format!("kept: v{a}"),
        (Some(a), Some(b)) => format!("kept: v{a} to v{b}"),
        _ => "none kept".into(),
    };
    bail!(Failure {
        code: 1,
        message: format!(
            "version {n} of `{path}` in target `{target}` is not in the history ({kept}); `secretsync version list --target {target} --path {path}` lists them"
        ),
    })
}

async fn show(a: VersionShow) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    let history = open(&c, &a.target).await?;
    let policy = c.masking.policy(a.show_values);
    let v = one(&history, &a.target, &a.path, a.version).await?;
    let mut out = std::io::stdout().lock();
    let meta = |v: &VersionRecord| {
        json!({
            "version": v.version,
            "time": v.time,
            "change": v.change,
            "author": v.author,
            "run_id": v.run_id,
            "revision": v.revision,
            "backend_version": v.backend_version,
            "fingerprint": v.fingerprint,
            "key_id": v.key_id,
        })
    };
    let Some(from) = a.diff_from else {
        match a.output {
            VersionOutput::Json => {
                let mut doc = meta(&v);
                doc["target"] = json!(a.target);
                doc["path"] = json!(a.path);
                doc["value"] = shown(&v, &policy);
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            }
            VersionOutput::Text => {
                writeln!(
                    out,
                    "Version v{} of `{}` in target `{}`: {} at {} by {} (run {}, revision r{})",
                    v.version, a.path, a.target, v.change, v.time, v.author, v.run_id, v.revision
                )?;
                if let Some(b) = &v.backend_version {
                    writeln!(out, "  backend version: {b}")?;
                }
                match &v.value {
                    None => writeln!(out, "  value: none (the secret was deleted)")?,
                    Some(x) => {
                        for (k, val) in x.expose() {
                            writeln!(out, "  {k}: {}", policy.display_inline(k, val))?;
                        }
                    }
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let old = one(&history, &a.target, &a.path, from).await?;
    let empty = Value::Object(Default::default());
    let value_of = |v: &VersionRecord| v.value.as_ref().map(|x| Value::Object(x.expose().clone()));
    let (ov, nv) = (value_of(&old), value_of(&v));
    let keys = key_changes(ov.as_ref().unwrap_or(&empty), nv.as_ref().unwrap_or(&empty));
    let at = |val: &Option<Value>, key: &str| -> Option<Value> {
        let mut cur = val.as_ref()?;
        for part in key.split('.') {
            cur = cur.as_object()?.get(part)?;
        }
        Some(policy.display(key, cur))
    };
    match a.output {
        VersionOutput::Json => {
            let doc = json!({
                "target": a.target,
                "path": a.path,
                "from": meta(&old),
                "to": meta(&v),
                "keys": keys.iter().map(|k| json!({
                    "key": k.key,
                    "type": k.kind,
                    "old": at(&ov, &k.key),
                    "new": at(&nv, &k.key),
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        VersionOutput::Text => {
            writeln!(
                out,
                "`{}` in target `{}`: v{} ({}, {}) → v{} ({}, {}): {} key change(s)",
                a.path,
                a.target,
                old.version,
                old.change,
                old.time,
                v.version,
                v.change,
                v.time,
                keys.len()
            )?;
            let inline = |x: Option<Value>| match x {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => "(none)".into(),
            };
            for k in &keys {
                writeln!(
                    out,
                    "  {} {}: {} → {}",
                    match k.kind {
                        secretsync_core::diff::KeyChangeKind::Added => "+",
                        secretsync_core::diff::KeyChangeKind::Removed => "-",
                        secretsync_core::diff::KeyChangeKind::Changed => "~",
                    },
                    k.key,
                    inline(at(&ov, &k.key)),
                    inline(at(&nv, &k.key))
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
