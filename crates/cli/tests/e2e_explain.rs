//! End to end: `secretsync explain` and `pipeline --output json --provenance`, the real binary
//! against the real local OpenBao (and moto for the pipeline), seeded through the plain HTTP API.
//!
//! The chain: `prod` imports `staging`, which imports `common` (which imports source `base`,
//! with overrides) and source `staging-src`, with overrides; `prod` has overrides too.

mod support_sync;

use serde_json::{Value, json};
use support_sync::{Run, World, unique};

/// A region for the pipeline test. Every commercial region is used by some test; the dry runs
/// here only list, and the one apply creates two secrets under this test's own prefix.
const REGION: &str = "me-south-1";

const SENTINEL: &str = "sentinel-explain-e2e-7f3a";

fn chain(id: &str) -> String {
    format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
  - mount: secret/{id}/staging-src/
    name: staging-src
targets:
  - name: common
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/common/
    imports: [base]
    overrides: {{ tier: common, log: {{ level: info }} }}
  - name: staging
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/staging/
    imports: [common, staging-src]
    overrides: {{ environment: staging }}
  - name: prod
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/prod/
    imports: [staging]
    overrides: {{ environment: prod }}
"
    )
}

async fn seed(world: &World, id: &str) {
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"host": "base-host", "port": "5432", "hosts": ["a", "b"], "password": SENTINEL, "user": "app"}),
        )
        .await;
    world
        .put(
            &format!("{id}/staging-src/app/db"),
            json!({"host": "staging-host", "hosts": ["b", "c"], "log": {"level": "debug"}, "user": null}),
        )
        .await;
    world
        .put(&format!("{id}/staging-src/app/only"), json!({"k": "v"}))
        .await;
}

fn explain(world: &World, config: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec![
        "explain".to_string(),
        "--config".to_string(),
        config.to_str().expect("utf-8 path").to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    world.run(&all, &[])
}

#[track_caller]
fn no_values(r: &Run) {
    for v in [SENTINEL, "base-host", "staging-host", "5432"] {
        assert!(
            !r.stdout.contains(v) && !r.stderr.contains(v),
            "{v} printed without --show-values\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
}

#[tokio::test]
async fn explain_names_the_winning_layer_of_every_key() {
    let world = World::from_env().await;
    let id = unique("explain");
    seed(&world, &id).await;
    let config = world.config(&chain(&id));

    // Text.
    let r = explain(&world, &config, &["--target", "prod", "--path", "app/db"]);
    r.success();
    no_values(&r);
    r.stdout_has("Target prod, secret app/db: 5 layers, 8 keys");
    for layer in [
        "1  source base (via staging → common)",
        "2  target common overrides (via staging)",
        "3  source staging-src (via staging)",
        "4  target staging overrides",
        "5  target prod overrides",
    ] {
        r.stdout_has(layer);
    }
    let key = |k: &str| {
        r.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{k} ")))
            .unwrap_or_else(|| panic!("no line for key {k}\n{}", r.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        key("host"),
        "host ← 3 source staging-src (via staging) (overrides: 1 source base (via staging → common))"
    );
    assert_eq!(
        key("environment"),
        "environment ← 5 target prod overrides (overrides: 4 target staging overrides)"
    );
    assert_eq!(
        key("hosts"),
        "hosts ← 3 source staging-src (via staging) (merged with: 1 source base (via staging → common))"
    );
    assert_eq!(
        key("log.level"),
        "log.level ← 3 source staging-src (via staging) (overrides: 2 target common overrides (via staging))"
    );
    assert_eq!(key("user"), "user ← 1 source base (via staging → common)");
    assert_eq!(
        key("tier"),
        "tier ← 2 target common overrides (via staging)"
    );
    assert_eq!(
        key("password"),
        "password ← 1 source base (via staging → common)"
    );

    // JSON.
    let r = explain(
        &world,
        &config,
        &["--target", "prod", "--path", "app/db", "--output", "json"],
    );
    r.success();
    no_values(&r);
    let doc = r.json();
    assert_eq!(doc["version"], 1);
    assert_eq!(
        (doc["target"].as_str(), doc["path"].as_str()),
        (Some("prod"), Some("app/db"))
    );
    let labels: Vec<&str> = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "source:base",
            "target:common",
            "source:staging-src",
            "target:staging",
            "target:prod"
        ]
    );
    assert_eq!(doc["layers"][0]["via"], json!(["staging", "common"]));
    for k in doc["keys"].as_array().unwrap() {
        assert!(
            k.get("value").is_none(),
            "a value without --show-values: {k}"
        );
    }
    assert_eq!(
        doc_winners(&doc),
        json!({
            "environment": "target:prod",
            "host": "source:staging-src",
            "hosts": "source:staging-src",
            "log.level": "source:staging-src",
            "password": "source:base",
            "port": "source:base",
            "tier": "target:common",
            "user": "source:base",
        })
    );
    let hosts = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "hosts")
        .unwrap();
    assert_eq!(
        (hosts["merged"].clone(), hosts["contributors"].clone()),
        (json!(true), json!([1, 3]))
    );

    // --key: one key only.
    let r = explain(
        &world,
        &config,
        &[
            "--target",
            "prod",
            "--path",
            "app/db",
            "--key",
            "log.level",
            "--output",
            "json",
        ],
    );
    r.success();
    let keys = r.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["winner_label"], "source:staging-src");

    // --show-values: values shown, sensitive-looking keys still masked.
    let r = explain(
        &world,
        &config,
        &["--target", "prod", "--path", "app/db", "--show-values"],
    );
    r.success();
    r.stdout_has("host        = staging-host");
    r.stdout_has("password    = **********");
    assert!(!r.stdout.contains(SENTINEL) && !r.stderr.contains(SENTINEL));

    // A path only the direct source holds: common's overrides never reached it.
    let r = explain(
        &world,
        &config,
        &["--target", "staging", "--path", "app/only"],
    );
    r.success();
    r.stdout_has("1  source base (via common)  (does not hold app/only)");
    r.stdout_has("2  target common overrides  (not applied: common has no app/only)");
}

/// The winners of every key, as the JSON document names them (for the comparison above).
fn doc_winners(doc: &Value) -> Value {
    Value::Object(
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["key"].as_str().unwrap().to_string(),
                    k["winner_label"].clone(),
                )
            })
            .collect(),
    )
}

