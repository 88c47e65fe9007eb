//! The Vault KV v2 source against a real OpenBao server: listing, relative paths, JSON values,
//! mounts of every shape, auth (token, AppRole, renewal), limits, permissions, deleted
//! versions, queue compaction and request counts.
//!
//! Needs the local servers: `scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`. Every test works in its own uniquely named mounts, policies and auth paths.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::read_source;
use common::{Bao, LogCapture, no_env, source, unique};
use secretsync_core::config::{Sensitive, SourceConfig, VaultAuth, VaultSettings};
use secretsync_core::secret::{Bundle, Collected};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::vault::VaultClient;
use secretsync_engine::{ErrorKind, pipeline};
use serde_json::{Value, json};

/// The bundle as plain JSON, by relative path.
fn plain(bundle: &Bundle) -> BTreeMap<String, Value> {
    bundle
        .iter()
        .map(|(k, v)| (k.clone(), Value::Object(v.expose().clone())))
        .collect()
}

fn paths(bundle: &Bundle) -> Vec<&str> {
    bundle.keys().map(String::as_str).collect()
}

/// Reads `source` and returns the bundle and the number of Vault requests it took.
async fn read_counting(client: &VaultClient, source: &SourceConfig) -> (Bundle, u64) {
    let before = client.request_count();
    let bundle = read_source(client, source, 8)
        .await
        .unwrap_or_else(|e| panic!("reading source `{}`: {e}", source.name));
    (bundle, client.request_count() - before)
}

/// One mount lookup, one LIST per folder, one read per secret; a little slack for a retried
/// request, never a second pass over the secrets.
fn assert_requests(used: u64, folders: u64, secrets: u64) {
    let minimum = 1 + folders + secrets;
    assert!(
        (minimum..=minimum + 2).contains(&used),
        "expected 1 mount lookup + {folders} lists + {secrets} reads = {minimum} requests (+2 slack), got {used}"
    );
}

/// Values of every JSON type, nested, as Vault stores and returns them.
fn every_json_type(tag: &str) -> Value {
    json!({
        "string": format!("value-{tag}"),
        "empty_string": "",
        "int": 42,
        "negative": -7,
        // OpenBao keeps numbers as float64: integers beyond 2^53 do not round-trip there.
        "big": 9_007_199_254_740_991u64,
        "float": 1.5,
        "true": true,
        "false": false,
        "null": null,
        "list": [1, "two", false, null, {"k": [3.25]}],
        "empty_list": [],
        "empty_map": {},
        "nested": {"a": {"b": {"c": ["deep", {"d": 1}]}}},
    })
}

#[tokio::test]
async fn nested_tree_at_a_bare_mount_root_keeps_relative_paths_and_json_values() {
    let bao = Bao::from_env();
    let mount = unique("kv");
    bao.enable_kv2(&mount).await;
    let tree = [
        "top",
        "app/db",
        "app/api/keys",
        "app/api/v1/deep/leaf",
        "other/x",
    ];
    for p in tree {
        bao.put(&mount, p, every_json_type(p)).await;
    }
    let client = bao.root_client().await;

    let (bundle, used) = read_counting(&client, &source("tree", &format!("{mount}/"))).await;

    let expected: BTreeMap<String, Value> = tree
        .iter()
        .map(|p| (p.to_string(), every_json_type(p)))
        .collect();
    assert_eq!(plain(&bundle), expected);
    // folders: root, app/, app/api/, app/api/v1/, app/api/v1/deep/, other/
    assert_requests(used, 6, tree.len() as u64);
}

#[tokio::test]
async fn sub_path_under_secret_is_the_root_of_relative_paths() {
    let bao = Bao::from_env();
    let id = unique("t");
    for (p, v) in [
        ("base/app/db", json!({"user": "app", "port": 5432})),
        ("base/app/cache/redis", json!({"url": "redis://x"})),
        ("base/shared", json!({"region": "eu"})),
        ("basement/not-me", json!({"x": 1})), // shares a prefix with `base`, not a folder of it
        ("other/not-me", json!({"x": 2})),
        ("not-me", json!({"x": 3})),
    ] {
        bao.put("secret", &format!("{id}/{p}"), v).await;
    }
    let client = bao.root_client().await;

    let (bundle, used) =
        read_counting(&client, &source("base", &format!("secret/{id}/base/"))).await;

    assert_eq!(
        plain(&bundle),
        BTreeMap::from([
            ("app/cache/redis".to_string(), json!({"url": "redis://x"})),
            ("app/db".to_string(), json!({"user": "app", "port": 5432})),
            ("shared".to_string(), json!({"region": "eu"})),
        ])
    );
    // folders: base/, app/, app/cache/
    assert_requests(used, 3, 3);
}

