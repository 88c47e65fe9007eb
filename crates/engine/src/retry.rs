//! The one retry layer: every call to Vault, Secrets Manager, SSM and S3 is retried here, and
//! only here, decided by the engine error's `retryable` flag ([`Error::retryable`]: throttling
//! and unavailability are, nothing else is). The AWS SDK's own retries are switched off for the
//! service clients ([`crate::aws`]), so one policy, one backoff and one attempt count hold for
//! every backend, and an error can say how many retries it took.
//!
//! Backoff is exponential with jitter ("equal jitter": half the step, plus a random part of the
//! other half), from 200 ms for an unavailable service and from 500 ms for throttling, capped at
//! 10 s a step. A call stops retrying when its attempts are used up
//! ([`Policy::max_attempts`]: `retries.vault_max_attempts`, `retries.aws_max_attempts`) or when
//! the next wait would pass its deadline ([`Policy::deadline`]).
//!
//! While a call runs, its request id and attempt number are in a task-local ([`current`]), so
//! the AWS interceptor reports every attempt of one call under one request id.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::error::{Error, ErrorKind};

/// Attempts per Vault call unless configured (`retries.vault_max_attempts`).
pub const VAULT_MAX_ATTEMPTS: u32 = 4;
/// Attempts per AWS call unless configured (`retries.aws_max_attempts`).
pub const AWS_MAX_ATTEMPTS: u32 = 5;
/// Attempts per GCP Secret Manager call unless configured (`retries.gcp_max_attempts`).
pub const GCP_MAX_ATTEMPTS: u32 = 5;
/// Attempts per Azure Key Vault call unless configured (`retries.azure_max_attempts`).
pub const AZURE_MAX_ATTEMPTS: u32 = 5;
/// The longest single wait between two attempts.
pub const MAX_STEP: Duration = Duration::from_secs(10);

/// How a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub deadline: Option<Duration>,
}

impl Policy {
    pub fn new(max_attempts: u32) -> Policy {
        Policy {
            max_attempts: max_attempts.max(1),
            deadline: None,
        }
    }

    pub fn with_deadline(self, deadline: Duration) -> Policy {
        Policy {
            deadline: Some(deadline),
            ..self
        }
    }

    /// How long to wait before another attempt, after attempt number `attempt` (1-based)
    /// failed with `err` and `elapsed` has passed since the first; `None`: give up.
    pub fn next_wait(&self, attempt: u32, elapsed: Duration, err: &Error) -> Option<Duration> {
        if !err.retryable || attempt >= self.max_attempts {
            return None;
        }
        let wait = backoff(attempt, err.kind);
        match self.deadline {
            Some(d) if elapsed + wait >= d => None,
            _ => Some(wait),
        }
    }
}

/// The wait after failed attempt number `attempt` (1-based) of a call that failed with `kind`.
pub fn backoff(attempt: u32, kind: ErrorKind) -> Duration {
    let base: u64 = if kind == ErrorKind::Throttled {
        500
    } else {
        200
    };
    let step = (base << attempt.saturating_sub(1).min(8)).min(MAX_STEP.as_millis() as u64);
    let jitter = (uuid::Uuid::new_v4().as_u128() % (step as u128 / 2 + 1)) as u64;
    Duration::from_millis(step / 2 + jitter)
}

/// A call and everything it took.
#[derive(Debug)]
pub struct Tried<T> {
    /// What the last attempt gave.
    pub result: T,
    pub attempts: u32,
    pub elapsed: Duration,
    /// The request id all attempts were made under.
    pub request_id: String,
}

