//! End to end: the real `secretsync` binary syncing real OpenBao (Vault KV v2) into moto
//! (AWS Secrets Manager, S3, STS), driven like a user with config files and exported
//! addresses. Needs the local servers: `scripts/test.sh`, or `scripts/servers.sh start &&
//! source .servers/env`; without them every test fails loudly.
//!
//! Every test works under its own unique Vault paths (`secret/<id>/...`), secret prefixes
//! (`<id>/...`) and buckets, and in Secrets Manager regions of its own (see `support_sync` for
//! why), so tests run in parallel and against servers that earlier runs used. State is checked
//! with the AWS SDK directly, never through the code under test.

mod support_sync;

use std::collections::BTreeMap;

use aws_sdk_s3::types::ServerSideEncryption;
use serde_json::{Value, json};
use support_sync::{
    DEFAULT_ACCOUNT, Listed, World, closed_address, plan_counts, single_target, unique, versions,
};

#[track_caller]
fn assert_managed_by(listed: &BTreeMap<String, Listed>, name: &str, target: &str) {
    let l = listed
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in AWS: {listed:#?}"));
    assert_eq!(
        l.tags.get("managed-by").map(String::as_str),
        Some("secretsync"),
        "{name}: {l:?}"
    );
    assert_eq!(
        l.tags.get("secretsync:target").map(String::as_str),
        Some(target),
        "{name}: {l:?}"
    );
    assert!(!l.deleted, "{name} is pending deletion");
}

#[tokio::test]
async fn three_level_inheritance_lands_in_two_regions_and_the_role_account() {
    // Regions of their own (see `support_sync`): l1 and l3 in EAST, l2 in WEST.
    const EAST: &str = "eu-west-1";
    const WEST: &str = "eu-west-2";
    let w = World::from_env().await;
    let id = unique("inh");
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "base-pw", "hosts": ["h1"], "pool": {"min": 1, "max": 5}}),
    )
    .await;
    w.put(
        &format!("{id}/base/app/api"),
        json!({"key": "base-key", "flags": {"beta": false}}),
    )
    .await;
    w.put(
        &format!("{id}/prod/app/db"),
        json!({"password": "prod-pw", "hosts": ["h2"], "pool": {"max": 20}}),
    )
    .await;
    let role = "arn:aws:iam::111111111111:role/X";
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
  - mount: secret/{id}/prod/
    name: prod
targets:
  - name: l3
    type: aws_secretsmanager
    region: {EAST}
    secret_prefix: {id}/l3/
    imports: [l2]
    overrides: {{ env: dev, hosts: [h3] }}
  - name: l2
    type: aws_secretsmanager
    region: {WEST}
    role_arn: {role}
    secret_prefix: {id}/l2/
    imports: [l1]
    overrides: {{ env: staging, pool: {{ min: 2 }} }}
  - name: l1
    type: aws_secretsmanager
    region: {EAST}
    secret_prefix: {id}/l1/
    imports: [base, prod]
    overrides: {{ env: prod, tier: gold }}
