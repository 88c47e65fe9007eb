//! End to end: the real `secretsync` binary, driven like a user with config files, against the
//! real local OpenBao server (`scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`). Seeding and admin calls use the plain HTTP API with the root token; every
//! test works in its own uniquely named mount, policy and temp directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secretsync_core::mask::{MASK, mask_value};
use serde_json::{Value, json};

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "{prefix}{:x}{:x}{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The local OpenBao server, from the environment; panics (never skips) when it is not set.
struct Bao {
    addr: String,
    root: String,
}

impl Bao {
    fn from_env() -> Bao {
        let get = |name: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => panic!(
                "{name} is not set: these end-to-end tests need the local OpenBao server. \
                 Run `scripts/test.sh`, or `scripts/servers.sh start && source .servers/env` \
                 before `cargo test`"
            ),
        };
        Bao {
            addr: get("SECRETSYNC_TEST_VAULT_ADDR")
                .trim_end_matches('/')
                .to_string(),
            root: get("SECRETSYNC_TEST_VAULT_TOKEN"),
        }
    }

    /// One HTTP/1.0 exchange (no chunking, the server closes the connection) with the root
    /// token. Returns the status and the JSON body (`null` when empty).
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let host = self.addr.strip_prefix("http://").unwrap_or_else(|| {
            panic!(
                "the test server address must be plain http on loopback: {}",
                self.addr
            )
        });
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(host)
            .unwrap_or_else(|e| panic!("cannot reach OpenBao at {host}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} /v1/{path} HTTP/1.0\r\nHost: {host}\r\nX-Vault-Token: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.root,
            body.len()
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8_lossy(&response);
        let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {head}"));
        (status, serde_json::from_str(payload).unwrap_or(Value::Null))
    }

    /// A request that must succeed; returns the body.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.request(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} /v1/{path} answered {status}: {v}"
        );
        v
    }

    /// Enables a KV v2 mount and waits until it serves requests: a fresh KV v2 mount answers
    /// 400 "Upgrading from non-versioned to versioned data" for a moment.
    fn enable_kv2(&self, mount: &str) {
        self.call(
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, v) = self.request("GET", &format!("{mount}/metadata/?list=true"), None);
            // An empty mount lists as 404.
            if status == 404 || (200..300).contains(&status) {
                return;
            }
            assert!(
                status == 400 && v.to_string().contains("Upgrading"),
                "new mount `{mount}` answered {status}: {v}"
            );
            assert!(
                Instant::now() < deadline,
                "new mount `{mount}` was still upgrading after 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn put(&self, mount: &str, path: &str, data: Value) {
        self.call(
            "POST",
            &format!("{mount}/data/{path}"),
            Some(json!({ "data": data })),
        );
    }

    fn token_with_policy(&self, name: &str, hcl: &str) -> String {
        self.call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        );
        let v = self.call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": [name], "ttl": "1h"})),
        );
        v["auth"]["client_token"]
            .as_str()
            .expect("a client token")
            .to_string()
    }
}

