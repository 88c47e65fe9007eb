//! What every backend call reports, and who listens: the one seam between the clients (the
//! Vault client, the AWS SDK clients through [`crate::aws`]'s interceptor) and the run's
//! observers (metrics, the circuit breakers, tracing, progress).
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
}

/// Where a call goes: the backend, the service and its scope. Circuit breakers are kept per
/// [`Endpoint::breaker_key`] (Vault: per address; AWS: per account and region, all its services).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub backend: Backend,
    /// `vault`, or the AWS service (`secretsmanager`, `ssm`, `s3`, `sts`).
    pub service: String,
    /// Vault: the address. AWS: `<account>/<region>` (`default/<region>` for the default
    /// credentials, whose account is not looked up).
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

    /// The circuit breaker this call counts against, as shown in messages and in the
    /// `service` label of `secretsync_circuit_breaker_state`: `vault/<address>` (the source
    /// Vault and a `vault_kv2` target's Vault are separate services),
    /// `aws/<account>/<region>`.
    pub fn breaker_key(&self) -> String {
        match self.backend {
            Backend::Vault => format!("vault/{}", self.scope),
            Backend::Aws => format!("aws/{}", self.scope),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            Backend::Vault => write!(f, "Vault at {}", self.scope),
            Backend::Aws => write!(f, "AWS {} in {}", self.service, self.scope),
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
}
