//! End to end: the binary's Prometheus metrics. Scraped while a run is held up by the fault
//! proxy (a delayed write), they match what the run did and what it reports (`--output
//! json`); `promtool check metrics` accepts them; the final metrics arrive in the real
//! Pushgateway, also when the run fails early; a push that cannot be delivered is a warning;
//! no secret path or value appears anywhere in them.
//!
//! Needs the local servers (`scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`: OpenBao, moto and the Pushgateway) and `promtool` (`scripts/deps.sh`); without
//! them the tests fail loudly.

mod support_sync;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use secretsync_test_support::proxy::{Action, Proxy, Rule};
use serde_json::json;
use support_sync::{World, closed_address, unique};

/// One sample: the metric name and its labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
}

/// The samples of a text exposition (format 0.0.4), comments left out.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = match line.find('{') {
            Some(open) => {
                let close = line.rfind('}').expect("a closing brace");
                let mut labels = BTreeMap::new();
                let mut rest = &line[open + 1..close];
                while !rest.is_empty() {
                    let eq = rest.find("=\"").expect("label=\"value\"");
                    let key = rest[..eq].to_string();
                    let mut value = String::new();
                    let mut chars = rest[eq + 2..].char_indices();
                    let end = loop {
                        match chars.next().expect("a closing quote") {
                            (i, '"') => break eq + 2 + i,
                            (_, '\\') => match chars.next().expect("an escaped character").1 {
                                'n' => value.push('\n'),
                                c => value.push(c),
                            },
                            (_, c) => value.push(c),
                        }
                    };
                    labels.insert(key, value);
                    rest = rest[end + 1..].trim_start_matches(',');
                }
                let name = line[..open].to_string();
                (Series { name, labels }, &line[close + 1..])
            }
            None => {
                let (name, value) = line.split_once(' ').expect("name value");
                (
                    Series {
                        name: name.to_string(),
                        labels: BTreeMap::new(),
                    },
                    value,
                )
            }
        };
        let value = value.split_whitespace().next().expect("a value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(series, v);
    }
    out
}

/// The metrics as scraped or pushed, with sums over labels.
struct Samples(BTreeMap<Series, f64>);

impl Samples {
    /// The sum of `name` over every series whose labels include all of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(s, _)| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The value of the one series `name{labels}`: labels given exactly, besides the
    /// Pushgateway's grouping labels (`job`, `config`, `instance`); panics when absent.
    #[track_caller]
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<f64> = self
            .0
            .iter()
            .filter(|(s, _)| {
                s.name == name
                    && s.labels
                        .iter()
                        .filter(|(k, _)| !["job", "config", "instance"].contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<BTreeMap<_, _>>()
                        == want
            })
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name}{labels:?}: {found:?} among\n{}",
            self.names().join("\n")
        );
        found[0]
    }

    fn has(&self, name: &str) -> bool {
        self.0.keys().any(|s| s.name == name)
    }

    fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(s, v)| format!("{}{:?} {v}", s.name, s.labels))
            .collect()
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

/// `promtool check metrics` must accept `text`. promtool is installed by `scripts/deps.sh`; a
/// missing promtool fails the test.
#[track_caller]
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install it with scripts/deps.sh (Debian `prometheus`)"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics rejected the exposition:\n{}{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Pushgateway's address (`SECRETSYNC_TEST_PUSHGATEWAY`); panics when missing.
fn pushgateway() -> String {
    match std::env::var("SECRETSYNC_TEST_PUSHGATEWAY") {
        Ok(v) if !v.is_empty() => v.trim_end_matches('/').to_string(),
        _ => panic!(
            "SECRETSYNC_TEST_PUSHGATEWAY is not set: run `scripts/test.sh`, or \
             `scripts/servers.sh start && source .servers/env` before `cargo test`"
        ),
    }
}

/// What the Pushgateway holds for `config` (job `secretsync`), and its whole text.
async fn pushed(config: &str) -> (Samples, String) {
    let (status, text) = get(&format!("{}/metrics", pushgateway())).await;
    assert_eq!(status, 200, "{text}");
    let all = parse(&text);
    let mine = all
        .into_iter()
        .filter(|(s, _)| {
            s.labels.get("job").map(String::as_str) == Some("secretsync")
                && s.labels.get("config").map(String::as_str) == Some(config)
        })
        .collect();
    (Samples(mine), text)
}

