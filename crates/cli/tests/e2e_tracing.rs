//! Traces end to end: the binary with `OTEL_EXPORTER_OTLP_ENDPOINT` set sends its spans over
//! OTLP/HTTP to the receiver the test servers include (`scripts/otlp_receiver.py`, which
//! decodes them with the official protobuf definitions; `SECRETSYNC_TEST_OTLP_ENDPOINT`).
//!
//! The receiver is shared by every test: each run is told apart by a resource attribute
//! (`OTEL_RESOURCE_ATTRIBUTES=test.id=<unique>`), which the exporter puts on each of its
//! spans.

mod support_sync;

use std::process::{Command, Stdio};
use std::time::Duration;

use secretsync_test_support::proxy::{Action, Proxy, Rule};
use serde_json::{Value, json};
use support_sync::{World, closed_address, unique};

const REGION: &str = "ap-southeast-4";

fn receiver() -> String {
    match std::env::var("SECRETSYNC_TEST_OTLP_ENDPOINT") {
        Ok(v) if !v.is_empty() => v.trim_end_matches('/').to_string(),
        _ => panic!(
            "SECRETSYNC_TEST_OTLP_ENDPOINT is not set: the tracing tests need the OTLP receiver \
             of the local test servers. Run `scripts/test.sh`, or `scripts/servers.sh start && \
             source .servers/env` before `cargo test`"
        ),
    }
}

/// What the receiver holds, as its JSON text: every span of every test so far.
async fn received() -> String {
    let url = format!("{}/spans", receiver());
    let resp = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.text().await.expect("the receiver's answer")
}

