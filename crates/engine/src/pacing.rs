//! Adaptive pacing: one limiter per account, region and kind of call, shared by every target
//! (and every client) that calls AWS there, because that is where AWS's quotas are.
//!
//! A limiter is a token bucket whose rate finds the real limit like TCP does: it starts near
//! AWS's documented quota for its kind ([`Kind::start`]), doubles every second while calls
//! succeed (slow start) until the first throttle, then halves on each throttle (at most once
//! per [`DEBOUNCE`], so a burst of throttled answers to calls sent together counts once) and
//! grows additively while calls succeed. An endpoint without quotas (an emulator) therefore
//! runs at its own speed; AWS at its quota. Throttled calls are retried by the retry layer.
//! `writes_per_second` on a target stays an optional hard ceiling on top.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The most a limiter lets through per second (a guard against runaway growth).
pub const MAX_RATE: f64 = 10_000.0;
/// The least (a throttled limiter never stops).
pub const MIN_RATE: f64 = 1.0;
/// Throttles closer together than this count once.
pub const DEBOUNCE: Duration = Duration::from_millis(500);
/// How often the rate may grow.
const GROWTH_EVERY: Duration = Duration::from_secs(1);

/// A kind of call, for quotas (Secrets Manager's and SSM's published rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Writes of values and deletions (`PutSecretValue`, `UpdateSecret`, `DeleteSecret`, …).
    Write,
    /// `CreateSecret`.
    Create,
    /// Tag calls.
    Tag,
    /// Reads (`ListSecrets`, `BatchGetSecretValue`, `GetSecretValue`, `DescribeSecret`, …).
    Read,
    /// Anything else (S3, STS, Organizations): not paced.
    Other,
}

impl Kind {
    /// The kind of an API operation.
    pub fn of(operation: &str) -> Kind {
        match operation {
            "CreateSecret" => Kind::Create,
            "TagResource" | "UntagResource" | "AddTagsToResource" | "RemoveTagsFromResource" => {
                Kind::Tag
            }
            "PutSecretValue"
            | "UpdateSecret"
            | "UpdateSecretVersionStage"
            | "DeleteSecret"
            | "RestoreSecret"
            | "ReplicateSecretToRegions"
            | "RemoveRegionsFromReplication"
            | "PutParameter"
            | "DeleteParameter"
            | "DeleteParameters" => Kind::Write,
            "ListSecrets"
            | "BatchGetSecretValue"
            | "GetSecretValue"
            | "DescribeSecret"
            | "ListSecretVersionIds"
            | "GetParameter"
            | "GetParameters"
            | "DescribeParameters"
            | "ListTagsForResource" => Kind::Read,
            _ => Kind::Other,
        }
    }

    /// Where a limiter of this kind starts: AWS's documented rate (Secrets Manager: 50/s for
    /// value writes, creates and tag calls; 100/s for reads).
    pub fn start(self) -> f64 {
        match self {
            Kind::Write | Kind::Create | Kind::Tag => 50.0,
            Kind::Read => 100.0,
            Kind::Other => MAX_RATE,
        }
    }
}

#[derive(Debug)]
struct State {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    /// Slow start until the first throttle.
    slow_start: bool,
    last_growth: Instant,
    last_throttle: Option<Instant>,
    throttles: u64,
}

/// One limiter (see the module docs).
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
}

