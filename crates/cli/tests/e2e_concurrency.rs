//! Two runs of one target at once, against local OpenBao and moto, driven like a user: the
//! second waits for the first's lease (or fails naming it with `--lock-timeout 0s`), and plans
//! from the state the first left, so writes never interleave. Dry runs take no lease.

mod support_sync;

use std::time::Duration;

use serde_json::{Value, json};
use support_sync::{World, unique};

const N: usize = 12;

fn show(r: &support_sync::Run) -> String {
    format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr)
}

fn config(id: &str, region: &str) -> String {
    format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: t
    type: aws_secretsmanager
    region: {region}
    secret_prefix: {id}/t/
    imports: [base]
    # Slow enough that the other runs start while this one is applying.
    writes_per_second: 4
"
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
        // The first run takes its lease before it lists anything; give it a moment.
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
