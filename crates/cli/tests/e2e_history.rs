//! History, end to end: the real binary against OpenBao and moto (Secrets Manager for the
//! target, S3 for the merge store that keeps the history). Successive applies with Vault edits
//! record versions 1, 2, 3 with their kinds and authors; `version list` and `version show`
//! (with `--diff-from`) read them back, masked; plans show the numbers; retention prunes; a
//! config without a merge store says history is off; nothing in a revision holds a value, and
//! nothing holds an unkeyed hash of one.
//!
//! This file's tests use Secrets Manager region cn-north-1 (no other test file does).

mod support_sync;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support_sync::{Run, World, single_target, unique};

const REGION: &str = "cn-north-1";
const PASSWORD_1: &str = "hist-pw-one-3f9a";
const PASSWORD_2: &str = "hist-pw-two-77c1";
const PASSWORD_3: &str = "hist-pw-three-e02b";

struct Case {
    w: World,
    id: String,
    bucket: String,
    config: std::path::PathBuf,
}

/// Where the merge store (and so the history) is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    S3,
    Vault,
}

impl Case {
    /// An S3 merge store keeping `retain` versions.
    async fn keeping(retain: u64) -> Case {
        Case::with(retain, Store::S3).await
    }

    async fn with(retain: u64, store: Store) -> Case {
        let w = World::from_env().await;
        let id = unique("hist");
        let bucket = unique("hist-").to_lowercase();
        let block = match store {
            Store::S3 => {
                w.create_bucket(&bucket).await;
                format!(
                    "merge_store:\n  type: s3\n  bucket: {bucket}\n  prefix: hist/\n  region: us-east-1\n  retain_versions: {retain}\n"
                )
            }
            Store::Vault => format!(
                "merge_store:\n  type: vault\n  mount: secret/{id}-store/\n  retain_versions: {retain}\n"
            ),
        };
        let config = w.config(&format!(
            "{}{block}",
            single_target(&id, REGION, "    delete_orphans: true\n")
        ));
        Case {
            w,
            id,
            bucket,
            config,
        }
    }

    fn name(&self, rel: &str) -> String {
        format!("{}/t/{rel}", self.id)
    }

    async fn put(&self, rel: &str, data: Value) {
        self.w.put(&format!("{}/base/{rel}", self.id), data).await;
    }

    fn pipeline(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.w.pipeline_env(&self.config, args, env)
    }

    fn version(&self, args: &[&str]) -> Run {
        let mut all: Vec<String> = vec![
            "version".into(),
            args[0].into(),
            "--config".into(),
            self.config.to_str().unwrap().into(),
            "--target".into(),
            "t".into(),
        ];
        all.extend(args[1..].iter().map(|a| a.to_string()));
        self.w.run(&all, &[])
    }

    fn versions_json(&self, path: &str) -> Vec<Value> {
        let r = self.version(&["list", "--path", path, "--output", "json"]);
        r.success();
        let doc = r.json();
        assert_eq!(doc["path"], path, "{doc:#}");
        doc["versions"].as_array().cloned().unwrap_or_default()
    }