"
    ));

    let first = w.pipeline(&config, &[]);
    first.success();
    for t in ["l1", "l2", "l3"] {
        first.stdout_has(&plan_counts(t, 2, 0, 0, 0, 0));
    }
    // Topological order, whatever the order in the file.
    let pos = |t: &str| first.stdout.find(&format!("Plan for target {t}:")).unwrap();
    assert!(
        pos("l1") < pos("l2") && pos("l2") < pos("l3"),
        "{}",
        first.stdout
    );

    let east = w.sm(EAST);
    let west = w.sm(WEST);
    let west_role = w.sm_as(role, "111111111111", WEST).await;
    let prefix = format!("{id}/");

    // The role target's secrets are in account 111111111111, nowhere in the default account.
    let in_role: Vec<String> = west_role.list(&prefix).await.into_keys().collect();
    assert_eq!(
        in_role,
        [format!("{id}/l2/app/api"), format!("{id}/l2/app/db")]
    );
    assert!(
        west.list(&prefix).await.is_empty(),
        "nothing may land in {DEFAULT_ACCOUNT} {WEST}"
    );
    let in_default: Vec<String> = east.list(&prefix).await.into_keys().collect();
    assert_eq!(
        in_default,
        [
            format!("{id}/l1/app/api"),
            format!("{id}/l1/app/db"),
            format!("{id}/l3/app/api"),
            format!("{id}/l3/app/db"),
        ],
        "only l1 and l3 belong in {DEFAULT_ACCOUNT} {EAST}"
    );

    // Values: deep merge (lists append, maps merge, later scalars win), then overrides, as
    // canonical JSON with sorted keys.
    let expected = [
        (
            &east,
            "l1/app/db",
            r#"{"env":"prod","hosts":["h1","h2"],"password":"prod-pw","pool":{"max":20,"min":1},"tier":"gold","user":"app"}"#,
        ),
        (
            &east,
            "l1/app/api",
            r#"{"env":"prod","flags":{"beta":false},"key":"base-key","tier":"gold"}"#,
        ),
        (
            &west_role,
            "l2/app/db",
            r#"{"env":"staging","hosts":["h1","h2"],"password":"prod-pw","pool":{"max":20,"min":2},"tier":"gold","user":"app"}"#,
        ),
        (
            &west_role,
            "l2/app/api",
            r#"{"env":"staging","flags":{"beta":false},"key":"base-key","pool":{"min":2},"tier":"gold"}"#,
        ),
        (
            &east,
            "l3/app/db",
            r#"{"env":"dev","hosts":["h1","h2","h3"],"password":"prod-pw","pool":{"max":20,"min":2},"tier":"gold","user":"app"}"#,
        ),
        (
            &east,
            "l3/app/api",
            r#"{"env":"dev","flags":{"beta":false},"hosts":["h3"],"key":"base-key","pool":{"min":2},"tier":"gold"}"#,
        ),
    ];
    for (sm, path, value) in &expected {
        assert_eq!(sm.value(&format!("{id}/{path}")).await, *value, "{path}");
    }
    let east_listed = east.list(&prefix).await;
    let role_listed = west_role.list(&prefix).await;
    assert_managed_by(&east_listed, &format!("{id}/l1/app/db"), "l1");
    assert_managed_by(&role_listed, &format!("{id}/l2/app/db"), "l2");
    assert_managed_by(&east_listed, &format!("{id}/l3/app/api"), "l3");

    // A re-run writes nothing: no new versions anywhere, every plan says 0 to add/modify.
    let second = w.pipeline(&config, &[]);
    second.success();
    for t in ["l1", "l2", "l3"] {
        second.stdout_has(&plan_counts(t, 0, 0, 0, 2, 0));
    }
    assert_eq!(versions(&east.list(&prefix).await), versions(&east_listed));
    assert_eq!(
        versions(&west_role.list(&prefix).await),
        versions(&role_listed)
    );
    for l in east_listed.values().chain(role_listed.values()) {
        assert_eq!(l.versions.len(), 1, "one version per secret: {l:?}");
    }
}

#[tokio::test]
async fn dry_run_plans_but_writes_nothing() {
    const REGION: &str = "us-west-1";
    let w = World::from_env().await;
    let id = unique("dry");
    w.put(&format!("{id}/base/a"), json!({"k": "1"})).await;
    w.put(&format!("{id}/base/b"), json!({"k": "2"})).await;
    let config = w.config(&single_target(&id, REGION, ""));
    let sm = w.sm(REGION);

    let run = w.pipeline(&config, &["--dry-run"]);
    run.success()
        .stdout_has(&plan_counts("t", 2, 0, 0, 0, 0))
        .stdout_has("dry run: nothing written");
    run.change("+", &format!("{id}/t/a"));
    run.change("+", &format!("{id}/t/b"));
    assert_eq!(sm.list(&format!("{id}/")).await.len(), 0);

    // JSON says the same and counts the calls of a plan (one listing page, no writes).
    let json = w.pipeline(&config, &["--dry-run", "--output", "json"]);
    let doc = json.success().json();
    assert_eq!(doc["dry_run"], json!(true));
    assert_eq!(doc["summary"]["added"], json!(2));
    let types: Vec<&Value> = doc["changes"]
        .as_array()
        .expect("changes is a list")
        .iter()
        .map(|c| &c["type"])
        .collect();
    assert_eq!(types, [&json!("added"), &json!("added")], "{}", json.stdout);
    assert_eq!(doc["targets"][0]["result"]["applied"], json!(false));
    // One listing page and one read of the account's fingerprint key.
    assert_eq!(doc["aws_calls"], json!(2));
    assert_eq!(sm.list(&format!("{id}/")).await.len(), 0);

    // --exit-code: 1 means "changes pending".
    w.pipeline(&config, &["--dry-run", "--exit-code"]).code(1);
    assert_eq!(sm.list(&format!("{id}/")).await.len(), 0);

    // The same config without --dry-run does write: the dry run was the only thing stopping it.
    w.pipeline(&config, &[]).success();
    assert_eq!(sm.list(&format!("{id}/")).await.len(), 2);
    w.pipeline(&config, &["--dry-run", "--exit-code"]).code(0);
}

