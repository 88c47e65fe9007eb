//! `explain`: where each key of a target's secret comes from. The layers that produce a
//! target's desired state at one relative path — every source, stored bundle and `overrides`
//! map reached through its imports, in fold order, target imports opened up — and for each key
//! the layer whose value won, the layers it overrode, and (for a list) the layers whose items it
//! holds.
//!
//! The provenance is computed beside the real fold, never instead of it: values come from
//! [`crate::fold::desired_states`] and the per-target folds here use the real
//! [`crate::merge`] functions on the values, while a value-free annotation tree ([`Prov`])
//! follows each merge decision (`null` keeps, list items appended when not yet present, type
//! conflicts replace). Layer numbers are local to each target and shifted when a target is
//! imported, so an imported target contributes its own fully folded state and its layers appear
//! in place (`source base (via common)`).
//!
//! Pure: no IO. Values stay in [`SecretValue`]; the annotation holds layer numbers only.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::fold::{MissingBundle, desired_states};
use crate::graph::Import;
use crate::mask::MaskPolicy;
use crate::merge::merge_maps;
use crate::secret::{Collected, Gap, SecretValue};

/// Version of the `explain --output json` document.
pub const SCHEMA_VERSION: u32 = 1;

/// What a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// A Vault source.
    Source,
    /// A target's `overrides` map (deep-merged into every secret of that target).
    TargetOverrides,
    /// A bundle read from the merge store.
    Stored,
}

/// One layer of the fold, in fold order (later layers win).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub kind: LayerKind,
    /// The source, stored bundle or target (for its overrides).
    pub name: String,
    /// The targets it was reached through, from the explained target's import down (empty:
    /// a direct import, or the explained target's own overrides).
    pub via: Vec<String>,
    /// Whether this layer holds the path (for overrides: whether that target's desired state
    /// holds it, so its overrides were merged into it).
    pub present: bool,
}

impl Layer {
    /// `source:base`, `target:common` (its overrides), `stored:name`.
    pub fn label(&self) -> String {
        format!("{}:{}", kind_prefix(self.kind), self.name)
    }

    /// `source base (via common)`, `target common overrides`, for people.
    pub fn describe(&self) -> String {
        let mut s = match self.kind {
            LayerKind::Source => format!("source {}", self.name),
            LayerKind::Stored => format!("stored bundle {}", self.name),
            LayerKind::TargetOverrides => format!("target {} overrides", self.name),
        };
        if !self.via.is_empty() {
            s.push_str(&format!(" (via {})", self.via.join(" → ")));
        }
        s
    }
}

fn kind_prefix(k: LayerKind) -> &'static str {
    match k {
        LayerKind::Source => "source",
        LayerKind::TargetOverrides => "target",
        LayerKind::Stored => "stored",
    }
}

/// Where one key's value comes from.
#[derive(Debug, Clone)]
pub struct KeyProvenance {
    /// Nested keys joined with `.` (like [`crate::diff::key_changes`]); a leaf is anything but
    /// a non-empty map.
    pub key: String,
    /// The same key as its segments (a key name may itself hold a `.`).
    pub segments: Vec<String>,
    /// Index into [`Explanation::layers`] of the layer whose value won (for a list built from
    /// several layers: the last one that added items).
    pub winner: usize,
    /// Layers whose value at this key (or, on a type conflict, at a key above or below it) a
    /// later layer replaced, in fold order.
    pub overridden: Vec<usize>,
    /// A list whose items come from more than one layer.
    pub merged: bool,
    /// The layers whose items a list holds (a non-list: the winner alone), in fold order.
    pub contributors: Vec<usize>,
    /// The final value, as `{key: value}` (so it lives in a redacting, zeroizing type).
    value: SecretValue,
}

impl KeyProvenance {
    /// The final value of the key. Callers must mask it before showing it.
    pub fn value(&self) -> &Value {
        self.value.expose().values().next().unwrap_or(&Value::Null)
    }
}

/// The provenance of one secret of one target.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub target: String,
    pub path: String,
    pub layers: Vec<Layer>,
    /// Every key of the final value, in key order.
    pub keys: Vec<KeyProvenance>,
    /// Gaps of the Vault read that cover this path (its value may then be missing a layer; the
    /// pipeline does not write it).
    pub incomplete: Vec<Gap>,
}

