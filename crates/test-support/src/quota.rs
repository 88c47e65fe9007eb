//! A quota-faithful proxy for AWS emulators: moto enforces no request rate, AWS does. Put a
//! [`QuotaProxy`] in front of moto and it enforces per-caller, per-region, per-kind request
//! rates with token buckets, answering a request over its rate the way AWS does
//! (`400 ThrottlingException: Rate exceeded`, JSON protocol) instead of forwarding it.
//!
//! The caller is the access key id of the request's SigV4 credential scope (moto hands every
//! assumed-role session keys of its own, so one session stands for one account), the region is
//! the scope's region, and the kind is read from `X-Amz-Target` (Secrets Manager and SSM
//! operations; anything else is not limited). Buckets hold one second's worth of tokens, as AWS
//! allows short bursts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{Conn, Request, Response};
use crate::proxy::Server;

/// A kind of call with its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Write,
    Create,
    Tag,
    Read,
}

impl Kind {
    /// The kind of an `X-Amz-Target` (`secretsmanager.CreateSecret`), if it is limited.
    pub fn of_target(target: &str) -> Option<Kind> {
        let op = target.rsplit('.').next()?;
        Some(match op {
            "CreateSecret" => Kind::Create,
            "TagResource" | "UntagResource" | "AddTagsToResource" | "RemoveTagsFromResource" => {
                Kind::Tag
            }
            "PutSecretValue"
            | "UpdateSecret"
            | "UpdateSecretVersionStage"
            | "DeleteSecret"
            | "RestoreSecret"
            | "PutParameter"
            | "DeleteParameter"
            | "DeleteParameters" => Kind::Write,
            "ListSecrets"
            | "BatchGetSecretValue"
            | "GetSecretValue"
            | "DescribeSecret"
            | "GetParameters"
            | "GetParameter"
            | "DescribeParameters" => Kind::Read,
            _ => return None,
        })
    }
}

/// Requests per second allowed per caller, region and kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub write: f64,
    pub create: f64,
    pub tag: f64,
    pub read: f64,
}

impl Rates {
    /// AWS Secrets Manager's published quotas: 50/s for value writes, creates and tag calls;
    /// 100/s for `ListSecrets`, `BatchGetSecretValue` and the other reads.
    pub const AWS: Rates = Rates {
        write: 50.0,
        create: 50.0,
        tag: 50.0,
        read: 100.0,
    };