/// A config file in a fresh temp directory, removed when dropped.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn path(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_config(text: &str) -> ConfigFile {
    let dir = std::env::temp_dir().join(unique("secretsync-e2e-"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secretsync.yaml");
    std::fs::write(&path, text).unwrap();
    ConfigFile { dir, path }
}

/// The binary with an environment that holds only what the test gives it.
fn secretsync(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secretsync"));
    cmd.args(args);
    for var in [
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_NAMESPACE",
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID",
        "VAULT_APPROLE_MOUNT",
        "SECRETSYNC_CONFIG",
        "SECRETSYNC_LOG_LEVEL",
        "SECRETSYNC_LOG_FORMAT",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("running the secretsync binary");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

#[test]
fn validate_accepts_a_good_config() {
    let config = write_config(
        r#"
vault_sources:
  - mount: secret/base/
    max_secrets: 100
  - mount: secret/production/
targets:
  - name: prod
    type: aws_secretsmanager
    region: us-east-1
    imports: [base, production]
    overrides: { environment: production }
  - name: staging
    type: aws_secretsmanager
    region: us-west-2
    imports: [prod]
"#,
    );
    let r = run(&mut secretsync(&["validate", "--config", config.path()]));
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        r.stdout.contains("config OK") && r.stdout.contains("2 sources"),
        "{r}"
    );
}

/// Warnings are printed with their lines, and the summary says there were warnings: no bare
/// "config OK"; discovery is checked, not run (validate calls nothing).
#[test]
fn validate_prints_warnings_and_says_discovery_is_checked_not_run() {
    let config = write_config(
        r#"owner: team-a
vault_sources:
  - mount: secret/base/
targets:
  - name: prod
    type: aws_secretsmanager
    region: us-east-1
    delete_orphans: true
discovery: { type: aws_organizations }
circuit_breaker: { enabled: true }
"#,
    );
    let r = run(&mut secretsync(&["validate", "--config", config.path()]));
    assert_eq!(r.code, Some(0), "{r}");
    let has = |line: &str, what: &str| {
        r.stderr
            .lines()
            .any(|l| l.contains(&format!("warning at line {line},")) && l.contains(what))
    };
    assert!(has("8", "deletes orphans but imports nothing"), "{r}");
    assert!(has("9", "discovery has no `target_template`"), "{r}");
    // The circuit breaker is active: its block does not warn.
    assert!(!r.stderr.contains("circuit_breaker"), "{r}");
    assert!(
        r.stdout
            .starts_with("config valid with 2 warnings (see above): 1 source, 1 target"),
        "{r}"
    );
    assert!(!r.stdout.contains("config OK"), "{r}");
    assert!(
        r.stdout
            .contains("discovery 1 block (templates checked; `secretsync discover` runs it)"),
        "{r}"
    );
    assert!(r.stdout.contains("owner scope team-a"), "{r}");
}

#[test]
fn validate_reports_every_problem_at_once_with_line_numbers() {
    let unset = unique("SECRETSYNC_E2E_UNSET_");
    let config = write_config(&format!(
        "vault_sources:
  - mount: secret/base/
    max_secret: 10
targets:
  - name: a
    type: aws_secretsmanager
    region: us-east-1
    secret_prefix: ${{{unset}}}
    imports: [base, b]
  - name: b
    type: aws_secretsmanager
    region: us-east-1
    imports: [a]
"
    ));
    let r = run(secretsync(&["validate", "--config", config.path()]).env_remove(&unset));
    assert_eq!(r.code, Some(1), "{r}");
    let has = |line: &str, what: &str| {
        r.stderr
            .lines()
            .any(|l| l.contains(&format!("line {line},")) && l.contains(what))
    };
    assert!(has("3", "unknown key `max_secret`"), "unknown key: {r}");
    assert!(has("3", "`max_secrets`"), "suggests the closest key: {r}");
    assert!(
        has("8", &format!("`{unset}` is not set")),
        "unset variable: {r}"
    );
    assert!(has("9", "a -> b -> a"), "cycle: {r}");
    assert!(r.stdout.is_empty(), "results only on success: {r}");
}

/// Three levels of targets over two sources, every merge rule exercised; the sentinels are the
/// values that must never appear unless `--show-values` asks for them.
struct Chain {
    /// Default masking: `--show-values` still hides keys that look sensitive.
    config: ConfigFile,
    /// The same with `masking: { enabled: false }`: `--show-values` shows everything.
    unmasked: ConfigFile,
    sentinel: String,
    expected: Value,
}

fn seed_chain(bao: &Bao) -> Chain {
    let mount = unique("e2e");
    bao.enable_kv2(&mount);
    let sentinel = unique("sentinel-");
    let s = |what: &str| format!("{sentinel}-{what}");
    bao.put(
        &mount,
        "base/app/config",
        json!({
            "api_keys": ["k1", s("key")],
            "config": {"timeout": 30, "retries": 3},
            "region": "eu-west-1",
            "owner": "base-team",
            "token": s("token"),
        }),
    );
    bao.put(
        &mount,
        "base/app/db",
        json!({"host": "db.base", "port": 5432, "password": s("password")}),
    );
    bao.put(
        &mount,
        "prod/app/config",
        json!({
            "api_keys": ["k3", "k1"],
            "config": {"timeout": 60, "debug": true},
            "region": "us-east-2",
            "owner": null,
        }),
    );
    bao.put(
        &mount,
        "prod/app/extra",
        json!({"feature": true, "level": {"a": {"b": s("nested")}}}),
    );
    // Not under either source: must not appear.
    bao.put(&mount, "other/app/config", json!({"stray": s("stray")}));

    let text = format!(
        r#"
vault_sources:
  - mount: {mount}/base/
    queue_compaction_threshold: 1 # compacts, so `--log-level debug` has something to say
  - mount: {mount}/prod/
targets:
  - name: l1
    type: aws_secretsmanager
    region: us-east-1
    imports: [base]
    overrides: {{ tier: one, limits: {{ cpu: 1 }} }}
  - name: l2
    type: aws_secretsmanager
    region: us-east-1
    imports: [l1, prod]
    overrides: {{ tier: two, limits: {{ mem: 2 }}, tags: [l2] }}
  - name: l3
    type: aws_secretsmanager
    region: us-east-1
    imports: [l2]
    overrides: {{ tier: null, limits: {{ cpu: 3 }}, tags: [l3], level: {{ a: {{ c: 2 }} }} }}
"#
    );
    let config = write_config(&text);
    let unmasked = write_config(&format!("{text}masking: {{ enabled: false }}\n"));

    let expected = json!({"targets": {
        "l1": {
            "app/config": {
                "api_keys": ["k1", s("key")],
                "config": {"timeout": 30, "retries": 3},
                "region": "eu-west-1",
                "owner": "base-team",
                "token": s("token"),
                "tier": "one",
                "limits": {"cpu": 1},
            },
            "app/db": {
                "host": "db.base", "port": 5432, "password": s("password"),
                "tier": "one", "limits": {"cpu": 1},
            },
        },
        "l2": {
            "app/config": {
                // lists append; an item already present is not appended again
                "api_keys": ["k1", s("key"), "k3"],
                // maps merge; scalars: later wins
                "config": {"timeout": 60, "retries": 3, "debug": true},
                "region": "us-east-2",
                // null keeps the earlier value
                "owner": "base-team",
                "token": s("token"),
                "tier": "two",
                "limits": {"cpu": 1, "mem": 2},
                "tags": ["l2"],
            },
            "app/db": {
                "host": "db.base", "port": 5432, "password": s("password"),
                "tier": "two", "limits": {"cpu": 1, "mem": 2}, "tags": ["l2"],
            },
            "app/extra": {
                "feature": true, "level": {"a": {"b": s("nested")}},
                "tier": "two", "limits": {"mem": 2}, "tags": ["l2"],
            },
        },
        "l3": {
            "app/config": {
                "api_keys": ["k1", s("key"), "k3"],
                "config": {"timeout": 60, "retries": 3, "debug": true},
                "region": "us-east-2",
                "owner": "base-team",
                "token": s("token"),
                "tier": "two",
                "limits": {"cpu": 3, "mem": 2},
                "tags": ["l2", "l3"],
                "level": {"a": {"c": 2}},
            },
            "app/db": {
                "host": "db.base", "port": 5432, "password": s("password"),
                "tier": "two", "limits": {"cpu": 3, "mem": 2}, "tags": ["l2", "l3"],
                "level": {"a": {"c": 2}},
            },
            "app/extra": {
                "feature": true, "level": {"a": {"b": s("nested"), "c": 2}},
                "tier": "two", "limits": {"cpu": 3, "mem": 2}, "tags": ["l2", "l3"],
            },
        },
    }});
    Chain {
        config,
        unmasked,
        sentinel,
        expected,
    }
}

fn pipeline(bao: &Bao, token: &str, config: &ConfigFile, extra: &[&str]) -> Run {
    let mut args = vec![
        "pipeline",
        "--config",
        config.path(),
        "--merge-only",
        "--dry-run",
    ];
    args.extend_from_slice(extra);
    run(secretsync(&args)
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", token))
}

#[test]
fn merge_only_shows_exactly_the_deep_merged_chain() {
    let bao = Bao::from_env();
    let chain = seed_chain(&bao);
    let r = pipeline(
        &bao,
        &bao.root,
        &chain.unmasked,
        &["--output", "json", "--show-values"],
    );
    assert_eq!(r.code, Some(0), "{r}");
    let shown: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {r}"));
    assert_eq!(shown, chain.expected, "{r}");

    // With the default masking, keys that look sensitive stay masked even so.
    let r = pipeline(
        &bao,
        &bao.root,
        &chain.config,
        &["--output", "json", "--show-values"],
    );
    assert_eq!(r.code, Some(0), "{r}");
    let mut expected = chain.expected.clone();
    for target in expected["targets"].as_object_mut().unwrap().values_mut() {
        for secret in target.as_object_mut().unwrap().values_mut() {
            for (key, value) in secret.as_object_mut().unwrap() {
                if ["api_keys", "token", "password"].contains(&key.as_str()) {
                    *value = mask_value(value);
                }
            }
        }
    }
    let shown: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {r}"));
    assert_eq!(shown, expected, "{r}");
}

#[test]
fn without_show_values_no_value_is_printed_or_logged() {
    let bao = Bao::from_env();
    let chain = seed_chain(&bao);
    for (config, output) in [
        (&chain.config, "json"),
        (&chain.config, "text"),
        (&chain.unmasked, "json"),
        (&chain.unmasked, "text"),
    ] {
        let r = pipeline(
            &bao,
            &bao.root,
            config,
            &["--output", output, "--log-level", "debug"],
        );
        assert_eq!(r.code, Some(0), "{r}");
        assert!(
            !r.stdout.contains(&chain.sentinel) && !r.stderr.contains(&chain.sentinel),
            "a secret value leaked with --output {output}:\n{r}"
        );
        assert!(r.stdout.contains(MASK), "values are shown masked: {r}");
        assert!(
            r.stderr.contains("DEBUG"),
            "debug logging was on, so the check covered debug logs too: {r}"
        );
        if output == "json" {
            // Same shape and keys as the real result, every value masked.
            let shown: Value = serde_json::from_str(&r.stdout).unwrap();
            assert_eq!(shown, mask_value(&chain.expected), "{r}");
        }
    }
}

#[test]
fn a_folder_the_token_may_not_list_is_a_named_gap_and_the_run_fails() {
    let bao = Bao::from_env();
    let mount = unique("e2edeny");
    bao.enable_kv2(&mount);
    bao.put(&mount, "src/top", json!({"x": 1}));
    bao.put(&mount, "src/closed/inner", json!({"x": 2}));
    let token = bao.token_with_policy(
        &unique("e2e-partial-"),
        &format!(
            r#"
path "{mount}/metadata/src/" {{ capabilities = ["list"] }}
path "{mount}/data/*" {{ capabilities = ["read"] }}
"#
        ),
    );
    let config = write_config(&format!(
        r#"
vault_sources:
  - mount: {mount}/src/
targets:
  - name: t
    type: aws_secretsmanager
    region: us-east-1
    imports: [src]
"#
    ));
    let r = pipeline(&bao, &token, &config, &["--output", "json"]);
    assert_eq!(r.code, Some(1), "an incomplete read is a failure: {r}");
    assert!(
        r.stderr.contains("incomplete") && r.stderr.contains("permission denied"),
        "says why: {r}"
    );
    assert!(r.stderr.contains("`closed/`"), "names the folder: {r}");
    // The readable part is shown, with the gap named (never "an empty folder").
    let doc: Value = serde_json::from_str(&r.stdout).expect("json on stdout");
    assert!(doc["targets"]["t"]["top"].is_object(), "{r}");
    assert!(doc["targets"]["t"].get("closed/inner").is_none(), "{r}");
    let gaps = doc["incomplete"]["t"].as_array().expect("gaps listed");
    assert!(gaps[0].as_str().unwrap().contains("`closed/`"), "{r}");
}