impl Limiter {
    pub fn new(start: f64) -> Limiter {
        let now = Instant::now();
        Limiter {
            state: Mutex::new(State {
                rate: start.clamp(MIN_RATE, MAX_RATE),
                tokens: 1.0,
                refilled: now,
                slow_start: true,
                last_growth: now,
                last_throttle: None,
                throttles: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                let dt = now.saturating_duration_since(s.refilled).as_secs_f64();
                // A bucket of a tenth of a second's worth (at least one call) allows small bursts.
                let burst = (s.rate / 10.0).max(1.0);
                s.tokens = (s.tokens + dt * s.rate).min(burst);
                s.refilled = now;
                if s.tokens >= 1.0 {
                    s.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.tokens) / s.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// A call went through: the rate may grow (doubling in slow start, +10 % of the start rate
    /// otherwise), at most once per second.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        if now.saturating_duration_since(s.last_growth) < GROWTH_EVERY {
            return;
        }
        s.last_growth = now;
        s.rate = if s.slow_start {
            s.rate * 2.0
        } else {
            s.rate + (s.rate * 0.1).max(1.0)
        }
        .min(MAX_RATE);
    }

    /// A call was throttled: the rate halves (once per [`DEBOUNCE`]) and slow start ends.
    pub fn throttled(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        if s.last_throttle
            .is_some_and(|t| now.saturating_duration_since(t) < DEBOUNCE)
        {
            return;
        }
        s.last_throttle = Some(now);
        s.throttles += 1;
        s.slow_start = false;
        s.rate = (s.rate / 2.0).max(MIN_RATE);
        s.tokens = 0.0;
        s.last_growth = now;
    }

    /// The rate now (calls per second).
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// How many times the rate was cut.
    pub fn throttles(&self) -> u64 {
        self.lock().throttles
    }
}

/// Every limiter of a run, by account (or `default`), region and kind.
#[derive(Debug, Default)]
pub struct Pacing {
    limiters: Mutex<HashMap<(String, String, Kind), Arc<Limiter>>>,
}

impl Pacing {
    /// The limiter of `kind` in `account` and `region` (created at its start rate).
    pub fn limiter(&self, account: &str, region: &str, kind: Kind) -> Option<Arc<Limiter>> {
        if kind == Kind::Other {
            return None;
        }
        let mut m = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            m.entry((account.to_string(), region.to_string(), kind))
                .or_insert_with(|| Arc::new(Limiter::new(kind.start())))
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slow_start_doubles_then_throttles_halve_and_growth_is_additive() {
        let l = Limiter::new(50.0);
        tokio::time::advance(Duration::from_secs(1)).await;
        l.succeeded();
        assert_eq!(l.rate(), 100.0);
        l.succeeded();
        assert_eq!(l.rate(), 100.0, "at most once per second");
        tokio::time::advance(Duration::from_secs(1)).await;
        l.succeeded();
        assert_eq!(l.rate(), 200.0);
        l.throttled();
        assert_eq!(l.rate(), 100.0);
        l.throttled();
        assert_eq!(l.rate(), 100.0, "throttles of one burst count once");
        tokio::time::advance(Duration::from_secs(1)).await;
        l.succeeded();
        assert_eq!(l.rate(), 110.0, "after a throttle growth is additive");
        for _ in 0..20 {
            tokio::time::advance(DEBOUNCE).await;
            l.throttled();
        }
        assert_eq!(l.rate(), MIN_RATE);
        assert_eq!(l.throttles(), 21);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_holds_calls_to_the_rate() {
        let l = Limiter::new(20.0);
        let start = Instant::now();
        for _ in 0..41 {
            l.acquire().await;
        }
        let took = start.elapsed().as_secs_f64();
        // 41 calls at 20/s with a burst of 2: about two seconds.
        assert!((1.8..=2.1).contains(&took), "{took}");
    }

    #[test]
    fn kinds_and_shared_limiters() {
        assert_eq!(Kind::of("CreateSecret"), Kind::Create);
        assert_eq!(Kind::of("PutSecretValue"), Kind::Write);
        assert_eq!(Kind::of("TagResource"), Kind::Tag);
        assert_eq!(Kind::of("ListSecrets"), Kind::Read);
        assert_eq!(Kind::of("PutObject"), Kind::Other);
        let p = Pacing::default();
        let a = p.limiter("111", "us-east-1", Kind::Write).unwrap();
        let b = p.limiter("111", "us-east-1", Kind::Write).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "one limiter per account, region and kind"
        );
        let c = p.limiter("222", "us-east-1", Kind::Write).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(p.limiter("111", "us-east-1", Kind::Other).is_none());
    }
}
