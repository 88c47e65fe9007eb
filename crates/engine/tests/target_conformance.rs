//! The conformance suite (`conformance/mod.rs`) run for `aws_secretsmanager` against the real
//! local AWS emulator (moto), through an [`Inspector`] that reads moto directly; then the checks
//! only this kind has: an unchanged target costs one `ListSecrets` call, a desired secret
//! pending deletion is restored, and the details of a rollback (the previous version is
//! current again, the ownership tags point at it, an adoption is undone).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::ChangeKind;
use secretsync_engine::aws::AwsContext;
use secretsync_engine::cancel::Cancel;
use secretsync_engine::targets::aws_sm::AwsSmTarget;
use secretsync_engine::targets::{PlanContext, Target};
use secretsync_test_support::proxy::Proxy;
use serde_json::{Value, json};

mod common;
mod conformance;
use common::aws::{endpoint, sdk};
use common::{bundle, kinds, policy, unique};
use conformance::{FAIL_MARKER, Fixture, Inspector, MakeTarget};

const REGION: &str = "us-east-1";

fn settings() -> secretsync_core::config::AwsSmSettings {
    common::aws::sm_settings(REGION)
}

/// The owner scope of these tests' deployment.
const OWNER: &str = conformance::OWNER;

fn apply_ctx() -> PlanContext {
    PlanContext::default()
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

/// Reads moto directly.
struct SmInspector {
    sm: aws_sdk_secretsmanager::Client,
}

#[async_trait]
impl Inspector for SmInspector {
    fn name(&self, prefix: &str, path: &str) -> String {
        format!("{prefix}{path}")
    }

    async fn value(&self, name: &str) -> Option<Value> {
        let (json, _) = current_value(&self.sm, name).await?;
        Some(serde_json::from_str(&json).expect("a stored value is JSON"))
    }

    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let d = self
            .sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .ok()?;
        Some(
            d.tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        )
    }

    async fn versions(&self, name: &str) -> usize {
        // moto answers 500 to ListSecretVersionIds on a missing secret: look first.
        if self
            .sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .is_err()
        {
            return 0;
        }
        self.sm
            .list_secret_version_ids()
            .secret_id(name)
            .include_deprecated(true)
            .send()
            .await
            .expect("listing versions")
            .versions()
            .len()
    }

    async fn create_unmanaged(&self, name: &str, value: &Value) {
        self.sm
            .create_secret()
            .name(name)
            .secret_string(value.to_string())
            .send()
            .await
            .expect("creating an unmanaged secret");
    }

    async fn is_deleted(&self, name: &str) -> bool {
        match self.sm.describe_secret().secret_id(name).send().await {
            Ok(d) => d.deleted_date().is_some(),
            Err(_) => true,
        }
    }

    /// A space: not in AWS's name alphabet.
    fn rejected_path(&self) -> String {
        "bad name".into()
    }

    fn rejected_size(&self) -> usize {
        secretsync_core::targets::aws_sm::MAX_VALUE_BYTES + 1
    }
}

/// The target under test, talking to `endpoint`.
fn make(endpoint: String) -> MakeTarget {
    Arc::new(move |name: &str, owner: &str, policy: TargetPolicy| {
        let (endpoint, name, owner) = (endpoint.clone(), name.to_string(), owner.to_string());
        Box::pin(async move {
            let ctx = AwsContext::from_sdk_config(sdk(&endpoint, REGION));
            Arc::new(AwsSmTarget::new(&name, &owner, &policy, &settings(), &ctx).await)
                as Arc<dyn Target>
        })
    })
}

/// A proxy in front of moto failing creations and value writes of names with [`FAIL_MARKER`].
fn fault_proxy(endpoint: &str) -> Proxy {
    conformance::failing_aws(
        endpoint,
        &[
            "secretsmanager.CreateSecret",
            "secretsmanager.PutSecretValue",
        ],
        FAIL_MARKER,
    )
}

#[tokio::test]
async fn conformance_suite() {
    let ep = endpoint();
    let fixture = Fixture {
        make: make(ep.clone()),
        inspector: Arc::new(SmInspector {
            sm: common::aws::sm(REGION),
        }),
        prefix: format!("{}/", unique("conf-")),
        failing: Some(conformance::through(fault_proxy(&ep), make)),
    };
    conformance::run_all(&fixture).await;
}

