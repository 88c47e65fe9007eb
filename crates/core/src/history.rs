//! History: the numbered versions of each secret a target holds and the revisions of each
//! target, as recorded after every apply that changed something (the pure half; the engine's
//! `history` module keeps them in the merge store).
//!
//! * A **version** ([`VersionRecord`]) is one change SecretSync made to one secret of one
//!   target: its number (1, 2, 3 … per target and relative path, never reused), the UTC time,
//!   the kind of change, the backend's version id it produced, the run id, the author, a keyed
//!   fingerprint of the value, and the value itself (`None` for a deletion).
//! * A **revision** ([`Revision`]) is one apply that changed a target: the versions it made,
//!   and the target's manifest after it (every relative path ever recorded → its latest version
//!   and whether that version deleted it), plus the pins in force.
//! * A **pin** holds a secret at the version a rollback restored: a later run leaves it alone
//!   until it is unpinned.
//!
//! Nothing here reads a clock: times are passed in, already formatted (RFC 3339, UTC).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diff::{ChangeKind, Numbered, SecretChange, TargetPlan};
use crate::secret::SecretValue;

/// What a version did to the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Create,
    Update,
    Delete,
    /// Brought back from pending deletion (and brought up to date).
    Restore,
    /// Made an earlier version current again (`secretsync version rollback`, or `pipeline
    /// --version R`).
    Rollback,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Delete => "delete",
            Change::Restore => "restore",
            Change::Rollback => "rollback",
        }
    }

    /// Whether the secret is gone after this change.
    pub fn deletes(self) -> bool {
        self == Change::Delete
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version of one secret of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub target: String,
    /// The secret's relative path (below the target's prefix).
    pub path: String,
    pub version: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub change: Change,
    /// The backend's own id of what this version wrote (the AWS version id, the SSM parameter
    /// version, the KV version), when the change wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_version: Option<String>,
    pub run_id: String,
    pub author: String,
    /// The revision of the target this version belongs to.
    pub revision: u64,
    /// Keyed fingerprint (HMAC-SHA256 under the store's key `key_id`) of the value; `None` for
    /// a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub key_id: String,
    /// The value this version made current; `None` for a deletion. Kept in the merge store
    /// (encrypted at rest like every other object); never printed unmasked without
    /// `--show-values`.
    #[serde(default, with = "value_serde")]
    pub value: Option<SecretValue>,
}

/// A [`SecretValue`] as the JSON object it holds.
mod value_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        v: &Option<SecretValue>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_ref().map(SecretValue::expose).serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SecretValue>, D::Error> {
        Ok(Option::<Map<String, Value>>::deserialize(d)?.map(SecretValue::new))
    }
}

/// A secret's latest version, as a revision's manifest holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    pub version: u64,
    pub change: Change,
    /// When it was made (RFC 3339, UTC).
    pub time: String,
}

/// One version a revision made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Made {
    pub path: String,
    pub version: u64,
    pub change: Change,
}

/// One revision of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Revision {
    pub target: String,
    pub revision: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub run_id: String,
    pub author: String,
    /// The versions this revision made.
    pub made: Vec<Made>,
    /// Every path ever recorded for the target → its latest version (deletions included, so
    /// that a number is never reused).
    pub manifest: BTreeMap<String, Latest>,
    /// Pinned paths → the version they are held at.
    #[serde(default)]
    pub pins: BTreeMap<String, u64>,
}

/// A change to record: a path and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToRecord {
    pub path: String,
    pub change: Change,
}

impl Revision {
    /// The revision after `prev` (none: the target's first) that records `changes` made by
    /// `run_id` and `author` at `time`: each path's next version number, the updated manifest,
    /// the pins carried over (a pinned path that changes anyway keeps its pin only if the
    /// change is a rollback to that pin; callers never change pinned paths otherwise).
    pub fn next(
        prev: Option<&Revision>,
        target: &str,
        changes: &[ToRecord],
        time: &str,
        run_id: &str,
        author: &str,
    ) -> Revision {
        let mut manifest = prev.map(|p| p.manifest.clone()).unwrap_or_default();
        let pins = prev.map(|p| p.pins.clone()).unwrap_or_default();
        let made = changes
            .iter()
            .map(|c| {
                let version = manifest.get(&c.path).map_or(1, |l| l.version + 1);
                manifest.insert(
                    c.path.clone(),
                    Latest {
                        version,
                        change: c.change,
                        time: time.to_string(),
                    },
                );
                Made {
                    path: c.path.clone(),
                    version,
                    change: c.change,
                }
            })
            .collect();
        Revision {
            target: target.to_string(),
            revision: prev.map_or(1, |p| p.revision + 1),
            time: time.to_string(),
            run_id: run_id.to_string(),
            author: author.to_string(),
            made,
            manifest,
            pins,
        }
    }

