//! The `aws_ssm` target (Parameter Store) against the real local AWS emulator (moto), both
//! mappings: create, read back, update (keys added, changed, removed), unchanged secrets get no
//! new parameter versions, orphans kept and deleted, unmanaged parameters untouched, adopt,
//! tiers and size limits, invalid names, rollback after an injected failure (a proxy in front
//! of moto fails chosen writes), cancellation, and what a no-change plan costs in calls.
//!
//! Each test uses its own region (moto keeps one Parameter Store per account and region, and
//! iterates it unlocked while listing) and its own prefix. [`SsmInspector`] looks at
//! Parameter Store directly, for the conformance suite's [`conformance::Inspector`] contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging};
use futures::FutureExt;
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{ChangeKind, TargetPlan};
use secretsync_core::secret::Collected;
use secretsync_core::targets::TargetRules;
use secretsync_core::targets::aws_ssm::{AwsSsmRules, AwsSsmSettings, KEY_PARAMETER, Mapping};
use secretsync_engine::aws::AwsContext;
use secretsync_engine::cancel::Cancel;
use secretsync_engine::targets::aws_ssm::AwsSsmTarget;
use secretsync_engine::targets::{PlanContext, Target};
use secretsync_test_support::proxy::{Action, Proxy, Rule, RuleId};
use serde_json::{Value, json};

mod common;
mod conformance;
use common::aws::{endpoint, sdk};
use common::{bundle, kinds, policy};
use conformance::{FAIL_MARKER, failing_aws};

/// The owner scope of these tests' deployment.
const OWNER: &str = "ssm-tests";

fn settings(region: &str, mapping: Mapping) -> AwsSsmSettings {
    AwsSsmSettings {
        region: region.into(),
        role_arn: None,
        external_id: None,
        mapping,
        kms_key_id: None,
        writes_per_second: 1000,
    }
}

/// One test's world: a region of its own, a prefix of its own, a client to look directly.
struct World {
    endpoint: String,
    region: String,
    prefix: String,
    ssm: aws_sdk_ssm::Client,
}

impl World {
    fn new(region: &str, tag: &str) -> World {
        let endpoint = endpoint();
        World {
            ssm: aws_sdk_ssm::Client::new(&sdk(&endpoint, region)),
            endpoint,
            region: region.into(),
            prefix: format!("/{}/", common::unique(&format!("{tag}-"))),
        }
    }

    async fn target(&self, mapping: Mapping, f: impl FnOnce(&mut TargetPolicy)) -> AwsSsmTarget {
        self.target_via(&self.endpoint.clone(), "t", mapping, f)
            .await
    }

    async fn target_via(
        &self,
        endpoint: &str,
        name: &str,
        mapping: Mapping,
        f: impl FnOnce(&mut TargetPolicy),
    ) -> AwsSsmTarget {
        let ctx = AwsContext::from_sdk_config(sdk(endpoint, &self.region));
        let mut p = policy(&self.prefix);
        f(&mut p);
        AwsSsmTarget::new(name, OWNER, &p, &settings(&self.region, mapping), &ctx).await
    }

    /// A target whose SecureStrings use `kms_key_id`.
    async fn keyed(&self, endpoint: &str, mapping: Mapping, key: &str) -> AwsSsmTarget {
        let ctx = AwsContext::from_sdk_config(sdk(endpoint, &self.region));
        let s = AwsSsmSettings {
            kms_key_id: Some(key.into()),
            ..settings(&self.region, mapping)
        };
        AwsSsmTarget::new("t", OWNER, &policy(&self.prefix), &s, &ctx).await
    }

    /// Every parameter below the prefix: relative name → (its KMS key, its version).
    async fn keys(&self) -> BTreeMap<String, (Option<String>, i64)> {
        let out = self
            .ssm
            .describe_parameters()
            .parameter_filters(
                aws_sdk_ssm::types::ParameterStringFilter::builder()
                    .key("Name")
                    .option("BeginsWith")
                    .values(&self.prefix)
                    .build()
                    .unwrap(),
            )
            .max_results(50)
            .send()
            .await
            .unwrap();
        out.parameters()
            .iter()
            .map(|p| {
                (
                    p.name()
                        .unwrap()
                        .strip_prefix(&self.prefix)
                        .unwrap()
                        .to_string(),
                    (p.key_id().map(str::to_string), p.version()),
                )
            })
            .collect()
    }

    fn inspector(&self, mapping: Mapping) -> SsmInspector {
        SsmInspector {
            client: self.ssm.clone(),
            rules: AwsSsmRules::new(mapping, &self.region),
        }
    }