/// Explains target `target`'s secret at relative path `path`. `sources` and `stored` are what
/// the fold reads (at least the target's closure; see [`crate::graph::Graph::closure`]).
/// `Ok(None)` when the target is unknown or its desired state has no such path.
pub fn explain(
    config: &Config,
    target: &str,
    path: &str,
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
) -> Result<Option<Explanation>, MissingBundle> {
    if config.target(target).is_none() {
        return Ok(None);
    }
    let closure = config.graph.closure(&[target.to_string()]);
    let desired = desired_states(config, &closure, sources, stored)?;
    let Some(value) = desired.get(target).and_then(|d| d.secrets.get(path)) else {
        return Ok(None);
    };
    let annotated = annotate(config, &closure, sources, stored, &desired, Some(path));
    let Some(t) = annotated.get(target) else {
        return Ok(None);
    };
    let Some(prov) = t.secrets.get(path) else {
        return Ok(None);
    };
    let layers = t
        .layers
        .iter()
        .map(|spec| Layer {
            kind: spec.kind,
            name: spec.name.clone(),
            via: spec.via.clone(),
            present: match spec.kind {
                LayerKind::Source => sources
                    .get(&spec.name)
                    .is_some_and(|c| c.secrets.contains_key(path)),
                LayerKind::Stored => stored
                    .get(&spec.name)
                    .is_some_and(|c| c.secrets.contains_key(path)),
                LayerKind::TargetOverrides => desired
                    .get(&spec.name)
                    .is_some_and(|c| c.secrets.contains_key(path)),
            },
        })
        .collect();
    let mut keys = Vec::new();
    flatten_root(prov, value.expose(), &mut |segments, leaf, v| {
        let key = segments.join(".");
        keys.push(KeyProvenance {
            value: SecretValue::new(Map::from_iter([(key.clone(), v.clone())])),
            key,
            segments: segments.to_vec(),
            winner: leaf.winner as usize,
            overridden: leaf.overridden.iter().map(|&i| i as usize).collect(),
            merged: leaf.contributors.len() > 1,
            contributors: leaf.contributors.iter().map(|&i| i as usize).collect(),
        });
    });
    let incomplete = desired[target]
        .incomplete
        .iter()
        .filter(|g| g.covers(path))
        .cloned()
        .collect();
    Ok(Some(Explanation {
        target: target.to_string(),
        path: path.to_string(),
        layers,
        keys,
        incomplete,
    }))
}

/// The winning layer of every key of every secret of some targets (`pipeline --output json
/// --provenance`). Costs nothing unless called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance(pub BTreeMap<String, TargetProvenance>);

/// One target's part of [`Provenance`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetProvenance {
    /// Every layer's [`Layer::label`], in fold order.
    pub labels: Vec<String>,
    /// Per relative path: each key (dotted) and the index of its winning layer in `labels`.
    pub secrets: BTreeMap<String, Vec<(String, u32)>>,
}

impl Provenance {
    /// `{"<key>": "<winning layer label>"}` for one secret, when known.
    pub fn secret_json(&self, target: &str, path: &str) -> Option<Value> {
        let t = self.0.get(target)?;
        let keys = t.secrets.get(path)?;
        Some(Value::Object(
            keys.iter()
                .map(|(k, i)| {
                    let label = t.labels.get(*i as usize).cloned().unwrap_or_default();
                    (k.clone(), Value::String(label))
                })
                .collect(),
        ))
    }
}

/// The provenance of every secret of `targets` (closed under dependencies, like
/// [`desired_states`]), given the desired states the fold produced from the same inputs.
pub fn provenance(
    config: &Config,
    targets: &[String],
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
    desired: &BTreeMap<String, Collected>,
    wanted: &[String],
) -> Provenance {
    let annotated = annotate(config, targets, sources, stored, desired, None);
    let mut out = BTreeMap::new();
    for name in wanted {
        let (Some(t), Some(d)) = (annotated.get(name), desired.get(name)) else {
            continue;
        };
        let mut secrets = BTreeMap::new();
        for (path, prov) in &t.secrets {
            let Some(value) = d.secrets.get(path) else {
                continue;
            };
            let mut keys = Vec::new();
            flatten_root(prov, value.expose(), &mut |segments, leaf, _| {
                keys.push((segments.join("."), leaf.winner));
            });
            secrets.insert(path.clone(), keys);
        }
        out.insert(
            name.clone(),
            TargetProvenance {
                labels: t
                    .layers
                    .iter()
                    .map(|s| format!("{}:{}", kind_prefix(s.kind), s.name))
                    .collect(),
                secrets,
            },
        );
    }
    Provenance(out)
}

