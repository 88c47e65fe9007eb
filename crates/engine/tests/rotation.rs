//! Rotation in Vault against a real OpenBao server: which keys of which secrets a plan
//! selects and finds due, what `apply` writes (compared as whole data maps, secret by secret),
//! check-and-set against a concurrent write, and the age of a key whose secret changed in
//! other keys since.
//!
//! OpenBao sets every version's `created_time` itself, so "old" secrets are made by planning
//! at a `now` in the future (real now + 31 days), which is what `plan` takes `now` for.
//!
//! Needs the local servers: `scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`. Every test works in its own uniquely named mount.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{Bao, LogCapture, unique};
use reqwest::Method;
use secretsync_core::config::{self, Config};
use secretsync_core::rotation::{KeyStatus, Report};
use secretsync_engine::rotation;
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(86_400);

/// The config's `rotation:` blocks with one source `base` at `<mount>/base/`.
fn config(mount: &str, rotation: &str) -> Config {
    let yaml =
        format!("vault_sources:\n  - mount: {mount}/base/\n    name: base\nrotation:\n{rotation}");
    let loaded = config::load(&yaml, &|_| None);
    assert!(
        !loaded.diagnostics.has_errors(),
        "{}\n{yaml}",
        loaded.diagnostics
    );
    loaded.config.expect("a config")
}

/// A secret's current data and version, read with the root token.
async fn current(bao: &Bao, mount: &str, path: &str) -> (Value, u64) {
    let v = bao
        .ok(Method::GET, &format!("{mount}/data/{path}"), None)
        .await;
    (
        v["data"]["data"].clone(),
        v["data"]["metadata"]["version"].as_u64().expect("version"),
    )
}

/// When OpenBao says version `n` of a secret was created.
async fn created(bao: &Bao, mount: &str, path: &str, n: u64) -> SystemTime {
    let v = bao
        .ok(Method::GET, &format!("{mount}/metadata/{path}"), None)
        .await;
    let t = v["data"]["versions"][n.to_string()]["created_time"]
        .as_str()
        .expect("created_time");
    humantime::parse_rfc3339(t).expect("an RFC 3339 time")
}

/// Status and age (whole seconds) of every key in the report, by `path key`.
fn statuses(report: &Report) -> BTreeMap<String, KeyStatus> {
    report
        .secrets
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .map(move |k| (format!("{} {}", s.path, k.key), k.status.clone()))
        })
        .collect()
}

fn is_from(value: &Value, len: usize, charset: &str) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == len && s.chars().all(|c| charset.contains(c)))
}

