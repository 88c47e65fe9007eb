//! The `webhook` target, end to end: real runs (OpenBao → a receiver started by the test, the
//! state in an S3 merge store in moto). The first run POSTs each secret once, signed (the
//! HMAC is recomputed here from the bytes received); a re-run POSTs nothing; a Vault change
//! POSTs only that secret; `delete_orphans` POSTs `{name, deleted: true}`; a failing receiver
//! is retried with one idempotency key; one that stays down fails the target and the state
//! keeps what was delivered before; no value is ever printed; a config without a merge store
//! is refused with the key and the line.

mod support_sync;

use secretsync_test_support::http::{Request, Response};
use secretsync_test_support::proxy::Recorder;
use serde_json::{Value, json};
use support_sync::*;

const HMAC_KEY: &str = "the-webhook-hmac-key";

fn ok() -> Response {
    Response::new(200, "ok")
}

/// A config: source `base` at `secret/<id>/base/`, an S3 merge store in `bucket`, a webhook
/// target `hook` POSTing to `url` (`extra`: more target lines).
fn config(world: &World, id: &str, bucket: &str, url: &str, extra: &str) -> std::path::PathBuf {
    world.config(&format!(
        "owner: {id}
vault_sources:
  - mount: secret/{id}/base/
    name: base
merge_store: {{ type: s3, bucket: {bucket}, region: us-east-1 }}
targets:
  - name: hook
    type: webhook
    url: {url}
    secret: ${{HOOK_SECRET}}
    imports: [base]
{extra}"
    ))
}

fn run(world: &World, cfg: &std::path::Path) -> Run {
    world.pipeline_env(cfg, &[], &[("HOOK_SECRET", HMAC_KEY)])
}

/// Checks one request's shape and signature; returns its JSON body.
#[track_caller]
fn checked(req: &Request) -> Value {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path(), "/hooks/path-credential");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("x-secretsync-signature"),
        Some(format!("sha256={}", hmac_sha256(HMAC_KEY.as_bytes(), &req.body)).as_str()),
        "the signature is the HMAC of the bytes sent"
    );
    let id = req.header("idempotency-key").expect("an idempotency key");
    assert_eq!(req.header("x-secretsync-delivery"), Some(id));
    assert_eq!(id.len(), 32, "{id}");
    serde_json::from_slice(&req.body).unwrap()
}

/// The state object the target keeps in the store.
async fn state(world: &World, bucket: &str, id: &str) -> Value {
    let out = world
        .s3()
        .get_object()
        .bucket(bucket)
        .key(format!(".secretsync/webhook/{id}/hook/state.json"))
        .send()
        .await
        .expect("the webhook state object");
    let bytes = out.body.collect().await.unwrap().into_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[track_caller]
fn no_value(run: &Run, values: &[&str]) {
    for v in values {
        assert!(
            !run.stdout.contains(v) && !run.stderr.contains(v),
            "a value was printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    assert!(
        !run.stdout.contains("path-credential") && !run.stderr.contains("path-credential"),
        "the URL's path was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[tokio::test]
async fn deliveries_are_signed_once_per_change_and_a_rerun_posts_nothing() {
    let world = World::from_env().await;
    let id = unique("whk");
    let bucket = unique("whk-state-");
    world.create_bucket(&bucket).await;
    let (db, api) = ("sentinel-webhook-db-41a9", "sentinel-webhook-api-77c2");
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": db}),
        )
        .await;
    world
        .put(&format!("{id}/base/app/api"), json!({"token": api}))
        .await;
    let r = Recorder::start(ok());
    let url = format!("{}/hooks/path-credential", r.url());
    let cfg = config(
        &world,
        &id,
        &bucket,
        &url,
        "    delete_orphans: true\n    max_delete_fraction: 1\n",
    );

    let first = run(&world, &cfg);
    first.success();
    no_value(&first, &[db, api]);
    let got = r.requests();
    assert_eq!(got.len(), 2, "one POST per secret: {got:?}");
    let mut bodies: Vec<Value> = got.iter().map(checked).collect();
    bodies.sort_by_key(|b| b["name"].as_str().unwrap().to_string());
    assert_eq!(
        bodies,
        vec![
            json!({"name": "app/api", "path": "app/api", "version": 1, "value": {"token": api}}),
            json!({"name": "app/db", "path": "app/db", "version": 1, "value": {"user": "app", "password": db}}),
        ]
    );
    assert_ne!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key")
    );
    // The state: fingerprints and versions, never a value.
    let s = state(&world, &bucket, &id).await;
    let text = s.to_string();
    assert!(!text.contains(db) && !text.contains(api), "{text}");
    assert_eq!(s["target"], "hook");
    assert_eq!(s["secrets"]["app/db"]["version"], 1);
    assert!(
        s["secrets"]["app/api"]["fingerprint"]
            .as_str()
            .is_some_and(|f| !f.is_empty()),
        "{text}"
    );

    // A re-run writes nothing anywhere.
    let again = run(&world, &cfg);
    again.success();
    assert_eq!(
        r.requests().len(),
        2,
        "the re-run POSTed: {:?}",
        r.requests()
    );

    // A Vault change POSTs only that secret, as its next version.
    let db2 = "sentinel-webhook-db-second-0b3e";
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": db2}),
        )
        .await;
    let changed = run(&world, &cfg);
    changed.success();
    no_value(&changed, &[db, db2, api]);
    let got = r.requests();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        checked(&got[2]),
        json!({"name": "app/db", "path": "app/db", "version": 2, "value": {"user": "app", "password": db2}})
    );
    assert_eq!(
        state(&world, &bucket, &id).await["secrets"]["app/db"]["version"],
        2
    );

    // An orphan is POSTed as deleted (delete_orphans), once.
    world.remove(&format!("{id}/base/app/api")).await;
    let deleted = run(&world, &cfg);
    deleted.success();
    let got = r.requests();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        checked(&got[3]),
        json!({"name": "app/api", "deleted": true})
    );
    assert_eq!(got[3].header("x-secretsync-event"), Some("secret_deleted"));
    let s = state(&world, &bucket, &id).await;
    assert!(s["secrets"].get("app/api").is_none(), "{s}");
    run(&world, &cfg).success();
    assert_eq!(r.requests().len(), 4, "{:?}", r.requests());
}

