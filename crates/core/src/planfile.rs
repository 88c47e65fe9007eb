//! Plan files: `pipeline --dry-run --plan-out FILE` writes what a run would do, and `pipeline
//! --plan FILE` applies exactly that or nothing. A plan reviewed in a pull request is then what
//! gets applied later — or each target that drifted in between is refused as a whole.
//!
//! For every planned change the file holds the target name, the secret's path and name, the
//! kind of change, the keyed fingerprint of the desired value (HMAC-SHA256 under the target's
//! own fingerprint key, the one its ownership marks use: a reader of the file cannot test a
//! guessed value against it) and the version the change was planned against (AWS's current
//! version id). It also holds a fingerprint of the config's shape ([`config_fingerprint`]: made
//! from the config with every value left out). It never holds a value.
//!
//! Applying checks, per target, that the fresh plan has exactly the file's changes: the same
//! secrets, the same kinds, the same desired fingerprints, against the same versions. Any
//! difference — Vault changed, someone edited the secret in AWS, a change the file does not have
//! would be needed, or one the file has is no longer needed — refuses the target, naming the
//! secrets that drifted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diff::{ChangeKind, SecretChange, TargetPlan};

/// The format of the file (`"secretsync_plan": 1`).
pub const FORMAT: u32 = 1;

/// A plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    pub secretsync_plan: u32,
    /// [`config_fingerprint`] of the config it was made with.
    pub config: String,
    /// When it was made (RFC 3339, UTC).
    pub created: String,
    pub targets: Vec<PlannedTarget>,
}

/// One target's planned changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTarget {
    pub target: String,
    /// The plan was refused when it was made (nothing would be applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub changes: Vec<Planned>,
}

/// One planned change of one secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub path: String,
    pub name: String,
    /// `added`, `modified`, `deleted`, `retag` (ownership marks only) or `settings` (settings
    /// only).
    pub change: String,
    /// Keyed fingerprint of the desired value (none for a deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
    /// The version the change was planned against (none for a new secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The settings it brings in line (`description: "a"`), in the plan's words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
}

/// The change a plan makes to one secret, in the file's words; `None` for no change.
fn change_word(c: &SecretChange) -> Option<&'static str> {
    match c.kind {
        ChangeKind::Added => Some("added"),
        ChangeKind::Modified => Some("modified"),
        ChangeKind::Deleted => Some("deleted"),
        ChangeKind::Unchanged if c.retag => Some("retag"),
        ChangeKind::Unchanged if !c.settings.is_empty() => Some("settings"),
        ChangeKind::Unchanged | ChangeKind::Skipped => None,
    }
}

fn planned(c: &SecretChange) -> Option<Planned> {
    let change = change_word(c)?;
    Some(Planned {
        path: c.path.clone(),
        name: c.name.clone(),
        change: change.to_string(),
        desired: (c.kind != ChangeKind::Deleted)
            .then(|| c.fingerprint.clone())
            .flatten(),
        current_version: c.old_version.clone(),
        settings: c
            .settings
            .iter()
            .map(|s| format!("{}: {}", s.setting, s.new.as_deref().unwrap_or("(none)")))
            .collect(),
    })
}

impl PlannedTarget {
    /// What the file records of `plan`.
    pub fn of(plan: &TargetPlan) -> PlannedTarget {
        PlannedTarget {
            target: plan.target.clone(),
            refused: plan.refused.clone(),
            changes: plan.changes.iter().filter_map(planned).collect(),
        }
    }

    /// How `fresh` (the plan made now) differs from this one: each secret that drifted and
    /// why, by name. Empty: the plans are the same.
    pub fn drift(&self, fresh: &TargetPlan) -> Vec<String> {
        let was: BTreeMap<&str, &Planned> =
            self.changes.iter().map(|p| (p.name.as_str(), p)).collect();
        let now: BTreeMap<String, Planned> = fresh
            .changes
            .iter()
            .filter_map(planned)
            .map(|p| (p.name.clone(), p))
            .collect();
        let mut out = Vec::new();
        for (name, p) in &now {
            match was.get(name.as_str()) {
                None => out.push(format!(
                    "`{name}` needs a change the plan does not have ({})",
                    p.change
                )),
                Some(w) if w.change != p.change => out.push(format!(
                    "`{name}` was planned as {} but now needs {}",
                    w.change, p.change
                )),
                Some(w) if w.current_version != p.current_version => out.push(format!(
                    "`{name}` changed in the target since the plan was made (its current version is no longer the one planned against)"
                )),
                Some(w) if w.desired != p.desired => out.push(format!(
                    "`{name}`: its desired value changed since the plan was made (Vault or the config changed)"
                )),
                Some(w) if w.settings != p.settings => out.push(format!(
                    "`{name}`: its settings changed since the plan was made"
                )),
                Some(_) => {}
            }
        }
        for (name, w) in &was {
            if !now.contains_key(*name) {
                out.push(format!(
                    "`{name}` was planned as {} but no longer needs it (it changed since the plan was made)",
                    w.change
                ));
            }
        }
        out.sort();
        out
    }
}