#[tokio::test]
async fn multi_segment_mount_with_and_without_a_sub_path() {
    let bao = Bao::from_env();
    let mount = format!("{}/kv", unique("team"));
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "sub/a", json!({"a": 1})).await;
    bao.put(&mount, "sub/f/b", json!({"b": [true]})).await;
    bao.put(&mount, "outside", json!({"o": "x"})).await;
    let client = bao.root_client().await;

    let under = read_source(&client, &source("sub", &format!("{mount}/sub/")), 4)
        .await
        .expect("reading a sub-path of a multi-segment mount");
    assert_eq!(
        plain(&under),
        BTreeMap::from([
            ("a".to_string(), json!({"a": 1})),
            ("f/b".to_string(), json!({"b": [true]})),
        ])
    );

    let whole = read_source(&client, &source("kv", &format!("{mount}/")), 4)
        .await
        .expect("reading the root of a multi-segment mount");
    assert_eq!(paths(&whole), ["outside", "sub/a", "sub/f/b"]);
}

#[tokio::test]
async fn two_mounts_read_once_each_in_the_merge_phase() {
    let bao = Bao::from_env();
    let (m1, m2) = (unique("one"), unique("two"));
    bao.enable_kv2(&m1).await;
    bao.enable_kv2(&m2).await;
    bao.put(&m1, "db", json!({"host": "h1", "tags": ["a"]}))
        .await;
    bao.put(&m1, "only-one/x", json!({"k": 1})).await;
    bao.put(&m2, "app/db", json!({"host": "h2", "tags": ["b"]}))
        .await;
    bao.put(&m2, "app/y", json!({"k": 2})).await;
    bao.put(&m2, "skipped", json!({"k": 3})).await;
    let client = bao.root_client().await;

    // Directly: each source alone.
    let one = read_source(&client, &source("one", &format!("{m1}/")), 4)
        .await
        .unwrap();
    let two = read_source(&client, &source("two", &format!("{m2}/app/")), 4)
        .await
        .unwrap();
    assert_eq!(paths(&one), ["db", "only-one/x"]);
    assert_eq!(paths(&two), ["db", "y"]);

    // Through the merge phase: three targets import the sources, directly and through each
    // other; each source is still read once.
    let yaml = format!(
        r#"
vault_sources:
  - {{ name: one, mount: {m1}/ }}
  - {{ name: two, mount: {m2}/app/ }}
targets:
  - {{ name: a, type: aws_secretsmanager, region: us-east-1, imports: [one, two] }}
  - {{ name: b, type: aws_secretsmanager, region: us-east-1, imports: [a, two], overrides: {{ env: b }} }}
  - {{ name: c, type: aws_secretsmanager, region: us-east-1, imports: [two, one] }}
"#
    );
    let loaded = secretsync_core::config::load(&yaml, &no_env);
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("config rejected: {:?}", loaded.diagnostics));
    let before = client.request_count();
    let selected = config.graph.order.clone();
    let metrics = secretsync_engine::metrics::Metrics::new();
    let desired = pipeline::merge_phase(
        &config,
        &client,
        &selected,
        &BTreeMap::new(),
        &secretsync_engine::cancel::Cancel::default(),
        &metrics,
    )
    .await
    .expect("merge phase");
    let used = client.request_count() - before;
    // two mount lookups; folders: m1 root, only-one/, m2 app/; secrets: 2 + 2
    assert!(
        (2 + 3 + 4..=2 + 3 + 4 + 2).contains(&used),
        "each source must be read once: {used} requests"
    );
    // The metrics count the secrets read (each source once), not the targets' merged ones.
    let text = metrics.encode().expect("encode the metrics");
    assert!(
        text.lines()
            .any(|l| l == "secretsync_vault_secrets_total 4"),
        "{text}"
    );

    assert_eq!(
        plain(&desired["a"].secrets),
        BTreeMap::from([
            ("db".to_string(), json!({"host": "h2", "tags": ["a", "b"]})),
            ("only-one/x".to_string(), json!({"k": 1})),
            ("y".to_string(), json!({"k": 2})),
        ])
    );
    assert_eq!(
        plain(&desired["b"].secrets),
        BTreeMap::from([
            (
                "db".to_string(),
                json!({"host": "h2", "tags": ["a", "b"], "env": "b"})
            ),
            ("only-one/x".to_string(), json!({"k": 1, "env": "b"})),
            ("y".to_string(), json!({"k": 2, "env": "b"})),
        ])
    );
    assert_eq!(
        plain(&desired["c"].secrets)["db"],
        json!({"host": "h1", "tags": ["b", "a"]})
    );
}

