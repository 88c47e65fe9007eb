//! Masking values for display. By default every value is masked (`**********`): structure and
//! keys stay, leaves are replaced. `--show-values` reveals values except under keys whose name
//! looks sensitive (password, secret, token, private key, API/access key, credential — the
//! patterns are configurable), which stay masked unless pattern masking is explicitly off.

use serde_json::Value;

pub const MASK: &str = "**********";

/// The default sensitive-name patterns (matched case-insensitively, ignoring `-`, `_`, `.` and
/// spaces, anywhere in a key's path).
pub const DEFAULT_PATTERNS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "privatekey",
    "apikey",
    "accesskey",
    "credential",
];

/// Replaces every leaf value (string, number, boolean) with [`MASK`]; `null` stays `null`
/// (it carries no secret and tells the reader the key is set to nothing).
pub fn mask_value(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), mask_value(v))).collect())
        }
        _ => Value::String(MASK.into()),
    }
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// How values are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskPolicy {
    show_values: bool,
    /// Normalized patterns; empty when pattern masking is off.
    patterns: Vec<String>,
}

impl Default for MaskPolicy {
    fn default() -> Self {
        MaskPolicy::new(
            false,
            DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
        )
    }
}

impl MaskPolicy {
    /// `patterns` empty switches pattern masking off.
    pub fn new(show_values: bool, patterns: Vec<String>) -> Self {
        MaskPolicy {
            show_values,
            patterns: patterns
                .iter()
                .map(|p| normalize(p))
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    pub fn shows_values(&self) -> bool {
        self.show_values
    }

    /// Whether a key path (`db.password`) looks sensitive.
    pub fn is_sensitive(&self, key_path: &str) -> bool {
        let n = normalize(key_path);
        self.patterns.iter().any(|p| n.contains(p.as_str()))
    }

    /// A value as it may be shown under `key_path` (empty for the whole secret). Sensitive
    /// keys are masked at any depth. A list is transparent for matching: the items of
    /// `users: [{password: …}]` are matched under `users`, so the password's path is
    /// `users.password` (and stays masked).
    pub fn display(&self, key_path: &str, v: &Value) -> Value {
        if !self.show_values || (!key_path.is_empty() && self.is_sensitive(key_path)) {
            return mask_value(v);
        }
        match v {
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.display(key_path, i)).collect())
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let p = if key_path.is_empty() {
                            k.clone()
                        } else {
                            format!("{key_path}.{k}")
                        };
                        (k.clone(), self.display(&p, v))
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A whole secret (its KV map) as it may be shown. Unlike `display("", &Value::Object(
    /// map.clone()))` this makes no unmasked copy of the values first.
    pub fn display_object(&self, m: &serde_json::Map<String, Value>) -> Value {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), self.display(k, v)))
                .collect(),
        )
    }

    /// A value rendered on one line for text output.
    pub fn display_inline(&self, key_path: &str, v: &Value) -> String {
        match self.display(key_path, v) {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_leaves_keeps_shape() {
        assert_eq!(
            mask_value(&json!({"a": "s3cret", "b": [1, true], "c": {"d": null}})),
            json!({"a": MASK, "b": [MASK, MASK], "c": {"d": null}})
        );
    }

    #[test]
    fn show_values_keeps_sensitive_keys_masked() {
        let v = json!({"user": "app", "DB_Password": "p", "nested": {"api-key": "k", "port": 1}, "credentials": {"x": 1}});
        let shown = MaskPolicy::new(
            true,
            DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
        )
        .display("", &v);
        assert_eq!(
            shown,
            json!({"user": "app", "DB_Password": MASK, "nested": {"api-key": MASK, "port": 1}, "credentials": {"x": MASK}})
        );
        assert_eq!(MaskPolicy::new(true, vec![]).display("", &v), v);
        assert_eq!(MaskPolicy::default().display("", &v), mask_value(&v));
    }

    fn shown(v: &Value) -> Value {
        MaskPolicy::new(
            true,
            DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
        )
        .display("", v)
    }

    #[test]
    fn sensitive_keys_inside_lists_stay_masked() {
        let v = json!({
            "users": [{"name": "a", "password": "sentinel-1"}, {"name": "b", "Password": "sentinel-2"}],
            "deep": [[{"creds": {"api_key": "sentinel-3", "host": "h"}}]],
            "mixed": [1, "x", null, {"token": "sentinel-4"}],
            "tokens": ["sentinel-5"],
            "plain": [{"port": 5432}]
        });
        assert_eq!(
            shown(&v),
            json!({
                "users": [{"name": "a", "password": MASK}, {"name": "b", "Password": MASK}],
                "deep": [[{"creds": {"api_key": MASK, "host": "h"}}]],
                "mixed": [1, "x", null, {"token": MASK}],
                "tokens": [MASK],
                "plain": [{"port": 5432}]
            })
        );
        // Under a key path given by a renderer (a changed list is one key change).
        let list = &v["users"];
        assert!(
            !MaskPolicy::default()
                .display_inline("users", list)
                .contains("sentinel")
        );
        let inline = MaskPolicy::new(
            true,
            DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
        )
        .display_inline("users", list);
        assert!(
            !inline.contains("sentinel") && inline.contains("\"a\""),
            "{inline}"
        );
    }
}
