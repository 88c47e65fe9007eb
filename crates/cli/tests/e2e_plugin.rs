//! End to end: the real `secretsync` binary syncing the local OpenBao (the source) into the
//! example plugin `examples/plugins/dir_store.py` through a `plugin` target, driven like a user
//! with a config file. Needs the local servers (`scripts/servers.sh start && source
//! .servers/env`) and `python3`. The plugin's directory is inspected by reading its files,
//! never through the code under test.

mod support_sync;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support_sync::{World, plan_counts, unique};

/// One secret's record in the example plugin's directory (its file name encoding: every byte
/// outside `[A-Za-z0-9._-]` as `%XX`).
fn record(root: &Path, name: &str) -> Value {
    let mut file = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            file.push(b as char);
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    let text = std::fs::read_to_string(root.join(format!("{file}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_source_syncs_into_the_example_plugin_and_a_rerun_writes_nothing() {
    let w = World::from_env().await;
    let id = unique("plg");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("e2e-plugin-"));
    let (root, cache) = (dir.join("store"), dir.join("cache"));
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "pw-1"}),
    )
    .await;
    w.put(&format!("{id}/base/app/api"), json!({"key": "k-1", "n": 3}))
        .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/plugins/dir_store.py"
    );
    let config = w.config(&format!(
        "owner: e2e-plugin
vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: custom
    type: plugin
    command: [python3, {script}, --root, {root}]
    secret_prefix: apps/
    delete_orphans: true
    imports: [base]
",
        root = root.display()
    ));
    let path = std::env::var("PATH").unwrap_or_default();
    let env = [
        ("PATH", path.as_str()),
        ("XDG_CACHE_HOME", cache.to_str().unwrap()),
    ];
    let first = w.pipeline_env(&config, &[], &env);
    first
        .success()
        .stdout_has(&plan_counts("custom", 2, 0, 0, 0, 0));
    first.stdout_lacks("pw-1");
    let db = record(&root, "apps/app/db");
    assert_eq!(db["value"], json!({"user": "app", "password": "pw-1"}));
    assert_eq!(db["version"], 1);
    let marks = &db["marks"];
    assert_eq!(marks["managed-by"], "secretsync");
    assert_eq!(marks["secretsync:owner"], "e2e-plugin");
    assert_eq!(marks["secretsync:target"], "custom");
    assert_eq!(marks["secretsync:version"], "1");
    assert!(
        record(&root, ".secretsync/fingerprint-key")["value"]["key"].is_string(),
        "the fingerprint key is kept through the plugin"
    );
    // The lease was a lock file in the user's cache directory, released.
    let locks = cache.join("secretsync").join("locks");
    assert!(
        locks.join(".lock").exists(),
        "the lease used the cache directory"
    );
    assert!(
        !locks.join("e2e-plugin").join("custom.json").exists(),
        "the lease is released"
    );

    // A re-run writes nothing.
    let second = w.pipeline_env(&config, &[], &env);
    second
        .success()
        .stdout_has(&plan_counts("custom", 0, 0, 0, 2, 0));
    for name in ["apps/app/db", "apps/app/api"] {
        assert_eq!(
            record(&root, name)["version"],
            1,
            "{name} got no new version"
        );
    }

    // A change at the source is one new version; a removed secret is deleted.
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "pw-2"}),
    )
    .await;
    w.remove(&format!("{id}/base/app/api")).await;
    w.pipeline_env(&config, &[], &env)
        .success()
        .stdout_has(&plan_counts("custom", 0, 1, 1, 0, 0));
    let db = record(&root, "apps/app/db");
    assert_eq!(
        (db["version"].as_u64(), db["value"]["password"].as_str()),
        (Some(2), Some("pw-2"))
    );
    assert!(!root.join("apps%2Fapp%2Fapi.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_plugin_that_cannot_start_fails_its_target_with_a_clear_error() {
    let w = World::from_env().await;
    let id = unique("plg");
    w.put(&format!("{id}/base/app/db"), json!({"password": "pw-1"}))
        .await;
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: custom
    type: plugin
    command: [/nonexistent/secretsync-plugin, --root, /tmp/x]
    imports: [base]
"
    ));
    let run = w.pipeline(&config, &[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    run.stderr_has("cannot start the plugin `/nonexistent/secretsync-plugin --root /tmp/x`");
    assert!(!run.stderr.contains("pw-1") && !run.stdout.contains("pw-1"));
}