/// A policy that can list and read everything in `mount`.
fn read_policy(mount: &str) -> String {
    format!(
        r#"
path "{mount}/metadata/*" {{ capabilities = ["list", "read"] }}
path "{mount}/data/*" {{ capabilities = ["read"] }}
"#
    )
}

#[tokio::test]
async fn approle_login_on_its_own_auth_mount() {
    let bao = Bao::from_env();
    let mount = unique("ar");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "app/db", json!({"password": "p"})).await;
    let policy = unique("read");
    bao.put_policy(&policy, &read_policy(&mount)).await;
    let auth_mount = unique("approle");
    let (role_id, secret_id) = bao.approle(&auth_mount, "sync", &[&policy]).await;

    // From the config.
    let settings = VaultSettings {
        address: Some(bao.addr.clone()),
        namespace: None,
        auth: Some(VaultAuth::AppRole {
            role_id: Sensitive::new(role_id.clone()),
            secret_id: Sensitive::new(secret_id.clone()),
            mount: auth_mount.clone(),
        }),
        concurrency: 4,
        ca_cert: None,
    };
    let client = VaultClient::connect(&settings, &no_env)
        .await
        .expect("AppRole login from the config");
    let bundle = read_source(&client, &source("ar", &format!("{mount}/")), 4)
        .await
        .expect("reading with the AppRole token");
    assert_eq!(
        plain(&bundle),
        BTreeMap::from([("app/db".to_string(), json!({"password": "p"}))])
    );

    // From the environment, as in CI.
    let env = |name: &str| match name {
        "VAULT_ADDR" => Some(bao.addr.clone()),
        "VAULT_ROLE_ID" => Some(role_id.clone()),
        "VAULT_SECRET_ID" => Some(secret_id.clone()),
        "VAULT_APPROLE_MOUNT" => Some(auth_mount.clone()),
        _ => None,
    };
    let from_env = VaultSettings {
        address: None,
        auth: None,
        ..settings.clone()
    };
    let client = VaultClient::connect(&from_env, &env)
        .await
        .expect("AppRole login from the environment");
    let again = read_source(&client, &source("ar", &format!("{mount}/")), 4)
        .await
        .unwrap();
    assert_eq!(plain(&again), plain(&bundle));

    // A wrong secret id is an auth error that does not echo the credential.
    let wrong = VaultSettings {
        auth: Some(VaultAuth::AppRole {
            role_id: Sensitive::new(role_id.clone()),
            secret_id: Sensitive::new("00000000-wrong-secret-id"),
            mount: auth_mount.clone(),
        }),
        ..settings.clone()
    };
    let err = match VaultClient::connect(&wrong, &no_env).await {
        Ok(_) => panic!("a wrong secret id must not log in"),
        Err(e) => e,
    };
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.message.contains("wrong-secret-id"), "{err}");
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_while_reading() {
    let bao = Bao::from_env();
    let mount = unique("renew");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "a", json!({"v": 1})).await;
    bao.put(&mount, "f/b", json!({"v": 2})).await;
    let policy = unique("read");
    bao.put_policy(&policy, &read_policy(&mount)).await;
    let ttl = Duration::from_secs(3);
    let token = bao
        .create_token(json!({
            "policies": [policy],
            "ttl": "3s",
            "explicit_max_ttl": "60s",
            "renewable": true,
        }))
        .await;
    let created = Instant::now();
    let logs = LogCapture::start();
    let client = bao.client(&token).await;
    let src = source("renew", &format!("{mount}/"));

    // Keep working well past the token's original TTL.
    let mut reads = 0;
    while created.elapsed() < ttl * 5 / 2 {
        let bundle = read_source(&client, &src, 2)
            .await
            .unwrap_or_else(|e| panic!("read {reads} at {:?}: {e}", created.elapsed()));
        assert_eq!(paths(&bundle), ["a", "f/b"]);
        reads += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(reads >= 8, "only {reads} reads");

    // Without renewal the token would have expired at 3 s; it is alive and was renewed.
    let info = bao
        .lookup(&token)
        .await
        .expect("the token must still be valid after 2.5 times its TTL");
    assert!(
        info["last_renewal_time"].as_i64().is_some_and(|t| t > 0),
        "no renewal recorded: {info}"
    );
    let renewals = logs
        .lines()
        .iter()
        .filter(|l| l.contains("renewed the Vault token"))
        .count();
    assert!(
        renewals >= 2,
        "expected several renewals, logged {renewals}"
    );
}

