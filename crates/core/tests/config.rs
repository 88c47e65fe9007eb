//! The config loader through the crate's public API: YAML text (and an environment) in,
//! typed [`Config`] or rendered diagnostics out.
//!
//! [`check`] renders every diagnostic of one load, one per line, followed by whether a
//! config came out (`=> accepted` / `=> rejected`); most tests snapshot that text. Tests that
//! need the typed config use [`accepted`]. Both go through [`load`], the single caller of
//! `config::load`.

use std::fmt::Write as _;
use std::time::Duration;

use secretsync_core::config::{
    self, AccountState, AwsSmSettings, CircuitBreakerConfig, Config, DiscoveryConfig,
    DiscoveryFilter, DiscoveryKind, Loaded, MergeStoreConfig, MetricsConfig, SourceConfig,
    TargetBackend, TargetConfig, TargetTemplate, VaultAuth,
};
use secretsync_core::graph::Import;
use serde_json::json;

/// A value that must never show up in a diagnostic or a `Debug` rendering.
const SENTINEL: &str = "sentinel-secret-7f3a";

const DESIGN_EXAMPLE: &str = include_str!("fixtures/design-example.yaml");

/// The environment the design example needs.
const APPROLE_ENV: &[(&str, &str)] = &[
    ("VAULT_ROLE_ID", "role-id-0001"),
    ("VAULT_SECRET_ID", SENTINEL),
];

fn load(yaml: &str, env: &[(&str, &str)]) -> Loaded {
    let lookup = |k: &str| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    };
    config::load(yaml, &lookup)
}

/// Every diagnostic of one load, one per line, then `=> accepted` or `=> rejected`.
fn check(yaml: &str, env: &[(&str, &str)]) -> String {
    let loaded = load(yaml, env);
    let mut out = String::new();
    for d in &loaded.diagnostics.0 {
        writeln!(out, "{d}").unwrap();
    }
    let verdict = if loaded.config.is_some() {
        "accepted"
    } else {
        "rejected"
    };
    writeln!(out, "=> {verdict}").unwrap();
    // A config comes out exactly when there are no errors.
    assert_eq!(
        loaded.config.is_some(),
        !loaded.diagnostics.has_errors(),
        "{out}"
    );
    out
}

/// The typed config of a load that must succeed without any diagnostic, warnings included.
fn accepted(yaml: &str, env: &[(&str, &str)]) -> Config {
    let loaded = load(yaml, env);
    assert!(
        loaded.diagnostics.0.is_empty(),
        "unexpected diagnostics:\n{}",
        loaded.diagnostics
    );
    loaded.config.expect("no errors, so a config")
}

/// The typed config of a load that must succeed; warnings are allowed (the design example
/// warns about the blocks that are not active yet).
fn accepted_with_warnings(yaml: &str, env: &[(&str, &str)]) -> Config {
    let loaded = load(yaml, env);
    assert!(
        !loaded.diagnostics.has_errors(),
        "unexpected errors:\n{}",
        loaded.diagnostics
    );
    loaded.config.expect("no errors, so a config")
}

