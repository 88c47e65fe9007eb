//! The `aws_ssm` target kind through the config loader: its keys, its defaults, and the
//! diagnostics for another kind's keys and bad values (with lines).

use secretsync_core::config::{self, Config, Loaded, TargetBackend};
use secretsync_core::targets::aws_ssm::{AwsSsmSettings, DEFAULT_WRITES_PER_SECOND, Mapping};

fn load(yaml: &str) -> Loaded {
    config::load(yaml, &|_: &str| None)
}

fn accepted(yaml: &str) -> Config {
    let loaded = load(yaml);
    assert!(
        loaded.diagnostics.0.is_empty(),
        "unexpected diagnostics:\n{}",
        loaded.diagnostics
    );
    loaded.config.expect("no errors, so a config")
}

fn rejected(yaml: &str) -> String {
    let loaded = load(yaml);
    assert!(loaded.config.is_none(), "accepted:\n{yaml}");
    loaded.diagnostics.to_string()
}

fn ssm(c: &Config) -> &AwsSsmSettings {
    match &c.targets[0].backend {
        TargetBackend::AwsSsm(s) => s,
        other => panic!("not an aws_ssm target: {other:?}"),
    }
}

fn target(extra: &str) -> String {
    format!(
        "vault_sources:\n  - mount: secret/base/\ntargets:\n  - name: params\n    type: aws_ssm\n    region: us-east-1\n    imports: [base]\n{extra}"
    )
}

/// The example in the kind's module docs parses, with every key it shows.
#[test]
fn documented_example_loads() {
    let docs = include_str!("../src/targets/aws_ssm.rs");
    let example: String = docs
        .lines()
        .skip_while(|l| !l.starts_with("//! ```yaml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n")
        .collect();
    let yaml = format!("vault_sources:\n  - mount: secret/base/\n{example}");
    let c = accepted(&yaml);
    let s = ssm(&c);
    assert_eq!(c.targets[0].backend.type_name(), "aws_ssm");
    assert_eq!(c.targets[0].backend.describe(), "aws_ssm us-east-1");
    assert_eq!(s.mapping, Mapping::PerKey);
    assert_eq!(s.kms_key_id.as_deref(), Some("alias/params"));
    assert_eq!(
        s.role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/SecretSync")
    );
    assert_eq!(c.targets[0].policy.secret_prefix, "/myorg/prod/");
}

#[test]
fn defaults_and_pacing() {
    let c = accepted(&target(""));
    let s = ssm(&c);
    assert_eq!(s.mapping, Mapping::Whole);
    assert_eq!(s.kms_key_id, None);
    // Parameter Store's low write quota: this kind's own default when the key is absent.
    assert_eq!(s.writes_per_second, DEFAULT_WRITES_PER_SECOND);
    let c = accepted(&target("    writes_per_second: 20\n"));
    assert_eq!(ssm(&c).writes_per_second, 20);
    assert_eq!(c.targets[0].policy.writes_per_second, 20);
}

#[test]
fn another_kinds_key_is_rejected_with_its_line_and_the_closest_key() {
    let out = rejected(&target("    deletion_recovery_days: 7\n"));
    assert!(out.contains("line 8"), "{out}");
    assert!(
        out.contains("unknown key `deletion_recovery_days`"),
        "{out}"
    );
    let out = rejected(&target("    mappings: per_key\n"));
    assert!(out.contains("did you mean `mapping`?"), "{out}");
}

#[test]
fn bad_values_are_reported() {
    let out = rejected(&target("    mapping: perkey\n"));
    assert!(out.contains("unknown mapping `perkey`"), "{out}");
    assert!(out.contains("did you mean `per_key`?"), "{out}");
    let out = rejected(&target("    secret_prefix: myorg/prod\n"));
    assert!(out.contains("starts and ends with `/`"), "{out}");
    let out = rejected(&target("    secret_prefix: /ssm/prod/\n"));
    assert!(out.contains("`aws` or `ssm`"), "{out}");
    let out = rejected(&target("    kms_key_id: ''\n"));
    assert!(out.contains("kms_key_id"), "{out}");
    let out = rejected(
        "vault_sources:\n  - mount: secret/base/\ntargets:\n  - name: params\n    type: aws_ssm\n    imports: [base]\n",
    );
    assert!(out.contains("missing required key `region`"), "{out}");
}
