//! Pacing against AWS's quotas: moto behind the quota proxy (`secretsync-test-support`), which
//! enforces Secrets Manager's published rates and answers `ThrottlingException` over them. A
//! full sync of a few hundred secrets, with default settings, completes with every secret
//! written and none failed, while the proxy throttles (the limiters find the quota by probing
//! above it and backing off).
//!
//! Region: cn-northwest-1 belongs to this file alone.

mod support_sync;

use secretsync_test_support::quota::{Kind, QuotaProxy, Rates};
use serde_json::json;
use support_sync::{World, single_target, unique};

const REGION: &str = "cn-northwest-1";

#[tokio::test]
async fn a_full_sync_through_aws_quotas_writes_everything_and_fails_nothing() {
    let w = World::from_env().await;
    let id = unique("quo");
    let n = 300;
    w.put_many(
        (0..n)
            .map(|i| (format!("{id}/base/s/{i:03}"), json!({"n": i})))
            .collect(),
    )
    .await;
    let quota = QuotaProxy::start(&w.aws_endpoint, Rates::AWS);
    let config = w.config(&single_target(&id, REGION, ""));
    let url = quota.url();
    let r = w.pipeline_env(
        &config,
        &["--output", "json"],
        &[("AWS_ENDPOINT_URL", url.as_str())],
    );
    r.success();
    let doc = r.json();
    let t = &doc["targets"][0];
    assert_eq!(t["result"]["status"], "applied", "{t:#}");
    assert_eq!(t["result"]["created"], n, "{t:#}");
    assert_eq!(t["failed"], false, "{t:#}");
    // Every secret landed.
    let listed = w.sm(REGION).list(&format!("{id}/t/")).await;
    assert_eq!(listed.len(), n);
    println!(
        "creates passed {}, throttled {}; wall {:?}",
        quota.passed(Kind::Create),
        quota.throttled(Kind::Create),
        doc["targets"][0]["result"]["duration_ms"]
    );
    // The quota was met: the proxy throttled creates, and the run still wrote all of them.
    assert!(
        quota.throttled(Kind::Create) > 0,
        "the limiter should probe above 50/s and be throttled"
    );
    // One create per secret, plus the fingerprint key and the lease's lock secret.
    let passed = quota.passed(Kind::Create);
    assert!(
        (n as u64..=n as u64 + 2).contains(&passed),
        "{passed} creates passed for {n} secrets"
    );
}
