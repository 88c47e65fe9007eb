//! Circuit breakers against the real OpenBao behind the test-support fault proxy: the Vault
//! client reports every attempt to the breakers and asks them before each one.
//!
//! The breakers' clock is the test's (`ManualClock`): nothing sleeps to make time pass, and an
//! open breaker shows as requests the proxy never sees.
//!
//! Needs the local servers: `scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`. Each test works in its own mount.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{Bao, LogCapture, no_env, source, unique};
use secretsync_core::config::SourceConfig;
use secretsync_engine::ErrorKind;
use secretsync_engine::breaker::{BreakerState, Breakers, ManualClock, Settings, StateHook};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::observe::{Observer, Observers};
use secretsync_engine::vault::VaultClient;
use secretsync_test_support::proxy::{Action, Proxy, Rule, RuleId};
use serde_json::json;

/// A mount with two secrets, OpenBao behind a proxy, breakers on a test clock, and a client
/// through the proxy that reports to them.
struct Setup {
    mount: String,
    proxy: Proxy,
    clock: Arc<ManualClock>,
    breakers: Arc<Breakers>,
    states: Arc<Mutex<Vec<String>>>,
    client: VaultClient,
    src: SourceConfig,
}

async fn setup(cfg: Settings) -> Setup {
    let bao = Bao::from_env();
    let mount = unique("brk");
    bao.enable_kv2(&mount).await;
    for (p, v) in [("a", json!({"v": 1})), ("b", json!({"v": 2}))] {
        bao.put(&mount, p, v).await;
    }
    let proxy = Proxy::start(&bao.addr);
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let states = Arc::new(Mutex::new(Vec::new()));
    let hook: StateHook = {
        let states = states.clone();
        Arc::new(move |service: &str, s: BreakerState| {
            states.lock().unwrap().push(format!("{service} {s}"))
        })
    };
    let breakers = Arc::new(Breakers::new(cfg, clock.clone(), Some(hook)));
    let mut through = bao.clone();
    through.addr = proxy.url();
    let client = VaultClient::connect_observed(
        &through.token_settings(&bao.root),
        &no_env,
        Observers::new(vec![breakers.clone() as Arc<dyn Observer>]),
    )
    .await
    .expect("connect through the proxy");
    let src = source("src", &format!("{mount}/"));
    Setup {
        mount,
        proxy,
        clock,
        breakers,
        states,
        client,
        src,
    }
}

impl Setup {
    fn service(&self) -> String {
        format!("vault/{}", self.proxy.url())
    }

    fn list(&self) -> Rule {
        Rule::method("GET")
            .path_prefix(&format!("/v1/{}/metadata/", self.mount))
            .query("list=true")
    }

    fn fail_list(&self, times: Option<usize>) -> RuleId {
        let rule = self
            .list()
            .then(Action::status(500, r#"{"errors":["injected"]}"#));
        self.proxy.add(match times {
            Some(n) => rule.times(n),
            None => rule,
        })
    }

    async fn read(&self) -> secretsync_engine::Result<usize> {
        secretsync_engine::vault::read_source(&self.client, &self.src, 4, &Cancel::default())
            .await
            .map(|c| c.secrets.len())
    }

    fn state(&self) -> Option<BreakerState> {
        self.breakers.state(&self.service())
    }
}

fn settings(failure_threshold: u32, max_requests: u32) -> Settings {
    Settings {
        failure_threshold,
        window: Duration::from_secs(60),
        timeout: Duration::from_secs(30),
        max_requests,
    }
}

/// 500s open the breaker after `failure_threshold` attempts; the client's remaining retries and
/// every later call fail at once, unsent, not retried, with a message that names the service,
/// the last failure (operation and request id, not the path) and when it is tried again.
#[tokio::test]
async fn failures_open_it_and_later_calls_are_not_sent() {
    let s = setup(settings(3, 1)).await;
    let logs = LogCapture::start();
    let failing = s.fail_list(None);
    let err = s.read().await.expect_err("the listing fails");
    assert_eq!(s.proxy.hits(failing), 3, "{}", err.message);
    assert_eq!(s.state(), Some(BreakerState::Open));
    assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message);
    assert!(!err.retryable);
    let service = s.service();
    assert!(
        err.message.contains(&format!(
            "circuit breaker open for {service}: 3 attempts failed within 1m; the last failure: kv.list [req="
        )),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("is not called until it is tried again in 30s ("),
        "{}",
        err.message
    );
    assert!(!err.message.contains("injected"), "{}", err.message);

    // Open: a later call sends nothing at all.
    let sent = s.proxy.requests().len();
    let again = s.read().await.expect_err("still open");
    assert!(
        again.message.contains("circuit breaker open for"),
        "{}",
        again.message
    );
    assert_eq!(s.proxy.requests().len(), sent);
    assert_eq!(
        *s.states.lock().unwrap(),
        [format!("{service} closed"), format!("{service} open")]
    );
    let opened: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("WARN circuit breaker opened"))
        .collect();
    assert_eq!(opened.len(), 1, "{:?}", logs.lines());
    assert!(
        opened[0].starts_with(&format!(
            "WARN circuit breaker opened: 3 attempts failed within 1m; calls to {service} fail at once for 30s"
        )),
        "{opened:?}"
    );
    assert!(
        opened[0].contains(&format!("service=\"{service}\" state=\"open\"")),
        "{opened:?}"
    );
}