    fn name(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// (value, version, type, tier) of a parameter, `None` when absent.
    async fn param(&self, rel: &str) -> Option<(String, i64, String, String)> {
        let name = self.name(rel);
        let out = self
            .ssm
            .get_parameters()
            .names(&name)
            .with_decryption(true)
            .send()
            .await
            .unwrap();
        let p = out.parameters().first()?;
        let meta = self
            .ssm
            .describe_parameters()
            .parameter_filters(
                aws_sdk_ssm::types::ParameterStringFilter::builder()
                    .key("Name")
                    .option("Equals")
                    .values(&name)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let tier = meta
            .parameters()
            .first()
            .and_then(|m| m.tier())
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        Some((
            p.value().unwrap().to_string(),
            p.version(),
            p.r#type().unwrap().as_str().to_string(),
            tier,
        ))
    }

    async fn value(&self, rel: &str) -> Option<String> {
        self.param(rel).await.map(|p| p.0)
    }

    async fn version(&self, rel: &str) -> i64 {
        self.param(rel).await.map(|p| p.1).unwrap_or(0)
    }

    async fn tags(&self, rel: &str) -> BTreeMap<String, String> {
        tags_of(&self.ssm, &self.name(rel))
            .await
            .unwrap_or_default()
    }

    /// Every parameter name under the prefix.
    async fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut pages = self
            .ssm
            .get_parameters_by_path()
            .path(self.prefix.trim_end_matches('/'))
            .recursive(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for p in page.unwrap().parameters() {
                out.push(
                    p.name()
                        .unwrap()
                        .strip_prefix(&self.prefix)
                        .unwrap()
                        .to_string(),
                );
            }
        }
        out.sort();
        out
    }

    async fn put_unmanaged(&self, rel: &str, value: &str) {
        self.ssm
            .put_parameter()
            .name(self.name(rel))
            .value(value)
            .r#type(ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
}

async fn tags_of(ssm: &aws_sdk_ssm::Client, name: &str) -> Option<BTreeMap<String, String>> {
    let out = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .ok()?;
    Some(
        out.tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    )
}

/// Looks at Parameter Store directly, by secret name (prefix + relative path): with `per_key`
/// a secret is the parameters one level below its name. A `per_key` value reads each stored
/// string as JSON when it parses (so `"5"` and `5` both read as `5`), else as a string.
struct SsmInspector {
    client: aws_sdk_ssm::Client,
    rules: AwsSsmRules,
}

impl SsmInspector {
    /// (name, value, version) of the secret's parameters.
    async fn params(&self, name: &str) -> Vec<(String, String, i64)> {
        match self.rules.mapping {
            Mapping::Whole => {
                let out = self
                    .client
                    .get_parameters()
                    .names(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .unwrap();
                out.parameters()
                    .iter()
                    .map(|p| {
                        (
                            p.name().unwrap().to_string(),
                            p.value().unwrap().to_string(),
                            p.version(),
                        )
                    })
                    .collect()
            }
            Mapping::PerKey => {
                let mut out = Vec::new();
                let mut pages = self
                    .client
                    .get_parameters_by_path()
                    .path(name)
                    .recursive(false)
                    .with_decryption(true)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    for p in page.unwrap().parameters() {
                        out.push((
                            p.name().unwrap().to_string(),
                            p.value().unwrap().to_string(),
                            p.version(),
                        ));
                    }
                }
                out.sort();
                out
            }
        }
    }
}

#[async_trait]
impl conformance::Inspector for SsmInspector {
    fn name(&self, prefix: &str, path: &str) -> String {
        self.rules.name(prefix, path)
    }

    async fn value(&self, name: &str) -> Option<Value> {
        let params = self.params(name).await;
        if params.is_empty() {
            return None;
        }
        match self.rules.mapping {
            Mapping::Whole => serde_json::from_str(&params[0].1).ok(),
            Mapping::PerKey => Some(Value::Object(
                params
                    .into_iter()
                    .map(|(n, v, _)| {
                        let key = n.rsplit('/').next().unwrap().to_string();
                        let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
                        (key, value)
                    })
                    .collect(),
            )),
        }
    }

    /// The tags of the secret's first parameter (every one carries the same marks, but for its
    /// own `secretsync:version`).
    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let first = self.params(name).await.into_iter().next()?;
        tags_of(&self.client, &first.0).await
    }

    /// The sum of its parameters' versions: any new version of any of them shows.
    async fn versions(&self, name: &str) -> usize {
        self.params(name).await.iter().map(|p| p.2 as usize).sum()
    }

    async fn create_unmanaged(&self, name: &str, value: &Value) {
        let params: Vec<(String, String)> = match self.rules.mapping {
            Mapping::Whole => vec![(name.to_string(), value.to_string())],
            Mapping::PerKey => value
                .as_object()
                .expect("a secret is an object")
                .iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (format!("{name}/{k}"), s)
                })
                .collect(),
        };
        for (n, v) in params {
            self.client
                .put_parameter()
                .name(n)
                .value(v)
                .r#type(ParameterType::SecureString)
                .send()
                .await
                .unwrap();
        }
    }

    async fn is_deleted(&self, name: &str) -> bool {
        self.params(name).await.is_empty()
    }
}

/// Builds targets of this kind against `endpoint` (moto, or a proxy in front of it).
fn make_at(endpoint: String, region: String, mapping: Mapping) -> conformance::MakeTarget {
    Arc::new(move |name: &str, owner: &str, p: TargetPolicy| {
        let (endpoint, region, name, owner) = (
            endpoint.clone(),
            region.clone(),
            name.to_string(),
            owner.to_string(),
        );
        async move {
            let ctx = AwsContext::from_sdk_config(sdk(&endpoint, &region));
            let t = AwsSsmTarget::new(&name, &owner, &p, &settings(&region, mapping), &ctx).await;
            Arc::new(t) as Arc<dyn Target>
        }
        .boxed()
    })
}

/// The suite's fixture for this kind (for the shared conformance steps).
fn fixture(w: &World, mapping: Mapping) -> conformance::Fixture {
    conformance::Fixture {
        make: make_at(w.endpoint.clone(), w.region.clone(), mapping),
        inspector: Arc::new(w.inspector(mapping)),
        prefix: w.prefix.clone(),
        failing: None,
    }
}

/// The shared conformance suite, in both mappings; the failing target writes through a proxy
/// that fails `PutParameter` of names with the marker.
#[tokio::test]
async fn conformance_suite() {
    for (mapping, region) in [
        (Mapping::Whole, "af-south-1"),
        (Mapping::PerKey, "ap-east-1"),
    ] {
        let w = World::new(
            region,
            &format!("conf-{}", mapping.as_str().replace('_', "")),
        );
        let mut fx = fixture(&w, mapping);
        let proxy = failing_aws(&w.endpoint, &["AmazonSSM.PutParameter"], FAIL_MARKER);
        fx.failing = Some(conformance::through(proxy, |url| {
            make_at(url, w.region.clone(), mapping)
        }));
        conformance::run_all(&fx).await;
    }
}

