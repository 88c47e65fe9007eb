//! The error cases the contract fake does not model (throttling with `Retry-After`, 403
//! Forbidden, 409 conflicts), through the Azure SDK's own transport seam: a scripted
//! `HttpClient` answers as Key Vault would (challenge first, then the script), and records
//! every request so a test can assert that nothing was deleted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Request, StatusCode, Transport};
use secretsync_core::config::TargetPolicy;
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::targets::azure_keyvault::{AzureAuth, AzureKeyVaultSettings};
use serde_json::{Value, json};

use super::client::{AzureKeyVaultTarget, KEY_NAME, Vault};
use crate::cancel::Cancel;
use crate::error::ErrorKind;
use crate::lease::local::LocalLeases;
use crate::targets::{PlanContext, Target};

/// One scripted answer: status, extra headers, JSON body.
type Answer = (u16, Vec<(&'static str, String)>, Value);
/// `(method, path)` → the answers, in order (the last repeats).
type Rule = (Method, String, Vec<Answer>);

#[derive(Debug, Default)]
struct Script {
    rules: Mutex<Vec<(Rule, usize)>>,
    seen: Mutex<Vec<(Method, String)>>,
    /// The resource the challenge names (default `https://vault.azure.net`).
    resource: Mutex<Option<String>>,
}

impl Script {
    fn challenge_resource(&self, r: &str) {
        *self.resource.lock().unwrap() = Some(r.to_string());
    }
    fn on(&self, m: Method, path: &str, answers: Vec<Answer>) {
        self.rules
            .lock()
            .unwrap()
            .push(((m, path.to_string(), answers), 0));
    }
    fn seen(&self, m: Method) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(x, _)| *x == m)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

#[async_trait]
impl HttpClient for Script {
    async fn execute_request(&self, req: &Request) -> azure_core::Result<AsyncRawResponse> {
        let path = req.url().path().trim_end_matches('/').to_string();
        let method = req.method();
        let mut headers = Headers::new();
        if req
            .headers()
            .get_optional_str(&HeaderName::from_static("authorization"))
            != Some("Bearer test-token")
        {
            let resource = self
                .resource
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "https://vault.azure.net".into());
            headers.insert(
                "www-authenticate",
                format!(
                    r#"Bearer authorization="https://login.microsoftonline.com/t", resource="{resource}""#
                ),
            );
            let body = json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}});
            return Ok(AsyncRawResponse::from_bytes(
                StatusCode::Unauthorized,
                headers,
                serde_json::to_vec(&body).unwrap(),
            ));
        }
        self.seen.lock().unwrap().push((method, path.clone()));
        let mut rules = self.rules.lock().unwrap();
        let Some((rule, used)) = rules
            .iter_mut()
            .find(|((m, p, _), _)| *m == method && *p == path)
        else {
            let body = json!({"error": {"code": "SecretNotFound", "message": format!("A secret with (name/id) {path} was not found in this key vault.")}});
            return Ok(AsyncRawResponse::from_bytes(
                StatusCode::NotFound,
                headers,
                serde_json::to_vec(&body).unwrap(),
            ));
        };
        let (status, extra, body) = rule.2[(*used).min(rule.2.len() - 1)].clone();
        *used += 1;
        for (k, v) in extra {
            headers.insert(k, v);
        }
        Ok(AsyncRawResponse::from_bytes(
            StatusCode::from(status),
            headers,
            serde_json::to_vec(&body).unwrap(),
        ))
    }
}

const URL: &str = "https://kv.test";

