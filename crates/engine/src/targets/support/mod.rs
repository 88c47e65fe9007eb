//! What every target implementation shares: the apply ([`apply::run`]; a kind implements
//! [`apply::Apply`] with its backend calls), write pacing ([`Pacer`]) and the fingerprint key's
//! get-or-create ([`key`]; a kind implements [`key::KeyStore`] for where it keeps the key).

pub mod apply;
pub mod key;

use std::time::{Duration, Instant};

use secretsync_core::fingerprint::KEY_LEN;
use tokio::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};

/// Spaces writes evenly: at most `per_second` starts per second.
pub struct Pacer {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pacer {
    pub fn new(per_second: u32) -> Self {
        Pacer {
            next: Mutex::new(Instant::now()),
            interval: Duration::from_secs_f64(1.0 / per_second.max(1) as f64),
        }
    }
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// A new random fingerprint key from the operating system.
pub fn random_key() -> Result<[u8; KEY_LEN]> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("cannot get random bytes from the operating system: {e}"),
        )
    })?;
    Ok(bytes)
}