async fn apply(
    t: &AwsSsmTarget,
    desired: &Collected,
) -> (TargetPlan, secretsync_core::diff::ApplyReport) {
    let plan = t.plan(desired, &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    (plan, r)
}

#[tokio::test]
async fn whole_create_read_back_update_and_unchanged_costs() {
    use conformance::Inspector;
    let w = World::new("us-east-2", "whole");
    let t = w.target(Mapping::Whole, |_| {}).await;
    let insp = w.inspector(Mapping::Whole);

    let v1 = bundle(&[
        ("a", json!({"k": 1})),
        ("b/c", json!({"k": 2, "n": {"x": true}})),
    ]);
    let (plan, r) = apply(&t, &v1).await;
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Added),
            ("b/c".into(), ChangeKind::Added)
        ])
    );
    assert_eq!((r.created, r.failure.as_deref()), (2, None));
    let (value, version, kind, tier) = w.param("a").await.unwrap();
    assert_eq!(
        (value.as_str(), version, kind.as_str(), tier.as_str()),
        (r#"{"k":1}"#, 1, "SecureString", "Standard")
    );
    assert_eq!(
        insp.value(&w.name("b/c")).await,
        Some(json!({"k": 2, "n": {"x": true}}))
    );
    let tags = w.tags("a").await;
    assert_eq!(
        tags.get("managed-by").map(String::as_str),
        Some("secretsync")
    );
    assert_eq!(
        tags.get("secretsync:owner").map(String::as_str),
        Some(OWNER)
    );
    assert_eq!(tags.get("secretsync:target").map(String::as_str), Some("t"));
    assert_eq!(
        tags.get("secretsync:version").map(String::as_str),
        Some("1")
    );
    assert_eq!(tags.get("secretsync:path").map(String::as_str), Some("a"));
    assert_eq!(tags["secretsync:fingerprint"].len(), 64);
    // The fingerprint key lives beside the values, encrypted.
    let key = w
        .ssm
        .get_parameter()
        .name(KEY_PARAMETER)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let key = key.parameter().unwrap();
    assert_eq!(key.r#type(), Some(&ParameterType::SecureString));
    assert_eq!(key.value().unwrap().len(), 64);

    // Read back: unchanged, no write, and cheap: one tag-filtered listing, one GetParameters.
    let before = t.calls();
    let plan = t.plan(&v1, &PlanContext::default()).await.unwrap();
    assert!(
        !plan.has_changes() && plan.counts().unchanged == 2,
        "{:?}",
        kinds(&plan)
    );
    assert_eq!(
        t.calls() - before,
        2,
        "1 DescribeParameters + 1 GetParameters"
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.created, r.updated, r.retagged, r.deleted), (0, 0, 0, 0));
    assert_eq!(insp.versions(&w.name("a")).await, 1);

    // Update one secret: only it gets a new version, and the marks follow.
    let v2 = bundle(&[
        ("a", json!({"k": 1})),
        ("b/c", json!({"k": 3, "n": {"x": true}})),
    ]);
    let (plan, r) = apply(&t, &v2).await;
    let b = plan.changes.iter().find(|c| c.path == "b/c").unwrap();
    assert_eq!(b.kind, ChangeKind::Modified);
    assert_eq!(
        b.keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["k"]
    );
    assert_eq!((r.updated, r.created, r.failure.as_deref()), (1, 0, None));
    assert_eq!(
        w.version("a").await,
        1,
        "the unchanged secret keeps its version"
    );
    assert_eq!(w.version("b/c").await, 2);
    assert_eq!(w.value("b/c").await.unwrap(), r#"{"k":3,"n":{"x":true}}"#);
    assert_eq!(w.tags("b/c").await["secretsync:version"], "2");

    // An out-of-band edit is seen (content is proven by value) and undone.
    w.ssm
        .put_parameter()
        .name(w.name("a"))
        .value(r#"{"k":"edited"}"#)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let (plan, r) = apply(&t, &v2).await;
    assert_eq!(kinds(&plan)["a"], ChangeKind::Modified);
    assert_eq!(r.updated, 1);
    assert_eq!(w.value("a").await.unwrap(), r#"{"k":1}"#);

    // Many secrets: a no-change plan costs one listing page and one GetParameters per 10
    // parameters (moto's pages hold 10; AWS's hold 50).
    let many: Vec<(String, Value)> = (0..25)
        .map(|i| (format!("m{i:02}"), json!({"i": i})))
        .collect();
    let many_ref: Vec<(&str, Value)> = many.iter().map(|(p, v)| (p.as_str(), v.clone())).collect();
    let desired = bundle(&many_ref);
    let t = w.target(Mapping::Whole, |p| p.delete_orphans = false).await;
    let (_, r) = apply(&t, &desired).await;
    assert_eq!((r.created, r.failure.as_deref()), (25, None));
    let before = t.calls();
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes());
    // 27 parameters of this target under the prefix: 3 pages, 3 GetParameters.
    assert_eq!(t.calls() - before, 3 + 3, "{:?}", kinds(&plan));
}

#[tokio::test]
async fn per_key_create_update_keys_and_stored_forms() {
    use conformance::Inspector;
    let w = World::new("us-west-1", "perkey");
    let t = w.target(Mapping::PerKey, |_| {}).await;
    let insp = w.inspector(Mapping::PerKey);

    let v1 = bundle(&[(
        "app/db",
        json!({"user": "admin", "port": 5432, "opts": {"tls": true}, "keep": "k"}),
    )]);
    let (plan, r) = apply(&t, &v1).await;
    assert_eq!(kinds(&plan)["app/db"], ChangeKind::Added);
    assert_eq!((r.created, r.failure.as_deref()), (1, None));
    assert_eq!(
        w.names().await,
        ["app/db/keep", "app/db/opts", "app/db/port", "app/db/user"]
    );
    assert_eq!(
        w.value("app/db/user").await.unwrap(),
        "admin",
        "a string as itself"
    );
    assert_eq!(
        w.value("app/db/port").await.unwrap(),
        "5432",
        "a number as JSON"
    );
    assert_eq!(w.value("app/db/opts").await.unwrap(), r#"{"tls":true}"#);
    let tags = w.tags("app/db/port").await;
    assert_eq!(tags["secretsync:path"], "app/db");
    assert_eq!(tags["secretsync:version"], "1");
    assert_eq!(
        tags["secretsync:fingerprint"],
        w.tags("app/db/user").await["secretsync:fingerprint"]
    );
    assert_eq!(
        insp.value(&w.name("app/db")).await,
        Some(json!({"user": "admin", "port": 5432, "opts": {"tls": true}, "keep": "k"}))
    );

    // Read back: unchanged (one Listed secret for four parameters), no new versions.
    let before = t.calls();
    let plan = t.plan(&v1, &PlanContext::default()).await.unwrap();
    assert!(
        !plan.has_changes() && plan.counts().unchanged == 1,
        "{:?}",
        kinds(&plan)
    );
    assert_eq!(
        t.calls() - before,
        2,
        "1 DescribeParameters + 1 GetParameters"
    );
    let versions = insp.versions(&w.name("app/db")).await;
    assert_eq!(versions, 4);

    // The stored form is what counts: the string "5432" is stored exactly like the number.
    let as_string = bundle(&[(
        "app/db",
        json!({"user": "admin", "port": "5432", "opts": {"tls": true}, "keep": "k"}),
    )]);
    let plan = t.plan(&as_string, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", plan.changes[0].keys);

    // A key added, one changed, one removed; the untouched one keeps its version.
    let v2 = bundle(&[(
        "app/db",
        json!({"user": "root", "port": 5432, "keep": "k", "new": [1, 2]}),
    )]);
    let (plan, r) = apply(&t, &v2).await;
    let c = &plan.changes[0];
    assert_eq!(c.kind, ChangeKind::Modified);
    let keys: Vec<(String, secretsync_core::diff::KeyChangeKind)> =
        c.keys.iter().map(|k| (k.key.clone(), k.kind)).collect();
    use secretsync_core::diff::KeyChangeKind::*;
    assert_eq!(
        keys,
        [
            ("new".to_string(), Added),
            ("opts".to_string(), Removed),
            ("user".to_string(), Changed)
        ]
    );
    assert_eq!((r.updated, r.failure.as_deref()), (1, None));
    assert_eq!(
        w.names().await,
        ["app/db/keep", "app/db/new", "app/db/port", "app/db/user"]
    );
    assert_eq!(w.value("app/db/new").await.unwrap(), "[1,2]");
    assert_eq!(w.value("app/db/user").await.unwrap(), "root");
    assert_eq!(w.version("app/db/user").await, 2);
    assert_eq!(
        w.version("app/db/keep").await,
        1,
        "an unchanged key keeps its version"
    );
    assert_eq!(w.version("app/db/port").await, 1);
    // Every parameter carries the new fingerprint of the whole secret.
    let fp = w.tags("app/db/keep").await["secretsync:fingerprint"].clone();
    for k in ["new", "port", "user"] {
        assert_eq!(
            w.tags(&format!("app/db/{k}")).await["secretsync:fingerprint"],
            fp
        );
    }
    assert_eq!(w.tags("app/db/user").await["secretsync:version"], "2");

    // Unchanged again; a stored string that differs from the desired value's form differs.
    let plan = t.plan(&v2, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes());
    w.ssm
        .put_parameter()
        .name(w.name("app/db/port"))
        .value("\"5432\"")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let plan = t.plan(&v2, &PlanContext::default()).await.unwrap();
    assert_eq!(plan.changes[0].kind, ChangeKind::Modified);
    assert_eq!(plan.changes[0].keys[0].key, "port");
}

#[tokio::test]
async fn orphans_kept_then_deleted_without_recovery_and_unmanaged_untouched() {
    let w = World::new("us-west-2", "orph");
    for mapping in [Mapping::Whole, Mapping::PerKey] {
        let w = World::new(
            "us-west-2",
            &format!("orph-{}", mapping.as_str().replace('_', "")),
        );
        let t = w.target(mapping, |p| p.delete_orphans = false).await;
        let all = bundle(&[
            ("a", json!({"k": "1"})),
            ("b", json!({"k": "2", "l": "3"})),
            ("c", json!({"k": "4"})),
        ]);
        let (_, r) = apply(&t, &all).await;
        assert_eq!(r.created, 3);
        // Unmanaged parameters under the prefix, one of them where a desired secret would go.
        let (u1, u2) = match mapping {
            Mapping::Whole => ("u", "d"),
            Mapping::PerKey => ("u/k", "d/k"),
        };
        w.put_unmanaged(u1, "theirs").await;
        w.put_unmanaged(u2, "theirs too").await;

        let fewer = bundle(&[("a", json!({"k": "1"})), ("d", json!({"k": "ours"}))]);
        let plan = t.plan(&fewer, &PlanContext::default()).await.unwrap();
        assert_eq!(plan.orphans_kept, [w.name("b"), w.name("c")], "{mapping:?}");
        assert_eq!(kinds(&plan)["d"], ChangeKind::Skipped);
        assert!(
            plan.changes
                .iter()
                .find(|c| c.path == "d")
                .unwrap()
                .reason
                .as_ref()
                .unwrap()
                .contains("adopt: true")
        );
        let r = t.apply(&plan, &Cancel::default()).await;
        assert_eq!((r.deleted, r.failure.as_deref()), (0, None));

        let t = w.target(mapping, |_| {}).await;
        let plan = t.plan(&fewer, &PlanContext::default()).await.unwrap();
        let deleted: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .map(|c| c.path.as_str())
            .collect();
        assert_eq!(deleted, ["b", "c"], "{mapping:?}");
        assert!(
            plan.changes
                .iter()
                .filter(|c| c.kind == ChangeKind::Deleted)
                .all(|c| c
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains("keeps no deleted"))),
            "the plan says a deletion is final"
        );
        let r = t.apply(&plan, &Cancel::default()).await;
        assert_eq!((r.deleted, r.failure.as_deref()), (2, None));
        let left = w.names().await;
        let expected: Vec<String> = match mapping {
            Mapping::Whole => vec!["a".into(), "d".into(), "u".into()],
            Mapping::PerKey => vec!["a/k".into(), "d/k".into(), "u/k".into()],
        };
        assert_eq!(left, expected, "{mapping:?}");
        assert_eq!(w.value(u1).await.unwrap(), "theirs");
        assert_eq!(w.value(u2).await.unwrap(), "theirs too");
        assert!(
            w.tags(u2).await.is_empty(),
            "the unmanaged parameter got no tags"
        );
    }
    drop(w);
}

#[tokio::test]
async fn adopt_takes_over_and_other_targets_are_left_alone() {
    for mapping in [Mapping::Whole, Mapping::PerKey] {
        let w = World::new(
            "eu-west-1",
            &format!("adopt-{}", mapping.as_str().replace('_', "")),
        );
        let rel = |s: &str, k: &str| match mapping {
            Mapping::Whole => s.to_string(),
            Mapping::PerKey => format!("{s}/{k}"),
        };
        let stored = |v: &str| match mapping {
            Mapping::Whole => format!("{{\"k\":\"{v}\"}}"),
            Mapping::PerKey => v.to_string(),
        };
        // Unmanaged: one with the desired value already, one with another.
        w.put_unmanaged(&rel("same", "k"), &stored("1")).await;
        w.put_unmanaged(&rel("diff", "k"), &stored("old")).await;
        // Another target of this deployment writes `theirs`.
        let other = w.target_via(&w.endpoint, "other", mapping, |_| {}).await;
        let (_, r) = apply(&other, &bundle(&[("theirs", json!({"k": "x"}))])).await;
        assert_eq!(r.created, 1);

        let t = w.target(mapping, |p| p.adopt = true).await;
        let desired = bundle(&[
            ("same", json!({"k": "1"})),
            ("diff", json!({"k": "new"})),
            ("theirs", json!({"k": "mine"})),
        ]);
        let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
        let same = plan.changes.iter().find(|c| c.path == "same").unwrap();
        assert!(
            same.kind == ChangeKind::Unchanged && same.retag && same.adopt,
            "{mapping:?}"
        );
        let diff = plan.changes.iter().find(|c| c.path == "diff").unwrap();
        assert!(diff.kind == ChangeKind::Modified && diff.adopt);
        let theirs = plan.changes.iter().find(|c| c.path == "theirs").unwrap();
        assert!(theirs.kind == ChangeKind::Skipped && theirs.invalid);
        assert!(theirs.reason.as_ref().unwrap().contains("target `other`"));
        let r = t.apply(&plan, &Cancel::default()).await;
        assert_eq!((r.updated, r.retagged, r.failure.as_deref()), (1, 1, None));
        assert_eq!(w.value(&rel("diff", "k")).await.unwrap(), stored("new"));
        assert_eq!(
            w.version(&rel("same", "k")).await,
            1,
            "adopted without a new version"
        );
        for s in ["same", "diff"] {
            let tags = w.tags(&rel(s, "k")).await;
            assert_eq!(
                tags.get("secretsync:target").map(String::as_str),
                Some("t"),
                "{s}"
            );
        }
        assert_eq!(w.value(&rel("theirs", "k")).await.unwrap(), stored("x"));
        assert_eq!(
            w.tags(&rel("theirs", "k")).await["secretsync:target"],
            "other"
        );
        // And now they are ours: nothing to do.
        let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
        assert!(!plan.has_changes(), "{:?}", kinds(&plan));
    }
}

#[tokio::test]
async fn tiers_sizes_and_names_are_checked_before_any_write() {
    let w = World::new("eu-west-2", "limits");
    let t = w.target(Mapping::Whole, |_| {}).await;
    // `{"k":"…"}` is 8 bytes around the string.
    let desired = bundle(&[
        ("std", json!({"k": "x".repeat(4096 - 8)})),
        ("adv", json!({"k": "x".repeat(4097 - 8)})),
        ("max", json!({"k": "x".repeat(8192 - 8)})),
        // moto accepts 9,000 bytes; AWS does not: refused here.
        ("big", json!({"k": "x".repeat(9000)})),
        ("bad name", json!({"k": "1"})),
        ("deep/1/2/3/4/5/6/7/8/9/10/11/12/13/14", json!({"k": "1"})),
    ]);
    let (plan, r) = apply(&t, &desired).await;
    let invalid: Vec<&str> = plan.invalid().map(|c| c.path.as_str()).collect();
    assert_eq!(
        invalid,
        ["bad name", "big", "deep/1/2/3/4/5/6/7/8/9/10/11/12/13/14"]
    );
    let big = plan.changes.iter().find(|c| c.path == "big").unwrap();
    assert!(
        big.reason.as_ref().unwrap().contains("at most 8192"),
        "{big:?}"
    );
    assert_eq!((r.created, r.failure.as_deref()), (3, None));
    assert_eq!(w.names().await, ["adv", "max", "std"]);
    assert_eq!(w.param("std").await.unwrap().3, "Standard");
    assert_eq!(w.param("adv").await.unwrap().3, "Advanced");
    assert_eq!(w.param("max").await.unwrap().3, "Advanced");

    // per_key: each value alone decides; a key that is no name segment is an invalid secret.
    let w = World::new("eu-west-2", "limits-pk");
    let t = w.target(Mapping::PerKey, |_| {}).await;
    let desired = bundle(&[
        ("ok", json!({"a": "x".repeat(4096), "b": "y".repeat(5000)})),
        ("slash", json!({"good": "1", "a/b": "2"})),
        ("space", json!({"a b": "1"})),
        ("empty", json!({"e": ""})),
        ("huge", json!({"a": "z".repeat(8193)})),
    ]);
    let (plan, r) = apply(&t, &desired).await;
    let invalid: Vec<&str> = plan.invalid().map(|c| c.path.as_str()).collect();
    assert_eq!(invalid, ["empty", "huge", "slash", "space"]);
    assert!(
        plan.changes
            .iter()
            .find(|c| c.path == "slash")
            .unwrap()
            .reason
            .as_ref()
            .unwrap()
            .contains("key `a/b`")
    );
    assert_eq!((r.created, r.failure.as_deref()), (1, None));
    assert_eq!(
        w.names().await,
        ["ok/a", "ok/b"],
        "nothing written for invalid secrets"
    );
    assert_eq!(w.param("ok/a").await.unwrap().3, "Standard");
    assert_eq!(w.param("ok/b").await.unwrap().3, "Advanced");
}

#[tokio::test]
async fn whole_failed_write_rolls_the_target_back() {
    let w = World::new("eu-west-3", "rb");
    let t = w.target(Mapping::Whole, |_| {}).await;
    let (_, r) = apply(
        &t,
        &bundle(&[("a", json!({"v": "old"})), ("o", json!({"v": 1}))]),
    )
    .await;
    assert_eq!(r.created, 2);
    let a_tags = w.tags("a").await;

    let proxy = failing_aws(&w.endpoint, &["AmazonSSM.PutParameter"], "zz-fail");
    let t = w
        .target_via(&proxy.url(), "t", Mapping::Whole, |_| {})
        .await;
    let desired = bundle(&[
        ("a", json!({"v": "new"})),
        ("b", json!({"v": 1})),
        ("zz-fail", json!({"v": 2})),
    ]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    assert_eq!(plan.counts().changes(), 4, "{:?}", kinds(&plan));
    let r = t.apply(&plan, &Cancel::default()).await;
    conformance::assert_injected_failure_rolled_back(&r);
    assert_eq!(
        r.rolled_back, 2,
        "the update of a and the creation of b: {r:?}"
    );

    assert_eq!(w.value("a").await.unwrap(), r#"{"v":"old"}"#);
    assert_eq!(
        w.version("a").await,
        3,
        "the old value is back as a new version"
    );
    let tags = w.tags("a").await;
    assert_eq!(
        tags["secretsync:fingerprint"],
        a_tags["secretsync:fingerprint"]
    );
    assert_eq!(
        tags["secretsync:version"], "3",
        "the mark names the version holding it"
    );
    assert_eq!(
        w.names().await,
        ["a", "o"],
        "b removed, the orphan never deleted"
    );
    // And the next plan sees the target as it was before.
    let plan = t
        .plan(
            &bundle(&[("a", json!({"v": "old"})), ("o", json!({"v": 1}))]),
            &PlanContext::default(),
        )
        .await
        .unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

/// Changing `kms_key_id` re-encrypts every managed SecureString still under the old key: the
/// plan shows a `kms_key_id` change (a re-encryption) on secrets whose values are unchanged, the
/// apply writes each parameter again with the same value under the new key (a new version), a
/// re-run plans nothing, and a failed apply puts the old key back.
#[tokio::test]
async fn a_new_kms_key_re_encrypts_every_parameter_and_a_failure_puts_the_old_one_back() {
    let w = World::new("ca-west-1", "kms");
    let desired = bundle(&[
        ("a", json!({"user": "u", "pw": "p1"})),
        ("b", json!({"n": 5})),
    ]);
    let one = w.keyed(&w.endpoint, Mapping::PerKey, "alias/one").await;
    let (_, r) = apply(&one, &desired).await;
    assert_eq!(r.created, 2, "{r:?}");
    let under = |k: &str, v: i64| {
        ["a/pw", "a/user", "b/n"]
            .into_iter()
            .map(|n| (n.to_string(), (Some(k.to_string()), v)))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(w.keys().await, under("alias/one", 1));
    // The same key in another form (its alias ARN) is the same key: nothing to do.
    let arn = w
        .keyed(
            &w.endpoint,
            Mapping::PerKey,
            "arn:aws:kms:ca-west-1:123456789012:alias/one",
        )
        .await;
    let plan = arn.plan(&desired, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));

    let two = w.keyed(&w.endpoint, Mapping::PerKey, "alias/two").await;
    let plan = two.plan(&desired, &PlanContext::default()).await.unwrap();
    let planned: Vec<_> = plan
        .changes
        .iter()
        .map(|c| {
            (
                c.path.as_str(),
                c.kind,
                c.settings
                    .iter()
                    .map(|s| (s.setting.as_str(), s.old.as_deref(), s.new.as_deref()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [
            (
                "a",
                ChangeKind::Unchanged,
                vec![("kms_key_id", Some("alias/one"), Some("alias/two"))]
            ),
            (
                "b",
                ChangeKind::Unchanged,
                vec![("kms_key_id", Some("alias/one"), Some("alias/two"))]
            ),
        ]
    );
    assert!(
        plan.changes[0].settings[0]
            .note
            .as_deref()
            .unwrap()
            .starts_with("re-encrypt: 2 of 2 parameters"),
        "{:?}",
        plan.changes[0].settings
    );
    let r = two.apply(&plan, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
    assert_eq!((r.created, r.updated, r.retagged), (0, 0, 2), "{r:?}");
    assert_eq!(w.keys().await, under("alias/two", 2));
    assert_eq!(w.value("a/pw").await.as_deref(), Some("p1"), "same value");
    assert_eq!(w.value("b/n").await.as_deref(), Some("5"));
    assert_eq!(w.tags("b/n").await["secretsync:version"], "2");
    let plan = two.plan(&desired, &PlanContext::default()).await.unwrap();
    assert!(
        !plan.has_changes(),
        "a re-run plans nothing: {:?}",
        kinds(&plan)
    );

    // A failing apply (the new secret's write fails) takes the re-encryptions back.
    let proxy = failing_aws(&w.endpoint, &["AmazonSSM.PutParameter"], "zz-fail");
    let three = w.keyed(&proxy.url(), Mapping::PerKey, "alias/three").await;
    let mut failing = desired.clone();
    failing.secrets.insert(
        "zz-fail".into(),
        secretsync_core::merge::secret(json!({"k": 1})),
    );
    let plan = three.plan(&failing, &PlanContext::default()).await.unwrap();
    let r = three.apply(&plan, &Cancel::default()).await;
    conformance::assert_injected_failure_rolled_back(&r);
    let keys = w.keys().await;
    assert!(
        keys.values()
            .all(|(k, _)| k.as_deref() == Some("alias/two")),
        "the old key is back: {keys:?}"
    );
    assert_eq!(w.value("a/pw").await.as_deref(), Some("p1"));
    let plan = two.plan(&desired, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", kinds(&plan));
}

#[tokio::test]
async fn per_key_failed_apply_restores_changed_created_and_deleted_keys() {
    let w = World::new("eu-central-1", "rbpk");
    let t = w.target(Mapping::PerKey, |_| {}).await;
    let start = bundle(&[
        ("s", json!({"k1": "1", "k2": "2", "k3": "3"})),
        ("gone", json!({"x": "orphan"})),
    ]);
    let (_, r) = apply(&t, &start).await;
    assert_eq!(r.created, 2);
    // A tag of someone else's on a parameter that the failed apply deletes and recreates.
    w.ssm
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(w.name("s/k3"))
        .tags(
            aws_sdk_ssm::types::Tag::builder()
                .key("team")
                .value("db")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The orphan's deletion is the last call and fails.
    let proxy = failing_aws(&w.endpoint, &["AmazonSSM.DeleteParameters"], "gone");
    let t = w
        .target_via(&proxy.url(), "t", Mapping::PerKey, |_| {})
        .await;
    let desired = bundle(&[("s", json!({"k1": "1", "k2": "22", "k4": "4"}))]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("gone".into(), ChangeKind::Deleted),
            ("s".into(), ChangeKind::Modified)
        ])
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("injected failure")),
        "{r:?}"
    );
    assert_eq!(r.rolled_back, 1, "{r:?}");
    assert!(
        r.rollback_failures.is_empty() && r.left_changed.is_empty(),
        "{r:?}"
    );

    assert_eq!(w.names().await, ["gone/x", "s/k1", "s/k2", "s/k3"]);
    assert_eq!(w.value("s/k2").await.unwrap(), "2");
    assert_eq!(
        w.value("s/k3").await.unwrap(),
        "3",
        "the removed key is recreated"
    );
    let k3 = w.tags("s/k3").await;
    assert_eq!(
        k3.get("team").map(String::as_str),
        Some("db"),
        "with all its tags"
    );
    assert_eq!(k3["secretsync:target"], "t");
    assert_eq!(
        w.tags("s/k1").await["secretsync:fingerprint"],
        k3["secretsync:fingerprint"]
    );
    let t = w.target(Mapping::PerKey, |_| {}).await;
    let plan = t.plan(&start, &PlanContext::default()).await.unwrap();
    assert!(
        !plan.has_changes(),
        "back where it started: {:?}",
        kinds(&plan)
    );
}

#[tokio::test]
async fn rolled_back_adoption_leaves_the_parameter_unmanaged() {
    let w = World::new("ap-south-1", "rbad");
    w.put_unmanaged("u/k", "theirs").await;
    let proxy = failing_aws(&w.endpoint, &["AmazonSSM.PutParameter"], "zz-fail");
    let t = w
        .target_via(&proxy.url(), "t", Mapping::PerKey, |p| p.adopt = true)
        .await;
    let plan = t
        .plan(
            &bundle(&[("u", json!({"k": "ours"})), ("zz-fail", json!({"v": "1"}))]),
            &PlanContext::default(),
        )
        .await
        .unwrap();
    assert!(plan.changes.iter().any(|c| c.path == "u" && c.adopt));
    let r = t.apply(&plan, &Cancel::default()).await;
    assert!(
        r.failure.is_some() && r.rollback_failures.is_empty(),
        "{r:?}"
    );
    assert_eq!(w.value("u/k").await.unwrap(), "theirs");
    assert!(
        w.tags("u/k").await.is_empty(),
        "the ownership tags added by the adoption are removed"
    );
    assert_eq!(w.names().await, ["u/k"]);
}

#[tokio::test]
async fn cancelled_apply_writes_nothing_and_dry_runs_create_no_key() {
    // A region nothing else uses: its fingerprint key is removed first.
    let w = World::new("ap-northeast-1", "cx");
    let _ = w.ssm.delete_parameter().name(KEY_PARAMETER).send().await;
    let t = w.target(Mapping::PerKey, |_| {}).await;
    let desired = bundle(&[("a", json!({"v": "1"})), ("b", json!({"v": "2"}))]);
    let dry = PlanContext {
        dry_run: true,
        ..PlanContext::default()
    };
    let plan = t.plan(&desired, &dry).await.unwrap();
    assert_eq!(plan.counts().added, 2);
    let key = w.ssm.get_parameter().name(KEY_PARAMETER).send().await;
    assert!(
        key.is_err(),
        "a dry run writes nothing, not even the fingerprint key"
    );

    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    let cancel = Cancel::default();
    cancel.cancel("cancelled by a test");
    let r = t.apply(&plan, &cancel).await;
    assert_eq!((r.created, r.updated, r.deleted), (0, 0, 0));
    assert!(
        r.cancelled
            && r.failure
                .as_deref()
                .is_some_and(|f| f.contains("cancelled")),
        "{r:?}"
    );
    assert!(w.names().await.is_empty());
}

/// The Inspector sees what the target wrote, in both mappings (the conformance contract).
#[tokio::test]
async fn inspector_follows_the_conformance_contract() {
    for mapping in [Mapping::Whole, Mapping::PerKey] {
        let w = World::new(
            "ca-central-1",
            &format!("insp-{}", mapping.as_str().replace('_', "")),
        );
        let fx = fixture(&w, mapping);
        let t = (fx.make)("insp", OWNER, policy(&fx.prefix)).await;
        let name = fx.inspector.name(&fx.prefix, "app/x");
        assert_eq!(name, w.name("app/x"));
        assert!(fx.inspector.is_deleted(&name).await);
        let desired = bundle(&[("app/x", json!({"user": "u", "n": {"a": 1}}))]);
        let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
        let r = t.apply(&plan, &Cancel::default()).await;
        assert_eq!(r.created, 1);
        assert_eq!(
            fx.inspector.value(&name).await,
            Some(json!({"user": "u", "n": {"a": 1}}))
        );
        let marks = fx.inspector.marks(&name).await.unwrap();
        assert_eq!(marks["secretsync:target"], "insp");
        let versions = fx.inspector.versions(&name).await;
        let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
        assert!(!plan.has_changes());
        assert_eq!(fx.inspector.versions(&name).await, versions);
        let other = fx.inspector.name(&fx.prefix, "unmanaged");
        fx.inspector
            .create_unmanaged(&other, &json!({"k": "v"}))
            .await;
        assert_eq!(fx.inspector.value(&other).await, Some(json!({"k": "v"})));
        assert!(fx.inspector.marks(&other).await.unwrap().is_empty());
    }
}

/// A proxy that forwards everything, but answers the first `PutParameter` mentioning `marker`
/// with a 500 after moto applied it (an answer lost on the way back).
fn lossy_proxy(upstream: &str, marker: &str) -> (Proxy, RuleId) {
    let proxy = Proxy::start(upstream);
    let lost = proxy.add(
        Rule::amz_target("AmazonSSM.PutParameter")
            .body_contains(marker)
            .then(Action::aws_error(500, "InternalServerError", "answer lost").after_forward())
            .times(1),
    );
    (proxy, lost)
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_ours() {
    let w = World::new("ap-southeast-1", "lost");
    let (proxy, lost) = lossy_proxy(&w.endpoint, "lost-answer");
    let t = w
        .target_via(&proxy.url(), "t", Mapping::Whole, |_| {})
        .await;
    let (_, r) = apply(&t, &bundle(&[("lost-answer", json!({"v": "1"}))])).await;
    // The SDK retried the create and met ParameterAlreadyExists: it landed, with our tags.
    assert_eq!((r.created, r.failure.as_deref()), (1, None), "{r:?}");
    assert_eq!(proxy.hits(lost), 1, "the answer of the create was lost");
    assert_eq!(w.version("lost-answer").await, 1);
    assert_eq!(w.tags("lost-answer").await["secretsync:target"], "t");
}

#[tokio::test]
async fn adopt_from_re_marks_without_new_versions_and_plain_strings_are_rewritten_encrypted() {
    let w = World::new("sa-east-1", "rename");
    let old = w
        .target_via(&w.endpoint, "old-name", Mapping::PerKey, |_| {})
        .await;
    let start = bundle(&[("a", json!({"k": "1", "l": "2"})), ("b", json!({"k": "3"}))]);
    let (_, r) = apply(&old, &start).await;
    assert_eq!(r.created, 2);

    // Without adopt_from, the old target's parameters are someone else's.
    let t = w.target(Mapping::PerKey, |_| {}).await;
    let keep_a = bundle(&[("a", json!({"k": "1", "l": "2"}))]);
    let plan = t.plan(&keep_a, &PlanContext::default()).await.unwrap();
    assert_eq!(plan.invalid().count(), 1, "{:?}", kinds(&plan));
    assert_eq!(plan.counts().deleted, 0);

    let t = w
        .target(Mapping::PerKey, |p| p.adopt_from = vec!["old-name".into()])
        .await;
    let plan = t.plan(&keep_a, &PlanContext::default()).await.unwrap();
    let a = plan.changes.iter().find(|c| c.path == "a").unwrap();
    assert!(
        a.kind == ChangeKind::Unchanged && a.retag,
        "{:?}",
        kinds(&plan)
    );
    assert_eq!(
        kinds(&plan)["b"],
        ChangeKind::Deleted,
        "the old target's orphan"
    );
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.retagged, r.deleted, r.failure.as_deref()), (1, 1, None));
    assert_eq!(w.names().await, ["a/k", "a/l"]);
    for k in ["a/k", "a/l"] {
        assert_eq!(w.tags(k).await["secretsync:target"], "t");
        assert_eq!(w.version(k).await, 1, "re-marked without a new version");
    }
    let plan = t.plan(&keep_a, &PlanContext::default()).await.unwrap();
    assert!(!plan.has_changes());

    // Someone turns one of ours into a plain String with the same value: written again,
    // encrypted.
    w.ssm
        .put_parameter()
        .name(w.name("a/l"))
        .value("2")
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let plan = t.plan(&keep_a, &PlanContext::default()).await.unwrap();
    let a = &plan.changes[0];
    assert_eq!(a.kind, ChangeKind::Modified);
    assert!(a.reason.as_ref().unwrap().contains("SecureString"));
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.updated, r.failure.as_deref()), (1, None));
    let (value, _, kind, _) = w.param("a/l").await.unwrap();
    assert_eq!((value.as_str(), kind.as_str()), ("2", "SecureString"));
    assert_eq!(w.version("a/k").await, 1, "the other key is untouched");
}

#[tokio::test]
async fn a_secret_failing_half_way_takes_back_its_own_parameters() {
    let w = World::new("ap-southeast-2", "half");
    let proxy = failing_aws(&w.endpoint, &["AmazonSSM.PutParameter"], "zz-fail");
    let t = w
        .target_via(&proxy.url(), "t", Mapping::PerKey, |_| {})
        .await;
    let (_, r) = apply(&t, &bundle(&[("s", json!({"a": "1", "zz-fail": "2"}))])).await;
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("s/zz-fail")),
        "{r:?}"
    );
    assert_eq!((r.created, r.rolled_back), (0, 0), "{r:?}");
    assert!(
        r.rollback_failures.is_empty() && r.left_changed.is_empty(),
        "{r:?}"
    );
    assert!(
        w.names().await.is_empty(),
        "the key written before the failure is removed"
    );
}

/// The config example in the target's module docs loads, with the settings it shows.
#[test]
fn module_docs_example_loads() {
    let docs = include_str!("../src/targets/aws_ssm/mod.rs");
    let example: String = docs
        .lines()
        .skip_while(|l| !l.starts_with("//! ```yaml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n")
        .collect();
    let yaml = format!("vault_sources:\n  - mount: secret/base/\n{example}");
    let loaded = secretsync_core::config::load(&yaml, &|_: &str| None);
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("{}", loaded.diagnostics));
    let t = &config.targets[0];
    let secretsync_core::config::TargetBackend::AwsSsm(s) = &t.backend else {
        panic!("an aws_ssm target")
    };
    assert_eq!(
        (s.mapping, s.kms_key_id.as_deref(), s.writes_per_second),
        (Mapping::PerKey, Some("alias/params"), 3)
    );
    assert_eq!(
        (t.policy.secret_prefix.as_str(), t.policy.concurrency),
        ("/myorg/prod/", 4)
    );
}
