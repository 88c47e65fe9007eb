//! Per-target transformations (`transform:`), applied to a target's desired state after the
//! merge and before the diff (docs/transform.md). A target has a list of blocks, applied in
//! order; each block applies to the secrets its `paths` globs select (all without `paths`),
//! in this order:
//!
//! 1. `template`: new top-level keys rendered from the secret's keys as merged (minijinja,
//!    strict: a template naming a key the secret lacks is an error naming both, never an
//!    empty string);
//! 2. `include` / `exclude`: globs over dotted key paths (`options.ssl`; `*` within a part,
//!    `**` across parts) — a key is kept when it or one of its parents matches an `include`
//!    (every key without `include`) and neither it nor a parent matches an `exclude`; the
//!    template's keys are not filtered;
//! 3. `rename`: top-level keys (`old: new`);
//! 4. `flatten`: nested objects become top-level keys joined by the separator;
//! 5. `case`: every key name upper- or lower-cased.
//!
//! Two keys that would get the same name (a rename onto an existing key, a flatten or a case
//! change that collides) are an error naming the secret and both keys: nothing is silently
//! dropped. Errors never hold a value.
//!
//! ```yaml
//! targets:
//!   - name: app
//!     type: aws_secretsmanager
//!     region: us-east-1
//!     imports: [base]
//!     transform:
//!       exclude: ["debug_*"]
//!       rename: { password: db_password }
//!       template: { DATABASE_URL: "postgres://{{ user }}:{{ password | percent_encode }}@{{ host }}:{{ port }}/{{ db }}" }
//!       case: upper
//! ```

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::secret::{Collected, SecretValue};

/// How key names are cased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyCase {
    #[default]
    None,
    Upper,
    Lower,
}

/// One `transform:` block, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransformConfig {
    /// Globs over relative paths (`/`-separated); empty: every secret.
    pub paths: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Top-level `old` → `new`, in config order.
    pub rename: Vec<(String, String)>,
    /// New top-level key → template source, in config order.
    pub template: Vec<(String, String)>,
    pub case: KeyCase,
    pub flatten: Option<String>,
}

/// Why a secret could not be transformed (names only, never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for TransformError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "secret `{}`: {}", self.path, self.message)
    }
}

/// What a transformation did to the keys of one secret, for `explain`: new key → where it
/// came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Rendered by a template that reads these keys.
    Template { block: usize, reads: Vec<String> },
    /// The key `from`, renamed, flattened or re-cased.
    Renamed { from: String },
}

/// A glob over `sep`-separated text: `*` matches within one part, `**` any number of parts,
/// `?` one character other than `sep`.
pub fn glob_match(pattern: &str, text: &str, sep: char) -> bool {
    fn go(p: &[char], t: &[char], sep: char) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') if p.get(1) == Some(&'*') => {
                // `**` (and a following separator) matches any run, separators included.
                let rest = if p.get(2) == Some(&sep) {
                    &p[3..]
                } else {
                    &p[2..]
                };
                (0..=t.len()).any(|i| go(rest, &t[i..], sep))
            }
            Some('*') => {
                let mut i = 0;
                loop {
                    if go(&p[1..], &t[i..], sep) {
                        return true;
                    }
                    if i == t.len() || t[i] == sep {
                        return false;
                    }
                    i += 1;
                }
            }
            Some('?') => !t.is_empty() && t[0] != sep && go(&p[1..], &t[1..], sep),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..], sep),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t, sep)
}

/// Checks a template's syntax (for validation): `Err` is the parser's message.
pub fn check_template(source: &str) -> Result<(), String> {
    let env = environment();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // Jinja's `urlencode` keeps `/`; a password in a URL's user part needs everything but
    // RFC 3986's unreserved characters encoded.
    env.add_filter("percent_encode", |s: String| -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    });
    env
}

/// Whether the dotted key path exists in `map`.
fn has_path(map: &Map<String, Value>, path: &str) -> bool {
    if map.contains_key(path) {
        return true;
    }
    let mut cur = map;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        match cur.get(*part) {
            Some(Value::Object(m)) if i + 1 < parts.len() => cur = m,
            Some(_) if i + 1 == parts.len() => return true,
            _ => return false,
        }
    }
    false
}

/// The keys a template reads (top level and dotted), sorted.
pub fn template_reads(source: &str) -> Vec<String> {
    let env = environment();
    match env.template_from_str(source) {
        Ok(t) => {
            let mut reads: Vec<String> = t.undeclared_variables(true).into_iter().collect();
            reads.sort();
            reads
        }
        Err(_) => Vec::new(),
    }
}

