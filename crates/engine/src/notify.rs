//! Sends the `notifications:` of a run (`secretsync_core::notify` has the bodies;
//! docs/notifications.md): one POST per block whose triggers the run matches, signed when the
//! block has a `secret`, retried with backoff. A notification that cannot be delivered is a
//! warning — it never fails the run, and the run's exit code does not depend on it.

use std::time::Duration;

use secretsync_core::config::NotificationConfig;
use secretsync_core::notify::{Notice, signature};

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

/// One POST of `body` to `cfg.url`, with its retries ([`crate::hook::send`]). The delivery id
/// is the same on every attempt, so a receiver can drop a repeat.
async fn send(cfg: &NotificationConfig, body: Vec<u8>) -> Delivery {
    let client = match crate::hook::client(cfg.timeout) {
        Ok(c) => c,
        Err(e) => return Delivery::Failed(e),
    };
    let mut headers = vec![
        ("X-SecretSync-Delivery", uuid::Uuid::new_v4().to_string()),
        ("X-SecretSync-Event", "run_finished".to_string()),
    ];
    if let Some(s) = &cfg.secret {
        headers.push(("X-SecretSync-Signature", signature(s.expose(), &body)));
    }
    let post = crate::hook::Post {
        url: cfg.url.expose(),
        body: &body,
        headers: &headers,
        timeout: cfg.timeout,
        max_attempts: cfg.max_attempts,
        observe: None,
    };
    match crate::hook::send(&client, &post, &|| {}, &|| false).await {
        Ok(attempts) => Delivery::Delivered { attempts },
        Err(u) => Delivery::Failed(u.why),
    }
}
