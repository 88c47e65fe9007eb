//! AWS access shared by every AWS backend: the SDK's default credential chain loaded once,
//! per-role credentials (assumed with STS, session name `secretsync`, cached and refreshed by
//! the SDK's identity cache), calls through the retry layer ([`CallCounter::send`]; the SDK's
//! own retries are off for every client built here), timeouts on every call, and an interceptor that
//! counts API calls ([`CallCounter`]).
//!
//! Nothing here knows a target's service: each AWS target folder builds its own SDK client from
//! the [`SdkConfig`] that [`AwsContext::config_for`] returns, with its [`CallCounter`] attached
//! as an interceptor (`aws_sm::client` is the Secrets Manager one, which the leases of every
//! AWS target use too). The S3 client is built here: the merge store and the S3 leases share it.
//!
//! `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>` variables are honoured by
//! the SDK's config loader; before loading, [`check_endpoint_env`] refuses any of those the
//! shared code uses ([`ENDPOINT_VARS`]) that would send credentials or values over plain http to
//! a host other than loopback. A target kind on another service checks its own variable with
//! [`check_endpoint_var`] when it is built, before its client sends anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use secretsync_core::config::check_endpoint;
use tokio::sync::Mutex;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::{CallFacts, Error, ErrorKind, Result};
use crate::observe::{self, Endpoint, Observers};
use crate::retry::{AWS_MAX_ATTEMPTS, Policy};

/// How long to wait for a TCP (and TLS) connection to an AWS endpoint. Endpoints answer in
/// milliseconds; a connection that takes seconds goes nowhere.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt of a call may take, response included. The slowest calls we make
/// (`BatchGetSecretValue` of 20 large secrets, `ListSecrets` pages, S3 objects) take well under
/// a second; an attempt that hangs this long is retried.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a call may take with all its retries (backoff included), so that a
/// black-holed endpoint fails the run instead of hanging it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The environment variables that override the AWS endpoints the shared code sends values or
/// credentials to: every service's (`AWS_ENDPOINT_URL`), Secrets Manager's (the lease of every
/// AWS target), S3's (merge store, S3 leases), and those of the SDK's credential providers
/// (STS, SSO). A target kind's own service is checked by its folder ([`check_endpoint_var`]).
pub const ENDPOINT_VARS: [&str; 6] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_SSO",
    "AWS_ENDPOINT_URL_SSO_OIDC",
];

/// Timeouts applied to every AWS call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: CONNECT_TIMEOUT,
            attempt: ATTEMPT_TIMEOUT,
            operation: OPERATION_TIMEOUT,
        }
    }
}