/// After `timeout` the breaker lets `max_requests` trials through; their success closes it and
/// the source reads completely.
#[tokio::test]
async fn after_the_timeout_a_successful_trial_closes_it() {
    let s = setup(settings(2, 1)).await;
    let failing = s.fail_list(Some(2));
    s.read().await.expect_err("opens");
    assert_eq!(s.proxy.hits(failing), 2);
    assert_eq!(s.state(), Some(BreakerState::Open));

    s.clock.advance(Duration::from_secs(29));
    let sent = s.proxy.requests().len();
    s.read().await.expect_err("not yet");
    assert_eq!(s.proxy.requests().len(), sent);

    s.clock.advance(Duration::from_secs(1));
    assert_eq!(s.read().await.expect("the trial succeeds"), 2);
    assert_eq!(s.state(), Some(BreakerState::Closed));
    let service = s.service();
    assert_eq!(
        *s.states.lock().unwrap(),
        [
            format!("{service} closed"),
            format!("{service} open"),
            format!("{service} half_open"),
            format!("{service} closed"),
        ]
    );
}

/// A trial that fails opens it again for another `timeout`.
#[tokio::test]
async fn a_failed_trial_opens_it_again() {
    let s = setup(settings(1, 1)).await;
    let failing = s.fail_list(None);
    s.read().await.expect_err("opens");
    assert_eq!(s.proxy.hits(failing), 1);
    s.clock.advance(Duration::from_secs(30));
    s.read().await.expect_err("the trial fails");
    // One trial went out, and nothing after it.
    assert_eq!(s.proxy.hits(failing), 2);
    assert_eq!(s.state(), Some(BreakerState::Open));
    s.clock.advance(Duration::from_secs(29));
    s.read().await.expect_err("open again");
    assert_eq!(s.proxy.hits(failing), 2);
}

/// Throttling (429) is back-pressure: however much of it, the breaker stays closed and every
/// attempt is sent.
#[tokio::test]
async fn throttling_never_opens_it() {
    let s = setup(settings(1, 1)).await;
    let throttled = s.proxy.add(s.list().then(Action::status(
        429,
        r#"{"errors":["rate limit quota exceeded"]}"#,
    )));
    let first = s.read().await.expect_err("throttled throughout");
    let attempts = s.proxy.hits(throttled);
    assert!(attempts > 1, "the client retried: {}", first.message);
    assert_eq!(s.state(), Some(BreakerState::Closed));
    assert!(
        !first.message.contains("circuit breaker"),
        "{}",
        first.message
    );
    s.read().await.expect_err("still throttled");
    assert_eq!(s.proxy.hits(throttled), 2 * attempts);
    s.proxy.clear();
    assert_eq!(s.read().await.expect("answers again"), 2);
}

/// Refusals (403) are the service answering: they never open it.
#[tokio::test]
async fn refusals_never_open_it() {
    let s = setup(settings(1, 1)).await;
    let denied = s.proxy.add(
        s.list()
            .then(Action::status(403, r#"{"errors":["permission denied"]}"#)),
    );
    for _ in 0..3 {
        let _ = s.read().await;
    }
    assert!(s.proxy.hits(denied) >= 3);
    assert_eq!(s.state(), Some(BreakerState::Closed));
}
