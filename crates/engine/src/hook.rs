//! Signed JSON POSTs with retries, shared by the run's notifications ([`crate::notify`]) and
//! the `webhook` target: one HTTP client without redirects, the same delivery id on every
//! attempt, retries with backoff (or `Retry-After`) on 5xx, 408, 429 and connection errors.
//! What goes wrong is described without the URL: a hook's path may be its credential.

use std::time::{Duration, Instant};

use crate::error::ErrorKind;

/// The longest `Retry-After` honoured; a longer one is waited for this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How often a wait before a retry looks at `stop`.
const STOP_POLL: Duration = Duration::from_millis(100);

/// An HTTP client for hooks: `timeout` per attempt, no redirects.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("secretsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// One POST to make.
pub struct Post<'a> {
    pub url: &'a str,
    pub body: &'a [u8],
    /// Sent on every attempt (`X-SecretSync-Attempt` is added per attempt).
    pub headers: &'a [(&'static str, String)],
    /// Per attempt (for messages; the client enforces it).
    pub timeout: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Who is told of every attempt, and may refuse one (an open circuit breaker): the
    /// `webhook` target's observers; `None` for notifications (their outcome is logged).
    pub observe: Option<(&'a crate::observe::Observers, &'a crate::observe::Endpoint)>,
}

/// Why a POST was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// What the last attempt found, and how many attempts in how long.
    pub why: String,
    /// The receiver refused it (a 4xx other than 408/429): retrying later will not help.
    pub refused: bool,
    pub attempts: u32,
}

/// Sends `post` with its retries; `Ok(attempts)` once the receiver answered 2xx. `sent` is
/// called before every attempt (a call counter); once `stop` says so (a signal), no retry is
/// started (the wait before one is cut short). With [`Post::observe`], every attempt is
/// admitted first (a refusal ends the POST, not retried) and reported after, as `POST`.
pub async fn send(
    client: &reqwest::Client,
    post: &Post<'_>,
    sent: &(dyn Fn() + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<u32, Undelivered> {
    use crate::observe::Outcome;
    let started = Instant::now();
    let request_id = crate::observe::request_id();
    let judge = |r: &reqwest::Result<reqwest::Response>| match r.as_ref().map(|r| r.status()) {
        Ok(s) if s.is_success() => Outcome::Ok,
        Ok(reqwest::StatusCode::TOO_MANY_REQUESTS) => Outcome::Throttled,
        Ok(s) if s.is_server_error() || s == reqwest::StatusCode::REQUEST_TIMEOUT => {
            Outcome::Failed
        }
        Ok(_) => Outcome::Refused,
        Err(_) => Outcome::Failed,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req = client
            .post(post.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-SecretSync-Attempt", attempt.to_string())
            .body(post.body.to_vec());
        for (k, v) in post.headers {
            req = req.header(*k, v);
        }
        let answer = crate::retry::as_attempt(&request_id, attempt, async {
            match post.observe {
                Some((obs, endpoint)) => {
                    crate::observe::observed(obs, endpoint, "POST", judge, async {
                        sent();
                        req.send().await
                    })
                    .await
                }
                None => {
                    sent();
                    Ok(req.send().await)
                }
            }
        })
        .await;
        // Refused by an observer (an open circuit breaker): not sent, and not retried.
        let answer = answer.map_err(|e| Undelivered {
            why: e.message,
            refused: false,
            attempts: attempt - 1,
        })?;
        let (why, retry, after) = match answer {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) => {
                let status = r.status();
                let after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let retry = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                let why = if status.is_redirection() {
                    format!("the hook answered {status} (redirects are not followed)")
                } else {
                    format!("the hook answered {status}")
                };
                (why, retry, after)
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("no answer within {:?}", post.timeout)
                } else if e.is_connect() {
                    "cannot connect to the hook".to_string()
                } else {
                    "the request failed".to_string()
                };
                (why, true, None)
            }
        };
        if !retry || attempt >= post.max_attempts {
            let tries = if attempt == 1 {
                "1 attempt".to_string()
            } else {
                format!("{attempt} attempts")
            };
            return Err(Undelivered {
                why: format!("{why} ({tries} in {:.1}s)", started.elapsed().as_secs_f64()),
                refused: !retry,
                attempts: attempt,
            });
        }
        let wait = after.unwrap_or_else(|| crate::retry::backoff(attempt, ErrorKind::Throttled));
        tracing::debug!(attempt, ?wait, "a hook POST failed, retrying: {why}");
        let until = Instant::now() + wait;
        while Instant::now() < until && !stop() {
            tokio::time::sleep(STOP_POLL.min(until - Instant::now())).await;
        }
        if stop() {
            return Err(Undelivered {
                why: format!("{why}; not retried: cancelled"),
                refused: false,
                attempts: attempt,
            });
        }
    }
}
