//! Two runs of one target at once, against local OpenBao and moto, driven like a user: the
//! second waits for the first's lease (or fails naming it with `--lock-timeout 0s`), and plans
//! from the state the first left, so writes never interleave. Dry runs, and runs that find
//! nothing to change, take no lease.

mod support_sync;

use std::time::Duration;

use serde_json::{Value, json};
use support_sync::{World, unique};

const N: usize = 12;

fn show(r: &support_sync::Run) -> String {
    format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr)
}

fn config(id: &str, region: &str) -> String {
    support_sync::single_target(
        id,
        region,
        "    # Slow enough that the other runs start while this one is applying.\n    writes_per_second: 4\n",
    )
}

#[tokio::test]
async fn two_runs_of_one_target_never_interleave() {
    const REGION: &str = "me-south-1";
    let w = World::from_env().await;
    let id = unique("lease");
    w.put_many(
        (0..N)
            .map(|i| (format!("{id}/base/s{i:02}"), json!({ "i": i })))
            .collect(),
    )
    .await;
    let cfg = w.config(&config(&id, REGION));

    let (first, impatient, patient, dry) = std::thread::scope(|s| {
        let first = s.spawn(|| w.pipeline(&cfg, &["--output", "json"]));
        // The first run takes its lease once it has planned; give it a moment.
        std::thread::sleep(Duration::from_millis(1200));
        let impatient = s.spawn(|| w.pipeline(&cfg, &["--lock-timeout", "0s"]));
        let patient = s.spawn(|| w.pipeline(&cfg, &["--output", "json", "--lock-timeout", "2m"]));
        let dry = s.spawn(|| w.pipeline(&cfg, &["--dry-run", "--lock-timeout", "0s"]));
        (
            first.join().unwrap(),
            impatient.join().unwrap(),
            patient.join().unwrap(),
            dry.join().unwrap(),
        )
    });

    let doc: Value = first.success().json();
    assert_eq!(doc["summary"]["added"], json!(N), "{}", show(&first));

    // `--lock-timeout 0s` while the first run holds the target: fails, naming the holder.
    impatient.code(1);
    assert!(
        impatient.stderr.contains("held by") || impatient.stdout.contains("held by"),
        "names the holder: {}",
        show(&impatient)
    );
    assert!(
        impatient.stdout.contains("--lock-timeout") || impatient.stderr.contains("--lock-timeout"),
        "says what to do: {}",
        show(&impatient)
    );

    // A dry run takes no lease: it plans at once, whatever the other run is doing.
    dry.success();

    // The patient run waited, then planned from what the first run left: nothing to write.
    let doc: Value = patient.success().json();
    assert_eq!(doc["summary"]["added"], json!(0), "{}", show(&patient));
    assert_eq!(doc["summary"]["modified"], json!(0), "{}", show(&patient));
    assert_eq!(doc["summary"]["unchanged"], json!(N), "{}", show(&patient));

    // Exactly one version per secret: no run wrote over the other.
    let sm = w.sm(REGION);
    let listed = sm.list(&format!("{id}/")).await;
    assert_eq!(listed.len(), N);
    for (name, l) in &listed {
        assert_eq!(l.versions.len(), 1, "{name}: {:?}", l.versions);
    }
    // And the lease is gone (released, not left to expire). The region is this test's own,
    // so any lock secret there is one of these runs'.
    let locks = sm.list(".secretsync/locks/").await;
    assert!(
        locks.is_empty(),
        "a lease was left behind: {:?}",
        locks.keys().collect::<Vec<_>>()
    );
}

/// Writes a lease record for `key` in `region` as another run would hold it (for an hour).
async fn hold_lease(sm: &support_sync::Sm, key: &str) -> String {
    let name = format!(".secretsync/locks/{key}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let record = json!({
        "secretsync_lease": 1,
        "owner": key.split('/').next().unwrap(),
        "run_id": "other-run-7",
        "host": "ci-runner-3",
        "author": "bob",
        "lease_id": "l1",
        "nonce": "n1",
        "acquired_at": now,
        "expires_at": now + 3600,
    });
    sm.client
        .create_secret()
        .name(&name)
        .secret_string(record.to_string())
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("managed-by")
                .value("secretsync")
                .build(),
        )
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("secretsync:role")
                .value("lock")
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
    name
}

#[tokio::test]
async fn a_run_with_nothing_to_change_takes_no_lease() {
    const REGION: &str = "af-south-1";
    let w = World::from_env().await;
    let id = unique("nolease");
    w.put_many(
        (0..3)
            .map(|i| (format!("{id}/base/s{i}"), json!({ "i": i })))
            .collect(),
    )
    .await;
    let cfg = w.config(&format!("owner: {id}\n{}", config(&id, REGION)));
    w.pipeline(&cfg, &["--output", "json"]).success();
    let sm = w.sm(REGION);
    let before = sm.list(&format!("{id}/")).await;

    // Another run holds the target's lease (for an hour).
    let lock = hold_lease(&sm, &format!("{id}/t")).await;
    let held = sm.value(&lock).await;

    // Nothing to change: the run plans, finds nothing to write and never asks for the lease,
    // so even `--lock-timeout 0s` succeeds. Its AWS calls: one listing page and the
    // fingerprint key; no lease calls.
    let idle = w.pipeline(&cfg, &["--output", "json", "--lock-timeout", "0s"]);
    let doc: Value = idle.success().json();
    assert_eq!(doc["summary"]["unchanged"], json!(3), "{}", show(&idle));
    assert_eq!(doc["aws_calls"], json!(1 + 1), "{}", show(&idle));
    assert_eq!(
        sm.value(&lock).await,
        held,
        "the other run's lease is untouched"
    );

    // With a change, the run needs the lease: it fails naming the holder and writes nothing.
    w.put(&format!("{id}/base/s1"), json!({ "i": 100 })).await;
    let busy = w.pipeline(&cfg, &["--lock-timeout", "0s"]);
    busy.code(1);
    let out = show(&busy);
    assert!(
        out.contains("held by") && out.contains("other-run-7"),
        "{out}"
    );
    assert_eq!(
        sm.list(&format!("{id}/")).await,
        before,
        "nothing was written"
    );
    assert_eq!(
        sm.value(&lock).await,
        held,
        "the other run's lease is untouched"
    );

    // Once the other run is gone, the change is applied and the lease released again.
    sm.client
        .delete_secret()
        .secret_id(&lock)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let doc: Value = w
        .pipeline(&cfg, &["--output", "json", "--lock-timeout", "0s"])
        .success()
        .json();
    assert_eq!(doc["summary"]["modified"], json!(1));
    assert_eq!(
        sm.value(&format!("{id}/t/s1")).await,
        r#"{"i":100}"#,
        "the change landed"
    );
    assert!(
        sm.list(".secretsync/locks/")
            .await
            .keys()
            .all(|k| !k.contains(&id))
    );
}
