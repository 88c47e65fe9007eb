//! `--allow-mass-delete` through the binary: a plan deleting most of a target's managed secrets
//! is refused (nothing deleted) until the run passes the flag.

mod support_sync;

use serde_json::json;
use support_sync::{World, unique};

#[tokio::test]
async fn mass_deletions_need_the_flag() {
    const REGION: &str = "mx-central-1";
    let w = World::from_env().await;
    let id = unique("mass");
    w.put_many(
        (0..10)
            .map(|i| (format!("{id}/base/s{i}"), json!({ "i": i })))
            .collect(),
    )
    .await;
    let cfg = w.config(&format!(
        "vault_sources:\n  - mount: secret/{id}/base/\n    name: base\ntargets:\n  - name: t\n    type: aws_secretsmanager\n    region: {REGION}\n    secret_prefix: {id}/t/\n    imports: [base]\n    delete_orphans: true\n"
    ));
    w.pipeline(&cfg, &[]).success();
    for i in 0..7 {
        w.remove(&format!("{id}/base/s{i}")).await;
    }
    let sm = w.sm(REGION);
    let refused = w.pipeline(&cfg, &[]);
    refused.code(1);
    assert!(
        refused.stdout.contains("--allow-mass-delete")
            || refused.stderr.contains("--allow-mass-delete"),
        "says what to do:\n{}\n{}",
        refused.stdout,
        refused.stderr
    );
    let listed = sm.list(&format!("{id}/")).await;
    assert_eq!(
        listed.values().filter(|l| !l.deleted).count(),
        10,
        "nothing deleted"
    );

    w.pipeline(&cfg, &["--allow-mass-delete"]).success();
    let listed = sm.list(&format!("{id}/")).await;
    assert_eq!(listed.values().filter(|l| !l.deleted).count(), 3);
}
