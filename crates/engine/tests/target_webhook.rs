//! The `webhook` target against a receiver started by the test (`Recorder`, which records every
//! request) and an S3 merge store in moto (the state): the conformance suite's steps that apply
//! to a write-only target, then the checks only this kind has.
//!
//! The [`Inspector`] reads the receiver's log (a value is the last body POSTed for a name; a
//! version is one POST; deleted: the last body is `{name, deleted: true}`) and the state objects
//! in the bucket (the marks: the owner and target of the state that records a name), never
//! through the target under test.
//!
//! Steps of the suite that do not apply, and why (not faked):
//! * `unmanaged_never_touched`, `adopt`: a receiver holds nothing SecretSync did not send; there
//!   is no unmanaged secret to create, skip or take over.
//! * `ownership_scope`: the state is per owner scope and target, and a receiver shows no marks,
//!   so another deployment's deliveries are invisible (two deployments POSTing one name to one
//!   receiver are the receiver's to arbitrate).
//! * `rollback_after_failure`: a POST cannot be unsent; instead a failure keeps what was
//!   delivered recorded ([`a_receiver_that_stays_down_fails_and_keeps_what_was_delivered`]).
//! * `update`'s key-level changes: old values are never stored, so a change shows none
//!   ([`an_update_is_delivered_as_the_next_version_without_key_details`] checks the rest).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secretsync_core::config::{MergeStoreConfig, Sensitive, TargetPolicy};
use secretsync_core::diff::{ChangeKind, MANAGED_VALUE, TAG_MANAGED, TAG_OWNER, TAG_TARGET};
use secretsync_core::targets::webhook::WebhookSettings;
use secretsync_engine::aws::{AwsContext, CallCounter};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::lease::s3::S3Leases;
use secretsync_engine::targets::webhook::WebhookTarget;
use secretsync_engine::targets::{PlanContext, Target};
use secretsync_test_support::http::Response;
use secretsync_test_support::proxy::Recorder;
use serde_json::{Value, json};

mod common;
mod conformance;
use common::aws::{endpoint, sdk};
use common::{bundle, kinds, unique};
use conformance::{Fixture, Inspector, MakeTarget};

const REGION: &str = "us-east-1";

fn aws() -> AwsContext {
    AwsContext::from_sdk_config(sdk(&endpoint(), REGION))
}

/// One test's bucket (the merge store) and receiver, and the targets' `batch_size`.
struct World {
    bucket: String,
    s3: aws_sdk_s3::Client,
    receiver: Recorder,
    batch_size: u32,
}

impl World {
    async fn new(receiver: Recorder) -> Arc<World> {
        Self::batched(receiver, 1).await
    }

