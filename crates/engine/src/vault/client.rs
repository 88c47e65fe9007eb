//! A small Vault/OpenBao HTTP client for what SecretSync needs: login (token, AppRole,
//! Kubernetes), token renewal and re-login, mount lookup, and KV v2 list/read/write.
//! Status codes are interpreted here and nowhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secretsync_core::config::{Sensitive, VaultAuth, VaultSettings, check_vault_address};
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock};
use tracing::{debug, info, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::observe::{self, Endpoint, Observers, Outcome};

/// A Vault API operation: its name in metrics, spans and logs (`kv.list`; never a path) and
/// what it does, for messages (`list secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub name: &'static str,
    pub doing: &'static str,
}

impl Op {
    const fn new(name: &'static str, doing: &'static str) -> Op {
        Op { name, doing }
    }
}

/// Every Vault API operation the client makes.
pub mod ops {
    use super::Op;
    pub const LOGIN: Op = Op::new("auth.login", "log in");
    pub const LOOKUP_SELF: Op = Op::new("auth.lookup-self", "look up the token");
    pub const RENEW_SELF: Op = Op::new("auth.renew-self", "renew the token");
    pub const MOUNT: Op = Op::new("sys.mount", "look up the mount");
    pub const KV_LIST: Op = Op::new("kv.list", "list secrets");
    pub const KV_READ: Op = Op::new("kv.read", "read the secret");
    pub const KV_WRITE: Op = Op::new("kv.write", "write the secret");
    pub const KV_METADATA_READ: Op = Op::new("kv.metadata.read", "read the secret's metadata");
    pub const KV_METADATA_WRITE: Op = Op::new("kv.metadata.write", "write the secret's metadata");
    pub const KV_METADATA_DELETE: Op = Op::new("kv.metadata.delete", "delete the secret");
    pub const KV_DELETE: Op = Op::new("kv.delete", "soft-delete versions of the secret");
    pub const KV_UNDELETE: Op = Op::new("kv.undelete", "undelete versions of the secret");
}

/// What one call (all its attempts) was: for error messages and structured fields.
#[derive(Debug, Clone)]
pub struct CallMeta {
    pub op: Op,
    /// The API path, without the query (never a value).
    pub path: String,
    /// Ours, the same on every attempt.
    pub request_id: String,
    /// Vault's own (`request_id` in its answer; also in its audit log), when it sent one.
    pub vault_request_id: Option<String>,
    pub attempts: u32,
    pub elapsed: Duration,
}

impl CallMeta {
    /// The request id a message shows: Vault's when it answered with one (it is in Vault's
    /// audit log), else ours (it is in our logs).
    pub fn shown_id(&self) -> &str {
        self.vault_request_id.as_deref().unwrap_or(&self.request_id)
    }

    /// `e` as the user reads it: `[req=…] failed to list secrets at path "secret/metadata/app"
    /// after 1250ms (retries: 2): <e>`.
    pub fn fail(&self, e: Error) -> Error {
        let head = format!(
            "[req={}] failed to {} at path \"{}\" after {}ms (retries: {})",
            self.shown_id(),
            self.op.doing,
            self.path,
            self.elapsed.as_millis(),
            self.attempts.saturating_sub(1)
        );
        let facts = crate::error::CallFacts {
            operation: self.op.name.to_string(),
            path: self.path.clone(),
            attempts: self.attempts,
            elapsed: self.elapsed,
            request_id: self.shown_id().to_string(),
        };
        Error {
            message: format!("{head}: {}", e.message),
            call: e.call.or_else(|| Some(Box::new(facts))),
            ..e
        }
    }

    /// [`CallMeta::fail`] on the error of `r`, if any.
    pub fn tag<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.fail(e))
    }

    /// [`CallMeta::tag`] on what `interpret` makes of the answer.
    fn judge<T>(&self, interpret: impl FnOnce() -> Result<T>) -> Result<T> {
        self.tag(interpret())
    }
}

/// A failed attempt: what failed, and Vault's request id when it sent one.
struct Failure {
    error: Error,
    vault_request_id: Option<String>,
}

/// One answer: the status, the JSON body (or `null`) and what the call was.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub meta: CallMeta,
}

/// How to log in again when the token expires.
#[derive(Debug, Clone)]
pub enum Login {
    /// A fixed token: it can be renewed, not replaced.
    Token(Sensitive),
    AppRole {
        role_id: Sensitive,
        secret_id: Sensitive,
        mount: String,
    },
    Kubernetes {
        role: String,
        jwt_path: String,
        mount: String,
    },
}

#[derive(Debug)]
struct TokenState {
    token: Sensitive,
    /// When the token expires, if it does.
    expires_at: Option<Instant>,
    ttl: Duration,
    renewable: bool,
}

/// What a KV v2 read found.
pub enum ReadOutcome {
    Found {
        data: serde_json::Map<String, Value>,
        version: u64,
    },
    /// The latest version is soft-deleted or destroyed.
    Deleted { destroyed: bool },
    /// Nothing at that path (it vanished after listing).
    Missing,
}

