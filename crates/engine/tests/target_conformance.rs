//! The conformance script every target passes, run against the real local AWS emulator
//! (moto): create, read back as unchanged, update, skip-unchanged, delete, list-managed-only,
//! restore from pending deletion — and rollback after an injected failure (a small proxy in
//! front of moto fails chosen writes).

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use secretsync_core::config::{AwsSmSettings as Settings, TargetPolicy};
use secretsync_core::diff::ChangeKind;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_engine::aws::AwsContext;
use secretsync_engine::cancel::Cancel;
use secretsync_engine::targets::aws_sm::AwsSmTarget;
use secretsync_engine::targets::{PlanContext, Target};
use secretsync_test_support::proxy::{Action, Proxy, Rule};
use serde_json::json;

fn endpoint() -> String {
    std::env::var("SECRETSYNC_TEST_AWS_ENDPOINT")
        .expect("SECRETSYNC_TEST_AWS_ENDPOINT is not set: run the tests through scripts/test.sh, which starts moto")
}

fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::for_tests()))
        // moto answers 500 now and then under concurrent writes in one region (a thread-safety bug
        // of its own); the SDK retries those, as it does in production.
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
        .build()
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn settings() -> Settings {
    Settings {
        region: "us-east-1".into(),
        role_arn: None,
        external_id: None,
        deletion_recovery_days: 7,
        force_delete: false,
    }
}

fn policy(prefix: &str) -> TargetPolicy {
    TargetPolicy {
        secret_prefix: prefix.into(),
        delete_orphans: true,
        max_deletes: 10,
        concurrency: 1,
        writes_per_second: 1000,
        ..TargetPolicy::default()
    }
}

fn bundle(items: &[(&str, serde_json::Value)]) -> Collected {
    Collected::complete(
        items
            .iter()
            .map(|(p, v)| {
                (
                    p.to_string(),
                    SecretValue::new(v.as_object().unwrap().clone()),
                )
            })
            .collect(),
    )
}

/// The owner scope of these tests' deployment.
const OWNER: &str = "conformance";

fn apply_ctx() -> PlanContext {
    PlanContext::default()
}

fn kinds(plan: &secretsync_core::diff::TargetPlan) -> BTreeMap<String, ChangeKind> {
    plan.changes
        .iter()
        .map(|c| (c.path.clone(), c.kind))
        .collect()
}

/// The `AWSCURRENT` value and version. The stage is named explicitly: moto's default read
/// ignores stage moves made with `UpdateSecretVersionStage` (AWS's default is `AWSCURRENT`).
async fn current_value(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
) -> Option<(String, String)> {
    let v = sm
        .get_secret_value()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .ok()?;
    Some((v.secret_string()?.to_string(), v.version_id()?.to_string()))
}