fn err(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// A vault with one orphan of this target (`apps-sold`) and its fingerprint key; the
/// desired state is one new secret (`apps/new`), so the apply writes, then deletes.
fn scripted() -> (Arc<Script>, AzureKeyVaultTarget, tempdir::Dir) {
    scripted_with(crate::observe::Observers::default())
}

/// [`scripted`], every attempt admitted by and reported to `observers`.
fn scripted_with(
    observers: crate::observe::Observers,
) -> (Arc<Script>, AzureKeyVaultTarget, tempdir::Dir) {
    let script = Arc::new(Script::default());
    let key = FingerprintKey::from_bytes([7u8; 32]);
    script.on(
        Method::Get,
        "/secrets",
        vec![(
            200,
            vec![],
            json!({"value": [{
                "id": format!("{URL}/secrets/apps-sold"),
                "attributes": {"enabled": true},
                "tags": {"managed-by": "secretsync", "secretsync:owner": "o", "secretsync:target": "azure", "secretsync:fingerprint": "x", "secretsync:version": "v1"}
            }], "nextLink": null}),
        )],
    );
    script.on(
        Method::Get,
        "/deletedsecrets",
        vec![(200, vec![], json!({"value": [], "nextLink": null}))],
    );
    script.on(
        Method::Get,
        &format!("/secrets/{KEY_NAME}"),
        vec![(
            200,
            vec![],
            json!({"id": format!("{URL}/secrets/{KEY_NAME}/0123"), "value": key.to_hex()}),
        )],
    );
    let settings = AzureKeyVaultSettings {
        vault_url: URL.into(),
        ca_cert: None,
        auth: AzureAuth::Token(secretsync_core::config::Sensitive::new("test-token")),
        purge: false,
        tags: BTreeMap::new(),
    };
    let policy = TargetPolicy {
        secret_prefix: "apps/".into(),
        delete_orphans: true,
        ..Default::default()
    };
    let dir = tempdir::Dir::new();
    let vault = Vault::connect(&settings, &|_| None, Some(Transport::new(script.clone())))
        .unwrap()
        .observed(crate::retry::Policy::new(5), observers);
    let leases = Arc::new(LocalLeases::new(dir.0.clone()));
    let t = AzureKeyVaultTarget::new("azure", "o", &policy, &settings, vault, leases);
    (script, t, dir)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!("ss-azure-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn desired() -> Collected {
    let mut m = serde_json::Map::new();
    m.insert("password".into(), Value::String("sentinel-value-1".into()));
    Collected::complete(BTreeMap::from([("new".to_string(), SecretValue::new(m))]))
}

/// Plans (the orphan is planned for deletion), applies with `set` scripted as `answers`,
/// and returns the report's failure and kind.
async fn apply_with_set(
    answers: Vec<Answer>,
) -> (
    Arc<Script>,
    String,
    Option<secretsync_core::diff::FailureKind>,
) {
    let (script, t, _dir) = scripted();
    script.on(Method::Put, "/secrets/apps-snew", answers);
    let plan = t
        .plan(&desired(), &PlanContext::default())
        .await
        .expect("plans");
    assert!(
        plan.changes
            .iter()
            .any(|c| c.kind == secretsync_core::diff::ChangeKind::Deleted && c.name == "apps-sold"),
        "{:?}",
        plan.changes
            .iter()
            .map(|c| (&c.name, c.kind))
            .collect::<Vec<_>>()
    );
    let report = t.apply(&plan, &Cancel::new()).await;
    let failure = report.failure.clone().expect("the apply fails");
    assert!(!failure.contains("sentinel-value-1"), "{failure}");
    assert_eq!(report.deleted, 0);
    (script, failure, report.failure_kind)
}

#[tokio::test(start_paused = true)]
async fn throttling_past_every_retry_says_what_to_lower_and_deletes_nothing() {
    let throttled = (
        429,
        vec![("retry-after", "2".to_string())],
        err(
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        ),
    );
    let (script, failure, kind) = apply_with_set(vec![throttled]).await;
    assert_eq!(kind, Some(secretsync_core::diff::FailureKind::Throttled));
    assert!(
        failure.contains("429 Throttled")
            && failure.contains("Retry-After 2s")
            && failure.contains("writes_per_second"),
        "{failure}"
    );
    // Every attempt was made (the SDK's own retries are off; ours made 5).
    assert_eq!(script.seen(Method::Put).len(), 5);
    assert!(
        script.seen(Method::Delete).is_empty(),
        "{:?}",
        script.seen(Method::Delete)
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_write_that_succeeds_on_retry_is_applied() {
    let (script, t, _dir) = scripted();
    script.on(
        Method::Put,
        "/secrets/apps-snew",
        vec![
            (
                429,
                vec![("retry-after", "1".to_string())],
                err("Throttled", "too many requests"),
            ),
            (
                200,
                vec![],
                json!({"id": format!("{URL}/secrets/apps-snew/abc")}),
            ),
        ],
    );
    script.on(
        Method::Delete,
        "/secrets/apps-sold",
        vec![(
            200,
            vec![],
            json!({"id": format!("{URL}/secrets/apps-sold/abc")}),
        )],
    );
    let plan = t.plan(&desired(), &PlanContext::default()).await.unwrap();
    let report = t.apply(&plan, &Cancel::new()).await;
    assert_eq!(report.failure, None);
    assert_eq!((report.created, report.deleted), (1, 1));
    assert_eq!(script.seen(Method::Put).len(), 2);
}

/// A vault answering 503 to a write, with a circuit breaker (threshold 2): its attempts are
/// reported as `azure/<host>` failures, the second opens the breaker, and the three retries left
/// are refused without being sent; the failure is the breaker's, and nothing is deleted.
#[tokio::test(start_paused = true)]
async fn a_failing_vault_opens_its_breaker_and_the_retries_left_are_not_sent() {
    use crate::breaker::{Breakers, Settings, SystemClock};
    let breakers = Arc::new(Breakers::new(
        Settings {
            failure_threshold: 2,
            window: std::time::Duration::from_secs(3600),
            timeout: std::time::Duration::from_secs(3600),
            max_requests: 1,
        },
        Arc::new(SystemClock),
        None,
    ));
    let (script, t, _dir) = scripted_with(crate::observe::Observers::new(vec![breakers]));
    script.on(
        Method::Put,
        "/secrets/apps-snew",
        vec![(503, vec![], err("ServiceUnavailable", "try later"))],
    );
    let plan = t.plan(&desired(), &PlanContext::default()).await.unwrap();
    let report = t.apply(&plan, &Cancel::new()).await;
    let failure = report.failure.expect("the apply fails");
    assert!(
        failure.contains("circuit breaker open for azure/kv.test: 2 attempts failed"),
        "{failure}"
    );
    assert_eq!(script.seen(Method::Put).len(), 2, "{failure}");
    assert!(script.seen(Method::Delete).is_empty());
    assert_eq!(report.deleted, 0);
}

#[tokio::test(start_paused = true)]
async fn forbidden_names_the_role_to_grant_and_deletes_nothing() {
    let forbidden = (
        403,
        vec![],
        err(
            "Forbidden",
            "Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'",
        ),
    );
    let (script, failure, kind) = apply_with_set(vec![forbidden]).await;
    assert_eq!(kind, Some(secretsync_core::diff::FailureKind::Permission));
    assert!(
        failure.contains("403 Forbidden")
            && failure.contains("Key Vault Secrets Officer")
            && failure.contains("target `azure` (https://kv.test)"),
        "{failure}"
    );
    // Not retried: a refusal is final.
    assert_eq!(script.seen(Method::Put).len(), 1);
    assert!(script.seen(Method::Delete).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_conflict_says_run_again_and_deletes_nothing() {
    let conflict = (
        409,
        vec![],
        err(
            "Conflict",
            "There was a conflict with the current state of the secret apps-snew",
        ),
    );
    let (script, failure, kind) = apply_with_set(vec![conflict]).await;
    assert_eq!(kind, Some(secretsync_core::diff::FailureKind::Conflict));
    assert!(
        failure.contains("409 Conflict") && failure.contains("run again"),
        "{failure}"
    );
    assert!(script.seen(Method::Delete).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_name_soft_deleted_by_someone_else_is_neither_recovered_nor_purged() {
    let (script, t, _dir) = scripted();
    script.on(
        Method::Put,
        "/secrets/apps-snew",
        vec![(
            409,
            vec![],
            json!({"error": {"code": "Conflict", "message": "Secret apps-snew is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.", "innererror": {"code": "ObjectIsDeletedButRecoverable"}}}),
        )],
    );
    script.on(
        Method::Get,
        "/deletedsecrets/apps-snew",
        vec![(200, vec![], json!({"id": format!("{URL}/secrets/apps-snew/1"), "recoveryId": format!("{URL}/deletedsecrets/apps-snew"), "tags": {"team": "other"}}))],
    );
    let plan = t.plan(&desired(), &PlanContext::default()).await.unwrap();
    let report = t.apply(&plan, &Cancel::new()).await;
    let failure = report.failure.expect("fails");
    assert!(
        failure.contains("neither recovers nor purges it"),
        "{failure}"
    );
    assert!(script.seen(Method::Post).is_empty(), "no recover");
    assert!(
        script.seen(Method::Delete).is_empty(),
        "no delete, no purge"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_is_an_auth_error_before_any_write() {
    let (script, t, _dir) = scripted();
    // The listing works, the fingerprint key read is refused: 401 even with the token.
    script.on(
        Method::Get,
        &format!("/secrets/{KEY_NAME}"),
        vec![(
            401,
            vec![],
            err("Unauthorized", "AKV10032: Invalid issuer."),
        )],
    );
    // (the earlier rule for the key matches first; replace it)
    script.rules.lock().unwrap().retain(|((m, p, a), _)| {
        !(*m == Method::Get && p == &format!("/secrets/{KEY_NAME}") && a[0].0 == 200)
    });
    let e = t
        .plan(&desired(), &PlanContext::default())
        .await
        .expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("https://vault.azure.net"),
        "{}",
        e.message
    );
    let call = e.call.as_deref().expect("the failed call's facts");
    assert_eq!((call.operation.as_str(), call.attempts), ("getSecret", 1));
    assert!(script.seen(Method::Put).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_token_is_given_for_key_vaults_scope_only() {
    let (script, t, _dir) = scripted();
    // Every request without a token is challenged for another Azure API's resource.
    script.challenge_resource("https://management.azure.com");
    let e = t
        .plan(&desired(), &PlanContext::default())
        .await
        .expect_err("no token for another API");
    assert_eq!(e.kind, ErrorKind::Auth, "{}", e.message);
    assert!(
        e.message.contains("management.azure.com") && e.message.contains("check `vault_url`"),
        "{}",
        e.message
    );
    assert!(
        script.seen(Method::Get).is_empty(),
        "no request carried a token"
    );
}

#[test]
fn challenge_resources_are_verified_for_azure_vault_hosts() {
    for (url, vault) in [
        ("https://my-vault.vault.azure.net", true),
        ("https://MY-VAULT.VAULT.AZURE.NET:443", true),
        ("https://v.vault.azure.cn", true),
        ("https://v.vault.usgovcloudapi.net/", true),
        ("https://127.0.0.1:8444", false),
        ("https://vault.azure.net.evil.example", false),
        ("https://kv.internal.example.com", false),
    ] {
        assert_eq!(super::client::is_vault_host(url), vault, "{url}");
    }
}

#[tokio::test]
async fn the_identity_chain_follows_the_environment() {
    use super::client::Chain;
    let none = Chain::from_env(&|_| None).unwrap();
    assert_eq!(
        none.names(),
        ["managed identity", "Azure CLI / Azure Developer CLI"]
    );
    let dir = tempdir::Dir::new();
    let vars = |file: &std::path::Path| {
        BTreeMap::from([
            (
                "AZURE_TENANT_ID",
                "00000000-0000-0000-0000-000000000001".to_string(),
            ),
            ("AZURE_CLIENT_ID", "client".to_string()),
            ("AZURE_CLIENT_SECRET", "s3cret".to_string()),
            ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ])
    };
    // A token file that cannot be read is a configuration error naming it.
    let v = vars(&dir.0.join("missing-token"));
    let e = Chain::from_env(&|k| v.get(k).cloned()).expect_err("no token file");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(
        e.message.contains("workload identity") && e.message.contains("missing-token"),
        "{}",
        e.message
    );
    let file = dir.0.join("token");
    std::fs::write(&file, "a.b.c").unwrap();
    let v = vars(&file);
    let all = Chain::from_env(&|k| v.get(k).cloned()).unwrap();
    assert_eq!(
        all.names(),
        [
            "workload identity",
            "client secret (AZURE_CLIENT_SECRET)",
            "managed identity",
            "Azure CLI / Azure Developer CLI"
        ]
    );
    assert!(!format!("{all:?}").contains("s3cret"));
}
