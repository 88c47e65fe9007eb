//! The `azure_keyvault` target against the Key Vault contract fake
//! (`crates/test-support/fakes/azure_keyvault.py`, started by `scripts/servers.sh` over HTTPS
//! with the test CA; what it models is in its header, and `fake_azure_contract.rs` checks it
//! with Microsoft's Python client): the conformance suite, soft-delete recovery, purge, the name
//! mapping and its refusals.
//!
//! The vault is inspected through its REST API directly ([`Rest`], the suite's [`Inspector`]
//! for this kind, with its own HTTP client), never through the target under test. The suite's
//! rollback step injects its failure with a transport of this file's ([`Failing`]) in front of
//! the target's real HTTP client: the fault proxy the other kinds use speaks plain HTTP, which
//! Azure's client refuses. Every step of the suite applies; none is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Request, StatusCode};
use secretsync_core::config::{Sensitive, TargetPolicy};
use secretsync_core::diff::ChangeKind;
use secretsync_core::targets::azure_keyvault::{AzureAuth, AzureKeyVaultSettings, encode};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::lease::local::LocalLeases;
use secretsync_engine::targets::azure_keyvault::{self, Transport};
use secretsync_engine::targets::{PlanContext, Target};
use serde_json::{Value, json};

mod common;
mod conformance;
use common::{bundle, kinds, policy, unique};
use conformance::{FAIL_MARKER, Fixture, INJECTED, Inspector, MakeTarget};

const OWNER: &str = "azure-tests";

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!(
            "{k} is not set: start the local servers (scripts/servers.sh) and source .servers/env"
        )
    })
}

fn settings() -> AzureKeyVaultSettings {
    AzureKeyVaultSettings {
        vault_url: env("SECRETSYNC_TEST_AZURE_VAULT_URL"),
        ca_cert: Some(env("SECRETSYNC_TEST_CA_CERT")),
        auth: AzureAuth::Token(Sensitive::new(env("SECRETSYNC_TEST_AZURE_TOKEN"))),
        purge: false,
        tags: BTreeMap::new(),
    }
}

fn leases() -> Arc<LocalLeases> {
    Arc::new(LocalLeases::new(
        std::env::temp_dir().join(unique("secretsync-azure-leases-")),
    ))
}

fn target_with(
    name: &str,
    owner: &str,
    policy: TargetPolicy,
    settings: &AzureKeyVaultSettings,
    transport: Option<Transport>,
) -> Arc<dyn Target> {
    let transport = transport.unwrap_or_else(|| {
        Transport::new(Arc::new(azure_keyvault::http_client(settings).unwrap()))
    });
    Arc::new(
        azure_keyvault::with_transport(name, owner, &policy, settings, transport, leases())
            .unwrap(),
    )
}

fn target(name: &str, owner: &str, policy: TargetPolicy) -> Arc<dyn Target> {
    target_with(name, owner, policy, &settings(), None)
}