    /// Targets that POST up to `batch_size` changes at once.
    async fn batched(receiver: Recorder, batch_size: u32) -> Arc<World> {
        let bucket = unique("whk-");
        let cfg = sdk(&endpoint(), REGION);
        let s3 = AwsContext::from_sdk_config(cfg.clone()).s3(&cfg);
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e:?}"));
        Arc::new(World {
            bucket,
            s3,
            receiver,
            batch_size,
        })
    }

    fn store_cfg(&self) -> MergeStoreConfig {
        MergeStoreConfig::S3 {
            bucket: self.bucket.clone(),
            prefix: "store/".into(),
            region: Some(REGION.into()),
            kms_key_id: None,
        }
    }

    /// The target as the registry builds it.
    async fn target(&self, name: &str, owner: &str, policy: TargetPolicy) -> Arc<dyn Target> {
        self.target_with(name, owner, policy, 2).await
    }

    async fn target_with(
        &self,
        name: &str,
        owner: &str,
        policy: TargetPolicy,
        max_attempts: u32,
    ) -> Arc<dyn Target> {
        let aws = aws();
        let store_cfg = self.store_cfg();
        let store = secretsync_engine::store::build(&store_cfg, Some(&aws), None)
            .await
            .unwrap();
        let settings = WebhookSettings {
            url: Sensitive::new(format!("{}/in", self.receiver.url())),
            secret: Sensitive::new("k"),
            timeout: std::time::Duration::from_secs(5),
            max_attempts,
            batch_size: self.batch_size,
        };
        // As `targets::webhook::build` makes it (the registry's path is driven end to end by
        // the binary's tests; its `Clients` borrow is not `Send`, which a `MakeTarget` must be).
        let cfg = sdk(&endpoint(), REGION);
        let leases = S3Leases::new(
            AwsContext::from_sdk_config(cfg.clone()).s3(&cfg),
            CallCounter::default(),
            self.bucket.clone(),
            "store/".into(),
            None,
        );
        Arc::new(WebhookTarget::new(
            name,
            owner,
            &policy,
            &settings,
            store,
            Arc::new(leases),
            secretsync_engine::hook::client(settings.timeout).unwrap(),
        ))
    }

    /// Every body POSTed for `name`, in order; a batch's items count as bodies of their own
    /// (without their `delivery` id).
    fn bodies(&self, name: &str) -> Vec<Value> {
        self.receiver
            .requests()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .flat_map(|b| match b.get("secrets") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        i.as_object_mut().map(|o| o.remove("delivery"));
                        i
                    })
                    .collect(),
                _ => vec![b],
            })
            .filter(|b| b["name"] == name)
            .collect()
    }

    /// Every state object in the bucket.
    async fn states(&self) -> Vec<Value> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("store/.secretsync/webhook/")
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        for o in listed.contents() {
            let got = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(o.key().unwrap())
                .send()
                .await
                .unwrap();
            let bytes = got.body.collect().await.unwrap().into_bytes();
            out.push(serde_json::from_slice(&bytes).unwrap());
        }
        out
    }
}

#[async_trait]
impl Inspector for World {
    fn name(&self, prefix: &str, path: &str) -> String {
        format!("{prefix}{path}")
    }
    async fn value(&self, name: &str) -> Option<Value> {
        let last = self.bodies(name).pop()?;
        last.get("value").cloned()
    }
    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let states = self.states().await;
        let s = states.iter().find(|s| s["secrets"].get(name).is_some())?;
        Some(BTreeMap::from([
            (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
            (TAG_OWNER.to_string(), s["owner"].as_str()?.to_string()),
            (TAG_TARGET.to_string(), s["target"].as_str()?.to_string()),
        ]))
    }
    async fn versions(&self, name: &str) -> usize {
        self.bodies(name)
            .iter()
            .filter(|b| b.get("value").is_some())
            .count()
    }
    async fn create_unmanaged(&self, _name: &str, _value: &Value) {
        unreachable!("a receiver holds nothing SecretSync did not send: not applicable")
    }
    async fn is_deleted(&self, name: &str) -> bool {
        self.bodies(name)
            .pop()
            .is_some_and(|b| b == json!({"name": name, "deleted": true}))
    }
}

fn fixture(world: &Arc<World>) -> Fixture {
    let w = world.clone();
    let make: MakeTarget = Arc::new(move |name: &str, owner: &str, policy: TargetPolicy| {
        let (w, name, owner) = (w.clone(), name.to_string(), owner.to_string());
        Box::pin(async move { w.target(&name, &owner, policy).await })
    });
    Fixture {
        make,
        inspector: world.clone(),
        prefix: format!("{}/", unique("conf")),
        failing: None,
    }
}

#[tokio::test]
async fn conformance_steps_that_apply_to_a_write_only_target() {
    let world = World::new(Recorder::start(Response::new(200, "ok"))).await;
    let f = fixture(&world);
    conformance::create_and_read_back(&f).await;
    conformance::unchanged_gets_no_write(&f).await;
    conformance::orphans(&f).await;
    conformance::names_and_sizes_rejected(&f).await;
    conformance::cancellation(&f).await;
}

