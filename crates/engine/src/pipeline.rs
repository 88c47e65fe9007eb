//! The pipeline around the pure core: read each needed source once, then fold targets.

use std::collections::BTreeMap;

use secretsync_core::config::Config;
use secretsync_core::graph::Import;
use secretsync_core::plan::desired_states;
use secretsync_core::secret::Bundle;
use tracing::info;

use crate::error::{Error, ErrorKind, Result};
use crate::vault::{VaultClient, read_source};

/// The sources the given targets need, directly or through other targets.
pub fn needed_sources(config: &Config, targets: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        for imp in config.graph.imports.get(t).into_iter().flatten() {
            if let Import::Source(s) = imp
                && !out.contains(s)
            {
                out.push(s.clone());
            }
        }
    }
    out
}

/// Reads every needed source once (sources one after another, each with bounded concurrency).
pub async fn read_sources(
    config: &Config,
    vault: &VaultClient,
    names: &[String],
) -> Result<BTreeMap<String, Bundle>> {
    let mut out = BTreeMap::new();
    for name in names {
        let source = config
            .source(name)
            .ok_or_else(|| Error::config(format!("unknown source `{name}`")))?;
        let bundle = read_source(vault, source, config.vault.concurrency).await?;
        out.insert(name.clone(), bundle);
    }
    Ok(out)
}

/// The merge phase: the desired state of every target in `selected` and its dependencies.
pub async fn merge_phase(
    config: &Config,
    vault: &VaultClient,
    selected: &[String],
    stored: &BTreeMap<String, Bundle>,
) -> Result<BTreeMap<String, Bundle>> {
    let closure = config.graph.closure(selected);
    let sources = read_sources(config, vault, &needed_sources(config, &closure)).await?;
    let desired = desired_states(config, &closure, &sources, stored)
        .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
    info!(targets = desired.len(), "merge phase done");
    Ok(desired)
}
