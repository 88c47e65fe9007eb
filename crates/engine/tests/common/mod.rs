//! Shared helpers for integration tests against the real local OpenBao server
//! (`scripts/servers.sh start`, then `source .servers/env`).
//!
//! * [`Bao::from_env`] reads `SECRETSYNC_TEST_VAULT_ADDR` and `SECRETSYNC_TEST_VAULT_TOKEN` and
//!   panics with a clear message when they are missing: these tests never skip silently.
//! * [`unique`] gives every test its own names (mounts, policies, auth paths), so tests are
//!   independent of each other and of earlier runs against the same server.
//! * Seeding goes through the plain HTTP API with the root token, never through the code
//!   under test.
//! * [`LogCapture`] records the engine's log events, so a test can check what was logged
//!   (and that no secret value was).

#![allow(dead_code)] // each test binary uses a different subset of the helpers

pub mod aws;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use reqwest::{Method, StatusCode};
use secretsync_core::config::{
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_SECRETS, Sensitive, SourceConfig, TargetPolicy, VaultAuth,
    VaultSettings,
};
use secretsync_core::diff::{ChangeKind, TargetPlan};
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_engine::vault::VaultClient;

/// Reads a source (never cancelled) and insists the read was complete: most tests expect
/// one. Tests of gaps call `secretsync_engine::vault::read_source` directly.
#[allow(dead_code)]
pub async fn read_source(
    client: &VaultClient,
    source: &SourceConfig,
    concurrency: usize,
) -> Result<secretsync_core::secret::Bundle, secretsync_engine::Error> {
    let read = secretsync_engine::vault::read_source(
        client,
        source,
        concurrency,
        &secretsync_engine::cancel::Cancel::default(),
    )
    .await?;
    assert!(read.is_complete(), "unexpected gaps: {:?}", read.incomplete);
    Ok(read.secrets)
}
use serde_json::{Value, json};

const ADDR_VAR: &str = "SECRETSYNC_TEST_VAULT_ADDR";
const TOKEN_VAR: &str = "SECRETSYNC_TEST_VAULT_TOKEN";

/// A complete desired state from `(relative path, JSON object)` pairs.
pub fn bundle(items: &[(&str, Value)]) -> Collected {
    Collected::complete(
        items
            .iter()
            .map(|(p, v)| {
                let obj = v.as_object().expect("a secret is a JSON object").clone();
                (p.to_string(), SecretValue::new(obj))
            })
            .collect(),
    )
}

/// Kind of change per relative path.
pub fn kinds(plan: &TargetPlan) -> BTreeMap<String, ChangeKind> {
    plan.changes
        .iter()
        .map(|c| (c.path.clone(), c.kind))
        .collect()
}

/// The target tests' policy for `prefix`: orphans deleted (at most 10, any fraction), one write
/// at a time (in plan order), no pacing to speak of.
pub fn policy(prefix: &str) -> TargetPolicy {
    TargetPolicy {
        secret_prefix: prefix.into(),
        delete_orphans: true,
        max_deletes: 10,
        max_delete_fraction: 1.0,
        concurrency: 1,
        writes_per_second: 1000,
        ..TargetPolicy::default()
    }
}

/// A name no other test (or earlier run) uses: `<prefix><12 hex digits>`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

/// Admin access to the local OpenBao server with the root token.
#[derive(Clone)]
pub struct Bao {
    pub addr: String,
    pub root: String,
    http: reqwest::Client,
}

impl Bao {
    /// Reads the server address and root token from the environment; panics when unset.
    pub fn from_env() -> Bao {
        Bao::from_vars(ADDR_VAR, TOKEN_VAR)
    }

    /// The second local OpenBao server (the destination of `vault_kv2` targets), from
    /// `SECRETSYNC_TEST_VAULT2_ADDR` and `SECRETSYNC_TEST_VAULT2_TOKEN`; panics when unset.
    pub fn second_from_env() -> Bao {
        Bao::from_vars(
            "SECRETSYNC_TEST_VAULT2_ADDR",
            "SECRETSYNC_TEST_VAULT2_TOKEN",
        )
    }