// ---- the annotation ----

/// A layer of one target's fold, before `present` is known.
#[derive(Debug, Clone)]
struct LayerSpec {
    kind: LayerKind,
    name: String,
    via: Vec<String>,
}

/// One target's layers and the annotation of each of its secrets (layer numbers index
/// `layers`).
struct Annotated {
    layers: Vec<LayerSpec>,
    secrets: BTreeMap<String, Prov>,
}

/// Which layers made a value, shaped like it (no value inside). Layer numbers are sorted.
#[derive(Clone, PartialEq, Eq)]
enum Prov {
    /// A map: its keys, the layers that had a map here, and the layers replaced by it.
    Map {
        keys: BTreeMap<String, Prov>,
        by: Vec<u32>,
        overridden: Vec<u32>,
    },
    /// A list: the layer of each item, the layers that had a list here.
    List {
        items: Vec<u32>,
        by: Vec<u32>,
        overridden: Vec<u32>,
    },
    /// Anything else (a scalar or `null`).
    Leaf { by: u32, overridden: Vec<u32> },
}

impl Prov {
    fn fresh(v: &Value, layer: u32) -> Prov {
        match v {
            Value::Object(m) => Prov::fresh_map(m, layer),
            Value::Array(items) => Prov::List {
                items: vec![layer; items.len()],
                by: vec![layer],
                overridden: Vec::new(),
            },
            _ => Prov::Leaf {
                by: layer,
                overridden: Vec::new(),
            },
        }
    }

    fn fresh_map(m: &Map<String, Value>, layer: u32) -> Prov {
        Prov::Map {
            keys: m
                .iter()
                .map(|(k, v)| (k.clone(), Prov::fresh(v, layer)))
                .collect(),
            by: vec![layer],
            overridden: Vec::new(),
        }
    }

    /// Renumbers every layer by `offset` (an imported target's layers, in its importer).
    fn shift(&mut self, offset: u32) {
        let bump = |v: &mut Vec<u32>| v.iter_mut().for_each(|i| *i += offset);
        match self {
            Prov::Map {
                keys,
                by,
                overridden,
            } => {
                bump(by);
                bump(overridden);
                keys.values_mut().for_each(|p| p.shift(offset));
            }
            Prov::List {
                items,
                by,
                overridden,
            } => {
                bump(items);
                bump(by);
                bump(overridden);
            }
            Prov::Leaf { by, overridden } => {
                *by += offset;
                bump(overridden);
            }
        }
    }

    /// Every layer that had a part in this value.
    fn layers_into(&self, out: &mut Vec<u32>) {
        match self {
            Prov::Map {
                keys,
                by,
                overridden,
            } => {
                out.extend(by);
                out.extend(overridden);
                keys.values().for_each(|p| p.layers_into(out));
            }
            Prov::List {
                items,
                by,
                overridden,
            } => {
                out.extend(items);
                out.extend(by);
                out.extend(overridden);
            }
            Prov::Leaf { by, overridden } => {
                out.push(*by);
                out.extend(overridden);
            }
        }
    }

    /// Records that this value replaced `layers` (at every key below it).
    fn add_overridden(&mut self, layers: &[u32]) {
        match self {
            Prov::Map {
                keys, overridden, ..
            } => {
                union(overridden, layers);
                keys.values_mut().for_each(|p| p.add_overridden(layers));
            }
            Prov::List { overridden, .. } | Prov::Leaf { overridden, .. } => {
                union(overridden, layers)
            }
        }
    }
}

/// `into ∪= more`, kept sorted and without repeats.
fn union(into: &mut Vec<u32>, more: &[u32]) {
    into.extend_from_slice(more);
    into.sort_unstable();
    into.dedup();
}

