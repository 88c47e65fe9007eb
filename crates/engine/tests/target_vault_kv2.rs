//! The `vault_kv2` target against a second real OpenBao server (`SECRETSYNC_TEST_VAULT2_ADDR`,
//! started by `scripts/servers.sh`): create, update, unchanged secrets get no new version,
//! orphans kept / soft-deleted / destroyed, unmanaged and foreign secrets untouched, adopt,
//! a pending deletion restored, rollback after injected failures (a policy that denies one
//! path, a proxy that loses an answer), cancellation (in the conformance suite), names and
//! sizes refused before any write, one fingerprint key for concurrent first runs.
//!
//! Every test has a KV v2 mount of its own. The server is inspected through its plain HTTP API
//! ([`Kv2`], the conformance suite's [`Inspector`] for this kind), never through the target
//! under test. The rollback tests run with a token holding exactly the policy documented in
//! `docs/targets/vault_kv2.md` (plus a denial), so the documented policy is proven sufficient.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use secretsync_core::config::{
    Sensitive, TargetPolicy, VaultAuth, VaultKv2Settings, VaultSettings,
};
use secretsync_core::diff::{ChangeKind, TargetPlan};
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::targets::vault_kv2::VaultKv2Target;
use secretsync_engine::targets::{ApplyReport, PlanContext, Target};
use secretsync_test_support::proxy::{Action, Proxy, Rule, RuleId};
use serde_json::{Value, json};

mod common;
mod conformance;
use common::{Bao, bundle, kinds, policy, unique};
use conformance::{Fixture, Inspector, MakeTarget};

/// The owner scope of these tests' deployment.
const OWNER: &str = "kv2-tests";
const PREFIX: &str = "apps/";

/// One test's KV v2 mount on the second server: `<kv>/` with an optional sub-path.
struct Kv2 {
    bao: Bao,
    /// The KV mount, without `/`.
    kv: String,
    /// The sub-path below it, empty or ending in `/`.
    sub: String,
}

impl Kv2 {
    async fn new(sub: &str) -> Arc<Kv2> {
        let bao = Bao::second_from_env();
        let kv = unique("kv2-");
        bao.enable_kv2(&kv).await;
        Arc::new(Kv2 {
            bao,
            kv,
            sub: sub.to_string(),
        })
    }

    /// The target's `mount:`.
    fn mount(&self) -> String {
        format!("{}/{}", self.kv, self.sub)
    }

    fn api(&self, op: &str, name: &str) -> String {
        format!("{}/{op}/{}{name}", self.kv, self.sub)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.bao
            .request_as(&self.bao.root, Method::GET, path, None)
            .await
    }

    /// The metadata (`data` of the metadata endpoint); `None` when the path has none.
    async fn meta(&self, name: &str) -> Option<Value> {
        let (status, v) = self.get(&self.api("metadata", name)).await;
        match status {
            StatusCode::NOT_FOUND => None,
            s if s.is_success() => Some(v["data"].clone()),
            s => panic!("reading the metadata of {name}: {s}: {v}"),
        }
    }

    async fn current_version(&self, name: &str) -> u64 {
        self.meta(name)
            .await
            .unwrap_or_else(|| panic!("{name} has no metadata"))["current_version"]
            .as_u64()
            .unwrap()
    }

    /// The data of one version; `None` when it is deleted, destroyed or absent.
    async fn read_at(&self, name: &str, version: u64) -> Option<Value> {
        let (status, v) = self
            .get(&format!("{}?version={version}", self.api("data", name)))
            .await;
        status.is_success().then(|| v["data"]["data"].clone())
    }

    async fn write(&self, name: &str, data: Value) {
        self.bao
            .ok(
                Method::POST,
                &self.api("data", name),
                Some(json!({ "data": data })),
            )
            .await;
    }

    /// Soft-deletes the latest version, as a person would with `kv delete`.
    async fn soft_delete(&self, name: &str) {
        self.bao
            .ok(Method::DELETE, &self.api("data", name), None)
            .await;
    }

    async fn set_custom_metadata(&self, name: &str, custom: BTreeMap<String, String>) {
        self.bao
            .ok(
                Method::POST,
                &self.api("metadata", name),
                Some(json!({ "custom_metadata": custom })),
            )
            .await;
    }