/// Vault client, cheap to clone.
#[derive(Clone)]
pub struct VaultClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    addr: String,
    namespace: Option<String>,
    login: Login,
    token: RwLock<TokenState>,
    relogin: Mutex<()>,
    requests: AtomicU64,
    endpoint: Endpoint,
    observers: Observers,
    retry: crate::retry::Policy,
}

/// Percent-encodes a Vault path, keeping `/`.
fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl VaultClient {
    /// Builds a client from settings plus the environment (`VAULT_ADDR`, `VAULT_NAMESPACE`,
    /// `VAULT_TOKEN`, `VAULT_ROLE_ID`/`VAULT_SECRET_ID`), and logs in.
    ///
    /// The environment is only looked at before the first request, so the returned future
    /// does not hold on to it (and is `Send` whatever `env` is).
    pub fn connect(
        settings: &VaultSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> impl std::future::Future<Output = Result<Self>> + Send + use<> {
        Self::connect_observed(settings, env, Observers::default())
    }

    /// [`VaultClient::connect`], with every attempt of every call reported to `observers`
    /// (and admitted by them first).
    pub fn connect_observed(
        settings: &VaultSettings,
        env: &dyn Fn(&str) -> Option<String>,
        observers: Observers,
    ) -> impl std::future::Future<Output = Result<Self>> + Send + use<> {
        Self::connect_with(
            settings,
            env,
            observers,
            crate::retry::Policy::new(crate::retry::VAULT_MAX_ATTEMPTS),
        )
    }

    /// [`VaultClient::connect_observed`], with every call retried by `retry`.
    pub fn connect_with(
        settings: &VaultSettings,
        env: &dyn Fn(&str) -> Option<String>,
        observers: Observers,
        retry: crate::retry::Policy,
    ) -> impl std::future::Future<Output = Result<Self>> + Send + use<> {
        let client = Self::prepare(settings, env, observers, retry);
        async move {
            let client = client?;
            client.login().await?;
            Ok(client)
        }
    }

    /// The client for `settings` and `env`, not logged in yet.
    fn prepare(
        settings: &VaultSettings,
        env: &dyn Fn(&str) -> Option<String>,
        observers: Observers,
        retry: crate::retry::Policy,
    ) -> Result<Self> {
        let addr = settings
            .address
            .clone()
            .or_else(|| env("VAULT_ADDR"))
            .ok_or_else(|| {
                Error::config(
                    "no Vault address: set `vault.address` in the config or export VAULT_ADDR",
                )
            })?;
        check_vault_address(&addr).map_err(|e| {
            Error::config(format!(
                "{e}; use https:// (plain http:// is only accepted for loopback addresses)"
            ))
        })?;
        let namespace = settings
            .namespace
            .clone()
            .or_else(|| env("VAULT_NAMESPACE"))
            .filter(|n| !n.is_empty());
        let login = match &settings.auth {
            Some(VaultAuth::Token(Some(t))) => Login::Token(t.clone()),
            Some(VaultAuth::Token(None)) => Login::Token(Sensitive::new(
                env("VAULT_TOKEN").ok_or_else(|| Error::new(ErrorKind::Auth, "`vault.auth.token` has no token and VAULT_TOKEN is not set; export VAULT_TOKEN"))?,
            )),
            Some(VaultAuth::AppRole { role_id, secret_id, mount }) => Login::AppRole { role_id: role_id.clone(), secret_id: secret_id.clone(), mount: mount.clone() },
            Some(VaultAuth::Kubernetes { role, jwt_path, mount }) => Login::Kubernetes { role: role.clone(), jwt_path: jwt_path.clone(), mount: mount.clone() },
            None => match (env("VAULT_ROLE_ID"), env("VAULT_SECRET_ID"), env("VAULT_TOKEN")) {
                (Some(r), Some(s), _) => Login::AppRole { role_id: Sensitive::new(r), secret_id: Sensitive::new(s), mount: env("VAULT_APPROLE_MOUNT").unwrap_or_else(|| "approle".into()) },
                (_, _, Some(t)) => Login::Token(Sensitive::new(t)),
                _ => {
                    return Err(Error::new(ErrorKind::Auth, "no Vault credentials: export VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID, or configure `vault.auth`"));
                }
            },
        };
        let mut builder = reqwest::Client::builder()
            // Redirects are followed only to the same origin: `X-Vault-Token` must never be
            // sent to another host (reqwest strips standard auth headers, not this one).
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same && attempt.previous().len() < 5 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64);
        if let Some(ca) = &settings.ca_cert {
            builder =
                builder.add_root_certificate(crate::tls::root_certificate("vault.ca_cert", ca)?);
        }
        let http = builder.build().map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot build the HTTP client: {e}"),
            )
        })?;
        let addr = addr.trim_end_matches('/').to_string();
        let client = VaultClient {
            inner: Arc::new(Inner {
                http,
                endpoint: Endpoint::vault(&addr),
                observers,
                retry,
                addr,
                namespace,
                login: login.clone(),
                token: RwLock::new(TokenState {
                    token: Sensitive::new(""),
                    expires_at: None,
                    ttl: Duration::ZERO,
                    renewable: false,
                }),
                relogin: Mutex::new(()),
                requests: AtomicU64::new(0),
            }),
        };
        Ok(client)
    }

    /// Requests sent so far (lists, reads, writes, auth).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The Vault address in use.
    pub fn address(&self) -> &str {
        &self.inner.addr
    }

    /// POSTs a login body to `auth/<mount>/login`; returns the token and the `auth` block.
    async fn login_request(
        &self,
        kind: &str,
        mount: &str,
        body: &Value,
        hint: &str,
    ) -> Result<(Sensitive, Option<Value>)> {
        let r = self
            .raw(
                ops::LOGIN,
                Method::POST,
                &format!("auth/{mount}/login"),
                None,
                Some(body),
            )
            .await?;
        let auth = r
            .meta
            .tag(login_auth(kind, mount, r.status, &r.body, hint))?;
        Ok((
            Sensitive::new(auth["client_token"].as_str().unwrap_or_default()),
            Some(auth),
        ))
    }

    async fn login(&self) -> Result<()> {
        let (token, auth) = match &self.inner.login {
            Login::Token(t) => (t.clone(), None),
            Login::AppRole {
                role_id,
                secret_id,
                mount,
            } => {
                let body = json!({"role_id": role_id.expose(), "secret_id": secret_id.expose()});
                self.login_request("AppRole", mount, &body, "check VAULT_ROLE_ID/VAULT_SECRET_ID (or `vault.auth.approle`) and the auth mount (`vault.auth.approle.mount`, VAULT_APPROLE_MOUNT)").await?
            }
            Login::Kubernetes {
                role,
                jwt_path,
                mount,
            } => {
                let jwt = std::fs::read_to_string(jwt_path).map_err(|e| {
                    Error::new(
                        ErrorKind::Auth,
                        format!(
                            "cannot read the Kubernetes service-account token `{jwt_path}`: {e}"
                        ),
                    )
                })?;
                let body = json!({"role": role, "jwt": jwt.trim()});
                self.login_request("Kubernetes", mount, &body, "check `vault.auth.kubernetes.role`, the service account's binding to that role, the auth mount, and that Vault can reach the Kubernetes API (Vault answers 403 when it cannot)").await?
            }
        };
        // Learn the TTL: from the login response, or by looking the token up.
        let (ttl, renewable) = match auth {
            Some(a) => (
                a["lease_duration"].as_u64().unwrap_or(0),
                a["renewable"].as_bool().unwrap_or(false),
            ),
            None => {
                let r = self
                    .raw(
                        ops::LOOKUP_SELF,
                        Method::GET,
                        "auth/token/lookup-self",
                        Some(&token),
                        None,
                    )
                    .await?;
                let (status, v) = (r.status, r.body);
                if status == StatusCode::FORBIDDEN {
                    return Err(r.meta.fail(Error::new(
                        ErrorKind::Auth,
                        "the Vault token is invalid or expired; export a valid VAULT_TOKEN",
                    )));
                }
                (
                    v["data"]["ttl"].as_u64().unwrap_or(0),
                    v["data"]["renewable"].as_bool().unwrap_or(false),
                )
            }
        };
        let mut st = self.inner.token.write().await;
        st.token = token;
        st.ttl = Duration::from_secs(ttl);
        st.expires_at = (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl));
        st.renewable = renewable;
        info!(address = %self.inner.addr, ttl_seconds = ttl, renewable, "logged in to Vault");
        Ok(())
    }

    /// Renews the token when less than half its TTL is left; logs in again when renewal is
    /// impossible and a login method is configured.
    async fn refresh_if_needed(&self) -> Result<()> {
        let needs = {
            let st = self.inner.token.read().await;
            st.expires_at
                .is_some_and(|exp| exp.saturating_duration_since(Instant::now()) < st.ttl / 2)
        };
        if !needs {
            return Ok(());
        }
        let _guard = self.inner.relogin.lock().await;
        let (token, renewable, still) = {
            let st = self.inner.token.read().await;
            (
                st.token.clone(),
                st.renewable,
                st.expires_at
                    .is_some_and(|exp| exp.saturating_duration_since(Instant::now()) < st.ttl / 2),
            )
        };
        if !still {
            return Ok(()); // another task renewed it
        }
        if renewable {
            let r = self
                .raw(
                    ops::RENEW_SELF,
                    Method::POST,
                    "auth/token/renew-self",
                    Some(&token),
                    Some(&json!({})),
                )
                .await?;
            let (status, v) = (r.status, r.body);
            if status.is_success() {
                let ttl = v["auth"]["lease_duration"].as_u64().unwrap_or(0);
                let mut st = self.inner.token.write().await;
                // Renewal can be capped by the max TTL: if it no longer grows, stop renewing.
                st.renewable = ttl > 0 && Duration::from_secs(ttl) >= st.ttl / 2;
                st.expires_at = (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl));
                debug!(ttl_seconds = ttl, "renewed the Vault token");
                return Ok(());
            }
            warn!(status = status.as_u16(), "could not renew the Vault token");
        }
        if !matches!(self.inner.login, Login::Token(_)) {
            drop(_guard);
            return self.login().await;
        }
        Ok(())
    }

    /// One HTTP exchange, no auth logic, retried by [`crate::retry::run`] on 5xx, 429 and
    /// connection errors. Every attempt is admitted by the observers first (an open circuit
    /// breaker refuses it) and reported to them after. Errors say what failed, where, how long
    /// it took, how many retries were made, and the request id ([`CallMeta::fail`]).
    async fn raw(
        &self,
        op: Op,
        method: Method,
        path: &str,
        token: Option<&Sensitive>,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let url = format!("{}/v1/{}", self.inner.addr, path);
        let tried = crate::retry::run(
            &self.inner.retry,
            op.name,
            |f: &Failure| f.error.clone(),
            |_| self.attempt(op, method.clone(), &url, token, body),
        )
        .await;
        let (result, vault_request_id) = match tried.result {
            Ok((status, body, id)) => (Ok((status, body)), id),
            Err(f) => (Err(f.error), f.vault_request_id),
        };
        let meta = CallMeta {
            op,
            path: path.split('?').next().unwrap_or(path).to_string(),
            request_id: tried.request_id,
            vault_request_id,
            attempts: tried.attempts,
            elapsed: tried.elapsed,
        };
        match result {
            Ok((status, body)) => Ok(Reply { status, body, meta }),
            Err(e) => Err(meta.fail(e)),
        }
    }

    /// One attempt of [`VaultClient::raw`]: the status, the body and Vault's request id, or
    /// what failed (retryable for 5xx but 501, 429, a connection error or a cut answer).
    async fn attempt(
        &self,
        op: Op,
        method: Method,
        url: &str,
        token: Option<&Sensitive>,
        body: Option<&Value>,
    ) -> std::result::Result<(StatusCode, Value, Option<String>), Failure> {
        let obs = &self.inner.observers;
        let current = crate::retry::current();
        let (request_id, attempt) = current
            .map(|c| (c.request_id, c.attempt))
            .unwrap_or_else(|| (observe::request_id(), 1));
        let report = |vault_id: Option<&str>, started: Instant, outcome: Outcome| {
            obs.attempt(&observe::Attempt {
                endpoint: &self.inner.endpoint,
                operation: op.name,
                request_id: &request_id,
                backend_request_id: vault_id,
                attempt,
                elapsed: started.elapsed(),
                outcome,
                pagination: false,
            });
        };
        let fail = |error: Error, vault_request_id: Option<String>| Failure {
            error,
            vault_request_id,
        };
        // A refusal is final: an observer said no (an open breaker), so no retry either.
        obs.admit(&self.inner.endpoint, op.name).map_err(|mut e| {
            e.retryable = false;
            fail(e, None)
        })?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.inner.http.request(method, url);
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t.expose());
        }
        if let Some(ns) = &self.inner.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                report(None, started, Outcome::Failed);
                let retryable = e.is_connect() || e.is_timeout() || e.is_request();
                let mut error = Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot reach Vault at {}: {e}", self.inner.addr),
                );
                error.retryable = retryable;
                return Err(fail(error, None));
            }
        };
        let status = resp.status();
        let resp_location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| l.split('?').next().unwrap_or(l).to_string());
        let transient = status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
            || status == StatusCode::TOO_MANY_REQUESTS;
        let outcome = if status == StatusCode::TOO_MANY_REQUESTS {
            Outcome::Throttled
        } else if transient {
            Outcome::Failed
        } else if status.is_success() || status == StatusCode::NOT_FOUND {
            Outcome::Ok
        } else {
            Outcome::Refused
        };
        let bytes = resp.bytes().await;
        // Strict: a body that is not JSON is an error naming the path, never "nothing
        // there". An empty body stays `null` (the callers check shapes).
        let parsed: std::result::Result<Value, String> = match &bytes {
            Err(e) => Err(format!("reading the answer: {e}")),
            Ok(b) if b.is_empty() => Ok(Value::Null),
            Ok(b) => serde_json::from_slice(b).map_err(|e| {
                format!(
                    "Vault answered {} with a body that is not JSON ({} bytes: {e}); check that `vault.address` points at Vault and not at a proxy or load balancer page",
                    status.as_u16(),
                    b.len()
                )
            }),
        };
        let vault_id = parsed
            .as_ref()
            .ok()
            .and_then(|v| v["request_id"].as_str())
            .map(str::to_string);
        let outcome = match (&parsed, outcome) {
            (Err(_), Outcome::Ok) => Outcome::Failed,
            (_, o) => o,
        };
        report(vault_id.as_deref(), started, outcome);
        if status.is_redirection() {
            let to = resp_location.as_deref().unwrap_or("an unnamed location");
            return Err(fail(
                Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "Vault answered {}, redirecting to {to}; SecretSync follows redirects only within {} (the token must not go elsewhere): point `vault.address` at the active node",
                        status.as_u16(),
                        self.inner.addr
                    ),
                ),
                vault_id,
            ));
        }
        let v = match parsed {
            Ok(v) => v,
            Err(problem) => {
                // A cut answer is worth another attempt; a page that is not JSON is not.
                let kind = if bytes.is_err() || transient {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Unexpected
                };
                return Err(fail(Error::new(kind, problem), vault_id));
            }
        };
        if transient {
            let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                ErrorKind::Throttled
            } else {
                ErrorKind::Unavailable
            };
            return Err(fail(
                Error::new(
                    kind,
                    format!("Vault answered {}: {}", status.as_u16(), vault_errors(&v)),
                ),
                vault_id,
            ));
        }
        Ok((status, v, vault_id))
    }

    /// An authenticated request. On 403, checks whether the token itself is dead; if it is
    /// and a login method exists, logs in again once and retries.
    pub(crate) async fn call(
        &self,
        op: Op,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply> {
        self.refresh_if_needed().await?;
        let token = self.inner.token.read().await.token.clone();
        let mut attempt = 0;
        let reply = loop {
            attempt += 1;
            let r = self
                .raw(op, method.clone(), path, Some(&token), body)
                .await?;
            // A KV mount that is being upgraded to v2 answers 400 for a short while: transient.
            if r.status == StatusCode::BAD_REQUEST
                && attempt < 8
                && vault_errors(&r.body).contains("Upgrading from non-versioned to versioned data")
            {
                tokio::time::sleep(crate::retry::backoff(
                    attempt.min(3),
                    ErrorKind::Unavailable,
                ))
                .await;
                continue;
            }
            break r;
        };
        if reply.status != StatusCode::FORBIDDEN {
            return Ok(reply);
        }
        let lookup = self
            .raw(
                ops::LOOKUP_SELF,
                Method::GET,
                "auth/token/lookup-self",
                Some(&token),
                None,
            )
            .await?;
        if lookup.status != StatusCode::FORBIDDEN {
            return Ok(reply); // the token is fine: a real permission denial
        }
        if matches!(self.inner.login, Login::Token(_)) {
            return Err(reply.meta.fail(Error::new(
                ErrorKind::Auth,
                "the Vault token is invalid or expired; export a valid VAULT_TOKEN (or configure `vault.auth`)",
            )));
        }
        {
            let _guard = self.inner.relogin.lock().await;
            let current = self.inner.token.read().await.token.clone();
            if current == token {
                warn!("the Vault token expired; logging in again");
                drop(_guard);
                self.login().await?;
            }
        }
        let token = self.inner.token.read().await.token.clone();
        self.raw(op, method, path, Some(&token), body).await
    }

    /// Finds the mount that `path` belongs to: returns (mount path with `/`, KV version).
    pub async fn mount_of(&self, path: &str) -> Result<(String, Option<String>)> {
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(
                ops::MOUNT,
                Method::GET,
                &format!(
                    "sys/internal/ui/mounts/{}",
                    encode_path(path.trim_end_matches('/'))
                ),
                None,
            )
            .await?;
        meta.judge(|| {
            match status {
                s if s.is_success() => {
                    let mount = v["data"]["path"].as_str().unwrap_or_default().to_string();
                    let kind = v["data"]["type"].as_str().unwrap_or_default();
                    if mount.is_empty() || kind.is_empty() {
                        return Err(Error::config(format!(
                            "`{path}` is not under any Vault mount; check its `mount:`"
                        )));
                    }
                    if kind != "kv" && kind != "generic" {
                        return Err(Error::config(format!(
                            "`{mount}` is a `{kind}` mount, not KV version 2; point `mount:` at a KV v2 mount"
                        )));
                    }
                    let version = v["data"]["options"]["version"].as_str().map(str::to_string);
                    Ok((mount, version))
                }
                StatusCode::FORBIDDEN => Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "no KV mount at `{path}`, or the token may not see it: check `mount:` and that the token's policy grants a capability on `{path}*`"
                    ),
                )),
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => Err(Error::config(format!(
                    "`{path}` is not under any Vault mount; check `mount:` (Vault said: {})",
                    vault_errors(&v)
                ))),
                s => Err(unexpected(s, "looking up a mount", path, &v)),
            }
        })
    }

    /// Lists one KV v2 folder. `None`: the folder does not exist (404).
    pub async fn list(&self, mount: &str, dir: &str) -> Result<Option<Vec<String>>> {
        let api = format!("{mount}metadata/{dir}");
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(
                ops::KV_LIST,
                Method::GET,
                &format!("{}?list=true", encode_path(&api)),
                None,
            )
            .await?;
        meta.judge(|| {
            match status {
                s if s.is_success() => {
                    let keys = v["data"]["keys"]
                        .as_array()
                        .ok_or_else(|| malformed(status, "listing", &api, "has no `data.keys` list"))?;
                    keys.iter()
                        .map(|x| {
                            x.as_str().map(str::to_string).ok_or_else(|| {
                                malformed(status, "listing", &api, "has a key that is not a string")
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                        .map(Some)
                }
                StatusCode::NOT_FOUND => Ok(None),
                StatusCode::FORBIDDEN => Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "permission denied listing `{mount}{dir}`: the token needs the `list` capability on `{api}*` (an unlistable folder is never treated as empty)"
                    ),
                )),
                s => Err(unexpected(s, "listing", &api, &v)),
            }
        })
    }

    /// Reads the latest version of one KV v2 secret.
    pub async fn read(&self, mount: &str, path: &str) -> Result<ReadOutcome> {
        let api = format!("{mount}data/{path}");
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(ops::KV_READ, Method::GET, &encode_path(&api), None)
            .await?;
        meta.judge(|| {
            match status {
                s if s.is_success() => {
                    let meta = &v["data"]["metadata"];
                    match v["data"]["data"].as_object() {
                        Some(data) => Ok(ReadOutcome::Found {
                            data: data.clone(),
                            version: meta["version"].as_u64().ok_or_else(|| {
                                malformed(status, "reading", &api, "has no `data.metadata.version`")
                            })?,
                        }),
                        // Only a deliberate deletion may come without data; anything else is an
                        // answer we cannot trust.
                        None => match deleted_or_missing(meta) {
                            d @ ReadOutcome::Deleted { .. } => Ok(d),
                            _ => Err(malformed(
                                status,
                                "reading",
                                &api,
                                "has no `data.data` object",
                            )),
                        },
                    }
                }
                StatusCode::NOT_FOUND => Ok(deleted_or_missing(&v["data"]["metadata"])),
                StatusCode::FORBIDDEN => Err(denied("reading", mount, path, "read", &api)),
                s => Err(unexpected(s, "reading", &api, &v)),
            }
        })
    }

    /// Writes one KV v2 secret (used by the Vault merge store and by tests' seeding).
    pub async fn write(
        &self,
        mount: &str,
        path: &str,
        data: &serde_json::Map<String, Value>,
    ) -> Result<()> {
        let api = format!("{mount}data/{path}");
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(
                ops::KV_WRITE,
                Method::POST,
                &encode_path(&api),
                Some(&json!({ "data": data })),
            )
            .await?;
        meta.judge(|| match status {
            s if s.is_success() => Ok(()),
            StatusCode::FORBIDDEN => {
                Err(denied("writing", mount, path, "create` and `update", &api))
            }
            s => Err(unexpected(s, "writing", &api, &v)),
        })
    }
}

