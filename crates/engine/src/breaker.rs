//! Circuit breakers: one per service ([`Endpoint::breaker_key`]: Vault per address, AWS per
//! account and region), as an [`Observer`] of every backend call.
//!
//! * **Closed**: calls go through. `failure_threshold` attempts that ended
//!   [`Outcome::Failed`] (5xx, a connection error, a timeout) within the last `window`
//!   (sliding) open it.
//! * **Open**: [`Observer::admit`] refuses every attempt at once, with an error
//!   ([`ErrorKind::Unavailable`], not retryable, so no retry layer keeps trying) that names the
//!   service, the last failure and when it will be tried again.
//! * **Half-open**, once `timeout` has passed: up to `max_requests` trial attempts go through,
//!   the others are refused. When all of them succeed it closes; one failure opens it again for
//!   another `timeout`. A trial that was throttled frees its place for another one; trials that
//!   never report (a cancelled call) are given up `timeout` after the last one went.
//!
//! Throttling ([`Outcome::Throttled`]) is back-pressure, and a refusal ([`Outcome::Refused`]:
//! denied, not found, conflict) is the service answering: neither ever counts as a failure.
//!
//! [`Breaker`] is the pure state machine (every method takes the time); [`Breakers`] keeps one
//! per service, reads the clock ([`Clock`]), logs every change of state at `warn` and reports
//! it to a [`StateHook`] (the `secretsync_circuit_breaker_state` gauge).
//!
//! ```yaml
//! circuit_breaker:
//!   enabled: true
//!   failure_threshold: 5   # failed attempts ...
//!   window: 10s            # ... within this long open the breaker
//!   timeout: 30s           # open this long, then half-open
//!   max_requests: 1        # trial attempts while half-open
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use secretsync_core::config::CircuitBreakerConfig;
use tracing::warn;

use crate::error::{Error, ErrorKind};
use crate::observe::{Attempt, Endpoint, Observer, Outcome};

/// A breaker's state, as the `state` label of `secretsync_circuit_breaker_state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    /// `closed`, `open`, `half_open`.
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Told the state of a service's breaker (its [`Endpoint::breaker_key`]): once when the
/// service is first called (closed), then on every change. Called outside the breakers' lock;
/// it must not call back into them.
pub type StateHook = Arc<dyn Fn(&str, BreakerState) + Send + Sync>;

/// Where the breakers read the time: the system clock, or a test's.
pub trait Clock: Send + Sync {
    /// For the state machine.
    fn now(&self) -> Instant;
    /// For messages ("tried again at ...").
    fn wall(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]): for tests of anything
/// built on [`Breakers`], without sleeping.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock whose wall time starts at `wall_start`.
    pub fn new(wall_start: SystemTime) -> ManualClock {
        ManualClock {
            start: Instant::now(),
            wall_start,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    pub fn advance(&self, d: Duration) {
        *self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += d;
    }

    fn offset(&self) -> Duration {
        *self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.offset()
    }
    fn wall(&self) -> SystemTime {
        self.wall_start + self.offset()
    }
}

/// The last attempt that failed, as a refusal names it: the operation and our and the
/// backend's request ids, never a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFailure {
    pub operation: String,
    pub request_id: String,
    pub backend_request_id: Option<String>,
    pub elapsed: Duration,
}

impl LastFailure {
    fn of(a: &Attempt<'_>) -> LastFailure {
        LastFailure {
            operation: a.operation.to_string(),
            request_id: a.request_id.to_string(),
            backend_request_id: a.backend_request_id.map(str::to_string),
            elapsed: a.elapsed,
        }
    }
}

impl fmt::Display for LastFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [req={}", self.operation, self.request_id)?;
        if let Some(b) = &self.backend_request_id {
            write!(f, ", backend req={b}")?;
        }
        write!(
            f,
            "] failed after {}ms (a 5xx answer, a connection error or a timeout)",
            self.elapsed.as_millis()
        )
    }
}