    async fn undelete(&self, name: &str, versions: &[u64]) {
        self.bao
            .ok(
                Method::POST,
                &self.api("undelete", name),
                Some(json!({ "versions": versions })),
            )
            .await;
    }

    /// The stored fingerprint key.
    async fn fingerprint_key(&self) -> FingerprintKey {
        let (status, v) = self
            .get(&self.api("data", ".secretsync/fingerprint-key"))
            .await;
        assert!(status.is_success(), "no fingerprint key: {status} {v}");
        FingerprintKey::from_hex(v["data"]["data"]["key"].as_str().unwrap()).unwrap()
    }

    /// A token with exactly the policy of `docs/targets/vault_kv2.md` for this mount and
    /// prefix, plus `extra` HCL.
    async fn documented_token(&self, extra: &str) -> String {
        let doc = include_str!("../../../docs/targets/vault_kv2.md");
        let hcl = doc
            .split("```hcl\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the doc has an hcl block");
        // `synced/<op>/` becomes this mount's `<kv>/<op>/<sub>`.
        let mut text = hcl.to_string();
        for op in ["data", "metadata", "delete", "undelete"] {
            text = text.replace(
                &format!("\"synced/{op}/"),
                &format!("\"{}/{op}/{}", self.kv, self.sub),
            );
        }
        assert!(
            !text.contains("synced/"),
            "an unexpected path in the doc's policy: {text}"
        );
        let policy = format!("{text}{extra}");
        let name = unique("kv2-policy-");
        self.bao.put_policy(&name, &policy).await;
        self.bao.token_with_policies(&[&name]).await
    }
}

#[async_trait]
impl Inspector for Kv2 {
    fn name(&self, prefix: &str, path: &str) -> String {
        format!("{prefix}{path}")
    }

    async fn value(&self, name: &str) -> Option<Value> {
        let (status, v) = self.get(&self.api("data", name)).await;
        status.is_success().then(|| v["data"]["data"].clone())
    }

    async fn marks(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let meta = self.meta(name).await?;
        Some(match &meta["custom_metadata"] {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
            _ => BTreeMap::new(),
        })
    }

    async fn versions(&self, name: &str) -> usize {
        match self.meta(name).await {
            Some(m) => m["current_version"].as_u64().unwrap() as usize,
            None => 0,
        }
    }

    async fn create_unmanaged(&self, name: &str, value: &Value) {
        self.write(name, value.clone()).await;
    }

    async fn is_deleted(&self, name: &str) -> bool {
        let (status, _) = self.get(&self.api("data", name)).await;
        !status.is_success()
    }
}

fn settings_for(kv: &Kv2, token: &str, destroy: bool) -> VaultKv2Settings {
    VaultKv2Settings {
        vault: VaultSettings {
            address: Some(kv.bao.addr.clone()),
            namespace: None,
            auth: Some(VaultAuth::Token(Some(Sensitive::new(token)))),
            concurrency: 16,
            ca_cert: None,
        },
        mount: kv.mount(),
        destroy,
    }
}

/// The conformance fixture of this kind: targets built with `token` on `kv`.
fn fixture(kv: &Arc<Kv2>, token: &str, destroy: bool) -> Fixture {
    Fixture {
        make: make_target(settings_for(kv, token, destroy)),
        inspector: kv.clone(),
        prefix: PREFIX.into(),
        failing: None,
    }
}

fn make_target(settings: VaultKv2Settings) -> MakeTarget {
    Arc::new(move |name: &str, owner: &str, policy: TargetPolicy| {
        let (name, owner, settings) = (name.to_string(), owner.to_string(), settings.clone());
        Box::pin(async move {
            Arc::new(VaultKv2Target::new(&name, &owner, &policy, &settings)) as Arc<dyn Target>
        })
    })
}

/// The shared conformance suite (every kind runs it), against the second OpenBao; the
/// failing target writes through a proxy that fails writes of names with the marker.
#[tokio::test]
async fn conformance_suite() {
    let kv = Kv2::new("").await;
    let mut f = root_fixture(&kv);
    let proxy = conformance::failing_vault(&kv.bao.addr, conformance::FAIL_MARKER);
    f.failing = Some(conformance::through(proxy, |url| {
        let mut through = settings_for(&kv, &kv.bao.root.clone(), false);
        through.vault.address = Some(url);
        make_target(through)
    }));
    conformance::run_all(&f).await;
}