#[tokio::test]
async fn an_update_is_delivered_as_the_next_version_without_key_details() {
    let world = World::new(Recorder::start(Response::new(200, "ok"))).await;
    let t = world.target("hook", "o", common::policy("p/")).await;
    let first = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]);
    conformance::sync(&t, &first).await;
    let desired = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 3}))]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    assert_eq!(
        kinds(&plan),
        BTreeMap::from([
            ("a".into(), ChangeKind::Unchanged),
            ("b".into(), ChangeKind::Modified)
        ])
    );
    let b = plan.changes.iter().find(|c| c.path == "b").unwrap();
    assert_eq!(
        (b.old_version.as_deref(), b.new_version.as_deref()),
        (Some("1"), Some("2"))
    );
    assert!(b.keys.is_empty() && b.old_value.is_none(), "{b:?}");
    let r = t.apply(&plan, &Cancel::default()).await;
    assert_eq!((r.updated, r.created, r.failure.as_deref()), (1, 0, None));
    assert_eq!(
        world.bodies("p/b").last(),
        Some(&json!({"name": "p/b", "path": "b", "version": 2, "value": {"k": 3}}))
    );
    assert_eq!(world.bodies("p/a").len(), 1);
}

#[tokio::test]
async fn a_receiver_that_stays_down_fails_and_keeps_what_was_delivered() {
    let world = World::new(Recorder::scripted(
        vec![Response::new(200, "ok")],
        Response::new(503, "down"),
    ))
    .await;
    let policy = TargetPolicy {
        concurrency: 1,
        ..common::policy("p/")
    };
    let t = world.target_with("hook", "o", policy.clone(), 2).await;
    let desired = bundle(&[("a", json!({"k": 1})), ("b", json!({"k": 2}))]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.clone().expect("the target failed");
    assert!(
        failure.contains("was not delivered to http://127.0.0.1:")
            && failure.contains("the hook answered 503"),
        "{failure}"
    );
    assert!(!failure.contains("/in"), "the URL's path: {failure}");
    // One delivered (a create that cannot be undone: left written), one given up.
    assert_eq!((r.created, r.rolled_back), (1, 0), "{r:?}");
    assert_eq!(r.left_changed.len(), 1, "{r:?}");
    assert!(r.rollback_failures[0].contains("cannot be undone"), "{r:?}");
    let delivered = r.left_changed[0].clone();
    let states = world.states().await;
    let recorded: Vec<&String> = states[0]["secrets"].as_object().unwrap().keys().collect();
    assert_eq!(recorded, vec![&delivered]);
    // A new target (nothing in memory) plans only the other one.
    let again = world.target_with("hook", "o", policy, 2).await;
    let plan = again.plan(&desired, &PlanContext::default()).await.unwrap();
    let added: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Added)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(added.len(), 1);
    assert_ne!(added[0], delivered);
}

#[tokio::test]
async fn a_dry_run_plan_sends_and_writes_nothing() {
    let world = World::new(Recorder::start(Response::new(200, "ok"))).await;
    let t = world.target("hook", "o", common::policy("p/")).await;
    let dry = PlanContext {
        dry_run: true,
        ..Default::default()
    };
    let plan = t
        .plan(&bundle(&[("a", json!({"k": 1}))]), &dry)
        .await
        .unwrap();
    assert_eq!(plan.changes[0].kind, ChangeKind::Added);
    assert!(world.receiver.requests().is_empty());
    assert!(world.states().await.is_empty());
    assert_eq!(t.calls(), 0);
}

#[tokio::test]
async fn a_signal_stops_the_retries_of_a_delivery() {
    let world = World::new(Recorder::start(Response::new(500, "down"))).await;
    let t = world
        .target_with("hook", "o", common::policy("p/"), 10)
        .await;
    let plan = t
        .plan(&bundle(&[("a", json!({"k": 1}))]), &PlanContext::default())
        .await
        .unwrap();
    let cancel = Cancel::new();
    let (c, w) = (cancel.clone(), world.clone());
    // Ten attempts would wait about a minute between them; the signal comes once the first
    // attempt was answered, during the wait before the second.
    tokio::spawn(async move {
        while w.receiver.requests().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        c.cancel("cancelled by a test");
    });
    let r = t.apply(&plan, &cancel).await;
    let failure = r.failure.clone().expect("not delivered");
    assert!(failure.contains("not retried: cancelled"), "{failure}");
    assert!(
        world.receiver.requests().len() < 10,
        "{:?}",
        world.receiver.requests().len()
    );
    assert_eq!(r.created, 0);
    assert!(
        world.states().await.is_empty(),
        "nothing delivered, nothing recorded"
    );
}