/// Strips the first newline and the common indentation, so that line 1 of the YAML is the
/// first line after `r#"` and line numbers in diagnostics match what the test shows.
fn yaml(s: &str) -> String {
    let s = s.strip_prefix('\n').unwrap_or(s);
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// [`check`] of a YAML document written in a test (see [`yaml`]), with an empty environment.
fn diagnose(src: &str) -> String {
    check(&yaml(src), &[])
}

/// A small valid config: one source `base`, one target `prod` importing it.
const MINIMAL: &str = "\
vault_sources:
  - mount: secret/base/
targets:
  - name: prod
    type: aws_secretsmanager
    region: us-east-1
    imports: [base]
";

// ---------------------------------------------------------------------------------------
// 1. The documented example.

#[test]
fn design_example_loads_with_warnings_for_the_inactive_blocks_only() {
    let out = check(DESIGN_EXAMPLE, APPROLE_ENV);
    assert!(out.ends_with("=> accepted\n"), "{out}");
    // Only `discovery`: `metrics` and `circuit_breaker` are active.
    assert_eq!(out.matches("warning at").count(), 1, "{out}");
    assert!(!out.contains("`metrics`"), "{out}");
    assert!(!out.contains("`circuit_breaker`"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn design_example_without_its_env_names_both_variables() {
    let out = check(DESIGN_EXAMPLE, &[]);
    assert!(out.contains("`VAULT_ROLE_ID` is not set"), "{out}");
    assert!(out.contains("`VAULT_SECRET_ID` is not set"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn design_example_means_what_it_says() {
    let c = accepted_with_warnings(DESIGN_EXAMPLE, APPROLE_ENV);

    assert_eq!(
        c.vault.address.as_deref(),
        Some("https://vault.example.com")
    );
    assert_eq!(c.vault.namespace, None);
    match &c.vault.auth {
        Some(VaultAuth::AppRole {
            role_id,
            secret_id,
            mount,
        }) => {
            assert_eq!(role_id.expose(), "role-id-0001");
            assert_eq!(secret_id.expose(), SENTINEL);
            assert_eq!(mount, "approle");
        }
        other => panic!("expected AppRole auth, got {other:?}"),
    }

    assert_eq!(
        c.sources,
        [
            SourceConfig {
                name: "base".into(),
                mount: "secret/base/".into(),
                max_secrets: 10_000,
                queue_compaction_threshold: 500,
                max_depth: config::DEFAULT_MAX_DEPTH,
            },
            SourceConfig {
                name: "production".into(),
                mount: "secret/production/".into(),
                max_secrets: 5_000,
                // min(1000, 5000 / 100)
                queue_compaction_threshold: 50,
                max_depth: config::DEFAULT_MAX_DEPTH,
            },
        ]
    );

    assert_eq!(
        c.merge_store,
        Some(MergeStoreConfig::S3 {
            bucket: "my-secrets-merge-store".into(),
            prefix: "merged/".into(),
            region: Some("us-east-1".into()),
            kms_key_id: None,
        })
    );

    let aws = |region: &str, role_arn: &str| {
        TargetBackend::AwsSecretsManager(AwsSmSettings {
            region: region.into(),
            role_arn: Some(role_arn.into()),
            external_id: None,
            deletion_recovery_days: config::DEFAULT_RECOVERY_DAYS,
            force_delete: false,
            ..Default::default()
        })
    };
    let overrides = |env: &str| match json!({ "environment": env }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    assert_eq!(
        c.targets,
        [
            TargetConfig {
                name: "production-us-east-1".into(),
                imports: vec!["base".into(), "production".into()],
                overrides: overrides("production"),
                policy: config::TargetPolicy::default(),
                backend: aws("us-east-1", "arn:aws:iam::123456789012:role/SecretSync"),
                transform: Vec::new(),
            },
            TargetConfig {
                name: "staging-us-west-2".into(),
                imports: vec!["production-us-east-1".into()],
                overrides: overrides("staging"),
                policy: config::TargetPolicy::default(),
                backend: aws("us-west-2", "arn:aws:iam::987654321098:role/SecretSync"),
                transform: Vec::new(),
            },
        ]
    );

    assert_eq!(c.graph.order, ["production-us-east-1", "staging-us-west-2"]);
    assert_eq!(
        c.graph.levels,
        [["production-us-east-1"], ["staging-us-west-2"]]
    );
    assert_eq!(
        c.graph.imports["production-us-east-1"],
        [
            Import::Source("base".into()),
            Import::Source("production".into())
        ]
    );
    assert_eq!(
        c.graph.imports["staging-us-west-2"],
        [Import::Target("production-us-east-1".into())]
    );

    assert_eq!(
        c.discovery,
        [DiscoveryConfig {
            kind: DiscoveryKind::AwsOrganizations,
            filters: vec![
                DiscoveryFilter::Tag {
                    key: "Environment".into(),
                    values: vec!["production".into(), "staging".into()],
                },
                DiscoveryFilter::Ou {
                    id: "ou-prod-xxxx".into(),
                    include_nested: true,
                },
            ],
            match_all: true,
            role_arn: Some("arn:aws:iam::123456789012:role/OrgDiscovery".into()),
            external_id: None,
            region: None,
            states: vec![AccountState::Active],
            include_accounts: vec![],
            exclude_accounts: vec![],
            permission_sets: vec![],
            groups: vec![],
            cache_ttl: Duration::from_secs(3600),
            template: TargetTemplate {
                name: "{account_name}-{region}".into(),
                regions: vec!["us-east-1".into()],
                role_arn: "arn:aws:iam::{account_id}:role/SecretSync".into(),
                external_id: None,
                imports: vec![],
                overrides: serde_json::Map::new(),
                policy: config::TargetPolicy::default(),
            },
        }]
    );

    // Parsed as written; metrics are on (served on the default port), and so is the circuit
    // breaker.
    assert_eq!(
        c.metrics,
        MetricsConfig {
            requested: true,
            serve: true,
            address: "0.0.0.0".parse().unwrap(),
            port: 9090,
            path: "/metrics".into(),
            push_url: None,
        }
    );
    assert!(c.metrics.active());
    assert!(c.circuit_breaker.active());
    assert_eq!(
        c.circuit_breaker,
        CircuitBreakerConfig {
            requested: true,
            failure_threshold: 5,
            timeout: Duration::from_secs(30),
            max_requests: 1,
            window: Duration::from_secs(10),
        }
    );
}

/// Blocks for features this version lacks warn (with their line) unless switched off, and the
/// typed config never claims they run.
#[test]
fn inactive_blocks_warn_unless_switched_off() {
    let on = format!(
        "{MINIMAL}discovery: {{ type: aws_organizations }}\nmetrics: {{ port: 9100 }}\ncircuit_breaker:\n  timeout: 5s\n"
    );
    let out = check(&on, &[]);
    insta::assert_snapshot!(out, @r"
    warning at line 8, column 12 (`discovery.target_template`): discovery has no `target_template`: each account becomes a target `{account_name}-us-east-1` through `arn:aws:iam::{account_id}:role/SecretSync` that imports nothing; add `target_template: { regions: [...], imports: [...] }` (docs/discovery.md)
    => accepted
    ");
    let c = accepted_with_warnings(&on, &[]);
    // Metrics and the circuit breaker are active: their blocks no longer warn.
    assert!(c.circuit_breaker.requested && c.circuit_breaker.active());
    assert!(c.metrics.requested && c.metrics.active() && c.metrics.serve);
    assert_eq!(c.metrics.port, 9100);
    for shown in [
        format!("{:?}", c.circuit_breaker),
        format!("{:?}", c.metrics),
    ] {
        assert!(!shown.contains("enabled"), "{shown}");
    }

    let off = format!(
        "{MINIMAL}discovery: {{ enabled: false, type: aws_organizations }}\nmetrics: {{ enabled: false }}\ncircuit_breaker: {{ enabled: false }}\n"
    );
    let c = accepted(&off, &[]);
    assert!(c.discovery.is_empty());
    assert!(!c.circuit_breaker.requested && !c.metrics.requested);
    assert!(!c.metrics.active() && !c.metrics.serve);
    assert!(!c.circuit_breaker.active());
}

/// The example's metrics and circuit breaker values equal the defaults; prove the keys are
/// read, not ignored.
#[test]
fn non_default_values_are_used() {
    let c = accepted_with_warnings(
        &yaml(
            r#"
            vault:
              namespace: team-a
              concurrency: 4
              auth: { token: { token: tok } }
            vault_sources:
              - mount: kv/apps/payments
                name: pay
                max_secrets: 1000000
                max_depth: 3
              - mount: secret/
                max_secrets: 50
            merge_store: { type: vault, mount: kv/merged, prefix: runs }
            targets:
              - name: prod
                type: aws_secretsmanager
                region: eu-central-2
                external_id: ext-1
                secret_prefix: app/
                imports: [pay, secret]
                delete_orphans: true
                deletion_recovery_days: 7
                force_delete: true
                max_deletes: 5
                adopt: true
                adopt_from: [production, prod-old]
                max_delete_fraction: 0.25
                concurrency: 2
                writes_per_second: 10
            discovery:
              type: identity_center
              match: any
              region: eu-west-1
              statuses: [ACTIVE, SUSPENDED]
              cache_ttl: 1h30m
              filters: [ { permission_set: Admin }, { ou: r-abcd, include_nested: false } ]
              target_template:
                name: acct-{account_id}
                imports: [prod]
                role_arn: arn:aws:iam::{account_id}:role/Sync
                region: us-west-2
                secret_prefix: "{account_name}/"
                overrides: { tier: 2 }
            metrics: { enabled: false, address: "127.0.0.1", port: 9102, path: /prom, push_url: "http://gw.example:9091/" }
            circuit_breaker: { enabled: false, failure_threshold: 3, timeout: 1m, max_requests: 4, window: 2m30s }
            "#,
        ),
        &[],
    );
    assert_eq!(c.vault.namespace.as_deref(), Some("team-a"));
    assert_eq!(c.vault.concurrency, 4);
    assert!(matches!(&c.vault.auth, Some(VaultAuth::Token(Some(t))) if t.expose() == "tok"));
    assert_eq!(
        (c.sources[0].name.as_str(), c.sources[0].mount.as_str()),
        ("pay", "kv/apps/payments/")
    );
    // The threshold default is capped at 1000 and is at least 1.
    assert_eq!(
        c.sources
            .iter()
            .map(|s| (s.max_secrets, s.queue_compaction_threshold, s.max_depth))
            .collect::<Vec<_>>(),
        [(1_000_000, 1000, 3), (50, 1, config::DEFAULT_MAX_DEPTH)]
    );
    // A bare mount root works and is named after itself.
    assert_eq!(c.sources[1].name, "secret");
    assert_eq!(c.sources[1].mount, "secret/");
    assert_eq!(
        c.merge_store,
        Some(MergeStoreConfig::Vault {
            mount: "kv/merged/runs/".into()
        })
    );
    let TargetBackend::AwsSecretsManager(t) = &c.targets[0].backend else {
        panic!("an aws_secretsmanager target")
    };
    assert_eq!(
        t,
        &AwsSmSettings {
            region: "eu-central-2".into(),
            role_arn: None,
            external_id: Some("ext-1".into()),
            deletion_recovery_days: 7,
            force_delete: true,
            ..Default::default()
        }
    );
    assert_eq!(
        c.targets[0].policy,
        config::TargetPolicy {
            secret_prefix: "app/".into(),
            delete_orphans: true,
            max_deletes: 5,
            adopt: true,
            adopt_from: vec!["production".into(), "prod-old".into()],
            max_delete_fraction: 0.25,
            concurrency: 2,
            writes_per_second: 10,
        }
    );
    let d = c.discovery.first().expect("discovery");
    assert_eq!(d.kind, DiscoveryKind::IdentityCenter);
    assert!(!d.match_all);
    assert_eq!(d.region.as_deref(), Some("eu-west-1"));
    assert_eq!(d.states, [AccountState::Active, AccountState::Suspended]);
    assert_eq!(d.cache_ttl, Duration::from_secs(5400));
    assert_eq!(
        d.filters,
        [
            DiscoveryFilter::PermissionSet {
                name: "Admin".into()
            },
            DiscoveryFilter::Ou {
                id: "r-abcd".into(),
                include_nested: false
            },
        ]
    );
    assert_eq!(d.template.name, "acct-{account_id}");
    assert_eq!(d.template.imports, ["prod"]);
    assert_eq!(d.template.role_arn, "arn:aws:iam::{account_id}:role/Sync");
    assert_eq!(d.template.regions, ["us-west-2"]);
    assert_eq!(d.template.policy.secret_prefix, "{account_name}/");
    assert_eq!(d.template.overrides["tier"], json!(2));
    assert_eq!(
        c.metrics,
        MetricsConfig {
            requested: false,
            serve: false,
            address: "127.0.0.1".parse().unwrap(),
            port: 9102,
            path: "/prom".into(),
            push_url: Some("http://gw.example:9091".into()),
        }
    );
    assert_eq!(
        c.circuit_breaker,
        CircuitBreakerConfig {
            requested: false,
            failure_threshold: 3,
            timeout: Duration::from_secs(60),
            max_requests: 4,
            window: Duration::from_secs(150),
        }
    );
}

#[test]
fn minimal_config_gets_defaults() {
    let c = accepted(MINIMAL, &[]);
    assert_eq!(c.vault.address, None);
    assert!(c.vault.auth.is_none());
    assert_eq!(c.vault.concurrency, config::DEFAULT_VAULT_CONCURRENCY);
    assert_eq!(c.sources[0].max_secrets, config::DEFAULT_MAX_SECRETS);
    assert_eq!(c.sources[0].queue_compaction_threshold, 100);
    assert_eq!(c.merge_store, None);
    assert!(c.discovery.is_empty());
    assert_eq!(c.metrics, MetricsConfig::default());
    assert!(!c.metrics.requested && !c.metrics.active() && !c.metrics.serve);
    assert_eq!(
        c.metrics.address,
        "0.0.0.0".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(c.metrics.push_url, None);
    // Not reported as enabled when nobody asked for it, and never active.
    assert_eq!(c.circuit_breaker, CircuitBreakerConfig::default());
    assert!(!c.circuit_breaker.requested && !c.circuit_breaker.active());
}

/// `metrics:` switches serving and pushing on: a block with only `push_url` pushes without
/// opening a port; every bad key is reported in one load.
#[test]
fn metrics_serve_push_and_their_problems() {
    let push_only = accepted(
        &format!("{MINIMAL}metrics: {{ push_url: \"https://gw.example/base/\" }}\n"),
        &[],
    );
    assert!(push_only.metrics.active() && !push_only.metrics.serve);
    assert_eq!(
        push_only.metrics.push_url.as_deref(),
        Some("https://gw.example/base")
    );
    let both = accepted(
        &format!("{MINIMAL}metrics: {{ port: 9464, push_url: \"http://127.0.0.1:9091\" }}\n"),
        &[],
    );
    assert!(both.metrics.serve && both.metrics.push_url.is_some());
    assert_eq!(both.metrics.port, 9464);

    let out = check(
        &format!(
            "{MINIMAL}metrics:\n  address: localhost\n  path: /health\n  push_url: \"ftp://gw\"\n"
        ),
        &[],
    );
    insta::assert_snapshot!(out, @r"
    error at line 9, column 12 (`metrics.address`): `localhost` is not an IP address; write an IP address to listen on, e.g. `0.0.0.0` (every interface) or `127.0.0.1`
    error at line 10, column 9 (`metrics.path`): `/health` is served by the metrics endpoint itself; pick another path, e.g. `/metrics`
    error at line 11, column 13 (`metrics.push_url`): `ftp://gw` is not an http:// or https:// URL; write the Pushgateway's base URL, e.g. `http://pushgateway:9091`
    => rejected
    ");
    for (url, why) in [
        ("http://user:pw@gw:9091", "holds credentials"),
        ("http:///metrics", "has no host"),
        ("http://gw:9091/?x=1", "has a query or fragment"),
    ] {
        let err = config::check_push_url(url).unwrap_err();
        assert!(err.contains(why), "{url}: {err}");
        assert!(!err.contains("pw@"), "{err}");
    }
    assert_eq!(config::check_push_url("http://gw:9091/prefix"), Ok(()));
}

/// `retries:` sets the attempts per call; without it the defaults hold; 0, too many, and a
/// misspelt key are errors with their line.
#[test]
fn retries_attempts_and_their_problems() {
    let d = accepted(MINIMAL, &[]).retries;
    assert_eq!((d.vault_max_attempts, d.aws_max_attempts), (4, 5));
    let set = accepted(
        &format!("{MINIMAL}retries: {{ vault_max_attempts: 2, aws_max_attempts: 1 }}\n"),
        &[],
    )
    .retries;
    assert_eq!((set.vault_max_attempts, set.aws_max_attempts), (2, 1));
    assert_eq!((d.gcp_max_attempts, d.azure_max_attempts), (5, 5));
    let clouds = accepted(
        &format!("{MINIMAL}retries: {{ gcp_max_attempts: 3, azure_max_attempts: 7 }}\n"),
        &[],
    )
    .retries;
    assert_eq!((clouds.gcp_max_attempts, clouds.azure_max_attempts), (3, 7));
    assert_eq!(clouds.aws_max_attempts, 5);
    let out = check(
        &format!("{MINIMAL}retries: {{ azure_max_attempts: 0 }}\n"),
        &[],
    );
    assert!(
        out.contains(
            "(`retries.azure_max_attempts`): `retries.azure_max_attempts` must be greater than 0"
        ) && out.ends_with("=> rejected\n"),
        "{out}"
    );
    // Targets at once: 4 by default, the key sets it, 0 and 65 are errors.
    assert_eq!(accepted(MINIMAL, &[]).max_parallel_targets, 4);
    let par = accepted(&format!("{MINIMAL}max_parallel_targets: 9\n"), &[]);
    assert_eq!(par.max_parallel_targets, 9);
    for bad in [0, 65] {
        let out = check(&format!("{MINIMAL}max_parallel_targets: {bad}\n"), &[]);
        assert!(
            out.contains("(`max_parallel_targets`)") && out.ends_with("=> rejected\n"),
            "{out}"
        );
    }
    let out = check(
        &format!(
            "{MINIMAL}retries:\n  vault_max_attempts: 0\n  aws_max_attempts: 21\n  aws_max_attempt: 3\n"
        ),
        &[],
    );
    insta::assert_snapshot!(out, @r"
    error at line 9, column 23 (`retries.vault_max_attempts`): `retries.vault_max_attempts` must be greater than 0; use a positive number or remove the key for the default
    error at line 10, column 21 (`retries.aws_max_attempts`): `retries.aws_max_attempts` must be at most 20; use a number from 1 to 20, or remove the key for the default
    error at line 11, column 3 (`retries.aws_max_attempt`): unknown key `aws_max_attempt`; did you mean `aws_max_attempts`?
    => rejected
    ");
}

// ---------------------------------------------------------------------------------------
// 2. Every problem in one load.

#[test]
fn unknown_key_unset_variable_and_cycle_in_one_load() {
    let out = diagnose(
        r#"
            vault_sources:
              - mount: secret/base/
                max_secret: 10
            targets:
              - name: a
                type: aws_secretsmanager
                region: us-east-1
                secret_prefix: ${PREFIX}
                imports: [base, b]
              - name: b
                type: aws_secretsmanager
                region: us-east-1
                imports: [a]
        "#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "three errors and the verdict:\n{out}");
    assert!(
        lines[0].starts_with("error at line 3,")
            && lines[0].contains("unknown key `max_secret`")
            && lines[0].contains("did you mean `max_secrets`?"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("error at line 8,")
            && lines[1].contains("environment variable `PREFIX` is not set"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("error at line 9,")
            && lines[2].contains("inheritance cycle: a -> b -> a"),
        "{out}"
    );
    assert_eq!(lines[3], "=> rejected");
    insta::assert_snapshot!(out);
}

#[test]
fn unset_variable_is_not_also_reported_as_a_bad_value() {
    // The empty stand-in for an unset variable must not produce a second, confusing error
    // about the value (`` is not an IAM role ARN / not an AWS region).
    let out = diagnose(
        r#"
            vault_sources:
              - mount: secret/base/
            targets:
              - name: prod
                type: aws_secretsmanager
                region: ${REGION}
                role_arn: ${ROLE_ARN}
                imports: [base]
        "#,
    );
    insta::assert_snapshot!(out);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn diagnostics_are_sorted_by_line() {
    let out = diagnose(
        r#"
            metrics: { port: 0 }
            targets:
              - name: prod
                type: aws_secretsmanager
                region: nowhere
                imports: [base]
            vault_sources:
              - mount: secret/base/
                max_secrets: 0
        "#,
    );
    let lines: Vec<usize> = out
        .lines()
        .filter_map(|l| l.strip_prefix("error at line "))
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, [1, 5, 9], "{out}");
}

// ---------------------------------------------------------------------------------------
// 3. One kind of problem at a time.

/// One test per entry, `name: r#"yaml"# => has [..] lacks [..] count [text => n, ..];` (each
/// list optional): the diagnostics of the YAML (through [`diagnose`]) hold every `has` text, no
/// `lacks` text, each `count` text exactly `n` times, and match the snapshot of the test's name.
/// Line numbers count from the first line after `r#"`.
macro_rules! diagnostics {
    ($(
        $(#[$attr:meta])*
        $name:ident: $src:literal => $(has [$($has:expr),* $(,)?])?
            $(lacks [$($lacks:expr),* $(,)?])? $(count [$($text:expr => $n:expr),* $(,)?])?;
    )*) => {$(
        $(#[$attr])*
        #[test]
        fn $name() {
            let out = diagnose($src);
            $($(assert!(out.contains($has), "lacks {:?}:\n{out}", $has);)*)?
            $($(assert!(!out.contains($lacks), "has {:?}:\n{out}", $lacks);)*)?
            $($(assert_eq!(out.matches($text).count(), $n, "{:?}:\n{out}", $text);)*)?
            insta::assert_snapshot!(out);
        }
    )*};
}

diagnostics! {
    duplicate_target_names: r#"
        vault_sources:
          - mount: secret/base/
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
          - name: prod
            type: aws_secretsmanager
            region: us-west-2
            imports: [base]
        "#
        => has ["duplicate target name `prod` (first at line 4, column 11)"];

    unknown_import_is_an_error_with_a_suggestion: r#"
        vault_sources:
          - mount: secret/base/
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [bsae, nothing-like-it]
        "#
        => has ["did you mean `base`?"];

    durations: r#"
        circuit_breaker:
          timeout: 30x
          window: 0s
        discovery:
          type: aws_organizations
          cache_ttl: 5
        "#
        => has ["`30x` has an unknown unit `x`"];

    zero_is_not_a_count: r#"
        vault:
          concurrency: 0
        vault_sources:
          - mount: secret/base/
            max_secrets: 0
            queue_compaction_threshold: 0
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
            max_deletes: 0
        circuit_breaker: { failure_threshold: 0 }
        metrics: { port: 70000 }
        "#
        => has [
            "line 5, column 18 (`vault_sources[0].max_secrets`): `vault_sources[0].max_secrets` must be greater than 0",
        ];

    missing_required_keys: r#"
        vault_sources:
          - mount: secret/base/
          - name: orphan
        merge_store: { type: s3 }
        targets:
          - type: aws_secretsmanager
            region: us-east-1
          - name: no-type
            region: us-east-1
            imports: [base]
          - name: no-region
            type: aws_secretsmanager
            imports: [base]
        discovery: { enabled: true }
        vault:
          auth: { approle: { role_id: r } }
        "#
        => has [
            "(`vault_sources[1].mount`): missing required key",
            "(`merge_store.bucket`): missing required key",
            "(`targets[0].name`): missing required key",
            "(`targets[1].type`): missing required key",
            "(`targets[2].region`): missing required key",
            "(`discovery.type`): missing required key",
            "(`vault.auth.approle.secret_id`): missing required key",
        ];

    // The unknown key and the missing one sit at the same position (the first key of the
    // map); both must be reported in the same run.
    missing_key_is_reported_beside_an_unknown_first_key: r#"
        vault_sources:
          - mount: secret/base/
        targets:
          - colour: blue
            type: aws_secretsmanager
            region: us-east-1
        "#
        => has ["unknown key `colour`", "missing required key `name`"];

    // A type error is reported once, not again by the validator for the placeholder value.
    wrong_types: r#"
        vault_sources:
          - mount: secret/base/
            max_secrets: lots
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: base
            delete_orphans: yes
            overrides: [a, b]
            deletion_recovery_days: -7
        metrics: { port: abc }
        circuit_breaker: 5
        "#
        => has [
            "line 12, column 18 (`metrics.port`): expected a non-negative whole number, found a string",
        ] lacks ["port must be between"];

    unknown_keys_everywhere_suggest_the_closest: r#"
        vault_source:
          - mount: secret/base/
        targets:
          - name: prod
            typ: aws_secretsmanager
            region: us-east-1
            rolearn: arn:aws:iam::123456789012:role/x
            colour: blue
        vault:
          auth: { approle: { role: r, secret_id: s } }
        metrics: { prot: 1 }
        "#
        => has [
            "line 1, column 1 (`vault_source`): unknown key `vault_source`; did you mean `vault_sources`?",
            "did you mean `type`?",
            "did you mean `role_arn`?",
            "did you mean `role_id`?",
            "did you mean `port`?",
        ];

    duplicate_keys: r#"
        vault_sources:
          - mount: secret/base/
            max_secrets: 10
            max_secrets: 20
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
        "#
        => has ["line 4, column 5", "key `max_secrets` appears twice"];

    unknown_target_type_suggests_the_closest: r#"
        vault_sources:
          - mount: secret/base/
        targets:
          - name: prod
            type: aws_secretmanager
            region: us-east-1
            imports: [base]
          - name: gcp
            type: gcp_secret_manager
            region: us-east-1
            imports: [base]
        "#
        => has ["unknown target type `aws_secretmanager`; did you mean `aws_secretsmanager`?"];

    discovery_filters: r#"
        discovery:
          type: aws_organisations
          match: both
          states: [ACTIVE, GONE]
          exclude_accounts: ["12345"]
          filters:
            - { tag: Environment }
            - { ou: prod }
            - { tag: Team, values: [a], ou: ou-abcd-12345678 }
        "#
        => has ["did you mean `aws_organizations`?"];

    discovery_templates: r#"
        discovery:
          - type: aws_organizations
            target_template:
              name: "{account}-x"
              regions: [us-east-1, eu-west-1]
              role_arn: "arn:aws:iam::{account_id}:user/x"
              overrides: { env: "{tag:Env" }
          - type: identity_center
            target_template: { name: "ic-{account_id}-{region}", regions: [us-east-1, us-east-1] }
        "#
        => has ["is not a placeholder"];

    duplicate_source_names: r#"
        vault_sources:
          - mount: secret/team-a/base/
          - mount: secret/team-b/base
          - mount: secret/other/
            name: base
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
        "#
        => count ["duplicate source name `base`" => 2];

    // t1..t5 and the discovery role are wrong; t6 and t7 are fine.
    role_arns: r#"
        vault_sources:
          - mount: secret/base/
        targets:
          - { name: t1, type: aws_secretsmanager, region: us-east-1, imports: [base], role_arn: "arn:aws:iam::12345:role/Sync" }
          - { name: t2, type: aws_secretsmanager, region: us-east-1, imports: [base], role_arn: "arn:aws:iam::123456789012:user/Sync" }
          - { name: t3, type: aws_secretsmanager, region: us-east-1, imports: [base], role_arn: "arn:aws:s3:::bucket" }
          - { name: t4, type: aws_secretsmanager, region: us-east-1, imports: [base], role_arn: "SecretSync" }
          - { name: t5, type: aws_secretsmanager, region: us-east-1, imports: [base], role_arn: "arn:aws:iam::123456789012:role/" }
          - { name: t6, type: aws_secretsmanager, region: us-east-1, imports: [base], role_arn: "arn:aws-us-gov:iam::123456789012:role/path/Sync-1" }
          - { name: t7, type: aws_secretsmanager, region: us-east-1, imports: [base], role_arn: "arn:aws-cn:iam::123456789012:role/Sync" }
        discovery:
          type: aws_organizations
          role_arn: arn:aws:iam::123456789012:role/Org Discovery
        "#
        => lacks ["line 9,", "line 10,"] count ["error at line" => 6];

    // The merge store's region and t1..t3 are wrong; t4 and t5 (lines 8, 9) are fine.
    regions: r#"
        vault_sources:
          - mount: secret/base/
        merge_store: { type: s3, bucket: merged-bundles, region: EU-WEST-1 }
        targets:
          - { name: t1, type: aws_secretsmanager, imports: [base], region: us-east }
          - { name: t2, type: aws_secretsmanager, imports: [base], region: useast1 }
          - { name: t3, type: aws_secretsmanager, imports: [base], region: eu-central-x }
          - { name: t4, type: aws_secretsmanager, imports: [base], region: us-gov-west-1 }
          - { name: t5, type: aws_secretsmanager, imports: [base], region: ap-southeast-4 }
        "#
        => lacks ["line 8,", "line 9,"] count ["is not an AWS region" => 4];

    unsafe_paths_in_mounts_and_prefixes: r#"
        vault_sources:
          - mount: secret/../admin/
          - mount: secret//base/
          - mount: /
        merge_store: { type: s3, bucket: Merged_Bundles, prefix: a/../b }
        "#
        => count ["error at" => 5];

    bad_variable_references: r#"
        vault:
          namespace: ${1BAD}
          address: "https://${VAULT_HOST"
        "#
        => count ["error at" => 2];

    deleting_orphans_without_imports_is_warned_about: r#"
        vault_sources:
          - mount: secret/base/
        targets:
          - name: empty
            type: aws_secretsmanager
            region: us-east-1
            delete_orphans: true
          - name: listed-empty
            type: aws_secretsmanager
            region: us-east-1
            imports: []
            delete_orphans: true
          - name: fine
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
            delete_orphans: true
          - name: keeps
            type: aws_secretsmanager
            region: us-east-1
        "#
        => count ["deletes orphans but imports nothing" => 2];
}

#[test]
fn unknown_import_with_a_merge_store_is_a_warning() {
    let src = yaml(
        r#"
        vault_sources:
          - mount: secret/base/
        merge_store: { type: s3, bucket: merged-bundles }
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base, shared-bundle]
        "#,
    );
    let out = check(&src, &[]);
    assert!(out.starts_with("warning at line 8,"), "{out}");
    assert!(out.ends_with("=> accepted\n"), "{out}");
    insta::assert_snapshot!(out);
    let c = load(&src, &[]).config.expect("warnings only");
    assert_eq!(
        c.graph.imports["prod"],
        [
            Import::Source("base".into()),
            Import::Stored("shared-bundle".into())
        ]
    );
}

#[test]
fn a_target_named_like_a_source_wins_and_is_warned_about() {
    let src = yaml(
        r#"
        vault_sources:
          - mount: secret/base/
        targets:
          - name: base
            type: aws_secretsmanager
            region: us-east-1
            imports: []
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
        "#,
    );
    let out = check(&src, &[]);
    insta::assert_snapshot!(out);
    let c = load(&src, &[]).config.expect("warnings only");
    assert_eq!(c.graph.imports["prod"], [Import::Target("base".into())]);
    assert_eq!(c.graph.order, ["base", "prod"]);
}

/// Numbers too big for their type, and durations that overflow, are diagnostics with a line:
/// never a panic, a wrapped value or a silent default.
#[test]
fn overflowing_numbers_and_durations() {
    let out = diagnose(
        r#"
            vault:
              concurrency: 99999999999999999999
            vault_sources:
              - mount: secret/base/
                max_secrets: 1e30
                queue_compaction_threshold: 18446744073709551615
                max_depth: 9223372036854775807
            targets:
              - name: prod
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                max_deletes: -1
                writes_per_second: 4294967297
                concurrency: 100000
                deletion_recovery_days: 99999999999
            circuit_breaker: { timeout: 99999999999999999999h, window: 5124095576030432h, max_requests: 4294967296 }
            discovery: { type: aws_organizations, cache_ttl: 366d }
            metrics: { port: 99999999999999999999 }
        "#,
    );
    for line in [2, 5, 6, 7, 13, 14, 15, 16, 17, 18, 19] {
        assert!(
            out.contains(&format!("error at line {line},")),
            "line {line}:\n{out}"
        );
    }
    assert!(
        out.contains("`targets[0].writes_per_second` must be at most 10000"),
        "{out}"
    );
    assert!(
        out.contains("`99999999999999999999h` is longer than 365 days"),
        "{out}"
    );
    insta::assert_snapshot!(out);
}

/// Durations up to the limit are fine, and units add up.
#[test]
fn durations_up_to_a_year() {
    assert_eq!(config::parse_duration("365d"), Ok(config::MAX_DURATION));
    assert_eq!(
        config::parse_duration("1h30m15s500ms"),
        Ok(Duration::from_millis(5_415_500))
    );
    assert!(config::parse_duration("364d24h1ms").is_err());
    assert!(config::parse_duration("18446744073709551615d").is_err());
    assert!(config::parse_duration("18446744073709551615ms18446744073709551615s").is_err());
}

/// Documents that would exhaust memory or the stack are refused with a diagnostic naming the
/// line, before anything is validated.
#[test]
fn alias_bombs_deep_nesting_and_huge_files() {
    let mut bomb = String::from("vault_sources:\n  - &a {mount: secret/x/}\n");
    bomb.push_str(
        "targets:\n  - name: prod\n    type: aws_secretsmanager\n    region: us-east-1\n",
    );
    bomb.push_str(
        "    overrides:\n      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..9 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("      l{i}: &l{i} [{refs}]\n"));
    }
    let out = check(&bomb, &[]);
    assert!(out.contains("alias bomb"), "{out}");
    insta::assert_snapshot!("alias_bomb", out);

    let deep = format!(
        "targets:\n  - overrides: {}1{}\n",
        "{a: ".repeat(100),
        "}".repeat(100)
    );
    let out = check(&deep, &[]);
    assert!(out.contains("deeper than 64 levels"), "{out}");
    insta::assert_snapshot!("deep_nesting", out);

    // At the limit (the document, `targets`, the target, then 61 maps) the whole load —
    // deserializer and validator included — runs without overflowing the stack.
    let at_limit = format!(
        "{MINIMAL}    overrides: {}1{}\n",
        "{a: ".repeat(61),
        "}".repeat(61)
    );
    let c = accepted(&at_limit, &[]);
    assert!(c.targets[0].overrides.contains_key("a"));
    let over = at_limit
        .replacen("{a: ", "{a: {a: ", 1)
        .replacen('}', "}}", 1);
    assert!(check(&over, &[]).contains("deeper than 64 levels"));

    let huge = format!(
        "vault_sources: []\n# {}\n",
        "x".repeat(config::MAX_CONFIG_BYTES)
    );
    let out = check(&huge, &[]);
    assert!(out.contains("larger than 4 MiB"), "{out}");
    let loaded = config::load_bytes(huge.as_bytes(), &|_| None);
    assert!(loaded.config.is_none());
    assert_eq!(
        loaded.diagnostics.to_string(),
        out.replace("=> rejected\n", "")
    );
}

#[test]
fn a_config_that_is_not_utf8_names_the_line() {
    let loaded = config::load_bytes(b"vault_sources:\n  - mount: secret/\xff/\n", &|_| None);
    assert!(loaded.config.is_none());
    assert_eq!(
        loaded.diagnostics.to_string(),
        "error at line 2, column 19: the config is not UTF-8 text; save the file as UTF-8\n"
    );
    let ok = config::load_bytes(MINIMAL.as_bytes(), &|_| None);
    assert!(ok.config.is_some() && ok.diagnostics.0.is_empty());
}

#[test]
fn a_type_error_does_not_hide_a_missing_key() {
    let out = diagnose(
        r#"
            targets:
              - region: [us-east-1]
                name: prod
        "#,
    );
    assert!(out.contains("expected a string, found a list"), "{out}");
    assert!(out.contains("missing required key `type`"), "{out}");
}

#[test]
fn vault_auth_holds_exactly_one_method() {
    let two = diagnose(
        r#"
            vault:
              auth:
                token: { token: t }
                approle: { role_id: r, secret_id: s }
        "#,
    );
    let none = check("vault: { auth: {} }\n", &[]);
    for out in [&two, &none] {
        assert!(
            out.contains("`vault.auth` must hold exactly one of `token`, `approle`, `kubernetes`"),
            "{out}"
        );
    }
    insta::assert_snapshot!("vault_auth_two_methods", two);
    insta::assert_snapshot!("vault_auth_no_method", none);
}

#[test]
fn kubernetes_auth_defaults() {
    let c = accepted(
        &format!("vault: {{ auth: {{ kubernetes: {{ role: secretsync }} }} }}\n{MINIMAL}"),
        &[],
    );
    match c.vault.auth {
        Some(VaultAuth::Kubernetes {
            role,
            jwt_path,
            mount,
        }) => {
            assert_eq!(role, "secretsync");
            assert_eq!(
                jwt_path,
                "/var/run/secrets/kubernetes.io/serviceaccount/token"
            );
            assert_eq!(mount, "kubernetes");
        }
        other => panic!("expected kubernetes auth, got {other:?}"),
    }
}

#[test]
fn plain_http_only_to_loopback() {
    let verdict = |addr: &str| {
        let out = check(&format!("vault: {{ address: \"{addr}\" }}\n{MINIMAL}"), &[]);
        (addr.to_string(), out.lines().next().unwrap().to_string())
    };
    let ok = "=> accepted";
    for addr in [
        "https://vault.example.com",
        "https://vault.example.com:8200/",
        "http://127.0.0.1:8200",
        "http://127.0.0.2",
        "http://localhost:8200",
        "http://[::1]:8200",
    ] {
        assert_eq!(verdict(addr), (addr.to_string(), ok.to_string()));
    }
    let mut rejected = String::new();
    for addr in [
        "http://vault.example.com",
        "http://10.0.0.5:8200",
        "http://localhost.example.com:8200",
        // Look like loopback at a glance, but connect elsewhere.
        "http://127.0.0.1.nip.io:8200",
        "http://127.0.0.1@vault.example.com",
        "ftp://vault.example.com",
        "vault.example.com:8200",
        "https://",
    ] {
        let (_, first) = verdict(addr);
        assert!(first.starts_with("error at line 1"), "{addr}: {first}");
        writeln!(rejected, "{first}").unwrap();
    }
    insta::assert_snapshot!(rejected);
}

#[test]
fn deletion_recovery_days_within_aws_limits() {
    let with_days = |days: &str| {
        check(
            &format!("{MINIMAL}    deletion_recovery_days: {days}\n"),
            &[],
        )
    };
    let out = with_days("3");
    assert!(
        out.contains("line 8, column 29 (`targets[0].deletion_recovery_days`): `deletion_recovery_days` must be between 7 and 30"),
        "{out}"
    );
    insta::assert_snapshot!(out);
    assert!(with_days("31").contains("must be between 7 and 30"));
    assert_eq!(with_days("7"), "=> accepted\n");
    assert_eq!(with_days("30"), "=> accepted\n");
}

#[test]
fn syntax_error_has_a_line_and_no_config() {
    let out = check("targets:\n  - name: [prod\n    type: x\n", &[]);
    assert!(out.starts_with("error at line "), "{out}");
    assert!(out.contains("invalid YAML"), "{out}");
    assert!(out.ends_with("=> rejected\n"), "{out}");
}

#[test]
fn an_empty_document_is_an_empty_config_with_warnings() {
    let out = check("", &[]);
    insta::assert_snapshot!(out, @r"
    warning (`targets`): the config has no `targets`: nothing is written anywhere; add a target with `name`, `type: aws_secretsmanager`, `region` and `imports`, or a `discovery:` block
    warning (`vault_sources`): the config has no `vault_sources`: no secret is read from Vault; add a source, e.g. `vault_sources: [{ mount: secret/app/ }]`
    => accepted
    ");
    let c = accepted_with_warnings("", &[]);
    assert!(c.targets.is_empty() && c.sources.is_empty());
    assert!(c.graph.order.is_empty());
    // Empty lists are no better; the warning points at them.
    let out = check("vault_sources: []\ntargets: []\n", &[]);
    assert!(
        out.contains("warning at line 1, column 16 (`vault_sources`)"),
        "{out}"
    );
    assert!(
        out.contains("warning at line 2, column 10 (`targets`)"),
        "{out}"
    );
    // A document that is not a map: one error, and the two warnings.
    assert_eq!(check("[]\n", &[]).matches("error").count(), 1);
}

// ---------------------------------------------------------------------------------------
// Environment variables.

#[test]
fn env_expansion() {
    let c = accepted(
        &yaml(
            r#"
            vault_sources:
              - mount: ${KV}/base/
                max_secrets: ${MAX}
            targets:
              - name: prod-${REGION}
                type: aws_secretsmanager
                region: ${REGION}
                imports: [base]
                overrides: { from_env: "${FROM_ENV}", literal: $${NOT_A_VAR}, ${KEY}: kept }
            metrics: { enabled: false, port: ${PORT} }
            "#,
        ),
        &[
            ("KV", "kv"),
            ("MAX", "250"),
            ("REGION", "eu-west-1"),
            ("PORT", "9464"),
            ("KEY", "never-used"),
            // An expanded value is not expanded again.
            ("FROM_ENV", "${NOT_EXPANDED}"),
        ],
    );
    assert_eq!(c.sources[0].mount, "kv/base/");
    assert_eq!(c.sources[0].max_secrets, 250);
    assert_eq!(c.targets[0].name, "prod-eu-west-1");
    let TargetBackend::AwsSecretsManager(t) = &c.targets[0].backend else {
        panic!("an aws_secretsmanager target")
    };
    assert_eq!(t.region, "eu-west-1");
    assert_eq!(
        serde_json::Value::Object(c.targets[0].overrides.clone()),
        // `$${` is a literal `${`; keys are not expanded.
        json!({ "from_env": "${NOT_EXPANDED}", "literal": "${NOT_A_VAR}", "${KEY}": "kept" })
    );
    assert_eq!(c.metrics.port, 9464);
}

#[test]
fn references_inside_flow_collections() {
    // `{` and `}` are YAML flow indicators; `${VAR}` must still work inside `{ }` and `[ ]`,
    // as in the documented example, and columns after it must stay right.
    let src = "metrics: { path: ${METRICS_PATH}, port: abc, enabled: false }\ntargets: [ { name: ${T}, type: aws_secretsmanager, region: us-east-1 } ]\nvault_sources: [ { mount: secret/ } ]\n";
    let out = check(src, &[("METRICS_PATH", "/m"), ("T", "prod")]);
    assert_eq!(
        out,
        "error at line 1, column 41 (`metrics.port`): expected a non-negative whole number, found a string; write a non-negative whole number here\n=> rejected\n"
    );
    let c = accepted(
        "metrics: { path: ${METRICS_PATH}, enabled: false }\ntargets: [ { name: \"${T}\", type: aws_secretsmanager, region: us-east-1 } ]\nvault_sources: [ { mount: secret/ } ]\n",
        &[("METRICS_PATH", "/m"), ("T", "prod")],
    );
    assert_eq!(c.metrics.path, "/m");
    assert_eq!(c.targets[0].name, "prod");
}

#[test]
fn expanded_credentials_are_kept_exactly() {
    // Values from the environment are opaque text: a credential that happens to look like a
    // number, a boolean or null must reach the config unchanged.
    for value in [
        "0123",
        "1e3",
        "1.50",
        "12345678901234567890123",
        "0x1F",
        "True",
        "null",
        "~",
        "",
        "42",
        "true",
    ] {
        let c = accepted_with_warnings(
            DESIGN_EXAMPLE,
            &[("VAULT_ROLE_ID", value), ("VAULT_SECRET_ID", value)],
        );
        let Some(VaultAuth::AppRole {
            role_id, secret_id, ..
        }) = &c.vault.auth
        else {
            panic!("{value:?}: expected AppRole auth");
        };
        assert_eq!(
            (role_id.expose(), secret_id.expose()),
            (value, value),
            "{value:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Secret values never leak.

#[test]
fn secrets_stay_out_of_debug_output() {
    let token = format!("{SENTINEL}-token");
    for (auth, env) in [
        (
            "{ approle: { role_id: ${VAULT_ROLE_ID}, secret_id: ${VAULT_SECRET_ID} } }",
            APPROLE_ENV.to_vec(),
        ),
        (
            "{ token: { token: ${VAULT_TOKEN} } }",
            vec![("VAULT_TOKEN", token.as_str())],
        ),
    ] {
        let c = accepted(&format!("vault: {{ auth: {auth} }}\n{MINIMAL}"), &env);
        // The secret really is in the config...
        let exposed = match &c.vault.auth {
            Some(VaultAuth::AppRole { secret_id, .. }) => secret_id.expose(),
            Some(VaultAuth::Token(Some(t))) => t.expose(),
            other => panic!("unexpected auth {other:?}"),
        };
        assert!(exposed.starts_with(SENTINEL));
        // ...and never in its Debug rendering, nor in the pretty one.
        for rendered in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!rendered.contains(SENTINEL), "{rendered}");
            assert!(rendered.contains("Sensitive(redacted)"), "{rendered}");
        }
    }
}

/// Override values (in targets and in the discovery template) may be secrets: `Debug` shows
/// their keys, never their values, at any depth.
#[test]
fn override_values_stay_out_of_debug_output() {
    let src = format!(
        "{MINIMAL}    overrides: {{ db_password: ${{VAULT_SECRET_ID}}, nested: {{ list: [{{ k: ${{VAULT_SECRET_ID}} }}] }} }}\n\
         discovery:\n  type: aws_organizations\n  target_template:\n    regions: [us-east-1]\n    overrides: {{ api_key: ${{VAULT_SECRET_ID}} }}\n"
    );
    let c = accepted_with_warnings(&src, APPROLE_ENV);
    // The values really are there...
    assert_eq!(c.targets[0].overrides["db_password"], json!(SENTINEL));
    let d = c.discovery.first().expect("discovery");
    assert_eq!(d.template.overrides["api_key"], json!(SENTINEL));
    // ...and never in a Debug rendering of the config or of its parts.
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{:?}", c.targets[0]),
        format!("{d:?}"),
        format!("{:?}", d.template),
    ] {
        assert!(!shown.contains(SENTINEL), "{shown}");
    }
    assert!(format!("{:?}", d.template).contains("\"api_key\""));
    assert!(format!("{:?}", c.targets[0]).contains("\"db_password\""));
}

#[test]
fn secrets_stay_out_of_diagnostics() {
    // Every kind of problem around fields that hold secrets: both auth methods at once, an
    // unknown key next to one, a secret in a list, a duplicate key, a secret where a number
    // or a map belongs, an unterminated reference after one, and a secret as a map key.
    let out = check(
        &yaml(
            r#"
            vault:
              address: http://vault.example.com
              auth:
                token: { token: ${VAULT_SECRET_ID} }
                approle:
                  role_id: [${VAULT_SECRET_ID}]
                  secret_id: ${VAULT_SECRET_ID}
                  secret_id: ${VAULT_SECRET_ID}
                  secret: ${VAULT_SECRET_ID}
                  mount: "${VAULT_SECRET_ID}${UNTERMINATED"
                kubernetes: ${VAULT_SECRET_ID}
            vault_sources:
              - mount: secret/base/
                max_secrets: ${VAULT_SECRET_ID}
                ${VAULT_SECRET_ID}: 1
            targets:
              - name: prod
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                deletion_recovery_days: ${VAULT_SECRET_ID}
            metrics: ${VAULT_SECRET_ID}
            "#,
        ),
        APPROLE_ENV,
    );
    assert!(out.matches("error at").count() >= 8, "{out}");
    assert!(!out.contains(SENTINEL), "{out}");
    insta::assert_snapshot!(out);

    // Invalid YAML after a secret.
    let out = check(
        "vault: { auth: { token: { token: ${VAULT_SECRET_ID} } }\ntargets: [\n",
        APPROLE_ENV,
    );
    assert!(out.contains("invalid YAML"), "{out}");
    assert!(!out.contains(SENTINEL), "{out}");
}

// ---------------------------------------------------------------------------------------
// Ownership, renames and deletion guards.

#[test]
fn owner_scope_is_explicit_or_derived_from_the_sources() {
    let c = accepted(
        &format!("owner: team-pay/prod:eu=1+x@y.z_w\n{MINIMAL}"),
        &[],
    );
    assert_eq!(c.owner.as_deref(), Some("team-pay/prod:eu=1+x@y.z_w"));
    assert_eq!(c.owner_scope(), "team-pay/prod:eu=1+x@y.z_w");

    // SHA-256 of "secret/base/" (the normalized mount), first 12 hex digits.
    let c = accepted(MINIMAL, &[]);
    assert_eq!(c.owner, None);
    assert_eq!(c.owner_scope(), "auto-c6ea70339b75");
    // The same mount written differently is the same source, hence the same scope.
    let c = accepted(&MINIMAL.replace("secret/base/", "/secret/base"), &[]);
    assert_eq!(c.owner_scope(), "auto-c6ea70339b75");

    // SHA-256 of "secret/base/\nsecret/production/": sorted, so the order of the sources
    // does not matter.
    let design = accepted_with_warnings(DESIGN_EXAMPLE, APPROLE_ENV);
    assert_eq!(design.owner_scope(), "auto-45e5b0fb0aaa");
    let swapped = DESIGN_EXAMPLE
        .replace("secret/base/ ", "secret/TMP/ ")
        .replace("secret/production/", "secret/base/")
        .replace("secret/TMP/", "secret/production/")
        .replace("imports: [base, production]", "imports: [production, base]");
    assert_eq!(
        accepted_with_warnings(&swapped, APPROLE_ENV).owner_scope(),
        "auto-45e5b0fb0aaa"
    );
    // Another set of sources is another scope.
    let other = accepted(&MINIMAL.replace("secret/base/", "kv/base/"), &[]);
    assert_ne!(other.owner_scope(), "auto-c6ea70339b75");
    assert!(other.owner_scope().starts_with("auto-"));
}

#[test]
fn owner_must_fit_a_tag() {
    let long = "o".repeat(65);
    for (value, ok) in [
        ("a", true),
        (&"o".repeat(64)[..], true),
        (&long[..], false),
        ("\"\"", false),
        ("team a", false),
        ("team,a", false),
        ("tëam", false),
    ] {
        let out = check(&format!("owner: {value}\n{MINIMAL}"), &[]);
        assert_eq!(out == "=> accepted\n", ok, "{value:?}: {out}");
    }
    let out = check(&format!("owner: \"team a\"\n{MINIMAL}"), &[]);
    insta::assert_snapshot!(out, @r"
    error at line 1, column 8 (`owner`): `owner` must be 1 to 64 characters from `A-Za-z0-9_.:/=+@-`; use 1 to 64 letters, digits and `_.:/=+@-`, e.g. `team-payments/prod`
    => rejected
    ");
}

#[test]
fn adopt_from_and_max_delete_fraction() {
    let out = diagnose(
        r#"
            vault_sources:
              - mount: secret/base/
            targets:
              - name: prod
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                adopt_from: [prod, "old name", production, production, staging]
                max_delete_fraction: 0
              - name: staging
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                max_delete_fraction: 1.5
              - name: a
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                max_delete_fraction: "0.5"
                adopt_from: old
              - name: b
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                max_delete_fraction: .nan
        "#,
    );
    insta::assert_snapshot!(out);

    let c = accepted(
        &yaml(
            r#"
            vault_sources:
              - mount: secret/base/
            targets:
              - name: prod
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                adopt_from: [production, prod.v1]
                max_delete_fraction: 1
              - name: small
                type: aws_secretsmanager
                region: us-east-1
                imports: [base]
                max_delete_fraction: 0.005
            "#,
        ),
        &[],
    );
    let settings = |i: usize| {
        let p = &c.targets[i].policy;
        (p.adopt_from.clone(), p.max_delete_fraction)
    };
    assert_eq!(
        settings(0),
        (vec!["production".into(), "prod.v1".into()], 1.0)
    );
    assert_eq!(settings(1), (vec![], 0.005));
    let c = accepted(MINIMAL, &[]);
    let p = &c.targets[0].policy;
    assert_eq!((p.adopt_from.len(), p.max_delete_fraction), (0, 0.10));
}

// ---------------------------------------------------------------------------------------
// 5. Bad input never crashes: error or value, never a panic.

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    /// A YAML-ish tree: known keys, interesting scalars, anchors and aliases.
    #[derive(Debug, Clone)]
    enum Y {
        Scalar(String),
        Seq(Vec<Y>),
        Map(Vec<(String, Y)>),
        Anchored(u8, Box<Y>),
        Alias(u8),
    }

    const KEYS: &[&str] = &[
        "vault",
        "vault_sources",
        "merge_store",
        "targets",
        "discovery",
        "metrics",
        "circuit_breaker",
        "masking",
        "owner",
        "address",
        "namespace",
        "auth",
        "token",
        "approle",
        "kubernetes",
        "role_id",
        "secret_id",
        "role",
        "jwt_path",
        "mount",
        "concurrency",
        "ca_cert",
        "name",
        "max_secrets",
        "queue_compaction_threshold",
        "max_depth",
        "enabled",
        "type",
        "bucket",
        "prefix",
        "region",
        "kms_key_id",
        "role_arn",
        "external_id",
        "secret_prefix",
        "imports",
        "overrides",
        "delete_orphans",
        "deletion_recovery_days",
        "force_delete",
        "max_deletes",
        "max_delete_fraction",
        "adopt",
        "adopt_from",
        "writes_per_second",
        "filters",
        "match_mode",
        "statuses",
        "cache_ttl",
        "target_template",
        "tag",
        "values",
        "ou",
        "include_nested",
        "permission_set",
        "port",
        "path",
        "failure_threshold",
        "timeout",
        "max_requests",
        "window",
        "patterns",
        "password",
    ];

    const SCALARS: &[&str] = &[
        "",
        "~",
        "null",
        "true",
        "no",
        "0",
        "1",
        "-1",
        "0.5",
        "1.0",
        "1e30",
        "-1e400",
        ".nan",
        "9223372036854775807",
        "9223372036854775808",
        "99999999999999999999",
        "0x7fffffffffffffff",
        "0xffffffffffffffffff",
        "30s",
        "0s",
        "99999999999999999999h",
        "5124095576030432h",
        "1h30m",
        "366d",
        "us-east-1",
        "aws_secretsmanager",
        "s3",
        "vault",
        "secret/base/",
        "secret/../x",
        "base",
        "prod",
        "arn:aws:iam::123456789012:role/x",
        "http://x",
        "https://vault.example.com",
        "${UNSET}",
        "${X}",
        "$${X}",
        "${",
        "'quoted'",
        "\"dq\\u00e9\"",
        "ou-ab-12345678",
        "*",
        "team-a",
        "a/b:c=d+e@f.g",
    ];

    fn tree() -> impl Strategy<Value = Y> {
        let leaf = prop_oneof![
            4 => prop::sample::select(SCALARS).prop_map(|s| Y::Scalar(s.to_string())),
            1 => "[ -~]{0,10}".prop_map(Y::Scalar),
            1 => (0u8..4).prop_map(Y::Alias),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Y::Seq),
                prop::collection::vec(
                    (
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        inner.clone()
                    ),
                    0..6
                )
                .prop_map(Y::Map),
                ((0u8..4), inner).prop_map(|(n, y)| Y::Anchored(n, Box::new(y))),
            ]
        })
    }

    fn flow(y: &Y) -> String {
        match y {
            Y::Scalar(s) => s.clone(),
            Y::Seq(v) => format!("[{}]", v.iter().map(flow).collect::<Vec<_>>().join(", ")),
            Y::Map(v) => format!(
                "{{{}}}",
                v.iter()
                    .map(|(k, v)| format!("{k}: {}", flow(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Y::Anchored(n, y) => format!("&a{n} {}", flow(y)),
            Y::Alias(n) => format!("*a{n}"),
        }
    }

    /// Top-level keys in block style, lists of maps as block lists, the rest in flow style.
    fn document(top: &[(String, Y)]) -> String {
        let mut out = String::new();
        for (k, v) in top {
            match v {
                Y::Seq(items) if !items.is_empty() => {
                    out.push_str(&format!("{k}:\n"));
                    for item in items {
                        out.push_str(&format!("  - {}\n", flow(item)));
                    }
                }
                other => out.push_str(&format!("{k}: {}\n", flow(other))),
            }
        }
        out
    }

    /// What must hold for every input: no panic (the test would fail), a config exactly when
    /// there is no error, and positions inside the document.
    fn holds(src: &str) -> Result<(), TestCaseError> {
        let loaded = load(src, &[("X", "42")]);
        prop_assert_eq!(loaded.config.is_some(), !loaded.diagnostics.has_errors());
        let lines = src.lines().count() + 1;
        for d in &loaded.diagnostics.0 {
            if let Some(p) = d.pos {
                prop_assert!(p.line >= 1 && p.line <= lines, "{} in\n{}", d, src);
            }
        }
        if let Some(c) = &loaded.config {
            // The typed config is usable: the scope derives without panicking.
            prop_assert!(!c.owner_scope().is_empty());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text(s in "\\PC{0,200}") {
            holds(&s)?;
        }

        #[test]
        fn yaml_punctuation(s in "[-:\\[\\]{}&*!|>'\"#%@`,?~ \n\ta-z0-9$.]{0,120}") {
            holds(&s)?;
        }

        #[test]
        fn yaml_shaped_documents(
            top in prop::collection::vec(
                (prop::sample::select(KEYS).prop_map(str::to_string), tree()),
                0..6,
            )
        ) {
            holds(&document(&top))?;
        }

        /// The documented example with one line's value replaced: the validator's every
        /// branch sees near-valid input.
        #[test]
        fn the_design_example_with_one_value_changed(
            line in 0usize..40,
            value in prop::sample::select(SCALARS),
            duplicate in any::<bool>(),
        ) {
            let mut lines: Vec<String> = DESIGN_EXAMPLE.lines().map(str::to_string).collect();
            let i = line % lines.len();
            if duplicate {
                let l = lines[i].clone();
                lines.insert(i, l);
            } else if let Some(colon) = lines[i].find(": ") {
                lines[i] = format!("{}: {value}", &lines[i][..colon]);
            }
            holds(&(lines.join("\n") + "\n"))?;
        }
    }
}

#[test]
fn policies_blocks_and_their_problems() {
    use secretsync_core::config::PolicyEffect;
    let c = accepted(
        &format!(
            "{MINIMAL}policies:\n  - path: policies/\n  - path: strict.rego\n    query: data.acme.rules.warn\n  - path: values/\n    query: data.acme.rules.check\n    effect: warn\n    with_values: true\n"
        ),
        &[],
    );
    assert_eq!(c.policies.len(), 3);
    // Without `query`: `deny` and `warn` of `data.secretsync`, neither required.
    let rules: Vec<(&str, PolicyEffect, bool)> = c.policies[0]
        .rules
        .iter()
        .map(|r| (r.query.as_str(), r.effect, r.explicit))
        .collect();
    assert_eq!(
        rules,
        [
            ("data.secretsync.deny", PolicyEffect::Deny, false),
            ("data.secretsync.warn", PolicyEffect::Warn, false)
        ]
    );
    assert!(!c.policies[0].with_values);
    // A rule named `warn` warns; `effect` says otherwise.
    assert_eq!(c.policies[1].rules[0].effect, PolicyEffect::Warn);
    assert_eq!(c.policies[2].rules[0].effect, PolicyEffect::Warn);
    assert!(c.policies[2].with_values);

    let out = diagnose(
        "
        vault_sources:
          - mount: secret/base/
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
        policies:
          - query: secretsync.deny
          - path: p/
            effect: block
          - path: p/
            effect: warn
          - path: ''
            querry: data.x.y
        ",
    );
    insta::assert_snapshot!(out, @r"
    error at line 9, column 10 (`policies[0].path`): missing required key `path`; add `path: …` (a .rego file or a folder of them, e.g. `policies/`)
    error at line 9, column 12 (`policies[0].query`): `secretsync.deny` does not start with `data.`; write a rule path such as `data.secretsync.deny` (`data.`, the package, the rule)
    error at line 11, column 13 (`policies[1].effect`): `effect` needs a `query`; without `query` the block evaluates `data.secretsync.deny` (deny) and `data.secretsync.warn` (warn); add `query:` or remove `effect`
    error at line 11, column 13 (`policies[1].effect`): unknown policy effect `block`; use one of: deny, warn
    error at line 13, column 13 (`policies[2].effect`): `effect` needs a `query`; without `query` the block evaluates `data.secretsync.deny` (deny) and `data.secretsync.warn` (warn); add `query:` or remove `effect`
    error at line 14, column 11 (`policies[3].path`): `path` is empty; give a .rego file or a folder of them, e.g. `policies/`
    error at line 15, column 5 (`policies[3].querry`): unknown key `querry`; did you mean `query`?
    => rejected
    ");
}

#[test]
fn audit_block_and_its_problems() {
    use secretsync_core::config::AuditConfig;
    let c = accepted(
        &format!(
            "{MINIMAL}merge_store: {{ type: s3, bucket: merged, region: us-east-1 }}\naudit:\n  file: logs/audit.jsonl\n  store: true\n"
        ),
        &[],
    );
    assert_eq!(
        c.audit,
        Some(AuditConfig {
            file: Some("logs/audit.jsonl".into()),
            store: true
        })
    );
    let c = accepted(&format!("{MINIMAL}audit: {{ file: a.jsonl }}\n"), &[]);
    assert_eq!(c.audit.as_ref().map(|a| a.store), Some(false));
    assert!(accepted(MINIMAL, &[]).audit.is_none());

    let out = diagnose(
        "
        vault_sources:
          - mount: secret/base/
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
        audit:
          file: ''
          store: true
          stor: false
        ",
    );
    insta::assert_snapshot!(out, @r"
    error at line 9, column 9 (`audit.file`): `audit.file` is empty; give the path of the JSON Lines file, e.g. `/var/log/secretsync/audit.jsonl`
    error at line 10, column 10 (`audit.store`): `audit.store` needs a merge store; configure `merge_store:`, or write the log to a file only (`audit.file`)
    error at line 11, column 3 (`audit.stor`): unknown key `stor`; did you mean `store`?
    => rejected
    ");
    let out = diagnose(
        "
        vault_sources:
          - mount: secret/base/
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
        audit:
          store: false
        ",
    );
    insta::assert_snapshot!(out, @r"
    error at line 9, column 8 (`audit`): the `audit` block writes the log nowhere; set `file: <path>`, `store: true` (with a merge store), or both
    => rejected
    ");
}

#[test]
fn notifications_blocks_and_their_problems() {
    use secretsync_core::config::{NotifyFormat, NotifyTrigger};
    let c = accepted(
        &format!(
            "{MINIMAL}notifications:\n  - url: https://hooks.slack.com/services/T000/B000/XXXX\n    format: slack\n    on: [changes, failure, changes]\n    secret: ${{HOOK_SECRET}}\n    timeout: 3s\n    max_attempts: 2\n  - url: http://127.0.0.1:9000/hook\n"
        ),
        &[("HOOK_SECRET", "s3cret")],
    );
    assert_eq!(c.notifications.len(), 2);
    let n = &c.notifications[0];
    assert_eq!(n.format, NotifyFormat::Slack);
    assert_eq!(n.on, [NotifyTrigger::Failure, NotifyTrigger::Changes]);
    assert_eq!(n.secret.as_ref().map(|s| s.expose()), Some("s3cret"));
    assert_eq!(n.timeout, std::time::Duration::from_secs(3));
    assert_eq!(n.max_attempts, 2);
    // The hook's path is its credential: it is never shown.
    assert_eq!(n.describe(), "https://hooks.slack.com");
    assert!(!format!("{n:?}").contains("XXXX"));
    assert!(!format!("{n:?}").contains("s3cret"));
    // Defaults: JSON, on failure, unsigned, 10 s, 4 attempts.
    let d = &c.notifications[1];
    assert_eq!(
        (
            d.format,
            d.on.as_slice(),
            d.secret.is_none(),
            d.max_attempts
        ),
        (NotifyFormat::Json, &[NotifyTrigger::Failure][..], true, 4)
    );
    assert_eq!(d.timeout, std::time::Duration::from_secs(10));

    let out = diagnose(
        "
        vault_sources:
          - mount: secret/base/
        targets:
          - name: prod
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
        notifications:
          - url: http://hooks.example.com/services/T000/B000/XXXX
            format: teams
            on: [failures]
          - on: []
            secret: ''
            max_attempts: 0
          - url: hooks.example.com/x
            timeout: soon
            urls: x
        ",
    );
    insta::assert_snapshot!(out, @r"
    error at line 9, column 10 (`notifications[0].url`): the URL uses plain http to a non-loopback host; the notification would cross the network unencrypted; use https:// (plain http:// is only accepted for loopback addresses)
    error at line 10, column 13 (`notifications[0].format`): unknown notification format `teams`; use one of: json, slack
    error at line 11, column 10 (`notifications[0].on[0]`): unknown trigger `failures`; did you mean `failure`?
    error at line 12, column 7 (`notifications[1].url`): missing required key `url`; add `url: …` (where to POST, e.g. `https://hooks.slack.com/services/…`)
    error at line 12, column 9 (`notifications[1].on`): `on` is empty, so the notification is never sent; list at least one of: failure, changes, drift (or remove `on` for `[failure]`)
    error at line 13, column 13 (`notifications[1].secret`): `secret` is empty; give the HMAC key (e.g. `${HOOK_SECRET}`), or remove `secret` to send unsigned
    error at line 14, column 19 (`notifications[1].max_attempts`): `notifications[1].max_attempts` must be greater than 0; use a positive number or remove the key for the default
    error at line 15, column 10 (`notifications[2].url`): the URL is not an https:// URL; use https:// (plain http:// is only accepted for loopback addresses)
    error at line 16, column 14 (`notifications[2].timeout`): `soon` is not a duration; write a duration such as `500ms`, `30s`, `5m`, `1h` or `1h30m`
    error at line 17, column 5 (`notifications[2].urls`): unknown key `urls`; did you mean `url`?
    => rejected
    ");
    // The hook's URL (its credential) is never repeated in a diagnostic.
    assert!(!out.contains("XXXX"));
}

#[test]
fn a_rotation_job_needs_no_targets() {
    // `secretsync rotate` writes to Vault only: a config of sources and rotation blocks is
    // complete, with no "no targets" warning.
    let c = accepted(
        "vault_sources:\n  - mount: secret/base/\n    name: base\nrotation:\n  - source: base\n    paths: [\"app/db\"]\n    key: password\n    every: 30d\n    generator: { length: 32 }\n",
        &[],
    );
    assert!(c.targets.is_empty());
    assert_eq!(c.rotation.len(), 1);
}

#[test]
fn transform_blocks_name_template_and_their_problems() {
    use secretsync_core::transform::KeyCase;
    let c = accepted(
        "vault_sources:\n  - mount: secret/base/\n    name: base\ntargets:\n  - name: app\n    type: aws_secretsmanager\n    region: eu-west-1\n    tags: { env: staging }\n    imports: [base]\n    name_template: \"{env}/{target}/{path}\"\n    transform:\n      exclude: [\"debug_*\"]\n      rename: { password: PASSWORD }\n      template: { DATABASE_URL: \"postgres://{{ user }}@{{ host }}\" }\n      case: upper\n  - name: flat\n    type: aws_secretsmanager\n    region: eu-west-1\n    imports: [base]\n    transform:\n      - paths: [\"app/*\"]\n        flatten: _\n      - include: [host, port]\n",
        &[],
    );
    let app = &c.targets[0];
    assert_eq!(app.policy.secret_prefix, "staging/app/");
    let t = &app.transform[0];
    assert_eq!(t.exclude, ["debug_*"]);
    assert_eq!(t.rename, [("password".to_string(), "PASSWORD".to_string())]);
    assert_eq!(t.template[0].0, "DATABASE_URL");
    assert_eq!(t.case, KeyCase::Upper);
    let flat = &c.targets[1];
    assert_eq!(flat.transform.len(), 2);
    assert_eq!(flat.transform[0].paths, ["app/*"]);
    assert_eq!(flat.transform[0].flatten.as_deref(), Some("_"));
    assert_eq!(flat.transform[1].include, ["host", "port"]);

    let out = diagnose(
        "
        vault_sources:
          - mount: secret/base/
        targets:
          - name: a
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
            name_template: '{team}/{path}'
            transform:
              rename: { a: b, b: c }
              template: { URL: '{{ user ' }
              case: title
              flatten: ''
              excludes: [x]
          - name: b
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
            secret_prefix: b/
            name_template: '{target}/{path}'
            transform: {}
          - name: c
            type: aws_secretsmanager
            region: us-east-1
            imports: [base]
            name_template: '{target}/{path}/x'
        ",
    );
    insta::assert_snapshot!(out, @r#"
    error at line 8, column 20 (`targets[0].name_template`): `{team}` in `{team}/{path}` has no value for target `a`; use one of: `{target}`, `{type}`, `{region}`, `{account}` (tags are the target's `tags:` keys)
    error at line 10, column 20 (`targets[0].transform.rename.a`): `a` is renamed to `b`, which is itself renamed; renames apply at once: give each key its final name
    error at line 11, column 24 (`targets[0].transform.template.URL`): template `URL` does not parse: syntax error: unexpected end of input, expected end of variable block (in <string>:1); fix the Jinja syntax (`{{ key }}` for a key of the secret)
    error at line 12, column 13 (`targets[0].transform.case`): unknown key case `title`; use one of: upper, lower, none
    error at line 13, column 16 (`targets[0].transform.flatten`): `flatten` has an empty separator; write the separator nested keys are joined with, e.g. `"_"`
    error at line 14, column 7 (`targets[0].transform.excludes`): unknown key `excludes`; did you mean `exclude`?
    error at line 20, column 20 (`targets[1].name_template`): `name_template` and `secret_prefix` both say where names go; keep one: `secret_prefix: b/` is `name_template: "b/{path}"`
    warning at line 21, column 16 (`targets[1].transform`): the `transform` block changes nothing; add `include`, `exclude`, `rename`, `template`, `case` or `flatten`, or remove the block
    error at line 26, column 20 (`targets[2].name_template`): `{target}/{path}/x` does not end with `{path}`; names are `<rendered template>{path}`: put `{path}` last, e.g. `"{target}/{path}"`
    => rejected
    "#);
}
