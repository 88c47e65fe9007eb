//! Notifications, end to end: real runs (OpenBao → moto) POST to webhook receivers started by
//! the tests. A failed run's Slack message arrives signed (the HMAC is recomputed here, from
//! the bytes received) and holds no value, fingerprint or token; `changes` and `drift` fire
//! only for what the run did; a failing hook is retried with one delivery id, and a hook that
//! never answers is a warning that changes nothing of the run's result.

mod support_sync;

use secretsync_test_support::http::Response;
use secretsync_test_support::proxy::{Action, Proxy, Recorder, Rule};
use serde_json::{Value, json};
use support_sync::*;

const REGION: &str = "ap-northeast-3";

fn ok() -> Response {
    Response::new(200, "ok")
}

/// A receiver's URL with a path that looks like a Slack hook's (its credential).
fn hook(r: &Recorder, secret_path: &str) -> String {
    format!("{}/services/{secret_path}", r.url())
}

/// `ok` and `refused` on one source; a policy refuses `refused`.
fn two_targets(world: &World, id: &str, notifications: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("notify-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let rego = dir.join("freeze.rego");
    std::fs::write(
        &rego,
        "package secretsync\n\ndeny contains msg if {\n  input.target.name == \"refused\"\n  msg := \"target refused is frozen until the audit ends\"\n}\n",
    )
    .unwrap();
    world.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: ok
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/ok/
    imports: [base]
  - name: refused
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/refused/
    imports: [base]
policies:
  - path: {rego}
notifications:
{notifications}",
        rego = rego.display()
    ))
}