#[tokio::test]
async fn one_vault_change_rewrites_exactly_one_secret() {
    const REGION: &str = "us-east-2";
    let w = World::from_env().await;
    let id = unique("one");
    for p in ["a", "b", "c"] {
        w.put(
            &format!("{id}/base/{p}"),
            json!({"password": format!("{p}-1"), "user": p}),
        )
        .await;
    }
    let config = w.config(&single_target(&id, REGION, ""));
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");
    w.pipeline(&config, &[])
        .success()
        .stdout_has(&plan_counts("t", 3, 0, 0, 0, 0));
    let before = sm.list(&prefix).await;
    assert_eq!(before.len(), 3);

    w.put(
        &format!("{id}/base/b"),
        json!({"password": "b-2", "user": "b", "extra": true}),
    )
    .await;
    let b = format!("{id}/t/b");
    let run = w.pipeline(&config, &[]);
    run.success()
        .stdout_has(&plan_counts("t", 0, 1, 0, 2, 0))
        .stdout_has("Result for t: created 0, updated 1, deleted 0");
    let line = run.change("~", &b);
    assert!(line.contains("[keys: +extra, ~password]"), "{line}");

    let after = sm.list(&prefix).await;
    for p in ["a", "c"] {
        let name = format!("{id}/t/{p}");
        assert_eq!(after[&name].versions, before[&name].versions, "{name}");
    }
    assert_ne!(after[&b].current(), before[&b].current());
    // The plan named both versions: the one it replaced and the one that landed.
    let short = |v: Option<&str>| format!("v{}", &v.expect("a current version")[..8]);
    let versions_shown = format!(
        "({} → {})",
        short(before[&b].current()),
        short(after[&b].current())
    );
    assert!(
        line.contains(&versions_shown),
        "{line} lacks {versions_shown}"
    );
    assert_eq!(after[&b].versions.len(), 2, "{:?}", after[&b]);
    assert_eq!(
        after[&b].tags.get("secretsync:version").map(String::as_str),
        after[&b].current(),
        "the version tag follows the write"
    );
    assert_eq!(
        sm.value(&b).await,
        r#"{"extra":true,"password":"b-2","user":"b"}"#
    );
}