fn root_fixture(kv: &Arc<Kv2>) -> Fixture {
    fixture(kv, &kv.bao.root.clone(), false)
}

async fn plan(t: &Arc<dyn Target>, desired: &Collected) -> TargetPlan {
    t.plan(desired, &PlanContext::default())
        .await
        .unwrap_or_else(|e| panic!("plan: {e}"))
}

/// Plans and applies; the apply must succeed.
async fn sync(t: &Arc<dyn Target>, desired: &Collected) -> (TargetPlan, ApplyReport) {
    let p = plan(t, desired).await;
    let r = t.apply(&p, &Cancel::default()).await;
    assert!(r.failure.is_none(), "{r:?}");
    (p, r)
}

#[tokio::test]
async fn creates_updates_and_gives_unchanged_secrets_no_new_version() {
    let kv = Kv2::new("").await;
    let f = root_fixture(&kv);
    let t = (f.make)("t", OWNER, policy(&f.prefix)).await;
    let i = &f.inspector;
    let (a, b) = (i.name(&f.prefix, "a"), i.name(&f.prefix, "b"));

    let v1 = bundle(&[
        ("a", json!({"k": 1})),
        ("b", json!({"k": 2, "n": {"x": true}})),
    ]);
    let p = plan(&t, &v1).await;
    assert_eq!(
        kinds(&p),
        BTreeMap::from([
            ("a".into(), ChangeKind::Added),
            ("b".into(), ChangeKind::Added)
        ])
    );
    assert_eq!(p.changes[0].new_version.as_deref(), Some("1"));
    let r = t.apply(&p, &Cancel::default()).await;
    assert_eq!((r.created, r.failure.as_deref()), (2, None), "{r:?}");
    assert_eq!(i.value(&a).await, Some(json!({"k": 1})));
    assert_eq!(i.versions(&a).await, 1);
    let marks = i.marks(&a).await.unwrap();
    let key = kv.fingerprint_key().await;
    let expect = BTreeMap::from([
        ("managed-by".to_string(), "secretsync".to_string()),
        ("secretsync:owner".into(), OWNER.into()),
        ("secretsync:target".into(), "t".into()),
        (
            "secretsync:fingerprint".into(),
            key.fingerprint(&SecretValue::new(
                json!({"k": 1}).as_object().unwrap().clone(),
            )),
        ),
        ("secretsync:version".into(), "1".into()),
    ]);
    assert_eq!(marks, expect);

    // Unchanged: proven by the marks alone, one LIST and one metadata read per secret.
    let before = t.calls();
    let p = plan(&t, &v1).await;
    assert!(!p.has_changes() && p.counts().unchanged == 2, "{p:?}");
    assert_eq!(
        t.calls() - before,
        3,
        "an unchanged target costs a LIST and a metadata read per secret"
    );
    let r = t.apply(&p, &Cancel::default()).await;
    assert_eq!((r.created, r.updated, r.retagged), (0, 0, 0));
    assert_eq!((i.versions(&a).await, i.versions(&b).await), (1, 1));

    // A key of the secret's own custom metadata survives SecretSync's writes.
    let mut own = i.marks(&b).await.unwrap();
    own.insert("team".into(), "payments".into());
    kv.set_custom_metadata(&b, own).await;

    // Update one secret: only it gets a new version.
    let v2 = bundle(&[
        ("a", json!({"k": 1})),
        ("b", json!({"k": 3, "n": {"x": true}})),
    ]);
    let p = plan(&t, &v2).await;
    let c = p.changes.iter().find(|c| c.path == "b").unwrap();
    assert_eq!(c.kind, ChangeKind::Modified);
    assert_eq!(
        c.keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["k"]
    );
    assert_eq!(
        (c.old_version.as_deref(), c.new_version.as_deref()),
        (Some("1"), Some("2"))
    );
    let r = t.apply(&p, &Cancel::default()).await;
    assert_eq!((r.updated, r.created, r.failure.as_deref()), (1, 0, None));
    assert_eq!((i.versions(&a).await, i.versions(&b).await), (1, 2));
    assert_eq!(i.value(&b).await, Some(json!({"k": 3, "n": {"x": true}})));
    let marks = i.marks(&b).await.unwrap();
    assert_eq!(marks["secretsync:version"], "2");
    assert_eq!(marks["team"], "payments");

    // An edit by someone else is seen through the version and undone.
    kv.write(&a, json!({"k": "edited"})).await;
    let p = plan(&t, &v2).await;
    assert_eq!(kinds(&p)["a"], ChangeKind::Modified);
    sync(&t, &v2).await;
    assert_eq!(i.value(&a).await, Some(json!({"k": 1})));
    assert_eq!(i.versions(&a).await, 3);
}