/// A transformed value and where each renamed or new key came from.
pub type Transformed = (Map<String, Value>, Vec<(String, KeyOrigin)>);

/// Applies `blocks` to one secret at `path`. Returns the new value and where each new key
/// came from (keys that kept their name are not listed).
pub fn apply_one(
    blocks: &[TransformConfig],
    path: &str,
    value: &Map<String, Value>,
) -> Result<Transformed, TransformError> {
    apply_compiled(&Compiled::new(blocks), path, value)
}

/// `blocks` with their templates parsed once (one template environment for a whole desired
/// state, not one per secret: BENCHMARKS.md, "Transformations").
struct Compiled<'b> {
    blocks: &'b [TransformConfig],
    env: minijinja::Environment<'b>,
    /// Per block, per template: the keys it reads (sorted), or the parser's message.
    reads: Vec<Vec<Result<Vec<String>, String>>>,
}

impl<'b> Compiled<'b> {
    fn new(blocks: &'b [TransformConfig]) -> Self {
        let mut env = environment();
        let mut reads = Vec::with_capacity(blocks.len());
        for (bi, b) in blocks.iter().enumerate() {
            let mut of_block = Vec::with_capacity(b.template.len());
            for (ti, (_, source)) in b.template.iter().enumerate() {
                let name = template_name(bi, ti);
                let r = env
                    .add_template_owned(name.clone(), source.as_str())
                    .map_err(|e| e.to_string())
                    .and_then(|()| env.get_template(&name).map_err(|e| e.to_string()))
                    .map(|t| {
                        let mut reads: Vec<String> =
                            t.undeclared_variables(true).into_iter().collect();
                        reads.sort();
                        reads
                    });
                of_block.push(r);
            }
            reads.push(of_block);
        }
        Compiled { blocks, env, reads }
    }
}

fn template_name(block: usize, template: usize) -> String {
    format!("{block}/{template}")
}

