//! A fault-injecting HTTP/1.1 proxy for tests: put it in front of the real OpenBao or moto
//! (loopback, plain HTTP) and give it [`Rule`]s. A request that matches a rule gets the rule's
//! [`Action`] (an error answer, a damaged body, a redirect, a reset connection, a delay, ...);
//! everything else passes through unchanged.
//!
//! * Keep-alive aware: a client connection carries any number of requests. Each request goes
//!   upstream on a connection of its own, so an answer is always read to its end.
//! * It runs on a runtime of its own (one thread), so a test on any runtime — or a test that
//!   blocks on a child process — can use it. Rules change while it runs.
//! * Every rule counts the requests it matched and the ones it acted on; [`Proxy::requests`]
//!   logs everything that came through.
//!
//! ```no_run
//! use secretsync_test_support::proxy::{Action, Proxy, Rule};
//! let proxy = Proxy::start("http://127.0.0.1:8200");
//! let list = proxy.add(
//!     Rule::method("GET")
//!         .path_prefix("/v1/secret/metadata/app/")
//!         .query("list=true")
//!         .then(Action::status(500, r#"{"errors":["injected"]}"#))
//!         .times(2),
//! );
//! // ... point the code under test at proxy.url() ...
//! assert_eq!(proxy.hits(list), 2);
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::http::{Conn, Request, Response};

/// Which requests a rule applies to. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    method: Option<String>,
    path_prefix: Option<String>,
    path_part: Option<String>,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<String>,
    action: Option<Action>,
    times: Option<usize>,
}

impl Rule {
    /// Any request.
    pub fn any() -> Self {
        Rule::default()
    }

    /// Requests with this method.
    pub fn method(method: &str) -> Self {
        Rule {
            method: Some(method.to_ascii_uppercase()),
            ..Rule::default()
        }
    }

    /// AWS JSON-protocol requests for this operation (`X-Amz-Target`), e.g.
    /// `secretsmanager.PutSecretValue`; the service prefix is matched case-insensitively.
    pub fn amz_target(operation: &str) -> Self {
        Rule::any().header("x-amz-target", operation)
    }

    /// Only requests whose path (without the query) starts with `prefix`.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    /// Only requests whose path (without the query) contains `part` anywhere.
    pub fn path_contains(mut self, part: &str) -> Self {
        self.path_part = Some(part.to_string());
        self
    }

    /// Only requests whose query contains `part` (e.g. `list=true`).
    pub fn query(mut self, part: &str) -> Self {
        self.query = Some(part.to_string());
        self
    }

    /// Only requests with this header value (name case-insensitive, value exact but
    /// case-insensitive).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Only requests whose body contains `text` (may be given several times).
    pub fn body_contains(mut self, text: &str) -> Self {
        self.body.push(text.to_string());
        self
    }

    /// What to do with a matching request (default: pass it through, just counting).
    pub fn then(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// Act on the first `n` matching requests only; later ones go on to the next rules.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, r: &Request) -> bool {
        self.method.as_ref().is_none_or(|m| *m == r.method)
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|p| r.path().starts_with(p.as_str()))
            && self
                .path_part
                .as_ref()
                .is_none_or(|p| r.path().contains(p.as_str()))
            && self
                .query
                .as_ref()
                .is_none_or(|q| r.query().contains(q.as_str()))
            && self
                .headers
                .iter()
                .all(|(k, v)| r.header(k).is_some_and(|got| got.eq_ignore_ascii_case(v)))
            && self.body.iter().all(|b| contains(&r.body, b.as_bytes()))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// What the proxy does with a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward it and relay the answer (the default; useful to count requests).
    Pass,
    /// Answer this, without forwarding.
    Respond(Response),
    /// Forward it, read the whole answer, then answer this instead: the request took effect,
    /// its answer was lost on the way back (see [`Action::after_forward`]).
    RespondAfterForward(Response),
    /// Forward it, then relay the answer with its body replaced.
    ReplaceBody(Vec<u8>),
    /// Forward it, then relay the answer with only the first half of its body (a well-framed
    /// but truncated document).
    TruncateBody,
    /// Answer a redirect to the same path and query on another origin (`http://host:port`),
    /// without forwarding.
    Redirect { status: u16, origin: String },
    /// Reset the connection before forwarding: the request never reaches the server.
    ResetBeforeForward,
    /// Forward it, read the whole answer, then reset the connection: the request took effect,
    /// the answer is lost.
    ResetAfterForward,
    /// Wait, then forward it.
    Delay(Duration),
    /// Forward it, then never answer (until the proxy is dropped): a timeout after the request
    /// took effect.
    StallAfterForward,
}