#[tokio::test]
async fn conformance_create_update_skip_delete_restore() {
    let ep = endpoint();
    let ctx = AwsContext::from_sdk_config(sdk(&ep));
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&ep));
    let prefix = format!("conf-{}/", unique());
    let t = AwsSmTarget::new("conf", OWNER, &policy(&prefix), &settings(), &ctx).await;

    // create
    let v1 = bundle(&[
        ("a", json!({"k": 1})),
        ("b", json!({"k": 2, "n": {"x": true}})),
    ]);
    let plan = t.plan(&v1, &apply_ctx()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Added),
            ("b".into(), ChangeKind::Added)
        ])
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.created, r.failure.as_deref()), (2, None));
    let (a_json, a_ver) = current_value(&sm, &format!("{prefix}a")).await.unwrap();
    assert_eq!(a_json, r#"{"k":1}"#);

    // read back: unchanged, proven by tags alone (one ListSecrets call, no value reads)
    let before = t.calls();
    let plan = t.plan(&v1, &apply_ctx()).await.unwrap();
    assert!(!plan.has_changes() && plan.counts().unchanged == 2);
    assert_eq!(
        t.calls() - before,
        1,
        "an unchanged target costs one ListSecrets call"
    );

    // update one secret: only it gets a new version
    let (_, b_ver) = current_value(&sm, &format!("{prefix}b")).await.unwrap();
    let v2 = bundle(&[
        ("a", json!({"k": 1})),
        ("b", json!({"k": 3, "n": {"x": true}})),
    ]);
    let plan = t.plan(&v2, &apply_ctx()).await.unwrap();
    let b = plan.changes.iter().find(|c| c.path == "b").unwrap();
    assert_eq!(b.kind, ChangeKind::Modified);
    assert_eq!(
        b.keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["k"]
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.updated, r.created), (1, 0));
    assert_eq!(
        current_value(&sm, &format!("{prefix}a")).await.unwrap().1,
        a_ver,
        "unchanged secret keeps its version"
    );
    let (b_json, b_ver2) = current_value(&sm, &format!("{prefix}b")).await.unwrap();
    assert_ne!(b_ver2, b_ver);
    assert_eq!(b_json, r#"{"k":3,"n":{"x":true}}"#);

    // list-managed-only: an unmanaged secret and one managed by another target are left alone
    sm.create_secret()
        .name(format!("{prefix}u"))
        .secret_string("{\"mine\":1}")
        .send()
        .await
        .unwrap();
    let other = AwsSmTarget::new("someone-else", OWNER, &policy(&prefix), &settings(), &ctx).await;
    let r = other
        .apply(
            &other
                .plan(&bundle(&[("o", json!({"x": 1}))]), &apply_ctx())
                .await
                .unwrap(),
            &Cancel::default(),
        )
        .await;
    assert_eq!(r.created, 1);
    let v3 = bundle(&[
        ("b", json!({"k": 3, "n": {"x": true}})),
        ("u", json!({"k": 9})),
        ("o", json!({"k": 9})),
    ]);
    let plan = t.plan(&v3, &apply_ctx()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Deleted),
            ("b".into(), ChangeKind::Unchanged),
            ("o".into(), ChangeKind::Skipped),
            ("u".into(), ChangeKind::Skipped),
        ])
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.deleted, r.failure.as_deref()), (1, None));
    assert_eq!(
        current_value(&sm, &format!("{prefix}u")).await.unwrap().0,
        "{\"mine\":1}"
    );
    assert_eq!(
        current_value(&sm, &format!("{prefix}o")).await.unwrap().0,
        "{\"x\":1}"
    );
    let listed = sm
        .describe_secret()
        .secret_id(format!("{prefix}a"))
        .send()
        .await
        .unwrap();
    assert!(
        listed.deleted_date().is_some(),
        "orphan is pending deletion, not gone"
    );

    // a desired secret pending deletion is restored, not fought
    let plan = t
        .plan(
            &bundle(&[
                ("a", json!({"k": 5})),
                ("b", json!({"k": 3, "n": {"x": true}})),
            ]),
            &apply_ctx(),
        )
        .await
        .unwrap();
    let a = plan.changes.iter().find(|c| c.path == "a").unwrap();
    assert!(a.kind == ChangeKind::Modified && a.restore);
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.updated, r.failure.as_deref()), (1, None));
    assert!(
        sm.describe_secret()
            .secret_id(format!("{prefix}a"))
            .send()
            .await
            .unwrap()
            .deleted_date()
            .is_none()
    );
    assert_eq!(
        current_value(&sm, &format!("{prefix}a")).await.unwrap().0,
        r#"{"k":5}"#
    );
}

/// A proxy in front of moto that answers 400 to writes whose body mentions `marker`.
fn failing_proxy(upstream: &str, marker: &str) -> Proxy {
    let proxy = Proxy::start(upstream);
    for op in ["CreateSecret", "PutSecretValue"] {
        proxy.add(
            Rule::amz_target(&format!("secretsmanager.{op}"))
                .body_contains(marker)
                .then(Action::aws_error(
                    400,
                    "InvalidRequestException",
                    "injected failure",
                )),
        );
    }
    proxy
}

