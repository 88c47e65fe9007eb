//! Diff renderers: a closed set of formats, each a module with the same three entry points —
//! `target` (one target's plan, printed before it is applied), `result` (what applying it did,
//! printed as soon as the target is done) and `finish` (what comes after every target: totals,
//! or the whole document for formats that need it). Pure: they write to the `out` they are
//! given. Values pass through [`MaskPolicy`] and are masked unless the user asked to see them.
//!
//! Reports say what happened, not what was planned: after an apply every format gives the
//! counts written and rolled back, the failure, and the names left changed ([`TargetDiff::status`]
//! and [`applied_totals`]); a dry run shows the plan, labelled as planned.

pub mod compact;
pub mod desired;
pub mod github;
pub mod json;
pub mod side_by_side;
pub mod text;

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::diff::{ApplyReport, ChangeKind, Counts, FailureKind, TargetPlan};
use crate::mask::MaskPolicy;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    SideBySide,
    Json,
    Github,
    Compact,
}

/// One target's plan and, once known, how it ended.
#[derive(Debug, Clone)]
pub struct TargetDiff {
    /// Shared with the run's summary: the plan is held once however many hold it.
    pub plan: std::sync::Arc<TargetPlan>,
    /// Why the target counts as failed, if it does (the plan failed, the apply failed, the plan
    /// was refused, or secrets were invalid).
    pub error: Option<String>,
    /// What kind of failure [`TargetDiff::error`] is, when the engine knows.
    pub error_kind: Option<FailureKind>,
    /// What applying the plan did; `None` in a dry run, when planning failed, or when the
    /// target was not started.
    pub applied: Option<ApplyReport>,
    /// The run was cancelled before this target began (nothing planned or written).
    pub not_started: bool,
    /// API calls the target made (every attempt, to whatever backend it is).
    pub aws_calls: u64,
    pub duration_ms: u64,
}

impl TargetDiff {
    /// A target that was planned and nothing else (yet).
    pub fn new(plan: impl Into<std::sync::Arc<TargetPlan>>) -> Self {
        TargetDiff {
            plan: plan.into(),
            error: None,
            error_kind: None,
            applied: None,
            not_started: false,
            aws_calls: 0,
            duration_ms: 0,
        }
    }

    /// How the target ended.
    pub fn status(&self) -> Status {
        if self.not_started {
            return Status::NotStarted;
        }
        if self.plan.refused.is_some() {
            return Status::Refused;
        }
        let Some(r) = &self.applied else {
            // A plan with invalid secrets is still a plan (its error says which); any other
            // error means there was no plan to show.
            return if self.error.is_some() && self.plan.invalid().next().is_none() {
                Status::Failed
            } else {
                Status::Planned
            };
        };
        if r.failure.is_none() && !r.cancelled {
            Status::Applied
        } else if !r.rollback_failures.is_empty() || !r.left_changed.is_empty() {
            Status::PartiallyApplied
        } else if r.created + r.updated + r.deleted > 0 || r.rolled_back > 0 {
            Status::RolledBack
        } else {
            Status::Failed
        }
    }

    /// Why the target did not apply fully: the apply's failure, else the target's error, else
    /// the refusal.
    pub fn failure(&self) -> Option<&str> {
        self.applied
            .as_ref()
            .and_then(|r| r.failure.as_deref())
            .or(self.error.as_deref())
            .or(self.plan.refused.as_deref())
            .or_else(|| {
                self.applied
                    .as_ref()
                    .is_some_and(|r| r.cancelled)
                    .then_some("cancelled")
            })
    }

    /// What kind of failure [`TargetDiff::failure`] is, in the same order: the apply's, the
    /// target's, a refusal, cancellation; then, for a target that applied but still counts as
    /// failed, invalid secrets or an incomplete read. `None` when nothing failed.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        let invalid = self.plan.invalid().next().is_some();
        if self.plan.refused.is_some() {
            return Some(if self.plan.policy.denied.is_empty() {
                FailureKind::Refused
            } else {
                FailureKind::Denied
            });
        }
        if let Some(r) = &self.applied {
            if r.cancelled {
                return Some(FailureKind::Cancelled);
            }
            if r.failure.is_some() {
                return Some(r.failure_kind.unwrap_or(FailureKind::Unexpected));
            }
        }
        if self.error.is_some() {
            return Some(self.error_kind.unwrap_or(if invalid {
                FailureKind::Invalid
            } else {
                FailureKind::Unexpected
            }));
        }
        if invalid {
            return Some(FailureKind::Invalid);
        }
        self.plan
            .deletions_held
            .as_ref()
            .map(|_| FailureKind::Incomplete)
    }

    /// The target counts as failed (not started is counted on its own). Like the engine's
    /// `TargetOutcome::failed`: an incomplete read (deletions held) or an invalid secret fails
    /// the target even though the rest was applied.
    pub fn failed(&self) -> bool {
        match self.status() {
            Status::Failed | Status::RolledBack | Status::PartiallyApplied | Status::Refused => {
                true
            }
            Status::NotStarted => false,
            Status::Applied | Status::Planned => {
                self.error.is_some()
                    || self.plan.deletions_held.is_some()
                    || self.plan.invalid().next().is_some()
            }
        }
    }

    /// The apply's report, or an empty one when nothing was applied.
    pub fn report(&self) -> ApplyReport {
        self.applied.clone().unwrap_or_default()
    }

    /// Names left changed by an apply that did not complete (empty after a success: there
    /// everything planned is applied, and the plan lists it).
    pub fn left_after_failure(&self) -> &[String] {
        match (&self.applied, self.status()) {
            (Some(r), Status::PartiallyApplied | Status::RolledBack | Status::Failed) => {
                &r.left_changed
            }
            _ => &[],
        }
    }

    /// The changes this run leaves in place, by kind: the plan's counts in a dry run; after an
    /// apply, what was applied and not rolled back (`unchanged` and `skipped` stay the plan's).
    pub fn in_effect(&self, dry_run: bool) -> Counts {
        let planned = self.plan.counts();
        if dry_run {
            return planned;
        }
        let mut c = Counts {
            unchanged: planned.unchanged,
            skipped: planned.skipped,
            ..Counts::default()
        };
        match self.status() {
            Status::Applied => {
                let r = self.report();
                c.added = r.created;
                c.modified = r.updated;
                c.deleted = r.deleted;
            }
            Status::PartiallyApplied | Status::RolledBack | Status::Failed => {
                for name in self.left_after_failure() {
                    match self.plan.changes.iter().find(|ch| &ch.name == name) {
                        Some(ch) if ch.kind == ChangeKind::Added => c.added += 1,
                        Some(ch) if ch.kind == ChangeKind::Deleted => c.deleted += 1,
                        Some(ch) if ch.kind == ChangeKind::Unchanged => {}
                        _ => c.modified += 1,
                    }
                }
            }
            Status::Refused | Status::NotStarted | Status::Planned => {}
        }
        c
    }
}

