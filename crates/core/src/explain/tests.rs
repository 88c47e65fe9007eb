use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::merge::{apply_overrides, merge_bundles, secret};
use crate::secret::Bundle;

fn config(yaml: &str) -> Config {
    let loaded = crate::config::load(yaml, &|_| None);
    loaded
        .config
        .unwrap_or_else(|| panic!("config loads: {:?}", loaded.diagnostics))
}

/// `{name: {path: value}}` as complete reads.
fn bundles(v: Value) -> BTreeMap<String, Collected> {
    v.as_object()
        .expect("an object of bundles")
        .iter()
        .map(|(name, b)| {
            let secrets: Bundle = b
                .as_object()
                .expect("a bundle is an object")
                .iter()
                .map(|(p, v)| (p.clone(), secret(v.clone())))
                .collect();
            (name.clone(), Collected::complete(secrets))
        })
        .collect()
}

/// The value of `v` at `segments`, if it has one.
fn at<'a>(v: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(v, |v, s| v.as_object()?.get(s))
}

/// A layer's own value for `path` (before any merge).
fn raw(
    config: &Config,
    l: &Layer,
    path: &str,
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
) -> Option<Value> {
    let from = |m: &BTreeMap<String, Collected>| {
        m.get(&l.name)
            .and_then(|c| c.secrets.get(path))
            .map(|v| Value::Object(v.expose().clone()))
    };
    match l.kind {
        LayerKind::Source => from(sources),
        LayerKind::Stored => from(stored),
        LayerKind::TargetOverrides => config
            .target(&l.name)
            .map(|t| Value::Object(t.overrides.clone())),
    }
}

/// Folds the explanation's layers back into the secret, with the real merge functions: a run
/// of layers reached through target `t` (their `via` names it at this depth) is `t`'s own
/// fold, then `t`'s overrides layer, merged in as one layer; a target's own overrides are
/// merged into everything folded so far.
fn replay(
    config: &Config,
    e: &Explanation,
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
) -> Option<SecretValue> {
    fn group(
        config: &Config,
        own: &str,
        layers: &[&Layer],
        depth: usize,
        path: &str,
        sources: &BTreeMap<String, Collected>,
        stored: &BTreeMap<String, Collected>,
    ) -> Option<SecretValue> {
        let mut acc = Bundle::new();
        let mut i = 0;
        while i < layers.len() {
            let l = layers[i];
            if l.via.len() > depth {
                let t = &l.via[depth];
                let mut j = i;
                while j < layers.len() && layers[j].via.len() > depth && &layers[j].via[depth] == t
                {
                    j += 1;
                }
                // The target's overrides end its run.
                if j < layers.len()
                    && layers[j].kind == LayerKind::TargetOverrides
                    && &layers[j].name == t
                    && layers[j].via.len() == depth
                {
                    j += 1;
                }
                if let Some(v) = group(config, t, &layers[i..j], depth + 1, path, sources, stored) {
                    merge_bundles(&mut acc, &Bundle::from([(path.to_string(), v)]));
                }
                i = j;
                continue;
            }
            match l.kind {
                LayerKind::Source | LayerKind::Stored => {
                    let m = if l.kind == LayerKind::Source {
                        sources
                    } else {
                        stored
                    };
                    if let Some(v) = m.get(&l.name).and_then(|c| c.secrets.get(path)) {
                        merge_bundles(&mut acc, &Bundle::from([(path.to_string(), v.clone())]));
                    }
                }
                LayerKind::TargetOverrides => {
                    // Its own overrides; another target's here had nothing before them.
                    if l.name == own {
                        apply_overrides(&mut acc, &config.target(own).unwrap().overrides);
                    }
                }
            }
            i += 1;
        }
        acc.remove(path)
    }
    let layers: Vec<&Layer> = e.layers.iter().collect();
    group(config, &e.target, &layers, 0, &e.path, sources, stored)
}

/// Every (dotted key, value) of a secret, leaves as [`KeyProvenance`] defines them.
fn leaves(m: &Map<String, Value>) -> Vec<(Vec<String>, Value)> {
    fn walk(v: &Value, segs: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    segs.push(k.clone());
                    walk(v, segs, out);
                    segs.pop();
                }
            }
            _ => out.push((segs.clone(), v.clone())),
        }
    }
    let mut out = Vec::new();
    for (k, v) in m {
        walk(v, &mut vec![k.clone()], &mut out);
    }
    out
}

