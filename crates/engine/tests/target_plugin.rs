//! The `plugin` target against the example plugin `examples/plugins/dir_store.py` (Python,
//! standard library only) in a temporary directory: the conformance suite (its rollback step
//! through the plugin's `--fail-on` fault), and plugins that misbehave
//! (`tests/plugins/faulty.py`: crash, hang, garbage, the wrong id, an endless line, another
//! protocol version, a missing capability), the plugin's environment and arguments, and the
//! leases (a local lock file, or the S3 merge store's bucket). The stderr log is tested in
//! `target_plugin_logs.rs`, alone in its binary (its log capture is per thread).
//!
//! The store is inspected by reading its files directly ([`DirStore`], the suite's
//! [`Inspector`] for this kind), never through the target under test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secretsync_core::config::{Sensitive, TargetPolicy};
use secretsync_core::targets::plugin::{INHERITED_ENV, PluginSettings};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::lease::LeaseBackend;
use secretsync_engine::lease::local::LocalLeases;
use secretsync_engine::targets::plugin::PluginTarget;
use secretsync_engine::targets::{PlanContext, Target};
use serde_json::{Value, json};

mod common;
mod conformance;
use common::{bundle, policy, unique};
use conformance::{Fixture, Inspector, MakeTarget};

const OWNER: &str = "plugin-tests";

fn example() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/plugins/dir_store.py"
    )
    .to_string()
}

fn faulty() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/plugins/faulty.py").to_string()
}

/// A directory of this test's own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let d = std::env::temp_dir().join(unique("secretsync-plugin-"));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example plugin's directory, read directly.
struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// The file of a name, encoded as the example plugin does (documented in its header).
    fn file(&self, name: &str) -> PathBuf {
        let mut s = String::new();
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                s.push(b as char);
            } else {
                s.push_str(&format!("%{b:02X}"));
            }
        }
        self.root.join(format!("{s}.json"))
    }

    fn record(&self, name: &str) -> Option<Value> {
        let text = std::fs::read_to_string(self.file(name)).ok()?;
        Some(serde_json::from_str(&text).unwrap())
    }
}

#[async_trait]
impl Inspector for DirStore {
    fn name(&self, prefix: &str, path: &str) -> String {
        format!("{prefix}{path}")
    }

    async fn value(&self, name: &str) -> Option<Value> {
        self.record(name).map(|r| r["value"].clone())
    }

    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let r = self.record(name)?;
        Some(serde_json::from_value(r["marks"].clone()).unwrap())
    }

    async fn versions(&self, name: &str) -> usize {
        self.record(name)
            .map(|r| r["version"].as_u64().unwrap() as usize)
            .unwrap_or(0)
    }

    async fn create_unmanaged(&self, name: &str, value: &Value) {
        let record = json!({"value": value, "marks": {}, "version": 1});
        std::fs::write(self.file(name), record.to_string()).unwrap();
    }

    async fn is_deleted(&self, name: &str) -> bool {
        !self.file(name).exists()
    }
}

fn settings(command: Vec<String>) -> PluginSettings {
    PluginSettings {
        command,
        timeout: Duration::from_secs(20),
        env: BTreeMap::new(),
    }
}

fn dir_store(root: &Path, extra: &[&str]) -> PluginSettings {
    let mut cmd = vec![
        "python3".to_string(),
        example(),
        "--root".into(),
        root.display().to_string(),
    ];
    cmd.extend(extra.iter().map(|s| s.to_string()));
    settings(cmd)
}

fn faulty_plugin(root: &Path, fault: &str) -> PluginSettings {
    settings(vec![
        "python3".into(),
        faulty(),
        "--root".into(),
        root.display().to_string(),
        "--fault".into(),
        fault.into(),
    ])
}

fn target(
    settings: &PluginSettings,
    locks: &Path,
    name: &str,
    owner: &str,
    p: TargetPolicy,
) -> Arc<dyn Target> {
    Arc::new(PluginTarget::new(
        name,
        owner,
        &p,
        settings,
        Arc::new(LocalLeases::new(locks.to_path_buf())),
    ))
}

fn make_target(settings: PluginSettings, locks: PathBuf) -> MakeTarget {
    Arc::new(move |name: &str, owner: &str, p: TargetPolicy| {
        let t = target(&settings, &locks, name, owner, p);
        Box::pin(async move { t })
    })
}

