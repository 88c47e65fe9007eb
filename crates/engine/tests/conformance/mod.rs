//! The conformance suite every target kind passes against its real server: one script over
//! `Arc<dyn Target>`, and a small [`Inspector`] per kind that looks at the server directly (not
//! through the target under test). A kind's test file builds a [`Fixture`] and calls the
//! suite's steps (see `aws_sm` in `target_conformance.rs`).
//!
//! Every step is a public `async fn(&Fixture)` that works below its own sub-prefix
//! (`<fixture prefix><step>/`), so steps are independent of each other and can run as separate
//! tests or all at once through [`run_all`]:
//!
//! * [`create_and_read_back`]: new secrets are created with their values and ownership marks;
//!   a second plan sees them unchanged.
//! * [`update`]: only the changed secret gets a new version, with the key-level change shown.
//! * [`unchanged_gets_no_write`]: an unchanged plan applies with zero API calls and no new
//!   versions, also from a freshly built target (the marks alone prove it).
//! * [`orphans`]: kept by default, deleted with `delete_orphans`, written again when desired
//!   again.
//! * [`unmanaged_never_touched`]: a secret without marks is skipped, never an orphan.
//! * [`adopt`]: with `adopt: true` an unmanaged secret is taken over and marked.
//! * [`ownership_scope`]: a second owner's target of the same name never sees the first's
//!   secrets as orphans and fails on a desired name it does not own.
//! * [`names_and_sizes_rejected`]: invalid names and oversized values are refused in the plan
//!   and cost no call at apply.
//! * [`cancellation`]: a cancelled apply writes nothing and says so.
//! * [`rollback_after_failure`]: a write that fails mid-apply (through a fault proxy:
//!   [`failing_aws`], [`failing_vault`]) rolls the target back to where it started.
//!
//! The suite needs the test crate's `common` module (`mod common;` beside `mod conformance;`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{
    ChangeKind, MANAGED_VALUE, TAG_MANAGED, TAG_OWNER, TAG_TARGET, TargetPlan,
};
use secretsync_core::secret::Collected;
use secretsync_engine::cancel::Cancel;
use secretsync_engine::targets::{ApplyReport, PlanContext, Target};
use secretsync_test_support::proxy::{Action, Proxy, Rule};
use serde_json::{Value, json};

use crate::common::{self, bundle, kinds};

/// Looks at a target's server directly.
#[async_trait]
pub trait Inspector: Send + Sync {
    /// The name the target gives a relative path under `prefix` (as its rules do).
    fn name(&self, prefix: &str, path: &str) -> String;
    /// The current stored value of that name, parsed as JSON; `None` when absent or deleted.
    async fn value(&self, name: &str) -> Option<Value>;
    /// Its ownership marks (AWS tags, KV v2 `custom_metadata`, SSM tags); `None` when absent.
    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>>;
    /// How many versions it has (unchanged secrets must not get new ones).
    async fn versions(&self, name: &str) -> usize;
    /// Writes a secret the tool does not manage (no marks).
    async fn create_unmanaged(&self, name: &str, value: &Value);
    /// Whether it is deleted (gone, pending deletion or soft-deleted: not readable as current).
    async fn is_deleted(&self, name: &str) -> bool;

    /// A relative path whose name this kind refuses (checked in the plan, before any write).
    /// Default: 4,096 `a`s, longer than AWS Secrets Manager or SSM allow; override it when the
    /// kind accepts that.
    fn rejected_path(&self) -> String {
        "a".repeat(4096)
    }
    /// A value size (bytes of canonical JSON) this kind refuses before writing. Default:
    /// 1 MiB + 1; override it with the kind's limit + 1.
    fn rejected_size(&self) -> usize {
        (1 << 20) + 1
    }
}

/// Builds the target under test: `(target name, owner scope, policy)`.
pub type MakeTarget =
    Arc<dyn Fn(&str, &str, TargetPolicy) -> BoxFuture<'static, Arc<dyn Target>> + Send + Sync>;

/// One kind's setup for the suite.
#[derive(Clone)]
pub struct Fixture {
    pub make: MakeTarget,
    pub inspector: Arc<dyn Inspector>,
    /// A prefix unique to this run of the suite (every name is below it).
    pub prefix: String,
    /// Builds the target under test talking to its server through a fault proxy ([`through`]
    /// with [`failing_aws`] or [`failing_vault`]) that fails every write of a secret whose name
    /// contains [`FAIL_MARKER`], and passes everything else through. Needed by
    /// [`rollback_after_failure`]; [`run_all`] runs that step only when this is set, so every
    /// kind should set it.
    pub failing: Option<MakeTarget>,
}