/// The laws every explanation keeps, checked against the real fold.
fn laws(
    c: &Config,
    target: &str,
    path: &str,
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
) -> Option<Explanation> {
    let closure = c.graph.closure(&[target.to_string()]);
    let desired = desired_states(c, &closure, sources, stored).expect("folds");
    let want = desired[target].secrets.get(path);
    let e = explain(c, target, path, sources, stored).expect("explains");
    let Some(e) = e else {
        assert!(want.is_none(), "no explanation for a desired path");
        return None;
    };
    let want = want.expect("explained path is desired");
    // 1. Folding the layers as the explanation lists them gives the desired value.
    assert_eq!(replay(c, &e, sources, stored).as_ref(), Some(want));
    // 2. The keys are exactly the value's leaves, with their final values.
    let got: Vec<(Vec<String>, Value)> = e
        .keys
        .iter()
        .map(|k| (k.segments.clone(), k.value().clone()))
        .collect();
    assert_eq!(got, leaves(want.expose()));
    for k in &e.keys {
        assert_eq!(k.key, k.segments.join("."));
        let winner = &e.layers[k.winner];
        assert!(winner.present, "{}: winner {} is absent", k.key, k.winner);
        let own = raw(c, winner, path, sources, stored).expect("winner has a value");
        match k.value() {
            Value::Array(items) => {
                assert!(k.contributors.contains(&k.winner));
                assert_eq!(k.merged, k.contributors.len() > 1);
                for item in items {
                    assert!(
                        k.contributors.iter().any(|&i| {
                            raw(c, &e.layers[i], path, sources, stored)
                                .and_then(|v| at(&v, &k.segments).cloned())
                                .and_then(|v| v.as_array().cloned())
                                .is_some_and(|a| a.contains(item))
                        }),
                        "{}: item {item} comes from none of {:?}",
                        k.key,
                        k.contributors
                    );
                }
            }
            v => {
                assert!(!k.merged);
                assert_eq!(k.contributors, vec![k.winner]);
                assert_eq!(at(&own, &k.segments), Some(v), "{}: winner's value", k.key);
            }
        }
        for &o in &k.overridden {
            // A later layer replaced it: not the winner, not among a list's contributors
            // (it may come after the winner when the replacing list added nothing new).
            assert!(
                !k.contributors.contains(&o),
                "{}: {o} both overridden and kept",
                k.key
            );
            let theirs = raw(c, &e.layers[o], path, sources, stored).expect("a value");
            assert!(
                (1..=k.segments.len()).any(|n| at(&theirs, &k.segments[..n]).is_some()),
                "{}: overridden layer {o} has nothing at or above the key",
                k.key
            );
        }
    }
    // 3. `present` says whether the layer holds the path.
    for l in &e.layers {
        let holds = match l.kind {
            LayerKind::Source => sources
                .get(&l.name)
                .is_some_and(|b| b.secrets.contains_key(path)),
            LayerKind::Stored => stored
                .get(&l.name)
                .is_some_and(|b| b.secrets.contains_key(path)),
            LayerKind::TargetOverrides => desired[&l.name].secrets.contains_key(path),
        };
        assert_eq!(l.present, holds, "{}", l.describe());
    }
    // 4. The pipeline's provenance names the same winners.
    let p = provenance(
        c,
        &closure,
        sources,
        stored,
        &desired,
        &[target.to_string()],
    );
    let labels: Map<String, Value> = e
        .keys
        .iter()
        .map(|k| (k.key.clone(), json!(e.layers[k.winner].label())))
        .collect();
    assert_eq!(p.secret_json(target, path), Some(Value::Object(labels)));
    Some(e)
}

/// A terse, value-free summary: the layers, then `key ← winner (over …) (from …)`.
fn summary(e: &Explanation) -> String {
    let mut s = String::new();
    for (i, l) in e.layers.iter().enumerate() {
        s.push_str(&format!(
            "{} {}{}\n",
            i + 1,
            l.describe(),
            if l.present { "" } else { " -" }
        ));
    }
    for k in &e.keys {
        s.push_str(&format!("{} ← {}", k.key, k.winner + 1));
        if !k.overridden.is_empty() {
            let o: Vec<String> = k.overridden.iter().map(|i| (i + 1).to_string()).collect();
            s.push_str(&format!(" over {}", o.join(",")));
        }
        if k.merged {
            let o: Vec<String> = k.contributors.iter().map(|i| (i + 1).to_string()).collect();
            s.push_str(&format!(" from {}", o.join(",")));
        }
        s.push('\n');
    }
    s
}

