//! End to end: KMS key rotation. The real `secretsync` binary syncs OpenBao into Secrets
//! Manager and Parameter Store (moto) under one `kms_key_id`, then under another: the plan shows
//! a re-encrypt for every managed secret, the apply moves them all to the new key with their
//! values unchanged, and a re-run plans nothing. moto records the key ids it is given without
//! checking them against KMS, so the keys here are aliases nobody created. Needs the local
//! servers (`scripts/servers.sh start && source .servers/env`); AWS is inspected with the SDK
//! directly, never through the code under test.

mod support_sync;

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region};
use serde_json::json;
use support_sync::{World, unique, versions};

/// A region no other end-to-end test uses.
const REGION: &str = "ap-southeast-3";

fn config(id: &str, key: &str) -> String {
    format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: sm
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/sm/
    kms_key_id: {key}
    imports: [base]
  - name: params
    type: aws_ssm
    region: {REGION}
    secret_prefix: /{id}/params/
    mapping: per_key
    kms_key_id: {key}
    writes_per_second: 100
    imports: [base]
"
    )
}

/// Secrets Manager: name → its KMS key; Parameter Store: name → (key, value, version).
async fn keys(
    sdk: &aws_config::SdkConfig,
    id: &str,
) -> (
    BTreeMap<String, Option<String>>,
    BTreeMap<String, (Option<String>, String, i64)>,
) {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let mut secrets = BTreeMap::new();
    for name in ["app/db", "app/api"] {
        let name = format!("{id}/sm/{name}");
        let d = sm
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .expect("DescribeSecret");
        secrets.insert(name, d.kms_key_id().map(str::to_string));
    }
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let prefix = format!("/{id}/params/");
    let listed = ssm
        .describe_parameters()
        .parameter_filters(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .option("BeginsWith")
                .values(&prefix)
                .build()
                .unwrap(),
        )
        .max_results(50)
        .send()
        .await
        .expect("DescribeParameters");
    let mut params = BTreeMap::new();
    for p in listed.parameters() {
        let name = p.name().unwrap().to_string();
        let got = ssm
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await
            .expect("GetParameter");
        let value = got.parameter().unwrap().value().unwrap().to_string();
        params.insert(
            name.strip_prefix(&prefix).unwrap().to_string(),
            (p.key_id().map(str::to_string), value, p.version()),
        );
    }
    (secrets, params)
}

#[tokio::test]
async fn changing_kms_key_id_re_encrypts_every_managed_secret_and_a_rerun_plans_nothing() {
    let w = World::from_env().await;
    let id = unique("kms");
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "K3YR0T-pw"}),
    )
    .await;
    w.put(&format!("{id}/base/app/api"), json!({"key": "K3YR0T-k"}))
        .await;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&w.aws_endpoint)
        .region(Region::new(REGION))
        .test_credentials()
        .load()
        .await;

    let one = w.config(&config(&id, "alias/one"));
    w.pipeline(&one, &[]).success();
    let (sm, params) = keys(&sdk, &id).await;
    assert!(
        sm.values().all(|k| k.as_deref() == Some("alias/one")),
        "{sm:?}"
    );
    assert_eq!(params.len(), 3, "{params:?}");
    assert!(
        params
            .values()
            .all(|(k, _, v)| k.as_deref() == Some("alias/one") && *v == 1),
        "{params:?}"
    );

    let sm_versions = versions(&w.sm(REGION).list(&format!("{id}/sm/")).await);
    let two = w.config(&config(&id, "alias/two"));
    let run = w.pipeline(&two, &[]);
    run.success();
    // Every managed secret of both targets is planned as a re-encrypt, nothing else.
    let reencrypts: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(r#"kms_key_id: "alias/one" → "alias/two" (re-encrypt: "#))
        .collect();
    assert_eq!(reencrypts.len(), 4, "{}", run.stdout);
    for name in [
        format!("= {id}/sm/app/db "),
        format!("= {id}/sm/app/api "),
        format!("= /{id}/params/app/db "),
        format!("= /{id}/params/app/api "),
    ] {
        assert!(
            reencrypts.iter().any(|l| l.trim_start().starts_with(&name)),
            "{name}: {}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("K3YR0T") && !run.stderr.contains("K3YR0T"));
    let (sm, after) = keys(&sdk, &id).await;
    assert!(
        sm.values().all(|k| k.as_deref() == Some("alias/two")),
        "{sm:?}"
    );
    // Secrets Manager re-encrypts its versions itself: no new version.
    assert_eq!(
        versions(&w.sm(REGION).list(&format!("{id}/sm/")).await),
        sm_versions
    );
    for (name, (k, value, version)) in &after {
        assert_eq!(k.as_deref(), Some("alias/two"), "{name}");
        assert_eq!(value, &params[name].1, "{name}: the same value");
        assert_eq!(*version, 2, "{name}: a new version");
    }

    // A re-run plans nothing in either target.
    let again = w.pipeline(&two, &["--output", "json"]);
    let doc = again.success().json();
    assert_eq!(doc["changes"], json!([]), "{}", again.stdout);
    assert_eq!(keys(&sdk, &id).await.1, after);
}

/// The S3 merge store: after a change of its `kms_key_id`, the next merge copies the bundle's
/// unchanged objects in place under the new key and says so; the run after that re-encrypts
/// nothing.
#[tokio::test]
async fn changing_the_merge_store_kms_key_re_encrypts_its_objects_at_the_next_merge() {
    let w = World::from_env().await;
    let id = unique("kmsstore");
    let bucket = unique("kms-store-").to_lowercase();
    w.create_bucket(&bucket).await;
    w.put(
        &format!("{id}/base/app/db"),
        json!({"password": "K3YR0T-pw"}),
    )
    .await;
    w.put(&format!("{id}/base/app/api"), json!({"key": "K3YR0T-k"}))
        .await;
    let config = |key: &str| {
        w.config(&support_sync::single_target(
            &id,
            REGION,
            &format!(
                "merge_store: {{ type: s3, bucket: {bucket}, prefix: m/, region: us-east-1, kms_key_id: {key} }}\n"
            ),
        ))
    };
    let s3 = w.s3();
    let under = |key: &'static str| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            let h = s3
                .head_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .expect("HeadObject");
            h.ssekms_key_id().map(str::to_string)
        }
    };
    let objects = ["m/t/app/db.json", "m/t/app/api.json", "m/t.bundle.json"];

    let first = w.pipeline(&config("alias/one"), &[]);
    first.success();
    for o in objects {
        assert_eq!(under(o).await.as_deref(), Some("alias/one"), "{o}");
    }
    let run = w.pipeline(&config("alias/two"), &[]);
    run.success().stdout_has(&format!(
        "merge store s3://{bucket}/m/: bundle t: 0 written, 2 unchanged, 0 deleted, 2 re-encrypted under the new KMS key"
    ));
    for o in objects {
        assert_eq!(under(o).await.as_deref(), Some("alias/two"), "{o}");
    }
    let again = w.pipeline(&config("alias/two"), &[]);
    again.success().stdout_has(&format!(
        "merge store s3://{bucket}/m/: bundle t: 0 written, 2 unchanged, 0 deleted\n"
    ));
}