impl VaultClient {
    /// Creates a KV v2 secret only if the path has no version yet (check-and-set `0`, atomic
    /// in Vault); `false` when it already has one. Used by the Vault merge store.
    pub async fn create(
        &self,
        mount: &str,
        path: &str,
        data: &serde_json::Map<String, Value>,
    ) -> Result<bool> {
        let api = format!("{mount}data/{path}");
        let body = json!({ "options": { "cas": 0 }, "data": data });
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(ops::KV_WRITE, Method::POST, &encode_path(&api), Some(&body))
            .await?;
        meta.judge(|| match status {
            s if s.is_success() => Ok(true),
            StatusCode::BAD_REQUEST if vault_errors(&v).contains("check-and-set") => Ok(false),
            StatusCode::FORBIDDEN => {
                Err(denied("writing", mount, path, "create` and `update", &api))
            }
            s => Err(unexpected(s, "creating", &api, &v)),
        })
    }

    /// Deletes a KV v2 secret with all its versions and metadata.
    pub async fn delete_all_versions(&self, mount: &str, path: &str) -> Result<()> {
        let api = format!("{mount}metadata/{path}");
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(
                ops::KV_METADATA_DELETE,
                Method::DELETE,
                &encode_path(&api),
                None,
            )
            .await?;
        meta.judge(|| match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            StatusCode::FORBIDDEN => Err(denied("deleting", mount, path, "delete", &api)),
            s => Err(unexpected(s, "deleting", &api, &v)),
        })
    }
}

