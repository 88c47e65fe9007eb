//! The merge phase's pure fold: given every source's bundle (read once) and any stored
//! bundles, compute each target's desired state in topological order.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::graph::Import;
use crate::merge::{apply_overrides, merge_bundles};
use crate::secret::{Bundle, Collected};

/// A name that an import needed and nobody provided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "import `{import}` of target `{target}` is not in the merge store; write it there first (run the pipeline that produces it) or remove the import"
)]
pub struct MissingBundle {
    pub target: String,
    pub import: String,
}

/// Desired state of each target in `targets` (which must be closed under dependencies —
/// use [`crate::graph::Graph::closure`]), in execution order. A target is incomplete when any
/// layer it imports, directly or through other targets, is: its `incomplete` lists every
/// skipped path of every such layer (deduplicated).
pub fn desired_states(
    config: &Config,
    targets: &[String],
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
) -> Result<BTreeMap<String, Collected>, MissingBundle> {
    let mut out: BTreeMap<String, Collected> = BTreeMap::new();
    let empty = Vec::new();
    for name in config.graph.order.iter().filter(|n| targets.contains(n)) {
        let mut bundle = Bundle::new();
        let mut incomplete: Vec<String> = Vec::new();
        for import in config.graph.imports.get(name).unwrap_or(&empty) {
            let layer = match import {
                Import::Target(t) => out.get(t),
                Import::Source(s) => sources.get(s),
                Import::Stored(s) => stored.get(s),
            };
            match layer {
                Some(layer) => {
                    merge_bundles(&mut bundle, &layer.secrets);
                    for r in &layer.incomplete {
                        if !incomplete.contains(r) {
                            incomplete.push(r.clone());
                        }
                    }
                }
                None => {
                    return Err(MissingBundle {
                        target: name.clone(),
                        import: import.name().to_string(),
                    });
                }
            }
        }
        if let Some(t) = config.target(name) {
            apply_overrides(&mut bundle, &t.overrides);
        }
        out.insert(
            name.clone(),
            Collected {
                secrets: bundle,
                incomplete,
            },
        );
    }
    Ok(out)
}