    /// The latest version of `path`, if it was ever recorded.
    pub fn latest(&self, path: &str) -> Option<&Latest> {
        self.manifest.get(path)
    }

    /// The paths live in this revision (latest version not a deletion) and their versions.
    pub fn live(&self) -> impl Iterator<Item = (&str, u64)> {
        self.manifest
            .iter()
            .filter(|(_, l)| !l.change.deletes())
            .map(|(p, l)| (p.as_str(), l.version))
    }
}

/// What a planned change records when it is applied: creates, updates, restores and deletions
/// of a value (a retag or a settings change alone writes no new value, so no version).
pub fn change_of(c: &SecretChange) -> Option<Change> {
    match c.kind {
        ChangeKind::Added | ChangeKind::Modified if c.restore => Some(Change::Restore),
        ChangeKind::Added => Some(Change::Create),
        ChangeKind::Modified => Some(Change::Update),
        ChangeKind::Deleted => Some(Change::Delete),
        ChangeKind::Unchanged | ChangeKind::Skipped => None,
    }
}

/// Shows the history's numbers on a plan: each change that will record a version gets its
/// current number (unless it is a deletion) and the one it makes.
pub fn annotate(plan: &mut TargetPlan, latest: Option<&Revision>) {
    for c in &mut plan.changes {
        if change_of(c).is_none() {
            continue;
        }
        let current = latest.and_then(|r| r.latest(&c.path));
        c.old_numbered = current.filter(|l| !l.change.deletes()).map(|l| Numbered {
            number: l.version,
            time: Some(l.time.clone()),
        });
        c.new_numbered = Some(Numbered {
            number: current.map_or(1, |l| l.version + 1),
            time: None,
        });
    }
}

/// Holds pinned secrets where a rollback put them: every change the plan has for a pinned path
/// (a new value, a deletion, marks or settings) becomes a skip that names the pin and how to
/// release it. Returns how many changes were held.
pub fn apply_pins(plan: &mut TargetPlan, pins: &BTreeMap<String, u64>) -> usize {
    let mut held = 0;
    for c in &mut plan.changes {
        let Some(&v) = pins.get(&c.path) else {
            continue;
        };
        let changes = matches!(
            c.kind,
            ChangeKind::Added | ChangeKind::Modified | ChangeKind::Deleted
        ) || c.retag
            || !c.settings.is_empty();
        if !changes {
            continue;
        }
        held += 1;
        c.kind = ChangeKind::Skipped;
        c.retag = false;
        c.settings.clear();
        c.keys.clear();
        c.new_numbered = None;
        c.pinned = Some(v);
        c.reason = Some(format!(
            "pinned at v{v} by a rollback; `secretsync version unpin --target {} --path {}` releases it",
            plan.target, c.path
        ));
    }
    held
}

/// Sets the time of every version the plan made (`revision`'s), once recorded.
pub fn stamp(plan: &mut TargetPlan, revision: &Revision) {
    for c in &mut plan.changes {
        if let (Some(n), Some(made)) = (
            c.new_numbered.as_mut(),
            revision.made.iter().find(|m| m.path == c.path),
        ) {
            n.number = made.version;
            n.time = Some(revision.time.clone());
        }
    }
}

/// The changes of `plan` that an apply left in place (`left_changed`: their target names) and
/// that record a version: the path, the change, and the index of the change in the plan.
pub fn recorded<'a>(
    plan: &'a TargetPlan,
    left_changed: &[String],
) -> Vec<(&'a SecretChange, Change)> {
    let left: std::collections::BTreeSet<&str> = left_changed.iter().map(String::as_str).collect();
    plan.changes
        .iter()
        .filter(|c| left.contains(c.name.as_str()))
        .filter_map(|c| change_of(c).map(|k| (c, k)))
        .collect()
}

