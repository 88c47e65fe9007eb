//! A `plugin` target's logs: the plugin's stderr is logged at debug level, and nothing
//! SecretSync sends it (a value) is ever logged. Alone in its binary: the log capture
//! ([`common::LogCapture`]) is per thread, and other tests running beside it would compete for
//! the same log call sites.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secretsync_core::targets::plugin::PluginSettings;
use secretsync_engine::cancel::Cancel;
use secretsync_engine::lease::local::LocalLeases;
use secretsync_engine::targets::plugin::PluginTarget;
use secretsync_engine::targets::{PlanContext, Target};
use serde_json::json;

mod common;
use common::{LogCapture, bundle, policy, unique};

#[tokio::test]
async fn stderr_is_logged_at_debug_and_no_value_is_logged() {
    let logs = LogCapture::start();
    let dir: PathBuf = std::env::temp_dir().join(unique("secretsync-plugin-logs-"));
    let settings = PluginSettings {
        command: vec![
            "python3".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/plugins/faulty.py").into(),
            "--root".into(),
            dir.join("store").display().to_string(),
            "--fault".into(),
            "chatty".into(),
        ],
        timeout: Duration::from_secs(20),
        env: BTreeMap::new(),
    };
    let t: Arc<dyn Target> = Arc::new(PluginTarget::new(
        "custom",
        "plugin-tests",
        &policy("apps/"),
        &settings,
        Arc::new(LocalLeases::new(dir.join("locks"))),
    ));
    let desired = bundle(&[("a", json!({"v": "s3cret-value"}))]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.created, r.failure.as_deref()), (1, None));
    // The stderr reader runs beside the requests: let it catch up.
    let wanted = "faulty: got a request write";
    for _ in 0..250 {
        if logs.lines().iter().any(|l| l.contains(wanted)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = logs.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("DEBUG") && l.contains("plugin stderr") && l.contains(wanted)),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("s3cret-value")),
        "{lines:#?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