/// The annotation of `later` merged into `earlier`, deciding exactly as
/// [`crate::merge::deep_merge`] does on the values (`ev`, `lv`: the values before the merge).
fn merge_prov(earlier: &mut Prov, ev: &Value, later: Prov, lv: &Value) {
    match (ev, lv) {
        (_, Value::Null) => {}
        (Value::Object(em), Value::Object(lm)) => {
            if let Prov::Map {
                keys: ek,
                by: eby,
                overridden: eo,
            } = earlier
                && let Prov::Map {
                    keys: mut lk,
                    by: lby,
                    overridden: lo,
                } = later
            {
                union(eby, &lby);
                union(eo, &lo);
                merge_prov_maps(ek, em, &mut lk, lm);
            } else {
                replace(earlier, later);
            }
        }
        (Value::Array(ea), Value::Array(la)) => {
            if let Prov::List {
                items: ei,
                by: eby,
                overridden: eo,
            } = earlier
                && let Prov::List {
                    items: li,
                    by: lby,
                    overridden: lo,
                } = later
            {
                // As deep_merge: an item is appended unless an equal one is already there
                // (including one this same merge appended).
                let mut seen: Vec<&Value> = ea.iter().collect();
                for (item, layer) in la.iter().zip(li) {
                    if !seen.contains(&item) {
                        seen.push(item);
                        ei.push(layer);
                    }
                }
                union(eby, &lby);
                union(eo, &lo);
            } else {
                replace(earlier, later);
            }
        }
        _ => replace(earlier, later),
    }
}

/// A later value replaces an earlier one (scalar, or a type conflict).
fn replace(earlier: &mut Prov, mut later: Prov) {
    let mut gone = Vec::new();
    earlier.layers_into(&mut gone);
    gone.sort_unstable();
    gone.dedup();
    later.add_overridden(&gone);
    *earlier = later;
}

/// As [`crate::merge::merge_maps`].
fn merge_prov_maps(
    ek: &mut BTreeMap<String, Prov>,
    em: &Map<String, Value>,
    lk: &mut BTreeMap<String, Prov>,
    lm: &Map<String, Value>,
) {
    for (key, lv) in lm {
        let Some(lp) = lk.remove(key) else { continue };
        match (em.get(key), ek.get_mut(key)) {
            (Some(ev), Some(ep)) => merge_prov(ep, ev, lp, lv),
            _ => {
                ek.insert(key.clone(), lp);
            }
        }
    }
}

/// One secret of a target's fold in progress: its value (the real merge) and its annotation.
struct Acc {
    value: SecretValue,
    prov: Prov,
}

/// As [`crate::merge::merge_bundles`] for one path: the value by the real merge, the
/// annotation beside it (decided on the values before the merge).
fn merge_layer(acc: &mut BTreeMap<String, Acc>, path: &str, value: &SecretValue, prov: Prov) {
    match acc.get_mut(path) {
        Some(a) => {
            merge_prov_root(&mut a.prov, a.value.expose(), prov, value.expose());
            merge_maps(a.value.expose_mut(), value.expose());
        }
        None => {
            acc.insert(
                path.to_string(),
                Acc {
                    value: value.clone(),
                    prov,
                },
            );
        }
    }
}

/// [`merge_prov`] for two secrets (maps at the root).
fn merge_prov_root(
    earlier: &mut Prov,
    em: &Map<String, Value>,
    later: Prov,
    lm: &Map<String, Value>,
) {
    match (earlier, later) {
        (
            Prov::Map {
                keys: ek,
                by: eby,
                overridden: eo,
            },
            Prov::Map {
                keys: mut lk,
                by: lby,
                overridden: lo,
            },
        ) => {
            union(eby, &lby);
            union(eo, &lo);
            merge_prov_maps(ek, em, &mut lk, lm);
        }
        (earlier, later) => replace(earlier, later),
    }
}