#[tokio::test]
async fn a_deleted_state_starts_over_with_new_idempotency_keys() {
    let world = World::new(Recorder::start(Response::new(200, "ok"))).await;
    let desired = bundle(&[("a", json!({"k": 1}))]);
    let t = world.target("hook", "o", common::policy("p/")).await;
    conformance::sync(&t, &desired).await;
    let listed = world
        .s3
        .list_objects_v2()
        .bucket(&world.bucket)
        .prefix("store/.secretsync/webhook/")
        .send()
        .await
        .unwrap();
    let key = listed.contents()[0].key().unwrap().to_string();
    world
        .s3
        .delete_object()
        .bucket(&world.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let again = world.target("hook", "o", common::policy("p/")).await;
    let (plan, _) = conformance::sync(&again, &desired).await;
    assert_eq!(plan.changes[0].kind, ChangeKind::Added);
    let got = world.receiver.requests();
    assert_eq!(got.len(), 2);
    // The same body (version 1 again), a new key: the receiver applies it.
    assert_eq!(got[0].body, got[1].body);
    assert_ne!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key")
    );
}

#[tokio::test]
async fn conformance_steps_in_batches() {
    let world = World::batched(Recorder::start(Response::new(200, "ok")), 3).await;
    let f = fixture(&world);
    conformance::create_and_read_back(&f).await;
    conformance::unchanged_gets_no_write(&f).await;
    conformance::orphans(&f).await;
    conformance::names_and_sizes_rejected(&f).await;
    conformance::cancellation(&f).await;
}

/// `batch_size: 3` and seven new secrets: three POSTs of 3, 3 and 1 items, each body signed
/// as a whole, each item with its own delivery id and the batch with a key of its own; a
/// re-run posts nothing; two orphans go in one POST of two deletions.
#[tokio::test]
async fn changes_go_in_signed_batches_of_batch_size() {
    let world = World::batched(Recorder::start(Response::new(200, "ok")), 3).await;
    let t = world.target("hook", "o", common::policy("p/")).await;
    let seven: Vec<(String, Value)> = (0..7).map(|i| (format!("s{i}"), json!({"n": i}))).collect();
    let refs: Vec<(&str, Value)> = seven.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let (_, r) = conformance::sync(&t, &bundle(&refs)).await;
    assert_eq!((r.created, r.failure.as_deref()), (7, None), "{r:?}");
    let got = world.receiver.requests();
    let sizes: Vec<usize> = got
        .iter()
        .map(|req| {
            let b: Value = serde_json::from_slice(&req.body).unwrap();
            b["secrets"].as_array().expect("a batch body").len()
        })
        .collect();
    assert_eq!(sizes, [3, 3, 1]);
    let mut item_ids = std::collections::BTreeSet::new();
    for req in &got {
        assert_eq!(
            req.header("x-secretsync-signature"),
            Some(secretsync_core::notify::signature("k", &req.body).as_str()),
            "the signature is over the whole batch body"
        );
        assert_eq!(req.header("x-secretsync-event"), Some("secrets_changed"));
        let key = req
            .header("idempotency-key")
            .expect("a batch key")
            .to_string();
        let b: Value = serde_json::from_slice(&req.body).unwrap();
        for item in b["secrets"].as_array().unwrap() {
            let id = item["delivery"].as_str().expect("an item id").to_string();
            assert_eq!(id.len(), 32);
            assert_ne!(id, key);
            assert!(item_ids.insert(id), "item ids are unique");
            assert_eq!(item["version"], 1);
            assert_eq!(
                item["value"]["n"],
                json!(item["path"].as_str().unwrap()[1..].parse::<u64>().unwrap())
            );
        }
    }
    assert_eq!(item_ids.len(), 7);
    // Nothing changed: nothing is sent.
    let again = world.target("hook", "o", common::policy("p/")).await;
    let (plan, r) = conformance::sync(&again, &bundle(&refs)).await;
    assert!(plan.changes.iter().all(|c| c.kind == ChangeKind::Unchanged));
    assert_eq!((r.created, r.updated), (0, 0));
    assert_eq!(world.receiver.requests().len(), 3);
    // Two orphans: one POST of two deletions.
    let (plan, r) = conformance::sync(&again, &bundle(&refs[..5])).await;
    assert_eq!(
        plan.changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .count(),
        2
    );
    assert_eq!((r.deleted, r.failure.as_deref()), (2, None), "{r:?}");
    let got = world.receiver.requests();
    assert_eq!(got.len(), 4);
    let last: Value = serde_json::from_slice(&got[3].body).unwrap();
    let deleted: Vec<&Value> = last["secrets"].as_array().unwrap().iter().collect();
    assert_eq!(deleted.len(), 2);
    assert!(
        deleted
            .iter()
            .all(|d| d["deleted"] == true && d.get("value").is_none())
    );
}