/// The owner scope of the suite's targets.
pub const OWNER: &str = "conformance";
/// Another deployment's owner scope ([`ownership_scope`]).
pub const OTHER_OWNER: &str = "second-deployment";
/// The suite's target name.
pub const TARGET: &str = "conf";
/// Writes of secrets whose name contains this fail behind [`failing_aws`] / [`failing_vault`].
pub const FAIL_MARKER: &str = "zz-fail";
/// The message of an injected failure.
pub const INJECTED: &str = "injected failure";

/// Every step, in order; the rollback step only when [`Fixture::failing`] is set.
pub async fn run_all(f: &Fixture) {
    create_and_read_back(f).await;
    update(f).await;
    unchanged_gets_no_write(f).await;
    orphans(f).await;
    unmanaged_never_touched(f).await;
    adopt(f).await;
    ownership_scope(f).await;
    names_and_sizes_rejected(f).await;
    cancellation(f).await;
    if f.failing.is_some() {
        rollback_after_failure(f).await;
    }
}

/// The suite's policy for a step's prefix: [`common::policy`] with orphans kept.
pub fn policy(prefix: &str) -> TargetPolicy {
    TargetPolicy {
        delete_orphans: false,
        ..common::policy(prefix)
    }
}

fn ctx() -> PlanContext {
    PlanContext::default()
}

impl Fixture {
    /// The step's own prefix.
    pub fn prefix_of(&self, step: &str) -> String {
        format!("{}{step}/", self.prefix)
    }

    /// The name of `path` below the step's prefix.
    pub fn name(&self, step: &str, path: &str) -> String {
        self.inspector.name(&self.prefix_of(step), path)
    }

    /// A target of the suite's name and owner for the step, built with `policy` changed by
    /// `edit`.
    pub async fn target(
        &self,
        step: &str,
        edit: impl FnOnce(&mut TargetPolicy),
    ) -> Arc<dyn Target> {
        self.target_as(TARGET, OWNER, step, edit).await
    }

    pub async fn target_as(
        &self,
        name: &str,
        owner: &str,
        step: &str,
        edit: impl FnOnce(&mut TargetPolicy),
    ) -> Arc<dyn Target> {
        let mut p = policy(&self.prefix_of(step));
        edit(&mut p);
        (self.make)(name, owner, p).await
    }
}

/// Plans and applies `desired`, insisting the apply succeeded; returns the plan and report.
pub async fn sync(t: &Arc<dyn Target>, desired: &Collected) -> (TargetPlan, ApplyReport) {
    let plan = t.plan(desired, &ctx()).await.expect("plan");
    assert!(plan.refused.is_none(), "refused: {:?}", plan.refused);
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "the apply failed: {r:?}");
    (plan, r)
}

/// The marks say: managed by SecretSync, this owner scope, this target.
async fn assert_ours(f: &Fixture, name: &str, owner: &str) {
    let marks = f
        .inspector
        .marks(name)
        .await
        .unwrap_or_else(|| panic!("`{name}` has no marks"));
    assert_eq!(
        (
            marks.get(TAG_MANAGED).map(String::as_str),
            marks.get(TAG_OWNER).map(String::as_str),
            marks.get(TAG_TARGET).map(String::as_str),
        ),
        (Some(MANAGED_VALUE), Some(owner), Some(TARGET)),
        "ownership marks of `{name}`: {marks:?}"
    );
}