/// The annotation of every target in `targets` (in execution order, as the fold), for every
/// path or only `only`.
fn annotate(
    config: &Config,
    targets: &[String],
    sources: &BTreeMap<String, Collected>,
    stored: &BTreeMap<String, Collected>,
    desired: &BTreeMap<String, Collected>,
    only: Option<&str>,
) -> BTreeMap<String, Annotated> {
    let mut out: BTreeMap<String, Annotated> = BTreeMap::new();
    let empty = Vec::new();
    let pick = |c: &'_ Collected| -> Vec<(String, SecretValue)> {
        match only {
            Some(p) => c
                .secrets
                .get(p)
                .map(|v| (p.to_string(), v.clone()))
                .into_iter()
                .collect(),
            None => c
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    };
    for name in config.graph.order.iter().filter(|n| targets.contains(n)) {
        let mut layers: Vec<LayerSpec> = Vec::new();
        let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
        for import in config.graph.imports.get(name).unwrap_or(&empty) {
            match import {
                Import::Source(s) | Import::Stored(s) => {
                    let (kind, bundle) = match import {
                        Import::Source(_) => (LayerKind::Source, sources.get(s)),
                        _ => (LayerKind::Stored, stored.get(s)),
                    };
                    let idx = layers.len() as u32;
                    layers.push(LayerSpec {
                        kind,
                        name: s.clone(),
                        via: Vec::new(),
                    });
                    for (path, v) in bundle.map(pick).unwrap_or_default() {
                        let prov = Prov::fresh_map(v.expose(), idx);
                        merge_layer(&mut acc, &path, &v, prov);
                    }
                }
                Import::Target(t) => {
                    let (Some(inner), Some(state)) = (out.get(t), desired.get(t)) else {
                        continue;
                    };
                    let offset = layers.len() as u32;
                    // Reached through `t`, except `t`'s own overrides (they are `t`'s).
                    layers.extend(inner.layers.iter().map(|l| {
                        let own = l.kind == LayerKind::TargetOverrides
                            && l.via.is_empty()
                            && &l.name == t;
                        LayerSpec {
                            kind: l.kind,
                            name: l.name.clone(),
                            via: if own {
                                Vec::new()
                            } else {
                                std::iter::once(t.clone())
                                    .chain(l.via.iter().cloned())
                                    .collect()
                            },
                        }
                    }));
                    for (path, prov) in &inner.secrets {
                        let Some(v) = state.secrets.get(path) else {
                            continue;
                        };
                        let mut prov = prov.clone();
                        prov.shift(offset);
                        merge_layer(&mut acc, path, v, prov);
                    }
                }
            }
        }
        if let Some(t) = config.target(name)
            && !t.overrides.is_empty()
        {
            let idx = layers.len() as u32;
            layers.push(LayerSpec {
                kind: LayerKind::TargetOverrides,
                name: name.clone(),
                via: Vec::new(),
            });
            let overrides = SecretValue::new(t.overrides.clone());
            let paths: Vec<String> = acc.keys().cloned().collect();
            for path in paths {
                merge_layer(
                    &mut acc,
                    &path,
                    &overrides,
                    Prov::fresh_map(&t.overrides, idx),
                );
            }
        }
        debug_assert!(
            desired
                .get(name)
                .is_none_or(|d| acc.iter().all(|(p, a)| d.secrets.get(p) == Some(&a.value))),
            "the annotated fold of `{name}` differs from the fold"
        );
        out.insert(
            name.clone(),
            Annotated {
                layers,
                secrets: acc.into_iter().map(|(p, a)| (p, a.prov)).collect(),
            },
        );
    }
    out
}

/// The provenance of one leaf (a key's final value).
struct Leaf {
    winner: u32,
    overridden: Vec<u32>,
    contributors: Vec<u32>,
}

/// Calls `each(segments, leaf, value)` for every key of a secret, in key order.
fn flatten_root(
    prov: &Prov,
    value: &Map<String, Value>,
    each: &mut dyn FnMut(&[String], &Leaf, &Value),
) {
    let mut segments = Vec::new();
    if let Prov::Map { keys, .. } = prov {
        for (k, v) in value {
            if let Some(p) = keys.get(k) {
                segments.push(k.clone());
                flatten(p, v, &mut segments, each);
                segments.pop();
            }
        }
    }
}

fn flatten(
    prov: &Prov,
    value: &Value,
    segments: &mut Vec<String>,
    each: &mut dyn FnMut(&[String], &Leaf, &Value),
) {
    match (prov, value) {
        (Prov::Map { keys, .. }, Value::Object(m)) if !m.is_empty() => {
            for (k, v) in m {
                if let Some(p) = keys.get(k) {
                    segments.push(k.clone());
                    flatten(p, v, segments, each);
                    segments.pop();
                }
            }
        }
        (Prov::Map { by, overridden, .. }, _) => {
            let winner = by.last().copied().unwrap_or_default();
            let leaf = Leaf {
                winner,
                overridden: overridden
                    .iter()
                    .copied()
                    .filter(|&i| i != winner)
                    .collect(),
                contributors: vec![winner],
            };
            each(segments, &leaf, value);
        }
        (
            Prov::List {
                items,
                by,
                overridden,
            },
            _,
        ) => {
            let mut contributors = items.clone();
            contributors.sort_unstable();
            contributors.dedup();
            let winner = contributors
                .last()
                .or(by.last())
                .copied()
                .unwrap_or_default();
            if contributors.is_empty() {
                contributors.push(winner);
            }
            let leaf = Leaf {
                winner,
                overridden: overridden
                    .iter()
                    .copied()
                    .filter(|i| !contributors.contains(i))
                    .collect(),
                contributors,
            };
            each(segments, &leaf, value);
        }
        (Prov::Leaf { by, overridden }, _) => {
            let leaf = Leaf {
                winner: *by,
                overridden: overridden.iter().copied().filter(|i| i != by).collect(),
                contributors: vec![*by],
            };
            each(segments, &leaf, value);
        }
    }
}

