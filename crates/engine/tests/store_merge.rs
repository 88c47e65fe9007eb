//! The merge stores against real servers (S3 on moto, KV v2 on OpenBao), one script run on
//! both: round trip with keyed manifests (no plain hash of a value in any manifest), verified
//! reads (a tampered or half-written bundle is an error), manifest paths validated before any
//! read or delete, one fingerprint key however many runs start at once, and manifests written
//! by the previous version (plain SHA-256, no key) still readable and upgraded on write.
//!
//! Objects are planted and inspected through the servers' own APIs, never through the code
//! under test.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use reqwest::{Method, StatusCode};
use secretsync_core::config::MergeStoreConfig;
use secretsync_core::fingerprint::{FingerprintKey, legacy_content_hash};
use secretsync_core::secret::{Bundle, SecretValue};
use secretsync_engine::aws::AwsContext;
use secretsync_engine::store::manifest::KEY_OBJECT;
use secretsync_engine::store::{self, Manifest, MergeStore, WriteStats};
use secretsync_engine::vault::VaultClient;
use serde_json::{Value, json};

mod common;
use common::{Bao, unique};

enum Backend {
    S3 {
        aws: Box<AwsContext>,
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    Vault {
        bao: Bao,
        client: VaultClient,
        /// The KV v2 mount, without `/`.
        kv: String,
    },
}

/// One store root on a real server, with raw access for planting and inspecting objects.
struct Fixture {
    backend: Backend,
    cfg: MergeStoreConfig,
}

const PREFIX: &str = "merged/";

impl Fixture {
    async fn s3() -> Fixture {
        let ep = std::env::var("SECRETSYNC_TEST_AWS_ENDPOINT").expect(
            "SECRETSYNC_TEST_AWS_ENDPOINT is not set: run `scripts/servers.sh start && source .servers/env` first",
        );
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&ep)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
            // moto answers 500 now and then under concurrent requests; the SDK retries those.
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
            .build();
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let bucket = unique("store-");
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("CreateBucket");
        // Versioning lets a test count how often an object was written.
        client
            .put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("PutBucketVersioning");
        Fixture {
            cfg: MergeStoreConfig::S3 {
                bucket: bucket.clone(),
                prefix: PREFIX.into(),
                region: Some("us-east-1".into()),
                kms_key_id: None,
            },
            backend: Backend::S3 {
                aws: Box::new(AwsContext::from_sdk_config(sdk)),
                client,
                bucket,
            },
        }
    }

    async fn vault() -> Fixture {
        let bao = Bao::from_env();
        let kv = unique("store");
        bao.enable_kv2(&kv).await;
        let client = bao.root_client().await;
        Fixture {
            cfg: MergeStoreConfig::Vault {
                mount: format!("{kv}/{PREFIX}"),
            },
            backend: Backend::Vault { bao, client, kv },
        }
    }

    /// A store as a new run builds it (its own key cache).
    async fn store(&self) -> Arc<dyn MergeStore> {
        match &self.backend {
            Backend::S3 { aws, .. } => store::build(&self.cfg, Some(aws), None).await,
            Backend::Vault { client, .. } => store::build(&self.cfg, None, Some(client)).await,
        }
        .expect("building the store")
    }