/// Create, read the values back, and a second plan sees everything unchanged.
pub async fn create_and_read_back(f: &Fixture) {
    let step = "create";
    let t = f.target(step, |_| {}).await;
    let desired = bundle(&[
        ("a", json!({"k": 1})),
        ("dir/b", json!({"k": "two", "n": {"x": true, "l": [1, 2]}})),
    ]);
    let plan = t.plan(&desired, &ctx()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Added),
            ("dir/b".into(), ChangeKind::Added)
        ])
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.created, r.updated, r.failure.as_deref()), (2, 0, None));
    let (a, b) = (f.name(step, "a"), f.name(step, "dir/b"));
    let mut names = vec![a.clone(), b.clone()];
    names.sort();
    assert_eq!(r.left_changed, names);
    assert_eq!(f.inspector.value(&a).await, Some(json!({"k": 1})));
    assert_eq!(
        f.inspector.value(&b).await,
        Some(json!({"k": "two", "n": {"x": true, "l": [1, 2]}}))
    );
    assert_ours(f, &a, OWNER).await;
    assert_ours(f, &b, OWNER).await;
    assert_eq!(f.inspector.versions(&a).await, 1);

    let plan = t.plan(&desired, &ctx()).await.unwrap();
    assert!(
        !plan.has_changes() && plan.counts().unchanged == 2,
        "read back as unchanged: {:?}",
        kinds(&plan)
    );
}

/// An update writes a new version of the changed secret only.
pub async fn update(f: &Fixture) {
    let step = "update";
    let t = f.target(step, |_| {}).await;
    sync(
        &t,
        &bundle(&[
            ("a", json!({"k": 1})),
            ("b", json!({"k": 2, "gone": 0, "n": {"x": true}})),
        ]),
    )
    .await;
    let (a, b) = (f.name(step, "a"), f.name(step, "b"));
    let (a_versions, b_versions) = (
        f.inspector.versions(&a).await,
        f.inspector.versions(&b).await,
    );

    let desired = bundle(&[
        ("a", json!({"k": 1})),
        ("b", json!({"k": 3, "new": 1, "n": {"x": true}})),
    ]);
    let plan = t.plan(&desired, &ctx()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Unchanged),
            ("b".into(), ChangeKind::Modified)
        ])
    );
    let change = plan.changes.iter().find(|c| c.path == "b").unwrap();
    let keys: Vec<(&str, _)> = change
        .keys
        .iter()
        .map(|k| (k.key.as_str(), k.kind))
        .collect();
    use secretsync_core::diff::KeyChangeKind as K;
    assert_eq!(
        keys,
        [("gone", K::Removed), ("k", K::Changed), ("new", K::Added)]
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.updated, r.created, r.failure.as_deref()), (1, 0, None));
    assert_eq!(r.left_changed, std::slice::from_ref(&b));
    assert_eq!(
        f.inspector.value(&b).await,
        Some(json!({"k": 3, "new": 1, "n": {"x": true}}))
    );
    assert_eq!(
        f.inspector.versions(&a).await,
        a_versions,
        "a keeps its versions"
    );
    assert_eq!(
        f.inspector.versions(&b).await,
        b_versions + 1,
        "b gets exactly one new version"
    );
    assert_ours(f, &b, OWNER).await;
}

/// Unchanged secrets cost no write: zero calls at apply, no new versions, also from a target
/// built afresh (nothing remembered in memory).
pub async fn unchanged_gets_no_write(f: &Fixture) {
    let step = "unchanged";
    let desired = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]);
    let t = f.target(step, |_| {}).await;
    sync(&t, &desired).await;
    let (a, b) = (f.name(step, "a"), f.name(step, "b"));
    let versions = (
        f.inspector.versions(&a).await,
        f.inspector.versions(&b).await,
    );

    for t in [t, f.target(step, |_| {}).await] {
        let plan = t.plan(&desired, &ctx()).await.unwrap();
        assert!(!plan.has_changes(), "{:?}", kinds(&plan));
        let before = t.calls();
        let r = t.apply(&plan, &Cancel::default()).await;
        assert_eq!(
            t.calls(),
            before,
            "applying an unchanged plan makes no call"
        );
        assert_eq!(
            (
                r.created,
                r.updated,
                r.deleted,
                r.retagged,
                r.failure.as_deref()
            ),
            (0, 0, 0, 0, None)
        );
        assert!(r.left_changed.is_empty(), "{r:?}");
    }
    assert_eq!(
        (
            f.inspector.versions(&a).await,
            f.inspector.versions(&b).await
        ),
        versions
    );
}