    fn revisions_json(&self) -> Vec<Value> {
        let r = self.version(&["list", "--output", "json"]);
        r.success();
        r.json()["revisions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every object of the history, key → body.
    async fn objects(&self) -> Vec<(String, String)> {
        let s3 = self.w.s3();
        let listed = s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("hist/.secretsync/history/")
            .send()
            .await
            .expect("list the history");
        let mut out = Vec::new();
        for o in listed.contents() {
            let key = o.key().unwrap().to_string();
            let body = s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .expect("read a history object")
                .body
                .collect()
                .await
                .expect("its body")
                .into_bytes();
            out.push((key, String::from_utf8(body.to_vec()).unwrap()));
        }
        out
    }
}

fn field<'a>(v: &'a [Value], key: &str) -> Vec<&'a Value> {
    v.iter().map(|x| &x[key]).collect()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn applies_are_recorded_listed_shown_and_pruned_in_an_s3_store() {
    recorded_listed_shown_and_pruned(Store::S3).await;
}

#[tokio::test]
async fn applies_are_recorded_listed_shown_and_pruned_in_a_vault_store() {
    recorded_listed_shown_and_pruned(Store::Vault).await;
}

async fn recorded_listed_shown_and_pruned(store: Store) {
    let c = Case::with(2, store).await;
    c.put("a/db", json!({"user": "app", "password": PASSWORD_1}))
        .await;
    c.put("a/api", json!({"key": "api-1"})).await;

    // 1: two creates by alice.
    let r = c.pipeline(&[], &[("SECRETSYNC_AUTHOR", "alice")]);
    r.success()
        .stdout_has(&format!("+ {} (new v1)", c.name("a/db")));
    let v = c.versions_json("a/db");
    assert_eq!(field(&v, "version"), [&json!(1)]);
    assert_eq!(field(&v, "change"), [&json!("create")]);
    assert_eq!(field(&v, "author"), [&json!("alice")]);
    assert_eq!(v[0]["pinned"], false);
    assert!(
        v[0]["run_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{v:?}"
    );
    let revs = c.revisions_json();
    assert_eq!(field(&revs, "revision"), [&json!(1)]);
    assert_eq!(revs[0]["made"].as_array().map(Vec::len), Some(2));

    // 2: an update by bob (GITHUB_ACTOR); the plan shows v1 → v2.
    c.put("a/db", json!({"user": "app", "password": PASSWORD_2}))
        .await;
    let r = c.pipeline(&[], &[("GITHUB_ACTOR", "bob")]);
    r.success();
    let line = r.change("~", &c.name("a/db"));
    assert!(line.contains("(v1 (") && line.contains(") → v2)"), "{line}");
    let v = c.versions_json("a/db");
    assert_eq!(field(&v, "version"), [&json!(1), &json!(2)]);
    assert_eq!(field(&v, "change"), [&json!("create"), &json!("update")]);
    assert_eq!(field(&v, "author"), [&json!("alice"), &json!("bob")]);
    // The AWS version id recorded is the one AWS now has as current.
    let listed = c.w.sm(REGION).list(&c.name("a/db")).await;
    let current = listed[&c.name("a/db")].current().unwrap().to_string();
    assert_eq!(v[1]["backend_version"], current.as_str());

    // show: metadata and the masked value; the diff from v1 names the changed key only.
    let r = c.version(&[
        "show",
        "--path",
        "a/db",
        "--version",
        "2",
        "--output",
        "json",
    ]);
    r.success();
    let doc = r.json();
    assert_eq!(doc["change"], "update");
    assert_eq!(doc["author"], "bob");
    assert!(!r.stdout.contains(PASSWORD_2), "{}", r.stdout);
    let r = c.version(&[
        "show",
        "--path",
        "a/db",
        "--version",
        "2",
        "--diff-from",
        "1",
        "--show-values",
        "--output",
        "json",
    ]);
    r.success();
    let doc = r.json();
    assert_eq!(
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["key"].clone(), k["type"].clone()))
            .collect::<Vec<_>>(),
        [(json!("password"), json!("changed"))]
    );
    assert!(
        !r.stdout.contains(PASSWORD_1) && !r.stdout.contains(PASSWORD_2),
        "a sensitive key stays masked under --show-values: {}",
        r.stdout
    );
    let r = c.version(&["show", "--path", "a/db", "--version", "1", "--show-values"]);
    r.success().stdout_has("  user: app");
    assert!(!r.stdout.contains(PASSWORD_1), "{}", r.stdout);

    // 3: a deletion, by whoever the AWS credentials are (moto's caller identity).
    c.w.remove(&format!("{}/base/a/api", c.id)).await;
    c.pipeline(&[], &[]).success();
    let v = c.versions_json("a/api");
    assert_eq!(field(&v, "change"), [&json!("create"), &json!("delete")]);
    let author = v[1]["author"].as_str().unwrap_or_default();
    assert!(author.starts_with("arn:aws:"), "{author}");

