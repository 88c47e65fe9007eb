//! Sends the `notifications:` of a run (`secretsync_core::notify` has the bodies;
//! docs/notifications.md): one POST per block whose triggers the run matches, signed when the
//! block has a `secret`, retried with backoff. A notification that cannot be delivered is a
//! warning — it never fails the run, and the run's exit code does not depend on it.

use std::time::{Duration, Instant};

use secretsync_core::config::NotificationConfig;
use secretsync_core::notify::{Notice, signature};

use crate::error::ErrorKind;

/// The longest `Retry-After` honoured; a longer one is waited for this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What became of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Its triggers did not match the run.
    NotDue,
    /// Accepted (2xx) after `attempts` attempts.
    Delivered { attempts: u32 },
    /// Given up: why (a warning).
    Failed(String),
}

/// After a signal, each notification gets one attempt of at most this long: the process is
/// being asked to stop (a Kubernetes grace period is 30 s).
pub const CANCELLED_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends every block of `configs` that `notice` triggers, one after the other, and logs a
/// warning for each one that fails. `cancelled`: the run was stopped by a signal, so each
/// block gets one short attempt ([`CANCELLED_TIMEOUT`]). Returns what became of each, in
/// config order.
pub async fn send_all(
    configs: &[NotificationConfig],
    notice: &Notice,
    cancelled: bool,
) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(configs.len());
    for (i, cfg) in configs.iter().enumerate() {
        let triggers = notice.matches(cfg);
        if triggers.is_empty() {
            out.push(Delivery::NotDue);
            continue;
        }
        let body = notice.body(cfg, &triggers);
        let d = if cancelled {
            let hurried = NotificationConfig {
                timeout: cfg.timeout.min(CANCELLED_TIMEOUT),
                max_attempts: 1,
                ..cfg.clone()
            };
            send(&hurried, body).await
        } else {
            send(cfg, body).await
        };
        match &d {
            Delivery::Failed(why) => tracing::warn!(
                notification = i,
                to = %cfg.describe(),
                "notification not delivered (the run's result stands): {why}"
            ),
            Delivery::Delivered { attempts } => tracing::info!(
                notification = i,
                to = %cfg.describe(),
                attempts,
                "notification delivered"
            ),
            Delivery::NotDue => {}
        }
        out.push(d);
    }
    out
}

/// One POST of `body` to `cfg.url`, with its retries. The delivery id is the same on every
/// attempt, so a receiver can drop a repeat.
async fn send(cfg: &NotificationConfig, body: Vec<u8>) -> Delivery {
    let client = match reqwest::Client::builder()
        .timeout(cfg.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("secretsync/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Delivery::Failed(format!("cannot build the HTTP client: {e}")),
    };
    let delivery = uuid::Uuid::new_v4().to_string();
    let sig = cfg.secret.as_ref().map(|s| signature(s.expose(), &body));
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req = client
            .post(cfg.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-SecretSync-Delivery", &delivery)
            .header("X-SecretSync-Event", "run_finished")
            .header("X-SecretSync-Attempt", attempt.to_string())
            .body(body.clone());
        if let Some(sig) = &sig {
            req = req.header("X-SecretSync-Signature", sig);
        }
        // Errors are described without the URL: a Slack hook's path is its credential.
        let (why, retry, after) = match req.send().await {
            Ok(r) if r.status().is_success() => return Delivery::Delivered { attempts: attempt },
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
                    format!("no answer within {:?}", cfg.timeout)
                } else if e.is_connect() {
                    "cannot connect to the hook".to_string()
                } else {
                    "the request failed".to_string()
                };
                (why, true, None)
            }
        };
        if !retry || attempt >= cfg.max_attempts {
            let tries = if attempt == 1 {
                "1 attempt".to_string()
            } else {
                format!("{attempt} attempts")
            };
            return Delivery::Failed(format!(
                "{why} ({tries} in {:.1}s)",
                started.elapsed().as_secs_f64()
            ));
        }
        let wait = after.unwrap_or_else(|| crate::retry::backoff(attempt, ErrorKind::Throttled));
        tracing::debug!(to = %cfg.describe(), attempt, ?wait, "notification failed, retrying: {why}");
        tokio::time::sleep(wait).await;
    }
}