/// Orphans are kept unless `delete_orphans` is set; a deleted secret desired again is written
/// again.
pub async fn orphans(f: &Fixture) {
    let step = "orphans";
    let t = f.target(step, |_| {}).await;
    sync(
        &t,
        &bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]),
    )
    .await;
    let (a, b) = (f.name(step, "a"), f.name(step, "b"));

    let only_a = bundle(&[("a", json!({"k": 1}))]);
    let (plan, r) = sync(&t, &only_a).await;
    assert!(
        plan.changes.iter().all(|c| c.kind != ChangeKind::Deleted),
        "{:?}",
        kinds(&plan)
    );
    assert_eq!(plan.orphans_kept, std::slice::from_ref(&b));
    assert_eq!(r.deleted, 0);
    assert_eq!(f.inspector.value(&b).await, Some(json!({"k": 2})));

    let deleting = f.target(step, |p| p.delete_orphans = true).await;
    let (plan, r) = sync(&deleting, &only_a).await;
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Unchanged),
            ("b".into(), ChangeKind::Deleted)
        ])
    );
    assert!(plan.orphans_kept.is_empty());
    assert_eq!((r.deleted, r.left_changed.clone()), (1, vec![b.clone()]));
    assert!(f.inspector.is_deleted(&b).await, "the orphan is deleted");
    assert_eq!(f.inspector.value(&b).await, None);
    assert_eq!(f.inspector.value(&a).await, Some(json!({"k": 1})));

    // Desired again: written again (restored, undeleted or created, as the kind does it).
    let (_, r) = sync(
        &deleting,
        &bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 5}))]),
    )
    .await;
    assert_eq!(r.created + r.updated, 1, "{r:?}");
    assert!(!f.inspector.is_deleted(&b).await);
    assert_eq!(f.inspector.value(&b).await, Some(json!({"k": 5})));
    assert_ours(f, &b, OWNER).await;
}

/// A secret without marks is never written, never an orphan.
pub async fn unmanaged_never_touched(f: &Fixture) {
    let step = "unmanaged";
    let u = f.name(step, "u");
    f.inspector
        .create_unmanaged(&u, &json!({"theirs": 1}))
        .await;
    let versions = f.inspector.versions(&u).await;
    let t = f.target(step, |p| p.delete_orphans = true).await;

    let (plan, r) = sync(
        &t,
        &bundle(&[("a", json!({"k": 1})), ("u", json!({"ours": 2}))]),
    )
    .await;
    let change = plan.changes.iter().find(|c| c.path == "u").unwrap();
    assert_eq!(
        change.kind,
        ChangeKind::Skipped,
        "`{u}` exists unmanaged ({:?}); the plan: {:?}",
        f.inspector.value(&u).await,
        kinds(&plan)
    );
    assert!(!change.invalid, "not a failure: a policy skip");
    assert!(
        change
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("adopt")),
        "the reason says how to take it over: {:?}",
        change.reason
    );
    assert_eq!(r.created, 1);

    // Not desired any more: still not an orphan.
    let (plan, r) = sync(&t, &bundle(&[("a", json!({"k": 1}))])).await;
    assert!(
        plan.changes.iter().all(|c| c.name != u),
        "{:?}",
        kinds(&plan)
    );
    assert!(plan.orphans_kept.is_empty());
    assert_eq!(r.deleted, 0);

    assert_eq!(f.inspector.value(&u).await, Some(json!({"theirs": 1})));
    assert_eq!(f.inspector.versions(&u).await, versions);
    let marks = f.inspector.marks(&u).await.unwrap_or_default();
    assert!(
        !marks.contains_key(TAG_MANAGED) && !marks.contains_key(TAG_OWNER),
        "{marks:?}"
    );
}

