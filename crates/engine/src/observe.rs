//! What every backend call reports, and who listens: the one seam between the clients (the
//! Vault client, the AWS SDK clients through [`crate::aws`]'s interceptor, and the clients of
//! the other target kinds through [`observed`]) and the run's observers (metrics, the circuit
//! breakers, tracing, progress).
//!
//! A client asks [`Observers::admit`] before each attempt (a circuit breaker may refuse it at
//! once) and reports [`Observers::attempt`] after it, with what happened ([`Outcome`]), how long
//! it took and the request ids. Observers never see a secret value or a secret path: the
//! operation is the API's name (`ListSecrets`, `kv.list`), the endpoint names a service, an
//! account and a region (or a Vault address).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// Which backend a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    Vault,
    Aws,
    /// Google Cloud Secret Manager (`gcp_secretmanager` targets).
    Gcp,
    /// Azure Key Vault (`azure_keyvault` targets).
    Azure,
    /// A `webhook` target's receiver.
    Webhook,
    /// A `plugin` target's program.
    Plugin,
}

impl Backend {
    /// The `backend` label of the metrics, and the breaker key's first part.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Vault => "vault",
            Backend::Aws => "aws",
            Backend::Gcp => "gcp",
            Backend::Azure => "azure",
            Backend::Webhook => "webhook",
            Backend::Plugin => "plugin",
        }
    }
}

/// Where a call goes: the backend, the service and its scope. Circuit breakers are kept per
/// [`Endpoint::breaker_key`] (Vault: per address; AWS: per account and region, all its services).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub backend: Backend,
    /// `vault`, the AWS service (`secretsmanager`, `ssm`, `s3`, `sts`), `secretmanager`
    /// (GCP), `keyvault` (Azure), `webhook` or `plugin`.
    pub service: String,
    /// Vault: the address. AWS: `<account>/<region>` (`default/<region>` for the default
    /// credentials, whose account is not looked up). GCP: the project (and location). Azure:
    /// the vault's host. Webhook: the receiver's host. Plugin: the target's name.
    pub scope: String,
}

impl Endpoint {
    pub fn vault(address: &str) -> Endpoint {
        Endpoint {
            backend: Backend::Vault,
            service: "vault".into(),
            scope: address.to_string(),
        }
    }

    pub fn aws(service: &str, account: &str, region: &str) -> Endpoint {
        Endpoint {
            backend: Backend::Aws,
            service: service.to_string(),
            scope: format!("{account}/{region}"),
        }
    }

    /// A Secret Manager project (`my-project`, or `my-project/locations/europe-west1` for
    /// regional secrets).
    pub fn gcp(scope: &str) -> Endpoint {
        Endpoint {
            backend: Backend::Gcp,
            service: "secretmanager".into(),
            scope: scope.to_string(),
        }
    }

    /// A key vault, by its host (`myvault.vault.azure.net`).
    pub fn azure(host: &str) -> Endpoint {
        Endpoint {
            backend: Backend::Azure,
            service: "keyvault".into(),
            scope: host.to_string(),
        }
    }

    /// A webhook receiver, by its host and port only (a URL's path can be its credential).
    pub fn webhook(host: &str) -> Endpoint {
        Endpoint {
            backend: Backend::Webhook,
            service: "webhook".into(),
            scope: host.to_string(),
        }
    }

    /// A plugin program, by the target that runs it.
    pub fn plugin(target: &str) -> Endpoint {
        Endpoint {
            backend: Backend::Plugin,
            service: "plugin".into(),
            scope: target.to_string(),
        }
    }

    /// The circuit breaker this call counts against, as shown in messages and in the
    /// `service` label of `secretsync_circuit_breaker_state`: `vault/<address>` (the source
    /// Vault and a `vault_kv2` target's Vault are separate services),
    /// `aws/<account>/<region>`, `gcp/<project>`, `azure/<vault host>`, `webhook/<host>`,
    /// `plugin/<target>`.
    pub fn breaker_key(&self) -> String {
        format!("{}/{}", self.backend.label(), self.scope)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            Backend::Vault => write!(f, "Vault at {}", self.scope),
            Backend::Aws => write!(f, "AWS {} in {}", self.service, self.scope),
            Backend::Gcp => write!(f, "Secret Manager in {}", self.scope),
            Backend::Azure => write!(f, "Key Vault {}", self.scope),
            Backend::Webhook => write!(f, "the webhook receiver at {}", self.scope),
            Backend::Plugin => write!(f, "the plugin of target `{}`", self.scope),
        }
    }
}