fn apply_compiled(
    compiled: &Compiled<'_>,
    path: &str,
    value: &Map<String, Value>,
) -> Result<Transformed, TransformError> {
    let blocks = compiled.blocks;
    let err = |message: String| TransformError {
        path: path.to_string(),
        message,
    };
    let mut cur = value.clone();
    let mut origins: Vec<(String, KeyOrigin)> = Vec::new();
    for (bi, b) in blocks.iter().enumerate() {
        if !b.paths.is_empty() && !b.paths.iter().any(|g| glob_match(g, path, '/')) {
            continue;
        }
        // 1. Templates, from the value as it is before this block.
        let mut rendered: Vec<(String, String)> = Vec::new();
        if !b.template.is_empty() {
            let ctx = minijinja::Value::from_serialize(&cur);
            for (ti, (key, _)) in b.template.iter().enumerate() {
                let reads = compiled.reads[bi][ti]
                    .as_ref()
                    .map_err(|e| err(format!("template `{key}` does not parse: {e}")))?;
                let t = compiled
                    .env
                    .get_template(&template_name(bi, ti))
                    .map_err(|e| err(format!("template `{key}` does not parse: {e}")))?;
                let missing: Vec<&String> = reads.iter().filter(|r| !has_path(&cur, r)).collect();
                if !missing.is_empty() {
                    return Err(err(format!(
                        "template `{key}` uses {}, which the secret does not have (its keys: {})",
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        cur.keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                // The engine's own message can quote the template, never a value.
                let out = t.render(&ctx).map_err(|e| {
                    err(format!(
                        "template `{key}` failed: {}",
                        e.detail().unwrap_or("cannot be rendered")
                    ))
                })?;
                origins.push((
                    key.clone(),
                    KeyOrigin::Template {
                        block: bi,
                        reads: reads.clone(),
                    },
                ));
                rendered.push((key.clone(), out));
            }
        }
        // 2. include / exclude, over dotted paths.
        if !b.include.is_empty() || !b.exclude.is_empty() {
            cur = filter(&cur, "", b);
        }
        for (k, v) in rendered {
            cur.insert(k, Value::String(v));
        }
        // 3. rename.
        for (old, new) in &b.rename {
            if old == new {
                continue;
            }
            if let Some(v) = cur.remove(old) {
                if cur.contains_key(new) {
                    return Err(err(format!(
                        "`rename` of `{old}` to `{new}`: the secret already has a key `{new}`"
                    )));
                }
                cur.insert(new.clone(), v);
                origins.push((new.clone(), KeyOrigin::Renamed { from: old.clone() }));
            }
        }
        // 4. flatten.
        if let Some(sep) = &b.flatten {
            let mut flat = Map::new();
            let mut from: Vec<(String, String)> = Vec::new();
            flatten_into(&cur, "", "", sep, &mut flat, &mut from)
                .map_err(|(a, b)| err(format!("`flatten` makes `{a}` and `{b}` the same key")))?;
            for (new, old) in from {
                if new != old {
                    origins.push((new, KeyOrigin::Renamed { from: old }));
                }
            }
            cur = flat;
        }
        // 5. case.
        if b.case != KeyCase::None {
            let mut seen: Vec<(String, String)> = Vec::new();
            cur = recase(&cur, b.case, "", &mut seen).map_err(|(a, b2)| {
                err(format!(
                    "`case` makes `{a}` and `{b2}` the same key `{}`",
                    cased(a.rsplit('.').next().unwrap_or(&a), b.case)
                ))
            })?;
            for (new, old) in seen {
                if new != old {
                    origins.push((new, KeyOrigin::Renamed { from: old }));
                }
            }
        }
    }
    Ok((cur, origins))
}

fn cased(s: &str, case: KeyCase) -> String {
    match case {
        KeyCase::Upper => s.to_uppercase(),
        KeyCase::Lower => s.to_lowercase(),
        KeyCase::None => s.to_string(),
    }
}

fn recase(
    m: &Map<String, Value>,
    case: KeyCase,
    prefix: &str,
    seen: &mut Vec<(String, String)>,
) -> Result<Map<String, Value>, (String, String)> {
    let mut out = Map::new();
    let mut owner: Vec<(String, String)> = Vec::new();
    for (k, v) in m {
        let new = cased(k, case);
        if let Some((_, first)) = owner.iter().find(|(n, _)| *n == new) {
            return Err((format!("{prefix}{first}"), format!("{prefix}{k}")));
        }
        owner.push((new.clone(), k.clone()));
        let v = match v {
            Value::Object(inner) => {
                Value::Object(recase(inner, case, &format!("{prefix}{k}."), seen)?)
            }
            other => other.clone(),
        };
        if prefix.is_empty() {
            seen.push((new.clone(), k.clone()));
        }
        out.insert(new, v);
    }
    Ok(out)
}

fn flatten_into(
    m: &Map<String, Value>,
    prefix: &str,
    dotted: &str,
    sep: &str,
    out: &mut Map<String, Value>,
    from: &mut Vec<(String, String)>,
) -> Result<(), (String, String)> {
    for (k, v) in m {
        let key = format!("{prefix}{k}");
        let original = format!("{dotted}{k}");
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                flatten_into(
                    inner,
                    &format!("{key}{sep}"),
                    &format!("{original}."),
                    sep,
                    out,
                    from,
                )?;
            }
            other => {
                if let Some((_, first)) = from.iter().find(|(n, _)| *n == key) {
                    return Err((first.clone(), original));
                }
                out.insert(key.clone(), other.clone());
                from.push((key, original));
            }
        }
    }
    Ok(())
}

/// The keys of `m` (below `prefix`, a dotted path ending in `.` or empty) that `b` keeps.
fn filter(m: &Map<String, Value>, prefix: &str, b: &TransformConfig) -> Map<String, Value> {
    filter_at(m, prefix, b, b.include.is_empty())
}

fn filter_at(
    m: &Map<String, Value>,
    prefix: &str,
    b: &TransformConfig,
    included_above: bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in m {
        let path = format!("{prefix}{k}");
        if b.exclude.iter().any(|g| glob_match(g, &path, '.')) {
            continue;
        }
        let included = included_above || b.include.iter().any(|g| glob_match(g, &path, '.'));
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                let kept = filter_at(inner, &format!("{path}."), b, included);
                if !kept.is_empty() {
                    out.insert(k.clone(), Value::Object(kept));
                }
            }
            other if included => {
                out.insert(k.clone(), other.clone());
            }
            _ => {}
        }
    }
    out
}

/// Applies `blocks` to a target's whole desired state. An error fails the target (nothing
/// of it is written); the first error is returned, naming the secret and the key.
pub fn apply(blocks: &[TransformConfig], desired: &Collected) -> Result<Collected, TransformError> {
    let mut out = Collected {
        secrets: Default::default(),
        incomplete: desired.incomplete.clone(),
    };
    let compiled = Compiled::new(blocks);
    for (path, value) in &desired.secrets {
        let (v, _) = apply_compiled(&compiled, path, value.expose())?;
        out.secrets.insert(path.clone(), SecretValue::new(v));
    }
    Ok(out)
}