/// With `adopt: true` an unmanaged secret of a desired name is taken over.
pub async fn adopt(f: &Fixture) {
    let step = "adopt";
    let u = f.name(step, "u");
    f.inspector
        .create_unmanaged(&u, &json!({"theirs": 1}))
        .await;
    let t = f.target(step, |p| p.adopt = true).await;
    let desired = bundle(&[("u", json!({"ours": 2}))]);
    let plan = t.plan(&desired, &ctx()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "u").unwrap();
    assert!(
        change.adopt && change.kind == ChangeKind::Modified,
        "{change:?}"
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.updated, r.failure.as_deref()), (1, None));
    assert_eq!(f.inspector.value(&u).await, Some(json!({"ours": 2})));
    assert_ours(f, &u, OWNER).await;
    let plan = t.plan(&desired, &ctx()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

/// Another owner's target of the same name: the first's secrets are neither its orphans nor
/// writable by it.
pub async fn ownership_scope(f: &Fixture) {
    let step = "scope";
    let first = f.target(step, |p| p.delete_orphans = true).await;
    let desired = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]);
    sync(&first, &desired).await;
    let (a, b, c) = (f.name(step, "a"), f.name(step, "b"), f.name(step, "c"));
    let versions = (
        f.inspector.versions(&a).await,
        f.inspector.versions(&b).await,
    );

    let second = f
        .target_as(TARGET, OTHER_OWNER, step, |p| p.delete_orphans = true)
        .await;
    let plan = second
        .plan(
            &bundle(&[("a", json!({"k": "theirs"})), ("c", json!({"k": 3}))]),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Skipped),
            ("c".into(), ChangeKind::Added)
        ]),
        "b is not the second owner's orphan"
    );
    let skipped = plan.changes.iter().find(|c| c.path == "a").unwrap();
    assert!(
        skipped.invalid
            && skipped
                .reason
                .as_deref()
                .is_some_and(|r| r.contains(&format!("`{OWNER}`"))),
        "a desired name another owner holds is a failure naming that owner: {skipped:?}"
    );
    assert!(plan.orphans_kept.is_empty(), "{:?}", plan.orphans_kept);
    let r = second.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.created, r.deleted, r.updated), (1, 0, 0), "{r:?}");
    assert_eq!(r.left_changed, std::slice::from_ref(&c));
    assert_ours(f, &c, OTHER_OWNER).await;

    assert_eq!(f.inspector.value(&a).await, Some(json!({"k": 1})));
    assert_eq!(f.inspector.value(&b).await, Some(json!({"k": 2})));
    assert_eq!(
        (
            f.inspector.versions(&a).await,
            f.inspector.versions(&b).await
        ),
        versions
    );
    assert_ours(f, &a, OWNER).await;

    // Another target of the same deployment cannot write them either.
    let sibling = f.target_as("conf-sibling", OWNER, step, |_| {}).await;
    let plan = sibling
        .plan(&bundle(&[("b", json!({"k": "mine"}))]), &ctx())
        .await
        .unwrap();
    let skipped = &plan.changes[0];
    assert!(
        skipped.kind == ChangeKind::Skipped && skipped.invalid,
        "{skipped:?}"
    );
    let r = sibling.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.created, r.updated), (0, 0));
    assert_eq!(f.inspector.value(&b).await, Some(json!({"k": 2})));

    // And the first does not see the second's secret as its orphan either.
    let plan = first.plan(&desired, &ctx()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

/// Names and sizes the kind refuses are failures in the plan, and cost no call at apply.
pub async fn names_and_sizes_rejected(f: &Fixture) {
    let step = "invalid";
    let t = f.target(step, |_| {}).await;
    let bad_path = f.inspector.rejected_path();
    let size = f.inspector.rejected_size();
    // `{"v":"…"}` is 8 bytes around the string.
    let big = json!({"v": "x".repeat(size - 8)});
    assert_eq!(serde_json::to_string(&big).unwrap().len(), size);
    let plan = t
        .plan(
            &bundle(&[(bad_path.as_str(), json!({"k": 1})), ("big", big)]),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(plan.changes.len(), 2);
    for c in &plan.changes {
        assert!(
            c.kind == ChangeKind::Skipped && c.invalid && c.reason.is_some(),
            "refused before writing: {} {:?} {:?}",
            c.path.len(),
            c.kind,
            c.reason
        );
    }
    let before = t.calls();
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!(t.calls(), before, "nothing refused is sent");
    assert_eq!((r.created, r.updated), (0, 0));
    assert_eq!(f.inspector.value(&f.name(step, "big")).await, None);
}

/// A cancelled apply writes nothing and says so.
pub async fn cancellation(f: &Fixture) {
    let step = "cancel";
    let t = f.target(step, |_| {}).await;
    let plan = t
        .plan(
            &bundle(&[("a", json!({"v": 1})), ("b", json!({"v": 2}))]),
            &ctx(),
        )
        .await
        .unwrap();
    let cancel = Cancel::default();
    cancel.cancel("cancelled by a test");
    let before = t.calls();
    let r = t.apply(&plan, &cancel).await;
    assert_eq!(t.calls(), before, "a cancelled apply makes no call");
    assert_eq!((r.created, r.updated, r.deleted), (0, 0, 0));
    assert!(r.cancelled, "{r:?}");
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("cancelled")),
        "{r:?}"
    );
    assert!(r.left_changed.is_empty());
    for path in ["a", "b"] {
        let name = f.name(step, path);
        assert_eq!(f.inspector.value(&name).await, None, "{name}");
        assert_eq!(
            f.inspector.marks(&name).await,
            None,
            "{name}: nothing at all"
        );
    }
}