#[track_caller]
fn check(yaml: &str, sources: Value, target: &str, path: &str, expected: &str) {
    let c = config(yaml);
    let sources = bundles(sources);
    let e = laws(&c, target, path, &sources, &BTreeMap::new()).expect("explained");
    assert_eq!(summary(&e).trim(), expected.trim(), "\n{}", summary(&e));
}

const CHAIN: &str = r#"
vault_sources:
  - mount: secret/base/
  - mount: secret/staging-src/
  - mount: secret/other/
targets:
  - name: common
    type: aws_secretsmanager
    region: us-east-1
    imports: [base]
    overrides: { tier: common, log: { level: info } }
  - name: staging
    type: aws_secretsmanager
    region: us-east-1
    imports: [common, staging-src]
    overrides: { environment: staging }
  - name: prod
    type: aws_secretsmanager
    region: us-east-1
    imports: [staging, other]
    overrides: { environment: prod }
"#;

fn chain_sources() -> Value {
    json!({
        "base": {"app/db": {"host": "base-host", "port": 5432, "hosts": ["a", "b"], "only_base": 1, "user": "app"}},
        "staging-src": {"app/db": {"host": "staging-host", "hosts": ["b", "c"], "log": {"level": "debug", "format": "json"}, "user": null}},
        "other": {"app/other": {"k": 1}},
    })
}

#[test]
fn three_level_chain() {
    check(
        CHAIN,
        chain_sources(),
        "prod",
        "app/db",
        "
1 source base (via staging → common)
2 target common overrides (via staging)
3 source staging-src (via staging)
4 target staging overrides
5 source other -
6 target prod overrides
environment ← 6 over 4
host ← 3 over 1
hosts ← 3 from 1,3
log.format ← 3
log.level ← 3 over 2
only_base ← 1
port ← 1
tier ← 2
user ← 1
",
    );
}

#[test]
fn the_designs_example() {
    // staging imports [common, staging-src], common imports [base] with overrides.
    check(
        CHAIN,
        chain_sources(),
        "staging",
        "app/db",
        "
1 source base (via common)
2 target common overrides
3 source staging-src
4 target staging overrides
environment ← 4
host ← 3 over 1
hosts ← 3 from 1,3
log.format ← 3
log.level ← 3 over 2
only_base ← 1
port ← 1
tier ← 2
user ← 1
",
    );
}

#[test]
fn overrides_reach_only_paths_their_target_has() {
    // `app/only` is not in `common` (base lacks it), so common's overrides never touch it.
    check(
        CHAIN,
        json!({"base": {}, "staging-src": {"app/only": {"k": "v", "tier": "mine"}}, "other": {}}),
        "staging",
        "app/only",
        "
1 source base (via common) -
2 target common overrides -
3 source staging-src
4 target staging overrides
environment ← 4
k ← 3
tier ← 3
",
    );
}

const TWO: &str = r#"
vault_sources:
  - mount: secret/a/
  - mount: secret/b/
targets:
  - name: t
    type: aws_secretsmanager
    region: us-east-1
    imports: [a, b]
    overrides: { env: prod, list: [9] }
"#;

#[test]
fn arrays_merged_from_two_layers() {
    check(
        TWO,
        json!({"a": {"p": {"list": [1, 2], "other": [1]}}, "b": {"p": {"list": [2, 3], "other": [1]}}}),
        "t",
        "p",
        "
1 source a
2 source b
3 target t overrides
env ← 3
list ← 3 from 1,2,3
other ← 1
",
    );
}

#[test]
fn null_keeps_the_earlier_value() {
    check(
        TWO,
        json!({"a": {"p": {"k": "kept", "n": null}}, "b": {"p": {"k": null, "n": null, "m": {"x": null}}}}),
        "t",
        "p",
        "
1 source a
2 source b
3 target t overrides
env ← 3
k ← 1
list ← 3
m.x ← 2
n ← 1
",
    );
}

#[test]
fn overrides_win_over_every_layer() {
    check(
        TWO,
        json!({"a": {"p": {"env": "dev"}}, "b": {"p": {"env": "stage"}}}),
        "t",
        "p",
        "
1 source a
2 source b
3 target t overrides
env ← 3 over 1,2
list ← 3
",
    );
}

#[test]
fn a_key_only_in_one_layer() {
    check(
        TWO,
        json!({"a": {"p": {"deep": {"only_a": 1}}}, "b": {"p": {"deep": {"only_b": 2}}, "q": {}}}),
        "t",
        "p",
        "
1 source a
2 source b
3 target t overrides
deep.only_a ← 1
deep.only_b ← 2
env ← 3
list ← 3
",
    );
}