#[tokio::test]
async fn exceeding_max_secrets_is_an_error_naming_the_source_and_the_limit() {
    let bao = Bao::from_env();
    let mount = unique("max");
    bao.enable_kv2(&mount).await;
    for p in ["a", "b", "f/c", "f/d", "f/g/e"] {
        bao.put(&mount, p, json!({"x": p})).await;
    }
    let client = bao.root_client().await;
    let at_limit = SourceConfig {
        max_secrets: 5,
        ..source("capped", &format!("{mount}/"))
    };
    let ok = read_source(&client, &at_limit, 4)
        .await
        .expect("exactly max_secrets secrets is within the limit");
    assert_eq!(ok.len(), 5);

    let over = SourceConfig {
        max_secrets: 4,
        ..at_limit
    };
    let err = read_source(&client, &over, 4)
        .await
        .expect_err("5 secrets with max_secrets 4 must fail, not truncate");
    assert_eq!(err.kind, ErrorKind::Limit, "{err}");
    assert!(err.message.contains("`capped`"), "names the source: {err}");
    assert!(
        err.message.contains('4') && err.message.contains("max_secrets"),
        "names the limit: {err}"
    );
}

/// Reads a source that is expected to have gaps.
async fn read_with_gaps(client: &VaultClient, src: &SourceConfig) -> Collected {
    secretsync_engine::vault::read_source(client, src, 4, &Cancel::default())
        .await
        .unwrap_or_else(|e| panic!("reading `{}`: {e}", src.name))
}

#[tokio::test]
async fn a_folder_the_token_may_not_list_makes_the_source_incomplete() {
    let bao = Bao::from_env();
    let mount = unique("deny");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "top", json!({"x": 1})).await;
    bao.put(&mount, "open/a", json!({"x": 2})).await;
    bao.put(&mount, "closed/b", json!({"x": 3})).await;
    let policy = unique("partial");
    bao.put_policy(
        &policy,
        &format!(
            r#"
path "{mount}/metadata/" {{ capabilities = ["list"] }}
path "{mount}/metadata/open/*" {{ capabilities = ["list"] }}
path "{mount}/data/*" {{ capabilities = ["read"] }}
"#
        ),
    )
    .await;
    let token = bao.token_with_policies(&[&policy]).await;
    let client = bao.client(&token).await;

    // Never read as empty: the unlistable folder is a named gap, the rest is read.
    let read = read_with_gaps(&client, &source("deny", &format!("{mount}/"))).await;
    assert_eq!(paths(&read.secrets), ["open/a", "top"]);
    assert_eq!(read.incomplete.len(), 1, "{:?}", read.incomplete);
    let gap = read.incomplete[0].to_string();
    assert!(
        gap.contains("`closed/`") && gap.contains("permission denied") && gap.contains("`deny`"),
        "names the source, the folder and why: {gap}"
    );

    // The listable part alone reads completely with the same token.
    let open = read_source(&client, &source("open", &format!("{mount}/open/")), 4)
        .await
        .expect("the listable folder");
    assert_eq!(paths(&open), ["a"]);

    // The source's own folder must be listable: that is a failure, not a gap.
    let err = secretsync_engine::vault::read_source(
        &client,
        &source("closed", &format!("{mount}/closed/")),
        4,
        &Cancel::default(),
    )
    .await
    .expect_err("an unlistable source folder fails");
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.message.contains("`list`"),
        "names the capability: {err}"
    );
}

