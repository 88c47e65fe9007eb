//! `secretsync discover`: what discovery finds (accounts, the filters that matched them, the
//! cache's age) and the targets they become, without syncing anything.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use secretsync_engine::discovery::Found;
use serde_json::json;

use crate::cli::{DiscoverArgs, Output, VersionOutput};
use crate::commands::{env, load_config, plural};

pub async fn run(a: DiscoverArgs) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    if c.discovery.is_empty() {
        anyhow::bail!(crate::commands::Failure {
            code: 1,
            message: "the config has no `discovery:` block (or every block is `enabled: false`); add one (docs/discovery.md)".into(),
        });
    }
    let (c, found) = secretsync_engine::discovery::apply(c, &env, a.refresh_discovery).await?;
    let mut out = std::io::stdout().lock();
    match a.output {
        VersionOutput::Json => {
            let doc = json!({
                "blocks": found.iter().map(|f| json!({
                    "block": f.block,
                    "type": match f.kind {
                        secretsync_core::config::DiscoveryKind::AwsOrganizations => "aws_organizations",
                        secretsync_core::config::DiscoveryKind::IdentityCenter => "identity_center",
                    },
                    "listed": f.listed,
                    "selected": f.accounts.len(),
                    "cache_age_seconds": f.cache_age.map(|d| d.as_secs()),
                    "calls": f.calls,
                    "no_longer_discovered": f.no_longer,
                })).collect::<Vec<_>>(),
                "accounts": found.iter().flat_map(|f| f.accounts.iter().map(move |(acct, matched)| json!({
                    "id": acct.id,
                    "name": acct.name,
                    "state": acct.state,
                    "ou_path": acct.ou_path,
                    "tags": acct.tags,
                    "matched": matched,
                    "block": f.block,
                }))).collect::<Vec<_>>(),
                "targets": found.iter().flat_map(|f| f.targets.iter().map(|d| {
                    let used = c.target(&d.target.name).is_some_and(|t| t == &d.target);
                    json!({
                        "name": d.target.name,
                        "account_id": d.account_id,
                        "account_name": d.account_name,
                        "region": d.region,
                        "secret_prefix": d.target.policy.secret_prefix,
                        "imports": d.target.imports,
                        "used": used,
                        "block": d.block,
                    })
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        VersionOutput::Text => {
            for f in &found {
                let source = match f.cache_age {
                    Some(age) => format!("from the cache, {}s old", age.as_secs()),
                    None => format!("asked AWS Organizations: {} calls", f.calls),
                };
                writeln!(
                    out,
                    "Discovery block {}: {} of {} account{} selected ({source})",
                    f.block + 1,
                    f.accounts.len(),
                    f.listed,
                    plural(f.listed)
                )?;
                for (acct, matched) in &f.accounts {
                    writeln!(
                        out,
                        "  {}  {}  {}  {}{}",
                        acct.id,
                        acct.name,
                        acct.state,
                        acct.ou_path,
                        if matched.is_empty() {
                            String::new()
                        } else {
                            format!("  [{}]", matched.join("; "))
                        }
                    )?;
                }
                writeln!(out, "  targets:")?;
                for d in &f.targets {
                    let used = c.target(&d.target.name).is_some_and(|t| t == &d.target);
                    writeln!(
                        out,
                        "    {}  (account {}, {}, prefix `{}`){}",
                        d.target.name,
                        d.account_id,
                        d.region,
                        d.target.policy.secret_prefix,
                        if used {
                            ""
                        } else {
                            "  (not used: a target of the config has this name)"
                        }
                    )?;
                }
                for g in &f.no_longer {
                    writeln!(
                        out,
                        "  no longer discovered: {g} (its account stopped matching; nothing is deleted in it)"
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Says which targets are no longer discovered, before the plans (text output; JSON and the
/// others get it in the log).
pub fn report_gone(found: &[Found], output: Output) {
    if !matches!(output, Output::Text | Output::SideBySide) {
        return;
    }
    for g in found.iter().flat_map(|f| f.no_longer.iter()) {
        println!(
            "Target {g}: no longer discovered (its account stopped matching); nothing is deleted in it"
        );
    }
}