/// Where a key of the transformed value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalOrigin {
    /// Rendered by the template of block `block` (0-based), which reads these keys.
    Template { block: usize, reads: Vec<String> },
    /// The merged key (a dotted path for a flattened one) under another name.
    From(String),
    /// The merged key, unchanged.
    Kept,
}

/// What the transform does to one secret, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// The blocks that apply to the secret's path (0-based).
    pub blocks: Vec<usize>,
    /// Every top-level key of the transformed value and where it comes from.
    pub keys: Vec<(String, FinalOrigin)>,
    /// Top-level keys of the merged value that the target does not get as such.
    pub left_out: Vec<String>,
}

/// What `blocks` do to the secret at `path` whose merged value is `merged`; `None` when no
/// block applies to the path.
pub fn explain(
    blocks: &[TransformConfig],
    path: &str,
    merged: &Map<String, Value>,
) -> Result<Option<Explained>, TransformError> {
    let applied: Vec<usize> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.paths.is_empty() || b.paths.iter().any(|g| glob_match(g, path, '/')))
        .map(|(i, _)| i)
        .collect();
    if applied.is_empty() {
        return Ok(None);
    }
    let (value, origins) = apply_one(blocks, path, merged)?;
    // Follows a name back through the renames recorded before position `before`.
    fn resolve(origins: &[(String, KeyOrigin)], name: &str, before: usize) -> FinalOrigin {
        match origins[..before].iter().rposition(|(n, _)| n == name) {
            None => FinalOrigin::Kept,
            Some(i) => match &origins[i].1 {
                KeyOrigin::Template { block, reads } => FinalOrigin::Template {
                    block: *block,
                    reads: reads.clone(),
                },
                KeyOrigin::Renamed { from } => match resolve(origins, from, i) {
                    FinalOrigin::Kept => FinalOrigin::From(from.clone()),
                    other => other,
                },
            },
        }
    }
    let keys: Vec<(String, FinalOrigin)> = value
        .keys()
        .map(|k| (k.clone(), resolve(&origins, k, origins.len())))
        .collect();
    let used: BTreeSet<String> = keys
        .iter()
        .filter_map(|(k, o)| match o {
            FinalOrigin::Kept => Some(k.clone()),
            FinalOrigin::From(f) => Some(f.split('.').next().unwrap_or(f).to_string()),
            FinalOrigin::Template { .. } => None,
        })
        .collect();
    let left_out = merged
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    Ok(Some(Explained {
        blocks: applied,
        keys,
        left_out,
    }))
}