#[tokio::test]
async fn explain_errors_say_what_to_do() {
    let world = World::from_env().await;
    let id = unique("explainerr");
    seed(&world, &id).await;
    let config = world.config(&chain(&id));

    let r = explain(&world, &config, &["--target", "prdo", "--path", "app/db"]);
    r.code(1)
        .stderr_has("no target `prdo` in the config; did you mean `prod`?");

    let r = explain(&world, &config, &["--target", "prod", "--path", "app/dbb"]);
    r.code(1)
        .stderr_has(
            "`app/dbb` is not in the desired state of target `prod` (did you mean `app/db`?); list its secrets with",
        )
        .stderr_has("--merge-only --dry-run --targets prod");

    let r = explain(
        &world,
        &config,
        &["--target", "prod", "--path", "app/db", "--key", "hots"],
    );
    r.code(1)
        .stderr_has("key `hots` is not in `app/db` of target `prod`; did you mean `host`?");
    no_values(&r);
}

#[tokio::test]
async fn pipeline_json_provenance_names_each_keys_layer() {
    let world = World::from_env().await;
    let id = unique("provenance");
    seed(&world, &id).await;
    let config = world.config(&chain(&id));
    let prod = |doc: &Value, path: &str| -> Value {
        doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["target"] == "prod" && c["path"] == path)
            .unwrap_or_else(|| panic!("no change of prod at {path}: {doc}"))
            .clone()
    };

    // Off by default: the document has no provenance at all.
    let r = world.pipeline(
        &config,
        &["--dry-run", "--output", "json", "--targets", "prod"],
    );
    r.success();
    assert!(!r.stdout.contains("\"provenance\""), "{}", r.stdout);

    let r = world.pipeline(
        &config,
        &[
            "--dry-run",
            "--output",
            "json",
            "--targets",
            "prod",
            "--provenance",
        ],
    );
    r.success();
    assert!(!r.stdout.contains(SENTINEL));
    let doc = r.json();
    let c = prod(&doc, "app/db");
    assert_eq!(c["type"], "added");
    assert_eq!(
        c["provenance"],
        json!({
            "environment": "target:prod",
            "host": "source:staging-src",
            "hosts": "source:staging-src",
            "log.level": "source:staging-src",
            "password": "source:base",
            "port": "source:base",
            "tier": "target:common",
            "user": "source:base",
        })
    );
    assert_eq!(
        prod(&doc, "app/only")["provenance"],
        json!({"environment": "target:prod", "k": "source:staging-src"})
    );

    // After an apply, a modified secret carries it too; nothing else listed does.
    world
        .pipeline(&config, &["--targets", "prod", "--output", "json"])
        .success();
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"host": "base-host", "port": "6543", "hosts": ["a", "b"], "password": SENTINEL, "user": "app"}),
        )
        .await;
    let r = world.pipeline(
        &config,
        &[
            "--dry-run",
            "--output",
            "json",
            "--targets",
            "prod",
            "--provenance",
        ],
    );
    r.success();
    let doc = r.json();
    let c = prod(&doc, "app/db");
    assert_eq!(c["type"], "modified");
    assert_eq!(c["provenance"]["port"], "source:base");
    for c in doc["changes"].as_array().unwrap() {
        let written = c["type"] == "added" || c["type"] == "modified";
        assert_eq!(c.get("provenance").is_some(), written, "{c}");
    }

    // Only with the JSON document, and only where there is a merge phase.
    let r = world.pipeline(&config, &["--dry-run", "--provenance"]);
    r.code(1)
        .stderr_has("--provenance adds a field to the JSON document");
    let r = world.pipeline(
        &config,
        &[
            "--dry-run",
            "--output",
            "json",
            "--sync-only",
            "--provenance",
        ],
    );
    r.code(2).stderr_has("--provenance");
}