#[tokio::test]
async fn failed_write_rolls_the_target_back() {
    let ep = endpoint();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&ep));
    let prefix = format!("rb-{}/", unique());
    // Start from one managed secret.
    let direct = AwsContext::from_sdk_config(sdk(&ep));
    let t = AwsSmTarget::new("rb", OWNER, &policy(&prefix), &settings(), &direct).await;
    let r = t
        .apply(
            &t.plan(&bundle(&[("a", json!({"v": "old"}))]), &apply_ctx())
                .await
                .unwrap(),
            &Cancel::default(),
        )
        .await;
    assert_eq!(r.created, 1);
    let (_, a_ver) = current_value(&sm, &format!("{prefix}a")).await.unwrap();

    // Through the proxy, the write of `zz-fail` fails after `a` was updated and `b` created.
    let proxy = failing_proxy(&ep, "zz-fail");
    let ctx = AwsContext::from_sdk_config(sdk(&proxy.url()));
    let t = AwsSmTarget::new("rb", OWNER, &policy(&prefix), &settings(), &ctx).await;
    let desired = bundle(&[
        ("a", json!({"v": "new"})),
        ("b", json!({"v": 1})),
        ("zz-fail", json!({"v": 2})),
    ]);
    let plan = t.plan(&desired, &apply_ctx()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.clone().expect("the apply reports the failure");
    assert!(
        failure.contains("zz-fail") && failure.contains("injected failure"),
        "{failure}"
    );
    assert_eq!(
        r.rolled_back, 2,
        "the update of a and the creation of b are undone: {r:?}"
    );
    assert!(r.rollback_failures.is_empty(), "{:?}", r.rollback_failures);

    // The target is back where it started.
    let (a_json, a_ver_now) = current_value(&sm, &format!("{prefix}a")).await.unwrap();
    assert_eq!(
        (a_json.as_str(), a_ver_now.as_str()),
        (r#"{"v":"old"}"#, a_ver.as_str())
    );
    assert!(
        current_value(&sm, &format!("{prefix}b")).await.is_none(),
        "b was created then removed"
    );
    assert!(
        current_value(&sm, &format!("{prefix}zz-fail"))
            .await
            .is_none()
    );
    // The ownership tags point at the restored version again.
    let d = sm
        .describe_secret()
        .secret_id(format!("{prefix}a"))
        .send()
        .await
        .unwrap();
    let tag = d
        .tags()
        .iter()
        .find(|t| t.key() == Some("secretsync:version"))
        .and_then(|t| t.value());
    assert_eq!(tag, Some(a_ver.as_str()));
    assert!(plan.counts().changes() == 3);
}

#[tokio::test]
async fn cancelled_apply_writes_nothing_and_says_so() {
    let ep = endpoint();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&ep));
    let prefix = format!("cx-{}/", unique());
    let ctx = AwsContext::from_sdk_config(sdk(&ep));
    let t = AwsSmTarget::new("cx", OWNER, &policy(&prefix), &settings(), &ctx).await;
    let plan = t
        .plan(
            &bundle(&[("a", json!({"v": 1})), ("b", json!({"v": 2}))]),
            &apply_ctx(),
        )
        .await
        .unwrap();
    let cancel = Cancel::default();
    cancel.cancel("cancelled by a test");
    let r = t.apply(&plan, &cancel).await;
    assert_eq!((r.created, r.updated, r.deleted), (0, 0, 0));
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("cancelled")),
        "{r:?}"
    );
    assert!(current_value(&sm, &format!("{prefix}a")).await.is_none());
}

#[tokio::test]
async fn rolled_back_adoption_leaves_the_secret_unmanaged() {
    let ep = endpoint();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&ep));
    let prefix = format!("ad-{}/", unique());
    sm.create_secret()
        .name(format!("{prefix}u"))
        .secret_string("{\"theirs\":1}")
        .send()
        .await
        .unwrap();
    let (_, u_ver) = current_value(&sm, &format!("{prefix}u")).await.unwrap();

    let proxy = failing_proxy(&ep, "zz-fail");
    let ctx = AwsContext::from_sdk_config(sdk(&proxy.url()));
    let mut p = policy(&prefix);
    p.adopt = true;
    let t = AwsSmTarget::new("ad", OWNER, &p, &settings(), &ctx).await;
    let plan = t
        .plan(
            &bundle(&[("u", json!({"ours": 2})), ("zz-fail", json!({"v": 1}))]),
            &apply_ctx(),
        )
        .await
        .unwrap();
    assert!(plan.changes.iter().any(|c| c.path == "u" && c.adopt));
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(
        r.failure.is_some() && r.rollback_failures.is_empty(),
        "{r:?}"
    );

    let (value, ver) = current_value(&sm, &format!("{prefix}u")).await.unwrap();
    assert_eq!(
        (value.as_str(), ver.as_str()),
        ("{\"theirs\":1}", u_ver.as_str())
    );
    let d = sm
        .describe_secret()
        .secret_id(format!("{prefix}u"))
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = d.tags().iter().filter_map(|t| t.key()).collect();
    assert!(
        keys.is_empty(),
        "the ownership tags added by the adoption are removed: {keys:?}"
    );
}