#[tokio::test]
async fn orphans_are_kept_soft_deleted_or_destroyed() {
    let kv = Kv2::new("sub/").await;
    let f = root_fixture(&kv);
    let i = &f.inspector;
    let mut keep = policy(&f.prefix);
    keep.delete_orphans = false;
    let t = (f.make)("t", OWNER, keep).await;
    let all = bundle(&[
        ("a", json!({"v": 1})),
        ("b", json!({"v": 2})),
        ("c", json!({"v": 3})),
    ]);
    sync(&t, &all).await;
    let only_a = bundle(&[("a", json!({"v": 1}))]);

    // Kept by default.
    let p = plan(&t, &only_a).await;
    assert_eq!(p.orphans_kept, ["apps/b", "apps/c"]);
    assert_eq!(p.counts().deleted, 0);

    // Soft-deleted when asked: recoverable, the metadata stays.
    let t = (f.make)("t", OWNER, policy(&f.prefix)).await;
    let (p, r) = sync(&t, &only_a).await;
    assert_eq!(p.counts().deleted, 2);
    assert_eq!(r.deleted, 2);
    for n in ["apps/b", "apps/c"] {
        assert!(i.is_deleted(n).await, "{n}");
        assert!(kv.meta(n).await.is_some(), "{n} keeps its metadata");
    }
    // A soft-deleted orphan is not deleted again.
    assert_eq!(plan(&t, &only_a).await.counts().deleted, 0);
    kv.undelete("apps/b", &[1]).await;
    assert_eq!(i.value("apps/b").await, Some(json!({"v": 2})));

    // `destroy: true`: gone with every version and the metadata.
    let d = fixture(&kv, &kv.bao.root.clone(), true);
    let mut p2 = policy("gone/");
    p2.max_delete_fraction = 1.0;
    let t = (d.make)("d", OWNER, p2).await;
    sync(
        &t,
        &bundle(&[("x", json!({"v": 1})), ("y", json!({"v": 2}))]),
    )
    .await;
    let (_, r) = sync(&t, &bundle(&[("x", json!({"v": 1}))])).await;
    assert_eq!(r.deleted, 1);
    assert!(
        kv.meta("gone/y").await.is_none(),
        "destroyed with its metadata"
    );
    assert_eq!(i.value("gone/x").await, Some(json!({"v": 1})));
}