#[tokio::test]
async fn orphans_are_not_posted_without_delete_orphans() {
    let world = World::from_env().await;
    let id = unique("whk");
    let bucket = unique("whk-state-");
    world.create_bucket(&bucket).await;
    world
        .put(&format!("{id}/base/app/a"), json!({"k": "v1"}))
        .await;
    world
        .put(&format!("{id}/base/app/b"), json!({"k": "v2"}))
        .await;
    let r = Recorder::start(ok());
    let url = format!("{}/hooks/path-credential", r.url());
    let cfg = config(&world, &id, &bucket, &url, "");
    run(&world, &cfg).success();
    assert_eq!(r.requests().len(), 2);
    world.remove(&format!("{id}/base/app/b")).await;
    run(&world, &cfg).success();
    assert_eq!(r.requests().len(), 2, "{:?}", r.requests());
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_one_key_and_one_that_stays_down_fails_the_target() {
    let world = World::from_env().await;
    let id = unique("whk");
    let bucket = unique("whk-state-");
    world.create_bucket(&bucket).await;
    let value = "sentinel-webhook-flaky-5d20";
    world
        .put(&format!("{id}/base/app/one"), json!({"v": value}))
        .await;

    // 500 twice, then accepted: three attempts of one delivery.
    let flaky = Recorder::scripted(
        vec![Response::new(500, "busy"), Response::new(500, "busy")],
        ok(),
    );
    let url = format!("{}/hooks/path-credential", flaky.url());
    let cfg = config(&world, &id, &bucket, &url, "");
    let r = run(&world, &cfg);
    r.success();
    no_value(&r, &[value]);
    let got = flaky.requests();
    assert_eq!(got.len(), 3, "{got:?}");
    let keys: Vec<_> = got.iter().map(|q| q.header("idempotency-key")).collect();
    assert!(
        keys[0].is_some() && keys.iter().all(|k| *k == keys[0]),
        "{keys:?}"
    );
    let attempts: Vec<_> = got
        .iter()
        .map(|q| q.header("x-secretsync-attempt"))
        .collect();
    assert_eq!(attempts, vec![Some("1"), Some("2"), Some("3")]);
    assert!(got.iter().all(|q| q.body == got[0].body));
    checked(&got[2]);

    // Two new secrets, one at a time: the receiver takes the first, then stays down.
    let (two, three) = ("sentinel-webhook-two-8e11", "sentinel-webhook-three-c4f7");
    world
        .put(&format!("{id}/base/app/two"), json!({"v": two}))
        .await;
    world
        .put(&format!("{id}/base/app/three"), json!({"v": three}))
        .await;
    let down = Recorder::scripted(vec![ok()], Response::new(503, "down"));
    let url = format!("{}/hooks/path-credential", down.url());
    let cfg = config(
        &world,
        &id,
        &bucket,
        &url,
        "    concurrency: 1\n    max_attempts: 2\n",
    );
    let failed = run(&world, &cfg);
    failed.code(1);
    no_value(&failed, &[value, two, three]);
    let host = down.url();
    let host = host.trim_end_matches('/');
    let all = format!("{}\n{}", failed.stdout, failed.stderr);
    assert!(
        all.contains(&format!(
            "was not delivered to {host}: the hook answered 503 Service Unavailable (2 attempts"
        )),
        "{all}"
    );
    assert!(
        all.contains("cannot be undone"),
        "the report says what was left delivered: {all}"
    );
    let got = down.requests();
    assert_eq!(got.len(), 3, "one delivered, one tried twice: {got:?}");
    let delivered = checked(&got[0])["name"].as_str().unwrap().to_string();
    let s = state(&world, &bucket, &id).await;
    let recorded: Vec<&String> = s["secrets"].as_object().unwrap().keys().collect();
    let undelivered = if delivered == "app/two" {
        "app/three"
    } else {
        "app/two"
    };
    assert!(recorded.contains(&&delivered), "{s}");
    assert!(!recorded.contains(&&undelivered.to_string()), "{s}");

    // Back up: only what was not delivered is sent.
    let back = Recorder::start(ok());
    let url = format!("{}/hooks/path-credential", back.url());
    let cfg = config(&world, &id, &bucket, &url, "");
    run(&world, &cfg).success();
    let got = back.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(checked(&got[0])["name"], undelivered);
    // The same change carries the same key as in the failed run: a receiver that stored it
    // and lost its answer drops the repeat.
    let failed_key = down.requests()[1]
        .header("idempotency-key")
        .map(str::to_string);
    assert_eq!(
        got[0].header("idempotency-key").map(str::to_string),
        failed_key
    );
}

#[tokio::test]
async fn a_webhook_without_a_merge_store_is_refused_with_the_key_and_line() {
    let world = World::from_env().await;
    let cfg = world.config(
        "vault_sources:
  - mount: secret/base/
targets:
  - name: hook
    type: webhook
    url: http://127.0.0.1:9/hooks/path-credential
    secret: k
    imports: [base]
",
    );
    let v = world.run(
        &[
            "validate".into(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
        ],
        &[],
    );
    v.code(1);
    let all = format!("{}\n{}", v.stdout, v.stderr);
    assert!(
        all.contains("error at line 5, column 11 (`targets[0].type`): target `hook` is a `webhook` target, which needs a `merge_store`"),
        "{all}"
    );
    assert!(!all.contains("path-credential"), "{all}");
}

#[tokio::test]
async fn a_version_rollback_delivers_the_recorded_value_as_the_next_version() {
    let world = World::from_env().await;
    let id = unique("whk");
    let bucket = unique("whk-state-");
    world.create_bucket(&bucket).await;
    let (v1, v2) = (
        "sentinel-webhook-rb-one-61d0",
        "sentinel-webhook-rb-two-9a3c",
    );
    world
        .put(&format!("{id}/base/app/db"), json!({"password": v1}))
        .await;
    let r = Recorder::start(ok());
    let url = format!("{}/hooks/path-credential", r.url());
    let cfg = config(&world, &id, &bucket, &url, "");
    run(&world, &cfg).success();
    world
        .put(&format!("{id}/base/app/db"), json!({"password": v2}))
        .await;
    run(&world, &cfg).success();
    assert_eq!(r.requests().len(), 2);

    let rb = world.run(
        &[
            "version".into(),
            "rollback".into(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
            "--target".into(),
            "hook".into(),
            "--path".into(),
            "app/db".into(),
            "--version".into(),
            "1".into(),
        ],
        &[("HOOK_SECRET", HMAC_KEY)],
    );
    rb.success();
    no_value(&rb, &[v1, v2]);
    let got = r.requests();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        checked(&got[2]),
        json!({"name": "app/db", "path": "app/db", "version": 3, "value": {"password": v1}})
    );
}

/// `batch_size: 10` through the binary: the two secrets arrive in one signed POST of two
/// items, each with its own delivery id; a re-run POSTs nothing; no value is printed.
#[tokio::test]
async fn batches_arrive_as_one_signed_post() {
    let world = World::from_env().await;
    let id = unique("whkb");
    let bucket = unique("whkb-state-");
    world.create_bucket(&bucket).await;
    let (db, api) = ("sentinel-batch-db-5d21", "sentinel-batch-api-9e04");
    world
        .put(&format!("{id}/base/app/db"), json!({"password": db}))
        .await;
    world
        .put(&format!("{id}/base/app/api"), json!({"token": api}))
        .await;
    let r = Recorder::start(ok());
    let url = format!("{}/hooks/path-credential", r.url());
    let cfg = config(&world, &id, &bucket, &url, "    batch_size: 10\n");
    let first = run(&world, &cfg);
    first.success();
    no_value(&first, &[db, api]);
    let got = r.requests();
    assert_eq!(got.len(), 1, "one POST for both: {got:?}");
    assert_eq!(got[0].header("x-secretsync-event"), Some("secrets_changed"));
    let body = checked(&got[0]);
    let mut items = body["secrets"].as_array().expect("a batch").clone();
    assert_eq!(items.len(), 2);
    let ids: Vec<String> = items
        .iter_mut()
        .map(|i| {
            let o = i.as_object_mut().unwrap();
            o.remove("delivery").unwrap().as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    items.sort_by_key(|i| i["name"].as_str().unwrap().to_string());
    assert_eq!(
        items,
        vec![
            json!({"name": "app/api", "path": "app/api", "version": 1, "value": {"token": api}}),
            json!({"name": "app/db", "path": "app/db", "version": 1, "value": {"password": db}}),
        ]
    );
    run(&world, &cfg).success();
    assert_eq!(r.requests().len(), 1, "the re-run POSTed");
}