impl Action {
    /// An answer with a status and a body.
    pub fn status(status: u16, body: &str) -> Self {
        Action::Respond(
            Response::new(status, body.as_bytes().to_vec())
                .with_header("Content-Type", "application/json"),
        )
    }

    /// An AWS JSON-protocol error answer (`__type` and `x-amzn-ErrorType`), e.g.
    /// `aws_error(400, "ThrottlingException", "Rate exceeded")`.
    pub fn aws_error(status: u16, code: &str, message: &str) -> Self {
        let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
        Action::Respond(
            Response::new(status, body.into_bytes())
                .with_header("Content-Type", "application/x-amz-json-1.1")
                .with_header("x-amzn-ErrorType", code)
                .with_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000"),
        )
    }

    /// The same answer, given after forwarding the request: e.g.
    /// `Action::status(502, "...").after_forward()` for a write that landed and whose answer was
    /// lost. Panics for an action that is not an answer ([`Action::Respond`]).
    pub fn after_forward(self) -> Self {
        match self {
            Action::Respond(r) => Action::RespondAfterForward(r),
            other => panic!("only an answer can be given after forwarding, not {other:?}"),
        }
    }

    /// Forward, then relay the answer with this body.
    pub fn body(body: &str) -> Self {
        Action::ReplaceBody(body.as_bytes().to_vec())
    }

    /// A `307 Temporary Redirect` to `origin` (`http://host:port`).
    pub fn redirect(origin: &str) -> Self {
        Action::Redirect {
            status: 307,
            origin: origin.trim_end_matches('/').to_string(),
        }
    }
}

/// A handle on a rule added with [`Proxy::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleId(usize);

#[derive(Debug)]
struct RuleState {
    id: usize,
    rule: Rule,
    matched: usize,
    applied: usize,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<RuleState>,
    next_id: usize,
    log: Vec<Request>,
}

impl State {
    /// The action for a request: the first matching rule with budget left acts on it.
    fn decide(&mut self, r: &Request) -> Action {
        self.log.push(r.clone());
        for rs in &mut self.rules {
            if !rs.rule.matches(r) {
                continue;
            }
            rs.matched += 1;
            if rs.rule.times.is_some_and(|n| rs.applied >= n) {
                continue;
            }
            rs.applied += 1;
            return rs.rule.action.clone().unwrap_or(Action::Pass);
        }
        Action::Pass
    }
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        assert!(
            !upstream.contains('/') && !upstream.starts_with("https:"),
            "the proxy forwards to a plain-HTTP origin (`http://host:port`), not {upstream}"
        );
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = Arc::new(upstream);
        let shared = state.clone();
        let server = Server::start("fault-proxy", move |client| {
            let _ = client.set_nodelay(true);
            connection(client, shared.clone(), upstream.clone())
        });
        Proxy { server, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: Rule) -> RuleId {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.rules.push(RuleState {
            id,
            rule,
            matched: 0,
            applied: 0,
        });
        RuleId(id)
    }

    /// Removes every rule: from now on everything passes through.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many requests the rule acted on.
    pub fn hits(&self, id: RuleId) -> usize {
        self.with_rule(id, |r| r.applied)
    }

    /// How many requests matched the rule (acted on or not, e.g. after `times` ran out).
    pub fn matched(&self, id: RuleId) -> usize {
        self.with_rule(id, |r| r.matched)
    }

    /// Waits until the rule has acted on at least `n` requests; false if `timeout` passed first.
    pub fn wait_for_hits(&self, id: RuleId, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.hits(id) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().log.clone()
    }

