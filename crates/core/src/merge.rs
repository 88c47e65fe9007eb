//! Deep merge, the rule that folds layers of secrets into a target's desired state.
//!
//! * maps merge recursively;
//! * lists append the later items, except that an item deep-equal to one already in the
//!   list is not appended again (so a diamond import — `c` importing `a` and `b`, both
//!   importing `base` — never duplicates `base`'s items; duplicates within the first layer
//!   are kept as they are);
//! * scalars: the later value wins; on a type conflict the later value wins;
//! * JSON `null` in the later layer keeps the earlier value (a `null` with no earlier value is
//!   kept as `null`).
//!
//! The merge is associative and has the empty map as identity when the layers agree on the
//! type at each path (a type conflict takes the later value, which is not associative).

use serde_json::{Map, Value};

use crate::secret::{Bundle, SecretValue};

/// Merges `later` into `earlier` in place.
pub fn deep_merge(earlier: &mut Value, later: &Value) {
    match (earlier, later) {
        (_, Value::Null) => {}
        (Value::Object(a), Value::Object(b)) => merge_maps(a, b),
        (Value::Array(a), Value::Array(b)) => {
            for item in b {
                if !a.contains(item) {
                    a.push(item.clone());
                }
            }
        }
        (slot, later) => *slot = later.clone(),
    }
}