    fn suffix(&self) -> &'static str {
        match self.backend {
            Backend::S3 { .. } => ".json",
            Backend::Vault { .. } => "",
        }
    }

    fn object(&self, bundle: &str, path: &str) -> String {
        format!("{bundle}/{path}{}", self.suffix())
    }

    fn manifest_key(&self, bundle: &str) -> String {
        format!("{bundle}.bundle{}", self.suffix())
    }

    /// An object's bytes (Vault: the secret's data as JSON), read past the store.
    async fn raw_get(&self, key: &str) -> Option<Vec<u8>> {
        match &self.backend {
            Backend::S3 { client, bucket, .. } => {
                match client
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{PREFIX}{key}"))
                    .send()
                    .await
                {
                    Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
                    Err(e) => panic!("GetObject {key}: {e:?}"),
                }
            }
            Backend::Vault { bao, kv, .. } => {
                let (status, v) = bao
                    .request_as(
                        &bao.root,
                        Method::GET,
                        &format!("{kv}/data/{PREFIX}{key}"),
                        None,
                    )
                    .await;
                match status {
                    StatusCode::OK => Some(serde_json::to_vec(&v["data"]["data"]).unwrap()),
                    StatusCode::NOT_FOUND => None,
                    s => panic!("reading {key}: {s} {v}"),
                }
            }
        }
    }

    /// Writes an object past the store (Vault: `body` must be a JSON object).
    async fn raw_put(&self, key: &str, body: &[u8]) {
        match &self.backend {
            Backend::S3 { client, bucket, .. } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{PREFIX}{key}"))
                    .body(ByteStream::from(body.to_vec()))
                    .send()
                    .await
                    .expect("PutObject");
            }
            Backend::Vault { bao, kv, .. } => {
                let data: Value = serde_json::from_slice(body).expect("a JSON body");
                bao.put(kv, &format!("{PREFIX}{key}"), data).await;
            }
        }
    }

    /// How many times the fingerprint key object was written.
    async fn key_writes(&self) -> usize {
        match &self.backend {
            Backend::S3 { client, bucket, .. } => {
                let key = format!("{PREFIX}{KEY_OBJECT}");
                let out = client
                    .list_object_versions()
                    .bucket(bucket)
                    .prefix(&key)
                    .send()
                    .await
                    .expect("ListObjectVersions");
                out.versions()
                    .iter()
                    .filter(|v| v.key() == Some(key.as_str()))
                    .count()
            }
            Backend::Vault { bao, kv, .. } => {
                let v = bao
                    .ok(
                        Method::GET,
                        &format!("{kv}/metadata/{PREFIX}{KEY_OBJECT}"),
                        None,
                    )
                    .await;
                v["data"]["current_version"].as_u64().unwrap() as usize
            }
        }
    }

    /// The store's fingerprint key, read past the store.
    async fn key(&self) -> FingerprintKey {
        let body = self
            .raw_get(KEY_OBJECT)
            .await
            .expect("the store keeps its fingerprint key");
        let v: Value = serde_json::from_slice(&body).unwrap();
        FingerprintKey::from_hex(v["key"].as_str().unwrap()).expect("a 32-byte hex key")
    }

    async fn manifest(&self, bundle: &str) -> (String, Manifest) {
        let bytes = self
            .raw_get(&self.manifest_key(bundle))
            .await
            .expect("a manifest");
        let text = String::from_utf8(bytes).unwrap();
        let m = serde_json::from_str(&text).unwrap();
        (text, m)
    }
}

fn bundle(items: &[(&str, Value)]) -> Bundle {
    items
        .iter()
        .map(|(p, v)| {
            (
                p.to_string(),
                SecretValue::new(v.as_object().unwrap().clone()),
            )
        })
        .collect()
}

fn stats(written: usize, unchanged: usize, deleted: usize) -> WriteStats {
    WriteStats {
        written,
        unchanged,
        deleted,
        reencrypted: 0,
    }
}

/// Runs one check against both stores.
macro_rules! on_both {
    ($check:ident) => {
        mod $check {
            #[tokio::test]
            async fn s3() {
                super::$check(&super::Fixture::s3().await).await;
            }
            #[tokio::test]
            async fn vault() {
                super::$check(&super::Fixture::vault().await).await;
            }
        }
    };
}

