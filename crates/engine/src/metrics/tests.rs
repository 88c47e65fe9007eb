use std::time::{Duration, SystemTime};

use secretsync_core::diff::{ChangeKind, SecretChange, TargetPlan};

use super::*;
use crate::observe::{Endpoint, Observers};
use crate::targets::ApplyReport;

/// The samples of the exposition as `name{labels} value` lines (comments left out), for
/// exact comparisons.
fn samples(m: &Metrics) -> Vec<String> {
    m.encode()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The one test helper: every line of `want` is a sample of `m`, and no sample of a family
/// named in `absent` exists.
#[track_caller]
fn check(m: &Metrics, want: &[&str], absent: &[&str]) {
    let have = samples(m);
    for w in want {
        assert!(
            have.iter().any(|h| h == w),
            "missing sample {w}\n{}",
            have.join("\n")
        );
    }
    for a in absent {
        assert!(
            !have
                .iter()
                .any(|h| h.starts_with(&format!("{a}{{")) || h.starts_with(&format!("{a} "))),
            "unexpected {a}\n{}",
            have.join("\n")
        );
    }
}

fn attempt(obs: &Observers, e: &Endpoint, op: &str, outcome: Outcome, pagination: bool) {
    obs.attempt(&Attempt {
        endpoint: e,
        operation: op,
        request_id: "0123456789abcdef",
        backend_request_id: None,
        attempt: 1,
        elapsed: Duration::from_millis(3),
        outcome,
        pagination,
    });
}

#[test]
fn every_attempt_is_counted_by_operation_and_outcome() {
    let m = Metrics::new();
    let obs = Observers::new(vec![Arc::new(m.clone())]);
    let vault = Endpoint::vault("http://127.0.0.1:8200");
    let sm = Endpoint::aws("secretsmanager", "123456789012", "eu-west-1");
    attempt(&obs, &vault, "kv.read", Outcome::Ok, false);
    attempt(&obs, &vault, "kv.read", Outcome::Ok, false);
    attempt(&obs, &vault, "kv.read", Outcome::Failed, false);
    attempt(&obs, &vault, "kv.list", Outcome::Throttled, false);
    attempt(&obs, &sm, "ListSecrets", Outcome::Ok, false);
    attempt(&obs, &sm, "ListSecrets", Outcome::Ok, true);
    attempt(&obs, &sm, "ListSecrets", Outcome::Ok, true);
    attempt(&obs, &sm, "PutSecretValue", Outcome::Throttled, false);
    attempt(&obs, &sm, "PutSecretValue", Outcome::Refused, false);
    check(
        &m,
        &[
            r#"secretsync_vault_requests_total{operation="kv.read",outcome="ok"} 2"#,
            r#"secretsync_vault_requests_total{operation="kv.read",outcome="failed"} 1"#,
            r#"secretsync_vault_requests_total{operation="kv.list",outcome="throttled"} 1"#,
            r#"secretsync_vault_errors_total{operation="kv.read",outcome="failed"} 1"#,
            r#"secretsync_vault_errors_total{operation="kv.list",outcome="throttled"} 1"#,
            r#"secretsync_vault_request_duration_seconds_count{operation="kv.read"} 3"#,
            r#"secretsync_vault_request_duration_seconds_bucket{operation="kv.read",le="0.005"} 3"#,
            r#"secretsync_vault_request_duration_seconds_bucket{operation="kv.read",le="0.0025"} 0"#,
            r#"secretsync_aws_requests_total{operation="ListSecrets",outcome="ok",service="secretsmanager"} 3"#,
            r#"secretsync_aws_requests_total{operation="PutSecretValue",outcome="refused",service="secretsmanager"} 1"#,
            r#"secretsync_aws_errors_total{operation="PutSecretValue",outcome="throttled",service="secretsmanager"} 1"#,
            r#"secretsync_aws_errors_total{operation="PutSecretValue",outcome="refused",service="secretsmanager"} 1"#,
            r#"secretsync_aws_pagination_calls_total{operation="ListSecrets",service="secretsmanager"} 2"#,
            r#"secretsync_aws_request_duration_seconds_count{operation="ListSecrets",service="secretsmanager"} 3"#,
            r#"secretsync_throttled_total{backend="vault"} 1"#,
            r#"secretsync_throttled_total{backend="aws"} 1"#,
            &format!(
                r#"secretsync_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
        ],
        &[],
    );
    // Successes are not errors.
    for l in samples(&m) {
        assert!(
            !(l.contains("_errors_total{") && l.contains(r#"outcome="ok""#)),
            "{l}"
        );
    }
}

#[test]
fn the_other_destinations_are_counted_by_backend() {
    let m = Metrics::new();
    let obs = Observers::new(vec![Arc::new(m.clone())]);
    let gcp = Endpoint::gcp("my-project");
    let azure = Endpoint::azure("v.vault.azure.net");
    let hook = Endpoint::webhook("hooks.example");
    let plugin = Endpoint::plugin("custom");
    attempt(&obs, &gcp, "CreateSecret", Outcome::Ok, false);
    attempt(&obs, &gcp, "CreateSecret", Outcome::Throttled, false);
    attempt(&obs, &azure, "set_secret", Outcome::Failed, false);
    attempt(&obs, &hook, "POST", Outcome::Ok, false);
    attempt(&obs, &plugin, "write", Outcome::Refused, false);
    check(
        &m,
        &[
            r#"secretsync_destination_requests_total{backend="gcp",operation="CreateSecret",outcome="ok"} 1"#,
            r#"secretsync_destination_requests_total{backend="gcp",operation="CreateSecret",outcome="throttled"} 1"#,
            r#"secretsync_destination_errors_total{backend="gcp",operation="CreateSecret",outcome="throttled"} 1"#,
            r#"secretsync_destination_requests_total{backend="azure",operation="set_secret",outcome="failed"} 1"#,
            r#"secretsync_destination_errors_total{backend="azure",operation="set_secret",outcome="failed"} 1"#,
            r#"secretsync_destination_requests_total{backend="webhook",operation="POST",outcome="ok"} 1"#,
            r#"secretsync_destination_requests_total{backend="plugin",operation="write",outcome="refused"} 1"#,
            r#"secretsync_destination_request_duration_seconds_count{backend="gcp",operation="CreateSecret"} 2"#,
            r#"secretsync_throttled_total{backend="gcp"} 1"#,
        ],
        &[
            "secretsync_aws_requests_total",
            "secretsync_vault_requests_total",
        ],
    );
}

#[test]
fn breaker_state_is_one_for_the_current_state_only() {
    let m = Metrics::new();
    m.set_breaker_state("aws/123456789012/eu-west-1", BreakerState::Closed);
    m.set_breaker_state("vault/http://127.0.0.1:8200", BreakerState::Open);
    m.set_breaker_state("vault/http://127.0.0.1:8200", BreakerState::HalfOpen);
    check(
        &m,
        &[
            r#"secretsync_circuit_breaker_state{service="aws/123456789012/eu-west-1",state="closed"} 1"#,
            r#"secretsync_circuit_breaker_state{service="aws/123456789012/eu-west-1",state="open"} 0"#,
            r#"secretsync_circuit_breaker_state{service="aws/123456789012/eu-west-1",state="half_open"} 0"#,
            r#"secretsync_circuit_breaker_state{service="vault/http://127.0.0.1:8200",state="closed"} 0"#,
            r#"secretsync_circuit_breaker_state{service="vault/http://127.0.0.1:8200",state="open"} 0"#,
            r#"secretsync_circuit_breaker_state{service="vault/http://127.0.0.1:8200",state="half_open"} 1"#,
        ],
        &[],
    );
}

fn change(name: &str, kind: ChangeKind) -> SecretChange {
    SecretChange {
        path: name.to_string(),
        name: name.to_string(),
        kind,
        reason: None,
        invalid: false,
        keys: Vec::new(),
        restore: false,
        adopt: false,
        retag: false,
        old_version: None,
        new_version: None,
        old_tags: Default::default(),
        old_value: None,
        new_value: None,
        fingerprint: None,
        settings: Vec::new(),
        old_numbered: None,
        new_numbered: None,
        reuse_version: None,
        pinned: None,
    }
}

fn outcome(name: &str, changes: Vec<SecretChange>, report: Option<ApplyReport>) -> TargetOutcome {
    TargetOutcome {
        name: name.to_string(),
        plan: Some(std::sync::Arc::new(TargetPlan {
            target: name.to_string(),
            changes,
            orphans_kept: Vec::new(),
            refused: None,
            deletions_held: None,
            policy: Default::default(),
        })),
        report,
        error: None,
        error_kind: None,
        not_started: false,
        calls: 0,
        duration: Duration::ZERO,
    }
}

#[test]
fn targets_record_changes_synced_secrets_and_failures() {
    let m = Metrics::new();
    let changes = vec![
        change("p/a", ChangeKind::Added),
        change("p/b", ChangeKind::Modified),
        change("p/c", ChangeKind::Deleted),
        change("p/d", ChangeKind::Unchanged),
        change("p/e", ChangeKind::Skipped),
    ];
    let ok = outcome(
        "prod",
        changes.clone(),
        Some(ApplyReport {
            created: 1,
            updated: 1,
            deleted: 1,
            left_changed: vec!["p/a".into(), "p/b".into(), "p/c".into()],
            ..ApplyReport::default()
        }),
    );
    // A failed write after one creation, rolled back.
    let failed = outcome(
        "stage",
        changes,
        Some(ApplyReport {
            created: 1,
            failure: Some("boom".into()),
            rolled_back: 1,
            ..ApplyReport::default()
        }),
    );
    let mut plan_failed = outcome("dev", Vec::new(), None);
    plan_failed.plan = None;
    plan_failed.error = Some("permission denied".into());
    let mut not_started = outcome("later", Vec::new(), None);
    not_started.plan = None;
    not_started.not_started = true;

    struct Nothing;
    impl Reporter for Nothing {}
    let mut inner = Nothing;
    let mut r = m.reporting(&mut inner);
    for t in [&ok, &failed, &plan_failed, &not_started] {
        if let Some(p) = &t.plan {
            r.planned(&t.name, p);
        }
        r.finished(t);
    }
    assert_eq!(failure_reason(&ok), None);
    check(
        &m,
        &[
            r#"secretsync_changes_total{kind="created",target="prod"} 1"#,
            r#"secretsync_changes_total{kind="updated",target="prod"} 1"#,
            r#"secretsync_changes_total{kind="deleted",target="prod"} 1"#,
            r#"secretsync_changes_total{kind="retagged",target="prod"} 0"#,
            r#"secretsync_secrets_synced_total{target="prod"} 2"#,
            r#"secretsync_rolled_back_total{target="prod"} 0"#,
            r#"secretsync_planned_changes{kind="add",target="prod"} 1"#,
            r#"secretsync_planned_changes{kind="modify",target="prod"} 1"#,
            r#"secretsync_planned_changes{kind="delete",target="prod"} 1"#,
            r#"secretsync_planned_changes{kind="unchanged",target="prod"} 1"#,
            r#"secretsync_planned_changes{kind="skipped",target="prod"} 1"#,
            r#"secretsync_changes_total{kind="created",target="stage"} 1"#,
            r#"secretsync_secrets_synced_total{target="stage"} 0"#,
            r#"secretsync_rolled_back_total{target="stage"} 1"#,
            r#"secretsync_target_failures_total{reason="apply",target="stage"} 1"#,
            r#"secretsync_target_failures_total{reason="plan",target="dev"} 1"#,
            r#"secretsync_secrets_synced_total{target="dev"} 0"#,
            r#"secretsync_target_failures_total{reason="not_started",target="later"} 1"#,
        ],
        &[],
    );
    let text = m.encode().unwrap();
    assert!(!text.contains(r#"reason="apply",target="prod""#), "{text}");
    assert_eq!(text.matches("secretsync_target_failures_total{").count(), 3);
}

#[test]
fn ready_once_set_up_and_every_needed_backend_answered() {
    let m = Metrics::new();
    let obs = Observers::new(vec![Arc::new(m.clone())]);
    let vault = Endpoint::vault("http://127.0.0.1:8200");
    let s3 = Endpoint::aws("s3", "default", "us-east-1");
    // The Vault login answers during the setup.
    attempt(&obs, &vault, "auth.lookup-self", Outcome::Ok, false);
    assert!(m.readiness().unwrap_err().starts_with("connecting"));
    m.setup_done(true, true, Duration::from_millis(5));
    assert_eq!(m.readiness(), Err("waiting for AWS to answer".to_string()));
    // A connection failure is no answer; a refusal is.
    attempt(&obs, &s3, "GetObject", Outcome::Failed, false);
    assert!(m.readiness().is_err());
    attempt(&obs, &s3, "GetObject", Outcome::Refused, false);
    assert_eq!(m.readiness(), Ok(()));
    check(
        &m,
        &[r#"secretsync_pipeline_duration_seconds_count{phase="setup"} 1"#],
        &[],
    );

    let merge_only = Metrics::new();
    merge_only.setup_done(true, false, Duration::ZERO);
    assert_eq!(
        merge_only.readiness(),
        Err("waiting for Vault to answer".to_string())
    );
}

#[test]
fn run_end_sets_last_run_and_last_success() {
    let m = Metrics::new();
    m.sources_read([&Collected::default()]);
    check(
        &m,
        &["secretsync_vault_secrets_total 0"],
        &[
            "secretsync_last_run_success",
            "secretsync_last_success_timestamp_seconds",
        ],
    );
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let failed = Metrics::new();
    failed.run_finished(false, Duration::from_secs(2), at);
    check(
        &failed,
        &[
            "secretsync_last_run_success 0",
            r#"secretsync_pipeline_duration_seconds_count{phase="total"} 1"#,
        ],
        &["secretsync_last_success_timestamp_seconds"],
    );
    m.phase(Phase::Merge, Duration::from_secs(1));
    m.phase(Phase::Sync, Duration::from_secs(1));
    m.run_finished(true, Duration::from_secs(2), at);
    check(
        &m,
        &[
            "secretsync_last_run_success 1",
            "secretsync_last_success_timestamp_seconds 1700000000",
            r#"secretsync_pipeline_duration_seconds_count{phase="merge"} 1"#,
            r#"secretsync_pipeline_duration_seconds_count{phase="sync"} 1"#,
            r#"secretsync_pipeline_duration_seconds_count{phase="total"} 1"#,
        ],
        &[],
    );
}

#[test]
fn off_records_nothing() {
    let m = Metrics::off();
    assert!(!m.is_on());
    let obs = Observers::new(vec![Arc::new(m.clone())]);
    attempt(&obs, &Endpoint::vault("x"), "kv.read", Outcome::Ok, false);
    m.set_breaker_state("vault/x", BreakerState::Open);
    m.setup_done(true, true, Duration::ZERO);
    m.run_finished(true, Duration::ZERO, SystemTime::now());
    assert_eq!(m.encode().unwrap(), "");
    assert!(m.readiness().is_err());
}

#[test]
fn readiness_waits_for_aws_only_where_the_run_uses_it() {
    let yaml = "vault_sources:
  - mount: secret/base/
targets:
  - name: sm
    type: aws_secretsmanager
    region: us-east-1
    imports: [base]
  - name: kv
    type: vault_kv2
    address: https://vault2.example
    auth: { token: { token: t } }
    mount: synced/
    imports: [base]
";
    let loaded = secretsync_core::config::load(yaml, &|_| None);
    let c = loaded
        .config
        .unwrap_or_else(|| panic!("{}", loaded.diagnostics));
    let (sm, kv) = ("sm".to_string(), "kv".to_string());
    assert!(uses_aws(&c, [&sm, &kv]));
    assert!(uses_aws(&c, [&sm]));
    assert!(!uses_aws(&c, [&kv]));
    assert!(!uses_aws(&c, []));
}
