//! Sharding, end to end: `pipeline --shard i/n` runs exactly the targets `graph --shard i/n`
//! names for shard i, every target is in exactly one shard, and `SECRETSYNC_SHARD` does the
//! same from the environment (a CI matrix, an Indexed Job). Dry runs only: nothing is written.

mod support_sync;

use std::collections::BTreeSet;

use serde_json::json;
use support_sync::{World, unique};

#[tokio::test]
async fn every_target_runs_in_exactly_one_shard() {
    let w = World::from_env().await;
    let id = unique("shd");
    w.put(&format!("{id}/base/a"), json!({"k": "v"})).await;
    let mut yaml =
        format!("vault_sources:\n  - mount: secret/{id}/base/\n    name: base\ntargets:\n");
    let names: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    for n in &names {
        yaml.push_str(&format!(
            "  - name: {n}\n    type: aws_secretsmanager\n    region: sa-east-1\n    secret_prefix: {id}/{n}/\n    imports: [base]\n"
        ));
    }
    let config = w.config(&yaml);
    let c = config.to_str().unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let run = w.pipeline(&config, &["--dry-run", "--shard", &shard]);
        run.success();
        let planned: BTreeSet<String> = run
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("Plan for target "))
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect();
        let graph = w.run(
            &["graph", "--config", c, "--shard", &shard]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            &[],
        );
        graph.success();
        let line = graph.line(&format!("shard {shard}:"));
        let listed: BTreeSet<String> = line
            .trim_start_matches(&format!("shard {shard}:"))
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "(no targets)")
            .collect();
        assert_eq!(planned, listed, "shard {shard}: {}", run.stdout);
        for p in &planned {
            assert!(seen.insert(p.clone()), "{p} is in two shards");
        }
        // The environment variable does the same.
        let from_env = w.pipeline_env(&config, &["--dry-run"], &[("SECRETSYNC_SHARD", &shard)]);
        from_env.success();
        for p in &planned {
            from_env.stdout_has(&format!("Plan for target {p}:"));
        }
    }
    assert_eq!(seen, names.iter().cloned().collect::<BTreeSet<_>>());
    // A shard that does not exist is a usage error.
    let bad = w.pipeline(&config, &["--dry-run", "--shard", "3/3"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("is not a shard"), "{}", bad.stderr);
}