#[tokio::test]
async fn exactly_the_due_keys_of_the_selected_secrets_change_in_one_write_each() {
    let bao = Bao::from_env();
    let mount = unique("rot");
    bao.enable_kv2(&mount).await;
    let seeded: Vec<(&str, Value)> = vec![
        // Three blocks select it: `password` and `api_key` are due, `admin_password` is not.
        (
            "base/app/web/db",
            json!({"password": "old-web-pw-sentinel", "api_key": "old-web-key-sentinel", "admin_password": "old-admin-sentinel", "user": "web"}),
        ),
        (
            "base/app/api/db",
            json!({"password": "old-api-pw-sentinel", "user": "api", "port": 5432, "opts": {"tls": true}}),
        ),
        // Not selected: another last segment, two segments where `*` is one, another mount.
        ("base/app/web/cache", json!({"password": "cache-pw"})),
        ("base/app/x/y/db", json!({"password": "deep-pw"})),
        ("other/app/web/db", json!({"password": "other-pw"})),
        // Selected, but nothing to rotate: no key, not a string.
        ("base/app/nokey/db", json!({"user": "nokey"})),
        ("base/app/num/db", json!({"password": 1234})),
        // `legacy/**`, key `token`: any depth.
        (
            "base/legacy/a/b/svc",
            json!({"token": "old-token-sentinel", "password": "legacy-pw"}),
        ),
    ];
    for (path, data) in &seeded {
        bao.put(&mount, path, data.clone()).await;
    }
    // Selected, but its current version is deleted.
    bao.put(&mount, "base/app/gone/db", json!({"password": "gone-pw"}))
        .await;
    bao.delete_latest(&mount, "base/app/gone/db").await;
    let c = config(
        &mount,
        r#"  - source: base
    paths: ["app/*/db"]
    key: password
    every: 30d
    generator: { length: 32 }
  - source: base
    paths: ["app/web/db"]
    key: api_key
    every: 30d
    generator: { length: 20, charset: "abcdef0123456789" }
  - source: base
    paths: ["app/web/*"]
    key: admin_password
    every: 60d
    generator: { length: 32 }
  - source: base
    paths: ["legacy/**"]
    key: token
    every: 7d
    generator: { length: 40 }
"#,
    );
    let vault = bao.root_client().await;
    let now = SystemTime::now() + 31 * DAY;
    let logs = LogCapture::start();

    let plan = rotation::plan(&c, &vault, now, false).await.expect("plan");
    let planned = plan.report();
    let dry: BTreeMap<String, KeyStatus> = statuses(&planned);
    let skipped = |why: &str| KeyStatus::Skipped(why.into());
    assert_eq!(
        dry,
        BTreeMap::from([
            ("app/api/db password".into(), KeyStatus::Due),
            (
                "app/gone/db password".into(),
                skipped("the current version 1 is deleted; nothing is rotated in a deleted secret")
            ),
            ("app/nokey/db password".into(), skipped("no key `password`")),
            (
                "app/num/db password".into(),
                skipped("`password` is a number, not a string; only string values are rotated")
            ),
            (
                "app/web/cache admin_password".into(),
                skipped("no key `admin_password`")
            ),
            ("app/web/db admin_password".into(), KeyStatus::NotDue),
            ("app/web/db api_key".into(), KeyStatus::Due),
            ("app/web/db password".into(), KeyStatus::Due),
            ("legacy/a/b/svc token".into(), KeyStatus::Due),
        ])
    );
    assert_eq!(plan.due(), 4);
    // Planning wrote nothing.
    for (path, data) in &seeded {
        assert_eq!(
            current(&bao, &mount, path).await,
            (data.clone(), 1),
            "{path}"
        );
    }

    let report = rotation::apply(plan, &vault).await;
    assert!(report.ok(), "{}", report.render_text());
    let after = statuses(&report);
    for key in [
        "app/api/db password",
        "app/web/db api_key",
        "app/web/db password",
        "legacy/a/b/svc token",
    ] {
        assert_eq!(after[key], KeyStatus::Rotated, "{key}");
    }
    assert_eq!(after["app/web/db admin_password"], KeyStatus::NotDue);

    let alnum = secretsync_core::rotation::DEFAULT_CHARSET;
    // One write per secret, with every due key: version 2, whatever the number of blocks.
    let (web, v) = current(&bao, &mount, "base/app/web/db").await;
    assert_eq!(v, 2);
    assert!(is_from(&web["password"], 32, alnum), "{web}");
    assert!(is_from(&web["api_key"], 20, "abcdef0123456789"), "{web}");
    let mut expected = seeded[0].1.clone();
    expected["password"] = web["password"].clone();
    expected["api_key"] = web["api_key"].clone();
    assert_eq!(web, expected);
    let (api, v) = current(&bao, &mount, "base/app/api/db").await;
    assert_eq!(v, 2);
    assert!(is_from(&api["password"], 32, alnum), "{api}");
    assert_ne!(api["password"], web["password"]);
    let mut expected = seeded[1].1.clone();
    expected["password"] = api["password"].clone();
    assert_eq!(api, expected);
    let (legacy, v) = current(&bao, &mount, "base/legacy/a/b/svc").await;
    assert_eq!(v, 2);
    assert!(is_from(&legacy["token"], 40, alnum), "{legacy}");
    assert_eq!(legacy["password"], "legacy-pw");
    // Everything else is as seeded, at version 1.
    for (path, data) in &seeded[2..7] {
        assert_eq!(
            current(&bao, &mount, path).await,
            (data.clone(), 1),
            "{path}"
        );
    }
    let report_ids: Vec<Option<u64>> = report
        .secrets
        .iter()
        .filter(|s| s.path == "app/web/db")
        .map(|s| s.new_version)
        .collect();
    assert_eq!(report_ids, [Some(2)]);

    // No value, old or new, in the logs or the reports.
    let text = format!(
        "{}\n{}\n{}\n{}\n{:?}",
        logs.lines().join("\n"),
        report.render_text(),
        report.render_json(),
        planned.render_text(),
        report
    );
    for value in [
        web["password"].as_str().unwrap(),
        web["api_key"].as_str().unwrap(),
        api["password"].as_str().unwrap(),
        legacy["token"].as_str().unwrap(),
        "sentinel",
    ] {
        assert!(!text.contains(value), "a value leaked: {value}\n{text}");
    }
    assert!(
        text.contains("rotated  base app/web/db  password (age 31d)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_secret_changed_between_plan_and_apply_is_a_conflict_and_keeps_its_value() {
    let bao = Bao::from_env();
    let mount = unique("rot");
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "base/a/db", json!({"password": "a-old"}))
        .await;
    bao.put(&mount, "base/b/db", json!({"password": "b-old"}))
        .await;
    let c = config(
        &mount,
        r#"  - source: base
    paths: ["*/db"]
    key: password
    every: 30d
    generator: { length: 24 }
"#,
    );
    let vault = bao.root_client().await;
    let plan = rotation::plan(&c, &vault, SystemTime::now() + 31 * DAY, false)
        .await
        .expect("plan");
    assert_eq!(plan.due(), 2);
    // Someone writes `a/db` after the plan read it.
    let concurrent = json!({"password": "set-by-someone-else", "note": "concurrent"});
    bao.put(&mount, "base/a/db", concurrent.clone()).await;

    let report = rotation::apply(plan, &vault).await;
    let after = statuses(&report);
    assert_eq!(
        after["a/db password"],
        KeyStatus::Conflict(
            "changed concurrently (version 1 is no longer current), not rotated; run again".into()
        )
    );
    assert_eq!(after["b/db password"], KeyStatus::Rotated);
    assert!(!report.ok());
    assert_eq!(current(&bao, &mount, "base/a/db").await, (concurrent, 2));
    let (b, v) = current(&bao, &mount, "base/b/db").await;
    assert_eq!(v, 2);
    assert_ne!(b["password"], "b-old");
    assert!(
        report
            .render_text()
            .contains("conflict  base a/db  password: changed concurrently"),
        "{}",
        report.render_text()
    );
}

#[tokio::test]
async fn a_key_is_as_old_as_its_value_not_as_its_secret() {
    let bao = Bao::from_env();
    let mount = unique("rot");
    bao.enable_kv2(&mount).await;
    let path = "base/svc/db";
    // v1: the first password; v2: rotated; v3, v4: only `user` changes.
    for data in [
        json!({"password": "first", "user": "u1"}),
        json!({"password": "second", "user": "u1"}),
        json!({"password": "second", "user": "u2"}),
        json!({"password": "second", "user": "u3"}),
    ] {
        bao.put(&mount, path, data).await;
    }
    let block = |every: &str| {
        format!(
            "  - source: base\n    paths: [\"svc/db\"]\n    key: password\n    every: {every}\n    generator: {{ length: 32 }}\n  - source: base\n    paths: [\"svc/db\"]\n    key: user\n    every: {every}\n    generator: {{ length: 32 }}\n"
        )
    };
    let vault = bao.root_client().await;
    let now = SystemTime::now() + 31 * DAY;
    let age_of = |r: &Report, key: &str| {
        r.secrets[0]
            .keys
            .iter()
            .find(|k| k.key == key)
            .and_then(|k| k.age)
            .expect("an age")
    };

    // `every: 60d`: the walk goes back to v1, whose password differs: `password` is as old
    // as v2, `user` as v4.
    let before = vault.request_count();
    let plan = rotation::plan(&config(&mount, &block("60d")), &vault, now, false)
        .await
        .expect("plan");
    let long_walk = vault.request_count() - before;
    let r = plan.report();
    let pw = age_of(&r, "password");
    assert_eq!(
        pw.age,
        now.duration_since(created(&bao, &mount, path, 2).await)
            .unwrap()
    );
    assert!(!pw.at_least);
    let user = age_of(&r, "user");
    assert_eq!(
        user.age,
        now.duration_since(created(&bao, &mount, path, 4).await)
            .unwrap()
    );
    assert!(!user.at_least);
    assert_eq!(statuses(&r)["svc/db password"], KeyStatus::NotDue);

    // `every: 30d`: v4 alone is 31 days old, so both keys are due and no older version is
    // read: the walk is bounded by `every` (3 reads fewer: v3, v2, v1).
    let before = vault.request_count();
    let plan = rotation::plan(&config(&mount, &block("30d")), &vault, now, false)
        .await
        .expect("plan");
    let short_walk = vault.request_count() - before;
    assert_eq!(long_walk - short_walk, 3);
    let r = plan.report();
    let pw = age_of(&r, "password");
    assert_eq!(
        pw.age,
        now.duration_since(created(&bao, &mount, path, 4).await)
            .unwrap()
    );
    assert!(pw.at_least);
    assert_eq!(statuses(&r)["svc/db password"], KeyStatus::Due);
    assert!(
        r.render_text()
            .contains("due  base svc/db  password (age at least 31d, every 30d)"),
        "{}",
        r.render_text()
    );

    // A deleted version ends the run: with v3 deleted, `password` is as old as v4.
    bao.ok(
        Method::POST,
        &format!("{mount}/delete/{path}"),
        Some(json!({"versions": [3]})),
    )
    .await;
    let plan = rotation::plan(&config(&mount, &block("60d")), &vault, now, false)
        .await
        .expect("plan");
    let pw = age_of(&plan.report(), "password");
    assert_eq!(
        pw.age,
        now.duration_since(created(&bao, &mount, path, 4).await)
            .unwrap()
    );
    assert!(!pw.at_least);

    // `force` makes every key due, whatever its age; still nothing is written by a plan.
    let plan = rotation::plan(&config(&mount, &block("60d")), &vault, now, true)
        .await
        .expect("plan");
    assert_eq!(plan.due(), 2);
    assert_eq!(current(&bao, &mount, path).await.1, 4);
}

/// The policy docs/rotation.md gives is enough to rotate: the test takes it from the page.
#[tokio::test]
async fn the_documented_policy_is_enough() {
    let bao = Bao::from_env();
    let mount = unique("rot");
    bao.enable_kv2(&mount).await;
    bao.put(
        &mount,
        "base/app/web/db",
        json!({"password": "p0", "user": "u"}),
    )
    .await;
    let page = include_str!("../../../docs/rotation.md");
    let hcl: String = page
        .split("```hcl\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/rotation.md has an hcl block")
        .replace("\"secret/", &format!("\"{mount}/"));
    assert!(hcl.contains(&format!("{mount}/data/base/*")), "{hcl}");
    let policy = unique("rotate-");
    bao.put_policy(&policy, &hcl).await;
    let token = bao.token_with_policies(&[&policy]).await;
    let vault = bao.client(&token).await;
    let c = config(
        &mount,
        r#"  - source: base
    paths: ["app/*/db"]
    key: password
    every: 30d
    generator: { length: 32 }
"#,
    );
    let plan = rotation::plan(&c, &vault, SystemTime::now() + 31 * DAY, false)
        .await
        .expect("plan with the documented policy");
    let report = rotation::apply(plan, &vault).await;
    assert!(report.ok(), "{}", report.render_text());
    assert_eq!(statuses(&report)["app/web/db password"], KeyStatus::Rotated);
    let (data, v) = current(&bao, &mount, "base/app/web/db").await;
    assert_eq!(v, 2);
    assert_ne!(data["password"], "p0");
    assert_eq!(data["user"], "u");
}