#[tokio::test]
async fn unmanaged_and_foreign_secrets_are_untouched_and_adopt_takes_over() {
    let kv = Kv2::new("").await;
    let f = root_fixture(&kv);
    let i = &f.inspector;
    i.create_unmanaged("apps/u", &json!({"mine": 1})).await;
    i.create_unmanaged("apps/same", &json!({"k": 1})).await;
    let sibling = (f.make)("someone-else", OWNER, policy(&f.prefix)).await;
    sync(&sibling, &bundle(&[("o", json!({"x": 1}))])).await;
    let other_owner = (f.make)("t", "another-deployment", policy(&f.prefix)).await;
    sync(&other_owner, &bundle(&[("w", json!({"x": 2}))])).await;

    let t = (f.make)("t", OWNER, policy(&f.prefix)).await;
    let desired = bundle(&[
        ("a", json!({"k": 1})),
        ("o", json!({"k": 9})),
        ("u", json!({"k": 9})),
        ("w", json!({"k": 9})),
    ]);
    let (p, _) = sync(&t, &desired).await;
    assert_eq!(
        kinds(&p),
        BTreeMap::from([
            ("a".into(), ChangeKind::Added),
            ("o".into(), ChangeKind::Skipped),
            ("u".into(), ChangeKind::Skipped),
            ("w".into(), ChangeKind::Skipped),
        ]),
        "other targets' and other owners' secrets are neither written nor orphans"
    );
    let u = p.changes.iter().find(|c| c.path == "u").unwrap();
    assert!(!u.invalid && u.reason.as_ref().unwrap().contains("adopt: true"));
    let w = p.changes.iter().find(|c| c.path == "w").unwrap();
    assert!(w.invalid && w.reason.as_ref().unwrap().contains("another-deployment"));
    assert_eq!(i.value("apps/u").await, Some(json!({"mine": 1})));
    assert_eq!(i.value("apps/o").await, Some(json!({"x": 1})));
    assert_eq!(i.value("apps/w").await, Some(json!({"x": 2})));
    assert_eq!(i.marks("apps/u").await.unwrap(), BTreeMap::new());
    for n in ["apps/u", "apps/o", "apps/w"] {
        assert_eq!(i.versions(n).await, 1, "{n}");
    }

    // adopt: true takes the unmanaged ones over; one whose value already matches gets only
    // the marks, no new version.
    let mut adopting = policy(&f.prefix);
    adopting.adopt = true;
    let t = (f.make)("t", OWNER, adopting).await;
    let desired = bundle(&[
        ("a", json!({"k": 1})),
        ("u", json!({"k": 9})),
        ("same", json!({"k": 1})),
    ]);
    let (p, r) = sync(&t, &desired).await;
    let u = p.changes.iter().find(|c| c.path == "u").unwrap();
    assert!(u.kind == ChangeKind::Modified && u.adopt, "{u:?}");
    let same = p.changes.iter().find(|c| c.path == "same").unwrap();
    assert!(same.kind == ChangeKind::Unchanged && same.retag, "{same:?}");
    assert_eq!((r.updated, r.retagged), (1, 1));
    assert_eq!(i.value("apps/u").await, Some(json!({"k": 9})));
    assert_eq!(i.marks("apps/u").await.unwrap()["secretsync:target"], "t");
    assert_eq!(i.versions("apps/same").await, 1);
    assert_eq!(
        i.marks("apps/same").await.unwrap()["secretsync:version"],
        "1"
    );
    assert!(!plan(&t, &desired).await.has_changes());
}

#[tokio::test]
async fn a_pending_deletion_is_restored_then_written() {
    let kv = Kv2::new("").await;
    let f = root_fixture(&kv);
    let i = &f.inspector;
    let t = (f.make)("t", OWNER, policy(&f.prefix)).await;
    sync(&t, &bundle(&[("a", json!({"v": 1}))])).await;
    kv.soft_delete("apps/a").await;
    assert!(i.is_deleted("apps/a").await);

    let desired = bundle(&[("a", json!({"v": 2}))]);
    let p = plan(&t, &desired).await;
    let a = &p.changes[0];
    assert!(a.kind == ChangeKind::Modified && a.restore, "{a:?}");
    assert_eq!(
        (a.old_version.as_deref(), a.new_version.as_deref()),
        (Some("1"), Some("2"))
    );
    let r = t.apply(&p, &Cancel::default()).await;
    assert_eq!((r.updated, r.failure.as_deref()), (1, None));
    assert_eq!(i.value("apps/a").await, Some(json!({"v": 2})));
    assert_eq!(
        kv.read_at("apps/a", 1).await,
        Some(json!({"v": 1})),
        "the soft-deleted version was undeleted, not left behind"
    );
    assert_eq!(i.marks("apps/a").await.unwrap()["secretsync:version"], "2");
}

