//! Masking values for display: structure and keys stay, every value becomes `**********`.

use serde_json::Value;

pub const MASK: &str = "**********";

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
}