/// A KV v2 secret's metadata: what a target lists without reading values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvMetadata {
    /// The latest version (0: the path has metadata but no version).
    pub current_version: u64,
    /// The `custom_metadata` string map (empty when Vault says `null`).
    pub custom_metadata: std::collections::BTreeMap<String, String>,
    /// Every version still known, and its state.
    pub versions: std::collections::BTreeMap<u64, KvVersionState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KvVersionState {
    /// Soft-deleted (recoverable with undelete).
    pub deleted: bool,
    pub destroyed: bool,
    /// `created_time`; `None` when Vault gave none this client can read (RFC 3339 in UTC).
    pub created: Option<std::time::SystemTime>,
}

impl KvMetadata {
    /// The state of the latest version; `None` when there is none.
    pub fn current(&self) -> Option<KvVersionState> {
        self.versions.get(&self.current_version).copied()
    }
}

/// What a check-and-set write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written as this version.
    Written(u64),
    /// The path's current version is not the one given (someone else wrote first, or an
    /// earlier attempt of this very write landed): nothing was written by this call.
    Mismatch,
}

impl VaultClient {
    /// Reads one KV v2 secret's metadata (`custom_metadata`, `current_version`, versions);
    /// `None` when the path has none.
    pub async fn read_metadata(&self, mount: &str, path: &str) -> Result<Option<KvMetadata>> {
        let api = format!("{mount}metadata/{path}");
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(ops::KV_METADATA_READ, Method::GET, &encode_path(&api), None)
            .await?;
        meta.judge(|| match status {
            s if s.is_success() => {
                let d = &v["data"];
                let bad = |problem: &str| malformed(status, "reading", &api, problem);
                let current_version = d["current_version"]
                    .as_u64()
                    .ok_or_else(|| bad("has no `data.current_version`"))?;
                let custom_metadata = match &d["custom_metadata"] {
                    Value::Null => Default::default(),
                    Value::Object(m) => m
                        .iter()
                        .map(|(k, v)| {
                            v.as_str()
                                .map(|s| (k.clone(), s.to_string()))
                                .ok_or_else(|| {
                                    bad("has a `custom_metadata` value that is not a string")
                                })
                        })
                        .collect::<Result<_>>()?,
                    _ => return Err(bad("has a `custom_metadata` that is not a map")),
                };
                let mut versions = std::collections::BTreeMap::new();
                if let Some(vs) = d["versions"].as_object() {
                    for (n, st) in vs {
                        let n: u64 = n
                            .parse()
                            .map_err(|_| bad("has a version that is not a number"))?;
                        versions.insert(
                            n,
                            KvVersionState {
                                deleted: st["deletion_time"]
                                    .as_str()
                                    .is_some_and(|t| !t.is_empty()),
                                destroyed: st["destroyed"].as_bool().unwrap_or(false),
                                created: st["created_time"]
                                    .as_str()
                                    .and_then(|t| humantime::parse_rfc3339(t).ok()),
                            },
                        );
                    }
                }
                Ok(Some(KvMetadata {
                    current_version,
                    custom_metadata,
                    versions,
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::FORBIDDEN => {
                Err(denied("reading the metadata of", mount, path, "read", &api))
            }
            s => Err(unexpected(s, "reading", &api, &v)),
        })
    }

    /// Replaces one KV v2 secret's `custom_metadata` (other metadata settings are kept).
    pub async fn write_metadata(
        &self,
        mount: &str,
        path: &str,
        custom: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let api = format!("{mount}metadata/{path}");
        let body = json!({ "custom_metadata": custom });
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(
                ops::KV_METADATA_WRITE,
                Method::POST,
                &encode_path(&api),
                Some(&body),
            )
            .await?;
        meta.judge(|| {
            match status {
                s if s.is_success() => Ok(()),
                StatusCode::FORBIDDEN => Err(denied(
                    "writing the metadata of",
                    mount,
                    path,
                    "create` and `update",
                    &api,
                )),
                // Vault's limits on custom metadata (64 keys, 128-byte keys, 512-byte values).
                StatusCode::BAD_REQUEST => Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "Vault refused the custom metadata of `{mount}{path}`: {}; remove some of its own `custom_metadata` keys (at most 64 keys in all)",
                        vault_errors(&v)
                    ),
                )),
                s => Err(unexpected(s, "writing", &api, &v)),
            }
        })
    }

    /// Writes one KV v2 secret only if its current version is `cas` (0: only if the path has
    /// no version yet). Atomic in Vault.
    pub async fn write_cas(
        &self,
        mount: &str,
        path: &str,
        data: &serde_json::Map<String, Value>,
        cas: u64,
    ) -> Result<CasOutcome> {
        let api = format!("{mount}data/{path}");
        let body = json!({ "options": { "cas": cas }, "data": data });
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(ops::KV_WRITE, Method::POST, &encode_path(&api), Some(&body))
            .await?;
        meta.judge(|| match status {
            s if s.is_success() => v["data"]["version"]
                .as_u64()
                .map(CasOutcome::Written)
                .ok_or_else(|| malformed(status, "writing", &api, "has no `data.version`")),
            StatusCode::BAD_REQUEST if vault_errors(&v).contains("check-and-set") => {
                Ok(CasOutcome::Mismatch)
            }
            StatusCode::FORBIDDEN => {
                Err(denied("writing", mount, path, "create` and `update", &api))
            }
            StatusCode::PAYLOAD_TOO_LARGE => Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "Vault refused `{mount}{path}` as too large: {}",
                    vault_errors(&v)
                ),
            )),
            s => Err(unexpected(s, "writing", &api, &v)),
        })
    }

    /// Reads one version of a KV v2 secret.
    pub async fn read_version(&self, mount: &str, path: &str, version: u64) -> Result<ReadOutcome> {
        let api = format!("{mount}data/{path}");
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(
                ops::KV_READ,
                Method::GET,
                &format!("{}?version={version}", encode_path(&api)),
                None,
            )
            .await?;
        meta.judge(|| match status {
            s if s.is_success() => match v["data"]["data"].as_object() {
                Some(data) => Ok(ReadOutcome::Found {
                    data: data.clone(),
                    version: v["data"]["metadata"]["version"].as_u64().unwrap_or(version),
                }),
                None => match deleted_or_missing(&v["data"]["metadata"]) {
                    d @ ReadOutcome::Deleted { .. } => Ok(d),
                    _ => Err(malformed(
                        status,
                        "reading",
                        &api,
                        "has no `data.data` object",
                    )),
                },
            },
            StatusCode::NOT_FOUND => Ok(deleted_or_missing(&v["data"]["metadata"])),
            StatusCode::FORBIDDEN => Err(denied("reading", mount, path, "read", &api)),
            s => Err(unexpected(s, "reading", &api, &v)),
        })
    }

    /// Soft-deletes versions of a KV v2 secret (recoverable with [`VaultClient::undelete`]).
    pub async fn delete_versions(&self, mount: &str, path: &str, versions: &[u64]) -> Result<()> {
        self.versions_call("delete", mount, path, versions, "soft-deleting")
            .await
    }

    /// Brings soft-deleted versions of a KV v2 secret back.
    pub async fn undelete(&self, mount: &str, path: &str, versions: &[u64]) -> Result<()> {
        self.versions_call("undelete", mount, path, versions, "undeleting")
            .await
    }

    async fn versions_call(
        &self,
        action: &str,
        mount: &str,
        path: &str,
        versions: &[u64],
        what: &str,
    ) -> Result<()> {
        let api = format!("{mount}{action}/{path}");
        let vop = if action == "delete" {
            ops::KV_DELETE
        } else {
            ops::KV_UNDELETE
        };
        let body = json!({ "versions": versions });
        let Reply {
            status,
            body: v,
            meta,
        } = self
            .call(vop, Method::POST, &encode_path(&api), Some(&body))
            .await?;
        meta.judge(|| match status {
            s if s.is_success() => Ok(()),
            StatusCode::FORBIDDEN => Err(denied(what, mount, path, "update", &api)),
            s => Err(unexpected(s, what, &api, &v)),
        })
    }
}