    // 4: another update; two versions and two revisions are kept (`retain_versions: 2`).
    c.put("a/db", json!({"user": "app", "password": PASSWORD_3}))
        .await;
    c.pipeline(&[], &[("SECRETSYNC_AUTHOR", "carol")]).success();
    let v = c.versions_json("a/db");
    assert_eq!(field(&v, "version"), [&json!(2), &json!(3)]);
    let revs = c.revisions_json();
    assert_eq!(field(&revs, "revision"), [&json!(3), &json!(4)]);
    let r = c.version(&["show", "--path", "a/db", "--version", "1"]);
    r.code(1)
        .stderr_has("version 1 of `a/db` in target `t` is not in the history (kept: v2 to v3)");

    // 5: nothing changed: nothing recorded.
    c.pipeline(&[], &[]).success();
    assert_eq!(
        field(&c.revisions_json(), "revision"),
        [&json!(3), &json!(4)]
    );

    // Logs hold no value, at any level.
    c.put("a/db", json!({"user": "app", "password": PASSWORD_1}))
        .await;
    let r = c.pipeline(&["--log-level", "debug"], &[]);
    r.success();
    let r2 = c.version(&["list", "--path", "a/db", "--log-level", "debug"]);
    r2.success();
    for secret in [PASSWORD_1, PASSWORD_2, PASSWORD_3] {
        assert!(
            !r.stderr.contains(secret) && !r2.stderr.contains(secret),
            "a value in the logs"
        );
    }
    if store != Store::S3 {
        return;
    }
    // No revision holds a value; no record holds an unkeyed hash of one.
    let objects = c.objects().await;
    assert!(
        objects
            .iter()
            .any(|(k, _)| k.ends_with("/revisions/r4.json")),
        "{objects:?}"
    );
    let secrets = [PASSWORD_1, PASSWORD_2, PASSWORD_3];
    for (key, body) in &objects {
        if key.contains("/revisions/") {
            for s in secrets {
                assert!(!body.contains(s), "{key} holds a value");
            }
        }
        for value in [
            json!({"password": PASSWORD_2, "user": "app"}),
            json!({"password": PASSWORD_3, "user": "app"}),
        ] {
            let plain = sha256_hex(&value.to_string());
            assert!(!body.contains(&plain), "{key} holds an unkeyed hash");
        }
    }
}