/// Every key a block names in `rename` (the targets), for validation of duplicates.
pub fn renamed_targets(b: &TransformConfig) -> BTreeSet<&str> {
    b.rename.iter().map(|(_, n)| n.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn run(b: TransformConfig, v: Value) -> Result<Value, String> {
        apply_one(&[b], "app/db", &obj(v))
            .map(|(m, _)| Value::Object(m))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn globs_match_within_and_across_parts() {
        assert!(glob_match("debug_*", "debug_sql", '.'));
        assert!(!glob_match("debug_*", "options.debug_sql", '.'));
        assert!(glob_match("**.debug_*", "options.debug_sql", '.'));
        assert!(glob_match("**.debug_*", "debug_sql", '.'));
        assert!(glob_match("options.*", "options.ssl", '.'));
        assert!(!glob_match("options.*", "options.ssl.mode", '.'));
        assert!(glob_match("app/*/db", "app/billing/db", '/'));
        assert!(glob_match("app/**", "app/a/b", '/'));
        assert!(glob_match("p?rt", "port", '.'));
    }

    #[test]
    fn the_issue_example_in_order() {
        let b = TransformConfig {
            exclude: vec!["debug_*".into()],
            rename: vec![("password".into(), "PASSWORD".into())],
            case: KeyCase::Upper,
            ..Default::default()
        };
        let out = run(
            b,
            json!({"user": "u", "password": "p", "debug_sql": true, "options": {"ssl": true, "debug_x": 1}}),
        )
        .unwrap();
        // `debug_*` is a top-level glob: `options.debug_x` stays (`**.debug_*` would drop it).
        assert_eq!(
            out,
            json!({"USER": "u", "PASSWORD": "p", "OPTIONS": {"SSL": true, "DEBUG_X": 1}})
        );
    }

    #[test]
    fn templates_render_from_the_merged_keys_and_name_what_is_missing() {
        let b = TransformConfig {
            template: vec![(
                "DATABASE_URL".into(),
                "postgres://{{ user }}:{{ password | percent_encode }}@{{ host }}:{{ port }}/{{ db }}"
                    .into(),
            )],
            include: vec!["user".into()],
            ..Default::default()
        };
        let out = run(
            b.clone(),
            json!({"user": "app", "password": "p@ss/word", "host": "db", "port": 5432, "db": "main"}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"user": "app", "DATABASE_URL": "postgres://app:p%40ss%2Fword@db:5432/main"})
        );
        let e = run(
            b,
            json!({"user": "app", "password": "sentinel-p", "host": "db", "port": 1}),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "secret `app/db`: template `DATABASE_URL` uses `db`, which the secret does not have (its keys: `host`, `password`, `port`, `user`)"
        );
        assert!(!e.contains("sentinel-p"));
    }

    #[test]
    fn include_keeps_subtrees_and_exclude_wins() {
        let b = TransformConfig {
            include: vec!["options".into(), "user".into()],
            exclude: vec!["options.debug".into()],
            ..Default::default()
        };
        let out = run(
            b,
            json!({"user": "u", "password": "p", "options": {"ssl": true, "debug": true}}),
        )
        .unwrap();
        assert_eq!(out, json!({"user": "u", "options": {"ssl": true}}));
    }

    #[test]
    fn flatten_and_collisions_are_named() {
        let b = TransformConfig {
            flatten: Some("_".into()),
            ..Default::default()
        };
        assert_eq!(
            run(
                b.clone(),
                json!({"db": {"host": "h", "port": 1}, "list": [1, {"a": 2}]})
            )
            .unwrap(),
            json!({"db_host": "h", "db_port": 1, "list": [1, {"a": 2}]})
        );
        assert_eq!(
            run(b, json!({"db_host": "x", "db": {"host": "h"}})).unwrap_err(),
            "secret `app/db`: `flatten` makes `db.host` and `db_host` the same key"
        );
        let c = TransformConfig {
            case: KeyCase::Lower,
            ..Default::default()
        };
        assert_eq!(
            run(c, json!({"Key": 1, "KEY": 2})).unwrap_err(),
            "secret `app/db`: `case` makes `KEY` and `Key` the same key `key`"
        );
        let r = TransformConfig {
            rename: vec![("a".into(), "b".into())],
            ..Default::default()
        };
        assert_eq!(
            run(r.clone(), json!({"a": 1, "b": 2})).unwrap_err(),
            "secret `app/db`: `rename` of `a` to `b`: the secret already has a key `b`"
        );
        // A secret without the key is left as it is.
        assert_eq!(run(r, json!({"c": 1})).unwrap(), json!({"c": 1}));
    }

    #[test]
    fn explain_follows_each_key_back_through_the_blocks() {
        let blocks = [
            TransformConfig {
                template: vec![("URL".into(), "{{ host }}:{{ port }}".into())],
                include: vec!["user".into(), "options".into()],
                ..Default::default()
            },
            TransformConfig {
                rename: vec![("user".into(), "username".into())],
                flatten: Some("_".into()),
                case: KeyCase::Upper,
                ..Default::default()
            },
        ];
        let merged = obj(json!({"user": "u", "host": "h", "port": 1, "options": {"ssl": true}}));
        let e = explain(&blocks, "app/db", &merged).unwrap().unwrap();
        assert_eq!(e.blocks, [0, 1]);
        assert_eq!(
            e.keys,
            [
                (
                    "OPTIONS_SSL".to_string(),
                    FinalOrigin::From("options.ssl".into())
                ),
                (
                    "URL".to_string(),
                    FinalOrigin::Template {
                        block: 0,
                        reads: vec!["host".into(), "port".into()]
                    }
                ),
                ("USERNAME".to_string(), FinalOrigin::From("user".into())),
            ]
        );
        assert_eq!(e.left_out, ["host", "port"]);
        let scoped = [TransformConfig {
            paths: vec!["other/*".into()],
            case: KeyCase::Upper,
            ..Default::default()
        }];
        assert_eq!(explain(&scoped, "app/db", &merged).unwrap(), None);
    }

    #[test]
    fn blocks_apply_to_the_paths_they_select() {
        let blocks = [TransformConfig {
            paths: vec!["app/*".into()],
            case: KeyCase::Upper,
            ..Default::default()
        }];
        let (a, _) = apply_one(&blocks, "app/db", &obj(json!({"k": 1}))).unwrap();
        let (b, _) = apply_one(&blocks, "shared/logging", &obj(json!({"k": 1}))).unwrap();
        assert_eq!(
            (Value::Object(a), Value::Object(b)),
            (json!({"K": 1}), json!({"k": 1}))
        );
    }
}
