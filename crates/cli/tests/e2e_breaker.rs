//! The circuit breaker end to end: the binary against the real OpenBao and moto behind the
//! test-support fault proxy, with `circuit_breaker:` in the config.
//!
//! Nothing here measures time: an open breaker shows as requests the proxy never sees. Where a
//! breaker must reach its `timeout`, a request to another service is held by the proxy for
//! longer than that (a set-up, not an assertion).

mod support_sync;

use std::time::Duration;

use secretsync_test_support::proxy::{Action, Proxy, Rule, RuleId};
use serde_json::json;
use support_sync::{Run, World, plan_counts, unique};

/// Regions no other test in this file uses at the same time (see `support_sync`).
const R_VAULT: &str = "eu-central-2";
const R_THROTTLE: &str = "ap-northeast-3";
const R_OPEN: &str = "ap-southeast-5";
const R_OTHER: &str = "ca-central-1";

/// `pipeline --config <config>` with Vault and AWS reached through the proxies, one target at
/// a time: these tests read how a breaker's state carries from one target to the next.
fn through(w: &World, config: &std::path::Path, vault: &Proxy, aws: &Proxy) -> Run {
    let (v, a) = (vault.url(), aws.url());
    w.pipeline_env(
        config,
        &["--parallel-targets", "1"],
        &[("VAULT_ADDR", v.as_str()), ("AWS_ENDPOINT_URL", a.as_str())],
    )
}

