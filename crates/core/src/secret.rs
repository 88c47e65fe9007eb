//! The secret model: a secret's value is a JSON map held in a type that never prints itself
//! and wipes its strings when dropped. A [`Bundle`] is a set of secrets by relative path.
//!
//! Zeroizing is best effort: [`SecretValue`] wipes the strings it owns when dropped, and the
//! canonical JSON made for writes is wiped after use, but copies made outside this type — the
//! HTTP clients' request and response buffers, serde_json's intermediate buffers, the allocator's
//! freed blocks after a map grows — are out of its reach. The goal is a short lifetime for values
//! in memory, not a guarantee; nothing is ever written to local disk.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use zeroize::Zeroize;

/// A secret's value: the KV map (a JSON object). `Debug` redacts; strings are zeroized when the
/// last copy is dropped.
///
/// Copies share one map (clone is a reference count; [`SecretValue::expose_mut`] copies on
/// write): the same value flows from the source read into every target's desired state, the
/// plan and the report, and at 100,000 secrets separate copies were most of the memory.
#[derive(Clone, PartialEq, Default)]
pub struct SecretValue(Arc<Map<String, Value>>);

impl SecretValue {
    pub fn new(map: Map<String, Value>) -> Self {
        SecretValue(Arc::new(map))
    }

    /// The map, for merge, diff and serialization. Callers must not log it.
    pub fn expose(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The map, to change it: this value's own copy if others share it (the old one stays
    /// with them).
    pub fn expose_mut(&mut self) -> &mut Map<String, Value> {
        Arc::make_mut(&mut self.0)
    }

    /// Canonical JSON: sorted keys (serde_json's map is ordered), no whitespace.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(&*self.0).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue({} keys, redacted)", self.0.len())
    }
}

fn zeroize_value(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(zeroize_value),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (mut k, mut v) in old {
                zeroize_value(&mut v);
                k.zeroize();
            }
        }
        _ => {}
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        // Only the last copy holds the strings alone; earlier drops just release a reference.
        if let Some(map) = Arc::get_mut(&mut self.0) {
            let mut v = Value::Object(std::mem::take(map));
            zeroize_value(&mut v);
        }
    }
}

/// Secrets by relative path (the path below a source's `mount:`), ordered.
pub type Bundle = BTreeMap<String, SecretValue>;

/// One thing a read skipped: a secret (`app/db`) or a whole folder (`app/`, ending in `/`),
/// relative to its source's `mount:` like every secret path, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    pub source: String,
    pub path: String,
    pub reason: String,
}

impl Gap {
    pub fn new(source: &str, path: &str, reason: impl Into<String>) -> Self {
        Gap {
            source: source.to_string(),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// Whether a secret at `path` may be affected: the gap is that secret, or a folder that
    /// holds it. Such a secret is neither written nor deleted.
    pub fn covers(&self, path: &str) -> bool {
        self.path == path || (self.path.ends_with('/') && path.starts_with(&self.path))
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "source `{}`: `{}` {}",
            self.source, self.path, self.reason
        )
    }
}

/// A bundle and what is known to be missing from it. A read is complete only when every
/// folder was listed and every secret read; otherwise `incomplete` says which paths were
/// skipped and why. Whatever is built from an incomplete bundle deletes nothing (a secret
/// missing from it may still exist at the source) and writes nothing at a skipped path (its
/// value there is unknown: a lower layer alone would overwrite the real one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    pub secrets: Bundle,
    /// Empty when complete.
    pub incomplete: Vec<Gap>,
}

impl Collected {
    pub fn complete(secrets: Bundle) -> Self {
        Collected {
            secrets,
            incomplete: Vec::new(),
        }
    }
    pub fn is_complete(&self) -> bool {
        self.incomplete.is_empty()
    }
}

/// A list of skipped paths shortened for a message: the first few and a count of the rest.
pub fn summarize<T: fmt::Display>(reasons: &[T], max: usize) -> String {
    let mut s = reasons
        .iter()
        .take(max)
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if reasons.len() > max {
        s.push_str(&format!("; and {} more", reasons.len() - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_json_is_canonical() {
        let v = SecretValue::new(
            serde_json::from_str(r#"{"b": "sentinel-value-1", "a": {"z": 1, "y": 2}}"#).unwrap(),
        );
        assert_eq!(format!("{v:?}"), "SecretValue(2 keys, redacted)");
        assert_eq!(
            v.canonical_json(),
            r#"{"a":{"y":2,"z":1},"b":"sentinel-value-1"}"#
        );
    }

    /// Copies share one map until one is changed: the change is that copy's own (a merge into
    /// one target's desired state never shows in another's, nor in the source read).
    #[test]
    fn copies_share_until_written() {
        let source = SecretValue::new(serde_json::from_str(r#"{"k": "v"}"#).unwrap());
        let mut target = source.clone();
        assert!(std::ptr::eq(source.expose(), target.expose()));
        target
            .expose_mut()
            .insert("k".into(), serde_json::json!("changed"));
        assert_eq!(source.expose()["k"], "v");
        assert_eq!(target.expose()["k"], "changed");
        assert!(!std::ptr::eq(source.expose(), target.expose()));
    }
}