/// A write that fails mid-apply rolls the target back: the update and the creation made before
/// it are undone, and the target plans as unchanged from where it started.
pub async fn rollback_after_failure(f: &Fixture) {
    let step = "rollback";
    let failing = f
        .failing
        .clone()
        .expect("the fixture sets `failing` (a target behind a fault proxy)");
    let start = bundle(&[("a", json!({"v": "old"}))]);
    let t = f.target(step, |_| {}).await;
    sync(&t, &start).await;
    let (a, b, z) = (
        f.name(step, "a"),
        f.name(step, "b"),
        f.name(step, FAIL_MARKER),
    );

    let broken = failing(TARGET, OWNER, policy(&f.prefix_of(step))).await;
    let plan = broken
        .plan(
            &bundle(&[
                ("a", json!({"v": "new"})),
                ("b", json!({"v": 1})),
                (FAIL_MARKER, json!({"v": 2})),
            ]),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(plan.counts().changes(), 3);
    let r = broken.apply(&plan, &Cancel::default()).await;
    assert_injected_failure_rolled_back(&r);
    assert!(r.rolled_back > 0, "{r:?}");

    assert_eq!(f.inspector.value(&a).await, Some(json!({"v": "old"})));
    assert_eq!(
        f.inspector.value(&b).await,
        None,
        "b was created, then removed"
    );
    assert_eq!(f.inspector.value(&z).await, None);
    assert_ours(f, &a, OWNER).await;
    // The marks match the restored state: nothing to do from where it started.
    let plan = t.plan(&start, &ctx()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

/// The apply failed on the write of [`FAIL_MARKER`] with the [`INJECTED`] failure and rolled
/// back everything it wrote: no rollback failure, nothing left changed, not cancelled. (How
/// many writes were undone is for the caller to check.)
#[track_caller]
pub fn assert_injected_failure_rolled_back(r: &ApplyReport) {
    let failure = r.failure.as_deref().expect("the apply reports the failure");
    assert!(
        failure.contains(FAIL_MARKER) && failure.contains(INJECTED),
        "the failure names the secret and the cause: {failure}"
    );
    assert!(r.rollback_failures.is_empty(), "{:?}", r.rollback_failures);
    assert!(r.left_changed.is_empty(), "{r:?}");
    assert!(!r.cancelled, "{r:?}");
}

/// A fault proxy in front of moto (`upstream`, `http://host:port`) that answers 400
/// `InvalidRequestException` ([`INJECTED`]) to the AWS JSON-protocol calls `actions` (e.g.
/// `secretsmanager.CreateSecret`, `AmazonSSM.PutParameter`) whose body mentions `marker`, and
/// passes everything else through. It stops when dropped.
pub fn failing_aws(upstream: &str, actions: &[&str], marker: &str) -> Proxy {
    let proxy = Proxy::start(upstream);
    for action in actions {
        proxy.add(
            Rule::amz_target(action)
                .body_contains(marker)
                .then(Action::aws_error(400, "InvalidRequestException", INJECTED)),
        );
    }
    proxy
}

/// A fault proxy in front of Vault (`upstream`) that answers 400 `{"errors":["injected
/// failure"]}` to every `POST`, `PUT`, `PATCH` or `DELETE` whose path mentions `marker`, and
/// passes everything else through. It stops when dropped.
pub fn failing_vault(upstream: &str, marker: &str) -> Proxy {
    let proxy = Proxy::start(upstream);
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        proxy.add(
            Rule::method(method)
                .path_contains(marker)
                .then(Action::status(
                    400,
                    &format!(r#"{{"errors":["{INJECTED}"]}}"#),
                )),
        );
    }
    proxy
}

/// Targets built by `make` with the proxy's address (for [`Fixture::failing`]); the builder
/// keeps the proxy running for as long as it lives.
pub fn through(proxy: Proxy, make: impl FnOnce(String) -> MakeTarget) -> MakeTarget {
    let proxy = Arc::new(proxy);
    let inner = make(proxy.url());
    Arc::new(move |name: &str, owner: &str, policy: TargetPolicy| {
        let _running = &proxy;
        inner(name, owner, policy)
    })
}
