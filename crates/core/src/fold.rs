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
        let mut incomplete: Vec<crate::secret::Gap> = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::secret;
    use serde_json::json;

    fn config() -> Config {
        let yaml = r#"
vault_sources:
  - mount: secret/a/
  - mount: secret/b/
targets:
  - name: one
    type: aws_secretsmanager
    region: us-east-1
    imports: [a]
  - name: two
    type: aws_secretsmanager
    region: us-east-1
    imports: [one, b]
  - name: other
    type: aws_secretsmanager
    region: us-east-1
    imports: [b]
"#;
        crate::config::load(yaml, &|_| None)
            .config
            .expect("config loads")
    }

    #[test]
    fn incompleteness_flows_through_target_imports() {
        let c = config();
        let a = Collected {
            secrets: Bundle::from([("x".into(), secret(json!({"k": 1})))]),
            incomplete: vec![crate::secret::Gap::new(
                "a",
                "dir/",
                "could not be listed (permission denied)",
            )],
        };
        let b = Collected::complete(Bundle::from([("y".into(), secret(json!({"k": 2})))]));
        let sources = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        let all: Vec<String> = c.graph.order.clone();
        let out = desired_states(&c, &all, &sources, &BTreeMap::new()).unwrap();
        assert_eq!(out["one"].incomplete, sources["a"].incomplete);
        // `two` imports `one`: incomplete too, through the target, listed once.
        assert_eq!(out["two"].incomplete, sources["a"].incomplete);
        assert_eq!(out["two"].secrets.len(), 2);
        // `other` only imports the complete source.
        assert!(out["other"].is_complete());
    }
}