/// The call in progress in this task: what the AWS interceptor reports each attempt under.
#[derive(Debug, Clone)]
pub struct Current {
    pub request_id: String,
    pub attempt: u32,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// The call in progress in this task, if it runs under [`run`].
pub fn current() -> Option<Current> {
    CURRENT.try_with(Current::clone).ok()
}

/// Runs `f` as attempt `attempt` of the call `request_id` (what [`current`] says inside it),
/// for a loop that retries on its own ([`crate::hook::send`]).
pub async fn as_attempt<F: Future>(request_id: &str, attempt: u32, f: F) -> F::Output {
    let current = Current {
        request_id: request_id.to_string(),
        attempt,
    };
    CURRENT.scope(current, f).await
}

/// Runs `attempt` (given the attempt number, from 1) until it succeeds, or fails with an error
/// that `judge` (what the failure is, as an engine error) says is not retryable, or `policy`
/// gives up. `operation` names the call in debug logs (never a path).
pub async fn run<T, E, F, Fut>(
    policy: &Policy,
    operation: &str,
    judge: impl Fn(&E) -> Error,
    mut attempt: F,
) -> Tried<Result<T, E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let request_id = crate::observe::request_id();
    let mut n = 0;
    loop {
        n += 1;
        let current = Current {
            request_id: request_id.clone(),
            attempt: n,
        };
        // The attempt is made (its closure called, too) inside the scope.
        let result = CURRENT.scope(current, async { attempt(n).await }).await;
        let wait = match &result {
            Ok(_) => None,
            Err(e) => {
                let err = judge(e);
                let wait = policy.next_wait(n, started.elapsed(), &err);
                if let Some(w) = wait {
                    debug!(
                        operation,
                        request_id = %request_id,
                        attempt = n,
                        kind = err.failure_kind().as_str(),
                        wait_ms = w.as_millis() as u64,
                        "retrying"
                    );
                }
                wait
            }
        };
        match wait {
            Some(w) => tokio::time::sleep(w).await,
            None => {
                return Tried {
                    result,
                    attempts: n,
                    elapsed: started.elapsed(),
                    request_id,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn err(kind: ErrorKind) -> Error {
        Error::new(kind, "x")
    }

    #[test]
    fn only_retryable_errors_are_retried_and_attempts_are_bounded() {
        let p = Policy::new(3);
        let z = Duration::ZERO;
        assert!(p.next_wait(1, z, &err(ErrorKind::Unavailable)).is_some());
        assert!(p.next_wait(2, z, &err(ErrorKind::Throttled)).is_some());
        assert!(p.next_wait(3, z, &err(ErrorKind::Unavailable)).is_none());
        for kind in [
            ErrorKind::Auth,
            ErrorKind::PermissionDenied,
            ErrorKind::Conflict,
            ErrorKind::Unexpected,
            ErrorKind::Config,
            ErrorKind::Cancelled,
        ] {
            assert!(p.next_wait(1, z, &err(kind)).is_none(), "{kind:?}");
        }
        // The flag decides, not the kind: a refusal of an open breaker is Unavailable but not
        // retryable.
        let mut refused = err(ErrorKind::Unavailable);
        refused.retryable = false;
        assert!(p.next_wait(1, z, &refused).is_none());
        assert!(
            Policy::new(0)
                .next_wait(1, z, &err(ErrorKind::Unavailable))
                .is_none()
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 1..12 {
            for kind in [ErrorKind::Unavailable, ErrorKind::Throttled] {
                let base = if kind == ErrorKind::Throttled {
                    500
                } else {
                    200
                };
                let step = (base << (attempt - 1).min(8)).min(10_000);
                let w = backoff(attempt, kind).as_millis() as u64;
                assert!(
                    w >= step / 2 && w <= step,
                    "{attempt} {kind:?}: {w} of {step}"
                );
            }
        }
        let waits: std::collections::BTreeSet<_> =
            (0..50).map(|_| backoff(5, ErrorKind::Throttled)).collect();
        assert!(waits.len() > 1, "jitter varies the wait");
    }

    #[test]
    fn a_deadline_stops_retries_that_would_pass_it() {
        let p = Policy::new(10).with_deadline(Duration::from_secs(1));
        let e = err(ErrorKind::Unavailable);
        assert!(p.next_wait(1, Duration::ZERO, &e).is_some());
        assert!(p.next_wait(1, Duration::from_millis(999), &e).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_until_success_under_one_request_id() {
        let calls = AtomicU32::new(0);
        let ids = std::sync::Mutex::new(Vec::new());
        let tried = run(&Policy::new(5), "test", Clone::clone, |n| {
            calls.fetch_add(1, Ordering::Relaxed);
            ids.lock().unwrap().push(current().expect("in a call"));
            async move {
                if n < 3 {
                    Err(err(ErrorKind::Throttled))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(tried.result.expect("the third attempt succeeds"), 3);
        assert_eq!(tried.attempts, 3);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        let ids = ids.into_inner().unwrap();
        assert!(ids.iter().all(|c| c.request_id == tried.request_id));
        assert_eq!(ids.iter().map(|c| c.attempt).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(current().is_none(), "only inside a call");
    }

    #[tokio::test(start_paused = true)]
    async fn run_gives_up_at_once_on_an_error_that_is_not_retryable() {
        let tried = run(&Policy::new(5), "test", Clone::clone, |_| async {
            Err::<(), _>(err(ErrorKind::PermissionDenied))
        })
        .await;
        assert_eq!(tried.attempts, 1);
        assert_eq!(
            tried.result.expect_err("denied").kind,
            ErrorKind::PermissionDenied
        );
        let tried = run(&Policy::new(4), "test", Clone::clone, |_| async {
            Err::<(), _>(err(ErrorKind::Unavailable))
        })
        .await;
        assert_eq!(
            tried.attempts, 4,
            "every attempt is used on a transient error"
        );
    }
}