/// Why [`Breaker::admit`] refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Open: tried again in this long.
    Open { retry_in: Duration },
    /// Half-open with every trial place taken: they are given up in this long.
    TrialsBusy { retry_in: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        /// When the last trial was let through.
        last_trial: Instant,
        admitted: u32,
        succeeded: u32,
    },
}

/// One service's breaker: the pure state machine. Every method takes the time; a method that
/// changes the state returns the new one.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: Settings,
    state: State,
    /// While closed: when the recent failures happened (within `window`, at most
    /// `failure_threshold` of them).
    failures: VecDeque<Instant>,
    last_failure: Option<LastFailure>,
}

/// What a [`Breaker`] needs of `circuit_breaker:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub failure_threshold: u32,
    pub window: Duration,
    pub timeout: Duration,
    pub max_requests: u32,
}

impl From<&CircuitBreakerConfig> for Settings {
    fn from(c: &CircuitBreakerConfig) -> Settings {
        Settings {
            failure_threshold: c.failure_threshold.max(1),
            window: c.window,
            timeout: c.timeout,
            max_requests: c.max_requests.max(1),
        }
    }
}

impl Breaker {
    pub fn new(cfg: Settings) -> Breaker {
        Breaker {
            cfg,
            state: State::Closed,
            failures: VecDeque::new(),
            last_failure: None,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn last_failure(&self) -> Option<&LastFailure> {
        self.last_failure.as_ref()
    }

    /// Before an attempt at `now`: whether it may go, and the new state if asking changed it
    /// (open → half-open once `timeout` has passed).
    pub fn admit(&mut self, now: Instant) -> (Result<(), Refusal>, Option<BreakerState>) {
        match &mut self.state {
            State::Closed => (Ok(()), None),
            State::Open { until } if now < *until => (
                Err(Refusal::Open {
                    retry_in: *until - now,
                }),
                None,
            ),
            State::Open { .. } => {
                self.state = State::HalfOpen {
                    last_trial: now,
                    admitted: 1,
                    succeeded: 0,
                };
                (Ok(()), Some(BreakerState::HalfOpen))
            }
            State::HalfOpen {
                last_trial,
                admitted,
                ..
            } if *admitted < self.cfg.max_requests => {
                *admitted += 1;
                *last_trial = now;
                (Ok(()), None)
            }
            State::HalfOpen {
                last_trial,
                admitted,
                succeeded,
            } => {
                let give_up = *last_trial + self.cfg.timeout;
                if now < give_up {
                    return (
                        Err(Refusal::TrialsBusy {
                            retry_in: give_up - now,
                        }),
                        None,
                    );
                }
                // The trials never reported (cancelled calls): let new ones go.
                *last_trial = now;
                *admitted = 1;
                *succeeded = 0;
                (Ok(()), None)
            }
        }
    }

    /// After an attempt that ended at `now` with `outcome`; `failure` describes it when it
    /// failed. Returns the new state if the attempt changed it.
    pub fn record(
        &mut self,
        outcome: Outcome,
        failure: impl FnOnce() -> LastFailure,
        now: Instant,
    ) -> Option<BreakerState> {
        match (outcome, &mut self.state) {
            (Outcome::Failed, state) => {
                self.last_failure = Some(failure());
                match state {
                    State::Closed => {
                        self.failures.push_back(now);
                        while self.failures.len() > self.cfg.failure_threshold as usize
                            || self.failures.front().is_some_and(|t| {
                                now.saturating_duration_since(*t) >= self.cfg.window
                            })
                        {
                            self.failures.pop_front();
                        }
                        if self.failures.len() < self.cfg.failure_threshold as usize {
                            return None;
                        }
                        self.open(now)
                    }
                    State::HalfOpen { .. } => self.open(now),
                    // An attempt let through before the breaker opened.
                    State::Open { .. } => None,
                }
            }
            // The service answered: a trial that counts as a success.
            (Outcome::Ok | Outcome::Refused, State::HalfOpen { succeeded, .. }) => {
                *succeeded += 1;
                if *succeeded < self.cfg.max_requests {
                    return None;
                }
                self.state = State::Closed;
                self.failures.clear();
                Some(BreakerState::Closed)
            }
            // Back-pressure: neither success nor failure; another trial may take its place.
            (Outcome::Throttled, State::HalfOpen { admitted, .. }) => {
                *admitted = admitted.saturating_sub(1);
                None
            }
            (Outcome::Ok | Outcome::Refused | Outcome::Throttled, _) => None,
        }
    }

    fn open(&mut self, now: Instant) -> Option<BreakerState> {
        self.state = State::Open {
            until: now + self.cfg.timeout,
        };
        self.failures.clear();
        Some(BreakerState::Open)
    }
}

/// The run's circuit breakers, one per service, as an [`Observer`]. Build it with
/// [`Breakers::from_config`] and put it among the run's observers.
pub struct Breakers {
    cfg: Settings,
    clock: Arc<dyn Clock>,
    hook: Option<StateHook>,
    by_service: Mutex<HashMap<String, Breaker>>,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Breakers {
    /// The breakers `circuit_breaker:` asks for, or `None` when it is off (`enabled: false`,
    /// or no block): then no call is ever refused.
    pub fn from_config(
        cfg: &CircuitBreakerConfig,
        hook: Option<StateHook>,
    ) -> Option<Arc<Breakers>> {
        cfg.active()
            .then(|| Arc::new(Breakers::new(cfg.into(), Arc::new(SystemClock), hook)))
    }

    pub fn new(cfg: Settings, clock: Arc<dyn Clock>, hook: Option<StateHook>) -> Breakers {
        Breakers {
            cfg,
            clock,
            hook,
            by_service: Mutex::new(HashMap::new()),
        }
    }

    /// The state of a service's breaker (`None` before its first call).
    pub fn state(&self, service: &str) -> Option<BreakerState> {
        self.lock().get(service).map(Breaker::state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        // A panic elsewhere while holding the lock leaves consistent state (every update is
        // one assignment): go on with it.
        self.by_service
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the service's breaker (created closed on first use), then reports what
    /// changed, outside the lock.
    fn with<T>(
        &self,
        service: String,
        f: impl FnOnce(&mut Breaker) -> (T, Option<BreakerState>),
    ) -> T {
        let (out, created, from, changed, last) = {
            let mut map = self.lock();
            let created = !map.contains_key(&service);
            let b = map
                .entry(service.clone())
                .or_insert_with(|| Breaker::new(self.cfg));
            let from = b.state();
            let (out, changed) = f(b);
            let last = changed.and_then(|_| b.last_failure().cloned());
            (out, created, from, changed, last)
        };
        if created && let Some(h) = &self.hook {
            h(&service, BreakerState::Closed);
        }
        if let Some(state) = changed {
            self.changed(&service, from, state, last.as_ref());
        }
        out
    }

    fn changed(
        &self,
        service: &str,
        from: BreakerState,
        state: BreakerState,
        last: Option<&LastFailure>,
    ) {
        let c = &self.cfg;
        let why = if from == BreakerState::HalfOpen {
            "a trial call failed".to_string()
        } else {
            format!(
                "{} attempts failed within {}",
                c.failure_threshold,
                human(c.window)
            )
        };
        match state {
            BreakerState::Open => warn!(
                service,
                state = state.label(),
                last_failure = last.map(tracing::field::display),
                "circuit breaker opened: {why}; calls to {service} fail at once for {}",
                human(c.timeout)
            ),
            BreakerState::HalfOpen => warn!(
                service,
                state = state.label(),
                "circuit breaker half-open: letting {} trial call{} through to {service}",
                c.max_requests,
                if c.max_requests == 1 { "" } else { "s" }
            ),
            BreakerState::Closed => warn!(
                service,
                state = state.label(),
                "circuit breaker closed: {service} answers again"
            ),
        }
        if let Some(h) = &self.hook {
            h(service, state);
        }
    }

    fn refusal(
        &self,
        endpoint: &Endpoint,
        service: &str,
        why: Refusal,
        last: Option<LastFailure>,
    ) -> Error {
        let c = &self.cfg;
        let last = last.map_or_else(String::new, |l| format!("; the last failure: {l}"));
        let message = match why {
            Refusal::Open { retry_in } => format!(
                "circuit breaker open for {service}: {} attempts failed within {}{last}; {endpoint} is not called until it is tried again {}; check that it is up and reachable",
                c.failure_threshold,
                human(c.window),
                self.when(retry_in)
            ),
            Refusal::TrialsBusy { retry_in } => format!(
                "circuit breaker half-open for {service}: its {} trial call{} to {endpoint} are still running{last}; other calls fail at once until they succeed, or until trials are tried again {}",
                c.max_requests,
                if c.max_requests == 1 { "" } else { "s" },
                self.when(retry_in)
            ),
        };
        let mut e = Error::new(ErrorKind::Unavailable, message);
        // Retrying an open breaker only refuses again: the call fails now.
        e.retryable = false;
        e
    }

    /// `in 23s (2026-11-29T10:14:08Z)`.
    fn when(&self, retry_in: Duration) -> String {
        let at = self.clock.wall() + retry_in;
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        format!("in {} ({})", human(retry_in), crate::lease::fmt_epoch(secs))
    }
}

impl Observer for Breakers {
    fn admit(&self, endpoint: &Endpoint, _operation: &str) -> Result<(), Error> {
        let service = endpoint.breaker_key();
        let now = self.clock.now();
        let refused = self.with(service.clone(), |b| {
            let (r, changed) = b.admit(now);
            (r.err().map(|why| (why, b.last_failure().cloned())), changed)
        });
        match refused {
            None => Ok(()),
            Some((why, last)) => Err(self.refusal(endpoint, &service, why, last)),
        }
    }

    fn attempt(&self, a: &Attempt<'_>) {
        let now = self.clock.now();
        self.with(a.endpoint.breaker_key(), |b| {
            ((), b.record(a.outcome, || LastFailure::of(a), now))
        });
    }
}

/// `500ms`, `23s`, `1m30s`, `2h5m`: whole seconds rounded up from one second on.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis().max(1));
    }
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(threshold: u32, window: u64, timeout: u64, max_requests: u32) -> Settings {
        Settings {
            failure_threshold: threshold,
            window: Duration::from_secs(window),
            timeout: Duration::from_secs(timeout),
            max_requests,
        }
    }

    fn failure(op: &str) -> LastFailure {
        LastFailure {
            operation: op.into(),
            request_id: "r1".into(),
            backend_request_id: None,
            elapsed: Duration::from_millis(12),
        }
    }

    /// Drives a breaker through `steps` (`ok`, `fail`, `throttled`, `refused`: record;
    /// `admit`: ask) at the given second each, and returns what each step answered:
    /// `go` / `no` for an admission, then `->state` when it changed.
    fn check(cfg: Settings, steps: &[(u64, &str)], expected: &[&str]) {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg);
        let mut got = Vec::new();
        for (at, step) in steps {
            let now = t0 + Duration::from_secs(*at);
            let (mut answer, changed) = match *step {
                "admit" => {
                    let (r, changed) = b.admit(now);
                    (if r.is_ok() { "go" } else { "no" }.to_string(), changed)
                }
                s => {
                    let outcome = match s {
                        "ok" => Outcome::Ok,
                        "fail" => Outcome::Failed,
                        "throttled" => Outcome::Throttled,
                        "refused" => Outcome::Refused,
                        other => panic!("unknown step {other}"),
                    };
                    (s.to_string(), b.record(outcome, || failure("kv.list"), now))
                }
            };
            if let Some(s) = changed {
                answer.push_str(&format!(" ->{s}"));
            }
            got.push(format!("{at}s {answer}"));
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn opens_after_threshold_failures_within_the_window() {
        check(
            settings(3, 10, 30, 1),
            &[
                (0, "fail"),
                (1, "fail"),
                (2, "admit"),
                (3, "fail"),
                (4, "admit"),
                (32, "admit"),
            ],
            &[
                "0s fail",
                "1s fail",
                "2s go",
                "3s fail ->open",
                "4s no",
                "32s no",
            ],
        );
    }

    #[test]
    fn the_window_slides() {
        // Failures at 0 and 5 have left the 10s window by 12 and 15: never three within 10s.
        check(
            settings(3, 10, 30, 1),
            &[
                (0, "fail"),
                (5, "fail"),
                (12, "fail"),
                (15, "fail"),
                (16, "fail"),
            ],
            &[
                "0s fail",
                "5s fail",
                "12s fail",
                "15s fail",
                "16s fail ->open",
            ],
        );
    }

    #[test]
    fn successes_in_between_do_not_reset_the_count() {
        check(
            settings(2, 10, 30, 1),
            &[(0, "fail"), (1, "ok"), (2, "fail")],
            &["0s fail", "1s ok", "2s fail ->open"],
        );
    }

    #[test]
    fn throttling_and_refusals_never_open_it() {
        let mut steps = Vec::new();
        for i in 0..20 {
            steps.push((i, if i % 2 == 0 { "throttled" } else { "refused" }));
        }
        steps.push((21, "admit"));
        let expected: Vec<String> = steps
            .iter()
            .map(|(at, s)| format!("{at}s {}", if *s == "admit" { "go" } else { s }))
            .collect();
        check(
            settings(1, 60, 30, 1),
            &steps,
            &expected.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    #[test]
    fn half_open_after_timeout_then_closes_on_success() {
        check(
            settings(1, 10, 30, 1),
            &[
                (0, "fail"),
                (29, "admit"),
                (30, "admit"),
                (30, "admit"),
                (31, "ok"),
                (31, "admit"),
                (32, "fail"),
            ],
            &[
                "0s fail ->open",
                "29s no",
                "30s go ->half_open",
                "30s no",
                "31s ok ->closed",
                "31s go",
                // Closed again with a fresh count: one failure (the threshold) opens it.
                "32s fail ->open",
            ],
        );
    }

    #[test]
    fn a_failed_trial_opens_it_again_for_another_timeout() {
        check(
            settings(1, 10, 30, 2),
            &[
                (0, "fail"),
                (30, "admit"),
                (30, "admit"),
                (30, "admit"),
                (31, "ok"),
                (31, "fail"),
                (60, "admit"),
                (61, "admit"),
            ],
            &[
                "0s fail ->open",
                "30s go ->half_open",
                "30s go",
                "30s no",
                "31s ok",
                "31s fail ->open",
                "60s no",
                "61s go ->half_open",
            ],
        );
    }

    #[test]
    fn half_open_needs_every_trial_to_succeed() {
        check(
            settings(1, 10, 5, 3),
            &[
                (0, "fail"),
                (5, "admit"),
                (5, "admit"),
                (5, "admit"),
                (6, "ok"),
                (6, "refused"),
                (7, "ok"),
            ],
            &[
                "0s fail ->open",
                "5s go ->half_open",
                "5s go",
                "5s go",
                "6s ok",
                "6s refused",
                "7s ok ->closed",
            ],
        );
    }

    #[test]
    fn a_throttled_trial_frees_its_place_and_lost_trials_are_given_up() {
        check(
            settings(1, 10, 5, 1),
            &[
                (0, "fail"),
                (5, "admit"),
                (5, "admit"),
                (6, "throttled"),
                (6, "admit"),
                // That trial never reports (cancelled): after `timeout` another may go.
                (10, "admit"),
                (11, "admit"),
                (12, "ok"),
            ],
            &[
                "0s fail ->open",
                "5s go ->half_open",
                "5s no",
                "6s throttled",
                "6s go",
                "10s no",
                "11s go",
                "12s ok ->closed",
            ],
        );
    }

    #[test]
    fn a_late_failure_while_open_changes_nothing() {
        check(
            settings(1, 10, 30, 1),
            &[(0, "fail"), (1, "fail"), (29, "admit"), (30, "admit")],
            &["0s fail ->open", "1s fail", "29s no", "30s go ->half_open"],
        );
    }

    #[test]
    fn durations_read_like_config() {
        let d = |ms: u64| human(Duration::from_millis(ms));
        assert_eq!(
            [
                d(400),
                d(1000),
                d(22_100),
                d(90_000),
                d(3_600_000),
                d(7_505_000)
            ],
            ["400ms", "1s", "23s", "1m30s", "1h", "2h5m5s"]
        );
    }

    fn attempt<'a>(e: &'a Endpoint, op: &'a str, outcome: Outcome) -> Attempt<'a> {
        Attempt {
            endpoint: e,
            operation: op,
            request_id: "0123456789abcdef",
            backend_request_id: Some("aws-req-1"),
            attempt: 1,
            elapsed: Duration::from_millis(1250),
            outcome,
            pagination: false,
        }
    }

    #[test]
    fn one_breaker_per_service_with_a_message_that_says_what_and_when() {
        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ));
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let hook: StateHook = {
            let seen = seen.clone();
            Arc::new(move |s, st| seen.lock().unwrap().push(format!("{s} {st}")))
        };
        let b = Breakers::new(settings(2, 10, 30, 1), clock.clone(), Some(hook));
        let a1 = Endpoint::aws("secretsmanager", "111111111111", "us-east-1");
        let a1_ssm = Endpoint::aws("ssm", "111111111111", "us-east-1");
        let a2 = Endpoint::aws("secretsmanager", "222222222222", "us-east-1");
        assert!(b.admit(&a1, "ListSecrets").is_ok());
        b.attempt(&attempt(&a1, "ListSecrets", Outcome::Failed));
        b.attempt(&attempt(&a1, "PutSecretValue", Outcome::Failed));
        clock.advance(Duration::from_millis(7_200));

        // Every service of one account and region shares the breaker; another account does not.
        let err = b.admit(&a1_ssm, "GetParameters").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(!err.retryable);
        assert_eq!(
            err.message,
            "circuit breaker open for aws/111111111111/us-east-1: 2 attempts failed within 10s; \
             the last failure: PutSecretValue [req=0123456789abcdef, backend req=aws-req-1] failed \
             after 1250ms (a 5xx answer, a connection error or a timeout); AWS ssm in \
             111111111111/us-east-1 is not called until it is tried again in 23s \
             (2027-01-15T08:00:30Z); check that it is up and reachable"
        );
        assert!(b.admit(&a2, "ListSecrets").is_ok());
        assert_eq!(
            b.state("aws/111111111111/us-east-1"),
            Some(BreakerState::Open)
        );
        assert_eq!(
            b.state("aws/222222222222/us-east-1"),
            Some(BreakerState::Closed)
        );

        clock.advance(Duration::from_secs(23));
        assert!(b.admit(&a1, "ListSecrets").is_ok());
        let busy = b.admit(&a1, "ListSecrets").unwrap_err();
        assert!(
            busy.message.starts_with(
                "circuit breaker half-open for aws/111111111111/us-east-1: its 1 trial call to AWS secretsmanager in 111111111111/us-east-1 are still running"
            ),
            "{}",
            busy.message
        );
        b.attempt(&attempt(&a1, "ListSecrets", Outcome::Ok));
        assert!(b.admit(&a1, "ListSecrets").is_ok());
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "aws/111111111111/us-east-1 closed",
                "aws/111111111111/us-east-1 open",
                "aws/222222222222/us-east-1 closed",
                "aws/111111111111/us-east-1 half_open",
                "aws/111111111111/us-east-1 closed",
            ]
        );
    }

    #[test]
    fn off_in_config_means_no_breaker() {
        let mut cfg = CircuitBreakerConfig::default();
        assert!(Breakers::from_config(&cfg, None).is_none());
        cfg.requested = true;
        let b = Breakers::from_config(&cfg, None).expect("on");
        assert_eq!(b.cfg, Settings::from(&cfg));
    }
}
