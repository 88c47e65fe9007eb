//! Pacing against AWS's quotas: moto behind the quota proxy (`secretsync-test-support`), which
//! enforces Secrets Manager's published rates and answers `ThrottlingException` over them. A
//! full sync of a few hundred secrets, with default settings, completes with every secret
//! written and none failed, while the proxy throttles (the limiters find the quota by probing
//! above it and backing off).
//!
//! The create quota here is half of AWS's (25/s, as when another tool in the account spends
//! the rest): the limiter starts near AWS's published 50/s, so the proxy throttles it on any
//! machine where moto serves more than 25 creates a second. At AWS's own 50/s, whether a
//! throttle happens at all would depend on how fast moto is on the machine.
//!
//! moto answers some concurrent `CreateSecret` calls with a 500 (its backend is not
//! thread-safe: see [`QuotaProxy::upstream_errors`]) before creating anything; the SDK
//! retries those, so the proxy's `passed` count is what moto served plus those errors.
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
    let rates = Rates {
        create: 25.0,
        ..Rates::AWS
    };
    let quota = QuotaProxy::start(&w.aws_endpoint, rates);
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
    let (passed, throttled, errors) = (
        quota.passed(Kind::Create),
        quota.throttled(Kind::Create),
        quota.upstream_errors(Kind::Create),
    );
    println!(
        "creates passed {passed} (moto 5xx {errors}), throttled {throttled}; wall {:?}",
        doc["targets"][0]["result"]["duration_ms"]
    );
    // The quota was met: the proxy throttled creates, and the run still wrote all of them.
    assert!(
        throttled > 0,
        "the limiter starts near 50/s and should be throttled at 25/s"
    );
    // One create per secret, plus the fingerprint key and the lease's lock secret; a create
    // moto failed with a 500 (see the module docs) is retried, and only that.
    let served = passed - errors;
    assert!(
        (n as u64..=n as u64 + 2).contains(&served),
        "{served} creates served ({passed} passed, {errors} moto 5xx) for {n} secrets"
    );
}
