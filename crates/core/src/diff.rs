//! The plan for one target: compare the desired state with what the target holds and decide,
//! per secret, what to do. Pure: the engine lists the target, reads the values this module
//! asks for ([`needs_value`]), and passes both in.
//!
//! Ownership: a secret the tool creates carries [`TAG_MANAGED`]=`secretsync`, the target name,
//! the content hash of what it wrote and the version id it wrote. A desired name that exists
//! without those tags is never overwritten unless the target says `adopt: true`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::naming;
use crate::secret::{Bundle, SecretValue};

pub const TAG_MANAGED: &str = "managed-by";
pub const MANAGED_VALUE: &str = "secretsync";
pub const TAG_TARGET: &str = "secretsync:target";
pub const TAG_HASH: &str = "secretsync:content-hash";
pub const TAG_VERSION: &str = "secretsync:version";

/// One secret as a cheap listing shows it (no value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listed {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// The version id that has the `AWSCURRENT` stage.
    pub current_version: Option<String>,
    pub pending_deletion: bool,
}

impl Listed {
    pub fn managed_by(&self) -> Option<&str> {
        (self.tags.get(TAG_MANAGED).map(String::as_str) == Some(MANAGED_VALUE))
            .then(|| self.tags.get(TAG_TARGET).map(String::as_str).unwrap_or(""))
    }

    /// Managed by `target`, written by us at the current version with this content hash.
    fn provably_unchanged(&self, target: &str, hash: &str) -> bool {
        self.managed_by() == Some(target)
            && self.tags.get(TAG_HASH).map(String::as_str) == Some(hash)
            && self.current_version.is_some()
            && self.tags.get(TAG_VERSION) == self.current_version.as_ref()
    }
}

/// Settings of a target that shape its plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    pub target: String,
    pub prefix: String,
    pub adopt: bool,
    pub delete_orphans: bool,
    pub max_deletes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Unchanged,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChangeKind {
    Added,
    Removed,
    Changed,
}

/// A change to one key of a secret; nested keys are joined with `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KeyChange {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: KeyChangeKind,
}

/// What happens to one secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretChange {
    /// Relative path (below the source mounts), or the AWS name for orphans.
    pub path: String,
    /// Full name in the target.
    pub name: String,
    pub kind: ChangeKind,
    /// Why a secret is skipped.
    pub reason: Option<String>,
    /// Skipped because the data is invalid (counts as a failure), not by policy.
    pub invalid: bool,
    pub keys: Vec<KeyChange>,
    /// The secret is pending deletion and is restored before it is updated.
    pub restore: bool,
    /// An unmanaged secret taken over because the target says `adopt: true`.
    pub adopt: bool,
    /// Only the ownership tags need fixing (the value already matches).
    pub retag: bool,
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    /// The tags the secret had when listed (restored on rollback).
    pub old_tags: BTreeMap<String, String>,
    pub old_value: Option<SecretValue>,
    pub new_value: Option<SecretValue>,
}

impl SecretChange {
    fn new(path: &str, name: &str, kind: ChangeKind) -> Self {
        SecretChange {
            path: path.to_string(),
            name: name.to_string(),
            kind,
            reason: None,
            invalid: false,
            keys: Vec::new(),
            restore: false,
            adopt: false,
            retag: false,
            old_version: None,
            new_version: None,
            old_tags: BTreeMap::new(),
            old_value: None,
            new_value: None,
        }
    }
}

/// Counts by change kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn changes(&self) -> usize {
        self.added + self.modified + self.deleted
    }
    pub fn add(&mut self, o: &Counts) {
        self.added += o.added;
        self.modified += o.modified;
        self.deleted += o.deleted;
        self.unchanged += o.unchanged;
        self.skipped += o.skipped;
    }
}

/// The plan of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPlan {
    pub target: String,
    /// Sorted by path.
    pub changes: Vec<SecretChange>,
    /// Managed secrets no longer desired, kept because `delete_orphans` is off.
    pub orphans_kept: Vec<String>,
    /// Set when the plan must not be applied (e.g. more deletions than `max_deletes`).
    pub refused: Option<String>,
    /// Why no deletion is planned although `delete_orphans` is on (an incomplete source read:
    /// the reason names the source and the paths that were skipped). The orphans are listed in
    /// `orphans_kept`.
    pub deletions_held: Option<String>,
}