/// The config file's name without `.yaml`: the Pushgateway's `config` label.
fn stem(config: &std::path::Path) -> String {
    config
        .file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// Every secret path and value of the test contains one of these.
const PATH_MARK: &str = "pathmark";
const VALUE_MARK: &str = "valuemark";

#[track_caller]
fn no_secret_in(what: &str, text: &str, id: &str) {
    for mark in [PATH_MARK, VALUE_MARK, id] {
        assert!(!text.contains(mark), "{what} holds {mark:?}:\n{text}");
    }
}

/// Source `base` (101 secrets, so that listing target `one` takes two pages) feeds target
/// `one` (eu-west-3); source `extra` (2 secrets) feeds target `two` (ca-west-1). A first run
/// creates everything; then one secret is added to each source. The second run — the one
/// measured — goes through fault proxies: Vault answers one read 503 and one 429, Secrets
/// Manager one `ListSecrets` 500 and one `ThrottlingException` (all retried), and the
/// creation in `two` is held for seconds. While it is held, target `one` is done: the scrape
/// then shows exactly what `one` did and every Vault request of the run. The pushed final
/// metrics equal the run's own report.
#[tokio::test]
async fn metrics_scraped_during_a_run_and_pushed_after_it_match_what_it_did() {
    let w = World::from_env().await;
    let id = unique("met");
    let mut items: Vec<(String, serde_json::Value)> = (0..101)
        .map(|i| {
            (
                format!("{id}/base/{PATH_MARK}-{i:03}"),
                json!({"password": format!("{VALUE_MARK}-{i}")}),
            )
        })
        .collect();
    for i in 0..2 {
        items.push((
            format!("{id}/extra/{PATH_MARK}-x{i}"),
            json!({"token": format!("{VALUE_MARK}-x{i}")}),
        ));
    }
    w.put_many(items).await;
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
  - mount: secret/{id}/extra/
    name: extra
targets:
  - name: one
    type: aws_secretsmanager
    region: eu-west-3
    secret_prefix: {id}/one/
    imports: [base]
    writes_per_second: 200
  - name: two
    type: aws_secretsmanager
    region: ca-west-1
    secret_prefix: {id}/two/
    imports: [extra]
    concurrency: 1
metrics:
  address: 127.0.0.1
"
    ));
    w.pipeline(&config, &[]).success();
    w.put(
        &format!("{id}/base/{PATH_MARK}-new"),
        json!({"password": format!("{VALUE_MARK}-new")}),
    )
    .await;
    w.put(
        &format!("{id}/extra/{PATH_MARK}-xnew"),
        json!({"token": format!("{VALUE_MARK}-xnew")}),
    )
    .await;

    let vault = Proxy::start(&w.vault_addr);
    let login = vault.add(
        Rule::method("GET")
            .path_contains("/auth/token/lookup-self")
            .then(Action::Delay(Duration::from_secs(3)))
            .times(1),
    );
    let read = format!("/v1/secret/data/{id}/base/");
    vault.add(
        Rule::method("GET")
            .path_prefix(&read)
            .then(Action::status(503, r#"{"errors":["injected"]}"#))
            .times(1),
    );
    vault.add(
        Rule::method("GET")
            .path_prefix(&read)
            .then(Action::status(429, r#"{"errors":["injected"]}"#))
            .times(1),
    );
    let aws = Proxy::start(&w.aws_endpoint);
    aws.add(
        Rule::amz_target("secretsmanager.ListSecrets")
            .then(Action::aws_error(500, "InternalServiceError", "injected"))
            .times(1),
    );
    aws.add(
        Rule::amz_target("secretsmanager.ListSecrets")
            .then(Action::aws_error(400, "ThrottlingException", "injected"))
            .times(1),
    );
    let held = aws.add(
        Rule::amz_target("secretsmanager.CreateSecret")
            .body_contains(&format!("{id}/two/"))
            .then(Action::Delay(Duration::from_secs(4)))
            .times(1),
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let args: Vec<String> = [
        "pipeline",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--output",
        "json",
        "--metrics-port",
        &port.to_string(),
        "--metrics-push-url",
        &pushgateway(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (vault_url, aws_url) = (vault.url(), aws.url());
    let child = w
        .command(
            &args,
            &[
                ("VAULT_ADDR", vault_url.as_str()),
                ("AWS_ENDPOINT_URL", aws_url.as_str()),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start secretsync");
    let done = std::thread::spawn(move || child.wait_with_output().expect("secretsync ran"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let wait_for = |what: &str| {
        assert!(
            Instant::now() < deadline && !done.is_finished(),
            "gave up waiting for {what}"
        );
    };

    // Up while the Vault login is held: alive, not ready.
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        wait_for("the metrics endpoint");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while vault.hits(login) == 0 {
        wait_for("the held Vault login");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = get(&format!("{base}/ready")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "not ready: connecting to the backends (Vault login, AWS configuration, targets)\n"
        )
    );

    // Held in target `two`'s first write: `one` is done.
    while aws.hits(held) == 0 {
        wait_for("the held CreateSecret");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&format!("{base}/ready")).await, (200, "ready\n".into()));
    assert_eq!(get(&format!("{base}/health")).await.0, 200);
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(!done.is_finished(), "the run must still be held");
    promtool_accepts(&text);
    no_secret_in("the scraped metrics", &text, &id);
    let during = Samples(parse(&text));

    let out = done.join().expect("the waiting thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let vault_requests = report["vault_requests"].as_f64().expect("vault_requests");
    let aws_calls = report["aws_calls"].as_f64().expect("aws_calls");
    assert!(stderr.contains("pushed the run's metrics"), "{stderr}");

    // The seed's names, with the run's labels.
    for name in [
        "secretsync_vault_request_duration_seconds_count",
        "secretsync_vault_requests_total",
        "secretsync_vault_errors_total",
        "secretsync_vault_secrets_total",
        "secretsync_aws_request_duration_seconds_count",
        "secretsync_aws_requests_total",
        "secretsync_aws_errors_total",
        "secretsync_aws_pagination_calls_total",
        "secretsync_pipeline_duration_seconds_count",
        "secretsync_secrets_synced_total",
        "secretsync_build_info",
        "secretsync_planned_changes",
        "secretsync_changes_total",
        "secretsync_throttled_total",
    ] {
        assert!(during.has(name), "no {name} in\n{text}");
    }
    // Vault is done: every request of the run, as the run reports them; 103 + 2 secrets read.
    assert_eq!(
        during.sum("secretsync_vault_requests_total", &[]),
        vault_requests
    );
    assert_eq!(
        during.sum("secretsync_vault_request_duration_seconds_count", &[]),
        vault_requests
    );
    assert_eq!(during.get("secretsync_vault_secrets_total", &[]), 105.0);
    assert_eq!(
        during.sum("secretsync_vault_errors_total", &[("outcome", "failed")]),
        1.0
    );
    assert_eq!(
        during.sum("secretsync_vault_errors_total", &[("outcome", "throttled")]),
        1.0
    );
    assert_eq!(
        during.get("secretsync_throttled_total", &[("backend", "vault")]),
        1.0
    );
    // Secrets Manager: the injected failure and throttling, and the second page of `one`'s
    // listing (before and after taking its lease).
    let sm_list = [("service", "secretsmanager"), ("operation", "ListSecrets")];
    assert_eq!(
        during.get(
            "secretsync_aws_errors_total",
            &[sm_list[0], sm_list[1], ("outcome", "failed")]
        ),
        1.0
    );
    assert_eq!(
        during.get(
            "secretsync_aws_errors_total",
            &[sm_list[0], sm_list[1], ("outcome", "throttled")]
        ),
        1.0
    );
    assert_eq!(
        during.get("secretsync_throttled_total", &[("backend", "aws")]),
        1.0
    );
    assert_eq!(
        during.get("secretsync_aws_pagination_calls_total", &sm_list),
        2.0
    );
    // Target `one` is done, `two` planned but not finished.
    for (kind, n) in [("created", 1.0), ("updated", 0.0), ("deleted", 0.0)] {
        assert_eq!(
            during.get(
                "secretsync_changes_total",
                &[("target", "one"), ("kind", kind)]
            ),
            n,
            "{kind}"
        );
    }
    assert_eq!(
        during.get("secretsync_secrets_synced_total", &[("target", "one")]),
        1.0
    );
    assert_eq!(
        during.get(
            "secretsync_planned_changes",
            &[("target", "one"), ("kind", "unchanged")]
        ),
        101.0
    );
    assert_eq!(
        during.get(
            "secretsync_planned_changes",
            &[("target", "two"), ("kind", "add")]
        ),
        1.0
    );
    assert_eq!(
        during.sum("secretsync_changes_total", &[("target", "two")]),
        0.0
    );
    assert!(!during.has("secretsync_target_failures_total"), "{text}");
    for (phase, n) in [
        ("setup", 1.0),
        ("merge", 1.0),
        ("sync", 0.0),
        ("total", 0.0),
    ] {
        assert_eq!(
            during.sum(
                "secretsync_pipeline_duration_seconds_count",
                &[("phase", phase)]
            ),
            n,
            "{phase}"
        );
    }
    assert!(!during.has("secretsync_last_run_success"), "{text}");
    assert!(during.sum("secretsync_aws_requests_total", &[]) < aws_calls);

    // The final metrics in the Pushgateway: what the run reports.
    let (after, all) = pushed(&stem(&config)).await;
    no_secret_in("the Pushgateway", &all, &id);
    assert_eq!(after.sum("secretsync_aws_requests_total", &[]), aws_calls);
    assert_eq!(
        after.sum("secretsync_aws_request_duration_seconds_count", &[]),
        aws_calls
    );
    assert_eq!(
        after.sum("secretsync_vault_requests_total", &[]),
        vault_requests
    );
    assert_eq!(
        after.get(
            "secretsync_changes_total",
            &[("target", "two"), ("kind", "created")]
        ),
        1.0
    );
    assert_eq!(
        after.get("secretsync_secrets_synced_total", &[("target", "two")]),
        1.0
    );
    assert_eq!(after.get("secretsync_last_run_success", &[]), 1.0);
    assert!(after.get("secretsync_last_success_timestamp_seconds", &[]) > 1.6e9);
    for phase in ["setup", "merge", "sync", "total"] {
        assert_eq!(
            after.get(
                "secretsync_pipeline_duration_seconds_count",
                &[("phase", phase)]
            ),
            1.0,
            "{phase}"
        );
    }
}

/// A run that fails before it syncs anything (Vault unreachable) still pushes its metrics,
/// saying it failed, without a last success.
#[tokio::test]
async fn a_run_that_fails_early_still_pushes_its_metrics() {
    let w = World::from_env().await;
    let id = unique("metfail");
    let config = w.config(&support_sync::single_target(&id, "il-central-1", ""));
    let closed = closed_address();
    let r = w.pipeline_env(
        &config,
        &["--metrics-push-url", &pushgateway()],
        &[("VAULT_ADDR", closed.as_str())],
    );
    r.code(1).stderr_has("pushed the run's metrics");
    let (after, _) = pushed(&stem(&config)).await;
    assert_eq!(after.get("secretsync_last_run_success", &[]), 0.0);
    assert!(!after.has("secretsync_last_success_timestamp_seconds"));
    assert_eq!(
        after.get(
            "secretsync_pipeline_duration_seconds_count",
            &[("phase", "total")]
        ),
        1.0
    );
    // Pushing only: no endpoint was opened.
    assert!(!r.stderr.contains("serving metrics"), "{}", r.stderr);
}

/// A Pushgateway that cannot be reached is a warning: the run's exit code stands, on
/// success and on failure.
#[tokio::test]
async fn a_push_that_cannot_be_delivered_is_only_a_warning() {
    let w = World::from_env().await;
    let id = unique("metwarn");
    let config = w.config(&support_sync::single_target(&id, "il-central-1", ""));
    w.put(&format!("{id}/base/{PATH_MARK}"), json!({"k": VALUE_MARK}))
        .await;
    let closed = closed_address();
    let r = w.pipeline(&config, &["--metrics-push-url", &closed]);
    r.success()
        .stderr_has("could not push the run's metrics; the run's result stands")
        .stderr_has(&format!(
            "{closed}/metrics/job/secretsync/config/{}",
            stem(&config)
        ));
    // With --exit-code a run with changes exits 1; the failed push does not change that.
    w.put(&format!("{id}/base/{PATH_MARK}2"), json!({"k": VALUE_MARK}))
        .await;
    w.pipeline(&config, &["--exit-code", "--metrics-push-url", &closed])
        .code(1)
        .stderr_has("could not push the run's metrics");
}

/// A metrics port that is taken stops the run before it contacts anything, with an error that
/// names the address and what to do.
#[tokio::test]
async fn a_taken_metrics_port_is_a_clear_error() {
    let w = World::from_env().await;
    let id = unique("metport");
    let config = w.config(&format!(
        "{}metrics:\n  address: 127.0.0.1\n",
        support_sync::single_target(&id, "il-central-1", "")
    ));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = taken.local_addr().expect("local address").port();
    let r = w.pipeline(&config, &["--metrics-port", &port.to_string()]);
    r.code(1)
        .stderr_has(&format!(
            "error: cannot serve metrics on 127.0.0.1:{port}: "
        ))
        .stderr_has("pick a free port with `--metrics-port` or `metrics.port`");
    drop(taken);
}

/// `metrics.address` is where the endpoint listens, not a label: with `127.0.0.1:<port>` taken
/// by someone else, a run serving on `127.0.0.2:<port>` succeeds (it never tried 127.0.0.1),
/// and with `127.0.0.2:<port>` taken it fails naming 127.0.0.2.
#[tokio::test]
async fn metrics_address_is_the_address_listened_on() {
    let w = World::from_env().await;
    let id = unique("metaddr");
    w.put(&format!("{id}/base/a"), json!({"k": "v"})).await;
    let config = w.config(&format!(
        "{}metrics:\n  address: 127.0.0.2\n",
        support_sync::single_target(&id, "il-central-1", "")
    ));
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = other.local_addr().expect("local address").port();
    let r = w.pipeline(&config, &["--metrics-port", &port.to_string()]);
    r.success().stderr_has(&format!("127.0.0.2:{port}"));
    assert!(
        !r.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
    drop(other);
    let taken = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let port = taken.local_addr().expect("local address").port();
    w.pipeline(&config, &["--metrics-port", &port.to_string()])
        .code(1)
        .stderr_has(&format!(
            "error: cannot serve metrics on 127.0.0.2:{port}: "
        ));
    drop(taken);
}

/// The circuit breakers report their state: OpenBao answering 500 to the listing opens the
/// source Vault's breaker (`open` 1, the other states 0), the AWS account and region the
/// target listed stays `closed`; the failed run pushes both.
#[tokio::test]
async fn the_breaker_state_gauge_shows_an_open_vault_breaker() {
    let w = World::from_env().await;
    let id = unique("metbrk");
    const REGION: &str = "me-central-1";
    w.put(&format!("{id}/base/{PATH_MARK}"), json!({"k": VALUE_MARK}))
        .await;
    let vault = Proxy::start(&w.vault_addr);
    let failing = vault.add(
        Rule::method("GET")
            .path_prefix(&format!("/v1/secret/metadata/{id}/base/"))
            .query("list=true")
            .then(Action::status(500, r#"{"errors":["injected"]}"#)),
    );
    let config = w.config(&support_sync::single_target(
        &id,
        REGION,
        "circuit_breaker: { failure_threshold: 3, window: 1m, timeout: 1h }\n",
    ));
    let vault_url = vault.url();
    let r = w.pipeline_env(
        &config,
        &["--metrics-push-url", &pushgateway()],
        &[("VAULT_ADDR", vault_url.as_str())],
    );
    r.code(1).stderr_has("pushed the run's metrics");
    assert_eq!(vault.hits(failing), 3, "{}", r.stderr);
    let (after, all) = pushed(&stem(&config)).await;
    no_secret_in("the Pushgateway", &all, &id);
    let vault_service = format!("vault/{vault_url}");
    for (state, v) in [("open", 1.0), ("closed", 0.0), ("half_open", 0.0)] {
        assert_eq!(
            after.get(
                "secretsync_circuit_breaker_state",
                &[("service", &vault_service), ("state", state)]
            ),
            v,
            "{state}"
        );
    }
    let aws_service = format!("aws/default/{REGION}");
    assert_eq!(
        after.get(
            "secretsync_circuit_breaker_state",
            &[("service", &aws_service), ("state", "closed")]
        ),
        1.0
    );
    assert_eq!(
        after.get(
            "secretsync_vault_errors_total",
            &[("operation", "kv.list"), ("outcome", "failed")]
        ),
        3.0
    );
    assert_eq!(after.get("secretsync_last_run_success", &[]), 0.0);
}

/// One Vault tree into the four kinds that talk to neither Vault nor AWS — GCP Secret Manager
/// and Azure Key Vault (the contract fakes), the example plugin and a webhook receiver — with
/// the pushed metrics: every attempt of every target is in `secretsync_destination_*`, under
/// its backend, and for GCP and Azure (whose every call is observed) their sum is the
/// target's own call count in the run report.
#[tokio::test]
async fn the_other_destination_kinds_report_every_attempt() {
    use secretsync_test_support::http::Response;
    use secretsync_test_support::proxy::Recorder;
    let w = World::from_env().await;
    let id = unique("metdst");
    let bucket = unique("metdst-state-");
    w.create_bucket(&bucket).await;
    w.put_many(vec![
        (
            format!("{id}/base/{PATH_MARK}-db"),
            json!({"password": format!("{VALUE_MARK}-1")}),
        ),
        (
            format!("{id}/base/{PATH_MARK}-api"),
            json!({"token": format!("{VALUE_MARK}-2")}),
        ),
    ])
    .await;
    let receiver = Recorder::start(Response::new(200, "ok"));
    let root = std::env::temp_dir().join(unique("metdst-plugin-"));
    let cache = std::env::temp_dir().join(unique("metdst-cache-"));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/plugins/dir_store.py"
    );
    let project = unique("metdst-");
    let config = w.config(&format!(
        "owner: {id}
vault_sources:
  - mount: secret/{id}/base/
    name: base
merge_store: {{ type: s3, bucket: {bucket}, region: us-east-1 }}
targets:
  - name: gcp
    type: gcp_secretmanager
    project: {project}
    endpoint: {gcp}
    ca_cert: {ca}
    auth: {{ token: ${{GCP_ACCESS_TOKEN}} }}
    imports: [base]
  - name: azure
    type: azure_keyvault
    vault_url: {azure}
    ca_cert: {ca}
    auth: {{ token: ${{AZURE_ACCESS_TOKEN}} }}
    secret_prefix: {id}/
    imports: [base]
  - name: custom
    type: plugin
    command: [python3, {script}, --root, {root}]
    imports: [base]
  - name: hook
    type: webhook
    url: {hook}/hooks/path-credential
    secret: ${{HOOK_SECRET}}
    imports: [base]
",
        gcp = support_sync::required("SECRETSYNC_TEST_GCP_ENDPOINT"),
        azure = support_sync::required("SECRETSYNC_TEST_AZURE_VAULT_URL"),
        ca = support_sync::required("SECRETSYNC_TEST_CA_CERT"),
        root = root.display(),
        hook = receiver.url(),
    ));
    let gcp_token = support_sync::required("SECRETSYNC_TEST_GCP_TOKEN");
    let azure_token = support_sync::required("SECRETSYNC_TEST_AZURE_TOKEN");
    let (cert_file, path) = (
        support_sync::required("SSL_CERT_FILE"),
        std::env::var("PATH").unwrap_or_default(),
    );
    let r = w.pipeline_env(
        &config,
        &["--output", "json", "--metrics-push-url", &pushgateway()],
        &[
            ("GCP_ACCESS_TOKEN", gcp_token.as_str()),
            ("AZURE_ACCESS_TOKEN", azure_token.as_str()),
            ("HOOK_SECRET", "metdst-hmac"),
            ("SSL_CERT_FILE", cert_file.as_str()),
            ("PATH", path.as_str()),
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
        ],
    );
    r.success();
    let doc = r.json();
    let calls = |name: &str| -> f64 {
        let t = doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == name)
            .unwrap_or_else(|| panic!("target {name} in {doc:#}"));
        assert_eq!(t["result"]["status"], "applied", "{t:#}");
        assert_eq!(t["result"]["created"], 2, "{t:#}");
        t["result"]["aws_calls"].as_f64().expect("a call count")
    };
    let (after, text) = pushed(&stem(&config)).await;
    promtool_accepts(&text);
    no_secret_in("the pushed metrics", &text, &id);
    let requests = "secretsync_destination_requests_total";
    for backend in ["gcp", "azure"] {
        let target = if backend == "gcp" { "gcp" } else { "azure" };
        assert_eq!(
            after.sum(requests, &[("backend", backend)]),
            calls(target),
            "{backend}: every call of the target is an observed attempt"
        );
        assert_eq!(
            after.sum(
                "secretsync_destination_errors_total",
                &[("backend", backend)]
            ),
            0.0
        );
    }
    assert_eq!(
        after.get(
            requests,
            &[
                ("backend", "gcp"),
                ("operation", "CreateSecret"),
                ("outcome", "ok")
            ]
        ),
        // The two secrets and the fingerprint key.
        3.0
    );
    // The plugin: two writes answered, besides its listing and reads; its `hello` is not a
    // request of the protocol's data operations.
    calls("custom");
    assert_eq!(
        after.get(
            requests,
            &[
                ("backend", "plugin"),
                ("operation", "write"),
                ("outcome", "ok")
            ]
        ),
        3.0,
        "two secrets and the fingerprint key"
    );
    // The webhook: one POST per secret, answered 200.
    calls("hook");
    assert_eq!(
        after.get(
            requests,
            &[
                ("backend", "webhook"),
                ("operation", "POST"),
                ("outcome", "ok")
            ]
        ),
        2.0
    );
    assert_eq!(receiver.requests().len(), 2);
    assert!(
        !text.contains("path-credential"),
        "the hook URL's path is in the metrics"
    );
}