on_both!(round_trip_with_keyed_manifests);
async fn round_trip_with_keyed_manifests(f: &Fixture) {
    let store = f.store().await;
    let b = bundle(&[
        (
            "app/db",
            json!({"password": "S3NT1NEL-pw", "port": 5432, "nested": {"t": "S3NT1NEL-t"}}),
        ),
        ("top", json!({"k": "S3NT1NEL-k"})),
    ]);
    let skipped = vec![secretsync_core::secret::Gap::new(
        "base",
        "deep/",
        "is deeper than `max_depth` (1)",
    )];
    assert_eq!(
        store
            .write_bundle("t", &b, &skipped, "run-1")
            .await
            .unwrap(),
        stats(2, 0, 0)
    );
    let got = store.read_bundle("t").await.unwrap().expect("stored");
    assert_eq!(got.secrets, b);
    assert_eq!(got.incomplete, skipped);
    assert!(store.read_bundle("never-written").await.unwrap().is_none());

    // The manifest holds keyed fingerprints: no value, no plain SHA-256 of a value.
    let (text, m) = f.manifest("t").await;
    assert!(!text.contains("S3NT1NEL"), "{text}");
    for v in b.values() {
        assert!(!text.contains(&legacy_content_hash(v)), "{text}");
    }
    let key = f.key().await;
    assert_eq!(m.key_id, Some(key.id()));
    for (p, v) in &b {
        assert_eq!(m.secrets[p], key.fingerprint(v), "{p}");
    }
    assert_eq!(m.incomplete, skipped);
    assert!(!m.writing);

    // A later run: one secret unchanged, one removed, one added.
    let b2 = bundle(&[
        (
            "app/db",
            json!({"password": "S3NT1NEL-pw", "port": 5432, "nested": {"t": "S3NT1NEL-t"}}),
        ),
        ("added", json!({"k": "S3NT1NEL-new"})),
    ]);
    let again = f.store().await;
    assert_eq!(
        again.write_bundle("t", &b2, &[], "run-2").await.unwrap(),
        stats(1, 1, 1)
    );
    assert!(f.raw_get(&f.object("t", "top")).await.is_none());
    let got = again.read_bundle("t").await.unwrap().unwrap();
    assert_eq!(got.secrets, b2);
    assert!(got.incomplete.is_empty());
    assert_eq!(
        again.write_bundle("t", &b2, &[], "run-3").await.unwrap(),
        stats(0, 2, 0)
    );
    assert_eq!(f.key_writes().await, 1, "one key for every run and bundle");
}