impl Timeouts {
    fn config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// Checks the AWS endpoint overrides the shared code uses ([`ENDPOINT_VARS`]):
/// [`check_endpoint_var`] for each.
pub fn check_endpoint_env(env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    ENDPOINT_VARS
        .iter()
        .try_for_each(|var| check_endpoint_var(env, var))
}

/// Checks one endpoint override (`AWS_ENDPOINT_URL_<SERVICE>`), if it is set: https, or plain
/// http only to a loopback address. An error names the variable and says what to do.
pub fn check_endpoint_var(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Result<()> {
    let Some(url) = env(var).filter(|u| !u.trim().is_empty()) else {
        return Ok(());
    };
    check_endpoint(url.trim()).map_err(|e| {
        Error::config(format!(
            "{var}: {e}; use an https:// endpoint (plain http only to 127.0.0.1, ::1 or localhost) or unset {var}"
        ))
    })
}

/// Whether S3 requests go to an endpoint override (a local emulator or a gateway), given the
/// environment and the loaded config.
fn s3_endpoint_overridden(env: &dyn Fn(&str) -> Option<String>, base: &SdkConfig) -> bool {
    base.endpoint_url().is_some()
        || ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
            .iter()
            .any(|v| env(v).is_some_and(|u| !u.trim().is_empty()))
}

/// The interceptor every AWS client carries: counts every attempt (retries included) and, when
/// the run has observers ([`AwsContext::observe`]), has each attempt admitted by them first (an
/// open circuit breaker refuses it at once) and reports it to them after (operation, duration,
/// outcome, AWS's request id). Any SDK client's config builder takes it
/// (`.interceptor(counter.clone())`); get one from [`AwsContext::counter_for`] so it knows the
/// account and region it counts for.
#[derive(Debug, Clone)]
pub struct CallCounter {
    count: Arc<AtomicU64>,
    observed: Option<Arc<Observed>>,
    /// How the calls of the clients it counts for are retried ([`CallCounter::send`]).
    retry: Policy,
    /// The account and region's limiters ([`crate::pacing`]), shared with every other
    /// counter of the same account and region; `None`: not paced.
    paced: Option<Arc<Paced>>,
}

/// Where a counter's calls are paced.
#[derive(Debug)]
struct Paced {
    pacing: Arc<crate::pacing::Pacing>,
    account: String,
    region: String,
}

impl Default for CallCounter {
    fn default() -> Self {
        CallCounter {
            count: Arc::default(),
            observed: None,
            retry: default_policy(AWS_MAX_ATTEMPTS),
            paced: None,
        }
    }
}

/// The retry policy of AWS calls with `max_attempts`: the deadline is [`OPERATION_TIMEOUT`].
fn default_policy(max_attempts: u32) -> Policy {
    Policy::new(max_attempts).with_deadline(OPERATION_TIMEOUT)
}

/// An AWS call that failed after the retry layer gave up: the SDK's error of the last attempt
/// (its code is what callers match on: [`error_code`]) and what the call took. A service's
/// `error.rs` maps it to an engine error ([`map_error`]).
#[derive(Debug)]
pub struct Failed<E, R = HttpResponse> {
    pub sdk: SdkError<E, R>,
    /// The API operation (`CreateSecret`).
    pub operation: &'static str,
    pub attempts: u32,
    pub elapsed: Duration,
    /// Ours, the same for every attempt (AWS's own, per attempt, is in the message).
    pub request_id: String,
}

/// What an AWS call gives after the retry layer.
pub type Sent<T, E> = std::result::Result<T, Failed<E>>;

#[derive(Debug)]
struct Observed {
    observers: Observers,
    /// The account (from the role ARN) or `default`.
    account: String,
    region: String,
}

/// What the interceptor keeps per operation (all its attempts) in the config bag.
#[derive(Debug, Clone)]
struct CallState {
    request_id: String,
    attempt: u32,
    started: std::time::Instant,
    pagination: bool,
    /// The observers refused this attempt: it was not sent.
    refused: bool,
}

impl aws_smithy_types::config_bag::Storable for CallState {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// AWS error codes that mean "slow down": back-pressure, not failure.
const THROTTLING_CODES: [&str; 7] = [
    "ThrottlingException",
    "TooManyRequestsException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestThrottled",
];

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Makes one AWS call through the retry layer ([`crate::retry::run`]): `call` sends one
    /// attempt (build the request in it: `|| client.get_secret_value().secret_id(n).send()`);
    /// it is sent again while the failure, as `service` maps it, is retryable and the policy
    /// allows. `operation` is the API's name (`GetSecretValue`), for logs and messages.
    pub async fn send<T, E, F, Fut>(
        &self,
        service: &ServiceErrors,
        operation: &'static str,
        mut call: F,
    ) -> Sent<T, E>
    where
        E: OperationError,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
    {
        let limiter = self.paced.as_ref().and_then(|p| {
            p.pacing
                .limiter(&p.account, &p.region, crate::pacing::Kind::of(operation))
        });
        let tried = crate::retry::run(
            &self.retry,
            operation,
            |e: &SdkError<E, HttpResponse>| classify(e, "", service),
            |_| {
                let limiter = limiter.clone();
                let attempt = call();
                async move {
                    let Some(l) = limiter else {
                        return attempt.await;
                    };
                    l.acquire().await;
                    let r = attempt.await;
                    match &r {
                        Ok(_) => l.succeeded(),
                        Err(e) if classify(e, "", service).kind == ErrorKind::Throttled => {
                            l.throttled()
                        }
                        Err(_) => {}
                    }
                    r
                }
            },
        )
        .await;
        tried.result.map_err(|sdk| Failed {
            sdk,
            operation,
            attempts: tried.attempts,
            elapsed: tried.elapsed,
            request_id: tried.request_id,
        })
    }

    /// The retry policy of the calls counted here.
    pub fn retry(&self) -> Policy {
        self.retry
    }

    fn operation(cfg: &ConfigBag) -> (String, String) {
        match cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            Some(m) => (
                m.service().to_lowercase().replace(' ', ""),
                m.name().to_string(),
            ),
            None => ("aws".into(), "unknown".into()),
        }
    }
}

/// How an attempt ended, from its HTTP answer (or its absence).
fn outcome_of(
    resp: Option<&aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> observe::Outcome {
    use observe::Outcome;
    let Some(resp) = resp else {
        return Outcome::Failed; // timed out, or no connection
    };
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Outcome::Ok;
    }
    if status == 429 || status == 503 && resp.headers().get("x-amz-error-code") == Some("SlowDown")
    {
        return Outcome::Throttled;
    }
    let named = |text: &str| THROTTLING_CODES.iter().any(|c| text.contains(c));
    let header = resp.headers().get("x-amzn-errortype").is_some_and(named);
    let body = resp
        .body()
        .bytes()
        .is_some_and(|b| named(&String::from_utf8_lossy(&b[..b.len().min(512)])));
    if header || body {
        return Outcome::Throttled;
    }
    if status >= 500 {
        Outcome::Failed
    } else {
        Outcome::Refused
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "secretsync-call-counter"
    }

    fn read_before_attempt(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let Some(o) = &self.observed else {
            self.count.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let (service, operation) = Self::operation(cfg);
        let mut state = cfg.load::<CallState>().cloned().unwrap_or_else(|| {
            let req = ctx.request();
            let body = req
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).contains("\"NextToken\""))
                .unwrap_or(false);
            // Under the retry layer, each attempt is its own SDK call: the layer says which
            // call and which attempt it is.
            let (request_id, attempt) = crate::retry::current()
                .map(|c| (c.request_id, c.attempt - 1))
                .unwrap_or_else(|| (observe::request_id(), 0));
            CallState {
                request_id,
                attempt,
                started: std::time::Instant::now(),
                pagination: body || req.uri().contains("continuation-token="),
                refused: false,
            }
        });
        state.attempt += 1;
        state.started = std::time::Instant::now();
        let endpoint = Endpoint::aws(&service, &o.account, &o.region);
        let admitted = o.observers.admit(&endpoint, &operation);
        state.refused = admitted.is_err();
        cfg.interceptor_state().store_put(state);
        if admitted.is_ok() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        admitted.map_err(|e| Box::new(e) as aws_smithy_runtime_api::box_error::BoxError)
    }