/// The shared conformance suite (every kind runs it) against the example plugin; the failing
/// target is the same plugin refusing writes of names with the marker (`--fail-on`).
#[tokio::test]
async fn conformance_suite() {
    let dir = TempDir::new();
    let root = dir.join("store");
    let f = Fixture {
        make: make_target(dir_store(&root, &[]), dir.join("locks")),
        inspector: Arc::new(DirStore { root: root.clone() }),
        prefix: "apps/".into(),
        failing: Some(make_target(
            dir_store(&root, &["--fail-on", conformance::FAIL_MARKER]),
            dir.join("locks"),
        )),
    };
    conformance::run_all(&f).await;

    // The example stores one 0600 file per secret, the fingerprint key among them.
    use std::os::unix::fs::PermissionsExt;
    let store = DirStore { root: root.clone() };
    let key = store
        .record(".secretsync/fingerprint-key")
        .expect("the key is stored");
    assert_eq!(key["value"]["key"].as_str().map(str::len), Some(64));
    for name in [
        ".secretsync/fingerprint-key",
        "apps/create/a",
        "apps/update/b",
    ] {
        let meta = std::fs::metadata(store.file(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

/// The plan's error of a target on `settings`.
async fn plan_error(settings: PluginSettings, dir: &TempDir) -> String {
    let t = target(
        &settings,
        &dir.join("locks"),
        "custom",
        OWNER,
        policy("apps/"),
    );
    let e = t
        .plan(
            &bundle(&[("a", json!({"v": "s3cret-value"}))]),
            &PlanContext::default(),
        )
        .await
        .expect_err("the plan fails");
    assert!(!e.message.contains("s3cret-value"), "{e}");
    e.message
}

#[tokio::test]
async fn a_plugin_that_crashes_fails_its_target_naming_the_command_and_the_request() {
    let dir = TempDir::new();
    let s = faulty_plugin(&dir.join("store"), "crash:list");
    let e = plan_error(s.clone(), &dir).await;
    assert!(
        e.contains("target `custom`")
            && e.contains(&format!("the plugin `{}`", s.display_command()))
            && e.contains("exited before answering `list`")
            && e.contains("exit status: 3"),
        "{e}"
    );
}

#[tokio::test]
async fn a_crash_during_a_write_fails_the_apply_without_the_value() {
    let dir = TempDir::new();
    let s = faulty_plugin(&dir.join("store"), "crash:write");
    let t = target(&s, &dir.join("locks"), "custom", OWNER, policy("apps/"));
    // The fingerprint key is the first write: the plan fails on it.
    let e = t
        .plan(
            &bundle(&[("a", json!({"v": "s3cret-value"}))]),
            &PlanContext::default(),
        )
        .await
        .expect_err("the key cannot be created");
    assert!(e.message.contains("exited before answering `write`"), "{e}");

    // With the key in place, the apply's write is what fails.
    let ok = target(
        &dir_store(&dir.join("store"), &[]),
        &dir.join("locks"),
        "custom",
        OWNER,
        policy("apps/"),
    );
    ok.plan(&bundle(&[]), &PlanContext::default())
        .await
        .unwrap();
    let plan = t
        .plan(
            &bundle(&[("a", json!({"v": "s3cret-value"}))]),
            &PlanContext::default(),
        )
        .await
        .unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.as_deref().expect("the apply fails");
    assert!(
        failure.contains("exited before answering `write`") && !failure.contains("s3cret-value"),
        "{failure}"
    );
    assert_eq!(r.created, 0);
    assert!(r.left_changed.is_empty(), "{r:?}");
}

#[tokio::test]
async fn a_plugin_that_hangs_is_stopped_after_its_timeout() {
    let dir = TempDir::new();
    let mut s = faulty_plugin(&dir.join("store"), "hang:list");
    s.timeout = Duration::from_millis(800);
    let e = plan_error(s, &dir).await;
    assert!(
        e.contains("did not answer `list` within 800ms") && e.contains("stopped"),
        "{e}"
    );
}

#[tokio::test]
async fn garbage_the_wrong_id_and_an_endless_line_are_refused_without_quoting_them() {
    let dir = TempDir::new();
    let e = plan_error(faulty_plugin(&dir.join("store"), "garbage:list"), &dir).await;
    assert!(
        e.contains("answered `list` with a line that is not JSON"),
        "{e}"
    );
    assert!(!e.contains("this is not json"), "{e}");

    let e = plan_error(faulty_plugin(&dir.join("store"), "wrong-id:list"), &dir).await;
    assert!(e.contains("out of step") && e.contains("`list`"), "{e}");

    let e = plan_error(faulty_plugin(&dir.join("store"), "huge:list"), &dir).await;
    assert!(e.contains("a line longer than 16 MiB"), "{e}");
}

#[tokio::test]
async fn another_protocol_version_or_a_missing_capability_is_refused_at_hello() {
    let dir = TempDir::new();
    let e = plan_error(faulty_plugin(&dir.join("store"), "version2"), &dir).await;
    assert!(
        e.contains("gave an unusable answer to `hello`: it speaks protocol version 2; this SecretSync speaks version 1"),
        "{e}"
    );
    let e = plan_error(faulty_plugin(&dir.join("store"), "no-delete"), &dir).await;
    assert!(e.contains("capability `delete`"), "{e}");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_a_config_error() {
    let dir = TempDir::new();
    let e = plan_error(
        settings(vec!["/nonexistent/secretsync-plugin".into()]),
        &dir,
    )
    .await;
    assert!(
        e.contains("cannot start the plugin `/nonexistent/secretsync-plugin`")
            && e.contains("command:"),
        "{e}"
    );
}

/// Values go only over stdin: the plugin's arguments are the command's, and its environment is
/// the few inherited variables plus `env:` (nothing else of SecretSync's environment, such as
/// the Vault token the tests run with).
#[tokio::test]
async fn the_plugin_gets_its_command_and_a_bounded_environment_only() {
    let dir = TempDir::new();
    let dump = dir.join("dump.json");
    let mut s = faulty_plugin(&dir.join("store"), &format!("env-dump:{}", dump.display()));
    s.env.insert("STORE_TOKEN".into(), Sensitive::new("t0ken"));
    let t = target(&s, &dir.join("locks"), "custom", OWNER, policy("apps/"));
    let desired = bundle(&[("a", json!({"v": "s3cret-value"}))]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.created, r.failure.as_deref()), (1, None));
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let argv: Vec<&str> = d["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &argv[1..],
        &s.command[2..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()[..]
    );
    let env: Vec<&str> = d["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"STORE_TOKEN") && env.contains(&"PATH"),
        "{env:?}"
    );
    // Nothing of this process's own environment beyond the inherited few (`python3` may be a
    // shell shim that sets its own `PWD`, `SHLVL` and `PYENV_*`).
    let shim = |k: &str| ["PWD", "SHLVL", "_"].contains(&k) || k.starts_with("PYENV");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if !INHERITED_ENV.contains(&k.as_str()) && !shim(&k) {
            assert!(
                !env.contains(&k.as_str()),
                "`{k}` leaked into the plugin's environment: {env:?}"
            );
        }
    }
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(!env.contains(&"CARGO_MANIFEST_DIR"));
}

#[tokio::test]
async fn without_a_merge_store_the_lease_is_a_local_lock_file() {
    let dir = TempDir::new();
    let t = target(
        &dir_store(&dir.join("store"), &[]),
        &dir.join("locks"),
        "custom",
        OWNER,
        policy("apps/"),
    );
    let b: Arc<dyn LeaseBackend> = t.lease_backend();
    let loc = b.location("plugin-tests/custom");
    assert!(
        loc.contains("lock file") && loc.contains("this machine only"),
        "{loc}"
    );
}

#[test]
fn the_module_docs_example_loads() {
    let src = include_str!("../src/targets/plugin/mod.rs");
    let doc: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc.iter().position(|l| *l == "```yaml").unwrap() + 1;
    let end = start + doc[start..].iter().position(|l| *l == "```").unwrap();
    let yaml = format!(
        "vault_sources:\n  - mount: secret/base/\n{}\n",
        doc[start..end].join("\n")
    );
    let env = |k: &str| (k == "STORE_TOKEN").then(|| "t".to_string());
    let loaded = secretsync_core::config::load(&yaml, &env);
    let c = loaded
        .config
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    assert_eq!(c.targets[0].backend.type_name(), "plugin");
}

/// With an S3 merge store the lease is an object in its bucket (moto), shared by every machine.
#[tokio::test]
async fn with_an_s3_merge_store_the_lease_lives_in_its_bucket() {
    use secretsync_engine::aws::AwsContext;
    use secretsync_engine::lease::{self, Holder, LeaseSpec};

    let endpoint = common::aws::endpoint();
    let sdk = common::aws::sdk(&endpoint, "us-east-1");
    let aws = AwsContext::from_sdk_config(sdk.clone());
    let env = |_: &str| None;
    let bucket = unique("plugin-lease-");
    let s3 = aws.s3(&sdk);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let yaml = format!(
        "owner: plugin-tests
vault_sources:
  - mount: secret/base/
merge_store:
  type: s3
  bucket: {bucket}
  prefix: merged/
  region: us-east-1
targets:
  - name: custom
    type: plugin
    command: [python3, {}, --root, /nonexistent]
    imports: [base]
",
        example()
    );
    let loaded = secretsync_core::config::load(&yaml, &|_| None);
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    let clients = secretsync_engine::targets::Clients {
        aws: Some(&aws),
        owner: "plugin-tests",
        env: &env,
        observers: Default::default(),
        retries: secretsync_core::config::RetriesConfig {
            vault_max_attempts: 1,
            ..Default::default()
        },
        merge_store: config.merge_store.as_ref(),
        store: None,
    };
    let t = secretsync_engine::targets::build(&config.targets[0], &clients)
        .await
        .unwrap();
    let backend = t.lease_backend();
    let key = lease::target_key("plugin-tests", "custom");
    assert_eq!(
        backend.location(&key),
        format!("lock object s3://{bucket}/merged/.secretsync/locks/plugin-tests/custom.json")
    );
    let held = lease::acquire(
        backend,
        LeaseSpec {
            key: key.clone(),
            ttl: Duration::from_secs(30),
            wait: Duration::ZERO,
        },
        Holder::new("plugin-tests", "run-1", "h", "a"),
        &Cancel::default(),
    )
    .await
    .unwrap();
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key("merged/.secretsync/locks/plugin-tests/custom.json")
        .send()
        .await
        .expect("the lease object is in the bucket");
    let body = object.body.collect().await.unwrap().into_bytes();
    assert!(String::from_utf8_lossy(&body).contains("run-1"));
    held.release().await.unwrap();
}

/// A deletion that fails after another one succeeded: the deleted secret is written back (with
/// marks that still prove it unchanged) and the update before it undone.
#[tokio::test]
async fn a_failed_deletion_writes_back_what_was_deleted_before_it() {
    let dir = TempDir::new();
    let root = dir.join("store");
    let store = DirStore { root: root.clone() };
    let marker = conformance::FAIL_MARKER;
    let start = bundle(&[
        ("a", json!({"v": "old"})),
        ("b", json!({"v": 1})),
        (marker, json!({"v": 2})),
    ]);
    let t = target(
        &dir_store(&root, &[]),
        &dir.join("locks"),
        "custom",
        OWNER,
        policy("apps/"),
    );
    let plan = t.plan(&start, &PlanContext::default()).await.unwrap();
    assert!(t.apply(&plan, &Cancel::default()).await.failure.is_none());

    let broken = target(
        &dir_store(&root, &["--fail-on", marker]),
        &dir.join("locks"),
        "custom",
        OWNER,
        policy("apps/"),
    );
    let plan = broken
        .plan(
            &bundle(&[("a", json!({"v": "new"}))]),
            &PlanContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(plan.counts().changes(), 3);
    let r = broken.apply(&plan, &Cancel::default()).await;
    conformance::assert_injected_failure_rolled_back(&r);
    assert_eq!(r.rolled_back, 2, "{r:?}");
    assert_eq!(store.value("apps/a").await, Some(json!({"v": "old"})));
    assert_eq!(store.value("apps/b").await, Some(json!({"v": 1})));
    assert_eq!(
        store.value(&format!("apps/{marker}")).await,
        Some(json!({"v": 2}))
    );
    let plan = t.plan(&start, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", common::kinds(&plan));
}
