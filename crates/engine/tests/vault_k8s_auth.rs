//! Kubernetes service-account login against a real OpenBao server.
//!
//! OpenBao's `kubernetes` auth method checks every login JWT with the Kubernetes TokenReview
//! API at `kubernetes_host`. There is no Kubernetes here, so each test runs a tiny stand-in for
//! that one endpoint on a loopback port: it knows which tokens belong to which service account
//! and answers `authenticated: false` for any other. Everything else is the real OpenBao: the
//! auth mount, its config, the role bindings, the policies and the tokens it issues.
//!
//! What OpenBao 2.x needs from the JWT (found by trying): an asymmetric `alg` in the header
//! (`RS256`; `none` and `HS256` are refused before any TokenReview), a non-empty signature
//! segment (OpenBao does not verify it: the TokenReview does), and the namespace, name and uid
//! claims, which must agree with the user the TokenReview returns. `iss` is not checked.
//!
//! Needs the local servers: `scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`. Every test works in its own uniquely named mounts, policies, auth paths and
//! service accounts.

mod common;
use common::read_request;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::read_source;
use common::{Bao, LogCapture, no_env, source, unique};
use secretsync_core::config::{VaultAuth, VaultSettings};
use secretsync_engine::vault::VaultClient;
use secretsync_engine::{Error, ErrorKind};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// A Kubernetes service account.
#[derive(Clone, Debug)]
struct ServiceAccount {
    namespace: String,
    name: String,
    uid: String,
}

impl ServiceAccount {
    fn new() -> ServiceAccount {
        ServiceAccount {
            namespace: unique("ns-"),
            name: unique("sa-"),
            uid: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// A service-account token as the kubelet mounts it (legacy claim names), signed with
    /// junk: OpenBao only parses it, and leaves checking it to the TokenReview.
    fn jwt(&self) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": unique("kid-")});
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": self.namespace,
            "kubernetes.io/serviceaccount/secret.name": format!("{}-token", self.name),
            "kubernetes.io/serviceaccount/service-account.name": self.name,
            "kubernetes.io/serviceaccount/service-account.uid": self.uid,
            "sub": format!("system:serviceaccount:{}:{}", self.namespace, self.name),
        });
        let signature = uuid::Uuid::new_v4();
        format!(
            "{}.{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes()),
            base64url(signature.as_bytes())
        )
    }
}

/// Base64url without padding, as JWTs use it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// One TokenReview the stand-in answered.
#[derive(Clone, Debug)]
struct Review {
    /// `spec.token`: the token under review.
    token: String,
    authenticated: bool,
}

/// A stand-in for the Kubernetes API server that only serves TokenReview.
struct KubeApi {
    url: String,
    reviews: Arc<Mutex<Vec<Review>>>,
}

impl KubeApi {
    /// Starts serving on a free loopback port; `known` maps tokens to their service account.
    async fn start(known: HashMap<String, ServiceAccount>) -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Kubernetes API stand-in");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let known = Arc::new(known);
        let log = reviews.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (known, log) = (known.clone(), log.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut conn).await else {
                        return;
                    };
                    let (status, body) = token_review(&request, &known, &log);
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        KubeApi { url, reviews }
    }

    fn reviews(&self) -> Vec<Review> {
        self.reviews.lock().unwrap().clone()
    }
}

/// Answers one request: a TokenReview for a known token authenticates its service account,
/// any other token is not authenticated, anything else is a 404.
fn token_review(
    request: &[u8],
    known: &HashMap<String, ServiceAccount>,
    log: &Mutex<Vec<Review>>,
) -> (&'static str, String) {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("read_request returns whole requests");
    let head = String::from_utf8_lossy(&request[..end]);
    let request_line = head.lines().next().unwrap_or_default();
    if request_line != format!("POST {TOKEN_REVIEW_PATH} HTTP/1.1") {
        let body = json!({"kind": "Status", "status": "Failure", "code": 404,
            "message": format!("the stand-in only serves POST {TOKEN_REVIEW_PATH}, not `{request_line}`")});
        return ("404 Not Found", body.to_string());
    }
    let review: Value = serde_json::from_slice(&request[end + 4..]).unwrap_or(Value::Null);
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let status = match known.get(token) {
        Some(sa) => json!({
            "authenticated": true,
            "user": {
                "username": format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
                "uid": sa.uid,
                "groups": [
                    "system:serviceaccounts",
                    format!("system:serviceaccounts:{}", sa.namespace),
                    "system:authenticated",
                ],
            },
        }),
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    log.lock().unwrap().push(Review {
        token: token.to_string(),
        authenticated: status["authenticated"] == json!(true),
    });
    let body = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review["spec"],
        "status": status,
    });
    ("201 Created", body.to_string())
}