    fn read_after_attempt(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<
            '_,
        >,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let (Some(o), Some(state)) = (&self.observed, cfg.load::<CallState>()) else {
            return Ok(());
        };
        if state.refused {
            return Ok(());
        }
        let (service, operation) = Self::operation(cfg);
        let endpoint = Endpoint::aws(&service, &o.account, &o.region);
        let resp = ctx.response();
        let aws_id = resp.and_then(|r| {
            r.headers()
                .get("x-amzn-requestid")
                .or_else(|| r.headers().get("x-amz-request-id"))
        });
        o.observers.attempt(&observe::Attempt {
            endpoint: &endpoint,
            operation: &operation,
            request_id: &state.request_id,
            backend_request_id: aws_id,
            attempt: state.attempt,
            elapsed: state.started.elapsed(),
            outcome: outcome_of(resp),
            pagination: state.pagination,
        });
        Ok(())
    }
}

/// What one AWS service's error codes mean, beside those every service shares (throttling,
/// access, credentials, internal failures; [`map_error`] knows them). Each AWS backend has one,
/// in its `error.rs`.
pub struct ServiceErrors {
    /// The service's name in messages (`AWS Secrets Manager`).
    pub name: &'static str,
    /// The kind of a code only this service has; `None`: a shared code, or unknown.
    pub kind: fn(&str) -> Option<ErrorKind>,
    /// What to add to the message for an error of this kind and code (`; grant the role …`),
    /// or `""`. Expired or invalid credentials get theirs from [`map_error`].
    pub hint: fn(ErrorKind, &str) -> &'static str,
}

