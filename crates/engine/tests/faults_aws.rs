//! The AWS Secrets Manager target behind a fault proxy in front of moto, with SDK retries off
//! (one attempt per call), so the target's own handling of an ambiguous write is what is
//! tested: a write whose answer was lost after it landed is found by its client request token
//! and counted as done (no duplicate, nothing rolled back); one that did not land is a failure
//! and the target is rolled back; when the check itself fails the report names the secret. A
//! write whose answer never comes times out (short timeouts here) and is resolved the same way.
//!
//! Needs the local servers (`scripts/test.sh`). Every test uses its own prefix, in a region no
//! other test file uses.

use std::collections::BTreeMap;
use std::time::Duration;

use secretsync_core::config::AwsSmSettings as Settings;
use secretsync_core::diff::{ChangeKind, TargetPlan};
use secretsync_engine::aws::{AwsContext, Timeouts};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::targets::aws_sm::AwsSmTarget;
use secretsync_engine::targets::{PlanContext, Target};
use secretsync_test_support::proxy::{Action, Proxy, Rule};
use serde_json::{Value, json};

mod common;
use common::aws::endpoint;
use common::{bundle, policy};

const REGION: &str = "us-gov-west-1";
const OWNER: &str = "faults";

fn sdk(endpoint: &str, attempts: u32) -> aws_config::SdkConfig {
    common::aws::sdk_with_attempts(endpoint, REGION, attempts)
}

fn settings() -> Settings {
    common::aws::sm_settings(REGION)
}

/// A target straight to moto (with retries, for setup and checks) and one through `proxy` with
/// a single attempt per call.
struct Setup {
    prefix: String,
    proxy: Proxy,
    direct: AwsSmTarget,
    faulty: AwsSmTarget,
    sm: aws_sdk_secretsmanager::Client,
}

async fn setup() -> Setup {
    let ep = endpoint();
    let prefix = format!("{}/", common::unique("fa-"));
    let proxy = Proxy::start(&ep);
    let direct_ctx = AwsContext::from_sdk_config(sdk(&ep, 5));
    let faulty_ctx = AwsContext::from_sdk_config(sdk(&proxy.url(), 1));
    let direct = AwsSmTarget::new("t", OWNER, &policy(&prefix), &settings(), &direct_ctx).await;
    let faulty = AwsSmTarget::new("t", OWNER, &policy(&prefix), &settings(), &faulty_ctx).await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&ep, 5));
    let s = Setup {
        prefix,
        proxy,
        direct,
        faulty,
        sm,
    };
    // Start from two managed secrets; the fingerprint key of the region exists from now on.
    let r = s
        .apply_direct(&[("a", json!({"v": 1})), ("b", json!({"v": 1}))])
        .await;
    assert_eq!((r.created, r.failure.as_deref()), (2, None));
    s
}