#[tokio::test]
async fn a_secret_the_token_may_not_read_makes_the_source_incomplete() {
    let bao = Bao::from_env();
    let mount = unique("noread");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "ok", json!({"x": 1})).await;
    bao.put(&mount, "secret-one", json!({"x": 2})).await;
    let policy = unique("listonly");
    bao.put_policy(
        &policy,
        &format!(
            r#"
path "{mount}/metadata/*" {{ capabilities = ["list"] }}
path "{mount}/data/ok" {{ capabilities = ["read"] }}
"#
        ),
    )
    .await;
    let token = bao.token_with_policies(&[&policy]).await;
    let client = bao.client(&token).await;

    let read = read_with_gaps(&client, &source("noread", &format!("{mount}/"))).await;
    assert_eq!(paths(&read.secrets), ["ok"]);
    assert_eq!(read.incomplete.len(), 1, "{:?}", read.incomplete);
    assert!(
        read.incomplete[0].to_string().contains("`secret-one`")
            && read.incomplete[0].to_string().contains("permission denied"),
        "{:?}",
        read.incomplete
    );
}

#[tokio::test]
async fn unsafe_keys_and_deep_folders_are_gaps_and_dots_inside_names_are_fine() {
    let bao = Bao::from_env();
    let mount = unique("gaps");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "config..bak", json!({"x": 1})).await;
    bao.put(&mount, "a/b/c/deep", json!({"x": 2})).await;
    let client = bao.client(&bao.root.clone()).await;
    let mut src = source("gaps", &format!("{mount}/"));
    src.max_depth = 1;
    let read = read_with_gaps(&client, &src).await;
    assert_eq!(paths(&read.secrets), ["config..bak"]);
    assert_eq!(read.incomplete.len(), 1, "{:?}", read.incomplete);
    assert!(
        read.incomplete[0].to_string().contains("`a/b/`")
            && read.incomplete[0].to_string().contains("max_depth"),
        "{:?}",
        read.incomplete
    );
}

#[tokio::test]
async fn soft_deleted_and_destroyed_latest_versions_are_skipped() {
    let bao = Bao::from_env();
    let mount = unique("del");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "live", json!({"v": "live"})).await;
    bao.put(&mount, "soft", json!({"v": 1})).await;
    bao.delete_latest(&mount, "soft").await;
    bao.put(&mount, "gone", json!({"v": 1})).await;
    bao.destroy(&mount, "gone", &[1]).await;
    // Older versions live, the latest deleted: skipped, never an older version instead.
    bao.put(&mount, "f/soft-v2", json!({"v": 1})).await;
    bao.put(&mount, "f/soft-v2", json!({"v": 2})).await;
    bao.delete_latest(&mount, "f/soft-v2").await;
    bao.put(&mount, "f/gone-v2", json!({"v": 1})).await;
    bao.put(&mount, "f/gone-v2", json!({"v": 2})).await;
    bao.destroy(&mount, "f/gone-v2", &[2]).await;
    // An older version destroyed, the latest live: read.
    bao.put(&mount, "f/old-gone", json!({"v": 1})).await;
    bao.put(&mount, "f/old-gone", json!({"v": 2})).await;
    bao.destroy(&mount, "f/old-gone", &[1]).await;
    let client = bao.root_client().await;
    let logs = LogCapture::start();

    let bundle = read_source(&client, &source("del", &format!("{mount}/")), 4)
        .await
        .expect("deleted versions are not an error");

    assert_eq!(
        plain(&bundle),
        BTreeMap::from([
            ("f/old-gone".to_string(), json!({"v": 2})),
            ("live".to_string(), json!({"v": "live"})),
        ])
    );
    let skipped: BTreeSet<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("deleted at the source"))
        .collect();
    assert_eq!(
        skipped.len(),
        4,
        "one warning per skipped secret: {skipped:#?}"
    );
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("path=f/gone-v2") && l.contains("destroyed=true")),
        "{skipped:#?}"
    );
}

