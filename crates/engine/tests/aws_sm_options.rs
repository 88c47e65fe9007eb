//! `aws_secretsmanager` settings beside the value, against moto: `kms_key_id`, extra `tags` and
//! `description` are applied on creation and kept in sync without new versions;
//! `replica_regions` replicate each secret to other regions, a removed region is removed, a
//! failed replica is reported and retried, and a run with nothing to do makes no replication
//! call (one `ListSecrets`, nothing else).

use std::collections::BTreeMap;

use secretsync_core::config::AwsSmSettings as Settings;
use secretsync_core::diff::{ChangeKind, SettingChange, TAG_OWNER, TargetPlan};
use secretsync_core::targets::aws_sm::{TAG_KMS_KEY, TAG_REPLICAS};
use secretsync_engine::aws::AwsContext;
use secretsync_engine::cancel::Cancel;
use secretsync_engine::targets::aws_sm::AwsSmTarget;
use secretsync_engine::targets::{ApplyReport, PlanContext, Target};
use serde_json::json;

mod common;
mod conformance;
use common::aws::{endpoint, sdk, sm};
use common::{bundle, policy};
use conformance::{FAIL_MARKER, failing_aws};

const PRIMARY: &str = "us-east-1";
const OWNER: &str = "options";

fn prefix(what: &str) -> String {
    format!("{}/", common::unique(&format!("{what}-")))
}

fn settings(edit: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = common::aws::sm_settings(PRIMARY);
    edit(&mut s);
    s
}

fn regions(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| s.to_string()).collect()
}

async fn target_at(endpoint: &str, prefix: &str, s: &Settings) -> AwsSmTarget {
    let ctx = AwsContext::from_sdk_config(sdk(endpoint, PRIMARY));
    AwsSmTarget::new("opts", OWNER, &policy(prefix), s, &ctx).await
}

async fn target(prefix: &str, s: &Settings) -> AwsSmTarget {
    target_at(&endpoint(), prefix, s).await
}

fn ctx() -> PlanContext {
    PlanContext::default()
}

async fn apply(t: &AwsSmTarget, plan: &TargetPlan) -> ApplyReport {
    let r = t.apply(plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
    r
}

/// The settings planned for `path`, as `(setting, old, new)`.
fn planned(plan: &TargetPlan, path: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let c = plan
        .changes
        .iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("no change for {path}: {plan:?}"));
    c.settings
        .iter()
        .map(|s: &SettingChange| (s.setting.clone(), s.old.clone(), s.new.clone()))
        .collect()
}