/// The kind of an error code every AWS service uses.
fn shared_kind(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "ThrottlingException" | "RequestLimitExceeded" => ErrorKind::Throttled,
        "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" => {
            ErrorKind::PermissionDenied
        }
        "ExpiredTokenException" | "InvalidClientTokenId" | "ExpiredToken" => ErrorKind::Auth,
        "InternalFailure" | "ServiceUnavailable" => ErrorKind::Unavailable,
        _ => return None,
    })
}

/// The error of an SDK operation, of any service: what [`map_error`] reads.
pub trait OperationError: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {}

impl<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static> OperationError for E {}

/// Maps a failed call of `service` to ours: `[req=…] <what> failed after 120ms (retries: 2):
/// <Code>: <AWS's message><hint>`, with the call's facts as [`CallFacts`]. `what` says what was
/// being done (`creating prod/db`); the request id shown is AWS's (what AWS support asks for)
/// when it sent one, else ours.
pub fn map_error<E: OperationError>(e: Failed<E>, what: &str, service: &ServiceErrors) -> Error {
    let aws_id = match &e.sdk {
        SdkError::ServiceError(se) => se.err().meta().extra("aws_request_id").map(str::to_string),
        SdkError::ResponseError(re) => re
            .raw()
            .headers()
            .get("x-amzn-requestid")
            .or_else(|| re.raw().headers().get("x-amz-request-id"))
            .map(str::to_string),
        _ => None,
    };
    let shown = aws_id.unwrap_or_else(|| e.request_id.clone());
    let mapped = classify(&e.sdk, "", service);
    // An observer's refusal (an open breaker) reads as it was, after what was being done.
    let cause = mapped.message.trim_start_matches(": ");
    let message = format!(
        "[req={shown}] {what} failed after {}ms (retries: {}): {cause}",
        e.elapsed.as_millis(),
        e.attempts.saturating_sub(1)
    );
    let facts = CallFacts {
        operation: e.operation.to_string(),
        path: String::new(),
        attempts: e.attempts,
        elapsed: e.elapsed,
        request_id: shown,
    };
    Error {
        message,
        call: Some(Box::new(facts)),
        ..mapped
    }
}