/// A layer from the merge store: one config writes target `producer`'s bundle (`--merge-only`),
/// another imports it by name and explains a secret built on it.
#[tokio::test]
async fn explain_reads_stored_bundles_from_the_merge_store() {
    let world = World::from_env().await;
    let id = unique("explainstore");
    let bucket = unique("explain-store-");
    world.create_bucket(&bucket).await;
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"host": "base-host", "port": "1"}),
        )
        .await;
    world
        .put(&format!("{id}/over/app/db"), json!({"port": "2"}))
        .await;
    let store = format!(
        "merge_store: {{ enabled: true, type: s3, bucket: {bucket}, prefix: merged/, region: us-east-1 }}\n"
    );
    let producer = world.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
{store}targets:
  - name: producer
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/producer/
    imports: [base]
    overrides: {{ from: producer }}
"
    ));
    world.pipeline(&producer, &["--merge-only"]).success();
    let consumer = world.config(&format!(
        "vault_sources:
  - mount: secret/{id}/over/
    name: over
{store}targets:
  - name: consumer
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/consumer/
    imports: [producer, over]
"
    ));
    let r = explain(
        &world,
        &consumer,
        &[
            "--target", "consumer", "--path", "app/db", "--output", "json",
        ],
    );
    r.success();
    no_values(&r);
    let doc = r.json();
    assert_eq!(
        doc["layers"],
        json!([
            {"number": 1, "kind": "stored", "name": "producer", "label": "stored:producer", "via": [], "present": true},
            {"number": 2, "kind": "source", "name": "over", "label": "source:over", "via": [], "present": true},
        ])
    );
    assert_eq!(
        doc_winners(&doc),
        json!({"from": "stored:producer", "host": "stored:producer", "port": "source:over"})
    );

    // A stored import that is not in the store: the pipeline's own error.
    let missing = world.config(&format!(
        "vault_sources:
  - mount: secret/{id}/over/
    name: over
{store}targets:
  - name: consumer
    type: aws_secretsmanager
    region: {REGION}
    imports: [nobody-wrote-this, over]
"
    ));
    let r = explain(
        &world,
        &missing,
        &["--target", "consumer", "--path", "app/db"],
    );
    r.code(1)
        .stderr_has("import `nobody-wrote-this` of target `consumer` is not a target, a Vault source, or a bundle in the merge store");
}