/// Merges the map `later` into the map `earlier` in place.
pub fn merge_maps(earlier: &mut Map<String, Value>, later: &Map<String, Value>) {
    for (key, value) in later {
        match earlier.get_mut(key) {
            Some(slot) => deep_merge(slot, value),
            None => {
                earlier.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Merges bundle `later` into `earlier`: different paths are unioned, the same path is
/// deep-merged.
pub fn merge_bundles(earlier: &mut Bundle, later: &Bundle) {
    for (path, value) in later {
        match earlier.get_mut(path) {
            Some(slot) => merge_maps(slot.expose_mut(), value.expose()),
            None => {
                earlier.insert(path.clone(), value.clone());
            }
        }
    }
}

/// Deep-merges `overrides` into every secret of `bundle`.
pub fn apply_overrides(bundle: &mut Bundle, overrides: &Map<String, Value>) {
    if overrides.is_empty() {
        return;
    }
    for value in bundle.values_mut() {
        merge_maps(value.expose_mut(), overrides);
    }
}

/// Merges layers in order into one bundle.
pub fn fold<'a>(layers: impl IntoIterator<Item = &'a Bundle>) -> Bundle {
    let mut out = Bundle::new();
    for layer in layers {
        merge_bundles(&mut out, layer);
    }
    out
}

#[doc(hidden)]
pub fn secret(v: Value) -> SecretValue {
    match v {
        Value::Object(m) => SecretValue::new(m),
        _ => SecretValue::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(a: Value, b: Value, expected: Value) {
        let mut out = a;
        deep_merge(&mut out, &b);
        assert_eq!(out, expected);
    }

    #[test]
    fn seed_example() {
        check(
            json!({"api_keys": ["key1", "key2"], "config": {"timeout": 30, "retries": 3}}),
            json!({"api_keys": ["key3"], "config": {"timeout": 60, "debug": true}}),
            json!({"api_keys": ["key1", "key2", "key3"], "config": {"timeout": 60, "retries": 3, "debug": true}}),
        );
    }

    #[test]
    fn rules() {
        // scalar: later wins
        check(json!({"a": 1}), json!({"a": 2}), json!({"a": 2}));
        // type conflict: later wins
        check(json!({"a": [1]}), json!({"a": "x"}), json!({"a": "x"}));
        check(json!({"a": {"b": 1}}), json!({"a": 5}), json!({"a": 5}));
        // null keeps the earlier value; with no earlier value it is kept as null
        check(
            json!({"a": 1}),
            json!({"a": null, "b": null}),
            json!({"a": 1, "b": null}),
        );
        // lists append without repeating equal items; the first layer's own duplicates stay
        check(
            json!({"l": [1, 1, {"x": 1}]}),
            json!({"l": [{"x": 1}, 2, 2]}),
            json!({"l": [1, 1, {"x": 1}, 2]}),
        );
    }

    #[test]
    fn diamond_import_does_not_duplicate_list_items() {
        let base = Bundle::from([("app".to_string(), secret(json!({"hosts": ["a", "b"]})))]);
        let mut left = base.clone();
        merge_bundles(
            &mut left,
            &Bundle::from([("app".to_string(), secret(json!({"hosts": ["l"]})))]),
        );
        let mut right = base.clone();
        merge_bundles(
            &mut right,
            &Bundle::from([("app".to_string(), secret(json!({"hosts": ["r"]})))]),
        );
        let top = fold([&left, &right]);
        assert_eq!(top["app"].expose()["hosts"], json!(["a", "b", "l", "r"]));
    }

    #[test]
    fn overrides_reach_every_secret() {
        let mut b = Bundle::from([
            ("x".to_string(), secret(json!({"k": 1}))),
            ("y/z".to_string(), secret(json!({"environment": "dev"}))),
        ]);
        apply_overrides(&mut b, json!({"environment": "prod"}).as_object().unwrap());
        assert_eq!(b["x"].expose()["environment"], json!("prod"));
        assert_eq!(b["y/z"].expose()["environment"], json!("prod"));
    }

    // Values whose type is fixed by the key name, so layers agree on types per path.
    fn typed_map(depth: u32) -> BoxedStrategy<Value> {
        let scalar = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
            Just(Value::Null)
        ];
        let list = prop::collection::vec(0i64..4, 0..4).prop_map(|v| json!(v));
        let leaf = (
            prop::collection::btree_map("s[0-3]", scalar, 0..4),
            prop::collection::btree_map("l[0-3]", list, 0..3),
        )
            .prop_map(|(s, l)| {
                let mut m: Map<String, Value> = s.into_iter().collect();
                m.extend(l);
                Value::Object(m)
            });
        if depth == 0 {
            return leaf.boxed();
        }
        (
            leaf,
            prop::collection::btree_map("m[0-2]", typed_map(depth - 1), 0..3),
        )
            .prop_map(|(leaf, nested)| {
                let mut m = leaf.as_object().cloned().unwrap_or_default();
                m.extend(nested);
                Value::Object(m)
            })
            .boxed()
    }

    fn merged(a: &Value, b: &Value) -> Value {
        let mut out = a.clone();
        deep_merge(&mut out, b);
        out
    }

    proptest! {
        #[test]
        fn associative(a in typed_map(2), b in typed_map(2), c in typed_map(2)) {
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        }

        #[test]
        fn empty_map_is_identity(a in typed_map(2)) {
            prop_assert_eq!(merged(&a, &json!({})), a.clone());
            // Merging into empty keeps everything except that nulls stay null.
            prop_assert_eq!(merged(&json!({}), &a), a);
        }

        #[test]
        fn keys_are_the_union(a in typed_map(1), b in typed_map(1)) {
            let m = merged(&a, &b);
            let keys: std::collections::BTreeSet<_> = m.as_object().unwrap().keys().cloned().collect();
            let want: std::collections::BTreeSet<_> = a.as_object().unwrap().keys().chain(b.as_object().unwrap().keys()).cloned().collect();
            prop_assert_eq!(keys, want);
        }

        #[test]
        fn last_scalar_wins(a in typed_map(0), b in typed_map(0)) {
            let m = merged(&a, &b);
            for (k, v) in b.as_object().unwrap() {
                if k.starts_with('s') && !v.is_null() {
                    prop_assert_eq!(&m[k], v);
                }
            }
        }

        #[test]
        fn idempotent(a in typed_map(2)) {
            let twice = merged(&a, &a);
            // lists: the first layer keeps its own duplicates, nothing is added
            prop_assert_eq!(twice, a);
        }
    }
}