/// Every listing of the source `secret/<id>/base/` answered 500.
fn fail_listing(vault: &Proxy, id: &str) -> RuleId {
    vault.add(
        Rule::method("GET")
            .path_prefix(&format!("/v1/secret/metadata/{id}/base/"))
            .query("list=true")
            .then(Action::status(500, r#"{"errors":["injected"]}"#)),
    )
}

/// The log lines (stderr) of the breaker's changes of state for `service`.
fn transitions(r: &Run, service: &str) -> Vec<String> {
    r.stderr
        .lines()
        .filter(|l| l.contains("circuit breaker ") && l.contains(service))
        .filter_map(|l| {
            ["opened", "half-open", "closed"]
                .into_iter()
                .find(|s| l.contains(&format!("circuit breaker {s}")))
                .map(str::to_string)
        })
        .collect()
}

/// OpenBao answering 500 to the listing: after `failure_threshold` failed attempts the breaker
/// opens and the client's remaining retries are refused without being sent; the run fails
/// at once with a message naming the service, the last failure with its request id, and when it
/// is tried again.
#[tokio::test]
async fn vault_answering_500_opens_the_breaker_and_the_run_fails_fast() {
    let w = World::from_env().await;
    let id = unique("brk");
    w.put(&format!("{id}/base/a"), json!({ "k": "v" })).await;
    let vault = Proxy::start(&w.vault_addr);
    let aws = Proxy::start(&w.aws_endpoint);
    let failing = fail_listing(&vault, &id);
    let config = w.config(&support_sync::single_target(
        &id,
        R_VAULT,
        "circuit_breaker: { failure_threshold: 3, window: 1m, timeout: 1h }\n",
    ));
    let r = through(&w, &config, &vault, &aws);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let service = format!("vault/{}", vault.url());
    // Three failures opened it; the client's fourth attempt was never sent.
    assert_eq!(vault.hits(failing), 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("circuit breaker open for {service}: 3 attempts failed within 1m; the last failure: kv.list [req=")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("is not called until it is tried again in "),
        "{}",
        r.stderr
    );
    assert_eq!(transitions(&r, &service), ["opened"], "{}", r.stderr);

    // Without the block the client makes all its attempts: the breaker is what stopped them.
    vault.clear();
    let failing = fail_listing(&vault, &id);
    let off = w.config(&support_sync::single_target(
        &id,
        R_VAULT,
        "circuit_breaker: { enabled: false, failure_threshold: 3 }\n",
    ));
    let r = through(&w, &off, &vault, &aws);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(vault.hits(failing) > 3, "{}", r.stderr);
    assert!(!r.stderr.contains("circuit breaker"), "{}", r.stderr);
}

/// AWS throttling (`ThrottlingException`) is back-pressure: even with `failure_threshold: 1`
/// it never opens the breaker, the retries go on, and the run succeeds.
#[tokio::test]
async fn aws_throttling_never_opens_the_breaker() {
    let w = World::from_env().await;
    let id = unique("thr");
    w.put(&format!("{id}/base/a"), json!({ "n": 1 })).await;
    let vault = Proxy::start(&w.vault_addr);
    let aws = Proxy::start(&w.aws_endpoint);
    // The run's last write.
    let throttled = aws.add(
        Rule::amz_target("secretsmanager.CreateSecret")
            .body_contains(&format!("\"{id}/t/"))
            .then(Action::aws_error(
                400,
                "ThrottlingException",
                "Rate exceeded",
            ))
            .times(1),
    );
    let config = w.config(&support_sync::single_target(
        &id,
        R_THROTTLE,
        "circuit_breaker: { failure_threshold: 1, window: 1m, timeout: 1h }\n",
    ));
    let r = through(&w, &config, &vault, &aws);
    r.success();
    assert_eq!(aws.hits(throttled), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("circuit breaker"), "{}", r.stderr);
    let listed = w.sm(R_THROTTLE).list(&format!("{id}/t/")).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
}

/// Secrets Manager in one region answering 500 to one target's writes: its breaker opens and
/// fails that target (its remaining attempts are never sent), while a target in another region
/// syncs. That target's writes are held by the proxy longer than the breaker's `timeout`, so
/// the third target — back in the first region — is a half-open trial that succeeds and closes
/// the breaker.
#[tokio::test]
async fn an_open_aws_breaker_fails_its_target_only_and_half_opens_after_timeout() {
    let w = World::from_env().await;
    let id = unique("opn");
    w.put(&format!("{id}/base/a"), json!({ "k": "v" })).await;
    let vault = Proxy::start(&w.vault_addr);
    let aws = Proxy::start(&w.aws_endpoint);
    let failing = aws.add(
        Rule::amz_target("secretsmanager.CreateSecret")
            .body_contains(&format!("\"{id}/t1/"))
            .then(Action::aws_error(
                500,
                "InternalServiceError",
                "injected failure",
            )),
    );
    // Longer than `timeout` below.
    let held = aws.add(
        Rule::amz_target("secretsmanager.CreateSecret")
            .body_contains(&format!("\"{id}/t2/"))
            .then(Action::Delay(Duration::from_secs(4)))
            .times(1),
    );
    // t1 -> t2 -> t3 run in this order (each imports the one before).
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: t1
    type: aws_secretsmanager
    region: {R_OPEN}
    secret_prefix: {id}/t1/
    imports: [base]
  - name: t2
    type: aws_secretsmanager
    region: {R_OTHER}
    secret_prefix: {id}/t2/
    imports: [t1]
  - name: t3
    type: aws_secretsmanager
    region: {R_OPEN}
    secret_prefix: {id}/t3/
    imports: [t2]
circuit_breaker: {{ failure_threshold: 2, window: 1m, timeout: 3s, max_requests: 1 }}
"
    ));
    let r = through(&w, &config, &vault, &aws);
    assert_ne!(r.code, 0, "t1 failed\n{}", r.stdout);
    let service = format!("aws/default/{R_OPEN}");
    // Two failed attempts opened it; t1's further attempts were refused, never sent.
    assert_eq!(aws.hits(failing), 2, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(aws.hits(held), 1);
    r.stdout_has(&format!(
        "circuit breaker open for {service}: 2 attempts failed within 1m"
    ));
    assert!(
        r.stdout.contains("Result for t2: created 1")
            && r.stdout.contains("Result for t3: created 1"),
        "the other targets synced\n{}",
        r.stdout
    );
    r.stdout_has(&plan_counts("t3", 1, 0, 0, 0, 0));
    assert_eq!(
        transitions(&r, &service),
        ["opened", "half-open", "closed"],
        "{}",
        r.stderr
    );
    assert!(transitions(&r, &format!("aws/default/{R_OTHER}")).is_empty());
    for (region, t, n) in [(R_OPEN, "t1", 0), (R_OTHER, "t2", 1), (R_OPEN, "t3", 1)] {
        let listed = w.sm(region).list(&format!("{id}/{t}/")).await;
        assert_eq!(listed.len(), n, "{t}: {listed:?}");
    }
}

/// A `gcp_secretmanager` target whose endpoint refuses connections: its calls are attempts of
/// `gcp/<project>` like any other backend's. With the breaker, its second failed attempt opens
/// it and the attempts left are refused without being made (the target's call count says how
/// many were made); without it, every call makes all `retries.gcp_max_attempts`.
#[tokio::test]
async fn a_gcp_endpoint_that_refuses_connections_opens_its_breaker() {
    let w = World::from_env().await;
    let id = unique("brkgcp");
    w.put(&format!("{id}/base/a"), json!({ "k": "v" })).await;
    let project = unique("brk-gcp-");
    let endpoint = support_sync::closed_address().replace("http://", "https://");
    let config = |breaker: &str| {
        w.config(&format!(
            "owner: {id}
vault_sources:
  - mount: secret/{id}/base/
    name: base
retries: {{ gcp_max_attempts: 4 }}
{breaker}
targets:
  - name: gcp
    type: gcp_secretmanager
    project: {project}
    endpoint: {endpoint}
    auth: {{ token: not-a-real-token }}
    imports: [base]
"
        ))
    };
    let calls = |r: &Run| {
        let doc = r.json();
        doc["targets"][0]["result"]["aws_calls"]
            .as_u64()
            .unwrap_or_else(|| panic!("a call count in {doc:#}"))
    };
    let on = config("circuit_breaker: { failure_threshold: 2, window: 1m, timeout: 1h }");
    let r = w.pipeline_env(&on, &["--output", "json"], &[]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let service = format!("gcp/{project}");
    assert!(
        r.stderr.contains(&format!(
            "circuit breaker open for {service}: 2 attempts failed within 1m"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(transitions(&r, &service), ["opened"], "{}", r.stderr);
    let made = calls(&r);
    assert!((2..4).contains(&made), "{made} attempts made\n{}", r.stderr);

    let off = config("circuit_breaker: { enabled: false }");
    let r = w.pipeline_env(&off, &["--output", "json"], &[]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("circuit breaker"), "{}", r.stderr);
    let made = calls(&r);
    assert!(
        made >= 4 && made % 4 == 0,
        "{made} attempts: each call makes gcp_max_attempts (4)\n{}",
        r.stderr
    );
}