/// The fake's REST API, spoken directly.
struct Rest {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Rest {
    fn new() -> Rest {
        let ca = std::fs::read(env("SECRETSYNC_TEST_CA_CERT")).unwrap();
        Rest {
            http: reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .build()
                .unwrap(),
            url: env("SECRETSYNC_TEST_AZURE_VAULT_URL"),
            token: env("SECRETSYNC_TEST_AZURE_TOKEN"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut r = self
            .http
            .request(method, format!("{}{path}{sep}api-version=7.5", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn secret(&self, name: &str) -> Option<Value> {
        match self
            .call(reqwest::Method::GET, &format!("/secrets/{name}/"), None)
            .await
        {
            (200, v) => Some(v),
            (404, _) => None,
            other => panic!("reading `{name}`: {other:?}"),
        }
    }

    async fn deleted(&self, name: &str) -> Option<Value> {
        match self
            .call(
                reqwest::Method::GET,
                &format!("/deletedsecrets/{name}"),
                None,
            )
            .await
        {
            (200, v) => Some(v),
            (404, _) => None,
            other => panic!("reading deleted `{name}`: {other:?}"),
        }
    }

    /// Soft-deletes `name` and waits until its deletion has completed.
    async fn soft_delete(&self, name: &str) {
        let (s, _) = self
            .call(reqwest::Method::DELETE, &format!("/secrets/{name}"), None)
            .await;
        assert_eq!(s, 200);
        for _ in 0..200 {
            if self.deleted(name).await.is_some() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("`{name}` never finished deleting");
    }
}

#[async_trait]
impl Inspector for Rest {
    fn name(&self, prefix: &str, path: &str) -> String {
        encode(&format!("{prefix}{path}"))
    }

    async fn value(&self, name: &str) -> Option<Value> {
        let s = self.secret(name).await?;
        assert_eq!(s["contentType"], "application/json", "{name}");
        Some(serde_json::from_str(s["value"].as_str().unwrap()).unwrap())
    }

    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let s = self.secret(name).await?;
        Some(serde_json::from_value(s["tags"].clone()).unwrap())
    }

    async fn versions(&self, name: &str) -> usize {
        match self
            .call(
                reqwest::Method::GET,
                &format!("/secrets/{name}/versions?maxresults=25"),
                None,
            )
            .await
        {
            (200, v) => v["value"].as_array().unwrap().len(),
            (404, _) => 0,
            other => panic!("{other:?}"),
        }
    }

    async fn create_unmanaged(&self, name: &str, value: &Value) {
        let (s, v) = self
            .call(
                reqwest::Method::PUT,
                &format!("/secrets/{name}"),
                Some(json!({"value": value.to_string(), "contentType": "application/json"})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    async fn is_deleted(&self, name: &str) -> bool {
        self.secret(name).await.is_none()
    }

    /// 128 characters: one over Key Vault's limit once mapped.
    fn rejected_path(&self) -> String {
        "a".repeat(128)
    }

    fn rejected_size(&self) -> usize {
        25 * 1024 + 1
    }
}

/// The target's real HTTP client, except that every write (`PUT`) or delete of a name
/// containing the mapped [`FAIL_MARKER`] is answered 400 [`INJECTED`].
#[derive(Debug)]
struct Failing {
    inner: reqwest::Client,
    marker: String,
}

#[async_trait]
impl HttpClient for Failing {
    async fn execute_request(&self, req: &Request) -> azure_core::Result<AsyncRawResponse> {
        let writes = matches!(req.method(), Method::Put | Method::Delete | Method::Patch);
        let authorized = req
            .headers()
            .get_optional_str(&azure_core::http::headers::AUTHORIZATION)
            .is_some();
        if writes && authorized && req.url().path().contains(&self.marker) {
            let body = json!({"error": {"code": "BadParameter", "message": INJECTED}});
            return Ok(AsyncRawResponse::from_bytes(
                StatusCode::BadRequest,
                Default::default(),
                serde_json::to_vec(&body).unwrap(),
            ));
        }
        self.inner.execute_request(req).await
    }
}

fn failing() -> MakeTarget {
    Arc::new(|name: &str, owner: &str, policy: TargetPolicy| {
        let s = settings();
        let t = Transport::new(Arc::new(Failing {
            inner: azure_keyvault::http_client(&s).unwrap(),
            marker: encode(FAIL_MARKER),
        }));
        let t = target_with(name, owner, policy, &s, Some(t));
        Box::pin(async move { t })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let make: MakeTarget = Arc::new(|name: &str, owner: &str, policy: TargetPolicy| {
        let t = target(name, owner, policy);
        Box::pin(async move { t })
    });
    let f = Fixture {
        make,
        inspector: Arc::new(Rest::new()),
        prefix: unique("conf") + "/",
        failing: Some(failing()),
    };
    conformance::run_all(&f).await;
}

async fn sync(t: &Arc<dyn Target>, desired: &secretsync_core::secret::Collected) {
    let plan = t.plan(desired, &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
}

#[tokio::test]
async fn a_desired_secret_found_soft_deleted_is_recovered_then_written() {
    let rest = Rest::new();
    let prefix = unique("rec") + "/";
    let t = target("azure", OWNER, policy(&prefix));
    sync(&t, &bundle(&[("db", json!({"v": 1}))])).await;
    let name = encode(&format!("{prefix}db"));
    rest.soft_delete(&name).await;
    assert!(rest.secret(&name).await.is_none());

    let desired = bundle(&[("db", json!({"v": 2}))]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    let c = &plan.changes[0];
    assert!(c.restore, "planned as a restore: {:?}", kinds(&plan));
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
    assert_eq!(rest.value(&name).await, Some(json!({"v": 2})));
    // Recovered, not purged: the earlier version is still there under the new one.
    assert_eq!(rest.versions(&name).await, 2);
    assert!(rest.deleted(&name).await.is_none());
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

#[tokio::test]
async fn orphans_are_soft_deleted_and_purged_only_with_purge() {
    let rest = Rest::new();
    for purge in [false, true] {
        let prefix = unique("orph") + "/";
        let mut s = settings();
        s.purge = purge;
        let t = target_with("azure", OWNER, policy(&prefix), &s, None);
        sync(
            &t,
            &bundle(&[("keep", json!({"v": 1})), ("gone", json!({"v": 1}))]),
        )
        .await;
        let gone = encode(&format!("{prefix}gone"));
        let plan = t
            .plan(
                &bundle(&[("keep", json!({"v": 1}))]),
                &PlanContext::default(),
            )
            .await
            .unwrap();
        let k = kinds(&plan);
        assert_eq!(k.get("gone").copied(), Some(ChangeKind::Deleted), "{k:?}");
        let r = t.apply(&plan, &Cancel::default()).await;
        assert!(r.failure.is_none(), "{r:?}");
        assert_eq!(r.deleted, 1);
        assert!(rest.secret(&gone).await.is_none());
        if purge {
            assert!(rest.deleted(&gone).await.is_none(), "purged");
        } else {
            // Soft-deleted: recoverable for the vault's retention, with its tags.
            let mut d = None;
            for _ in 0..200 {
                d = rest.deleted(&gone).await;
                if d.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let d = d.expect("soft-deleted, not purged");
            assert_eq!(d["tags"]["secretsync:target"], "azure");
        }
        assert!(
            rest.secret(&encode(&format!("{prefix}keep")))
                .await
                .is_some()
        );
    }
}

#[tokio::test]
async fn names_are_mapped_and_case_collisions_refused_before_any_write() {
    let rest = Rest::new();
    let prefix = unique("map") + "/";
    let t = target("azure", OWNER, policy(&prefix));
    sync(&t, &bundle(&[("my-app/db_url.v2", json!({"v": 1}))])).await;
    let name = format!(
        "{}-smy--app-sdb-uurl-dv2",
        encode(prefix.trim_end_matches('/'))
    );
    assert_eq!(rest.value(&name).await, Some(json!({"v": 1})));

    let plan = t
        .plan(
            &bundle(&[
                ("Db", json!({"v": 1})),
                ("dB", json!({"v": 2})),
                ("ok", json!({"v": 3})),
            ]),
            &PlanContext::default(),
        )
        .await
        .unwrap();
    for p in ["Db", "dB"] {
        let c = plan
            .changes
            .iter()
            .find(|c| c.path == format!("{prefix}{p}") || c.path == p)
            .unwrap();
        assert!(c.invalid && c.kind == ChangeKind::Skipped, "{c:?}");
        let why = c.reason.as_deref().unwrap();
        assert!(
            why.contains("`Db`") && why.contains("`dB`") && why.contains("case-insensitive"),
            "{why}"
        );
    }
    let r = t.apply(&plan, &Cancel::default()).await;
    // `ok` is created; the earlier secret, desired no more, is the one orphan.
    assert_eq!((r.created, r.deleted), (1, 1), "{r:?}");
    assert!(rest.secret(&encode(&format!("{prefix}Db"))).await.is_none());
    assert!(rest.secret(&encode(&format!("{prefix}dB"))).await.is_none());
    assert!(rest.secret(&name).await.is_none());
}

#[tokio::test]
async fn a_listed_name_that_differs_in_case_is_the_same_secret() {
    let rest = Rest::new();
    let prefix = unique("case") + "/";
    let t = target("azure", OWNER, policy(&prefix));
    sync(&t, &bundle(&[("db", json!({"v": 1}))])).await;
    // The same secret desired under another spelling: a new version, never a delete.
    let plan = t
        .plan(&bundle(&[("DB", json!({"v": 2}))]), &PlanContext::default())
        .await
        .unwrap();
    assert!(
        plan.changes.iter().all(|c| c.kind != ChangeKind::Deleted),
        "{:?}",
        kinds(&plan)
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
    assert_eq!(
        rest.value(&encode(&format!("{prefix}db"))).await,
        Some(json!({"v": 2}))
    );
    assert_eq!(rest.versions(&encode(&format!("{prefix}db"))).await, 2);
}

#[tokio::test]
async fn configured_tags_are_written_and_kept_in_sync_without_new_versions() {
    let rest = Rest::new();
    let prefix = unique("tags") + "/";
    let desired = bundle(&[("db", json!({"v": 1}))]);
    let name = encode(&format!("{prefix}db"));
    let t = target("azure", OWNER, policy(&prefix));
    sync(&t, &desired).await;
    assert_eq!(rest.marks(&name).await.unwrap().get("team"), None);

    let mut s = settings();
    s.tags = BTreeMap::from([("team".to_string(), "platform".to_string())]);
    let tagged = target_with("azure", OWNER, policy(&prefix), &s, None);
    let plan = tagged
        .plan(&desired, &PlanContext::default())
        .await
        .unwrap();
    assert!(plan.changes[0].retag, "{:?}", kinds(&plan));
    let r = tagged.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.retagged, r.created, r.updated), (1, 0, 0), "{r:?}");
    let marks = rest.marks(&name).await.unwrap();
    assert_eq!(marks.get("team").map(String::as_str), Some("platform"));
    assert_eq!(
        marks.get("managed-by").map(String::as_str),
        Some("secretsync")
    );
    assert_eq!(rest.versions(&name).await, 1, "tags only: no new version");
    let plan = tagged
        .plan(&desired, &PlanContext::default())
        .await
        .unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

#[tokio::test]
async fn a_secret_whose_tags_would_exceed_fifteen_is_refused_before_writing() {
    let rest = Rest::new();
    let prefix = unique("many") + "/";
    let name = encode(&format!("{prefix}db"));
    // An unmanaged secret with 12 tags of its own, adopted: 12 + 5 > 15.
    let tags: BTreeMap<String, String> = (0..12).map(|i| (format!("own{i}"), "x".into())).collect();
    let (s, v) = rest
        .call(
            reqwest::Method::PUT,
            &format!("/secrets/{name}"),
            Some(json!({"value": "{\"v\":0}", "tags": tags})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut p = policy(&prefix);
    p.adopt = true;
    let t = target("azure", OWNER, p);
    let plan = t
        .plan(&bundle(&[("db", json!({"v": 1}))]), &PlanContext::default())
        .await
        .unwrap();
    let c = &plan.changes[0];
    assert!(c.invalid && c.kind == ChangeKind::Skipped, "{c:?}");
    let why = c.reason.as_deref().unwrap();
    assert!(
        why.contains("17 tags") && why.contains("allows 15") && why.contains("`own0`"),
        "{why}"
    );
    let before = t.calls();
    t.apply(&plan, &Cancel::default()).await;
    assert_eq!(t.calls(), before, "nothing sent");
    assert_eq!(rest.versions(&name).await, 1);
}

/// Key Vault has no conditional write: without a merge store the lease is a lock file on this
/// machine (the `plugin` kind's code), taken and released like any other lease.
#[tokio::test]
async fn without_a_merge_store_the_lease_is_a_local_lock_file() {
    use secretsync_engine::lease::{self, Holder, LeaseSpec};
    let cache = std::env::temp_dir().join(unique("secretsync-azure-cache-"));
    let yaml = format!(
        "vault_sources:
  - mount: secret/base/
targets:
  - name: azure
    type: azure_keyvault
    vault_url: {}
    ca_cert: {}
    auth: {{ token: x }}
    imports: [base]
",
        env("SECRETSYNC_TEST_AZURE_VAULT_URL"),
        env("SECRETSYNC_TEST_CA_CERT")
    );
    let loaded = secretsync_core::config::load(&yaml, &|_| None);
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    let cache_s = cache.to_str().unwrap().to_string();
    let env = move |k: &str| (k == "XDG_CACHE_HOME").then(|| cache_s.clone());
    let clients = secretsync_engine::targets::Clients {
        aws: None,
        owner: OWNER,
        env: &env,
        observers: Default::default(),
        retries: secretsync_core::config::RetriesConfig {
            vault_max_attempts: 1,
            ..Default::default()
        },
        merge_store: None,
        store: None,
    };
    let t = secretsync_engine::targets::build(&config.targets[0], &clients)
        .await
        .unwrap();
    let backend = t.lease_backend();
    let key = lease::target_key(OWNER, "azure");
    let location = backend.location(&key);
    assert!(
        location.starts_with("lock file ")
            && location.contains(cache.join("secretsync").join("locks").to_str().unwrap()),
        "{location}"
    );
    let held = lease::acquire(
        backend,
        LeaseSpec {
            key,
            ttl: std::time::Duration::from_secs(30),
            wait: std::time::Duration::ZERO,
        },
        Holder::new(OWNER, "run-1", "h", "a"),
        &Cancel::default(),
    )
    .await
    .unwrap();
    let file = LocalLeases::in_user_cache(&env).path(&lease::target_key(OWNER, "azure"));
    assert!(file.starts_with(&cache), "{}", file.display());
    let held_by = std::fs::read_to_string(&file).expect("the lock file exists while held");
    assert!(
        held_by.contains("run-1"),
        "the lock file names the holder: {held_by}"
    );
    held.release().await.unwrap();
    let _ = std::fs::remove_dir_all(&cache);
}

/// More secrets than one page of the listing (25): the plan sees every one of them.
#[tokio::test]
async fn listings_page_past_twenty_five() {
    let prefix = unique("page") + "/";
    let t = target("azure", OWNER, policy(&prefix));
    let items: Vec<(String, Value)> = (0..30)
        .map(|i| (format!("s{i}"), json!({"i": i})))
        .collect();
    let refs: Vec<(&str, Value)> = items.iter().map(|(p, v)| (p.as_str(), v.clone())).collect();
    let desired = bundle(&refs);
    sync(&t, &desired).await;
    let fresh = target("azure", OWNER, policy(&prefix));
    let plan = fresh.plan(&desired, &PlanContext::default()).await.unwrap();
    assert_eq!(plan.changes.len(), 30);
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

/// A secret soft-deleted between the plan and the write (Set answers 409 "deleted but
/// recoverable"): it is this target's, so it is recovered and then written, never purged.
#[tokio::test]
async fn a_secret_soft_deleted_after_the_plan_is_recovered_then_written() {
    let rest = Rest::new();
    let prefix = unique("race") + "/";
    let t = target("azure", OWNER, policy(&prefix));
    sync(&t, &bundle(&[("db", json!({"v": 1}))])).await;
    let name = encode(&format!("{prefix}db"));
    let plan = t
        .plan(&bundle(&[("db", json!({"v": 2}))]), &PlanContext::default())
        .await
        .unwrap();
    assert_eq!(plan.changes[0].kind, ChangeKind::Modified);
    assert!(!plan.changes[0].restore, "it was live when planned");
    rest.soft_delete(&name).await;
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
    assert_eq!(rest.value(&name).await, Some(json!({"v": 2})));
    assert_eq!(rest.versions(&name).await, 2, "recovered with its history");
    assert!(rest.deleted(&name).await.is_none());
}