/// The environment that switches traces on, tagging this test's spans.
fn otel_env(test_id: &str) -> [(&'static str, String); 2] {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver()),
        ("OTEL_RESOURCE_ATTRIBUTES", format!("test.id={test_id}")),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// This test's spans, parsed, and a check that nothing arrived that the receiver rejected.
fn spans_of(doc: &str, test_id: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(doc).expect("the receiver answers JSON");
    assert_eq!(doc["rejected"], 0, "an export did not decode");
    doc["spans"]
        .as_array()
        .expect("a span list")
        .iter()
        .filter(|s| s["resource"]["test.id"] == test_id)
        .cloned()
        .collect()
}

/// One test's spans, with their parents.
struct Trace(Vec<Value>);

impl Trace {
    #[track_caller]
    fn one(&self, name: &str) -> &Value {
        let found: Vec<&Value> = self.0.iter().filter(|s| s["name"] == name).collect();
        assert_eq!(
            found.len(),
            1,
            "one `{name}` span expected\n{}",
            self.show()
        );
        found[0]
    }

    fn children<'a>(&'a self, parent: &Value) -> impl Iterator<Item = &'a Value> + 'a {
        let id = parent["span_id"].clone();
        self.0.iter().filter(move |s| s["parent_span_id"] == id)
    }

    #[track_caller]
    fn child(&self, parent: &Value, name: &str) -> &Value {
        let found: Vec<&Value> = self
            .children(parent)
            .filter(|s| s["name"] == name)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one `{name}` span under `{}` expected\n{}",
            parent["name"],
            self.show()
        );
        found[0]
    }

    fn show(&self) -> String {
        self.0
            .iter()
            .map(|s| {
                format!(
                    "{} {} <- {} {}",
                    s["span_id"], s["name"], s["parent_span_id"], s["attributes"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A real run with traces on: the spans arrive as run → merge / sync → target → the calls of
/// that target (the AWS SDK's operation spans, and under them one span per attempt), the Vault
/// calls under the merge, all in one trace, with the run id, our request ids and the backends',
/// and the service name; not one of them (nor anything else the receiver got) holds a secret
/// value, a secret path or the mount.
#[tokio::test]
async fn spans_arrive_as_run_phase_target_call_and_hold_no_value_or_path() {
    let w = World::from_env().await;
    let test_id = unique("tt");
    let mount_id = unique("mnt");
    let path = unique("pathsentinel");
    let nested = unique("dirsentinel");
    let value = unique("valuesentinel");
    let target = unique("trace");
    w.put(
        &format!("{mount_id}/base/{path}"),
        json!({ "password": value }),
    )
    .await;
    w.put(
        &format!("{mount_id}/base/{nested}/leaf"),
        json!({ "token": value }),
    )
    .await;
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{mount_id}/base/
    name: base
targets:
  - name: {target}
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {mount_id}/t/
    imports: [base]
"
    ));

    // Off without the variable: nothing arrives.
    let off_id = unique("tt");
    w.pipeline_env(
        &config,
        &["--dry-run"],
        &[("OTEL_RESOURCE_ATTRIBUTES", &format!("test.id={off_id}"))],
    )
    .success();
    assert!(spans_of(&received().await, &off_id).is_empty());

    let env = otel_env(&test_id);
    w.pipeline_env(&config, &[], &env_refs(&env)).success();
    // The binary sent everything before it exited.
    let doc = received().await;
    let t = Trace(spans_of(&doc, &test_id));

    let run = t.one("run");
    assert_eq!(
        run["parent_span_id"],
        "",
        "the run is the root\n{}",
        t.show()
    );
    let run_id = run["attributes"]["run_id"].as_str().expect("a run id");
    assert!(
        uuid::Uuid::parse_str(run_id).is_ok(),
        "run_id is a UUID: {run_id}"
    );
    assert_eq!(run["status_code"], 0, "the run succeeded: status unset");
    for s in &t.0 {
        assert_eq!(s["trace_id"], run["trace_id"], "one trace\n{}", t.show());
        assert_eq!(s["resource"]["service.name"], "secretsync");
    }
    let merge = t.child(run, "merge");
    assert_eq!(merge["attributes"]["phase"], "merge");
    let sync = t.child(run, "sync");
    assert_eq!(sync["attributes"]["phase"], "sync");
    let tspan = t.child(sync, "target");
    assert_eq!(tspan["attributes"]["target_name"], target.as_str());
    // The target's calls (its listing, reads and writes) are its children: the AWS SDK's
    // operation spans, each with one span per attempt under it.
    let calls: Vec<&Value> = t.children(tspan).collect();
    let methods: Vec<&str> = calls
        .iter()
        .filter_map(|c| c["attributes"]["rpc.method"].as_str())
        .collect();
    for m in ["ListSecrets", "CreateSecret"] {
        assert!(methods.contains(&m), "{m} under the target\n{}", t.show());
    }
    for c in &calls {
        assert_eq!(c["attributes"]["rpc.system"], "aws-api", "{c}");
        let method = c["attributes"]["rpc.method"].as_str().unwrap();
        let name = format!("secretsmanager {method}");
        let attempts: Vec<&Value> = t.children(c).filter(|a| a["name"] == name).collect();
        assert!(!attempts.is_empty(), "{name} under {c}\n{}", t.show());
        // The last attempt succeeded (earlier ones, if any, were retried).
        let last = attempts
            .iter()
            .max_by_key(|a| a["attributes"]["attempt"].as_i64())
            .unwrap();
        // Reading the fingerprint key before it exists is answered "not found" (refused).
        let outcome = if method == "GetSecretValue" {
            last["attributes"]["outcome"].as_str().unwrap_or_default()
        } else {
            "ok"
        };
        check_attempt(last, "aws-api", &format!("aws/default/{REGION}"), outcome);
        assert!(
            last["attributes"]["backend_request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "AWS's request id: {last}"
        );
        let ids: std::collections::BTreeSet<&str> = attempts
            .iter()
            .filter_map(|a| a["attributes"]["request_id"].as_str())
            .collect();
        assert_eq!(ids.len(), 1, "one request id per call: {attempts:?}");
    }
    // The Vault calls of the merge: one span per attempt, with Vault's request id.
    let vault_calls: Vec<&Value> = t.children(merge).collect();
    for op in ["vault kv.list", "vault kv.read"] {
        let found: Vec<&&Value> = vault_calls.iter().filter(|c| c["name"] == op).collect();
        assert!(!found.is_empty(), "{op} under the merge\n{}", t.show());
        for c in found {
            check_attempt(c, "vault", &format!("vault/{}", w.vault_addr), "ok");
            assert!(c["attributes"]["backend_request_id"].is_string(), "{c}");
        }
    }

    // Never a value, a secret path or the mount, anywhere in what arrived.
    for sentinel in [&value, &path, &nested, &mount_id] {
        assert!(
            !doc.contains(sentinel.as_str()),
            "`{sentinel}` reached the trace receiver"
        );
    }
    // The secrets really were written: the sentinels were in play.
    assert_eq!(
        w.sm(REGION).value(&format!("{mount_id}/t/{path}")).await,
        json!({ "password": value }).to_string()
    );
}

/// One attempt's span: a client span with our request id, the attempt number, the breaker key
/// of its service and `outcome` (`ok`, or `refused`: an error status).
#[track_caller]
fn check_attempt(span: &Value, system: &str, service: &str, outcome: &str) {
    let a = &span["attributes"];
    assert_eq!(span["kind"], 3, "a client span: {span}");
    assert_eq!(a["rpc.system"], system, "{span}");
    assert_eq!(a["service"], service, "{span}");
    assert!(
        a["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit())),
        "our request id: {span}"
    );
    assert!(a["attempt"].as_i64().is_some_and(|n| n >= 1), "{span}");
    assert!(["ok", "refused"].contains(&outcome), "{span}");
    assert_eq!(a["outcome"], outcome, "{span}");
    let status = if outcome == "ok" { 0 } else { 2 };
    assert_eq!(span["status_code"], status, "{span}");
}

/// A run that fails (Vault unreachable) still sends its spans, the run marked as an error; the
/// failed call's attempts carry the request id the error message shows.
#[tokio::test]
async fn a_failed_run_sends_its_spans() {
    let w = World::from_env().await;
    let test_id = unique("tt");
    let id = unique("fail");
    let config = w.config(&support_sync::single_target(&id, REGION, ""));
    let otel = otel_env(&test_id);
    let mut env = env_refs(&otel);
    let vault = closed_address();
    env.push(("VAULT_ADDR", &vault));
    let r = w.pipeline_env(&config, &["--merge-only"], &env);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let t = Trace(spans_of(&received().await, &test_id));
    let run = t.one("run");
    assert_eq!(run["status_code"], 2, "status error\n{}", t.show());
    let req = r
        .stderr
        .split("[req=")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("a request id in the error\n{}", r.stderr));
    let attempts: Vec<&Value> = t
        .children(run)
        .filter(|s| s["attributes"]["request_id"] == req)
        .collect();
    assert!(!attempts.is_empty(), "spans of [req={req}]\n{}", t.show());
    for a in attempts {
        assert_eq!(a["attributes"]["outcome"], "failed", "{a}");
        assert_eq!(a["status_code"], 2, "{a}");
        assert_eq!(a["attributes"]["service"], format!("vault/{vault}"), "{a}");
    }
}

/// SIGTERM while Vault is being read: the run stops, and what it traced still arrives.
#[tokio::test]
async fn a_run_stopped_by_sigterm_sends_its_spans() {
    let w = World::from_env().await;
    let test_id = unique("tt");
    let id = unique("term");
    w.put(&format!("{id}/base/a"), json!({ "k": "v" })).await;
    let vault = Proxy::start(&w.vault_addr);
    let slow = vault.add(
        Rule::method("GET")
            .path_prefix(&format!("/v1/secret/data/{id}/base/"))
            // Long enough for the signal to arrive while it waits (a read in flight is not
            // cut short: the run stops after it).
            .then(Action::Delay(Duration::from_secs(8))),
    );
    let config = w.config(&support_sync::single_target(&id, REGION, ""));
    let otel = otel_env(&test_id);
    let mut env = env_refs(&otel);
    let addr = vault.url();
    env.push(("VAULT_ADDR", &addr));
    let args: Vec<String> = [
        "pipeline",
        "--config",
        config.to_str().unwrap(),
        "--merge-only",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let child = w
        .command(&args, &env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start secretsync");
    assert!(
        vault.wait_for_hits(slow, 1, Duration::from_secs(60)),
        "the Vault read never started"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait for secretsync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    let t = Trace(spans_of(&received().await, &test_id));
    let run = t.one("run");
    assert_eq!(run["status_code"], 2, "status error\n{}", t.show());
    t.child(run, "merge");
}