/// What retention removes once `latest` is written, keeping `retain` versions of each secret
/// and `retain` revisions of the target: the versions (path, number) and revisions that fall
/// out, given that everything older than them was removed before. Versions a pin holds are
/// kept whatever their age.
pub fn pruned(latest: &Revision, retain: u64) -> (Vec<(String, u64)>, Vec<u64>) {
    let retain = retain.max(1);
    let versions = latest
        .made
        .iter()
        .filter(|m| m.version > retain)
        .map(|m| (m.path.clone(), m.version - retain))
        .filter(|(p, v)| latest.pins.get(p) != Some(v))
        .collect();
    let revisions = (latest.revision > retain)
        .then(|| latest.revision - retain)
        .into_iter()
        .collect();
    (versions, revisions)
}

/// Who made a change, for history: `SECRETSYNC_AUTHOR`, else `GITHUB_ACTOR`, else `fallback`
/// (the engine passes the AWS caller identity's ARN when it has one).
pub fn author(env: &dyn Fn(&str) -> Option<String>, fallback: Option<&str>) -> String {
    ["SECRETSYNC_AUTHOR", "GITHUB_ACTOR"]
        .iter()
        .find_map(|v| {
            env(v)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| fallback.map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, change: Change) -> ToRecord {
        ToRecord {
            path: path.into(),
            change,
        }
    }

    #[test]
    fn numbers_count_per_path_and_are_never_reused() {
        let r1 = Revision::next(
            None,
            "t",
            &[rec("a", Change::Create), rec("b", Change::Create)],
            "2026-12-01T00:00:00Z",
            "run1",
            "alice",
        );
        assert_eq!(r1.revision, 1);
        assert_eq!(
            r1.made.iter().map(|m| m.version).collect::<Vec<_>>(),
            [1, 1]
        );
        let r2 = Revision::next(
            Some(&r1),
            "t",
            &[rec("a", Change::Update), rec("b", Change::Delete)],
            "2026-12-01T01:00:00Z",
            "run2",
            "bob",
        );
        assert_eq!(r2.revision, 2);
        assert_eq!(r2.latest("a").unwrap().version, 2);
        assert_eq!(r2.live().collect::<Vec<_>>(), [("a", 2)]);
        // Recreated after a deletion: the next number, not 1 again.
        let r3 = Revision::next(
            Some(&r2),
            "t",
            &[rec("b", Change::Create)],
            "2026-12-01T02:00:00Z",
            "run3",
            "bob",
        );
        assert_eq!(r3.latest("b").unwrap().version, 3);
        assert_eq!(r3.live().collect::<Vec<_>>(), [("a", 2), ("b", 3)]);
        assert_eq!(r3.author, "bob");
    }

    #[test]
    fn retention_drops_what_falls_out_but_never_a_pinned_version() {
        let mut r = Revision::next(None, "t", &[rec("a", Change::Create)], "t0", "r", "x");
        for _ in 0..4 {
            r = Revision::next(Some(&r), "t", &[rec("a", Change::Update)], "t", "r", "x");
        }
        // Revision 5 made version 5 of `a`: with 3 kept, version 2 and revision 2 fall out.
        assert_eq!(pruned(&r, 3), (vec![("a".to_string(), 2)], vec![2]));
        r.pins.insert("a".into(), 2);
        assert_eq!(pruned(&r, 3), (vec![], vec![2]));
        assert_eq!(pruned(&r, 10), (vec![], vec![]));
    }

    #[test]
    fn the_author_comes_from_the_environment_then_the_fallback() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            author(
                &env(&[("SECRETSYNC_AUTHOR", "ops"), ("GITHUB_ACTOR", "gh")]),
                Some("arn")
            ),
            "ops"
        );
        assert_eq!(
            author(
                &env(&[("SECRETSYNC_AUTHOR", " "), ("GITHUB_ACTOR", "gh")]),
                Some("arn")
            ),
            "gh"
        );
        assert_eq!(
            author(&env(&[]), Some("arn:aws:iam::1:user/a")),
            "arn:aws:iam::1:user/a"
        );
        assert_eq!(author(&env(&[]), None), "unknown");
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = Revision::next(None, "t", &[rec("a/b", Change::Create)], "t0", "r", "x");
        let back: Revision = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let v = VersionRecord {
            target: "t".into(),
            path: "a/b".into(),
            version: 1,
            time: "2026-12-01T00:00:00Z".into(),
            change: Change::Create,
            backend_version: Some("v-1".into()),
            run_id: "r".into(),
            author: "x".into(),
            revision: 1,
            fingerprint: Some("f".into()),
            key_id: "k".into(),
            value: Some(SecretValue::new(
                serde_json::json!({"k": "v"}).as_object().unwrap().clone(),
            )),
        };
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains("\"change\":\"create\""), "{text}");
        let back: VersionRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