#[tokio::test]
async fn a_denied_write_rolls_the_target_back() {
    let kv = Kv2::new("sub/").await;
    let root = root_fixture(&kv);
    let i = &root.inspector;
    let t = (root.make)("rb", OWNER, policy(PREFIX)).await;
    sync(
        &t,
        &bundle(&[("a", json!({"v": "old"})), ("p", json!({"v": "p"}))]),
    )
    .await;
    let a_marks = i.marks("apps/a").await.unwrap();
    kv.soft_delete("apps/p").await;

    // The documented policy, and `zz-fail` denied.
    let deny = format!(
        "\npath \"{}\" {{\n  capabilities = [\"deny\"]\n}}\n",
        kv.api("data", "apps/zz-fail")
    );
    let token = kv.documented_token(&deny).await;
    let f = fixture(&kv, &token, false);
    let t = (f.make)("rb", OWNER, policy(PREFIX)).await;
    let desired = bundle(&[
        ("a", json!({"v": "new"})),
        ("b", json!({"v": 1})),
        ("p", json!({"v": "back"})),
        ("zz-fail", json!({"v": 2})),
    ]);
    let p = plan(&t, &desired).await;
    assert_eq!(p.counts().changes(), 4, "{:?}", kinds(&p));
    let r = t.apply(&p, &Cancel::default()).await;
    let failure = r.failure.clone().expect("the apply reports the failure");
    assert!(
        failure.contains("zz-fail") && failure.contains("permission denied"),
        "{failure}"
    );
    assert_eq!(
        r.rolled_back, 3,
        "the update of a, the creation of b and the restore of p are undone: {r:?}"
    );
    assert!(
        r.rollback_failures.is_empty() && r.left_changed.is_empty(),
        "{r:?}"
    );

    // a: the old value, written back as version 3; its marks name that copy.
    assert_eq!(i.value("apps/a").await, Some(json!({"v": "old"})));
    assert_eq!(i.versions("apps/a").await, 3);
    let mut want = a_marks.clone();
    want.insert("secretsync:version".into(), "3".into());
    assert_eq!(i.marks("apps/a").await.unwrap(), want);
    // b: created, then removed with its metadata.
    assert!(kv.meta("apps/b").await.is_none());
    assert!(kv.meta("apps/zz-fail").await.is_none());
    // p: back to pending deletion.
    assert!(i.is_deleted("apps/p").await);
    // The restored marks are truthful: the old state plans as unchanged, with no reads.
    let p = plan(&t, &bundle(&[("a", json!({"v": "old"}))])).await;
    let a = p.changes.iter().find(|c| c.path == "a").unwrap();
    assert!(
        a.kind == ChangeKind::Unchanged && !a.retag && a.old_value.is_none(),
        "{a:?}"
    );
}

#[tokio::test]
async fn a_denied_deletion_undeletes_the_orphans_deleted_before_it() {
    let kv = Kv2::new("").await;
    let root = root_fixture(&kv);
    let i = &root.inspector;
    let t = (root.make)("dl", OWNER, policy(PREFIX)).await;
    let three = bundle(&[
        ("a-orphan", json!({"v": 1})),
        ("keep", json!({"v": 2})),
        ("zz-orphan", json!({"v": 3})),
    ]);
    sync(&t, &three).await;
    let deny = format!(
        "\npath \"{}\" {{\n  capabilities = [\"deny\"]\n}}\n",
        kv.api("delete", "apps/zz-orphan")
    );
    let token = kv.documented_token(&deny).await;
    let f = fixture(&kv, &token, false);
    let t = (f.make)("dl", OWNER, policy(PREFIX)).await;
    let p = plan(&t, &bundle(&[("keep", json!({"v": 2}))])).await;
    assert_eq!(p.counts().deleted, 2);
    let r = t.apply(&p, &Cancel::default()).await;
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("zz-orphan")),
        "{r:?}"
    );
    assert_eq!((r.deleted, r.rolled_back), (1, 1), "{r:?}");
    assert!(r.left_changed.is_empty(), "{r:?}");
    assert_eq!(i.value("apps/a-orphan").await, Some(json!({"v": 1})));
    assert_eq!(i.value("apps/zz-orphan").await, Some(json!({"v": 3})));
}

#[tokio::test]
async fn a_destroyed_orphan_is_reported_as_not_rolled_back() {
    let kv = Kv2::new("").await;
    let root = fixture(&kv, &kv.bao.root.clone(), true);
    let i = &root.inspector;
    let t = (root.make)("ds", OWNER, policy(PREFIX)).await;
    sync(
        &t,
        &bundle(&[
            ("a1", json!({"v": 1})),
            ("keep", json!({"v": 2})),
            ("zz", json!({"v": 3})),
        ]),
    )
    .await;
    // Everything the documented policy allows on `zz`, except removing it for good.
    let no_destroy = format!(
        "\npath \"{}\" {{\n  capabilities = [\"list\", \"read\", \"create\", \"update\"]\n}}\n",
        kv.api("metadata", "apps/zz")
    );
    let token = kv.documented_token(&no_destroy).await;
    let f = fixture(&kv, &token, true);
    let t = (f.make)("ds", OWNER, policy(PREFIX)).await;
    let p = plan(&t, &bundle(&[("keep", json!({"v": 2}))])).await;
    let r = t.apply(&p, &Cancel::default()).await;
    assert!(
        r.failure.as_deref().is_some_and(|f| f.contains("zz")),
        "{r:?}"
    );
    // zz was only soft-deleted: undeleted. a1 was destroyed: that cannot be undone.
    assert_eq!(i.value("apps/zz").await, Some(json!({"v": 3})));
    assert_eq!(r.left_changed, ["apps/a1"], "{r:?}");
    assert!(
        r.rollback_failures
            .iter()
            .any(|f| f.contains("cannot be restored")),
        "{r:?}"
    );
    assert!(kv.meta("apps/a1").await.is_none());
}

