//! End to end: the real `secretsync` binary syncing real OpenBao into Parameter Store (moto)
//! with `mapping: per_key`, like a user with a config file; a re-run writes nothing. Needs the
//! local servers (`scripts/test.sh`, or `scripts/servers.sh start && source .servers/env`).
//! Parameter Store is inspected with the AWS SDK directly, never through the code under test.

mod support_sync;

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::types::ResourceTypeForTagging;
use serde_json::json;
use support_sync::{World, plan_counts, unique};

/// A region no other end-to-end test uses (its Secrets Manager holds this test's lease).
const REGION: &str = "af-south-1";

/// Every parameter under `path`: name → (value, version, type).
async fn parameters(
    ssm: &aws_sdk_ssm::Client,
    path: &str,
) -> BTreeMap<String, (String, i64, String)> {
    let mut out = BTreeMap::new();
    let mut pages = ssm
        .get_parameters_by_path()
        .path(path)
        .recursive(true)
        .with_decryption(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for p in page.expect("GetParametersByPath").parameters() {
            out.insert(
                p.name().unwrap().to_string(),
                (
                    p.value().unwrap().to_string(),
                    p.version(),
                    p.r#type().unwrap().as_str().to_string(),
                ),
            );
        }
    }
    out
}

#[tokio::test]
async fn per_key_parameters_land_and_a_rerun_writes_nothing() {
    let w = World::from_env().await;
    let id = unique("params");
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "s3cr3t-pw", "port": 5432, "tls": {"verify": true}}),
    )
    .await;
    w.put(&format!("{id}/base/app/api"), json!({"key": "api-key-1"}))
        .await;
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: params
    type: aws_ssm
    region: {REGION}
    secret_prefix: /{id}/
    mapping: per_key
    writes_per_second: 100
    imports: [base]
"
    ));
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&w.aws_endpoint)
        .region(Region::new(REGION))
        .test_credentials()
        .load()
        .await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);

    let first = w.pipeline(&config, &[]);
    first
        .success()
        .stdout_has(&plan_counts("params", 2, 0, 0, 0, 0));
    let landed = parameters(&ssm, &format!("/{id}")).await;
    let values: BTreeMap<&str, &str> = landed
        .iter()
        .map(|(k, v)| (k.strip_prefix(&format!("/{id}/")).unwrap(), v.0.as_str()))
        .collect();
    assert_eq!(
        values,
        BTreeMap::from([
            ("app/api/key", "api-key-1"),
            ("app/db/password", "s3cr3t-pw"),
            ("app/db/port", "5432"),
            ("app/db/tls", r#"{"verify":true}"#),
            ("app/db/user", "app"),
        ])
    );
    assert!(
        landed
            .values()
            .all(|(_, v, t)| *v == 1 && t == "SecureString"),
        "{landed:?}"
    );
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(format!("/{id}/app/db/port"))
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<&str, &str> = tags
        .tag_list()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags.get("managed-by"), Some(&"secretsync"));
    assert_eq!(tags.get("secretsync:target"), Some(&"params"));
    assert_eq!(tags.get("secretsync:path"), Some(&"app/db"));
    // No value in the output.
    assert!(!first.stdout.contains("s3cr3t-pw") && !first.stderr.contains("s3cr3t-pw"));

    // A re-run writes nothing: no new parameter versions, the plan says all unchanged.
    let second = w.pipeline(&config, &["--output", "json"]);
    let doc = second.success().json();
    assert_eq!(
        doc["summary"],
        json!({"added": 0, "modified": 0, "deleted": 0, "unchanged": 2, "skipped": 0}),
        "{}",
        second.stdout
    );
    assert_eq!(doc["changes"], json!([]));
    assert_eq!(parameters(&ssm, &format!("/{id}")).await, landed);
    // One tag-filtered listing, one GetParameters (5 parameters) and the fingerprint key; no
    // lease (a run with nothing to change takes none).
    assert_eq!(doc["aws_calls"], json!(1 + 1 + 1), "{}", second.stdout);
}
