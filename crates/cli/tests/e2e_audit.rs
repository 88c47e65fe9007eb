//! The audit log end to end: three real runs (OpenBao → moto) append hash-chained events to a
//! file and to the S3 merge store; `audit verify` passes on both, and an edited byte, a
//! removed event, two swapped events and a removed run object are each detected and named;
//! `audit export` filters by time and writes CSV. No value is ever in the log.

mod support_sync;

use serde_json::{Value, json};
use support_sync::*;

const REGION: &str = "ap-southeast-6";
const SENTINEL: &str = "sentinel-audit-value-7731";

struct Setup {
    world: World,
    id: String,
    cfg: std::path::PathBuf,
    log: std::path::PathBuf,
    bucket: String,
}

async fn setup() -> Setup {
    let world = World::from_env().await;
    let id = unique("aud");
    let bucket = unique("audit-");
    world.create_bucket(&bucket).await;
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{id}.jsonl"));
    let cfg = world.config(&single_target(
        &id,
        REGION,
        &format!(
            "merge_store:\n  type: s3\n  bucket: {bucket}\n  prefix: m/\n  region: us-east-1\naudit:\n  file: {}\n  store: true\n",
            log.display()
        ),
    ));
    Setup {
        world,
        id,
        cfg,
        log,
        bucket,
    }
}

fn audit(world: &World, args: &[&str]) -> Run {
    let args: Vec<String> = std::iter::once("audit")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect();
    world.run(&args, &[])
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Three runs: two secrets created, one updated, then nothing to change.
async fn three_runs(s: &Setup) {
    let id = &s.id;
    s.world
        .put(&format!("{id}/base/app/db"), json!({"password": SENTINEL}))
        .await;
    s.world
        .put(&format!("{id}/base/app/api"), json!({"key": "k1"}))
        .await;
    s.world.pipeline(&s.cfg, &[]).success();
    s.world
        .put(&format!("{id}/base/app/api"), json!({"key": "k2"}))
        .await;
    s.world.pipeline(&s.cfg, &[]).success();
    s.world.pipeline(&s.cfg, &[]).success();
}

#[tokio::test]
async fn three_runs_verify_and_every_tampering_is_found() {
    let s = setup().await;
    three_runs(&s).await;
    let cfg = s.cfg.to_str().unwrap();

    let events: Vec<Value> = lines(&s.log)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "change",
            "change",
            "run_finished",
            "run_started",
            "change",
            "run_finished",
            "run_started",
            "run_finished"
        ]
    );
    let update = &events[5];
    assert_eq!(update["change"], "updated");
    assert_eq!(update["name"], format!("{}/t/app/api", s.id));
    assert!(
        update["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{update}"
    );
    assert_eq!(
        update["fingerprint"].as_str().map(str::len),
        Some(64),
        "{update}"
    );
    assert_eq!(events[0]["command"], "pipeline");
    assert_eq!(events[3]["result"], "success");
    let text = std::fs::read_to_string(&s.log).unwrap();
    assert!(!text.contains(SENTINEL), "a value is in the audit log");

    audit(&s.world, &["verify", "--config", cfg])
        .success()
        .stdout_has("audit log OK: 9 events");
    audit(&s.world, &["verify", "--config", cfg, "--store"])
        .success()
        .stdout_has("audit log OK: 9 events");

    let good = lines(&s.log);
    let tampered = |name: &str, lines: Vec<String>| {
        let p = s.log.with_file_name(format!("{}-{name}.jsonl", s.id));
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    // One byte changed.
    let mut edited = good.clone();
    edited[5] = edited[5].replacen("updated", "updatee", 1);
    let p = tampered("edited", edited);
    audit(
        &s.world,
        &["verify", "--config", cfg, "--from", p.to_str().unwrap()],
    )
    .code(1)
    .stderr_has("line 6: event 6 was changed");
    // One event removed.
    let mut removed = good.clone();
    removed.remove(2);
    let p = tampered("removed", removed);
    audit(
        &s.world,
        &["verify", "--config", cfg, "--from", p.to_str().unwrap()],
    )
    .code(1)
    .stderr_has("line 3: event 4 follows event 2: event 3 is missing");
    // Two events swapped.
    let mut swapped = good.clone();
    swapped.swap(1, 2);
    let p = tampered("swapped", swapped);
    audit(
        &s.world,
        &["verify", "--config", cfg, "--from", p.to_str().unwrap()],
    )
    .code(1)
    .stderr_has("line 2: event 3 follows event 1");

    // In the store: a run object removed from the middle, then the last one.
    let s3 = s.world.s3();
    let objects = s3
        .list_objects_v2()
        .bucket(&s.bucket)
        .prefix("m/.secretsync/audit/runs/")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = objects
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert_eq!(keys.len(), 6, "two objects per run (start, end): {keys:?}");
    s3.delete_object()
        .bucket(&s.bucket)
        .key(&keys[2])
        .send()
        .await
        .unwrap();
    audit(&s.world, &["verify", "--config", cfg, "--store"])
        .code(1)
        .stderr_has("a run's events were removed");
}

#[tokio::test]
async fn the_last_events_removed_from_the_store_are_found_by_its_head() {
    let s = setup().await;
    three_runs(&s).await;
    let s3 = s.world.s3();
    let last = s3
        .list_objects_v2()
        .bucket(&s.bucket)
        .prefix("m/.secretsync/audit/runs/")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .max()
        .unwrap();
    s3.delete_object()
        .bucket(&s.bucket)
        .key(&last)
        .send()
        .await
        .unwrap();
    audit(
        &s.world,
        &["verify", "--config", s.cfg.to_str().unwrap(), "--store"],
    )
    .code(1)
    .stderr_has("events at the end were removed");
}

#[tokio::test]
async fn export_filters_by_time_and_writes_csv() {
    let s = setup().await;
    three_runs(&s).await;
    let cfg = s.cfg.to_str().unwrap();
    let all = audit(&s.world, &["export", "--config", cfg]);
    all.success();
    assert_eq!(all.stdout.lines().collect::<Vec<_>>(), lines(&s.log));
    audit(
        &s.world,
        &["export", "--config", cfg, "--since", "2999-01-01"],
    )
    .success()
    .stdout_lacks("run_started");
    let recent = audit(&s.world, &["export", "--config", cfg, "--since", "1h"]);
    assert_eq!(recent.success().stdout.lines().count(), 9);
    let csv = audit(
        &s.world,
        &["export", "--config", cfg, "--format", "csv", "--store"],
    );
    csv.success();
    let rows: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        rows[0],
        "seq,time,type,run_id,actor,command,dry_run,target,path,name,change,version,result"
    );
    assert_eq!(rows.len(), 10);
    assert!(
        rows[2].contains(",change,") && rows[2].contains(",created,"),
        "{}",
        rows[2]
    );
    assert!(!csv.stdout.contains(SENTINEL));
    audit(
        &s.world,
        &["export", "--config", cfg, "--since", "yesterday-ish"],
    )
    .code(1)
    .stderr_has("is not a time");
}