#[tokio::test]
async fn names_sizes_and_reserved_paths_are_refused_before_any_write() {
    let kv = Kv2::new("").await;
    let f = root_fixture(&kv);
    let mut p0 = policy("");
    p0.delete_orphans = true;
    let t = (f.make)("nm", OWNER, p0).await;
    let big = "x".repeat(1 << 20);
    let desired = bundle(&[
        ("a//b", json!({"v": 1})),
        (".secretsync/mine", json!({"v": 1})),
        ("big", json!({ "v": big })),
        ("ok", json!({"v": 1})),
    ]);
    let p = plan(&t, &desired).await;
    assert_eq!(p.invalid().count(), 3, "{:?}", kinds(&p));
    let r = t.apply(&p, &Cancel::default()).await;
    assert_eq!((r.created, r.failure.as_deref()), (1, None));
    for n in ["a//b", "big"] {
        assert!(f.inspector.marks(n).await.is_none(), "{n}");
    }
    // The bookkeeping below `.secretsync/` is neither desired nor an orphan.
    let p = plan(&t, &bundle(&[("ok", json!({"v": 1}))])).await;
    assert!(!p.has_changes(), "{:?}", kinds(&p));
    kv.fingerprint_key().await;
}

#[tokio::test]
async fn concurrent_first_runs_share_one_fingerprint_key() {
    let kv = Kv2::new("").await;
    let f = root_fixture(&kv);
    let value = json!({"k": "v"});
    let desired = bundle(&[("x", value.clone())]);
    let (t1, t2) = (
        (f.make)("one", OWNER, policy("one/")).await,
        (f.make)("two", OWNER, policy("two/")).await,
    );
    let (p1, p2) = tokio::join!(plan(&t1, &desired), plan(&t2, &desired));
    let key = kv.fingerprint_key().await;
    let want = key.fingerprint(&SecretValue::new(value.as_object().unwrap().clone()));
    assert_eq!(p1.changes[0].fingerprint.as_deref(), Some(want.as_str()));
    assert_eq!(p2.changes[0].fingerprint.as_deref(), Some(want.as_str()));
}

#[tokio::test]
async fn a_dry_run_creates_no_fingerprint_key() {
    let kv = Kv2::new("").await;
    let f = root_fixture(&kv);
    let t = (f.make)("dry", OWNER, policy(&f.prefix)).await;
    let ctx = PlanContext {
        dry_run: true,
        ..PlanContext::default()
    };
    let p = t
        .plan(&bundle(&[("a", json!({"v": 1}))]), &ctx)
        .await
        .unwrap();
    assert_eq!(p.counts().added, 1);
    assert!(kv.meta(".secretsync/fingerprint-key").await.is_none());
}