#[tokio::test]
async fn without_a_merge_store_history_is_off_and_says_how_to_turn_it_on() {
    let w = World::from_env().await;
    let id = unique("histoff");
    let config = w.config(&single_target(&id, REGION, ""));
    let args: Vec<String> = [
        "version",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--target",
        "t",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    w.run(&args, &[])
        .code(1)
        .stderr_has("history is off")
        .stderr_has("add a `merge_store:` block");
    let mut other = args.clone();
    other[5] = "nope".into();
    w.run(&other, &[])
        .code(1)
        .stderr_has("no target `nope` in the config; its targets: t");
}

/// The value of a secret at its current version (as AWS would have it).
async fn current_value(c: &Case, rel: &str) -> String {
    c.w.sm(REGION).current_value(&c.name(rel)).await
}

/// The AWS current version of a secret and every version id it has.
async fn aws_versions(c: &Case, rel: &str) -> (String, Vec<String>) {
    let sm = c.w.sm(REGION);
    let listed = sm.list(&c.name(rel)).await;
    let l = &listed[&c.name(rel)];
    (
        sm.current_version(&c.name(rel), l).await,
        l.versions.keys().cloned().collect(),
    )
}

/// A secret rolled back to v1 gets AWS's v1 back by a stage move (no new AWS version), is
/// recorded as a `rollback` and pinned; the next pipeline run leaves it alone and says why, in
/// text and JSON; `unpin` releases it and the run after that brings Vault's value back. After
/// the secret is gone from AWS altogether, a rollback writes the recorded value. A secret the
/// target no longer manages is refused, and nothing is written.
#[tokio::test]
async fn a_secret_rollback_moves_the_stage_back_and_stays_pinned_until_unpinned() {
    let c = Case::keeping(10).await;
    c.put("a/db", json!({"user": "app", "password": PASSWORD_1}))
        .await;
    c.pipeline(&[], &[("SECRETSYNC_AUTHOR", "alice")]).success();
    let (x1, _) = aws_versions(&c, "a/db").await;
    c.put("a/db", json!({"user": "app", "password": PASSWORD_2}))
        .await;
    c.pipeline(&[], &[("SECRETSYNC_AUTHOR", "alice")]).success();
    let (x2, before) = aws_versions(&c, "a/db").await;
    assert_ne!(x1, x2);

    // A dry run shows the plan and changes nothing.
    let dry = c.version(&["rollback", "--path", "a/db", "--version", "1", "--dry-run"]);
    dry.success();
    let line = dry.change("~", &c.name("a/db"));
    assert!(line.contains(") → v3)"), "{line}");
    assert_eq!(aws_versions(&c, "a/db").await.0, x2);

    let r = c.version(&["rollback", "--path", "a/db", "--version", "1"]);
    r.success().stdout_has("Result for t: created 0, updated 1");
    let (now, after) = aws_versions(&c, "a/db").await;
    assert_eq!(now, x1, "AWSCURRENT is back on the first version");
    assert_eq!(after, before, "no new AWS version was written");
    assert_eq!(
        current_value(&c, "a/db").await,
        json!({"password": PASSWORD_1, "user": "app"}).to_string()
    );
    let v = c.versions_json("a/db");
    assert_eq!(
        field(&v, "change"),
        [&json!("create"), &json!("update"), &json!("rollback")]
    );
    assert_eq!(v[2]["backend_version"], x1.as_str());
    assert_eq!(
        field(&v, "pinned"),
        [&json!(false), &json!(false), &json!(true)]
    );

    // Pinned: the next runs leave it alone and say so.
    let r = c.pipeline(&[], &[]);
    r.success();
    let line = r.change("!", &c.name("a/db"));
    assert!(
        line.contains("pinned at v3 by a rollback; `secretsync version unpin --target t --path a/db` releases it"),
        "{line}"
    );
    let r = c.pipeline(&["--output", "json", "--dry-run"], &[]);
    r.success();
    let change = r.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == c.name("a/db").as_str())
        .cloned()
        .unwrap();
    assert_eq!(change["type"], "skipped", "{change:#}");
    assert_eq!(change["pinned_version"], 3, "{change:#}");
    assert_eq!(aws_versions(&c, "a/db").await.0, x1);

    // Unpinned: Vault's value comes back as v4.
    c.version(&["unpin", "--path", "a/db"])
        .success()
        .stdout_has("Unpinned in target `t`: a/db");
    c.version(&["unpin", "--path", "a/db"])
        .code(1)
        .stderr_has("`a/db` is not pinned in target `t`");
    c.pipeline(&[], &[]).success();
    assert_eq!(
        current_value(&c, "a/db").await,
        json!({"password": PASSWORD_2, "user": "app"}).to_string()
    );
    let v = c.versions_json("a/db");
    assert_eq!(
        field(&v, "change"),
        [
            &json!("create"),
            &json!("update"),
            &json!("rollback"),
            &json!("update")
        ]
    );
    assert_eq!(field(&v, "pinned"), [&json!(false); 4]);

    // Gone from AWS: the rollback writes the recorded value (a new secret).
    c.w.sm(REGION)
        .client
        .delete_secret()
        .secret_id(c.name("a/db"))
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    c.version(&["rollback", "--path", "a/db", "--version", "3"])
        .success()
        .stdout_has("Result for t: created 1");
    assert_eq!(
        current_value(&c, "a/db").await,
        json!({"password": PASSWORD_1, "user": "app"}).to_string()
    );
    let v = c.versions_json("a/db");
    assert_eq!(v.last().unwrap()["change"], "rollback");
    assert_ne!(v.last().unwrap()["backend_version"], x1.as_str());

    // No longer managed (its ownership marks removed by hand): refused, nothing written.
    let sm = c.w.sm(REGION);
    let tags: Vec<String> = sm.list(&c.name("a/db")).await[&c.name("a/db")]
        .tags
        .keys()
        .cloned()
        .collect();
    sm.client
        .untag_resource()
        .secret_id(c.name("a/db"))
        .set_tag_keys(Some(tags))
        .send()
        .await
        .unwrap();
    let (cur, vers) = aws_versions(&c, "a/db").await;
    c.version(&["rollback", "--path", "a/db", "--version", "4"])
        .code(1)
        .stdout_has("cannot be rolled back");
    assert_eq!(aws_versions(&c, "a/db").await, (cur, vers));
}