#[test]
fn type_conflicts_replace_and_say_what() {
    check(
        TWO,
        json!({"a": {"p": {"x": {"y": 1, "z": 2}, "s": 5}}, "b": {"p": {"x": "flat", "s": {"deep": true}}}}),
        "t",
        "p",
        "
1 source a
2 source b
3 target t overrides
env ← 3
list ← 3
s.deep ← 2 over 1
x ← 2 over 1
",
    );
}

const DIAMOND: &str = r#"
vault_sources:
  - mount: secret/base/
targets:
  - name: left
    type: aws_secretsmanager
    region: us-east-1
    imports: [base]
    overrides: { side: left, hosts: [l] }
  - name: right
    type: aws_secretsmanager
    region: us-east-1
    imports: [base]
    overrides: { hosts: [r] }
  - name: top
    type: aws_secretsmanager
    region: us-east-1
    imports: [left, right]
"#;

#[test]
fn a_diamond() {
    check(
        DIAMOND,
        json!({"base": {"app": {"hosts": ["a"], "side": "base", "k": 1}}}),
        "top",
        "app",
        "
1 source base (via left)
2 target left overrides
3 source base (via right)
4 target right overrides
hosts ← 4 from 1,2,4
k ← 3 over 1
side ← 3 over 1,2
",
    );
}

#[test]
fn non_associative_type_conflicts_follow_the_nesting() {
    // Folded flat, `x` would end as [2]; the nested fold gives the imported target's [2]
    // appended to the earlier [1]: the explanation follows the nesting, like the fold.
    let yaml = r#"
vault_sources:
  - mount: secret/a/
  - mount: secret/b/
targets:
  - name: inner
    type: aws_secretsmanager
    region: us-east-1
    imports: [b]
    overrides: { x: [2] }
  - name: outer
    type: aws_secretsmanager
    region: us-east-1
    imports: [a, inner]
"#;
    check(
        yaml,
        json!({"a": {"p": {"x": [1]}}, "b": {"p": {"x": "s"}}}),
        "outer",
        "p",
        "
1 source a
2 source b (via inner)
3 target inner overrides
x ← 3 over 2 from 1,3
",
    );
}

#[test]
fn stored_bundles_and_missing_paths() {
    let yaml = r#"
vault_sources:
  - mount: secret/a/
merge_store: { enabled: true, type: s3, bucket: my-merge-bucket, region: us-east-1 }
targets:
  - name: t
    type: aws_secretsmanager
    region: us-east-1
    imports: [a, elsewhere]
"#;
    let c = config(yaml);
    let sources = bundles(json!({"a": {"p": {"k": 1}}}));
    let stored = bundles(json!({"elsewhere": {"p": {"k": 2}}}));
    let e = laws(&c, "t", "p", &sources, &stored).expect("explained");
    assert_eq!(
        summary(&e).trim(),
        "1 source a\n2 stored bundle elsewhere\nk ← 2 over 1"
    );
    assert_eq!(e.layers[1].label(), "stored:elsewhere");
    assert!(
        explain(&c, "t", "nope", &sources, &stored)
            .unwrap()
            .is_none()
    );
    assert!(
        explain(&c, "nope", "p", &sources, &stored)
            .unwrap()
            .is_none()
    );
    // Without the stored bundle the fold cannot run: the fold's own error.
    assert!(explain(&c, "t", "p", &sources, &BTreeMap::new()).is_err());
}

#[test]
fn gaps_covering_the_path_are_reported() {
    let c = config(TWO);
    let mut sources = bundles(json!({"a": {"app/p": {"k": 1}}, "b": {}}));
    let gap = Gap::new("b", "app/", "could not be listed (permission denied)");
    sources.get_mut("b").unwrap().incomplete = vec![gap.clone(), Gap::new("b", "zzz", "x")];
    let e = laws(&c, "t", "app/p", &sources, &BTreeMap::new()).unwrap();
    assert_eq!(e.incomplete, vec![gap]);
}

const SENTINEL: &str = "sentinel-explain-3c1d";

fn rendered(show_values: bool) -> (String, Value) {
    let c = config(CHAIN);
    let mut src = chain_sources();
    src["staging-src"]["app/db"]["password"] = json!(SENTINEL);
    src["staging-src"]["app/db"]["plain"] = json!(format!("{SENTINEL}-plain"));
    let sources = bundles(src);
    let e = explain(&c, "staging", "app/db", &sources, &BTreeMap::new())
        .unwrap()
        .unwrap();
    let policy = c.masking.policy(show_values);
    let mut out = Vec::new();
    render_text(&e, &policy, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), to_json(&e, &policy))
}