/// How a target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every planned change was written.
    Applied,
    /// The apply failed and the rollback undid everything it wrote.
    RolledBack,
    /// The apply failed and some of what it wrote is still there (`left_changed`).
    PartiallyApplied,
    /// Nothing was written: the plan or the apply failed first.
    Failed,
    /// The plan was refused (e.g. `max_deletes`); nothing was written.
    Refused,
    /// The run was cancelled before this target began.
    NotStarted,
    /// A dry run: the plan only.
    Planned,
}

impl Status {
    /// In the order totals list them.
    pub const ALL: [Status; 7] = [
        Status::Planned,
        Status::Applied,
        Status::RolledBack,
        Status::PartiallyApplied,
        Status::Failed,
        Status::Refused,
        Status::NotStarted,
    ];

    /// The JSON name (`rolled_back`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::RolledBack => "rolled_back",
            Status::PartiallyApplied => "partially_applied",
            Status::Failed => "failed",
            Status::Refused => "refused",
            Status::NotStarted => "not_started",
            Status::Planned => "planned",
        }
    }

    /// For people (`rolled back`).
    pub fn label(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::RolledBack => "rolled back",
            Status::PartiallyApplied => "partially applied",
            Status::Failed => "failed",
            Status::Refused => "refused",
            Status::NotStarted => "not started",
            Status::Planned => "planned",
        }
    }
}

/// What the applies of a run did, summed over targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedTotals {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub retagged: usize,
    pub rolled_back: usize,
    pub rollback_failures: usize,
    /// Secrets left changed by applies that did not complete.
    pub left_changed: usize,
    /// Targets per status.
    pub statuses: BTreeMap<Status, usize>,
}

impl AppliedTotals {
    /// `1 applied, 1 rolled back` (statuses with no target left out).
    pub fn statuses_line(&self) -> String {
        let parts: Vec<String> = Status::ALL
            .iter()
            .filter_map(|s| self.statuses.get(s).map(|n| format!("{n} {}", s.label())))
            .collect();
        parts.join(", ")
    }
}

/// Sums what the applies did.
pub fn applied_totals(diffs: &[TargetDiff]) -> AppliedTotals {
    let mut t = AppliedTotals::default();
    for d in diffs {
        *t.statuses.entry(d.status()).or_default() += 1;
        if let Some(r) = &d.applied {
            t.created += r.created;
            t.updated += r.updated;
            t.deleted += r.deleted;
            t.retagged += r.retagged;
            t.rolled_back += r.rolled_back;
            t.rollback_failures += r.rollback_failures.len();
        }
        t.left_changed += d.left_after_failure().len();
    }
    t
}

/// How to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub policy: MaskPolicy,
    /// ANSI colour (terminal and no `NO_COLOR`).
    pub color: bool,
    /// `--diff`: key-level detail (and values where shown).
    pub details: bool,
    pub dry_run: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            policy: MaskPolicy::default(),
            color: false,
            details: true,
            dry_run: true,
        }
    }
}

impl Format {
    /// Renders one target's plan as soon as it exists.
    pub fn target(
        &self,
        plan: &TargetPlan,
        opts: &RenderOptions,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Format::Text => text::target(plan, opts, out),
            Format::SideBySide => side_by_side::target(plan, opts, out),
            Format::Json => Ok(()),
            Format::Github => github::target(plan, opts, out),
            Format::Compact => compact::target(plan, opts, out),
        }
    }

    /// Renders how one target ended, as soon as it is done.
    pub fn result(
        &self,
        diff: &TargetDiff,
        opts: &RenderOptions,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Format::Text | Format::SideBySide => text::result(diff, opts, out),
            Format::Json => Ok(()),
            Format::Github => github::result(diff, opts, out),
            Format::Compact => compact::result(diff, opts, out),
        }
    }

    /// Renders what follows all targets.
    pub fn finish(
        &self,
        diffs: &[TargetDiff],
        opts: &RenderOptions,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Format::Text | Format::SideBySide => text::finish(diffs, opts, out),
            Format::Json => json::finish(diffs, opts, out),
            Format::Github => github::finish(diffs, opts, out),
            Format::Compact => compact::finish(diffs, opts, out),
        }
    }
}

/// Plan totals over targets.
pub fn totals(diffs: &[TargetDiff]) -> Counts {
    let mut c = Counts::default();
    for d in diffs {
        c.add(&d.plan.counts());
    }
    c
}

/// One line of text: newlines in error messages become spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The changes worth listing (everything but plain unchanged).
pub fn listed(plan: &TargetPlan) -> impl Iterator<Item = &crate::diff::SecretChange> {
    plan.changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Unchanged || c.retag || !c.settings.is_empty())
}

/// Short form of a version id for display (`v` + 8 characters).
pub fn short_version(v: &Option<String>) -> String {
    match v {
        Some(v) if v.len() > 8 => format!("v{}", &v[..8]),
        Some(v) => format!("v{v}"),
        None => "none".into(),
    }
}