/// What applying a plan did: the counts actually applied (after any rollback they still say
/// what was written before it), what was rolled back, and what is left changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub retagged: usize,
    /// The failure that stopped the apply, if any (a refused plan sets it, with zero writes).
    pub failure: Option<String>,
    /// The apply stopped because the run was cancelled (a signal).
    pub cancelled: bool,
    /// How many completed writes the rollback undid.
    pub rolled_back: usize,
    /// Writes that could not be undone (`name: why`).
    pub rollback_failures: Vec<String>,
    /// Names of secrets the target is left with changed by this run (applied and not rolled
    /// back): empty after a clean rollback, every applied name after a success.
    pub left_changed: Vec<String>,
}

impl ApplyReport {
    /// Changes that remain applied.
    pub fn applied(&self) -> usize {
        self.left_changed.len()
    }
}

impl TargetPlan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for ch in &self.changes {
            match ch.kind {
                ChangeKind::Added => c.added += 1,
                ChangeKind::Modified => c.modified += 1,
                ChangeKind::Deleted => c.deleted += 1,
                ChangeKind::Unchanged => c.unchanged += 1,
                ChangeKind::Skipped => c.skipped += 1,
            }
        }
        c
    }
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| {
            matches!(
                c.kind,
                ChangeKind::Added | ChangeKind::Modified | ChangeKind::Deleted
            ) || c.retag
        })
    }
    pub fn invalid(&self) -> impl Iterator<Item = &SecretChange> {
        self.changes.iter().filter(|c| c.invalid)
    }
}

/// The names whose values must be read to plan: desired secrets that exist, are readable
/// (not pending deletion), may be written by us (managed by this target, or adoptable), and
/// whose tags do not prove them unchanged.
pub fn needs_value(
    opts: &PlanOptions,
    desired: &Bundle,
    listed: &BTreeMap<String, Listed>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, value) in desired {
        let name = format!("{}{path}", opts.prefix);
        let Some(l) = listed.get(&name) else { continue };
        if l.pending_deletion {
            continue;
        }
        let ours = l.managed_by() == Some(opts.target.as_str());
        let adoptable = l.managed_by().is_none() && opts.adopt;
        if (ours || adoptable) && !l.provably_unchanged(&opts.target, &value.content_hash()) {
            out.push(name);
        }
    }
    out
}