/// `pipeline --targets t --version 1` brings the whole target back to revision 1 — a changed
/// secret by a stage move, a secret revision 1 did not have deleted — and pins all of it, so
/// the next run changes nothing; `version unpin --target t` releases every pin and the next
/// run syncs Vault's state again.
#[tokio::test]
async fn a_target_restored_to_a_revision_stays_there_until_unpinned() {
    let c = Case::keeping(2).await;
    c.put("a/db", json!({"user": "app", "password": PASSWORD_1}))
        .await;
    c.put("a/api", json!({"key": "api-1"})).await;
    c.pipeline(&[], &[]).success();
    let (x1, _) = aws_versions(&c, "a/db").await;
    c.put("a/db", json!({"user": "app", "password": PASSWORD_2}))
        .await;
    c.put("a/new", json!({"key": "new-1"})).await;
    c.pipeline(&[], &[]).success();

    let r = c.pipeline(&["--targets", "t", "--version", "1"], &[]);
    r.success();
    assert_eq!(aws_versions(&c, "a/db").await.0, x1);
    let live = c.w.sm(REGION).list_with(&c.name(""), false).await;
    assert!(!live.contains_key(&c.name("a/new")), "{live:?}");
    assert!(live.contains_key(&c.name("a/api")));
    let revs = c.revisions_json();
    let last = revs.last().unwrap();
    assert_eq!(last["revision"], 3);
    assert_eq!(
        last["pins"],
        json!({"a/api": 1, "a/db": 3, "a/new": 2}),
        "{last:#}"
    );

    // Pinned: Vault still says revision 2's state, and nothing is written.
    let r = c.pipeline(&[], &[]);
    r.success().stdout_has(
        "Plan for target t: 0 to add, 0 to modify, 0 to delete, 1 unchanged, 2 skipped",
    );

    // `--version` without one target is an error.
    c.pipeline(&["--version", "1"], &[])
        .code(1)
        .stderr_has("--version restores one target: name it with --targets T");

    c.version(&["unpin"])
        .success()
        .stdout_has("Unpinned in target `t`: a/api, a/db, a/new");
    c.pipeline(&[], &[]).success();
    assert_eq!(
        current_value(&c, "a/db").await,
        json!({"password": PASSWORD_2, "user": "app"}).to_string()
    );
    assert!(
        c.w.sm(REGION)
            .list_with(&c.name(""), false)
            .await
            .contains_key(&c.name("a/new"))
    );
}

