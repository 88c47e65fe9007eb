//! The `--merge-only` output: each selected target's desired state, masked by the policy,
//! as text or JSON (`{"targets": {name: {path: value}}, "incomplete": {name: [gap]}}`). Pure:
//! writes to the `out` it is given.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use crate::mask::MaskPolicy;
use crate::secret::{Bundle, Collected};

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A bundle as a JSON object of masked values.
pub fn bundle_json(b: &Bundle, policy: &MaskPolicy) -> Value {
    Value::Object(
        b.iter()
            .map(|(path, v)| (path.clone(), policy.display_object(v.expose())))
            .collect(),
    )
}

/// One bundle as a JSON object of masked values, serialized secret by secret (a masked copy
/// of one value at a time, never of the whole bundle).
struct MaskedBundle<'a>(&'a Bundle, &'a MaskPolicy);

impl Serialize for MaskedBundle<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (path, v) in self.0 {
            m.serialize_entry(path, &self.1.display_object(v.expose()))?;
        }
        m.end()
    }
}

/// `{"incomplete": {...}?, "targets": {name: bundle}}`, keys in the order serde_json's maps
/// print them, streamed.
struct Document<'a> {
    desired: &'a BTreeMap<String, Collected>,
    selected: BTreeSet<&'a str>,
    policy: &'a MaskPolicy,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let found = || {
            self.selected
                .iter()
                .filter_map(|t| self.desired.get(*t).map(|d| (*t, d)))
        };
        let incomplete: BTreeMap<&str, Vec<String>> = found()
            .filter(|(_, d)| !d.is_complete())
            .map(|(t, d)| (t, d.incomplete.iter().map(|g| g.to_string()).collect()))
            .collect();
        let mut m = s.serialize_map(None)?;
        if !incomplete.is_empty() {
            m.serialize_entry("incomplete", &incomplete)?;
        }
        struct Targets<'b>(&'b Document<'b>);
        impl Serialize for Targets<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let d = self.0;
                let mut m = s.serialize_map(None)?;
                for t in &d.selected {
                    if let Some(c) = d.desired.get(*t) {
                        m.serialize_entry(t, &MaskedBundle(&c.secrets, d.policy))?;
                    }
                }
                m.end()
            }
        }
        m.serialize_entry("targets", &Targets(self))?;
        m.end()
    }
}

/// Writes the desired states of `selected` (in that order) as JSON or text. The JSON document
/// is written as it is serialized (memory stays flat at any number of secrets).
pub fn render(
    out: &mut dyn Write,
    desired: &BTreeMap<String, Collected>,
    selected: &[String],
    as_json: bool,
    policy: &MaskPolicy,
) -> io::Result<()> {
    if as_json {
        let doc = Document {
            desired,
            selected: selected.iter().map(String::as_str).collect(),
            policy,
        };
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::other)?;
        return writeln!(out);
    }
    for t in selected {
        let Some(c) = desired.get(t) else { continue };
        let b = &c.secrets;
        writeln!(out, "target {t}: {} secret{}", b.len(), plural(b.len()))?;
        for r in &c.incomplete {
            writeln!(out, "  incomplete: {r}")?;
        }
        for (path, v) in b {
            writeln!(out, "  {path} = {}", policy.display_object(v.expose()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::mask::DEFAULT_PATTERNS;

    use super::*;
    use crate::secret::SecretValue;
    use serde_json::json;

    /// `--merge-only` masks like every renderer: sensitive keys stay masked at any depth,
    /// inside lists of objects too, in text and JSON, even under `--show-values`.
    #[test]
    fn merge_only_output_masks_sensitive_keys_at_any_depth() {
        let value = json!({
            "users": [{"name": "visible-alice", "password": "sentinel-merge-pw"}],
            "db": {"replicas": [{"host": "visible-host", "secret": "sentinel-merge-secret"}]},
            "api_token": "sentinel-merge-token"
        });
        let bundle = Bundle::from([(
            "app/db".to_string(),
            SecretValue::new(value.as_object().unwrap().clone()),
        )]);
        let desired = BTreeMap::from([("prod".to_string(), Collected::complete(bundle))]);
        let selected = ["prod".to_string()];
        let patterns = || DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect();
        for as_json in [false, true] {
            for (policy, shows) in [
                (MaskPolicy::new(false, patterns()), false),
                (MaskPolicy::new(true, patterns()), true),
            ] {
                let mut out = Vec::new();
                render(&mut out, &desired, &selected, as_json, &policy).unwrap();
                let out = String::from_utf8(out).unwrap();
                assert!(!out.contains("sentinel-merge"), "json {as_json}: {out}");
                assert_eq!(
                    out.contains("visible-alice"),
                    shows,
                    "json {as_json}: {out}"
                );
                assert_eq!(out.contains("visible-host"), shows, "json {as_json}: {out}");
            }
            // With pattern masking off, `--show-values` shows them: the test can fail.
            let mut out = Vec::new();
            let all = MaskPolicy::new(true, vec![]);
            render(&mut out, &desired, &selected, as_json, &all).unwrap();
            assert!(
                String::from_utf8(out)
                    .unwrap()
                    .contains("sentinel-merge-pw")
            );
        }
    }
}
