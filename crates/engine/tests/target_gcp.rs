//! The `gcp_secretmanager` target against the Secret Manager contract fake
//! (`crates/test-support/fakes/gcp_secretmanager.py`, started by `scripts/servers.sh`; what it
//! covers is in its header): the conformance suite, with its rollback step on the fake's
//! failing port (it refuses writes of names with the suite's marker), plus this kind's own
//! steps: the two-step orphan deletion, ids that are not SecretSync's, labels that do not fit.
//!
//! The fake is inspected through its REST API directly ([`Fake`], the suite's [`Inspector`]
//! for this kind), never through the target under test. TLS: the test process trusts the
//! fake's CA through `SSL_CERT_FILE` (the system roots + the test CA, from `.servers/env`),
//! which is how Google's client library takes a CA.
//!
//! Every conformance step applies to this kind; none is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use secretsync_core::config::{Sensitive, TargetPolicy};
use secretsync_core::diff::{
    ChangeKind, TAG_FINGERPRINT, TAG_MANAGED, TAG_OWNER, TAG_ROLE, TAG_TARGET, TAG_VERSION,
};
use secretsync_core::targets::TargetRules;
use secretsync_core::targets::gcp_secretmanager::{GcpSmRules, GcpSmSettings, Replication};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::lease::local::LocalLeases;
use secretsync_engine::targets::gcp_secretmanager::{GcpSmTarget, KEY_ID};
use secretsync_engine::targets::{PlanContext, Target};
use serde_json::{Value, json};

mod common;
mod conformance;
use common::{bundle, kinds, policy, unique};
use conformance::{Fixture, Inspector, MakeTarget};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `scripts/servers.sh start` and source .servers/env")
    })
}

/// The fake's REST API, read and written directly.
#[derive(Clone)]
struct Fake {
    base: String,
    token: String,
    parent: String,
    http: reqwest::Client,
}