/// `--dry-run --plan-out` writes the plan without a value in it; `--plan` applies it when
/// nothing moved, and refuses the target — nothing written, the secret named — when Vault
/// changed after the plan, when someone edited the secret in AWS after it, or when the config
/// is not the one the plan was made with.
#[tokio::test]
async fn a_plan_file_applies_exactly_or_refuses_what_drifted() {
    let c = Case::keeping(10).await;
    c.put("a/db", json!({"user": "app", "password": PASSWORD_1}))
        .await;
    c.put("a/api", json!({"key": "api-1"})).await;
    c.pipeline(&[], &[]).success();
    let (x1, _) = aws_versions(&c, "a/db").await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-plans");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |n: &str| dir.join(format!("{}-{n}.json", c.id));

    // Planned, reviewed, applied: exactly what was planned.
    c.put("a/db", json!({"user": "app", "password": PASSWORD_2}))
        .await;
    let f1 = file("1");
    let f1s = f1.to_str().unwrap();
    c.pipeline(&["--dry-run", "--plan-out", f1s], &[])
        .success()
        .stderr_has("wrote the plan to");
    let text = std::fs::read_to_string(&f1).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["secretsync_plan"], 1);
    let changes = doc["targets"][0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{doc:#}");
    assert_eq!(changes[0]["name"], c.name("a/db").as_str());
    assert_eq!(changes[0]["change"], "modified");
    assert_eq!(changes[0]["current_version"], x1.as_str());
    assert_eq!(changes[0]["desired"].as_str().map(str::len), Some(64));
    for secret in [PASSWORD_1, PASSWORD_2] {
        assert!(!text.contains(secret), "the plan file holds a value");
        for v in [
            json!({"password": secret, "user": "app"}),
            json!({"user": "app", "password": secret}),
        ] {
            assert!(
                !text.contains(&sha256_hex(&v.to_string())),
                "an unkeyed hash"
            );
        }
    }
    assert_eq!(
        aws_versions(&c, "a/db").await.0,
        x1,
        "a dry run writes nothing"
    );
    c.pipeline(&["--plan", f1s], &[]).success();
    assert_eq!(
        current_value(&c, "a/db").await,
        json!({"password": PASSWORD_2, "user": "app"}).to_string()
    );

    // Vault changed after the plan: refused, nothing written.
    c.put("a/db", json!({"user": "app", "password": PASSWORD_3}))
        .await;
    let f2 = file("2");
    let f2s = f2.to_str().unwrap();
    c.pipeline(&["--dry-run", "--plan-out", f2s], &[]).success();
    c.put("a/db", json!({"user": "app", "password": "moved-on"}))
        .await;
    let before = aws_versions(&c, "a/db").await;
    let r = c.pipeline(&["--plan", f2s], &[]);
    r.code(1)
        .stdout_has("Result for t: REFUSED, nothing written")
        .stdout_has(&format!(
            "the plan file no longer matches target `t`, so nothing is written to it: `{}`: its desired value changed since the plan was made",
            c.name("a/db")
        ));
    assert_eq!(aws_versions(&c, "a/db").await, before);

    // Someone edited the secret in AWS after the plan: refused, nothing written.
    let f3 = file("3");
    let f3s = f3.to_str().unwrap();
    c.pipeline(&["--dry-run", "--plan-out", f3s], &[]).success();
    c.w.sm(REGION)
        .client
        .put_secret_value()
        .secret_id(c.name("a/db"))
        .secret_string(r#"{"edited":"by hand"}"#)
        .send()
        .await
        .unwrap();
    let before = aws_versions(&c, "a/db").await;
    let r = c.pipeline(&["--plan", f3s, "--exit-code"], &[]);
    r.code(2).stdout_has(&format!(
        "`{}` changed in the target since the plan was made",
        c.name("a/db")
    ));
    assert_eq!(aws_versions(&c, "a/db").await, before);

    // Another config: refused before anything is read.
    let mut yaml = std::fs::read_to_string(&c.config).unwrap();
    yaml = yaml.replace("    delete_orphans: true\n", "    delete_orphans: false\n");
    std::fs::write(&c.config, yaml).unwrap();
    c.pipeline(&["--plan", f3s], &[])
        .code(1)
        .stderr_has("was made with another config");
}

/// What recording history costs, counted at a proxy in front of moto: one store write per
/// changed secret plus one per changed target, no call to the target for it; a run that changes
/// nothing writes nothing and reads the latest revision (one listing, one read).
#[tokio::test]
async fn history_costs_one_write_per_changed_secret_and_one_per_target() {
    use secretsync_test_support::proxy::Proxy;
    let c = Case::keeping(10).await;
    for i in 0..5 {
        c.put(&format!("s/{i}"), json!({"n": i})).await;
    }
    let aws = Proxy::start(&c.w.aws_endpoint);
    let url = aws.url();
    let run = || {
        let seen = aws.requests().len();
        c.pipeline(
            &[],
            &[
                ("AWS_ENDPOINT_URL", url.as_str()),
                ("SECRETSYNC_AUTHOR", "ci"),
            ],
        )
        .success();
        let reqs = aws.requests();
        let new = &reqs[seen..];
        let history = |method: &str| {
            new.iter()
                .filter(|r| r.method == method && r.target.contains("/.secretsync/history/"))
                .count()
        };
        let listings = new
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && r.target.contains("list-type=2")
                    && r.target.contains("history")
            })
            .count();
        (history("PUT"), history("GET"), listings)
    };
    // 5 creates: 5 versions and 1 revision; the (empty) history listed once.
    assert_eq!(run(), (6, 0, 1));
    // 1 update: 1 version, 1 revision; the latest revision listed and read.
    c.put("s/0", json!({"n": 100})).await;
    assert_eq!(run(), (2, 1, 1));
    // Nothing changed: nothing written; the latest revision listed and read (for its pins).
    assert_eq!(run(), (0, 1, 1));
}