fn some(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// Plans `desired` again: nothing to do, at the cost of one `ListSecrets` call (once the
/// fingerprint key is read); applying it makes no call.
async fn assert_settled(t: &AwsSmTarget, desired: &secretsync_core::secret::Collected) {
    let plan = t.plan(desired, &ctx()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", plan.changes);
    let before = t.calls();
    let plan = t.plan(desired, &ctx()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", plan.changes);
    assert_eq!(
        t.calls() - before,
        1,
        "a settled target costs one ListSecrets call: no describe, no replication call"
    );
    let before = t.calls();
    let r = apply(t, &plan).await;
    assert_eq!(t.calls(), before);
    assert_eq!((r.created, r.updated, r.retagged), (0, 0, 0));
}

struct Described {
    tags: BTreeMap<String, String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    /// `(region, status)`, in the order AWS reports them.
    replicas: Vec<(String, String)>,
    versions: usize,
}

async fn describe(region: &str, name: &str) -> Option<Described> {
    let d = sm(region)
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .ok()?;
    Some(Described {
        tags: d
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        description: d.description().map(str::to_string),
        kms_key_id: d.kms_key_id().map(str::to_string),
        replicas: d
            .replication_status()
            .iter()
            .map(|r| {
                (
                    r.region().unwrap_or_default().to_string(),
                    r.status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        versions: d.version_ids_to_stages().map_or(0, |m| m.len()),
    })
}

/// The value a region serves for `name` (a replica in a replica region).
async fn value_in(region: &str, name: &str) -> Option<String> {
    sm(region)
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .ok()?
        .secret_string()
        .map(str::to_string)
}

#[tokio::test]
async fn kms_key_description_and_tags_are_applied_and_kept_in_sync() {
    let p = prefix("meta");
    let first = settings(|s| {
        s.kms_key_id = some("alias/first");
        s.description = some("synced from Vault");
        s.tags = BTreeMap::from([("team".into(), "platform".into())]);
    });
    let desired = bundle(&[("a", json!({"k": 1}))]);
    let t = target(&p, &first).await;
    let r = apply(&t, &t.plan(&desired, &ctx()).await.unwrap()).await;
    assert_eq!(r.created, 1);
    let name = format!("{p}a");
    let d = describe(PRIMARY, &name).await.unwrap();
    assert_eq!(d.kms_key_id.as_deref(), Some("alias/first"));
    assert_eq!(d.description.as_deref(), Some("synced from Vault"));
    assert_eq!(d.tags.get("team").map(String::as_str), Some("platform"));
    assert_eq!(
        d.tags.get(TAG_OWNER).map(String::as_str),
        Some(OWNER),
        "beside the marks"
    );
    assert_eq!(
        d.tags.get(TAG_KMS_KEY).map(String::as_str),
        Some("alias/first")
    );
    assert_settled(&t, &desired).await;

    // New settings for the same secret: brought in line without a new version.
    let second = settings(|s| {
        s.kms_key_id = some("alias/second");
        s.description = some("owned by platform");
        s.tags = BTreeMap::from([
            ("team".into(), "payments".into()),
            ("env".into(), "prod".into()),
        ]);
    });
    let t = target(&p, &second).await;
    let plan = t.plan(&desired, &ctx()).await.unwrap();
    assert_eq!(plan.changes[0].kind, ChangeKind::Unchanged);
    assert_eq!(
        planned(&plan, "a"),
        [
            (
                "description".into(),
                some("synced from Vault"),
                some("owned by platform")
            ),
            (
                "kms_key_id".into(),
                some("alias/first"),
                some("alias/second")
            ),
            ("tag:env".into(), None, some("prod")),
            ("tag:team".into(), some("platform"), some("payments")),
        ]
    );
    let r = apply(&t, &plan).await;
    assert_eq!((r.retagged, r.updated, r.created), (1, 0, 0));
    assert_eq!(r.left_changed, std::slice::from_ref(&name));
    let d = describe(PRIMARY, &name).await.unwrap();
    assert_eq!(d.versions, 1, "no new version for settings");
    assert_eq!(
        (d.kms_key_id.as_deref(), d.description.as_deref()),
        (Some("alias/second"), Some("owned by platform"))
    );
    assert_eq!(d.tags.get("team").map(String::as_str), Some("payments"));
    assert_eq!(d.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(
        d.tags.get(TAG_KMS_KEY).map(String::as_str),
        Some("alias/second")
    );
    assert_settled(&t, &desired).await;

    // A tag changed by hand is put back; a value change and a setting change go together.
    sm(PRIMARY)
        .tag_resource()
        .secret_id(&name)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("someone")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let changed = bundle(&[("a", json!({"k": 2}))]);
    let plan = t.plan(&changed, &ctx()).await.unwrap();
    assert_eq!(plan.changes[0].kind, ChangeKind::Modified);
    assert_eq!(
        planned(&plan, "a"),
        [("tag:team".into(), some("someone"), some("payments"))]
    );
    let r = apply(&t, &plan).await;
    assert_eq!((r.updated, r.retagged), (1, 0));
    let d = describe(PRIMARY, &name).await.unwrap();
    assert_eq!(d.tags.get("team").map(String::as_str), Some("payments"));
    assert_eq!(d.versions, 2, "one new version for the new value");
    assert_settled(&t, &changed).await;
}

#[tokio::test]
async fn a_failed_settings_write_rolls_the_settings_back() {
    let ep = endpoint();
    let p = prefix("metarb");
    let before = settings(|s| {
        s.description = some("before");
        s.tags = BTreeMap::from([("team".into(), "platform".into())]);
    });
    let desired = bundle(&[("a", json!({"k": 1}))]);
    let t = target(&p, &before).await;
    apply(&t, &t.plan(&desired, &ctx()).await.unwrap()).await;

    // The settings of `a` change; then the creation of `zz-fail` fails.
    let after = settings(|s| {
        s.description = some("after");
        s.tags = BTreeMap::from([("team".into(), "payments".into())]);
    });
    let proxy = failing_aws(&ep, &["secretsmanager.CreateSecret"], FAIL_MARKER);
    let t = target_at(&proxy.url(), &p, &after).await;
    let plan = t
        .plan(
            &bundle(&[("a", json!({"k": 1})), (FAIL_MARKER, json!({"k": 2}))]),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(planned(&plan, "a").len(), 2);
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_some(), "{r:?}");
    assert_eq!(r.rolled_back, 1, "{r:?}");
    assert!(
        r.rollback_failures.is_empty() && r.left_changed.is_empty(),
        "{r:?}"
    );
    let d = describe(PRIMARY, &format!("{p}a")).await.unwrap();
    assert_eq!(d.description.as_deref(), Some("before"));
    assert_eq!(d.tags.get("team").map(String::as_str), Some("platform"));
    let t = target(&p, &before).await;
    assert_settled(&t, &desired).await;
}

#[tokio::test]
async fn replicas_land_in_other_regions_and_follow_the_config() {
    let p = prefix("repl");
    let name = format!("{p}a");
    let desired = bundle(&[("a", json!({"k": 1}))]);
    let two = settings(|s| s.replica_regions = regions(&["us-west-2", "eu-west-1"]));
    let t = target(&p, &two).await;
    let plan = t.plan(&desired, &ctx()).await.unwrap();
    assert_eq!(
        planned(&plan, "a"),
        [
            ("replica:eu-west-1".into(), None, some("add")),
            ("replica:us-west-2".into(), None, some("add")),
        ],
        "the plan shows the replication"
    );
    let r = apply(&t, &plan).await;
    assert_eq!((r.created, r.warnings.len()), (1, 0), "{r:?}");
    for region in ["us-west-2", "eu-west-1"] {
        assert_eq!(
            value_in(region, &name).await.as_deref(),
            Some(r#"{"k":1}"#),
            "the replica in {region} serves the value"
        );
    }
    let d = describe(PRIMARY, &name).await.unwrap();
    assert_eq!(
        d.tags.get(TAG_REPLICAS).map(String::as_str),
        Some("eu-west-1 us-west-2"),
        "the in-sync replica set is recorded"
    );
    assert_settled(&t, &desired).await;
    // A value update reaches the replicas without any replication call.
    let updated = bundle(&[("a", json!({"k": 2}))]);
    let plan = t.plan(&updated, &ctx()).await.unwrap();
    assert!(planned(&plan, "a").is_empty());
    apply(&t, &plan).await;
    assert_eq!(
        value_in("eu-west-1", &name).await.as_deref(),
        Some(r#"{"k":2}"#)
    );

    // One region fewer, one more: removed and added by one run.
    let other = settings(|s| s.replica_regions = regions(&["us-west-2", "ap-south-1"]));
    let t = target(&p, &other).await;
    let plan = t.plan(&updated, &ctx()).await.unwrap();
    assert_eq!(
        planned(&plan, "a"),
        [
            ("replica:ap-south-1".into(), None, some("add")),
            ("replica:eu-west-1".into(), some("InSync"), None),
        ]
    );
    let r = apply(&t, &plan).await;
    assert_eq!((r.retagged, r.updated), (1, 0));
    assert_eq!(value_in("eu-west-1", &name).await, None, "removed");
    assert_eq!(
        value_in("ap-south-1", &name).await.as_deref(),
        Some(r#"{"k":2}"#)
    );
    let d = describe(PRIMARY, &name).await.unwrap();
    assert_eq!(
        d.replicas,
        [
            ("us-west-2".to_string(), "InSync".to_string()),
            ("ap-south-1".to_string(), "InSync".to_string())
        ]
    );
    assert_eq!(
        d.tags.get(TAG_REPLICAS).map(String::as_str),
        Some("ap-south-1 us-west-2")
    );
    assert_settled(&t, &updated).await;

    // No replicas any more: all removed, and the record with them, in one run.
    let none = settings(|_| {});
    let t = target(&p, &none).await;
    let r = apply(&t, &t.plan(&updated, &ctx()).await.unwrap()).await;
    assert_eq!(r.retagged, 1);
    let d = describe(PRIMARY, &name).await.unwrap();
    assert!(
        d.replicas.is_empty() && !d.tags.contains_key(TAG_REPLICAS),
        "{:?}",
        d.replicas
    );
    assert_eq!(value_in("us-west-2", &name).await, None);
    assert_settled(&t, &updated).await;
}

#[tokio::test]
async fn a_failed_replica_is_reported_and_retried() {
    let p = prefix("replfail");
    let name = format!("{p}a");
    // Someone else's secret of that name in eu-west-1 blocks the replica there.
    sm("eu-west-1")
        .create_secret()
        .name(&name)
        .secret_string("{\"theirs\":1}")
        .send()
        .await
        .unwrap();
    let s = settings(|s| s.replica_regions = regions(&["eu-west-1", "us-west-2"]));
    let desired = bundle(&[("a", json!({"k": 1}))]);
    let t = target(&p, &s).await;
    let r = apply(&t, &t.plan(&desired, &ctx()).await.unwrap()).await;
    assert_eq!(r.created, 1);
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert!(
        r.warnings[0].starts_with(&format!("{name}: the replica in eu-west-1 failed: "))
            && r.warnings[0].contains("already exists"),
        "{:?}",
        r.warnings
    );
    assert!(
        !describe(PRIMARY, &name)
            .await
            .unwrap()
            .tags
            .contains_key(TAG_REPLICAS),
        "not recorded as in sync"
    );
    assert_eq!(
        value_in("eu-west-1", &name).await.as_deref(),
        Some("{\"theirs\":1}"),
        "their secret is never overwritten"
    );

    // The next plan reports it with AWS's message and retries it.
    let plan = t.plan(&desired, &ctx()).await.unwrap();
    let c = &plan.changes[0];
    assert_eq!(c.kind, ChangeKind::Unchanged);
    assert_eq!(
        planned(&plan, "a"),
        [("replica:eu-west-1".into(), some("Failed"), some("retry"))]
    );
    assert!(
        c.settings[0]
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("failed: ") && n.contains("already exists")),
        "{:?}",
        c.settings[0].note
    );

    // Once the conflict is gone, the retry lands: one entry per region, all in sync.
    sm("eu-west-1")
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let r = apply(&t, &plan).await;
    assert_eq!((r.retagged, r.warnings.len()), (1, 0), "{r:?}");
    let d = describe(PRIMARY, &name).await.unwrap();
    let mut replicas = d.replicas.clone();
    replicas.sort();
    assert_eq!(
        replicas,
        [
            ("eu-west-1".to_string(), "InSync".to_string()),
            ("us-west-2".to_string(), "InSync".to_string())
        ]
    );
    assert_eq!(
        value_in("eu-west-1", &name).await.as_deref(),
        Some(r#"{"k":1}"#)
    );
    assert_settled(&t, &desired).await;
}

#[tokio::test]
async fn replicated_orphans_are_deleted_and_rolled_back_creations_leave_no_replica() {
    let ep = endpoint();
    let p = prefix("reploprh");
    let s = settings(|s| s.replica_regions = regions(&["us-west-2"]));
    let t = target(&p, &s).await;
    apply(
        &t,
        &t.plan(
            &bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]),
            &ctx(),
        )
        .await
        .unwrap(),
    )
    .await;
    let (a, b) = (format!("{p}a"), format!("{p}b"));
    assert!(value_in("us-west-2", &a).await.is_some());

    // `a` is an orphan: its replica goes first (AWS refuses to delete a replicated primary).
    let plan = t
        .plan(&bundle(&[("b", json!({"k": 2}))]), &ctx())
        .await
        .unwrap();
    assert_eq!(
        planned(&plan, "a"),
        [("replica:us-west-2".into(), some("InSync"), None)]
    );
    let r = apply(&t, &plan).await;
    assert_eq!(r.deleted, 1);
    assert_eq!(value_in("us-west-2", &a).await, None);
    assert!(
        sm(PRIMARY)
            .describe_secret()
            .secret_id(&a)
            .send()
            .await
            .unwrap()
            .deleted_date()
            .is_some()
    );

    // Through a proxy failing `zz-fail`: `c` is created with its replica, then undone.
    let proxy = failing_aws(&ep, &["secretsmanager.CreateSecret"], FAIL_MARKER);
    let t = target_at(&proxy.url(), &p, &s).await;
    let plan = t
        .plan(
            &bundle(&[
                ("b", json!({"k": 2})),
                ("c", json!({"k": 3})),
                (FAIL_MARKER, json!({"k": 4})),
            ]),
            &ctx(),
        )
        .await
        .unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(
        r.failure.is_some() && r.rollback_failures.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.rolled_back, 1);
    let c = format!("{p}c");
    assert!(describe(PRIMARY, &c).await.is_none(), "c is gone");
    assert_eq!(
        value_in("us-west-2", &c).await,
        None,
        "and so is its replica"
    );
    assert!(
        value_in("us-west-2", &b).await.is_some(),
        "b keeps its replica"
    );
}