/// Unchanged is proven by the tags alone: one `ListSecrets` call, no value reads. A desired
/// secret pending deletion is restored, not fought.
#[tokio::test]
async fn listing_alone_proves_unchanged_and_pending_deletions_are_restored() {
    let ep = endpoint();
    let ctx = AwsContext::from_sdk_config(sdk(&ep, REGION));
    let sm = common::aws::sm(REGION);
    let prefix = format!("{}/", unique("conf-"));
    let t = AwsSmTarget::new("conf", OWNER, &policy(&prefix), &settings(), &ctx).await;
    let v1 = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]);
    let r = t
        .apply(
            &t.plan(&v1, &apply_ctx()).await.unwrap(),
            &Cancel::default(),
        )
        .await;
    assert_eq!((r.created, r.failure.as_deref()), (2, None));

    let before = t.calls();
    let plan = t.plan(&v1, &apply_ctx()).await.unwrap();
    assert!(!plan.has_changes() && plan.counts().unchanged == 2);
    assert_eq!(
        t.calls() - before,
        1,
        "an unchanged target costs one ListSecrets call"
    );

    // b becomes an orphan and is deleted (pending deletion for 7 days) ...
    let plan = t
        .plan(&bundle(&[("a", json!({"k": 1}))]), &apply_ctx())
        .await
        .unwrap();
    assert_eq!(kinds(&plan)["b"], ChangeKind::Deleted);
    assert_eq!(t.apply(&plan, &Cancel::default()).await.deleted, 1);
    let d = sm
        .describe_secret()
        .secret_id(format!("{prefix}b"))
        .send()
        .await
        .unwrap();
    assert!(d.deleted_date().is_some(), "pending deletion, not gone");

    // ... and desired again: restored and written.
    let plan = t
        .plan(
            &bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 5}))]),
            &apply_ctx(),
        )
        .await
        .unwrap();
    let b = plan.changes.iter().find(|c| c.path == "b").unwrap();
    assert!(b.kind == ChangeKind::Modified && b.restore, "{b:?}");
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.updated, r.failure.as_deref()), (1, None));
    let d = sm
        .describe_secret()
        .secret_id(format!("{prefix}b"))
        .send()
        .await
        .unwrap();
    assert!(d.deleted_date().is_none());
    assert_eq!(
        current_value(&sm, &format!("{prefix}b")).await.unwrap().0,
        r#"{"k":5}"#
    );
}

#[tokio::test]
async fn failed_write_rolls_the_target_back() {
    let ep = endpoint();
    let sm = common::aws::sm(REGION);
    let prefix = format!("{}/", unique("rb-"));
    // Start from one managed secret.
    let direct = AwsContext::from_sdk_config(sdk(&ep, REGION));
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
    let proxy = fault_proxy(&ep);
    let ctx = AwsContext::from_sdk_config(sdk(&proxy.url(), REGION));
    let t = AwsSmTarget::new("rb", OWNER, &policy(&prefix), &settings(), &ctx).await;
    let desired = bundle(&[
        ("a", json!({"v": "new"})),
        ("b", json!({"v": 1})),
        ("zz-fail", json!({"v": 2})),
    ]);
    let plan = t.plan(&desired, &apply_ctx()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    conformance::assert_injected_failure_rolled_back(&r);
    assert_eq!(
        r.rolled_back, 2,
        "the update of a and the creation of b are undone: {r:?}"
    );

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
async fn rolled_back_adoption_leaves_the_secret_unmanaged() {
    let ep = endpoint();
    let sm = common::aws::sm(REGION);
    let prefix = format!("{}/", unique("ad-"));
    sm.create_secret()
        .name(format!("{prefix}u"))
        .secret_string("{\"theirs\":1}")
        .send()
        .await
        .unwrap();
    let (_, u_ver) = current_value(&sm, &format!("{prefix}u")).await.unwrap();

    let proxy = fault_proxy(&ep);
    let ctx = AwsContext::from_sdk_config(sdk(&proxy.url(), REGION));
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