/// A proxy in front of the second server that forwards the first write (`POST`) to `<mount>/data/<name>`,
/// then answers 502 as if the answer was lost on the way back; everything else passes.
fn answer_losing_proxy(kv: &Kv2, name: &str) -> (Proxy, RuleId) {
    let proxy = Proxy::start(&kv.bao.addr);
    let lost = proxy.add(
        Rule::method("POST")
            .path_contains(&format!("/{}", kv.api("data", name)))
            .then(
                Action::status(502, r#"{"errors":["injected: the answer was lost"]}"#)
                    .after_forward(),
            )
            .times(1),
    );
    (proxy, lost)
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_recognised_as_landed() {
    let kv = Kv2::new("").await;
    let (proxy, lost) = answer_losing_proxy(&kv, "apps/lost");
    let mut settings = settings_for(&kv, &kv.bao.root, false);
    settings.vault.address = Some(proxy.url());
    let t: Arc<dyn Target> = Arc::new(VaultKv2Target::new(
        "lost",
        OWNER,
        &policy(PREFIX),
        &settings,
    ));
    let (_, r) = sync(
        &t,
        &bundle(&[("lost", json!({"v": 1})), ("other", json!({"v": 2}))]),
    )
    .await;
    assert_eq!(r.created, 2, "{r:?}");
    assert_eq!(proxy.hits(lost), 1, "the answer of the write was lost");
    assert_eq!(
        kv.current_version("apps/lost").await,
        1,
        "written once, recognised as ours"
    );
    let marks = kv.marks("apps/lost").await.unwrap();
    assert_eq!(marks["secretsync:target"], "lost");
    assert_eq!(marks["secretsync:version"], "1");
}

#[tokio::test]
async fn a_destination_that_is_down_fails_the_target_when_it_is_used() {
    let kv = Kv2::new("").await;
    let mut settings = settings_for(&kv, &kv.bao.root, false);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    settings.vault.address = Some(format!("http://127.0.0.1:{closed}"));
    // Building it contacts nothing.
    let t = VaultKv2Target::new("down", OWNER, &policy(PREFIX), &settings);
    assert_eq!(t.calls(), 0);
    let e = t
        .plan(&bundle(&[("a", json!({"v": 1}))]), &PlanContext::default())
        .await
        .unwrap_err();
    assert!(
        e.message.contains("target `down`") && e.message.contains("cannot reach Vault"),
        "{e}"
    );
}

#[test]
fn the_module_docs_example_loads() {
    let src = include_str!("../src/targets/vault_kv2/mod.rs");
    let doc: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc.iter().position(|l| *l == "```yaml").unwrap() + 1;
    let end = start + doc[start..].iter().position(|l| *l == "```").unwrap();
    let yaml = format!(
        "vault_sources:\n  - mount: secret/base/\n{}\n",
        doc[start..end].join("\n")
    );
    let env = |k: &str| (k == "OTHER_VAULT_TOKEN").then(|| "t".to_string());
    let loaded = secretsync_core::config::load(&yaml, &env);
    let c = loaded
        .config
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    assert_eq!(c.targets[0].backend.type_name(), "vault_kv2");
}

#[tokio::test]
async fn the_lease_lives_in_the_destination_and_the_documented_policy_covers_it() {
    use secretsync_engine::lease::{self, Holder, LeaseSpec};
    let kv = Kv2::new("sub/").await;
    let token = kv.documented_token("").await;
    let f = fixture(&kv, &token, false);
    let t = (f.make)("leased", OWNER, policy(PREFIX)).await;
    let key = lease::target_key(OWNER, "leased");
    let backend = t.lease_backend();
    assert_eq!(
        backend.location(&key),
        format!(
            "lock secret {}.secretsync/locks/{OWNER}/leased at {}",
            kv.mount(),
            kv.bao.addr
        )
    );
    let spec = LeaseSpec {
        key: key.clone(),
        ttl: std::time::Duration::from_secs(30),
        wait: std::time::Duration::ZERO,
    };
    let held = lease::acquire(
        backend.clone(),
        spec.clone(),
        Holder::new(OWNER, "run-1", "host", "me"),
        &Cancel::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let path = format!(".secretsync/locks/{OWNER}/leased");
    let stored = f.inspector.value(&path).await.expect("the lock secret");
    assert_eq!(stored["run_id"], "run-1");
    let e = lease::acquire(
        backend,
        spec,
        Holder::new(OWNER, "run-2", "host", "me"),
        &Cancel::default(),
    )
    .await
    .expect_err("held");
    assert!(e.message.contains("run-1"), "{e}");
    held.release().await.unwrap();
    assert!(kv.meta(&path).await.is_none(), "released: removed");
}

#[tokio::test]
async fn a_bad_token_points_at_the_targets_own_auth() {
    let kv = Kv2::new("").await;
    let settings = settings_for(&kv, "not-a-token", false);
    let t = VaultKv2Target::new("badauth", OWNER, &policy(PREFIX), &settings);
    let e = t
        .plan(&bundle(&[("a", json!({"v": 1}))]), &PlanContext::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind, secretsync_engine::error::ErrorKind::Auth, "{e}");
    assert!(
        e.message.contains("target `badauth`") && e.message.contains("fix `auth:` in its config"),
        "{e}"
    );
    assert!(!e.message.contains("not-a-token"), "{e}");
}