/// Builds the plan. `values` holds what was read for [`needs_value`]'s names.
pub fn plan(
    opts: &PlanOptions,
    desired: &Bundle,
    listed: &BTreeMap<String, Listed>,
    values: &BTreeMap<String, SecretValue>,
) -> TargetPlan {
    let mut changes = Vec::new();
    let mut desired_names = BTreeSet::new();
    for (path, value) in desired {
        let name = format!("{}{path}", opts.prefix);
        desired_names.insert(name.clone());
        let json = value.canonical_json();
        if let Err(e) = naming::check_name(&name).and_then(|_| naming::check_size(json.len())) {
            let mut c = SecretChange::new(path, &name, ChangeKind::Skipped);
            c.reason = Some(e);
            c.invalid = true;
            changes.push(c);
            continue;
        }
        let hash = value.content_hash();
        let Some(l) = listed.get(&name) else {
            let mut c = SecretChange::new(path, &name, ChangeKind::Added);
            c.keys = key_changes(
                &Value::Object(Default::default()),
                &Value::Object(value.expose().clone()),
            );
            c.new_value = Some(value.clone());
            changes.push(c);
            continue;
        };
        let owner = l.managed_by();
        let ours = owner == Some(opts.target.as_str());
        let mut c = SecretChange::new(path, &name, ChangeKind::Unchanged);
        c.old_version = l.current_version.clone();
        c.old_tags = l.tags.clone();
        c.new_value = Some(value.clone());
        match owner {
            Some(other) if !ours => {
                c.kind = ChangeKind::Skipped;
                c.reason = Some(format!(
                    "already managed by target `{other}`; two targets must not write the same secret (give one a different `secret_prefix`)"
                ));
                changes.push(c);
                continue;
            }
            None if !opts.adopt => {
                c.kind = ChangeKind::Skipped;
                c.reason = Some(format!(
                    "exists but is not managed by secretsync; it is left untouched. To take it over, set `adopt: true` on target `{}`",
                    opts.target
                ));
                changes.push(c);
                continue;
            }
            _ => {}
        }
        c.adopt = owner.is_none();
        if l.pending_deletion {
            c.kind = ChangeKind::Modified;
            c.restore = true;
        } else if l.provably_unchanged(&opts.target, &hash) {
            c.kind = ChangeKind::Unchanged;
        } else {
            match values.get(&name) {
                Some(old) if old.canonical_json() == json => {
                    c.kind = ChangeKind::Unchanged;
                    c.retag = true;
                    c.old_value = Some(old.clone());
                }
                Some(old) => {
                    c.kind = ChangeKind::Modified;
                    c.keys = key_changes(
                        &Value::Object(old.expose().clone()),
                        &Value::Object(value.expose().clone()),
                    );
                    c.old_value = Some(old.clone());
                }
                None => {
                    // Unreadable or not a JSON object: overwrite with the desired value.
                    c.kind = ChangeKind::Modified;
                }
            }
        }
        changes.push(c);
    }

    let mut orphans = Vec::new();
    for (name, l) in listed {
        if desired_names.contains(name) || !name.starts_with(&opts.prefix) || l.pending_deletion {
            continue;
        }
        if l.managed_by() == Some(opts.target.as_str()) {
            orphans.push(name.clone());
        }
    }
    let mut refused = None;
    let mut orphans_kept = Vec::new();
    if opts.delete_orphans {
        if orphans.len() > opts.max_deletes {
            refused = Some(format!(
                "{} managed secrets are no longer desired, more than `max_deletes` ({}) allows; nothing was changed. If this is expected, raise `max_deletes` on target `{}`; otherwise check that every Vault source was read completely",
                orphans.len(),
                opts.max_deletes,
                opts.target
            ));
        }
        for name in orphans {
            let path = name.strip_prefix(&opts.prefix).unwrap_or(&name).to_string();
            let mut c = SecretChange::new(&path, &name, ChangeKind::Deleted);
            c.old_version = listed.get(&name).and_then(|l| l.current_version.clone());
            changes.push(c);
        }
    } else {
        orphans_kept = orphans;
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path).then(a.name.cmp(&b.name)));
    TargetPlan {
        target: opts.target.clone(),
        changes,
        orphans_kept,
        refused,
        deletions_held: None,
    }
}