/// A service-account token file, removed when dropped (also when the test panics).
struct TokenFile(PathBuf);

impl TokenFile {
    /// Writes `jwt` with a trailing newline, as `echo` or a ConfigMap would.
    fn new(jwt: &str) -> TokenFile {
        let path = std::env::temp_dir().join(unique("secretsync-k8s-token-"));
        std::fs::write(&path, format!("{jwt}\n"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        TokenFile(path)
    }

    fn path(&self) -> String {
        self.0.to_str().expect("temp paths are UTF-8").to_string()
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn k8s_settings(bao: &Bao, role: &str, jwt_path: String, auth_mount: &str) -> VaultSettings {
    VaultSettings {
        address: Some(bao.addr.clone()),
        namespace: None,
        auth: Some(VaultAuth::Kubernetes {
            role: role.into(),
            jwt_path,
            mount: auth_mount.into(),
        }),
        concurrency: 4,
        ca_cert: None,
    }
}

/// A policy that can list and read everything in `mount`.
fn read_policy(mount: &str) -> String {
    format!(
        r#"
path "{mount}/metadata/*" {{ capabilities = ["list", "read"] }}
path "{mount}/data/*" {{ capabilities = ["read"] }}
"#
    )
}

/// A KV v2 mount with a few secrets, a read policy for it, and Kubernetes auth (pointed at
/// `kube`) with role `sync` bound to `bound` and granting that policy.
struct Fixture {
    bao: Bao,
    mount: String,
    auth_mount: String,
}

impl Fixture {
    async fn new(kube: &KubeApi, bound: &ServiceAccount) -> Fixture {
        let bao = Bao::from_env();
        let mount = unique("k8skv");
        bao.enable_kv2(&mount).await;
        bao.put(&mount, "app/db", json!({"password": "pw-db", "port": 5432}))
            .await;
        bao.put(
            &mount,
            "app/api/keys",
            json!({"key": "k-1", "scopes": ["a", "b"]}),
        )
        .await;
        bao.put(&mount, "shared", json!({"region": "eu-west-1"}))
            .await;
        let policy = unique("k8sread");
        bao.put_policy(&policy, &read_policy(&mount)).await;
        let auth_mount = unique("k8s");
        bao.kubernetes_auth(&auth_mount, &kube.url).await;
        bao.kubernetes_role(
            &auth_mount,
            "sync",
            &[&bound.name],
            &[&bound.namespace],
            &[&policy],
        )
        .await;
        Fixture {
            bao,
            mount,
            auth_mount,
        }
    }

    fn settings(&self, jwt: &TokenFile) -> VaultSettings {
        k8s_settings(&self.bao, "sync", jwt.path(), &self.auth_mount)
    }
}

/// Connecting must fail; returns the error.
async fn connect_err(settings: &VaultSettings, what: &str) -> Error {
    match VaultClient::connect(settings, &no_env).await {
        Ok(_) => panic!("{what} must not log in"),
        Err(e) => e,
    }
}

/// The error is an auth error naming the login path and carrying no part of the JWT.
fn assert_auth_error_without_jwt(err: &Error, auth_mount: &str, jwt: &str) {
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.retryable, "{err}");
    assert!(
        err.message.contains(&format!("auth/{auth_mount}/login")),
        "the error must name the login path: {err}"
    );
    assert!(
        err.message.contains("403"),
        "the error must carry OpenBao's status: {err}"
    );
    for part in std::iter::once(jwt).chain(jwt.split('.')) {
        assert!(
            !err.message.contains(part),
            "the error leaks the JWT: {err}"
        );
    }
}

#[tokio::test]
async fn service_account_login_reads_the_source() {
    let sa = ServiceAccount::new();
    let jwt = sa.jwt();
    let kube = KubeApi::start(HashMap::from([(jwt.clone(), sa.clone())])).await;
    let fx = Fixture::new(&kube, &sa).await;
    let token_file = TokenFile::new(&jwt);
    let logs = LogCapture::start();

    let client = VaultClient::connect(&fx.settings(&token_file), &no_env)
        .await
        .unwrap_or_else(|e| panic!("Kubernetes login as {sa:?}: {e}"));
    let bundle = read_source(&client, &source("k8s", &format!("{}/", fx.mount)), 4)
        .await
        .expect("reading with the Kubernetes-issued token");

    let plain: BTreeMap<String, Value> = bundle
        .iter()
        .map(|(k, v)| (k.clone(), Value::Object(v.expose().clone())))
        .collect();
    assert_eq!(
        plain,
        BTreeMap::from([
            (
                "app/api/keys".to_string(),
                json!({"key": "k-1", "scopes": ["a", "b"]})
            ),
            (
                "app/db".to_string(),
                json!({"password": "pw-db", "port": 5432})
            ),
            ("shared".to_string(), json!({"region": "eu-west-1"})),
        ])
    );

    // OpenBao really asked the Kubernetes API about exactly this token (newline trimmed).
    let reviews = kube.reviews();
    assert_eq!(reviews.len(), 1, "expected one TokenReview: {reviews:?}");
    assert_eq!(reviews[0].token, jwt);
    assert!(reviews[0].authenticated);

    // The token has the role's policy, not more: another mount is out of reach.
    let other = unique("k8sother");
    fx.bao.enable_kv2(&other).await;
    fx.bao.put(&other, "x", json!({"x": 1})).await;
    let err = match read_source(&client, &source("other", &format!("{other}/")), 4).await {
        Ok(b) => panic!("the role's token must not read `{other}`: {:?}", b.keys()),
        Err(e) => e,
    };
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");

    for line in logs.lines() {
        assert!(!line.contains(&jwt), "a log line leaks the JWT: {line}");
    }
}

#[tokio::test]
async fn service_account_not_bound_to_the_role_is_an_auth_error_without_the_jwt() {
    let bound = ServiceAccount::new();
    // Same namespace, different name: the Kubernetes API vouches for it, the role does not.
    let intruder = ServiceAccount {
        namespace: bound.namespace.clone(),
        ..ServiceAccount::new()
    };
    let jwt = intruder.jwt();
    let kube = KubeApi::start(HashMap::from([
        (bound.jwt(), bound.clone()),
        (jwt.clone(), intruder.clone()),
    ]))
    .await;
    let fx = Fixture::new(&kube, &bound).await;
    let token_file = TokenFile::new(&jwt);
    let logs = LogCapture::start();

    let err = connect_err(
        &fx.settings(&token_file),
        "a service account outside the role",
    )
    .await;

    assert_auth_error_without_jwt(&err, &fx.auth_mount, &jwt);
    assert!(
        err.message.contains("service account name not authorized"),
        "the error must carry OpenBao's reason: {err}"
    );
    for line in logs.lines() {
        assert!(!line.contains(&jwt), "a log line leaks the JWT: {line}");
    }
}

#[tokio::test]
async fn token_the_kubernetes_api_rejects_is_an_auth_error_without_the_jwt() {
    let sa = ServiceAccount::new();
    // Claims to be the bound service account, but the Kubernetes API does not know it (a
    // forged or revoked token).
    let forged = sa.jwt();
    let kube = KubeApi::start(HashMap::from([(sa.jwt(), sa.clone())])).await;
    let fx = Fixture::new(&kube, &sa).await;
    let token_file = TokenFile::new(&forged);
    let logs = LogCapture::start();

    let err = connect_err(
        &fx.settings(&token_file),
        "a token the Kubernetes API rejects",
    )
    .await;

    assert_auth_error_without_jwt(&err, &fx.auth_mount, &forged);
    // The refusal came from the TokenReview, not from OpenBao parsing the JWT.
    let reviews = kube.reviews();
    assert_eq!(reviews.len(), 1, "expected one TokenReview: {reviews:?}");
    assert_eq!(reviews[0].token, forged);
    assert!(!reviews[0].authenticated);
    for line in logs.lines() {
        assert!(!line.contains(&forged), "a log line leaks the JWT: {line}");
    }

    // A missing token file is an auth error naming the file.
    let missing = std::env::temp_dir().join(unique("secretsync-k8s-missing-"));
    let settings = k8s_settings(
        &fx.bao,
        "sync",
        missing.to_str().unwrap().to_string(),
        &fx.auth_mount,
    );
    let err = connect_err(&settings, "a missing token file").await;
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(err.message.contains(missing.to_str().unwrap()), "{err}");
}