impl Fake {
    fn new(project: &str) -> Fake {
        let ca = std::fs::read(env("SECRETSYNC_TEST_CA_CERT")).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_merge([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        Fake {
            base: env("SECRETSYNC_TEST_GCP_ENDPOINT"),
            token: env("SECRETSYNC_TEST_GCP_TOKEN"),
            parent: format!("projects/{project}"),
            http,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}/v1/{}/{path}", self.base, self.parent))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("the fake answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn secret(&self, id: &str) -> Option<Value> {
        let (s, v) = self.get(&format!("secrets/{id}")).await;
        (s == 200).then_some(v)
    }

    async fn access(&self, id: &str, version: &str) -> (u16, Option<Value>) {
        let (s, v) = self
            .get(&format!("secrets/{id}/versions/{version}:access"))
            .await;
        let value = v["payload"]["data"].as_str().map(|d| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(d).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        });
        (s, value)
    }

    async fn labels(&self, id: &str) -> Option<BTreeMap<String, String>> {
        let s = self.secret(id).await?;
        Some(
            s["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    async fn version_states(&self, id: &str) -> Vec<String> {
        let (_, v) = self.get(&format!("secrets/{id}/versions")).await;
        v["versions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v["state"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn create(&self, id: &str, labels: Value, value: &Value) {
        let (s, v) = self
            .send(
                reqwest::Method::POST,
                &format!("secrets?secretId={id}"),
                Some(json!({"replication": {"automatic": {}}, "labels": labels})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let data = base64::engine::general_purpose::STANDARD.encode(value.to_string());
        let (s, v) = self
            .send(
                reqwest::Method::POST,
                &format!("secrets/{id}:addVersion"),
                Some(json!({"payload": {"data": data}})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
}

#[async_trait]
impl Inspector for Fake {
    fn name(&self, prefix: &str, path: &str) -> String {
        GcpSmRules.name(prefix, path)
    }
    async fn value(&self, name: &str) -> Option<Value> {
        match self.access(name, "latest").await {
            (200, v) => v,
            _ => None,
        }
    }
    /// The labels as the core's marks (the suite's owner and target names fit labels as
    /// they are; the fingerprint stays in its label form).
    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let labels = self.labels(name).await?;
        Some(
            labels
                .into_iter()
                .map(|(k, v)| {
                    let k = match k.as_str() {
                        "managed-by" => TAG_MANAGED,
                        "secretsync-owner" => TAG_OWNER,
                        "secretsync-target" => TAG_TARGET,
                        "secretsync-fingerprint" => TAG_FINGERPRINT,
                        "secretsync-version" => TAG_VERSION,
                        "secretsync-role" => TAG_ROLE,
                        other => other,
                    };
                    (k.to_string(), v)
                })
                .collect(),
        )
    }
    async fn versions(&self, name: &str) -> usize {
        self.version_states(name).await.len()
    }
    async fn create_unmanaged(&self, name: &str, value: &Value) {
        self.create(name, json!({}), value).await;
    }
    /// Gone, or its latest version is not readable (disabled: the first step of deletion).
    async fn is_deleted(&self, name: &str) -> bool {
        self.secret(name).await.is_none() || self.access(name, "latest").await.0 != 200
    }
    fn rejected_path(&self) -> String {
        "a".repeat(256)
    }
    fn rejected_size(&self) -> usize {
        65_537
    }
}

fn settings(project: &str, endpoint: String) -> GcpSmSettings {
    GcpSmSettings {
        project: project.into(),
        location: None,
        replication: Replication::Automatic,
        endpoint: Some(endpoint),
        ca_cert: None,
        token: Some(Sensitive::new(env("SECRETSYNC_TEST_GCP_TOKEN"))),
    }
}

fn locks() -> std::path::PathBuf {
    std::env::temp_dir().join(unique("secretsync-gcp-locks-"))
}

fn make_target(settings: GcpSmSettings) -> MakeTarget {
    let dir = locks();
    Arc::new(move |name: &str, owner: &str, p: TargetPolicy| {
        let t: Arc<dyn Target> = Arc::new(GcpSmTarget::new(
            name,
            owner,
            &p,
            &settings,
            Arc::new(LocalLeases::new(dir.clone())),
        ));
        Box::pin(async move { t })
    })
}

#[tokio::test]
async fn conformance_suite() {
    let project = unique("conf-");
    let fake = Fake::new(&project);
    let f = Fixture {
        make: make_target(settings(&project, env("SECRETSYNC_TEST_GCP_ENDPOINT"))),
        inspector: Arc::new(fake.clone()),
        prefix: "apps/".into(),
        failing: Some(make_target(settings(
            &project,
            env("SECRETSYNC_TEST_GCP_FAILING_ENDPOINT"),
        ))),
    };
    conformance::run_all(&f).await;

    // The fingerprint key is a secret of the project, readable like the others.
    let (status, key) = fake.access(KEY_ID, "latest").await;
    assert_eq!(status, 200);
    assert_eq!(key.unwrap()["key"].as_str().map(str::len), Some(64));
    let labels = fake.labels(KEY_ID).await.unwrap();
    assert_eq!(labels["secretsync-role"], "fingerprint-key");
    // A keyed fingerprint fits a label: 52 characters of lower-case base32.
    let labels = fake
        .labels(&GcpSmRules.name("apps/create/", "a"))
        .await
        .unwrap();
    assert_eq!(labels["secretsync-fingerprint"].len(), 52, "{labels:?}");
}

fn target(project: &str, name: &str, edit: impl FnOnce(&mut TargetPolicy)) -> GcpSmTarget {
    let mut p = policy("apps/");
    edit(&mut p);
    GcpSmTarget::new(
        name,
        "gcp-tests",
        &p,
        &settings(project, env("SECRETSYNC_TEST_GCP_ENDPOINT")),
        Arc::new(LocalLeases::new(locks())),
    )
}

async fn sync(
    t: &GcpSmTarget,
    desired: &secretsync_core::secret::Collected,
) -> (
    secretsync_core::diff::TargetPlan,
    secretsync_engine::targets::ApplyReport,
) {
    let plan = t.plan(desired, &PlanContext::default()).await.unwrap();
    assert!(plan.refused.is_none(), "{:?}", plan.refused);
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
    (plan, r)
}

/// Orphans go in two runs: the first disables their versions (recoverable), a later one
/// deletes what is still orphaned; `max_deletes` holds the second step too.
#[tokio::test]
async fn orphans_are_disabled_then_deleted() {
    let project = unique("orph-");
    let fake = Fake::new(&project);
    let t = target(&project, "gcp", |_| {});
    let both = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]);
    sync(&t, &both).await;
    let b = GcpSmRules.name("apps/", "b");
    let only_a = bundle(&[("a", json!({"k": 1}))]);

    let (plan, r) = sync(&t, &only_a).await;
    assert_eq!(kinds(&plan)["b"], ChangeKind::Deleted);
    assert_eq!(r.deleted, 1);
    assert_eq!(fake.version_states(&b).await, ["DISABLED"]);
    assert_eq!(
        fake.labels(&b).await.unwrap()["secretsync-disabled"],
        "true"
    );

    // The second step is a deletion like any other: `max_deletes: 0` refuses it.
    let capped = target(&project, "gcp", |p| p.max_deletes = 0);
    let plan = capped.plan(&only_a, &PlanContext::default()).await.unwrap();
    assert!(
        plan.refused
            .as_deref()
            .is_some_and(|r| r.contains("max_deletes")),
        "{:?}",
        plan.refused
    );
    assert!(fake.secret(&b).await.is_some());
    // Without `delete_orphans` it stays disabled and is reported kept.
    let keeping = target(&project, "gcp", |p| p.delete_orphans = false);
    let plan = keeping
        .plan(&only_a, &PlanContext::default())
        .await
        .unwrap();
    assert_eq!(plan.orphans_kept, std::slice::from_ref(&b));
    assert!(!plan.has_changes());

    let (plan, r) = sync(&t, &only_a).await;
    let c = plan.changes.iter().find(|c| c.name == b).unwrap();
    assert_eq!(c.kind, ChangeKind::Deleted);
    assert!(c.reason.as_deref().unwrap().contains("earlier run"));
    assert_eq!(r.deleted, 1);
    assert!(fake.secret(&b).await.is_none(), "deleted in the second run");
    let plan = t.plan(&only_a, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

/// A disabled orphan desired again with the same value gets its version back, not a new one.
#[tokio::test]
async fn a_disabled_orphan_desired_again_is_enabled() {
    let project = unique("rest-");
    let fake = Fake::new(&project);
    let t = target(&project, "gcp", |_| {});
    let both = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]);
    sync(&t, &both).await;
    sync(&t, &bundle(&[("a", json!({"k": 1}))])).await;
    let b = GcpSmRules.name("apps/", "b");
    assert_eq!(fake.version_states(&b).await, ["DISABLED"]);
    let (_, r) = sync(&t, &both).await;
    assert_eq!(r.updated, 1, "{r:?}");
    assert_eq!(fake.version_states(&b).await, ["ENABLED"]);
    assert!(
        !fake
            .labels(&b)
            .await
            .unwrap()
            .contains_key("secretsync-disabled")
    );
    let plan = t.plan(&both, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

/// Ids SecretSync never makes (a `.` in them, lower-case escapes) are not its names: never
/// written, never orphans. Paths with any character map to valid ids and back.
#[tokio::test]
async fn foreign_ids_are_ignored_and_any_path_maps() {
    let project = unique("ids-");
    let fake = Fake::new(&project);
    fake.create("apps__x_2e", json!({"managed-by": "secretsync", "secretsync-owner": "gcp-tests", "secretsync-target": "gcp"}), &json!({"v": 1})).await;
    let t = target(&project, "gcp", |_| {});
    let desired = bundle(&[("dir/näme with.dots_and space", json!({"k": 1}))]);
    let (plan, r) = sync(&t, &desired).await;
    assert_eq!(r.created, 1, "{:?}", kinds(&plan));
    assert!(plan.changes.iter().all(|c| c.kind != ChangeKind::Deleted));
    let id = GcpSmRules.name("apps/", "dir/näme with.dots_and space");
    assert_eq!(id, "apps__dir__n_C3_A4me_20with_2Edots_5Fand_20space");
    assert_eq!(fake.access(&id, "latest").await.1, Some(json!({"k": 1})));
    assert!(fake.secret("apps__x_2e").await.is_some());
}

/// Owner scopes and target names that are not valid label values still mark and match.
#[tokio::test]
async fn names_that_do_not_fit_labels_still_match() {
    let project = unique("lbl-");
    let fake = Fake::new(&project);
    let mut p = policy("apps/");
    p.delete_orphans = false;
    let t = GcpSmTarget::new(
        "Prod.EU",
        "Team A/EU",
        &p,
        &settings(&project, env("SECRETSYNC_TEST_GCP_ENDPOINT")),
        Arc::new(LocalLeases::new(locks())),
    );
    let desired = bundle(&[("a", json!({"k": 1}))]);
    sync(&t, &desired).await;
    let labels = fake.labels(&GcpSmRules.name("apps/", "a")).await.unwrap();
    assert!(
        labels["secretsync-target"].starts_with("prod-eu-"),
        "{labels:?}"
    );
    assert!(
        labels["secretsync-owner"].starts_with("team-a-eu-"),
        "{labels:?}"
    );
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
    assert_eq!(plan.counts().unchanged, 1);
}

/// User-managed replication and regional secrets reach the API as configured (the fake refuses
/// a global secret without a replication and a regional one with one).
#[tokio::test]
async fn replication_and_regional_secrets() {
    let project = unique("rep-");
    let mut s = settings(&project, env("SECRETSYNC_TEST_GCP_ENDPOINT"));
    s.replication = Replication::UserManaged(vec!["europe-west1".into(), "europe-west4".into()]);
    let make = |s: &GcpSmSettings| {
        GcpSmTarget::new(
            "gcp",
            "gcp-tests",
            &policy("apps/"),
            s,
            Arc::new(LocalLeases::new(locks())),
        )
    };
    let desired = bundle(&[("a", json!({"k": 1}))]);
    sync(&make(&s), &desired).await;
    let global = Fake::new(&project);
    let secret = global.secret("apps__a").await.expect("created");
    assert_eq!(
        secret["replication"]["userManaged"]["replicas"],
        json!([{"location": "europe-west1"}, {"location": "europe-west4"}])
    );

    s.location = Some("europe-west1".into());
    s.replication = Replication::Automatic;
    let regional = make(&s);
    sync(&regional, &desired).await;
    let mut fake = Fake::new(&project);
    fake.parent = format!("projects/{project}/locations/europe-west1");
    let secret = fake
        .secret("apps__a")
        .await
        .expect("created in the location");
    assert!(secret.get("replication").is_none(), "{secret}");
    assert_eq!(
        fake.access("apps__a", "latest").await.1,
        Some(json!({"k": 1}))
    );
    let plan = regional
        .plan(&desired, &PlanContext::default())
        .await
        .unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}