/// What an SDK error of `service` is, as an engine error (kind, retryability, message after
/// `what: `): what the retry layer decides on and [`map_error`] reports.
fn classify<E: OperationError>(
    e: &SdkError<E, HttpResponse>,
    what: &str,
    service: &ServiceErrors,
) -> Error {
    // An observer refused the attempt (an open circuit breaker): its error, as it was, and
    // final (no retry either).
    if let Some(mut ours) = refusal(e) {
        ours.retryable = false;
        return ours.context(what);
    }
    let (kind, msg) = match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown");
            let msg = err.message().unwrap_or("");
            // A code nobody maps still has a status: an unnamed 5xx (an emulator's or a
            // proxy's internal error page) is the service being unavailable, a 429 throttling.
            let status = se.raw().status().as_u16();
            let kind = (service.kind)(code)
                .or_else(|| shared_kind(code))
                .unwrap_or(match status {
                    429 => ErrorKind::Throttled,
                    500..=599 if status != 501 => ErrorKind::Unavailable,
                    _ => ErrorKind::Unexpected,
                });
            let code = if err.code().is_none() {
                format!("HTTP {status}")
            } else {
                code.to_string()
            };
            let hint = match kind {
                ErrorKind::Auth => "; refresh the AWS credentials",
                _ => (service.hint)(kind, &code),
            };
            (kind, format!("{code}: {msg}{hint}"))
        }
        SdkError::TimeoutError(_) => (ErrorKind::Unavailable, "request timed out".into()),
        SdkError::DispatchFailure(d) => (
            ErrorKind::Unavailable,
            format!(
                "cannot reach {}: {}",
                service.name,
                d.as_connector_error()
                    .map(|c| aws_smithy_types::error::display::DisplayErrorContext(c).to_string())
                    .unwrap_or_else(|| "no connection".into())
            ),
        ),
        // An answer that could not be read (a cut body, a 5xx page that is not an AWS error).
        SdkError::ResponseError(_) => (
            ErrorKind::Unavailable,
            aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
        ),
        other => (
            ErrorKind::Unexpected,
            aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
        ),
    };
    Error::new(kind, format!("{what}: {msg}"))
}

/// Our own error inside an SDK error: an observer refused an attempt before it was sent.
fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(ours) = err.downcast_ref::<Error>() {
            return Some(ours.clone());
        }
        cur = err.source();
    }
    None
}