/// A receiver that takes the first batch and then stays down: the first batch is recorded and
/// reported as left written (it cannot be undone), the failure names the batch that was not
/// delivered, and a new target plans only that batch's secrets again.
#[tokio::test]
async fn a_failed_batch_keeps_the_batches_before_it_recorded() {
    let world = World::batched(
        Recorder::scripted(vec![Response::new(200, "ok")], Response::new(503, "down")),
        2,
    )
    .await;
    let t = world
        .target_with("hook", "o", common::policy("p/"), 2)
        .await;
    let desired = bundle(&[
        ("a", json!({"k": 1})),
        ("b", json!({"k": 2})),
        ("c", json!({"k": 3})),
        ("d", json!({"k": 4})),
    ]);
    let plan = t.plan(&desired, &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.clone().expect("the target failed");
    assert!(
        failure.contains("the batch of 2 changes (`p/")
            && failure.contains("was not delivered to http://127.0.0.1:")
            && failure.contains("the hook answered 503"),
        "{failure}"
    );
    assert!(!failure.contains("/in"), "the URL's path: {failure}");
    assert_eq!((r.created, r.rolled_back), (2, 0), "{r:?}");
    assert_eq!(r.left_changed.len(), 2, "{r:?}");
    assert_eq!(r.rollback_failures.len(), 2, "{r:?}");
    assert!(r.rollback_failures[0].contains("cannot be undone"), "{r:?}");
    let states = world.states().await;
    let recorded: Vec<String> = states[0]["secrets"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(recorded, r.left_changed);
    let again = world
        .target_with("hook", "o", common::policy("p/"), 2)
        .await;
    let plan = again.plan(&desired, &PlanContext::default()).await.unwrap();
    let mut added: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Added)
        .map(|c| c.name.clone())
        .collect();
    added.sort();
    assert_eq!(added.len(), 2);
    assert!(added.iter().all(|n| !recorded.contains(n)), "{added:?}");
}

/// Five values of about 0.9 MB with `batch_size: 10`: a body stays within 4 MiB, so they go in
/// two POSTs (four, then one), each within the limit.
#[tokio::test]
async fn a_batch_is_closed_before_its_body_passes_4_mib() {
    let world = World::batched(Recorder::start(Response::new(200, "ok")), 10).await;
    let t = world.target("hook", "o", common::policy("p/")).await;
    let big: Vec<(String, Value)> = (0..5)
        .map(|i| (format!("big{i}"), json!({"blob": "x".repeat(900_000)})))
        .collect();
    let refs: Vec<(&str, Value)> = big.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let (_, r) = conformance::sync(&t, &bundle(&refs)).await;
    assert_eq!(r.created, 5, "{r:?}");
    let got = world.receiver.requests();
    let sizes: Vec<usize> = got
        .iter()
        .map(|req| {
            assert!(
                req.body.len() <= secretsync_core::targets::webhook::MAX_BATCH_BYTES,
                "{} bytes",
                req.body.len()
            );
            let b: Value = serde_json::from_slice(&req.body).unwrap();
            b["secrets"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(sizes, [4, 1]);
}