/// How one attempt ended, as far as the observers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer the client could use (2xx; for Vault also 404 on a read or list).
    Ok,
    /// Throttled (429, AWS throttling codes): back-pressure, never a breaker failure.
    Throttled,
    /// The service failed: 5xx, a connection error, a timeout. Counts towards opening the
    /// breaker.
    Failed,
    /// The service answered, but no (4xx other than throttling: denied, not found, conflict).
    /// Not the service's fault: never opens the breaker.
    Refused,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
        }
    }

    /// An error for the `*_errors_total` counters.
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Ok)
    }
}

/// One attempt of one call, after it ended.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub endpoint: &'a Endpoint,
    /// The API's operation name (`ListSecrets`, `kv.read`): never a path.
    pub operation: &'a str,
    /// This call's request id (ours; the same on every attempt of one call).
    pub request_id: &'a str,
    /// The backend's own request id, when it sent one (AWS `x-amzn-RequestId`).
    pub backend_request_id: Option<&'a str>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub elapsed: Duration,
    pub outcome: Outcome,
    /// The call fetched a further page of a listing.
    pub pagination: bool,
}

/// Someone who wants to know about calls. Every method has a no-op default.
pub trait Observer: Send + Sync {
    /// Before an attempt: `Err` refuses it at once (an open circuit breaker), with an error
    /// that names the service, the last failure and when it will be tried again.
    fn admit(&self, _endpoint: &Endpoint, _operation: &str) -> Result<(), Error> {
        Ok(())
    }
    /// After an attempt.
    fn attempt(&self, _a: &Attempt<'_>) {}
}

/// The run's observers; cheap to clone, empty by default (then every call is a no-op).
#[derive(Clone, Default)]
pub struct Observers(Arc<Vec<Arc<dyn Observer>>>);

impl Observers {
    pub fn new(list: Vec<Arc<dyn Observer>>) -> Observers {
        Observers(Arc::new(list))
    }

    pub fn admit(&self, endpoint: &Endpoint, operation: &str) -> Result<(), Error> {
        self.0.iter().try_for_each(|o| o.admit(endpoint, operation))
    }