    fn from_vars(addr_var: &str, token_var: &str) -> Bao {
        let get = |name: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => panic!(
                "{name} is not set: these integration tests need the local OpenBao servers. \
                 Run `scripts/test.sh`, or `scripts/servers.sh start && source .servers/env` \
                 before `cargo test`"
            ),
        };
        Bao {
            addr: get(addr_var).trim_end_matches('/').to_string(),
            root: get(token_var),
            http: reqwest::Client::new(),
        }
    }

    /// One request with `token`; returns the status and the JSON body (`null` when empty).
    pub async fn request_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}/v1/{path}", self.addr);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: cannot reach OpenBao: {e}"));
        let status = resp.status();
        let bytes = resp.bytes().await.expect("reading the OpenBao response");
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, v)
    }

    /// A root request that must succeed; returns the body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self
            .request_as(&self.root, method.clone(), path, body)
            .await;
        assert!(
            status.is_success(),
            "{method} /v1/{path} answered {status}: {v}"
        );
        v
    }

    /// Enables a KV version 2 secrets engine at `path` (may contain `/`) and waits until it
    /// serves requests: a fresh KV v2 mount answers 400 "Upgrading from non-versioned to
    /// versioned data" for a moment after it is enabled.
    pub async fn enable_kv2(&self, path: &str) {
        let mount = path.trim_end_matches('/');
        self.ok(
            Method::POST,
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, v) = self
                .request_as(
                    &self.root,
                    Method::GET,
                    &format!("{mount}/metadata/?list=true"),
                    None,
                )
                .await;
            // An empty mount lists as 404.
            if status == StatusCode::NOT_FOUND || status.is_success() {
                return;
            }
            assert!(
                status == StatusCode::BAD_REQUEST && v.to_string().contains("Upgrading"),
                "new mount `{mount}` answered {status}: {v}"
            );
            assert!(
                Instant::now() < deadline,
                "new mount `{mount}` was still upgrading after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes one version of a secret (`mount` without trailing `/`, `path` below it).
    pub async fn put(&self, mount: &str, path: &str, data: Value) {
        assert!(data.is_object(), "a KV secret is a JSON object");
        self.ok(
            Method::POST,
            &format!("{}/data/{path}", mount.trim_end_matches('/')),
            Some(json!({ "data": data })),
        )
        .await;
    }

    /// Writes many secrets with `concurrency` requests in flight.
    pub async fn put_many(&self, mount: &str, secrets: Vec<(String, Value)>, concurrency: usize) {
        stream::iter(secrets)
            .for_each_concurrent(concurrency, |(path, data)| async move {
                self.put(mount, &path, data).await;
            })
            .await;
    }

    /// Soft-deletes the latest version of a secret.
    pub async fn delete_latest(&self, mount: &str, path: &str) {
        self.ok(
            Method::DELETE,
            &format!("{}/data/{path}", mount.trim_end_matches('/')),
            None,
        )
        .await;
    }

    /// Destroys the given versions of a secret.
    pub async fn destroy(&self, mount: &str, path: &str, versions: &[u64]) {
        self.ok(
            Method::PUT,
            &format!("{}/destroy/{path}", mount.trim_end_matches('/')),
            Some(json!({ "versions": versions })),
        )
        .await;
    }

    /// Creates or replaces an ACL policy.
    pub async fn put_policy(&self, name: &str, hcl: &str) {
        self.ok(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await;
    }

    /// Creates a token (`body` as for `auth/token/create`); returns the client token.
    pub async fn create_token(&self, body: Value) -> String {
        let v = self.ok(Method::POST, "auth/token/create", Some(body)).await;
        v["auth"]["client_token"]
            .as_str()
            .unwrap_or_else(|| panic!("auth/token/create returned no token: {v}"))
            .to_string()
    }

    /// A non-expiring token with only `policies` (plus `default`).
    pub async fn token_with_policies(&self, policies: &[&str]) -> String {
        self.create_token(json!({ "policies": policies, "ttl": "1h" }))
            .await
    }

    /// Looks a token up with the root token: `Some(data)` while it is valid, `None` once it
    /// is not.
    pub async fn lookup(&self, token: &str) -> Option<Value> {
        let (status, v) = self
            .request_as(
                &self.root,
                Method::POST,
                "auth/token/lookup",
                Some(json!({ "token": token })),
            )
            .await;
        status.is_success().then(|| v["data"].clone())
    }

    /// Enables AppRole at `auth_mount`, creates `role` with `policies`, and returns its
    /// (role_id, secret_id).
    pub async fn approle(
        &self,
        auth_mount: &str,
        role: &str,
        policies: &[&str],
    ) -> (String, String) {
        self.ok(
            Method::POST,
            &format!("sys/auth/{auth_mount}"),
            Some(json!({ "type": "approle" })),
        )
        .await;
        self.ok(
            Method::POST,
            &format!("auth/{auth_mount}/role/{role}"),
            Some(json!({ "token_policies": policies, "token_ttl": "10m", "token_max_ttl": "30m" })),
        )
        .await;
        let v = self
            .ok(
                Method::GET,
                &format!("auth/{auth_mount}/role/{role}/role-id"),
                None,
            )
            .await;
        let role_id = v["data"]["role_id"].as_str().expect("role_id").to_string();
        let v = self
            .ok(
                Method::POST,
                &format!("auth/{auth_mount}/role/{role}/secret-id"),
                Some(json!({})),
            )
            .await;
        let secret_id = v["data"]["secret_id"]
            .as_str()
            .expect("secret_id")
            .to_string();
        (role_id, secret_id)
    }

    /// Enables Kubernetes auth at `auth_mount` and points it at `kubernetes_host` (a stand-in
    /// for the Kubernetes API: OpenBao validates every login JWT with a TokenReview there).
    /// The login JWT itself is sent as the reviewer's bearer token (`disable_local_ca_jwt`,
    /// no `token_reviewer_jwt`); the CA is required by the config but unused over `http://`.
    pub async fn kubernetes_auth(&self, auth_mount: &str, kubernetes_host: &str) {
        self.ok(
            Method::POST,
            &format!("sys/auth/{auth_mount}"),
            Some(json!({ "type": "kubernetes" })),
        )
        .await;
        self.ok(
            Method::POST,
            &format!("auth/{auth_mount}/config"),
            Some(json!({
                "kubernetes_host": kubernetes_host,
                "kubernetes_ca_cert": UNUSED_KUBERNETES_CA,
                "disable_local_ca_jwt": true,
            })),
        )
        .await;
    }

    /// Creates Kubernetes auth `role` at `auth_mount`, bound to the service accounts `names`
    /// in `namespaces`, issuing tokens with `policies`.
    pub async fn kubernetes_role(
        &self,
        auth_mount: &str,
        role: &str,
        names: &[&str],
        namespaces: &[&str],
        policies: &[&str],
    ) {
        self.ok(
            Method::POST,
            &format!("auth/{auth_mount}/role/{role}"),
            Some(json!({
                "bound_service_account_names": names,
                "bound_service_account_namespaces": namespaces,
                "token_policies": policies,
                "token_ttl": "10m",
                "token_max_ttl": "30m",
            })),
        )
        .await;
    }

    /// Settings for a client that logs in with `token`.
    pub fn token_settings(&self, token: &str) -> VaultSettings {
        VaultSettings {
            address: Some(self.addr.clone()),
            namespace: None,
            auth: Some(VaultAuth::Token(Some(Sensitive::new(token)))),
            concurrency: 8,
            ca_cert: None,
        }
    }

    /// A client logged in with `token`.
    pub async fn client(&self, token: &str) -> VaultClient {
        VaultClient::connect(&self.token_settings(token), &no_env)
            .await
            .unwrap_or_else(|e| panic!("connecting to OpenBao at {}: {e}", self.addr))
    }

    /// A client logged in with the root token.
    pub async fn root_client(&self) -> VaultClient {
        self.client(&self.root.clone()).await
    }
}

/// A self-signed certificate (its key was thrown away) for `kubernetes_ca_cert`, which
/// OpenBao requires with `disable_local_ca_jwt` even when the Kubernetes API is plain http.
const UNUSED_KUBERNETES_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIUOOtDTz3Abb7MLmDDsNkn/DCo2qAwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZc2VjcmV0c3luYy10ZXN0LXVudXNlZC1jYTAgFw0yNjExMjkx
MDE0MDhaGA8yMTI2MTEwNTEwMTQwOFowJDEiMCAGA1UEAwwZc2VjcmV0c3luYy10
ZXN0LXVudXNlZC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGP7Iit1d8DH
B/akfqKpI+4EM+eJ8oueU2gHfEi9yCxcs5oPtaz9EVXm2LvAJZpDg/wKyA5llfoP
DjXX7CIH6EyjUzBRMB0GA1UdDgQWBBT4I0Csmf1VA9uD8jRrvJkP/VZGizAfBgNV
HSMEGDAWgBT4I0Csmf1VA9uD8jRrvJkP/VZGizAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0gAMEUCIQDZc89qi+L9o2oM8K5VtmyTs5ND07FxRfkSDahllXT9
xAIgYoqLVq/lce/hWIjbvRS2GTsV/0E/Hd3h/r/lXpYl8Wk=
-----END CERTIFICATE-----
";

/// An environment with nothing in it: the settings say everything.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// A source with the config defaults for `mount` (which must end in `/`).
pub fn source(name: &str, mount: &str) -> SourceConfig {
    assert!(mount.ends_with('/'), "source mounts end in `/`: {mount}");
    SourceConfig {
        name: name.into(),
        mount: mount.into(),
        max_secrets: DEFAULT_MAX_SECRETS,
        queue_compaction_threshold: DEFAULT_MAX_SECRETS / 100,
        max_depth: DEFAULT_MAX_DEPTH,
    }
}

/// Log events recorded while a [`LogCapture`] guard is alive on this thread (the default
/// `#[tokio::test]` runtime polls every task on the test's thread).
pub struct LogCapture {
    events: Arc<Mutex<Vec<String>>>,
    _guard: tracing::dispatcher::DefaultGuard,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        let events = Arc::new(Mutex::new(Vec::new()));
        let dispatch = tracing::Dispatch::new(Recorder {
            events: events.clone(),
        });
        LogCapture {
            events,
            _guard: tracing::dispatcher::set_default(&dispatch),
        }
    }

    /// Every event so far, one line each: `LEVEL message field=value ...`.
    pub fn lines(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
}

struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!(" {value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.events.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Reads one HTTP/1.1 request (headers and a `Content-Length` or chunked body) from a test
/// server's connection; `None` when the peer closes first.
pub async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    secretsync_test_support::http::read_request(s).await
}