    fn with_rule<T>(&self, id: RuleId, f: impl Fn(&RuleState) -> T) -> T {
        let st = self.lock();
        let r = st
            .rules
            .iter()
            .find(|r| r.id == id.0)
            .expect("the rule was removed by `clear`");
        f(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A loopback listener on a free port that serves each connection with `serve`, on a thread
/// (and single-threaded runtime) of its own, until dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    pub(crate) fn start<F, Fut>(name: &'static str, serve: F) -> Server
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("the {name} runtime: {e}"));
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            tokio::spawn(serve(stream));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
            })
            .unwrap_or_else(|e| panic!("spawn the {name} thread: {e}"));
        Server {
            addr,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Resets a connection (RST instead of FIN).
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn forward(upstream: &str, r: &Request) -> std::io::Result<Response> {
    let mut up = Conn::new(TcpStream::connect(upstream).await?);
    up.stream.write_all(&r.to_bytes(true)).await?;
    up.response(r.method == "HEAD").await
}

/// Serves one client connection: request after request until either side closes.
async fn connection(client: TcpStream, state: Arc<Mutex<State>>, upstream: Arc<String>) {
    let mut client = Conn::new(client);
    loop {
        let Ok(Some(req)) = client.request().await else {
            return;
        };
        let action = state.lock().unwrap_or_else(|e| e.into_inner()).decide(&req);
        let head = req.method == "HEAD";
        let bad_gateway = |e: std::io::Error| {
            Response::new(
                502,
                format!("fault proxy: upstream {upstream}: {e}").into_bytes(),
            )
        };
        let resp = match action {
            Action::Pass => forward(&upstream, &req).await.unwrap_or_else(bad_gateway),
            Action::Respond(r) => r,
            Action::RespondAfterForward(r) => {
                let _ = forward(&upstream, &req).await;
                r
            }
            Action::ReplaceBody(body) => match forward(&upstream, &req).await {
                Ok(mut r) => {
                    r.body = body;
                    r
                }
                Err(e) => bad_gateway(e),
            },
            Action::TruncateBody => match forward(&upstream, &req).await {
                Ok(mut r) => {
                    let keep = r.body.len() / 2;
                    r.body.truncate(keep);
                    r
                }
                Err(e) => bad_gateway(e),
            },
            Action::Redirect { status, origin } => Response::new(status, Vec::new())
                .with_header("Location", &format!("{origin}{}", req.target)),
            Action::ResetBeforeForward => {
                reset(client.stream);
                return;
            }
            Action::ResetAfterForward => {
                let _ = forward(&upstream, &req).await;
                reset(client.stream);
                return;
            }
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                forward(&upstream, &req).await.unwrap_or_else(bad_gateway)
            }
            Action::StallAfterForward => {
                let _ = forward(&upstream, &req).await;
                std::future::pending::<()>().await;
                return;
            }
        };
        let keep_alive = !req.wants_close();
        if client
            .stream
            .write_all(&resp.to_bytes(keep_alive, head))
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// A listener standing for "another origin" (the target of a cross-origin redirect): it
/// answers every request with one fixed response and records what it received, so a test can
/// check that no credential reached it.
pub struct Recorder {
    server: Server,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Recorder {
    /// Starts on a free loopback port, answering `answer` to everything.
    pub fn start(answer: Response) -> Recorder {
        Recorder::scripted(Vec::new(), answer)
    }

    /// Starts on a free loopback port, answering the requests it receives with `first`, in
    /// order, and every one after them with `then` (a webhook receiver that fails a few times).
    pub fn scripted(first: Vec<Response>, then: Response) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(first)));
        let server = Server::start("recorder", move |stream| {
            let (log, script, then) = (log.clone(), script.clone(), then.clone());
            async move {
                let mut conn = Conn::new(stream);
                while let Ok(Some(req)) = conn.request().await {
                    let head = req.method == "HEAD";
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(req);
                    let answer = script
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front()
                        .unwrap_or_else(|| then.clone());
                    if conn
                        .stream
                        .write_all(&answer.to_bytes(true, head))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Recorder { server, seen }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether any request carried this header (case-insensitive name).
    pub fn saw_header(&self, name: &str) -> bool {
        self.requests().iter().any(|r| r.header(name).is_some())
    }
}