#[tokio::test]
async fn more_than_a_thousand_secrets_with_queue_compaction() {
    let bao = Bao::from_env();
    let mount = unique("big");
    bao.enable_kv2(&mount).await;
    // 1 root + 10 folders + 100 sub-folders; 11 secrets in each sub-folder, 1 at the root.
    let mut secrets: Vec<(String, Value)> = vec![("root".into(), json!({"i": -1}))];
    for f in 0..10 {
        for g in 0..10 {
            for s in 0..11 {
                let i = (f * 10 + g) * 11 + s;
                secrets.push((format!("f{f:02}/g{g:02}/s{s:02}"), json!({ "i": i })));
            }
        }
    }
    let expected: BTreeMap<String, Value> = secrets.iter().cloned().collect();
    assert_eq!(expected.len(), 1101);
    bao.put_many(&mount, secrets, 16).await;

    let client = bao.root_client().await;
    let src = SourceConfig {
        max_secrets: 2000,
        queue_compaction_threshold: 5,
        ..source("big", &format!("{mount}/"))
    };
    let logs = LogCapture::start();
    let (bundle, used) = read_counting(&client, &src).await;

    assert_eq!(plain(&bundle), expected);
    assert_requests(used, 111, 1101);
    let compactions = logs
        .lines()
        .iter()
        .filter(|l| l.contains("compacted the listing queue"))
        .count();
    assert!(compactions >= 1, "the queue was never compacted");
}

#[tokio::test]
async fn a_missing_source_folder_and_a_missing_mount_are_errors() {
    let bao = Bao::from_env();
    let mount = unique("empty");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "there", json!({"x": 1})).await;
    let client = bao.root_client().await;

    // An empty source would make every target importing it plan to delete its secrets.
    let err = read_source(&client, &source("nothing", &format!("{mount}/nothing/")), 4)
        .await
        .expect_err("a source folder that does not exist is an error, not an empty source");
    assert_eq!(err.kind, secretsync_engine::ErrorKind::Config);
    assert!(
        err.message.contains("`nothing`") && err.message.contains("does not exist"),
        "{err}"
    );

    let nowhere = unique("nomount");
    let err = read_source(&client, &source("nowhere", &format!("{nowhere}/")), 4)
        .await
        .expect_err("a path under no mount is an error");
    assert!(
        err.message.contains(&nowhere) && err.message.contains("`nowhere`"),
        "names the path and the source: {err}"
    );
}

#[tokio::test]
async fn no_secret_value_is_logged_at_any_level() {
    let bao = Bao::from_env();
    let mount = unique("quiet");
    bao.enable_kv2(&mount).await;
    let sentinel = unique("sentinel-");
    bao.put(
        &mount,
        "a",
        json!({"password": sentinel, "n": {"deep": [sentinel.clone()]}}),
    )
    .await;
    bao.put(&mount, "gone", json!({"password": sentinel})).await;
    bao.delete_latest(&mount, "gone").await;
    let policy = unique("read");
    bao.put_policy(&policy, &read_policy(&mount)).await;
    let token = bao.token_with_policies(&[&policy]).await;
    let logs = LogCapture::start();
    let client = bao.client(&token).await;

    let bundle = read_source(&client, &source("quiet", &format!("{mount}/")), 4)
        .await
        .unwrap();
    assert_eq!(paths(&bundle), ["a"]);
    assert!(
        !format!("{bundle:?}").contains(&sentinel),
        "Debug must redact"
    );
    let lines = logs.lines();
    assert!(!lines.is_empty(), "the capture recorded nothing");
    for l in &lines {
        assert!(!l.contains(&sentinel), "a secret value was logged: {l}");
        assert!(!l.contains(&token), "the token was logged: {l}");
    }
}