/// `version rollback` and `rotate` write too: they are audited like pipeline runs, and the
/// chain stays one chain.
#[tokio::test]
async fn rollbacks_and_rotations_are_audited_in_the_same_chain() {
    let world = World::from_env().await;
    let id = unique("aud");
    let bucket = unique("audit-");
    world.create_bucket(&bucket).await;
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{id}.jsonl"));
    let cfg = world.config(&format!(
        "{}merge_store:\n  type: s3\n  bucket: {bucket}\n  prefix: m/\n  region: us-east-1\naudit:\n  file: {}\n  store: true\nrotation:\n  - source: base\n    paths: [\"app/db\"]\n    key: password\n    every: 30d\n    generator: {{ length: 24 }}\n",
        single_target(&id, REGION, ""),
        log.display()
    ));
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "u", "password": SENTINEL}),
        )
        .await;
    world.pipeline(&cfg, &[]).success();
    let c = cfg.display().to_string();
    let run =
        |args: &[&str]| world.run(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), &[]);
    run(&["rotate", "--config", &c, "--force"]).success();
    world.pipeline(&cfg, &[]).success();
    run(&[
        "version",
        "rollback",
        "--config",
        &c,
        "--target",
        "t",
        "--path",
        "app/db",
        "--version",
        "1",
    ])
    .success();

    let events: Vec<Value> = lines(&log)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let starts: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "run_started")
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        ["pipeline", "rotate --force", "pipeline", "version rollback"]
    );
    let rotation: Vec<&Value> = events.iter().filter(|e| e["type"] == "rotation").collect();
    assert_eq!(rotation.len(), 1);
    assert_eq!(
        (
            &rotation[0]["source"],
            &rotation[0]["path"],
            &rotation[0]["keys"],
            &rotation[0]["version"]
        ),
        (
            &json!("base"),
            &json!("app/db"),
            &json!(["password"]),
            &json!("2")
        )
    );
    let changes: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["type"] == "change")
        .map(|e| (e["name"].as_str().unwrap(), e["change"].as_str().unwrap()))
        .collect();
    let name = format!("{id}/t/app/db");
    assert_eq!(
        changes,
        [
            (name.as_str(), "created"),
            (name.as_str(), "updated"),
            (name.as_str(), "updated")
        ]
    );
    // One chain in the file and in the store; no value anywhere.
    audit(&world, &["verify", "--config", &c])
        .success()
        .stdout_has("chain intact");
    audit(&world, &["verify", "--config", &c, "--store"])
        .success()
        .stdout_has(&format!("{} events", events.len()));
    assert!(!std::fs::read_to_string(&log).unwrap().contains(SENTINEL));
}