/// Key-level differences between two JSON values; nested maps recurse, anything else is
/// compared whole.
pub fn key_changes(old: &Value, new: &Value) -> Vec<KeyChange> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn walk(prefix: &str, old: &Value, new: &Value, out: &mut Vec<KeyChange>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    None => out.push(KeyChange {
                        key: join(k),
                        kind: KeyChangeKind::Removed,
                    }),
                    Some(vb) => walk(&join(k), va, vb, out),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(KeyChange {
                    key: join(k),
                    kind: KeyChangeKind::Added,
                });
            }
        }
        (a, b) if a != b => out.push(KeyChange {
            key: prefix.to_string(),
            kind: KeyChangeKind::Changed,
        }),
        _ => {}
    }
    out.sort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::secret;
    use serde_json::json;

    fn opts(adopt: bool, delete: bool) -> PlanOptions {
        PlanOptions {
            target: "t".into(),
            prefix: "p/".into(),
            adopt,
            delete_orphans: delete,
            max_deletes: 2,
        }
    }

    fn managed(name: &str, v: &SecretValue, version: &str) -> Listed {
        Listed {
            name: name.into(),
            tags: BTreeMap::from([
                (TAG_MANAGED.into(), MANAGED_VALUE.into()),
                (TAG_TARGET.into(), "t".into()),
                (TAG_HASH.into(), v.content_hash()),
                (TAG_VERSION.into(), version.into()),
            ]),
            current_version: Some(version.into()),
            pending_deletion: false,
        }
    }

    fn kinds(p: &TargetPlan) -> Vec<(String, ChangeKind)> {
        p.changes.iter().map(|c| (c.name.clone(), c.kind)).collect()
    }

    #[test]
    fn cheap_unchanged_add_modify_and_unmanaged() {
        let a = secret(json!({"k": "1"}));
        let b_old = secret(json!({"k": "1", "gone": 1}));
        let b_new = secret(json!({"k": "2", "n": {"x": 1}}));
        let desired = Bundle::from([
            ("a".into(), a.clone()),
            ("b".into(), b_new.clone()),
            ("c".into(), a.clone()),
            ("u".into(), a.clone()),
        ]);
        let mut listed = BTreeMap::new();
        listed.insert("p/a".into(), managed("p/a", &a, "v1"));
        listed.insert("p/b".into(), managed("p/b", &b_old, "v1"));
        listed.insert(
            "p/u".into(),
            Listed {
                name: "p/u".into(),
                current_version: Some("x".into()),
                ..Default::default()
            },
        );
        let o = opts(false, false);
        // Only the changed managed secret needs a read; unmanaged ones are never read.
        assert_eq!(needs_value(&o, &desired, &listed), ["p/b"]);
        let values = BTreeMap::from([("p/b".to_string(), b_old)]);
        let p = plan(&o, &desired, &listed, &values);
        assert_eq!(
            kinds(&p),
            [
                ("p/a".into(), ChangeKind::Unchanged),
                ("p/b".into(), ChangeKind::Modified),
                ("p/c".into(), ChangeKind::Added),
                ("p/u".into(), ChangeKind::Skipped),
            ]
        );
        let keys: Vec<_> = p.changes[1]
            .keys
            .iter()
            .map(|k| (k.key.as_str(), k.kind))
            .collect();
        assert_eq!(
            keys,
            [
                ("gone", KeyChangeKind::Removed),
                ("k", KeyChangeKind::Changed),
                ("n", KeyChangeKind::Added)
            ]
        );
        assert!(
            p.changes[3]
                .reason
                .as_ref()
                .unwrap()
                .contains("adopt: true")
        );
        assert_eq!(
            p.counts(),
            Counts {
                added: 1,
                modified: 1,
                deleted: 0,
                unchanged: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn out_of_band_edit_is_detected_by_version() {
        let a = secret(json!({"k": "1"}));
        let mut l = managed("p/a", &a, "v1");
        l.current_version = Some("v2-console".into());
        let listed = BTreeMap::from([("p/a".to_string(), l)]);
        let desired = Bundle::from([("a".into(), a.clone())]);
        assert_eq!(needs_value(&opts(false, false), &desired, &listed), ["p/a"]);
        let edited = BTreeMap::from([("p/a".to_string(), secret(json!({"k": "evil"})))]);
        assert_eq!(
            plan(&opts(false, false), &desired, &listed, &edited).changes[0].kind,
            ChangeKind::Modified
        );
        let same = BTreeMap::from([("p/a".to_string(), a.clone())]);
        let p = plan(&opts(false, false), &desired, &listed, &same);
        assert!(p.changes[0].kind == ChangeKind::Unchanged && p.changes[0].retag);
    }

    #[test]
    fn orphans_kept_deleted_or_refused() {
        let a = secret(json!({"k": "1"}));
        let listed: BTreeMap<String, Listed> = ["p/x", "p/y", "p/z"]
            .iter()
            .map(|n| (n.to_string(), managed(n, &a, "v")))
            .collect();
        let mut foreign = listed.clone();
        foreign.insert("q/other".into(), managed("q/other", &a, "v"));
        let desired = Bundle::from([("x".into(), a.clone())]);
        let kept = plan(&opts(false, false), &desired, &foreign, &BTreeMap::new());
        assert_eq!(kept.orphans_kept, ["p/y", "p/z"]);
        let deleted = plan(&opts(false, true), &desired, &foreign, &BTreeMap::new());
        assert_eq!(deleted.counts().deleted, 2);
        assert!(deleted.refused.is_none());
        let none = plan(
            &opts(false, true),
            &Bundle::new(),
            &listed,
            &BTreeMap::new(),
        );
        assert!(none.refused.as_ref().unwrap().contains("max_deletes"));
    }

    #[test]
    fn invalid_names_and_pending_deletion() {
        let a = secret(json!({"k": "1"}));
        let big = secret(json!({"k": "x".repeat(70_000)}));
        let desired = Bundle::from([
            ("bad name".into(), a.clone()),
            ("big".into(), big),
            ("gone".into(), a.clone()),
        ]);
        let mut l = managed("p/gone", &a, "v1");
        l.pending_deletion = true;
        let listed = BTreeMap::from([("p/gone".to_string(), l)]);
        let p = plan(&opts(false, false), &desired, &listed, &BTreeMap::new());
        assert_eq!(p.invalid().count(), 2);
        let gone = &p.changes[2];
        assert!(gone.kind == ChangeKind::Modified && gone.restore);
    }

    #[test]
    fn plan_of_same_state_is_empty() {
        let desired = Bundle::from([("a".into(), secret(json!({"k": [1, 2]})))]);
        let listed = BTreeMap::from([("p/a".to_string(), managed("p/a", &desired["a"], "v"))]);
        assert!(!plan(&opts(false, true), &desired, &listed, &BTreeMap::new()).has_changes());
    }

    use proptest::prelude::*;

    /// A simulated target: name -> (value, listing). Applying a plan the way the engine does.
    fn state_of(
        bundle: &Bundle,
        o: &PlanOptions,
    ) -> (BTreeMap<String, Listed>, BTreeMap<String, SecretValue>) {
        let mut listed = BTreeMap::new();
        let mut values = BTreeMap::new();
        for (p, v) in bundle {
            let name = format!("{}{p}", o.prefix);
            listed.insert(
                name.clone(),
                managed(&name, v, &format!("v-{}", v.content_hash())),
            );
            values.insert(name, v.clone());
        }
        (listed, values)
    }

    fn apply(p: &TargetPlan, o: &PlanOptions, values: &mut BTreeMap<String, SecretValue>) {
        for c in &p.changes {
            match c.kind {
                ChangeKind::Added | ChangeKind::Modified => {
                    values.insert(c.name.clone(), c.new_value.clone().unwrap());
                }
                ChangeKind::Deleted => {
                    values.remove(&c.name);
                }
                _ => {}
            }
        }
        let _ = o;
    }

    fn bundles() -> impl Strategy<Value = Bundle> {
        prop::collection::btree_map(
            "[a-d]{1,2}(/[a-c])?",
            prop::collection::btree_map("[k-m]", 0i64..3, 0..3),
            0..6,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(p, kv)| {
                    (
                        p,
                        SecretValue::new(
                            kv.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
                        ),
                    )
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn apply_of_plan_reaches_desired(a in bundles(), b in bundles()) {
            let o = PlanOptions { target: "t".into(), prefix: "p/".into(), adopt: false, delete_orphans: true, max_deletes: 100 };
            let (listed, mut values) = state_of(&a, &o);
            // Values are read exactly for what the plan asks.
            let wanted = needs_value(&o, &b, &listed);
            let read: BTreeMap<String, SecretValue> = wanted.iter().filter_map(|n| values.get(n).map(|v| (n.clone(), v.clone()))).collect();
            let p = plan(&o, &b, &listed, &read);
            apply(&p, &o, &mut values);
            let want: BTreeMap<String, SecretValue> = b.iter().map(|(k, v)| (format!("p/{k}"), v.clone())).collect();
            prop_assert_eq!(values, want);
        }

        #[test]
        fn plan_of_same_state_has_no_changes(a in bundles()) {
            let o = PlanOptions { target: "t".into(), prefix: "p/".into(), adopt: false, delete_orphans: true, max_deletes: 100 };
            let (listed, _) = state_of(&a, &o);
            prop_assert!(needs_value(&o, &a, &listed).is_empty());
            let p = plan(&o, &a, &listed, &BTreeMap::new());
            prop_assert!(!p.has_changes());
            prop_assert_eq!(p.counts().unchanged, a.len());
        }
    }
}