/// The error code of a failed call's last attempt, if AWS answered with one.
pub fn error_code<E: ProvideErrorMetadata>(e: &Failed<E>) -> Option<&str> {
    match &e.sdk {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// Checks an AWS backend's error mapping (`map`, from its `error.rs`): each `(code, kind,
/// message)` is a service error of that code with the message `m`, mapped to that kind and
/// message (after `doing: `).
#[cfg(test)]
pub(crate) fn check_error_codes(
    map: fn(Failed<aws_smithy_types::error::ErrorMetadata>, &str) -> Error,
    cases: &[(&str, ErrorKind, &str)],
) {
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    for &(code, kind, message) in cases {
        let err = aws_smithy_types::error::ErrorMetadata::builder()
            .code(code)
            .message("m")
            .build();
        let status = StatusCode::try_from(400).expect("a status");
        let failed = Failed {
            sdk: SdkError::service_error(err, Response::new(status, SdkBody::empty())),
            operation: "Op",
            attempts: 3,
            elapsed: Duration::from_millis(1250),
            request_id: "r1".into(),
        };
        let mapped = map(failed, "doing");
        assert_eq!(
            (mapped.kind, mapped.message.as_str()),
            (
                kind,
                format!("[req=r1] doing failed after 1250ms (retries: 2): {message}").as_str()
            ),
            "{code}"
        );
        let facts = mapped.call.expect("the call's facts");
        assert_eq!(
            (
                facts.operation.as_str(),
                facts.attempts,
                facts.request_id.as_str()
            ),
            ("Op", 3, "r1")
        );
    }
}

/// (role ARN, external id, region).
type RoleKey = (String, Option<String>, String);

/// The base SDK config and a cache of per-role configs.
pub struct AwsContext {
    base: SdkConfig,
    roles: Mutex<HashMap<RoleKey, SdkConfig>>,
    /// Calls made by shared clients (merge store); targets count their own.
    pub calls: CallCounter,
    /// Who sees every call of every client made through [`AwsContext::counter_for`].
    observers: Observers,
    /// S3 clients use path-style addressing only when an endpoint override is set: emulators
    /// on `localhost` cannot serve virtual-hosted buckets, and AWS is retiring path style.
    s3_path_style: bool,
    /// How every call of every client from this context is retried.
    retry: Policy,
    /// The run's limiters, per account, region and kind of call.
    pacing: Arc<crate::pacing::Pacing>,
}

impl AwsContext {
    /// Loads the SDK's default config (credentials chain, region, endpoint overrides) with
    /// `max_attempts` per call (the retry layer's) and [`Timeouts::default`]. Refuses endpoint overrides that would use
    /// plain http to a non-loopback host. `env` is the process environment in production.
    pub async fn load(max_attempts: u32, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        check_endpoint_env(env)?;
        // The SDK's own retries stay on only for what the SDK calls by itself (STS for assumed
        // roles, SSO): every client this context configures has them off ([`config_for`]) and
        // is retried by [`CallCounter::send`].
        let base = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
            .timeout_config(Timeouts::default().config())
            .load()
            .await;
        // The config file can set an endpoint too (`endpoint_url` in a profile).
        if let Some(url) = base.endpoint_url() {
            check_endpoint(url).map_err(|e| {
                Error::config(format!(
                    "the AWS endpoint from the shared config: {e}; use an https:// endpoint (plain http only to loopback)"
                ))
            })?;
        }
        let s3_path_style = s3_endpoint_overridden(env, &base);
        Ok(AwsContext {
            base,
            roles: Mutex::new(HashMap::new()),
            calls: CallCounter {
                retry: default_policy(max_attempts),
                ..CallCounter::default()
            },
            observers: Observers::default(),
            s3_path_style,
            retry: default_policy(max_attempts),
            pacing: Arc::default(),
        })
    }

    /// From an explicit SDK config (tests and embedding), with [`Timeouts::default`] for any
    /// timeout the config does not set.
    pub fn from_sdk_config(base: SdkConfig) -> Self {
        Self::with_timeouts(base, Timeouts::default())
    }

    /// From an explicit SDK config with the given timeouts for any the config does not set.
    pub fn with_timeouts(base: SdkConfig, timeouts: Timeouts) -> Self {
        let tc = match base.timeout_config() {
            Some(set) => {
                let mut tc = set.clone();
                tc.take_defaults_from(&timeouts.config());
                tc
            }
            None => timeouts.config(),
        };
        let s3_path_style = base.endpoint_url().is_some();
        // The config's retry settings say how many attempts a call gets (now made by the retry
        // layer); a config without them gets the default.
        let retry = default_policy(
            base.retry_config()
                .map_or(AWS_MAX_ATTEMPTS, |r| r.max_attempts()),
        );
        AwsContext {
            base: base.to_builder().timeout_config(tc).build(),
            roles: Mutex::new(HashMap::new()),
            calls: CallCounter {
                retry,
                ..CallCounter::default()
            },
            observers: Observers::default(),
            s3_path_style,
            retry,
            pacing: Arc::default(),
        }
    }

    /// Every call made through this context's counters is admitted by and reported to
    /// `observers` (the shared S3 client's too).
    pub fn observe(mut self, observers: Observers) -> Self {
        let region = self
            .base
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "unknown".into());
        self.observers = observers;
        self.calls = self.counter_for(&region, None);
        self
    }

    /// A fresh counter for the clients of one account (the role's, or `default`) and region,
    /// reporting to this context's observers.
    pub fn counter_for(&self, region: &str, role_arn: Option<&str>) -> CallCounter {
        let account = role_arn
            .and_then(|arn| arn.split(':').nth(4))
            .filter(|a| !a.is_empty())
            .unwrap_or("default")
            .to_string();
        let paced = Some(Arc::new(Paced {
            pacing: self.pacing.clone(),
            account: account.clone(),
            region: region.to_string(),
        }));
        if self.observers.is_empty() {
            return CallCounter {
                retry: self.retry,
                paced,
                ..CallCounter::default()
            };
        }
        CallCounter {
            count: Arc::default(),
            observed: Some(Arc::new(Observed {
                observers: self.observers.clone(),
                account,
                region: region.to_string(),
            })),
            retry: self.retry,
            paced,
        }
    }

    /// Config for a region, optionally through an assumed role.
    pub async fn config_for(
        &self,
        region: &str,
        role_arn: Option<&str>,
        external_id: Option<&str>,
    ) -> SdkConfig {
        let Some(role) = role_arn else {
            return self
                .base
                .to_builder()
                .region(Region::new(region.to_string()))
                .retry_config(RetryConfig::disabled())
                .build();
        };
        let key = (
            role.to_string(),
            external_id.map(str::to_string),
            region.to_string(),
        );
        let mut roles = self.roles.lock().await;
        if let Some(c) = roles.get(&key) {
            return c.clone();
        }
        let mut b = AssumeRoleProvider::builder(role)
            .session_name("secretsync")
            .region(Region::new(region.to_string()))
            .configure(&self.base);
        if let Some(id) = external_id {
            b = b.external_id(id);
        }
        let provider = b.build().await;
        let cfg = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()))
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .retry_config(RetryConfig::disabled())
            .build();
        roles.insert(key, cfg.clone());
        cfg
    }

    pub fn s3(&self, cfg: &SdkConfig) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(self.s3_path_style)
            .interceptor(self.calls.clone())
            // Retried by the retry layer ([`CallCounter::send`]), never by the SDK as well.
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// The ARN of who the default credentials are (`GetCallerIdentity`, one STS call): the
    /// author of history records when nothing else names one.
    pub async fn caller_arn(&self) -> Result<String> {
        const STS: ServiceErrors = ServiceErrors {
            name: "AWS STS",
            kind: |_| None,
            hint: |_, _| "",
        };
        let conf = aws_sdk_sts::config::Builder::from(&self.base)
            .interceptor(self.calls.clone())
            .retry_config(RetryConfig::disabled())
            .build();
        let client = aws_sdk_sts::Client::from_conf(conf);
        let out = self
            .calls
            .send(&STS, "GetCallerIdentity", || {
                client.get_caller_identity().send()
            })
            .await
            .map_err(|e| map_error(e, "asking AWS STS who the caller is", &STS))?;
        out.arn().map(str::to_string).ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "AWS STS answered GetCallerIdentity without an ARN",
            )
        })
    }

    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// Whether S3 clients use path-style addressing (only with an endpoint override).
    pub fn s3_path_style(&self) -> bool {
        self.s3_path_style
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    const NONE: ServiceErrors = ServiceErrors {
        name: "Test",
        kind: |_| None,
        hint: |_, _| "",
    };

    fn answered(status: u16, code: Option<&str>) -> SdkError<ErrorMetadata, HttpResponse> {
        let mut b = ErrorMetadata::builder().message("");
        if let Some(c) = code {
            b = b.code(c);
        }
        SdkError::service_error(
            b.build(),
            Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    /// An answer whose code nobody maps is judged by its status: an unnamed 5xx (moto's
    /// internal error page, a proxy's) is retried as unavailable, a 429 as throttling; a 4xx
    /// or a 501 is not retried.
    #[test]
    fn unnamed_errors_are_judged_by_their_status() {
        for (status, code, kind, retryable) in [
            (500, None, ErrorKind::Unavailable, true),
            (503, Some("Unknown"), ErrorKind::Unavailable, true),
            (429, None, ErrorKind::Throttled, true),
            (400, None, ErrorKind::Unexpected, false),
            (501, None, ErrorKind::Unexpected, false),
            // A named code wins over the status.
            (
                500,
                Some("AccessDeniedException"),
                ErrorKind::PermissionDenied,
                false,
            ),
        ] {
            let e = classify(&answered(status, code), "doing", &NONE);
            assert_eq!(
                (e.kind, e.retryable),
                (kind, retryable),
                "{status} {code:?}"
            );
        }
        let e = classify(&answered(500, None), "doing", &NONE);
        assert_eq!(e.message, "doing: HTTP 500: ");
    }
}