pub(crate) fn sign(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "+",
        ChangeKind::Modified => "~",
        ChangeKind::Deleted => "-",
        ChangeKind::Unchanged => "=",
        ChangeKind::Skipped => "!",
    }
}

pub(crate) fn paint(s: &str, k: ChangeKind, color: bool) -> String {
    if !color {
        return s.to_string();
    }
    let code = match k {
        ChangeKind::Added => "32",
        ChangeKind::Modified => "33",
        ChangeKind::Deleted => "31",
        ChangeKind::Unchanged => "2",
        ChangeKind::Skipped => "35",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::diff::{
        Listed, MANAGED_VALUE, PlanOptions, TAG_FINGERPRINT, TAG_MANAGED, TAG_OWNER, TAG_TARGET,
        TAG_VERSION, plan,
    };
    use crate::fingerprint::FingerprintKey;
    use crate::merge::secret;
    use crate::secret::Bundle;

    /// Sentinel values that must never appear in masked output.
    pub const SENTINELS: &[&str] = &[
        "sentinel-old-pw",
        "sentinel-new-pw",
        "sentinel-added",
        "sentinel-user",
    ];

    /// A plan of target `target` (prefix `<target>/`): an add (`app/new`), a modify with nested
    /// key changes (`app/db`), a delete (`app/old`, when `delete_orphans`), an unchanged
    /// (`shared/logging`) and, with `extras`, a skipped (unmanaged) and an invalid secret.
    pub fn sample_plan(
        target: &str,
        extras: bool,
        delete_orphans: bool,
        max_deletes: usize,
    ) -> TargetPlan {
        let prefix = format!("{target}/");
        let key = FingerprintKey::from_bytes([3; crate::fingerprint::KEY_LEN]);
        let managed = |name: &str, v: &crate::secret::SecretValue, ver: &str| Listed {
            name: name.into(),
            tags: crate::diff::Tags::new(crate::tags::TagMap::from(BTreeMap::from([
                (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
                (TAG_OWNER.to_string(), "team".to_string()),
                (TAG_TARGET.to_string(), target.to_string()),
                (TAG_FINGERPRINT.to_string(), key.fingerprint(v)),
                (TAG_VERSION.to_string(), ver.to_string()),
            ]))),
            current_version: Some(ver.into()),
            pending_deletion: false,
        };
        let old_db = secret(
            json!({"user": "sentinel-user", "password": "sentinel-old-pw", "pool": {"max": 5, "min": 1}, "legacy": true}),
        );
        let new_db = secret(
            json!({"user": "sentinel-user", "password": "sentinel-new-pw", "pool": {"max": 10, "min": 1}, "timeout": 30}),
        );
        let same = secret(json!({"level": "info"}));
        let mut desired = Bundle::from([
            ("app/db".to_string(), new_db),
            (
                "app/new".to_string(),
                secret(json!({"api_token": "sentinel-added", "url": "https://x"})),
            ),
            ("shared/logging".to_string(), same.clone()),
        ]);
        if extras {
            desired.insert("app/unmanaged".to_string(), same.clone());
            desired.insert("bad name".to_string(), same.clone());
        }
        let db = format!("{prefix}app/db");
        let mut listed = BTreeMap::new();
        listed.insert(
            db.clone(),
            managed(&db, &old_db, "11111111-aaaa-bbbb-cccc-000000000001"),
        );
        let logging = format!("{prefix}shared/logging");
        listed.insert(logging.clone(), managed(&logging, &same, "22222222-aaaa"));
        let old = format!("{prefix}app/old");
        listed.insert(old.clone(), managed(&old, &same, "33333333-aaaa"));
        let unmanaged = format!("{prefix}app/unmanaged");
        listed.insert(
            unmanaged.clone(),
            Listed {
                name: unmanaged,
                current_version: Some("44444444".into()),
                ..Default::default()
            },
        );
        let opts = PlanOptions {
            delete_orphans,
            max_deletes,
            ..PlanOptions::new(target, "team", &prefix)
        };
        let values = BTreeMap::from([(db, old_db)]);
        let mut p = plan(&opts, &key, &desired, &listed, &values);
        for c in &mut p.changes {
            if matches!(c.kind, ChangeKind::Added | ChangeKind::Modified) {
                c.new_version = Some(format!("99999999-new-{}", c.path.len()));
            }
        }
        p
    }

    fn empty_plan(target: &str) -> TargetPlan {
        TargetPlan {
            target: target.into(),
            changes: Vec::new(),
            orphans_kept: Vec::new(),
            refused: None,
            deletions_held: None,
            policy: Default::default(),
        }
    }

    /// A fixed two-target dry run: target `prod` with an add, a modify with nested key changes,
    /// a delete, an unchanged, a skipped (unmanaged) and an invalid secret; target `staging`
    /// whose plan failed.
    pub fn diffs() -> Vec<TargetDiff> {
        let mut empty = empty_plan("staging");
        empty.orphans_kept = vec!["staging/x".into()];
        vec![
            TargetDiff {
                error: Some("1 invalid secret not synced".into()),
                ..TargetDiff::new(sample_plan("prod", true, true, 10))
            },
            TargetDiff {
                error: Some("AccessDeniedException: not allowed".into()),
                error_kind: Some(FailureKind::Permission),
                ..TargetDiff::new(empty)
            },
        ]
    }

    /// Six targets after an apply, one per way a target can end: `ok` applied; `undo` failed
    /// and rolled back cleanly; `stuck` failed and could not roll back one write; `bulk` was
    /// refused (`max_deletes`); `held` applied with its deletions held (incomplete source);
    /// `later` was not started (the run was cancelled).
    pub fn outcomes() -> Vec<TargetDiff> {
        let stats = |d: TargetDiff| TargetDiff {
            aws_calls: 4,
            duration_ms: 1250,
            ..d
        };
        let ok = TargetDiff {
            applied: Some(ApplyReport {
                created: 1,
                updated: 1,
                deleted: 1,
                left_changed: vec!["ok/app/db".into(), "ok/app/new".into(), "ok/app/old".into()],
                ..Default::default()
            }),
            ..TargetDiff::new(sample_plan("ok", false, true, 10))
        };
        let undo = TargetDiff {
            error: Some("InvalidRequestException: injected failure".into()),
            applied: Some(ApplyReport {
                created: 1,
                updated: 1,
                failure: Some("InvalidRequestException: injected failure".into()),
                failure_kind: Some(FailureKind::Unexpected),
                rolled_back: 2,
                ..Default::default()
            }),
            ..TargetDiff::new(sample_plan("undo", false, true, 10))
        };
        let stuck = TargetDiff {
            error: Some("cancelled (Ctrl-C) before every change was applied".into()),
            applied: Some(ApplyReport {
                created: 1,
                updated: 1,
                failure: Some("cancelled (Ctrl-C) before every change was applied".into()),
                cancelled: true,
                rolled_back: 1,
                rollback_failures: vec![
                    "stuck/app/db: AccessDeniedException: not allowed to update the stage".into(),
                ],
                left_changed: vec!["stuck/app/db".into()],
                ..Default::default()
            }),
            ..TargetDiff::new(sample_plan("stuck", false, true, 10))
        };
        let bulk_plan = sample_plan("bulk", false, true, 0);
        let refusal = bulk_plan.refused.clone();
        assert!(refusal.is_some(), "the fixture must be refused");
        let bulk = TargetDiff {
            error: refusal.clone(),
            applied: Some(ApplyReport {
                failure: refusal,
                ..Default::default()
            }),
            ..TargetDiff::new(bulk_plan)
        };
        let mut held_plan = sample_plan("held", false, false, 10);
        held_plan.deletions_held = Some(
            "source `vault` was not read completely (skipped: app/broken: the answer is not JSON)"
                .into(),
        );
        let held = TargetDiff {
            applied: Some(ApplyReport {
                created: 1,
                updated: 1,
                left_changed: vec!["held/app/db".into(), "held/app/new".into()],
                ..Default::default()
            }),
            ..TargetDiff::new(held_plan)
        };
        let later = TargetDiff {
            not_started: true,
            ..TargetDiff::new(empty_plan("later"))
        };
        vec![
            stats(ok),
            stats(undo),
            stats(stuck),
            stats(bulk),
            stats(held),
            later,
        ]
    }

    /// The same targets in a dry run: plans only (the not-started one stays not started).
    pub fn planned_outcomes() -> Vec<TargetDiff> {
        outcomes()
            .into_iter()
            .map(|d| TargetDiff {
                applied: None,
                error: d.plan.refused.clone(),
                ..d
            })
            .collect()
    }

    /// Sentinels under sensitive keys inside lists of objects: they stay masked even under
    /// `--show-values`.
    pub const LIST_SENTINELS: &[&str] = &[
        "sentinel-list-old-pw",
        "sentinel-list-new-pw",
        "sentinel-list-deep-token",
        "sentinel-list-added-key",
    ];

    /// One target: a modified secret whose list of users changed (passwords inside), and an
    /// added secret with a list of API keys.
    pub fn list_diffs() -> Vec<TargetDiff> {
        let key = FingerprintKey::from_bytes([3; crate::fingerprint::KEY_LEN]);
        let old = secret(json!({
            "users": [{"name": "visible-alice", "password": "sentinel-list-old-pw"}],
            "level": 1
        }));
        let new = secret(json!({
            "users": [{"name": "visible-bob", "password": "sentinel-list-new-pw"}],
            "nested": [[{"auth": {"token": "sentinel-list-deep-token", "host": "visible-host"}}]],
            "level": 2
        }));
        let listed = BTreeMap::from([(
            "prod/app/users".to_string(),
            Listed {
                name: "prod/app/users".into(),
                tags: crate::diff::Tags::new(crate::tags::TagMap::from(BTreeMap::from([
                    (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
                    (TAG_OWNER.to_string(), "team".to_string()),
                    (TAG_TARGET.to_string(), "prod".to_string()),
                    (TAG_FINGERPRINT.to_string(), key.fingerprint(&old)),
                    (TAG_VERSION.to_string(), "v1".to_string()),
                ]))),
                current_version: Some("v1".into()),
                pending_deletion: false,
            },
        )]);
        let desired = Bundle::from([
            ("app/users".to_string(), new),
            (
                "app/keys".to_string(),
                secret(
                    json!({"clients": [{"id": "visible-id", "api_key": "sentinel-list-added-key"}]}),
                ),
            ),
        ]);
        let opts = PlanOptions {
            max_deletes: 10,
            ..PlanOptions::new("prod", "team", "prod/")
        };
        let values = BTreeMap::from([("prod/app/users".to_string(), old)]);
        vec![TargetDiff::new(plan(
            &opts, &key, &desired, &listed, &values,
        ))]
    }

    /// Renders like the binary does: each target's plan (when it has one) and result, then
    /// what follows all targets.
    pub fn render_diffs(diffs: &[TargetDiff], format: Format, opts: &RenderOptions) -> String {
        let mut out = Vec::new();
        for d in diffs {
            if !d.not_started {
                format.target(&d.plan, opts, &mut out).unwrap();
            }
            format.result(d, opts, &mut out).unwrap();
        }
        format.finish(diffs, opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    pub fn render(format: Format, opts: &RenderOptions) -> String {
        render_diffs(&diffs(), format, opts)
    }

    pub fn applied_opts() -> RenderOptions {
        RenderOptions {
            dry_run: false,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::fixtures::*;
    use super::*;
    use crate::mask::DEFAULT_PATTERNS;

    const FORMATS: [Format; 5] = [
        Format::Text,
        Format::SideBySide,
        Format::Json,
        Format::Github,
        Format::Compact,
    ];

    /// With history on, a change shows the history's numbers (and the current version's time)
    /// in text, side-by-side and GitHub, and as numbers and times in JSON.
    #[test]
    fn history_numbers_are_shown_in_every_format() {
        let mut plan = sample_plan("prod", false, true, 10);
        let latest = crate::history::Revision::next(
            None,
            "prod",
            &plan
                .changes
                .iter()
                .filter(|c| c.kind != ChangeKind::Added)
                .map(|c| crate::history::ToRecord {
                    path: c.path.clone(),
                    change: crate::history::Change::Create,
                })
                .collect::<Vec<_>>(),
            "2026-12-01T10:00:00Z",
            "r1",
            "alice",
        );
        crate::history::annotate(&mut plan, Some(&latest));
        let modified = plan
            .changes
            .iter()
            .find(|c| c.kind == ChangeKind::Modified)
            .expect("a modified secret")
            .name
            .clone();
        let added = plan
            .changes
            .iter()
            .find(|c| c.kind == ChangeKind::Added)
            .expect("an added secret")
            .name
            .clone();
        let diffs = vec![TargetDiff::new(plan)];
        let opts = RenderOptions::default();
        let text = render_diffs(&diffs, Format::Text, &opts);
        assert!(
            text.contains(&format!("~ {modified} (v1 (2026-12-01T10:00:00Z) → v2)")),
            "{text}"
        );
        assert!(text.contains(&format!("+ {added} (new v1)")), "{text}");
        let sbs = render_diffs(&diffs, Format::SideBySide, &opts);
        assert!(sbs.contains("(v1 (2026-12-01T10:00:00Z) → v2)"), "{sbs}");
        let gh = render_diffs(&diffs, Format::Github, &opts);
        assert!(gh.contains("(v1 (2026-12-01T10:00:00Z) → v2)"), "{gh}");
        let doc: Value = serde_json::from_str(&render_diffs(&diffs, Format::Json, &opts)).unwrap();
        let change = doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == modified.as_str())
            .unwrap();
        assert_eq!(change["old_version_number"], 1);
        assert_eq!(change["old_version_time"], "2026-12-01T10:00:00Z");
        assert_eq!(change["new_version_number"], 2);
        assert_eq!(change["new_version_time"], Value::Null);
    }

    #[test]
    fn masked_output_never_contains_sentinels() {
        let sets = [
            (diffs(), true),
            (outcomes(), false),
            (planned_outcomes(), true),
        ];
        for (set, dry_run) in &sets {
            for details in [false, true] {
                let opts = RenderOptions {
                    details,
                    dry_run: *dry_run,
                    ..Default::default()
                };
                let mut all: Vec<(String, String)> = FORMATS
                    .iter()
                    .map(|f| (format!("{f:?}"), render_diffs(set, *f, &opts)))
                    .collect();
                all.push(("step summary".into(), github::step_summary(set, &opts)));
                all.push((
                    "outputs".into(),
                    github::output_file_text(&github::outputs(set, &opts), "EOF"),
                ));
                for (what, out) in all {
                    for s in SENTINELS {
                        assert!(!out.contains(s), "{what} leaked {s}:\n{out}");
                    }
                }
            }
        }
    }

    #[test]
    fn status_says_how_each_target_ended() {
        let statuses: Vec<Status> = outcomes().iter().map(TargetDiff::status).collect();
        assert_eq!(
            statuses,
            [
                Status::Applied,
                Status::RolledBack,
                Status::PartiallyApplied,
                Status::Refused,
                Status::Applied,
                Status::NotStarted
            ]
        );
        let planned: Vec<Status> = planned_outcomes().iter().map(TargetDiff::status).collect();
        assert_eq!(
            planned,
            [
                Status::Planned,
                Status::Planned,
                Status::Planned,
                Status::Refused,
                Status::Planned,
                Status::NotStarted
            ]
        );
        // A failure before anything was written is a failure, not a rollback.
        let failed = TargetDiff {
            applied: Some(ApplyReport {
                failure: Some("AccessDeniedException: no".into()),
                ..Default::default()
            }),
            ..TargetDiff::new(sample_plan("f", false, true, 10))
        };
        assert_eq!(failed.status(), Status::Failed);
        // A plan that could not be made.
        let no_plan = TargetDiff {
            error: Some("ListSecrets failed".into()),
            ..outcomes().pop().unwrap()
        };
        assert_eq!(
            TargetDiff {
                not_started: false,
                ..no_plan
            }
            .status(),
            Status::Failed
        );
    }

    /// The streamed document is byte for byte the pretty print of its value: its keys come
    /// in serde_json's order at every level (a key written out of order would differ).
    #[test]
    fn streamed_json_document_equals_the_printed_value() {
        for (diffs, opts) in [
            (outcomes(), applied_opts()),
            (planned_outcomes(), RenderOptions::default()),
        ] {
            let mut streamed = Vec::new();
            json::write(
                &json::Document {
                    diffs: &diffs,
                    opts: &opts,
                    calls: Some((7, 3)),
                    provenance: None,
                },
                &mut streamed,
            )
            .unwrap();
            let value: serde_json::Value = serde_json::from_slice(&streamed).unwrap();
            assert_eq!(
                (value["aws_calls"].clone(), value["vault_requests"].clone()),
                (7.into(), 3.into())
            );
            assert!(value["changes"].as_array().is_some_and(|c| !c.is_empty()));
            let printed = serde_json::to_string_pretty(&value).unwrap() + "\n";
            assert_eq!(String::from_utf8(streamed).unwrap(), printed);
        }
    }

    /// `--provenance` adds a `provenance` map to added and modified changes only, and
    /// nothing at all without it.
    #[test]
    fn json_provenance_only_on_written_values_and_only_when_asked() {
        use crate::explain::{Provenance, TargetProvenance};
        let diffs = planned_outcomes();
        let mut p = Provenance::default();
        for d in &diffs {
            let t =
                p.0.entry(d.plan.target.clone())
                    .or_insert_with(|| TargetProvenance {
                        labels: vec!["source:base".into(), "target:t".into()],
                        ..TargetProvenance::default()
                    });
            for c in &d.plan.changes {
                t.secrets
                    .insert(c.path.clone(), vec![("k".into(), 0), ("env".into(), 1)]);
            }
        }
        let opts = RenderOptions::default();
        let with = serde_json::to_value(json::Document {
            diffs: &diffs,
            opts: &opts,
            calls: None,
            provenance: Some(&p),
        })
        .unwrap();
        let mut written = 0;
        for c in with["changes"].as_array().unwrap() {
            match c["type"].as_str().unwrap() {
                "added" | "modified" => {
                    written += 1;
                    assert_eq!(
                        c["provenance"],
                        serde_json::json!({"k": "source:base", "env": "target:t"})
                    );
                }
                _ => assert!(c.get("provenance").is_none(), "{c}"),
            }
        }
        assert!(written > 0);
        let without = json::document(&diffs, &opts);
        assert!(
            without["changes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c.get("provenance").is_none())
        );
    }

    #[test]
    fn json_reports_what_was_applied_and_rolled_back() {
        let doc = json::document(&outcomes(), &applied_opts());
        let t = |i: usize| doc["targets"][i].clone();
        let r = |i: usize| t(i)["result"].clone();
        // The plan of `undo` still says what was planned; its result says what happened.
        assert_eq!(t(1)["summary"]["added"], 1);
        assert_eq!(r(1)["status"], "rolled_back");
        assert_eq!(r(1)["applied"], false);
        assert_eq!(
            (r(1)["created"].clone(), r(1)["updated"].clone()),
            (1.into(), 1.into())
        );
        assert_eq!(r(1)["rolled_back"], 2);
        assert_eq!(r(1)["left_changed"], serde_json::json!([]));
        assert_eq!(r(1)["failure"], "InvalidRequestException: injected failure");
        assert_eq!(r(2)["status"], "partially_applied");
        assert_eq!(r(2)["left_changed"], serde_json::json!(["stuck/app/db"]));
        assert_eq!(r(2)["rollback_failures"].as_array().unwrap().len(), 1);
        assert_eq!(r(2)["cancelled"], true);
        // Refused: the plan had a deletion; none was applied.
        assert_eq!(t(3)["summary"]["deleted"], 1);
        assert_eq!(r(3)["status"], "refused");
        assert_eq!(r(3)["deleted"], 0);
        assert!(r(3)["failure"].as_str().unwrap().contains("max_deletes"));
        assert!(
            t(4)["deletions_held"]
                .as_str()
                .unwrap()
                .contains("not read completely")
        );
        assert_eq!(r(4)["status"], "applied");
        assert_eq!(r(4)["applied"], true);
        assert_eq!(t(5)["not_started"], true);
        assert_eq!(r(5)["status"], "not_started");
        assert_eq!(r(5)["created"], 0);
        assert_eq!(
            doc["applied"],
            serde_json::json!({"created": 4, "updated": 4, "deleted": 1, "retagged": 0, "rolled_back": 3, "rollback_failures": 1, "left_changed": 1})
        );
        assert_eq!(doc["statuses"]["applied"], 2);

        // A dry run: counts are the plan's, results say `planned` and carry no counts.
        let doc = json::document(&planned_outcomes(), &RenderOptions::default());
        assert_eq!(doc["applied"], Value::Null);
        assert_eq!(doc["targets"][0]["result"]["status"], "planned");
        assert_eq!(doc["targets"][0]["result"]["created"], Value::Null);
        assert_eq!(doc["targets"][3]["result"]["status"], "refused");
    }

    #[test]
    fn every_format_reports_results_not_plans() {
        let opts = applied_opts();
        let text = render_diffs(&outcomes(), Format::Text, &opts);
        for line in [
            "Result for ok: created 1, updated 1, deleted 1, retagged 0, unchanged 1, skipped 0",
            "Result for undo: ROLLED BACK after a failure: created 1, updated 1, deleted 0, retagged 0, then rolled back 2; nothing left changed",
            "  failure (unexpected): InvalidRequestException: injected failure",
            "  NOT rolled back (left as written): stuck/app/db: AccessDeniedException",
            "  left changed: stuck/app/db",
            "Result for bulk: REFUSED, nothing written (created 0, updated 0, deleted 0, retagged 0)",
            "  deletions held: source `vault` was not read completely",
            "Result for later: NOT STARTED",
            "Applied total: created 4, updated 4, deleted 1, retagged 0; rolled back 3, 1 could not be; 1 secret(s) left changed by failed applies; targets: 2 applied, 1 rolled back, 1 partially applied, 1 refused, 1 not started",
        ] {
            assert!(text.contains(line), "text lacks {line:?}:\n{text}");
        }
        let sbs = render_diffs(&outcomes(), Format::SideBySide, &opts);
        assert!(
            sbs.contains("  deletions held: ")
                && sbs.contains("  refused: ")
                && sbs.contains("Result for undo: ROLLED BACK"),
            "{sbs}"
        );
        let compact = render_diffs(&outcomes(), Format::Compact, &opts);
        for line in [
            "undo: ROLLED_BACK: +1 ~1 -0 UNDONE:2 (unexpected: InvalidRequestException: injected failure)",
            "stuck: PARTIALLY_APPLIED: +1 ~1 -0 UNDONE:1 NOT_UNDONE:1 LEFT:stuck/app/db (",
            "bulk: REFUSED: +0 ~0 -0 (",
            "held: DELETIONS_HELD: source `vault`",
            "later: NOT_STARTED: +0 ~0 -0",
            "TOTAL: CHANGES: +5 ~5 -4 =5 APPLIED: +4 ~4 -1 UNDONE:3 NOT_UNDONE:1 LEFT:1 FAILED:4 NOT_STARTED:1",
        ] {
            assert!(
                compact.lines().any(|l| l.starts_with(line)),
                "compact lacks {line:?}:\n{compact}"
            );
        }
        let gh = render_diffs(&outcomes(), Format::Github, &opts);
        for line in [
            "::error title=target rolled back::undo: InvalidRequestException: injected failure; created 1, updated 1, deleted 0, retagged 0 were written and 2 rolled back; nothing left changed",
            "; left changed: stuck/app/db",
            "::warning title=deletions held::held: deletions held: source `vault`",
            "::warning title=target not started::later:",
        ] {
            assert!(gh.contains(line), "github lacks {line:?}:\n{gh}");
        }
        let outputs: BTreeMap<String, String> =
            github::outputs(&outcomes(), &opts).into_iter().collect();
        // In effect: ok 3, stuck 1 (the update not rolled back), held 2; planned: 3 + 3 + 3 + 3 + 2.
        assert_eq!(outputs["changes"], "6");
        assert_eq!(outputs["deleted"], "1");
        assert_eq!(outputs["planned_changes"], "14");
        assert_eq!(outputs["rolled_back"], "3");
        assert_eq!(outputs["left_changed"], r#"["stuck/app/db"]"#);
        // `held` applied, but its read was incomplete: it counts as failed.
        assert_eq!(
            outputs["failed_targets"],
            r#"["undo","stuck","bulk","held"]"#
        );
        assert_eq!(outputs["not_started_targets"], r#"["later"]"#);
        let summary = github::step_summary(&outcomes(), &opts);
        assert!(
            summary.contains("| bulk | refused | 0 | 0 | 0 | 0 | 0 | +1 ~1 -1 =1 !0 |"),
            "{summary}"
        );
        assert!(
            summary.contains("| undo | rolled back | 1 | 1 | 0 | 0 | 2 |"),
            "{summary}"
        );
    }

    #[test]
    fn dry_runs_are_labelled_as_plans() {
        let opts = RenderOptions::default();
        let text = render_diffs(&planned_outcomes(), Format::Text, &opts);
        assert!(
            text.contains("Dry run for ok: planned only, nothing written"),
            "{text}"
        );
        assert!(
            text.contains("Planned total (dry run: nothing written): "),
            "{text}"
        );
        assert!(!text.contains("Applied total"), "{text}");
        let compact = render_diffs(&planned_outcomes(), Format::Compact, &opts);
        assert!(
            compact
                .lines()
                .last()
                .unwrap()
                .ends_with(" DRY_RUN FAILED:2 NOT_STARTED:1"),
            "{compact}"
        );
        let outputs: BTreeMap<String, String> = github::outputs(&planned_outcomes(), &opts)
            .into_iter()
            .collect();
        assert_eq!(outputs["changes"], outputs["planned_changes"]);
        assert!(
            github::step_summary(&planned_outcomes(), &opts)
                .contains("| ok | 1 | 1 | 1 | 1 | 0 | planned |")
        );
    }

    #[test]
    fn show_values_reveals_only_non_sensitive_keys() {
        let opts = RenderOptions {
            policy: MaskPolicy::new(
                true,
                DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
            ),
            ..Default::default()
        };
        for f in [Format::Text, Format::SideBySide, Format::Json] {
            let out = render(f, &opts);
            // Text formats show changed keys only; JSON shows whole values.
            let visible = if f == Format::Json {
                "sentinel-user"
            } else {
                "https://x"
            };
            assert!(out.contains(visible), "{f:?} should show {visible}:\n{out}");
            for s in ["sentinel-old-pw", "sentinel-new-pw", "sentinel-added"] {
                assert!(!out.contains(s), "{f:?} leaked sensitive {s}:\n{out}");
            }
        }
        let all = RenderOptions {
            policy: MaskPolicy::new(true, vec![]),
            ..Default::default()
        };
        assert!(render(Format::Json, &all).contains("sentinel-new-pw"));
    }

    /// `--show-values` reveals non-sensitive values, but a sensitive key inside a list of
    /// objects stays masked in every format, with and without `--diff`.
    #[test]
    fn sensitive_keys_inside_lists_stay_masked_in_every_format() {
        let diffs = list_diffs();
        let policy = MaskPolicy::new(
            true,
            DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
        );
        for details in [false, true] {
            for f in FORMATS {
                let opts = RenderOptions {
                    policy: policy.clone(),
                    details,
                    ..Default::default()
                };
                let out = render_diffs(&diffs, f, &opts);
                for s in LIST_SENTINELS {
                    assert!(
                        !out.contains(s),
                        "{f:?} (details {details}) leaked {s}:\n{out}"
                    );
                }
                // Where values are shown at all, the non-sensitive ones are.
                let shows_values = f == Format::Json
                    || (details && matches!(f, Format::Text))
                    || f == Format::SideBySide;
                if shows_values {
                    assert!(
                        out.contains("visible-bob"),
                        "{f:?} should show values:\n{out}"
                    );
                }
                if f == Format::Json {
                    assert!(
                        out.contains("visible-host") && out.contains("visible-id"),
                        "{out}"
                    );
                }
            }
        }
        // Without pattern masking everything is shown: the sentinels are really there.
        let all = RenderOptions {
            policy: MaskPolicy::new(true, vec![]),
            ..Default::default()
        };
        let out = render_diffs(&diffs, Format::Json, &all);
        for s in LIST_SENTINELS {
            assert!(out.contains(s), "{s} missing from unmasked output:\n{out}");
        }
    }

    #[test]
    fn snapshots() {
        let opts = RenderOptions::default();
        insta::assert_snapshot!("text", render(Format::Text, &opts));
        insta::assert_snapshot!(
            "text_no_details",
            render(
                Format::Text,
                &RenderOptions {
                    details: false,
                    ..Default::default()
                }
            )
        );
        insta::assert_snapshot!("side_by_side", render(Format::SideBySide, &opts));
        insta::assert_snapshot!("json", render(Format::Json, &opts));
        insta::assert_snapshot!("github", render(Format::Github, &opts));
        insta::assert_snapshot!("compact", render(Format::Compact, &opts));
        insta::assert_snapshot!("github_step_summary", github::step_summary(&diffs(), &opts));
        let outputs: Vec<String> = github::outputs(&diffs(), &opts)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        insta::assert_snapshot!("github_outputs", outputs.join("\n"));
    }

    /// Every format after an apply where targets ended each way, and the same run as a dry run.
    #[test]
    fn result_snapshots() {
        for (name, set, opts) in [
            ("applied", outcomes(), applied_opts()),
            ("planned", planned_outcomes(), RenderOptions::default()),
        ] {
            for (f, fname) in
                FORMATS
                    .iter()
                    .zip(["text", "side_by_side", "json", "github", "compact"])
            {
                insta::assert_snapshot!(format!("{name}_{fname}"), render_diffs(&set, *f, &opts));
            }
            insta::assert_snapshot!(
                format!("{name}_github_step_summary"),
                github::step_summary(&set, &opts)
            );
            let outputs: Vec<String> = github::outputs(&set, &opts)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            insta::assert_snapshot!(format!("{name}_github_outputs"), outputs.join("\n"));
        }
    }

    #[test]
    fn dry_run_plans_show_no_invented_version_ids() {
        let mut diffs = diffs();
        for c in &mut std::sync::Arc::make_mut(&mut diffs[0].plan).changes {
            c.new_version = None;
        }
        let mut out = Vec::new();
        Format::Text
            .target(&diffs[0].plan, &RenderOptions::default(), &mut out)
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("~ prod/app/db (v11111111 → new version)"),
            "{out}"
        );
        assert!(out.contains("+ prod/app/new (new)"), "{out}");
        assert!(!out.contains("none"), "{out}");
    }

    #[test]
    fn colour_only_when_asked() {
        let plain = render(Format::Text, &RenderOptions::default());
        assert!(!plain.contains('\x1b'));
        let coloured = render(
            Format::Text,
            &RenderOptions {
                color: true,
                ..Default::default()
            },
        );
        assert!(coloured.contains("\x1b[32m+"));
    }

    /// A secret whose value is unchanged but whose settings change is listed with them in
    /// every format; a warning of the apply is shown in text and JSON.
    #[test]
    fn setting_changes_and_warnings_are_shown() {
        let mut plan = sample_plan("prod", false, false, 10);
        let c = plan
            .changes
            .iter_mut()
            .find(|c| c.path == "shared/logging")
            .unwrap();
        assert!(c.kind == ChangeKind::Unchanged && !c.retag);
        c.settings = vec![
            crate::diff::SettingChange {
                setting: "description".into(),
                old: Some("old text".into()),
                new: Some("synced".into()),
                note: None,
            },
            crate::diff::SettingChange {
                setting: "replica:eu-west-1".into(),
                old: Some("Failed".into()),
                new: Some("retry".into()),
                note: Some("failed: name exists".into()),
            },
        ];
        assert!(plan.has_changes());
        let d = TargetDiff {
            applied: Some(ApplyReport {
                retagged: 1,
                warnings: vec![
                    "prod/shared/logging: replica in eu-west-1 failed: name exists".into(),
                ],
                ..Default::default()
            }),
            ..TargetDiff::new(plan)
        };
        let text = render_diffs(std::slice::from_ref(&d), Format::Text, &applied_opts());
        assert!(
            text.contains(
                r#"= prod/shared/logging (settings: description: "old text" → "synced", replica:eu-west-1: "Failed" → "retry" (failed: name exists))"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  warning: prod/shared/logging: replica in eu-west-1 failed: name exists"
            ),
            "{text}"
        );
        let json: Value = serde_json::from_str(&render_diffs(
            std::slice::from_ref(&d),
            Format::Json,
            &applied_opts(),
        ))
        .unwrap();
        let change = json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == "shared/logging")
            .expect("listed");
        assert_eq!(change["settings"][1]["setting"], "replica:eu-west-1");
        assert_eq!(change["settings"][1]["note"], "failed: name exists");
        assert_eq!(
            json["targets"][0]["result"]["warnings"][0],
            "prod/shared/logging: replica in eu-west-1 failed: name exists"
        );
        let gh = render_diffs(std::slice::from_ref(&d), Format::Github, &applied_opts());
        assert!(gh.contains("needs its settings brought in line"), "{gh}");
    }

    /// A change of KMS key is named a re-encryption in every format.
    #[test]
    fn reencryptions_are_named_in_every_format() {
        let mut plan = sample_plan("prod", false, false, 10);
        let c = plan
            .changes
            .iter_mut()
            .find(|c| c.path == "shared/logging")
            .unwrap();
        assert!(c.kind == ChangeKind::Unchanged && !c.reencrypts());
        c.settings = vec![crate::targets::aws_ssm::reencrypt_change(
            "alias/new",
            &[("/p/shared/logging", Some("alias/old"))],
            1,
        )];
        let d = TargetDiff::new(plan);
        let opts = RenderOptions::default();
        let text = render_diffs(std::slice::from_ref(&d), Format::Text, &opts);
        assert!(
            text.contains(
                r#"= prod/shared/logging (settings: kms_key_id: "alias/old" → "alias/new" (re-encrypt: the same value written again under the new key (a new parameter version)))"#
            ),
            "{text}"
        );
        let compact = render_diffs(std::slice::from_ref(&d), Format::Compact, &opts);
        assert!(compact.contains(" REENCRYPT:1\n"), "{compact}");
        let gh = render_diffs(std::slice::from_ref(&d), Format::Github, &opts);
        assert!(
            gh.contains("prod/shared/logging will be re-encrypted under the new KMS key"),
            "{gh}"
        );
        let json: Value =
            serde_json::from_str(&render_diffs(std::slice::from_ref(&d), Format::Json, &opts))
                .unwrap();
        let change = json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == "shared/logging")
            .expect("listed");
        assert_eq!(change["settings"][0]["setting"], "kms_key_id");
        assert!(
            change["settings"][0]["note"]
                .as_str()
                .unwrap()
                .starts_with("re-encrypt:")
        );
    }
}