/// A permission denial naming the capability and the API path it is needed on.
fn denied(what: &str, mount: &str, path: &str, capability: &str, api: &str) -> Error {
    let noun = if capability.contains('`') {
        "capabilities"
    } else {
        "capability"
    };
    Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "permission denied {what} `{mount}{path}`: the token needs the `{capability}` {noun} on `{api}`"
        ),
    )
}

/// The `auth` block of a login response, or an error with Vault's status and message (never
/// the credentials).
fn login_auth(kind: &str, mount: &str, status: StatusCode, v: &Value, hint: &str) -> Result<Value> {
    match v.get("auth").filter(|a| a["client_token"].is_string()) {
        Some(a) if status.is_success() => Ok(a.clone()),
        _ => Err(Error::new(
            ErrorKind::Auth,
            format!(
                "{kind} login at `auth/{mount}/login` failed ({}: {}); {hint}",
                status.as_u16(),
                vault_errors(v)
            ),
        )),
    }
}

fn deleted_or_missing(meta: &Value) -> ReadOutcome {
    let destroyed = meta["destroyed"].as_bool().unwrap_or(false);
    let deleted = meta["deletion_time"]
        .as_str()
        .is_some_and(|t| !t.is_empty());
    if destroyed || deleted {
        ReadOutcome::Deleted { destroyed }
    } else {
        ReadOutcome::Missing
    }
}

fn vault_errors(v: &Value) -> String {
    match v["errors"].as_array() {
        Some(errs) if !errs.is_empty() => errs
            .iter()
            .filter_map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no details".into(),
    }
}

/// A success answer whose shape is not what the API documents.
fn malformed(status: StatusCode, what: &str, path: &str, problem: &str) -> Error {
    Error::new(
        ErrorKind::Unexpected,
        format!(
            "Vault answered {} {what} `{path}` but the body {problem}; it is treated as a failure, not as an empty answer (check for a proxy between SecretSync and Vault)",
            status.as_u16()
        ),
    )
}

fn unexpected(status: StatusCode, what: &str, path: &str, v: &Value) -> Error {
    Error::new(
        ErrorKind::Unexpected,
        format!(
            "Vault answered {} {what} `{path}`: {}",
            status.as_u16(),
            vault_errors(v)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(encode_path("secret/data/a b/c%"), "secret/data/a%20b/c%25");
        assert_eq!(encode_path("kv/metadata/x-y_z.~/"), "kv/metadata/x-y_z.~/");
    }
}