    pub fn attempt(&self, a: &Attempt<'_>) {
        for o in self.0.iter() {
            o.attempt(a);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}

/// The host (and port, when the URL gives one) of `url`: what an endpoint of a URL is named by,
/// never its path (a hook's path can be its credential) or its credentials.
pub fn url_host(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// One attempt of a call made by a client without an interceptor of its own (the GCP, Azure,
/// webhook and plugin targets): admitted by `observers` first — a refusal (an open breaker) is
/// returned as `Err`, not retryable, and `call` is never polled — then timed and reported with
/// the outcome `judge` gives its result. Under [`crate::retry::run`], every attempt of one call
/// is reported under that call's request id and attempt number.
pub async fn observed<T, E, Fut>(
    observers: &Observers,
    endpoint: &Endpoint,
    operation: &str,
    judge: impl FnOnce(&Result<T, E>) -> Outcome,
    call: Fut,
) -> Result<Result<T, E>, Error>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    if observers.is_empty() {
        return Ok(call.await);
    }
    observers.admit(endpoint, operation).map_err(|mut e| {
        e.retryable = false;
        e
    })?;
    let (request_id, attempt) = crate::retry::current()
        .map(|c| (c.request_id, c.attempt))
        .unwrap_or_else(|| (request_id(), 1));
    let started = std::time::Instant::now();
    let result = call.await;
    observers.attempt(&Attempt {
        endpoint,
        operation,
        request_id: &request_id,
        backend_request_id: None,
        attempt,
        elapsed: started.elapsed(),
        outcome: judge(&result),
        pagination: false,
    });
    Ok(result)
}

/// The outcome of an attempt that ended in an engine error: throttled; failed when the service
/// was unavailable (5xx, no connection, a timeout); refused otherwise (the service answered no).
pub fn outcome_of_error(e: &Error) -> Outcome {
    match e.kind {
        crate::error::ErrorKind::Throttled => Outcome::Throttled,
        crate::error::ErrorKind::Unavailable => Outcome::Failed,
        _ => Outcome::Refused,
    }
}

/// A new request id: 16 hex characters, unique enough to find one call in the logs.
pub fn request_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl Observer for Record {
        fn admit(&self, e: &Endpoint, op: &str) -> Result<(), Error> {
            if op == "refused" {
                return Err(Error::new(
                    crate::error::ErrorKind::Unavailable,
                    format!("{} is open", e.breaker_key()),
                ));
            }
            Ok(())
        }
        fn attempt(&self, a: &Attempt<'_>) {
            self.0.lock().unwrap().push(format!(
                "{} {} {} {}",
                a.endpoint.breaker_key(),
                a.operation,
                a.attempt,
                a.outcome.label()
            ));
        }
    }

    #[test]
    fn observers_see_every_attempt_and_can_refuse() {
        let r = Arc::new(Record::default());
        let obs = Observers::new(vec![r.clone()]);
        let e = Endpoint::aws("secretsmanager", "123456789012", "us-east-1");
        assert!(obs.admit(&e, "ListSecrets").is_ok());
        let err = obs.admit(&e, "refused").unwrap_err();
        assert_eq!(err.message, "aws/123456789012/us-east-1 is open");
        obs.attempt(&Attempt {
            endpoint: &e,
            operation: "ListSecrets",
            request_id: &request_id(),
            backend_request_id: Some("abc"),
            attempt: 2,
            elapsed: Duration::from_millis(5),
            outcome: Outcome::Throttled,
            pagination: true,
        });
        assert_eq!(
            *r.0.lock().unwrap(),
            ["aws/123456789012/us-east-1 ListSecrets 2 throttled"]
        );
        assert_eq!(
            Endpoint::vault("http://127.0.0.1:8200").breaker_key(),
            "vault/http://127.0.0.1:8200"
        );
        assert_eq!(request_id().len(), 16);
        assert!(Observers::default().admit(&e, "refused").is_ok());
    }

    #[tokio::test]
    async fn observed_admits_then_reports_each_attempt_under_its_call() {
        let r = Arc::new(Record::default());
        let obs = Observers::new(vec![r.clone()]);
        let e = Endpoint::gcp("my-project");
        assert_eq!(e.breaker_key(), "gcp/my-project");
        let judge = |r: &Result<u8, &str>| match r {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Failed,
        };
        // Two attempts of one call through the retry layer: both reported, numbered.
        let policy = crate::retry::Policy::new(2);
        let tried = crate::retry::run(
            &policy,
            "AddSecretVersion",
            |_: &Error| Error::new(crate::error::ErrorKind::Unavailable, "down"),
            |n| {
                let obs = obs.clone();
                let e = e.clone();
                async move {
                    let attempt = async move { if n == 1 { Err("down") } else { Ok(7) } };
                    match observed(&obs, &e, "AddSecretVersion", judge, attempt).await {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(_)) => Err(Error::new(crate::error::ErrorKind::Unavailable, "down")),
                        Err(refused) => Err(refused),
                    }
                }
            },
        )
        .await;
        assert_eq!(tried.result.unwrap(), 7);
        assert_eq!(
            *r.0.lock().unwrap(),
            [
                "gcp/my-project AddSecretVersion 1 failed",
                "gcp/my-project AddSecretVersion 2 ok"
            ]
        );
        // A refusal is not retryable and the call is never made.
        let made = std::sync::atomic::AtomicBool::new(false);
        let refused = observed(&obs, &e, "refused", judge, async {
            made.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(1)
        })
        .await
        .unwrap_err();
        assert!(!refused.retryable);
        assert!(!made.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(r.0.lock().unwrap().len(), 2);
        // Without observers the call is simply made.
        let plain = observed(&Observers::default(), &e, "refused", judge, async { Ok(3) }).await;
        assert_eq!(plain.unwrap().unwrap(), 3);
    }

    #[test]
    fn each_destination_has_its_breaker_key_and_never_a_url_path() {
        assert_eq!(
            Endpoint::azure("v.vault.azure.net").breaker_key(),
            "azure/v.vault.azure.net"
        );
        assert_eq!(
            Endpoint::webhook("hooks.example:8443").breaker_key(),
            "webhook/hooks.example:8443"
        );
        assert_eq!(Endpoint::plugin("custom").breaker_key(), "plugin/custom");
        assert_eq!(
            url_host("https://user:pw@hooks.example:8443/path-credential?q=1").as_deref(),
            Some("hooks.example:8443")
        );
        assert_eq!(
            url_host("https://v.vault.azure.net/").as_deref(),
            Some("v.vault.azure.net")
        );
        assert_eq!(url_host("not a url"), None);
        assert_eq!(
            Endpoint::plugin("custom").to_string(),
            "the plugin of target `custom`"
        );
        assert_eq!(
            outcome_of_error(&Error::new(crate::error::ErrorKind::Throttled, "x")),
            Outcome::Throttled
        );
        assert_eq!(
            outcome_of_error(&Error::new(crate::error::ErrorKind::PermissionDenied, "x")),
            Outcome::Refused
        );
        assert_eq!(
            outcome_of_error(&Error::new(crate::error::ErrorKind::Unavailable, "x")),
            Outcome::Failed
        );
    }
}
