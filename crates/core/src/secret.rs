//! The secret model: a secret's value is a JSON map held in a type that never prints itself
//! and wipes its strings when dropped. A [`Bundle`] is a set of secrets by relative path.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// A secret's value: the KV map (a JSON object). `Debug` redacts; strings are zeroized on drop.
#[derive(Clone, PartialEq, Default)]
pub struct SecretValue(Map<String, Value>);

impl SecretValue {
    pub fn new(map: Map<String, Value>) -> Self {
        SecretValue(map)
    }

    /// The map, for merge, diff and serialization. Callers must not log it.
    pub fn expose(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn expose_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.0
    }

    /// Canonical JSON: sorted keys (serde_json's map is ordered), no whitespace.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// SHA-256 of the canonical JSON, hex encoded: the content-hash tag on managed secrets.
    pub fn content_hash(&self) -> String {
        let mut json = self.canonical_json();
        let hash = hex::encode(Sha256::digest(json.as_bytes()));
        json.zeroize();
        hash
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
        let mut v = Value::Object(std::mem::take(&mut self.0));
        zeroize_value(&mut v);
    }
}

/// Secrets by relative path (the path below a source's `mount:`), ordered.
pub type Bundle = BTreeMap<String, SecretValue>;

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
        assert_eq!(v.content_hash().len(), 64);
    }
}