// ---- output ----

/// `1 source base (via common)`: a layer's number (from 1) and description.
fn numbered(e: &Explanation, i: usize) -> String {
    format!("{} {}", i + 1, e.layers[i].describe())
}

/// The text form: the layers numbered, then one line per key. Values only where the policy
/// shows them (`--show-values`; sensitive-looking keys stay masked); without it no value at all.
pub fn render_text(e: &Explanation, policy: &MaskPolicy, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "Target {}, secret {}: {} layer{}, {} key{}",
        e.target,
        e.path,
        e.layers.len(),
        if e.layers.len() == 1 { "" } else { "s" },
        e.keys.len(),
        if e.keys.len() == 1 { "" } else { "s" },
    )?;
    writeln!(out, "Layers (in merge order; a later layer wins):")?;
    for (i, l) in e.layers.iter().enumerate() {
        let absent = match l.kind {
            _ if l.present => String::new(),
            LayerKind::TargetOverrides => format!("  (not applied: {} has no {})", l.name, e.path),
            _ => format!("  (does not hold {})", e.path),
        };
        writeln!(out, "  {:>2}  {}{absent}", i + 1, l.describe())?;
    }
    writeln!(out, "Keys:")?;
    let width = e
        .keys
        .iter()
        .map(|k| k.key.chars().count())
        .max()
        .unwrap_or(0);
    for k in &e.keys {
        let mut line = format!("  {:<width$}", k.key);
        if policy.shows_values() {
            line.push_str(&format!(" = {}", policy.display_inline(&k.key, k.value())));
        }
        line.push_str(&format!("  ← {}", numbered(e, k.winner)));
        if k.merged {
            let from: Vec<String> = k
                .contributors
                .iter()
                .filter(|&&i| i != k.winner)
                .map(|&i| numbered(e, i))
                .collect();
            line.push_str(&format!("  (merged with: {})", from.join(", ")));
        }
        if !k.overridden.is_empty() {
            let over: Vec<String> = k.overridden.iter().map(|&i| numbered(e, i)).collect();
            line.push_str(&format!("  (overrides: {})", over.join(", ")));
        }
        writeln!(out, "{line}")?;
    }
    for g in &e.incomplete {
        writeln!(
            out,
            "warning: the Vault read was incomplete here, so a layer may be missing and the pipeline does not write this secret: {g}"
        )?;
    }
    Ok(())
}

/// The JSON document (`docs/explain.md`). Layer numbers count from 1, as in the text form;
/// `value` is present only when the policy shows values.
pub fn to_json(e: &Explanation, policy: &MaskPolicy) -> Value {
    let n = |i: &usize| i + 1;
    json!({
        "version": SCHEMA_VERSION,
        "target": e.target,
        "path": e.path,
        "layers": e.layers.iter().enumerate().map(|(i, l)| json!({
            "number": i + 1,
            "kind": l.kind,
            "name": l.name,
            "label": l.label(),
            "via": l.via,
            "present": l.present,
        })).collect::<Vec<_>>(),
        "keys": e.keys.iter().map(|k| {
            let mut o = json!({
                "key": k.key,
                "segments": k.segments,
                "winner": k.winner + 1,
                "winner_label": e.layers[k.winner].label(),
                "overridden": k.overridden.iter().map(n).collect::<Vec<_>>(),
                "merged": k.merged,
                "contributors": k.contributors.iter().map(n).collect::<Vec<_>>(),
            });
            if policy.shows_values()
                && let Value::Object(m) = &mut o
            {
                m.insert("value".into(), policy.display(&k.key, k.value()));
            }
            o
        }).collect::<Vec<_>>(),
        "incomplete": e.incomplete,
    })
}

#[cfg(test)]
mod tests;