#[test]
fn text_output() {
    let (text, _) = rendered(false);
    insta::assert_snapshot!("explain_text", text);
    let (shown, _) = rendered(true);
    insta::assert_snapshot!("explain_text_show_values", shown);
}

#[test]
fn no_value_without_show_values() {
    let (text, doc) = rendered(false);
    assert!(!text.contains(SENTINEL), "{text}");
    assert!(!text.contains("base-host") && !text.contains(crate::mask::MASK));
    let doc_text = doc.to_string();
    assert!(!doc_text.contains(SENTINEL) && !doc_text.contains("base-host"));
    assert!(
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("value").is_none())
    );
    // With --show-values a sensitive-looking key stays masked; the others are shown.
    let (text, doc) = rendered(true);
    assert!(!text.contains(&format!("{SENTINEL}\"")) && !text.contains(&format!("= {SENTINEL}\n")));
    assert!(text.contains(&format!("{SENTINEL}-plain")));
    let password = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "password")
        .unwrap();
    assert_eq!(password["value"], json!(crate::mask::MASK));
    // Debug never prints a value either.
    let c = config(CHAIN);
    let e = explain(
        &c,
        "staging",
        "app/db",
        &bundles(chain_sources()),
        &BTreeMap::new(),
    )
    .unwrap()
    .unwrap();
    assert!(!format!("{e:?}").contains("base-host"));
}

#[test]
fn json_document() {
    let (_, doc) = rendered(true);
    insta::assert_json_snapshot!("explain_json", doc);
}

// ---- property: random graphs and values, against the real fold ----

fn value(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        (0i64..3).prop_map(Value::from),
        "[xy]".prop_map(Value::from),
        Just(Value::Null),
        prop::collection::vec(0i64..3, 0..3).prop_map(|v| json!(v)),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => map(depth - 1).prop_map(Value::Object),
    ]
    .boxed()
}

fn map(depth: u32) -> BoxedStrategy<Map<String, Value>> {
    prop::collection::btree_map("[abc]", value(depth), 0..3)
        .prop_map(|m| m.into_iter().collect())
        .boxed()
}

/// Per source: the value at `p` and `q`, if any.
fn source_bundle() -> impl Strategy<Value = Vec<(String, Map<String, Value>)>> {
    prop::collection::vec((prop::sample::select(vec!["p", "q"]), map(2)), 0..3)
        .prop_map(|v| v.into_iter().map(|(p, m)| (p.to_string(), m)).collect())
}

/// Four targets; target `i` imports some of the three sources and of the targets before it,
/// in a random order, and has random (maybe empty) overrides.
fn graph() -> impl Strategy<Value = Vec<(Vec<String>, Map<String, Value>)>> {
    let target = |i: usize| {
        let names: Vec<String> = ["s0", "s1", "s2"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..i).map(|j| format!("t{j}")))
            .collect();
        (
            prop::sample::subsequence(names.clone(), 0..=names.len()).prop_shuffle(),
            prop_oneof![Just(Map::new()), map(1)],
        )
    };
    (target(0), target(1), target(2), target(3)).prop_map(|(a, b, c, d)| vec![a, b, c, d])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn explanations_fold_back_to_the_desired_state(
        targets in graph(),
        s in prop::collection::vec(source_bundle(), 3),
    ) {
        let mut yaml = String::from("vault_sources:\n  - mount: secret/s0/\n  - mount: secret/s1/\n  - mount: secret/s2/\ntargets:\n");
        for (i, (imports, _)) in targets.iter().enumerate() {
            yaml.push_str(&format!(
                "  - name: t{i}\n    type: aws_secretsmanager\n    region: us-east-1\n    imports: [{}]\n",
                imports.join(", ")
            ));
        }
        let mut c = config(&yaml);
        for (i, (_, overrides)) in targets.iter().enumerate() {
            c.targets[i].overrides = overrides.clone();
        }
        let sources: BTreeMap<String, Collected> = s
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let secrets: Bundle = b.into_iter().map(|(p, m)| (p, SecretValue::new(m))).collect();
                (format!("s{i}"), Collected::complete(secrets))
            })
            .collect();
        for t in 0..4 {
            for path in ["p", "q"] {
                laws(&c, &format!("t{t}"), path, &sources, &BTreeMap::new());
            }
        }
    }
}