/// A fingerprint of the config's shape: SHA-256 of its `Debug` form, which leaves out every
/// value (credentials are redacted, overrides show their keys only) — so it holds nothing a
/// guess could be tested against. Values that matter reach the plan as desired fingerprints.
pub fn config_fingerprint(config: &crate::config::Config) -> String {
    hex::encode(Sha256::digest(format!("{config:?}").as_bytes()))
}

impl PlanFile {
    /// Parses a plan file, saying what is wrong with one that is not.
    pub fn parse(text: &str) -> Result<PlanFile, String> {
        let f: PlanFile =
            serde_json::from_str(text).map_err(|e| format!("not a SecretSync plan file ({e})"))?;
        if f.secretsync_plan != FORMAT {
            return Err(format!(
                "plan file format {} is not supported (this version reads {FORMAT}); make the plan again with this version",
                f.secretsync_plan
            ));
        }
        Ok(f)
    }

    pub fn target(&self, name: &str) -> Option<&PlannedTarget> {
        self.targets.iter().find(|t| t.target == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::SettingChange;

    fn change(
        name: &str,
        kind: ChangeKind,
        fp: Option<&str>,
        version: Option<&str>,
    ) -> SecretChange {
        let mut c = SecretChange::new(name, name, kind);
        c.fingerprint = fp.map(str::to_string);
        c.old_version = version.map(str::to_string);
        c
    }

    fn plan(changes: Vec<SecretChange>) -> TargetPlan {
        TargetPlan {
            target: "t".into(),
            changes,
            orphans_kept: vec![],
            refused: None,
            deletions_held: None,
            policy: Default::default(),
        }
    }

    #[test]
    fn the_same_plan_has_no_drift_and_every_difference_is_named() {
        let base = plan(vec![
            change("p/a", ChangeKind::Modified, Some("f1"), Some("v1")),
            change("p/b", ChangeKind::Added, Some("f2"), None),
            change("p/c", ChangeKind::Deleted, Some("f3"), Some("v3")),
            change("p/d", ChangeKind::Unchanged, Some("f4"), Some("v4")),
        ]);
        let file = PlannedTarget::of(&base);
        assert_eq!(
            file.changes.len(),
            3,
            "unchanged secrets are not in the file"
        );
        assert_eq!(
            file.changes[2].desired, None,
            "a deletion has no desired value"
        );
        assert!(file.drift(&base).is_empty());

        // Vault changed a value; AWS changed another; a new change appeared; one disappeared.
        let fresh = plan(vec![
            change("p/a", ChangeKind::Modified, Some("f1-new"), Some("v1")),
            change("p/b", ChangeKind::Added, Some("f2"), None),
            change("p/d", ChangeKind::Modified, Some("f4x"), Some("v4")),
            change("p/e", ChangeKind::Modified, Some("f5"), Some("v5-edited")),
        ]);
        let drift = file.drift(&fresh);
        assert_eq!(drift.len(), 4, "{drift:?}");
        assert!(
            drift
                .iter()
                .any(|d| d.starts_with("`p/a`: its desired value changed"))
        );
        assert!(
            drift
                .iter()
                .any(|d| d.starts_with("`p/c` was planned as deleted"))
        );
        assert!(drift.iter().any(|d| d.starts_with("`p/d` needs a change")));
        assert!(drift.iter().any(|d| d.starts_with("`p/e` needs a change")));

        let edited = plan(vec![
            change("p/a", ChangeKind::Modified, Some("f1"), Some("v1-edited")),
            change("p/b", ChangeKind::Added, Some("f2"), None),
            change("p/c", ChangeKind::Deleted, Some("f3"), Some("v3")),
        ]);
        assert_eq!(
            file.drift(&edited),
            [
                "`p/a` changed in the target since the plan was made (its current version is no longer the one planned against)"
            ]
        );
        let mut settings = base.clone();
        settings.changes[0].settings.push(SettingChange {
            setting: "description".into(),
            old: None,
            new: Some("x".into()),
            note: None,
        });
        assert_eq!(file.drift(&settings).len(), 1);
    }

    #[test]
    fn files_round_trip_and_other_formats_are_refused() {
        let f = PlanFile {
            secretsync_plan: FORMAT,
            config: "c".into(),
            created: "2026-12-02T00:00:00Z".into(),
            targets: vec![PlannedTarget::of(&plan(vec![change(
                "p/a",
                ChangeKind::Added,
                Some("f"),
                None,
            )]))],
        };
        let text = serde_json::to_string_pretty(&f).unwrap();
        assert_eq!(PlanFile::parse(&text).unwrap(), f);
        let other = text.replace("\"secretsync_plan\": 1", "\"secretsync_plan\": 9");
        assert!(PlanFile::parse(&other).unwrap_err().contains("format 9"));
        assert!(
            PlanFile::parse("{}")
                .unwrap_err()
                .starts_with("not a SecretSync plan file")
        );
    }
}