#[tokio::test]
async fn a_failed_run_sends_a_signed_slack_message_without_values() {
    let world = World::from_env().await;
    let id = unique("ntf");
    let value = "sentinel-notify-value-7c1d";
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": value}),
        )
        .await;
    let r = Recorder::start(ok());
    let cfg = two_targets(
        &world,
        &id,
        &format!(
            "  - url: {}
    format: slack
    on: [failure]
    secret: ${{HOOK_SECRET}}
",
            hook(&r, "T000/B000/hook-path-credential")
        ),
    );
    let run = world.pipeline_env(&cfg, &[], &[("HOOK_SECRET", "the-hmac-key")]);
    // The policy refused one target: the run failed, and the notification changed nothing of
    // that.
    run.code(1).stdout_has("target refused is frozen");
    assert!(
        !run.stderr.contains("hook-path-credential"),
        "the hook's path was logged:\n{}",
        run.stderr
    );

    let got = r.requests();
    assert_eq!(got.len(), 1, "one notification: {got:?}");
    let req = &got[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path(), "/services/T000/B000/hook-path-credential");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(
        req.header("x-secretsync-delivery")
            .is_some_and(|d| d.len() == 36)
    );
    assert_eq!(
        req.header("x-secretsync-signature"),
        Some(format!("sha256={}", hmac_sha256(b"the-hmac-key", &req.body)).as_str()),
        "the signature is the HMAC of the bytes sent"
    );
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert_eq!(
        text,
        "SecretSync pipeline failed: 2 targets, 1 failed, 1 created, 0 updated, 0 deleted"
    );
    let blocks = body["blocks"].to_string();
    assert!(blocks.contains("SecretSync pipeline: failed"), "{blocks}");
    assert!(
        blocks.contains("*refused* (denied): `denied by policy, so nothing is written to target 'refused': target refused is frozen until the audit ends`"),
        "the failed target and its reason: {blocks}"
    );
    assert!(blocks.contains("*ok*: 1 created"), "{blocks}");

    // `validate` names the hook by its host only.
    let v = world.run(
        &[
            "validate".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        &[("HOOK_SECRET", "the-hmac-key")],
    );
    v.success()
        .stdout_has(&format!("1 notification ({})", r.url()))
        .stdout_lacks("hook-path-credential");

    // `policy test` is a check, not a run: no notification.
    let check = world.run(
        &[
            "policy".into(),
            "test".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        &[("HOOK_SECRET", "the-hmac-key")],
    );
    check.code(1).stdout_has("refused: DENIED");
    assert_eq!(r.requests().len(), 1, "policy test notified");

    // Never a value, a fingerprint or a token.
    let raw = req.body_text();
    assert!(!raw.contains(value), "a value was sent: {raw}");
    assert!(
        !raw.contains(&world.vault_token),
        "the Vault token was sent"
    );
    let synced = world.sm(REGION).list(&format!("{id}/ok/")).await;
    assert_eq!(synced.len(), 1);
    for tag in synced.values().flat_map(|l| l.tags.values()) {
        if tag.len() >= 32 {
            assert!(
                !raw.contains(tag.as_str()),
                "a tag value (fingerprint) was sent: {tag}"
            );
        }
    }
}

#[tokio::test]
async fn changes_and_drift_notify_only_for_what_the_run_did() {
    let world = World::from_env().await;
    let id = unique("ntf");
    world
        .put(&format!("{id}/base/app/api"), json!({"key": "k-1"}))
        .await;
    let (changes, drift, failure) = (
        Recorder::start(ok()),
        Recorder::start(ok()),
        Recorder::start(ok()),
    );
    let cfg = world.config(&single_target(
        &id,
        REGION,
        &format!(
            "notifications:
  - url: {}/changes
    on: [changes]
  - url: {}/drift
    on: [drift]
  - url: {}/failure
",
            changes.url(),
            drift.url(),
            failure.url()
        ),
    ));

    // A dry run finds the target out of line: drift.
    world.pipeline(&cfg, &["--dry-run"]).success();
    assert_eq!(
        (
            changes.requests().len(),
            drift.requests().len(),
            failure.requests().len()
        ),
        (0, 1, 0)
    );
    let d: Value = serde_json::from_slice(&drift.requests()[0].body).unwrap();
    assert_eq!(d["schema"], 1);
    assert_eq!(d["event"], "run_finished");
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["result"], "success");
    assert_eq!(d["triggers"], json!(["drift"]));
    assert_eq!(d["totals"]["planned"], 1);
    assert_eq!(d["targets"][0]["target"], "t");
    assert_eq!(d["targets"][0]["status"], "planned");
    assert!(d["run_id"].as_str().is_some_and(|r| r.len() == 36));
    // Unsigned without a `secret`.
    assert!(
        drift.requests()[0]
            .header("x-secretsync-signature")
            .is_none()
    );

    // The real run changes it: changes.
    world.pipeline(&cfg, &[]).success();
    assert_eq!(
        (
            changes.requests().len(),
            drift.requests().len(),
            failure.requests().len()
        ),
        (1, 1, 0)
    );
    let c: Value = serde_json::from_slice(&changes.requests()[0].body).unwrap();
    assert_eq!(c["triggers"], json!(["changes"]));
    assert_eq!(
        (
            c["totals"]["created"].as_u64(),
            c["targets"][0]["status"].as_str()
        ),
        (Some(1), Some("applied"))
    );
    assert_eq!(
        c["summary"],
        "SecretSync pipeline succeeded: 1 target, 1 created, 0 updated, 0 deleted"
    );

    // Nothing left to do: no notification at all.
    world.pipeline(&cfg, &[]).success();
    world.pipeline(&cfg, &["--dry-run"]).success();
    assert_eq!(
        (
            changes.requests().len(),
            drift.requests().len(),
            failure.requests().len()
        ),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn a_failing_hook_is_retried_and_a_dead_one_is_only_a_warning() {
    let world = World::from_env().await;
    let id = unique("ntf");
    world
        .put(&format!("{id}/base/app/api"), json!({"key": "k-1"}))
        .await;
    let flaky = Recorder::scripted(
        vec![
            Response::new(500, "boom"),
            Response::new(503, "busy").with_header("retry-after", "1"),
        ],
        ok(),
    );
    let dead = Recorder::start(Response::new(500, "down"));
    let refusing = Recorder::start(Response::new(404, "no such hook"));
    let cfg = world.config(&single_target(
        &id,
        REGION,
        &format!(
            "notifications:
  - url: {}
    on: [changes]
    secret: s
  - url: {}
    on: [changes]
    max_attempts: 2
  - url: {}
    on: [changes]
",
            hook(&flaky, "flaky"),
            hook(&dead, "dead-hook-credential"),
            hook(&refusing, "gone")
        ),
    ));
    let run = world.pipeline(&cfg, &[]);
    // The sync succeeded; the dead hooks are warnings.
    run.success()
        .stderr_has("notification not delivered (the run's result stands): the hook answered 500 Internal Server Error (2 attempts")
        .stderr_has("notification not delivered (the run's result stands): the hook answered 404 Not Found (1 attempt");
    assert!(
        !run.stderr.contains("dead-hook-credential"),
        "a hook's path was logged:\n{}",
        run.stderr
    );
    assert_eq!(world.sm(REGION).list(&format!("{id}/t/")).await.len(), 1);

    // Three attempts, one delivery id, the same signed body each time.
    let tries = flaky.requests();
    assert_eq!(tries.len(), 3);
    let ids: Vec<_> = tries
        .iter()
        .map(|t| t.header("x-secretsync-delivery"))
        .collect();
    assert!(ids.iter().all(|i| i.is_some() && *i == ids[0]), "{ids:?}");
    let attempts: Vec<_> = tries
        .iter()
        .map(|t| t.header("x-secretsync-attempt"))
        .collect();
    assert_eq!(attempts, [Some("1"), Some("2"), Some("3")]);
    assert!(tries.iter().all(|t| t.body == tries[0].body));
    assert_eq!(dead.requests().len(), 2, "max_attempts: 2");
    assert_eq!(refusing.requests().len(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn a_run_that_stops_before_its_targets_still_notifies_failure() {
    let world = World::from_env().await;
    let id = unique("ntf");
    let r = Recorder::start(ok());
    let cfg = world.config(&single_target(
        &id,
        REGION,
        &format!("notifications:\n  - url: {}\n    on: [failure]\n", r.url()),
    ));
    // A wrong Vault token: the run fails at login, before any target.
    let run = world.pipeline_env(
        &cfg,
        &[],
        &[("VAULT_TOKEN", "not-a-valid-token-0123456789")],
    );
    run.code(1);
    let got = r.requests();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["result"], "failure");
    assert_eq!(body["triggers"], json!(["failure"]));
    assert_eq!(body["targets"], json!([]));
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(!got[0].body_text().contains("not-a-valid-token-0123456789"));
}

#[tokio::test]
async fn a_hook_that_never_answers_is_given_up_after_its_timeout() {
    let world = World::from_env().await;
    let id = unique("ntf");
    world
        .put(&format!("{id}/base/app/api"), json!({"key": "k-1"}))
        .await;
    // The receiver gets each POST; its answer never comes back.
    let receiver = Recorder::start(ok());
    let stalling = Proxy::start(&receiver.url());
    stalling.add(Rule::any().then(Action::StallAfterForward));
    let cfg = world.config(&single_target(
        &id,
        REGION,
        &format!(
            "notifications:\n  - url: {}/hook\n    on: [changes]\n    timeout: 1s\n    max_attempts: 2\n",
            stalling.url()
        ),
    ));
    let run = world.pipeline(&cfg, &[]);
    // The configured timeout (not the 10 s default) ended each attempt; the run's result stands.
    run.success().stderr_has(
        "notification not delivered (the run's result stands): no answer within 1s (2 attempts",
    );
    assert_eq!(receiver.requests().len(), 2, "one POST per attempt");
    assert_eq!(world.sm(REGION).list(&format!("{id}/t/")).await.len(), 1);
}