impl Setup {
    fn name(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    fn write_rule(&self, operation: &str, rel: &str) -> Rule {
        Rule::amz_target(&format!("secretsmanager.{operation}"))
            .body_contains(&format!("\"{}\"", self.name(rel)))
    }

    async fn plan_faulty(&self, items: &[(&str, Value)]) -> TargetPlan {
        self.faulty
            .plan(&bundle(items), &PlanContext::default())
            .await
            .expect("plan")
    }

    async fn apply_direct(
        &self,
        items: &[(&str, Value)],
    ) -> secretsync_engine::targets::ApplyReport {
        let plan = self
            .direct
            .plan(&bundle(items), &PlanContext::default())
            .await
            .expect("plan");
        self.direct.apply(&plan, &Cancel::default()).await
    }

    /// Version ids and stages of a secret; `None` when it does not exist.
    async fn versions(&self, rel: &str) -> Option<BTreeMap<String, Vec<String>>> {
        let d = self
            .sm
            .describe_secret()
            .secret_id(self.name(rel))
            .send()
            .await
            .ok()?;
        Some(
            d.version_ids_to_stages()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        )
    }

    /// After the fault: the same desired state, applied without faults, leaves nothing to do.
    async fn converges(&self, items: &[(&str, Value)]) {
        let r = self.apply_direct(items).await;
        assert_eq!(r.failure, None, "{r:?}");
        let plan = self
            .direct
            .plan(&bundle(items), &PlanContext::default())
            .await
            .unwrap();
        assert!(!plan.has_changes(), "{:?}", plan.changes);
    }
}

fn planned_version(plan: &TargetPlan, path: &str) -> String {
    plan.changes
        .iter()
        .find(|c| c.path == path)
        .and_then(|c| c.new_version.clone())
        .unwrap_or_else(|| panic!("no planned version for {path}"))
}

#[tokio::test]
async fn a_landed_write_whose_answer_is_lost_is_found_by_its_request_token() {
    let s = setup().await;
    let before_a = s.versions("a").await.unwrap();
    let desired = [
        ("a", json!({"v": 2})),
        ("b", json!({"v": 1})),
        ("c", json!({"v": 1})),
    ];
    let put = s.proxy.add(
        s.write_rule("PutSecretValue", "a")
            .then(Action::ResetAfterForward),
    );
    let create = s.proxy.add(
        s.write_rule("CreateSecret", "c")
            .then(Action::ResetAfterForward),
    );
    let plan = s.plan_faulty(&desired).await;
    let r = s.faulty.apply(&plan, &Cancel::default()).await;
    assert_eq!(r.failure, None, "a landed write is not a failure: {r:?}");
    assert_eq!((r.created, r.updated, r.rolled_back), (1, 1, 0), "{r:?}");
    assert_eq!(r.left_changed, [s.name("a"), s.name("c")]);
    assert_eq!(
        (s.proxy.hits(put), s.proxy.hits(create)),
        (1, 1),
        "one attempt each"
    );

    // Exactly the planned versions, once each.
    let a = s.versions("a").await.unwrap();
    assert_eq!(a.len(), before_a.len() + 1, "{a:?}");
    assert_eq!(a[&planned_version(&plan, "a")], ["AWSCURRENT"]);
    let c = s.versions("c").await.expect("c was created");
    assert_eq!(c.keys().collect::<Vec<_>>(), [&planned_version(&plan, "c")]);
    s.converges(&desired).await;
}

#[tokio::test]
async fn a_write_that_never_reached_aws_fails_and_the_target_rolls_back() {
    let s = setup().await;
    let before_a = s.versions("a").await.unwrap();
    let desired = [("a", json!({"v": 2})), ("b", json!({"v": 2}))];
    let reset = s.proxy.add(
        s.write_rule("PutSecretValue", "b")
            .then(Action::ResetBeforeForward),
    );
    let plan = s.plan_faulty(&desired).await;
    let r = s.faulty.apply(&plan, &Cancel::default()).await;
    assert_eq!(s.proxy.hits(reset), 1);
    let failure = r.failure.clone().expect("the lost write is a failure");
    assert!(failure.contains(&s.name("b")), "{failure}");
    assert_eq!(
        (r.updated, r.rolled_back),
        (1, 1),
        "a was written, then undone: {r:?}"
    );
    assert!(r.left_changed.is_empty(), "{r:?}");
    let a = s.versions("a").await.unwrap();
    let old_current = before_a
        .iter()
        .find(|(_, st)| st.iter().any(|x| x == "AWSCURRENT"))
        .map(|(v, _)| v.clone())
        .unwrap();
    assert!(a[&old_current].iter().any(|x| x == "AWSCURRENT"), "{a:?}");
    assert!(
        !a.contains_key(&planned_version(&plan, "b")),
        "b got no version"
    );
}

#[tokio::test]
async fn a_write_whose_outcome_cannot_be_checked_is_reported_by_name() {
    let s = setup().await;
    let desired = [("a", json!({"v": 3})), ("b", json!({"v": 1}))];
    s.proxy.add(
        s.write_rule("PutSecretValue", "a")
            .then(Action::ResetAfterForward),
    );
    s.proxy.add(
        Rule::amz_target("secretsmanager.DescribeSecret").then(Action::aws_error(
            500,
            "InternalServiceError",
            "injected",
        )),
    );
    let plan = s.plan_faulty(&desired).await;
    assert_eq!(
        plan.changes.iter().find(|c| c.path == "a").map(|c| c.kind),
        Some(ChangeKind::Modified)
    );
    let r = s.faulty.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.clone().expect("an unresolved write is a failure");
    assert!(
        failure.contains(&s.name("a"))
            && failure.contains("may have landed")
            && failure.contains(&planned_version(&plan, "a")),
        "names the secret and the version to look for: {failure}"
    );
    // The write did land; a run without faults recognises the value and converges.
    s.proxy.clear();
    s.converges(&desired).await;
}

/// A target through the proxy with short timeouts (the tool's own are 30 s per attempt) and
/// `attempts` tries per call.
async fn timing_out(s: &Setup, attempts: u32) -> AwsSmTarget {
    let ctx = AwsContext::with_timeouts(
        sdk(&s.proxy.url(), attempts),
        Timeouts {
            connect: Duration::from_secs(3),
            attempt: Duration::from_millis(500),
            operation: Duration::from_secs(20),
        },
    );
    AwsSmTarget::new("t", OWNER, &policy(&s.prefix), &settings(), &ctx).await
}

/// The answer to a landed `PutSecretValue` never comes, once: the attempt times out, the SDK's
/// retry with the same client request token adds no version, and the apply succeeds.
#[tokio::test]
async fn a_landed_write_whose_answer_never_comes_is_retried_without_a_duplicate() {
    let s = setup().await;
    let before_a = s.versions("a").await.unwrap();
    let target = timing_out(&s, 3).await;
    let desired = [("a", json!({"v": 2})), ("b", json!({"v": 1}))];
    let stall = s.proxy.add(
        s.write_rule("PutSecretValue", "a")
            .then(Action::StallAfterForward)
            .times(1),
    );
    let plan = target
        .plan(&bundle(&desired), &PlanContext::default())
        .await
        .unwrap();
    let r = target.apply(&plan, &Cancel::default()).await;
    assert_eq!(r.failure, None, "{r:?}");
    assert_eq!((r.updated, r.rolled_back), (1, 0), "{r:?}");
    assert_eq!(
        (s.proxy.hits(stall), s.proxy.matched(stall)),
        (1, 2),
        "retried once"
    );
    let a = s.versions("a").await.unwrap();
    assert_eq!(a.len(), before_a.len() + 1, "no duplicate version: {a:?}");
    assert_eq!(a[&planned_version(&plan, "a")], ["AWSCURRENT"]);
    s.converges(&desired).await;
}

/// Every answer to a landed `CreateSecret` and `PutSecretValue` times out and the SDK may not
/// retry: the tool finds its client request tokens and counts both writes as done.
#[tokio::test]
async fn landed_writes_whose_answers_always_time_out_are_resolved_as_done() {
    let s = setup().await;
    let before_a = s.versions("a").await.unwrap();
    let target = timing_out(&s, 1).await;
    let desired = [
        ("a", json!({"v": 2})),
        ("b", json!({"v": 1})),
        ("c", json!({"v": 1})),
    ];
    s.proxy.add(
        s.write_rule("PutSecretValue", "a")
            .then(Action::StallAfterForward),
    );
    s.proxy.add(
        s.write_rule("CreateSecret", "c")
            .then(Action::StallAfterForward),
    );
    let plan = target
        .plan(&bundle(&desired), &PlanContext::default())
        .await
        .unwrap();
    let r = target.apply(&plan, &Cancel::default()).await;
    assert_eq!(
        r.failure, None,
        "timed-out writes that landed are not failures: {r:?}"
    );
    assert_eq!((r.created, r.updated, r.rolled_back), (1, 1, 0), "{r:?}");
    let a = s.versions("a").await.unwrap();
    assert_eq!(a.len(), before_a.len() + 1, "{a:?}");
    let c = s.versions("c").await.expect("c was created");
    assert_eq!(c.keys().collect::<Vec<_>>(), [&planned_version(&plan, "c")]);
    s.proxy.clear();
    s.converges(&desired).await;
}