on_both!(tampered_or_half_written_bundles_are_errors);
async fn tampered_or_half_written_bundles_are_errors(f: &Fixture) {
    let store = f.store().await;
    let b = bundle(&[("a", json!({"k": "one"})), ("b", json!({"k": "two"}))]);
    store.write_bundle("t", &b, &[], "run-1").await.unwrap();

    // A changed object.
    let a = f.object("t", "a");
    f.raw_put(&a, br#"{"k":"evil"}"#).await;
    let err = store.read_bundle("t").await.expect_err("tampered");
    assert!(
        err.message.contains(&format!("{PREFIX}{a}"))
            && err.message.contains("does not match its fingerprint")
            && err.message.contains("re-run the merge phase"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("evil"), "{}", err.message);

    // A run that stopped between its objects and its manifest.
    store.write_bundle("t", &b, &[], "run-2").await.unwrap();
    let (_, mut m) = f.manifest("t").await;
    m.writing = true;
    f.raw_put(&f.manifest_key("t"), &serde_json::to_vec(&m).unwrap())
        .await;
    let err = store.read_bundle("t").await.expect_err("unfinished");
    assert!(
        err.message.contains("half-written") && err.message.contains("re-run the merge phase"),
        "{}",
        err.message
    );
    // Writing again finishes it.
    assert_eq!(
        store.write_bundle("t", &b, &[], "run-3").await.unwrap(),
        stats(2, 0, 0),
        "an unfinished manifest's fingerprints are not trusted"
    );
    assert_eq!(store.read_bundle("t").await.unwrap().unwrap().secrets, b);
}

/// S3 only: an object cut short is not JSON.
#[tokio::test]
async fn a_truncated_s3_object_is_an_error() {
    let f = Fixture::s3().await;
    let store = f.store().await;
    store
        .write_bundle("t", &bundle(&[("a", json!({"k": "v"}))]), &[], "r")
        .await
        .unwrap();
    f.raw_put(&f.object("t", "a"), br#"{"k":"#).await;
    let err = store.read_bundle("t").await.expect_err("truncated");
    assert!(
        err.message.contains("merged/t/a.json") && err.message.contains("re-run the merge phase"),
        "{}",
        err.message
    );
}

on_both!(manifest_paths_are_validated_before_anything_is_read_or_deleted);
async fn manifest_paths_are_validated_before_anything_is_read_or_deleted(f: &Fixture) {
    let store = f.store().await;
    let other = bundle(&[("x", json!({"k": "other's"}))]);
    store.write_bundle("other", &other, &[], "r").await.unwrap();
    let t = bundle(&[("a", json!({"k": "a"}))]);
    store.write_bundle("t", &t, &[], "r").await.unwrap();

    // A manifest entry pointing out of its bundle.
    let (_, mut m) = f.manifest("t").await;
    let escape = "../other/x";
    m.secrets.insert(escape.into(), "0".repeat(64));
    f.raw_put(&f.manifest_key("t"), &serde_json::to_vec(&m).unwrap())
        .await;

    // Writing `t` without that entry would delete it: refused, nothing deleted.
    let err = store
        .write_bundle("t", &bundle(&[("b", json!({"k": "b"}))]), &[], "r2")
        .await
        .expect_err("a traversal path in the manifest");
    assert!(err.message.contains(escape), "{}", err.message);
    assert!(f.raw_get(&f.object("other", "x")).await.is_some());
    assert!(
        f.raw_get(&f.object("t", "a")).await.is_some(),
        "nothing was deleted"
    );
    assert!(
        f.raw_get(&f.object("t", "b")).await.is_none(),
        "nothing was written"
    );
    assert_eq!(
        store.read_bundle("other").await.unwrap().unwrap().secrets,
        other
    );
    let err = store.read_bundle("t").await.expect_err("and never read");
    assert!(err.message.contains(escape), "{}", err.message);
}

on_both!(concurrent_first_writes_create_one_key);
async fn concurrent_first_writes_create_one_key(f: &Fixture) {
    let stores = [f.store().await, f.store().await, f.store().await];
    let bundles: Vec<Bundle> = (0..stores.len())
        .map(|i| bundle(&[("s", json!({ "i": i }))]))
        .collect();
    let names = ["one", "two", "three"];
    let results = futures::future::join_all(
        stores
            .iter()
            .zip(&bundles)
            .zip(names)
            .map(|((s, b), n)| s.write_bundle(n, b, &[], n)),
    )
    .await;
    for r in results {
        r.expect("every first write succeeds");
    }
    assert_eq!(f.key_writes().await, 1, "exactly one key was created");
    let key = f.key().await;
    let reader = f.store().await;
    for (n, b) in names.iter().zip(&bundles) {
        assert_eq!(f.manifest(n).await.1.key_id, Some(key.id()), "{n}");
        assert_eq!(&reader.read_bundle(n).await.unwrap().unwrap().secrets, b);
    }
}

on_both!(legacy_manifests_are_read_and_upgraded);
async fn legacy_manifests_are_read_and_upgraded(f: &Fixture) {
    // What the previous version wrote: objects, and a manifest of plain SHA-256 hashes.
    let b = bundle(&[
        ("app/db", json!({"pw": "S3NT1NEL-1", "user": "u"})),
        ("top", json!({"k": 1})),
    ]);
    for (p, v) in &b {
        f.raw_put(&f.object("t", p), v.canonical_json().as_bytes())
            .await;
    }
    let legacy = json!({
        "bundle": "t",
        "secrets": b.iter().map(|(p, v)| (p.clone(), json!(legacy_content_hash(v)))).collect::<serde_json::Map<_, _>>(),
        "run_id": "old-run",
    });
    f.raw_put(
        &f.manifest_key("t"),
        &serde_json::to_vec_pretty(&legacy).unwrap(),
    )
    .await;

    let store = f.store().await;
    let got = store.read_bundle("t").await.unwrap().expect("readable");
    assert_eq!(got.secrets, b);
    assert!(got.incomplete.is_empty());
    assert!(
        f.raw_get(KEY_OBJECT).await.is_none(),
        "reading creates no key"
    );

    // Legacy hashes still verify: a changed object is refused.
    let top = f.object("t", "top");
    f.raw_put(&top, br#"{"k":2}"#).await;
    let err = store.read_bundle("t").await.expect_err("tampered");
    assert!(err.message.contains("does not match"), "{}", err.message);
    f.raw_put(&top, br#"{"k":1}"#).await;

    // Writing over it rewrites every object once and leaves a keyed manifest.
    assert_eq!(
        store.write_bundle("t", &b, &[], "new-run").await.unwrap(),
        stats(2, 0, 0)
    );
    let (text, m) = f.manifest("t").await;
    for v in b.values() {
        assert!(!text.contains(&legacy_content_hash(v)), "{text}");
    }
    assert_eq!(m.key_id, Some(f.key().await.id()));
    assert_eq!(
        store.write_bundle("t", &b, &[], "next-run").await.unwrap(),
        stats(0, 2, 0)
    );
    assert_eq!(
        f.store()
            .await
            .read_bundle("t")
            .await
            .unwrap()
            .unwrap()
            .secrets,
        b
    );
}

/// S3 only: changing the store's `kms_key_id` re-encrypts every object the next bundle write
/// leaves unchanged (a copy in place under the new key; moto reports SSE-KMS key ids but does
/// not check them against KMS), and a write after that re-encrypts nothing.
#[tokio::test]
async fn a_new_s3_kms_key_re_encrypts_the_unchanged_objects() {
    let mut f = Fixture::s3().await;
    let with_key = |f: &mut Fixture, k: &str| {
        if let MergeStoreConfig::S3 { kms_key_id, .. } = &mut f.cfg {
            *kms_key_id = Some(k.into());
        }
    };
    let under = |f: &Fixture, key: String| {
        let Backend::S3 { client, bucket, .. } = &f.backend else {
            unreachable!()
        };
        let (client, bucket) = (client.clone(), bucket.clone());
        async move {
            let h = client
                .head_object()
                .bucket(&bucket)
                .key(format!("{PREFIX}{key}"))
                .send()
                .await
                .expect("HeadObject");
            (
                h.server_side_encryption().map(|s| s.as_str().to_string()),
                h.ssekms_key_id().map(str::to_string),
            )
        }
    };
    let kms = |k: &str| (Some("aws:kms".to_string()), Some(k.to_string()));
    let b = bundle(&[("a", json!({"k": "1"})), ("d/b", json!({"k": "2"}))]);
    with_key(&mut f, "alias/one");
    let s = f
        .store()
        .await
        .write_bundle("t", &b, &[], "r")
        .await
        .unwrap();
    assert_eq!((s.written, s.reencrypted), (2, 0));
    assert_eq!(under(&f, f.object("t", "a")).await, kms("alias/one"));

    // The same key: nothing to re-encrypt, no object looked at.
    let s = f
        .store()
        .await
        .write_bundle("t", &b, &[], "r")
        .await
        .unwrap();
    assert_eq!((s.unchanged, s.reencrypted), (2, 0));

    with_key(&mut f, "alias/two");
    let mut changed = b.clone();
    changed.insert(
        "a".into(),
        SecretValue::new(json!({"k": "new"}).as_object().unwrap().clone()),
    );
    let s = f
        .store()
        .await
        .write_bundle("t", &changed, &[], "r")
        .await
        .unwrap();
    assert_eq!(
        (s.written, s.unchanged, s.reencrypted),
        (1, 1, 1),
        "a is written under the new key, d/b copied in place"
    );
    for p in ["a", "d/b"] {
        assert_eq!(under(&f, f.object("t", p)).await, kms("alias/two"), "{p}");
    }
    assert_eq!(under(&f, f.manifest_key("t")).await, kms("alias/two"));
    let read = f.store().await.read_bundle("t").await.unwrap().unwrap();
    assert_eq!(read.secrets, changed, "the copies read back the same");
    let s = f
        .store()
        .await
        .write_bundle("t", &changed, &[], "r")
        .await
        .unwrap();
    assert_eq!(s.reencrypted, 0, "a re-run re-encrypts nothing");
}