#[tokio::test]
async fn out_of_band_edits_are_detected_from_the_version() {
    const REGION: &str = "ca-central-1";
    let w = World::from_env().await;
    let id = unique("oob");
    w.put(&format!("{id}/base/edited"), json!({"k": "vault"}))
        .await;
    w.put(&format!("{id}/base/touched"), json!({"k": "same"}))
        .await;
    let config = w.config(&single_target(&id, REGION, ""));
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");
    let edited = format!("{id}/t/edited");
    let touched = format!("{id}/t/touched");
    w.pipeline(&config, &[]).success();

    // Someone writes new versions in the console: one with a different value, one with the
    // same value. The content-hash tag still matches Vault; only the version tells.
    for (name, value) in [
        (&edited, r#"{"k":"console"}"#),
        (&touched, r#"{"k":"same"}"#),
    ] {
        sm.client
            .put_secret_value()
            .secret_id(name.as_str())
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutSecretValue {name}: {e:?}"));
    }
    let before = sm.list(&prefix).await;

    let run = w.pipeline(&config, &[]);
    run.success().stdout_has(&plan_counts("t", 0, 1, 0, 1, 0));
    let line = run.change("~", &edited);
    assert!(line.contains("[keys: ~k]"), "{line}");
    let line = run.change("=", &touched);
    assert!(line.contains("ownership tags"), "{line}");
    assert_eq!(sm.value(&edited).await, r#"{"k":"vault"}"#);

    let after = sm.list(&prefix).await;
    // Same value: no new version, the tags now name the console's version.
    assert_eq!(after[&touched].versions, before[&touched].versions);
    assert_eq!(
        after[&touched]
            .tags
            .get("secretsync:version")
            .map(String::as_str),
        after[&touched].current()
    );
    assert_ne!(after[&edited].current(), before[&edited].current());

    w.pipeline(&config, &[])
        .success()
        .stdout_has(&plan_counts("t", 0, 0, 0, 2, 0));
    assert_eq!(versions(&sm.list(&prefix).await), versions(&after));
}

#[tokio::test]
async fn orphans_are_kept_by_default_and_deleted_when_enabled() {
    const REGION: &str = "eu-central-1";
    let w = World::from_env().await;
    let id = unique("orph");
    w.put(&format!("{id}/base/keep"), json!({"k": "1"})).await;
    w.put(&format!("{id}/base/gone"), json!({"k": "2"})).await;
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");
    let keep = format!("{id}/t/keep");
    let gone = format!("{id}/t/gone");
    let config = w.config(&single_target(&id, REGION, ""));
    w.pipeline(&config, &[]).success();

    w.remove(&format!("{id}/base/gone")).await;
    let kept = w.pipeline(&config, &[]);
    kept.success().stdout_has(&plan_counts("t", 0, 0, 0, 1, 0));
    let line = kept.line("1 managed secret");
    assert!(
        line.contains("no longer desired, kept because `delete_orphans` is off")
            && line.ends_with(&format!(": {gone}")),
        "{line}"
    );
    let listed = sm.list(&prefix).await;
    assert_eq!(listed.len(), 2);
    assert!(!listed[&gone].deleted, "{gone} must be kept");

    let config = w.config(&single_target(&id, REGION, "    delete_orphans: true\n"));
    let deleted = w.pipeline(&config, &[]);
    deleted
        .success()
        .stdout_has(&plan_counts("t", 0, 0, 1, 1, 0))
        .stdout_has("deleted 1");
    deleted.change("-", &gone);
    let listed = sm.list(&prefix).await;
    assert!(listed[&gone].deleted, "{gone} must be pending deletion");
    assert!(!listed[&keep].deleted, "{keep} must stay");
    let visible: Vec<String> = sm.list_with(&prefix, false).await.into_keys().collect();
    assert_eq!(visible, [keep]);

    // Pending deletion is where it stays: the next run has nothing to do.
    w.pipeline(&config, &[])
        .success()
        .stdout_has(&plan_counts("t", 0, 0, 0, 1, 0));

    // Desired again: restored from pending deletion and rewritten, not fought.
    w.put(&format!("{id}/base/gone"), json!({"k": "back"}))
        .await;
    let back = w.pipeline(&config, &[]);
    back.success().stdout_has(&plan_counts("t", 0, 1, 0, 1, 0));
    let line = back.change("~", &gone);
    assert!(line.contains("(restore from pending deletion)"), "{line}");
    let listed = sm.list(&prefix).await;
    assert!(!listed[&gone].deleted, "{gone} must be restored");
    assert_managed_by(&listed, &gone, "t");
    assert_eq!(sm.value(&gone).await, r#"{"k":"back"}"#);
    w.pipeline(&config, &[])
        .success()
        .stdout_has(&plan_counts("t", 0, 0, 0, 2, 0));
}

#[tokio::test]
async fn unmanaged_secret_is_skipped_unless_adopted() {
    const REGION: &str = "eu-north-1";
    let w = World::from_env().await;
    let id = unique("adopt");
    w.put(&format!("{id}/base/mine"), json!({"k": "vault"}))
        .await;
    w.put(&format!("{id}/base/other"), json!({"k": "other"}))
        .await;
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");
    let mine = format!("{id}/t/mine");
    let other = format!("{id}/t/other");
    sm.create_unmanaged(&mine, r#"{"k":"hand-made"}"#).await;
    let original = sm.list(&prefix).await[&mine].clone();

    let config = w.config(&single_target(&id, REGION, ""));
    // Planning lists the target once (plus the fingerprint key) and never reads the
    // unmanaged secret's value.
    let dry = w.pipeline(&config, &["--dry-run", "--output", "json"]);
    let doc = dry.success().json();
    assert_eq!(doc["aws_calls"], json!(2), "{}", dry.stdout);
    assert_eq!(doc["summary"]["skipped"], json!(1));
    let skipped = doc["changes"]
        .as_array()
        .expect("changes is a list")
        .iter()
        .find(|c| c["type"] == json!("skipped"))
        .expect("a skipped change");
    assert_eq!(skipped["name"], json!(mine));
    assert_eq!(skipped["old_value"], Value::Null, "{skipped}");

    let run = w.pipeline(&config, &[]);
    run.success().stdout_has(&plan_counts("t", 1, 0, 0, 0, 1));
    run.change("+", &other);
    let skipped = run.change("!", &mine);
    assert!(
        skipped.contains("not managed by secretsync") && skipped.contains("adopt: true"),
        "{skipped}"
    );
    let listed = sm.list(&prefix).await;
    assert_eq!(listed[&mine], original, "the unmanaged secret was touched");
    assert_eq!(sm.value(&mine).await, r#"{"k":"hand-made"}"#);
    assert_managed_by(&listed, &other, "t");
    assert_eq!(sm.value(&other).await, r#"{"k":"other"}"#);

    let config = w.config(&single_target(&id, REGION, "    adopt: true\n"));
    let adopted = w.pipeline(&config, &[]);
    adopted
        .success()
        .stdout_has(&plan_counts("t", 0, 1, 0, 1, 0));
    let line = adopted.change("~", &mine);
    assert!(
        line.contains("(adopt)") && line.contains("[keys: ~k]"),
        "{line}"
    );
    assert_eq!(sm.value(&mine).await, r#"{"k":"vault"}"#);
    let listed = sm.list(&prefix).await;
    assert_managed_by(&listed, &mine, "t");
    assert_ne!(listed[&mine].current(), original.current());

    // Adopted means managed: the next run proves it unchanged from the tags alone.
    let again = w.pipeline(&config, &[]);
    again.success().stdout_has(&plan_counts("t", 0, 0, 0, 2, 0));
    assert_eq!(versions(&sm.list(&prefix).await), versions(&listed));
}

#[tokio::test]
async fn hundreds_of_secrets_paginate_and_a_rerun_is_cheap() {
    const REGION: &str = "ap-south-1";
    const N: usize = 260;
    let w = World::from_env().await;
    let id = unique("many");
    let items = (0..N)
        .map(|i| {
            (
                format!("{id}/base/group{}/s{i:03}", i % 7),
                json!({"i": i, "v": format!("value-{i}")}),
            )
        })
        .collect();
    w.put_many(items).await;
    // Unpaced (the default 40 writes/s would take 6.5 s), default concurrency.
    let config = w.config(&single_target(&id, REGION, "    writes_per_second: 1000\n"));
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");

    let first = w.pipeline(&config, &["--output", "json"]);
    let doc = first.success().json();
    assert_eq!(doc["summary"]["added"], json!(N), "{}", first.stdout);
    assert_eq!(doc["targets"][0]["result"]["created"], json!(N));
    let listed = sm.list(&prefix).await;
    assert_eq!(listed.len(), N);
    assert_eq!(
        sm.value(&format!("{id}/t/group3/s143")).await,
        r#"{"i":143,"v":"value-143"}"#
    );

    let second = w.pipeline(&config, &["--output", "json"]);
    let doc = second.success().json();
    assert_eq!(
        doc["summary"],
        json!({"added": 0, "modified": 0, "deleted": 0, "unchanged": N, "skipped": 0}),
        "{}",
        second.stdout
    );
    assert_eq!(doc["changes"], json!([]));
    // ListSecrets pages of 100 and the fingerprint key (1 read), nothing else: no value
    // reads, no writes, and no lease (a run with nothing to change takes none).
    let pages = N.div_ceil(100) as u64;
    let calls = doc["aws_calls"].as_u64().expect("aws_calls is a number");
    assert_eq!(
        calls,
        pages + 1,
        "a no-op re-run of {N} secrets made {calls} AWS calls"
    );
    assert_eq!(versions(&sm.list(&prefix).await), versions(&listed));
}

#[tokio::test]
async fn s3_merge_store_layout_and_sync_only_without_vault() {
    const REGION: &str = "ap-northeast-1";
    let w = World::from_env().await;
    let id = unique("store");
    let bucket = format!("e2e-{id}");
    w.create_bucket(&bucket).await;
    w.put(
        &format!("{id}/base/app/db"),
        json!({"pw": "x", "user": "u"}),
    )
    .await;
    w.put(&format!("{id}/base/top"), json!({"k": 1})).await;
    let config = w.config(&format!(
        "{}merge_store: {{ type: s3, bucket: {bucket}, prefix: merged/, region: us-east-1 }}\n",
        single_target(&id, REGION, "    overrides: { env: prod }\n")
    ));
    w.pipeline(&config, &[])
        .success()
        .stdout_has(&plan_counts("t", 2, 0, 0, 0, 0))
        .stdout_has(&format!(
            "merge store s3://{bucket}/merged/: bundle t: 2 written"
        ));

    let s3 = w.s3();
    let objects = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("merged/t/")
        .send()
        .await
        .expect("ListObjectsV2");
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["merged/t/app/db.json", "merged/t/top.json"]);
    for (key, body) in [
        (
            "merged/t/app/db.json",
            r#"{"env":"prod","pw":"x","user":"u"}"#,
        ),
        ("merged/t/top.json", r#"{"env":"prod","k":1}"#),
    ] {
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("HeadObject");
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "{key}"
        );
        let got = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("GetObject")
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes();
        assert_eq!(std::str::from_utf8(&got).unwrap(), body, "{key}");
    }

    // --sync-only reads the store, not Vault: Vault's address is a closed port.
    let nowhere = closed_address();
    let sync = w.pipeline_env(&config, &["--sync-only"], &[("VAULT_ADDR", &nowhere)]);
    sync.success()
        .stdout_has(&plan_counts("t", 0, 0, 0, 2, 0))
        .stdout_has("0 Vault requests");
    // The closed port really is unusable for a run that needs Vault.
    w.pipeline_env(&config, &[], &[("VAULT_ADDR", &nowhere)])
        .code(1)
        .stderr_has("cannot reach Vault");
}

#[tokio::test]
async fn merge_only_writes_the_store_and_no_secrets() {
    const REGION: &str = "ap-northeast-2";
    let w = World::from_env().await;
    let id = unique("monly");
    let bucket = format!("e2e-{id}");
    w.create_bucket(&bucket).await;
    w.put(&format!("{id}/base/a"), json!({"k": "a"})).await;
    w.put(&format!("{id}/base/b"), json!({"k": "b"})).await;
    let config = w.config(&format!(
        "{}merge_store: {{ type: s3, bucket: {bucket}, prefix: merged/, region: us-east-1 }}\n",
        single_target(&id, REGION, "")
    ));
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");

    let run = w.pipeline(&config, &["--merge-only"]);
    run.success()
        .stdout_has(&format!(
            "merge store s3://{bucket}/merged/: bundle t: 2 written, 0 unchanged, 0 deleted"
        ))
        .stdout_lacks("Plan for target");
    let objects = w
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("merged/t/")
        .send()
        .await
        .expect("ListObjectsV2");
    assert_eq!(objects.key_count(), Some(2));
    assert!(
        sm.list(&prefix).await.is_empty(),
        "--merge-only wrote to Secrets Manager"
    );

    // What the merge phase stored is what a later sync-only run writes, without Vault.
    w.pipeline_env(
        &config,
        &["--sync-only"],
        &[("VAULT_ADDR", &closed_address())],
    )
    .success()
    .stdout_has(&plan_counts("t", 2, 0, 0, 0, 0));
    assert_eq!(sm.value(&format!("{id}/t/a")).await, r#"{"k":"a"}"#);
    assert_eq!(sm.value(&format!("{id}/t/b")).await, r#"{"k":"b"}"#);
}

#[tokio::test]
async fn more_orphans_than_max_deletes_refuses_and_deletes_nothing() {
    const REGION: &str = "ap-southeast-1";
    let w = World::from_env().await;
    let id = unique("maxdel");
    for p in ["a", "b", "c"] {
        w.put(&format!("{id}/base/{p}"), json!({"k": p})).await;
    }
    let config = w.config(&single_target(
        &id,
        REGION,
        "    delete_orphans: true\n    max_deletes: 1\n",
    ));
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");
    w.pipeline(&config, &[]).success();
    let before = sm.list(&prefix).await;
    assert_eq!(before.len(), 3);

    w.remove(&format!("{id}/base/b")).await;
    w.remove(&format!("{id}/base/c")).await;
    let run = w.pipeline(&config, &[]);
    run.code(1)
        .stdout_has(&plan_counts("t", 0, 0, 2, 1, 0))
        .stderr_has("1 target failed: t");
    let refused = run.line("refused:");
    assert!(
        refused.contains("2 managed secrets") && refused.contains("`max_deletes` (1)"),
        "{refused}"
    );
    // With --exit-code a failure is 2 (1 would mean "changes").
    w.pipeline(&config, &["--exit-code"])
        .code(2)
        .stderr_has("1 target failed: t");
    // JSON tells a machine the same: failed, refused, nothing applied.
    let json = w.pipeline(&config, &["--output", "json"]);
    let doc = json.code(1).json();
    let t = &doc["targets"][0];
    assert_eq!(t["failed"], json!(true), "{}", json.stdout);
    assert!(
        t["refused"]
            .as_str()
            .is_some_and(|r| r.contains("max_deletes")),
        "{}",
        json.stdout
    );
    assert_eq!(t["result"]["applied"], json!(false), "{}", json.stdout);
    assert_eq!(t["result"]["deleted"], json!(0), "{}", json.stdout);
    let after = sm.list(&prefix).await;
    assert_eq!(after, before, "a refused plan must change nothing");
    assert!(after.values().all(|l| !l.deleted));
}

#[tokio::test]
async fn no_secret_value_in_output_or_debug_logs() {
    const REGION: &str = "ap-southeast-2";
    let w = World::from_env().await;
    let id = unique("leak");
    let sentinel = unique("S3NT1NEL");
    let s = |what: &str| format!("{sentinel}-{what}");
    w.put(
        &format!("{id}/base/db"),
        json!({"password": s("pw"), "nested": {"token": s("tok")}, "list": [s("item")], "note": s("note")}),
    )
    .await;
    w.put(&format!("{id}/base/api"), json!({"key": s("key")}))
        .await;
    w.put(&format!("{id}/base/taken"), json!({"key": s("taken")}))
        .await;
    let sm = w.sm(REGION);
    // An unmanaged secret whose (old) value the adopt run reads and replaces.
    sm.create_unmanaged(
        &format!("{id}/t/taken"),
        &json!({"key": s("aws-old")}).to_string(),
    )
    .await;
    let plain = w.config(&single_target(&id, REGION, ""));
    let adopt = w.config(&single_target(&id, REGION, "    adopt: true\n"));
    let debug = ["--log-level", "debug"];

    let mut runs = Vec::new();
    runs.push(w.pipeline(&plain, &["--merge-only", "--log-level", "debug"]));
    runs.push(w.pipeline(&plain, &["--dry-run", "--log-level", "debug"]));
    runs.push(w.pipeline(&plain, &debug));
    // A modification, so the current value is read back and diffed key by key.
    w.put(
        &format!("{id}/base/db"),
        json!({"password": s("pw2"), "nested": {"token": s("tok")}, "list": [s("item")], "note": s("note")}),
    )
    .await;
    // Key-level detail (old → new per key) in every format that shows it, then the real run.
    for output in ["text", "side-by-side", "json", "compact"] {
        runs.push(w.pipeline(
            &plain,
            &[
                "--dry-run",
                "--diff",
                "--output",
                output,
                "--log-level",
                "debug",
            ],
        ));
    }
    runs.push(w.pipeline(&plain, &["--log-level", "debug", "--output", "json"]));
    runs.push(w.pipeline(&adopt, &["--log-level", "debug", "--log-format", "json"]));
    for r in &runs {
        r.success();
        for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains(&sentinel),
                "a secret value leaked to {stream} of `secretsync {}`:\n{text}",
                r.args.join(" ")
            );
        }
    }
    // The runs did cover these secrets: names, keys and masks are shown, and debug logs exist.
    runs[0].stdout_has("db = ").stdout_has("**********");
    runs[2]
        .stderr_has("DEBUG")
        .change("+", &format!("{id}/t/db"));
    runs[3].change("~", &format!("{id}/t/db"));
    runs[3].stdout_has("~ password: ********** → **********");
    let doc = runs[5].json();
    let db = doc["changes"]
        .as_array()
        .expect("changes is a list")
        .iter()
        .find(|c| c["path"] == json!("db"))
        .expect("a change for db");
    assert_eq!(db["type"], json!("modified"));
    assert_eq!(db["old_value"]["password"], json!("**********"));
    assert_eq!(db["new_value"]["nested"]["token"], json!("**********"));
    runs[7].stdout_has(&format!("{id}/t/db"));
    let adopted = runs[8].change("~", &format!("{id}/t/taken"));
    assert!(adopted.contains("(adopt)"), "{adopted}");
    assert_eq!(
        sm.value(&format!("{id}/t/taken")).await,
        json!({"key": s("taken")}).to_string()
    );
    // Control: the sentinel is found where values are asked for, except under keys that look
    // sensitive, which stay masked even then.
    let shown = w.pipeline(&plain, &["--merge-only", "--show-values"]);
    shown.success().stdout_has(&s("note")).stdout_has(&s("key"));
    for hidden in ["pw2", "tok"] {
        shown.stdout_lacks(&s(hidden));
    }
}

#[tokio::test]
async fn targets_flag_syncs_only_the_named_targets() {
    const REGION: &str = "sa-east-1";
    let w = World::from_env().await;
    let id = unique("sel");
    w.put(&format!("{id}/base/app"), json!({"k": "v"})).await;
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: a
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/a/
    imports: [base]
    overrides: {{ from: a }}
  - name: b
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/b/
    imports: [a]
  - name: c
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/c/
    imports: [base]
"
    ));
    let sm = w.sm(REGION);
    let prefix = format!("{id}/");

    // `b` alone: its dependency `a` is merged (b gets a's overrides) but not synced.
    w.pipeline(&config, &["--targets", "b"])
        .success()
        .stdout_has(&plan_counts("b", 1, 0, 0, 0, 0))
        .stdout_lacks("Plan for target a")
        .stdout_lacks("Plan for target c");
    let names: Vec<String> = sm.list(&prefix).await.into_keys().collect();
    assert_eq!(names, [format!("{id}/b/app")]);
    assert_eq!(
        sm.value(&format!("{id}/b/app")).await,
        r#"{"from":"a","k":"v"}"#
    );

    let run = w.pipeline(&config, &["--targets", "a"]);
    run.success()
        .stdout_has(&plan_counts("a", 1, 0, 0, 0, 0))
        .stdout_lacks("Plan for target b")
        .stdout_lacks("Plan for target c");
    let names: Vec<String> = sm.list(&prefix).await.into_keys().collect();
    assert_eq!(names, [format!("{id}/a/app"), format!("{id}/b/app")]);

    w.pipeline(&config, &["--targets", "a,nope"])
        .code(1)
        .stderr_has("unknown target `nope`");
}