    fn of(&self, k: Kind) -> f64 {
        match k {
            Kind::Write => self.write,
            Kind::Create => self.create,
            Kind::Tag => self.tag,
            Kind::Read => self.read,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Counts {
    passed: HashMap<Kind, u64>,
    throttled: HashMap<Kind, u64>,
    /// Forwarded requests the upstream answered with a server error (or not at all).
    upstream_errors: HashMap<Kind, u64>,
}

struct State {
    rates: Rates,
    buckets: HashMap<(String, String, Kind), Bucket>,
    counts: Counts,
}

impl State {
    /// Takes a token for the request, or says it is over the rate.
    fn admit(&mut self, key: (String, String, Kind)) -> bool {
        let rate = self.rates.of(key.2);
        let now = Instant::now();
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        let ok = b.tokens >= 1.0;
        if ok {
            b.tokens -= 1.0;
        }
        let counts = if ok {
            &mut self.counts.passed
        } else {
            &mut self.counts.throttled
        };
        *counts.entry(key.2).or_default() += 1;
        ok
    }
}

/// The proxy (see the module docs). Stops when dropped.
pub struct QuotaProxy {
    server: Server,
    state: Arc<Mutex<State>>,
}

/// The caller (access key id) and region of a SigV4-signed request.
fn scope(r: &Request) -> Option<(String, String)> {
    let auth = r.header("authorization")?;
    let cred = auth.split("Credential=").nth(1)?;
    let mut parts = cred.split('/');
    let key = parts.next()?.to_string();
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    Some((key, region))
}

impl QuotaProxy {
    /// Starts on a free loopback port, forwarding to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, rates: Rates) -> QuotaProxy {
        let state = Arc::new(Mutex::new(State {
            rates,
            buckets: HashMap::new(),
            counts: Counts::default(),
        }));
        let upstream = Arc::new(
            upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        );
        let st = state.clone();
        let server = Server::start("quota-proxy", move |stream| {
            connection(stream, st.clone(), upstream.clone())
        });
        QuotaProxy { server, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests of `kind` forwarded so far.
    pub fn passed(&self, kind: Kind) -> u64 {
        self.lock().counts.passed.get(&kind).copied().unwrap_or(0)
    }

    /// Requests of `kind` forwarded whose upstream answer was a server error (5xx) or none at
    /// all. moto's backends are not thread-safe: concurrent `CreateSecret` calls in one region
    /// can race in moto's name check (`RuntimeError: dictionary changed size during
    /// iteration`) and come back as a 500 before anything is created, which the SDK retries.
    /// `passed - upstream_errors` is what the upstream actually served.
    pub fn upstream_errors(&self, kind: Kind) -> u64 {
        self.lock()
            .counts
            .upstream_errors
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }

    /// Requests of `kind` answered with `ThrottlingException` so far.
    pub fn throttled(&self, kind: Kind) -> u64 {
        self.lock()
            .counts
            .throttled
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }
}

/// `GET` this path on the proxy for its counts (JSON), instead of forwarding.
pub const STATS_PATH: &str = "/__quota/stats";

fn stats_json(c: &Counts) -> String {
    let kinds = [
        (Kind::Write, "write"),
        (Kind::Create, "create"),
        (Kind::Tag, "tag"),
        (Kind::Read, "read"),
    ];
    let part = |m: &HashMap<Kind, u64>| {
        kinds
            .iter()
            .map(|(k, n)| format!("\"{n}\":{}", m.get(k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{{\"passed\":{{{}}},\"throttled\":{{{}}},\"upstream_errors\":{{{}}}}}",
        part(&c.passed),
        part(&c.throttled),
        part(&c.upstream_errors)
    )
}

fn throttling() -> Response {
    Response::new(
        400,
        br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_vec(),
    )
    .with_header("Content-Type", "application/x-amz-json-1.1")
    .with_header("x-amzn-ErrorType", "ThrottlingException")
    .with_header("x-amzn-RequestId", "00000000-0000-0000-0000-00000000000q")
}

async fn connection(client: TcpStream, state: Arc<Mutex<State>>, upstream: Arc<String>) {
    let mut client = Conn::new(client);
    loop {
        let Ok(Some(req)) = client.request().await else {
            return;
        };
        if req.path() == STATS_PATH {
            let body = stats_json(&state.lock().unwrap_or_else(|e| e.into_inner()).counts);
            let resp = Response::new(200, body.into_bytes())
                .with_header("Content-Type", "application/json");
            if client
                .stream
                .write_all(&resp.to_bytes(true, false))
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let kind = req.header("x-amz-target").and_then(Kind::of_target);
        let admitted = match (kind, scope(&req)) {
            (Some(kind), Some((key, region))) => state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit((key, region, kind)),
            _ => true,
        };
        let resp = if admitted {
            let resp = match forward(&upstream, &req).await {
                Ok(r) => r,
                Err(e) => Response::new(502, format!("quota proxy: {e}").into_bytes()),
            };
            if let Some(kind) = kind.filter(|_| resp.status >= 500) {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                *st.counts.upstream_errors.entry(kind).or_default() += 1;
            }
            resp
        } else {
            throttling()
        };
        let keep_alive = !req.wants_close();
        if client
            .stream
            .write_all(&resp.to_bytes(keep_alive, req.method == "HEAD"))
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

async fn forward(upstream: &str, r: &Request) -> std::io::Result<Response> {
    let mut up = Conn::new(TcpStream::connect(upstream).await?);
    up.stream.write_all(&r.to_bytes(true)).await?;
    up.response(r.method == "HEAD").await
}
