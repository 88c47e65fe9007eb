//! The `rotation:` blocks through the config loader: the typed form, and one diagnostic
//! (key, line, help) for each way a block can be wrong.

use std::fmt::Write as _;
use std::time::Duration;

use secretsync_core::config::{self, Config};
use secretsync_core::rotation::DEFAULT_CHARSET;

fn load(yaml: &str) -> config::Loaded {
    config::load(yaml, &|_| None)
}

/// Every diagnostic of one load, one per line, then `=> accepted` or `=> rejected`.
fn check(yaml: &str) -> String {
    let loaded = load(yaml);
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
    out
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

/// Two sources (`base`, `production`), a target, and `rotation` as given (YAML lines).
fn with_rotation(rotation: &str) -> String {
    format!(
        "vault_sources:
  - mount: secret/base/
  - mount: secret/production/
targets:
  - name: prod
    type: aws_secretsmanager
    region: us-east-1
    imports: [base]
rotation:
{rotation}"
    )
}

/// The example in `core::rotation`'s module docs loads, and means what it says.
#[test]
fn documented_example_loads() {
    let docs = include_str!("../src/rotation.rs");
    let example: String = docs
        .lines()
        .skip_while(|l| !l.starts_with("//! ```yaml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n")
        .collect();
    // A rotation-only config (a rotation job) is complete: no diagnostic at all.
    let out = check(&example);
    assert_eq!(out, "=> accepted\n");
    let c = load(&example).config.unwrap();
    let r = &c.rotation[0];
    assert_eq!(r.source, "base");
    assert_eq!(r.key, "password");
    assert_eq!(r.every, Duration::from_secs(30 * 86_400));
    assert_eq!(r.generator.length, 32);
    let globs: Vec<&str> = r.paths.iter().map(|g| g.as_str()).collect();
    assert_eq!(globs, ["app/*/db", "legacy/**"]);
}

#[test]
fn blocks_load_in_order_with_their_generators() {
    let c = accepted(&with_rotation(
        r#"  - source: base
    paths: ["app/*/db"]
    key: password
    every: 30d
    generator: { length: 32, charset: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+" }
  - source: production
    paths: ["**/api", "svc/**/token"]
    key: api_key
    every: 12h
    generator: { length: 16 }
  - source: base
    paths: ["app/*/db"]
    key: admin_password
    every: 90d
    generator: { length: 1024, charset: "0123456789" }
"#,
    ));
    assert_eq!(c.rotation.len(), 3);
    let [a, b, d] = &c.rotation[..] else {
        unreachable!()
    };
    assert_eq!(a.generator.charset.len(), 66);
    assert_eq!((a.source.as_str(), a.key.as_str()), ("base", "password"));
    assert_eq!(
        (b.source.as_str(), b.key.as_str()),
        ("production", "api_key")
    );
    assert_eq!(b.every, Duration::from_secs(12 * 3600));
    assert_eq!(b.generator.charset, DEFAULT_CHARSET.as_bytes());
    assert_eq!(b.generator.length, 16);
    assert!(b.paths[0].matches("team/x/api") && b.paths[1].matches("svc/token"));
    assert_eq!(d.generator.length, 1024);
    assert_eq!(d.generator.charset, b"0123456789");
    // Without `rotation:` there is nothing to rotate.
    let c = accepted(
        "vault_sources:\n  - mount: secret/base/\ntargets:\n  - { name: prod, type: aws_secretsmanager, region: us-east-1, imports: [base] }\n",
    );
    assert!(c.rotation.is_empty());
}

#[test]
fn unknown_source_missing_keys_and_unknown_keys() {
    insta::assert_snapshot!(check(&with_rotation(
        r#"  - source: bsae
    paths: ["app/*/db"]
    key: password
    every: 30d
    generator: { length: 32 }
  - source: staging
    paths: ["app/*/db"]
    key: password
    every: 30d
    generator: { length: 32 }
  - source: base
  - source: base
    paths: ["app/*/db"]
    key: password
    evrey: 30d
    generator: { length: 32, charest: "abc" }
  - source: base
    paths: ["app/*/db"]
    key: password
    every: 30d
    generator: {}
"#
    )));
}

#[test]
fn bad_paths_key_and_every() {
    insta::assert_snapshot!(check(&with_rotation(
        r#"  - source: base
    paths: []
    key: ""
    every: 0s
    generator: { length: 32 }
  - source: base
    paths: ["/app/db", "app/", "app//db", "app/../db", "app/a**/db", ""]
    key: password
    every: 30 days
    generator: { length: 32 }
  - source: base
    paths: "app/*/db"
    key: password
    every: 400d
    generator: { length: 32 }
"#
    )));
}

#[test]
fn bad_generators() {
    insta::assert_snapshot!(check(&with_rotation(
        r#"  - source: base
    paths: ["a"]
    key: k1
    every: 1d
    generator: { length: 15 }
  - source: base
    paths: ["a"]
    key: k2
    every: 1d
    generator: { length: 1025 }
  - source: base
    paths: ["a"]
    key: k3
    every: 1d
    generator: { length: 32, charset: "abcdefghij klm" }
  - source: base
    paths: ["a"]
    key: k4
    every: 1d
    generator: { length: 32, charset: "abcdefghijka" }
  - source: base
    paths: ["a"]
    key: k5
    every: 1d
    generator: { length: 32, charset: "abcdefghi" }
  - source: base
    paths: ["a"]
    key: k6
    every: 1d
    generator: { length: 32, charset: "abcdefghijé" }
  - source: base
    paths: ["a"]
    key: k7
    every: 1d
    generator: { length: -1 }
"#
    )));
}

#[test]
fn look_alikes_warn_and_duplicates_are_refused() {
    insta::assert_snapshot!(check(&with_rotation(
        r#"  - source: base
    paths: ["app/*/db"]
    key: db.password
    every: 30d
    generator: { length: 32, charset: "a-z0123456789_" }
  - source: base
    paths: ["other/db", "app/*/db"]
    key: db.password
    every: 60d
    generator: { length: 32 }
  - source: production
    paths: ["app/*/db"]
    key: db.password
    every: 60d
    generator: { length: 32 }
"#
    )));
}
