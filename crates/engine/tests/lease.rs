//! Run leases against the real local servers, for every backend: a lock secret in Secrets
//! Manager and a lock object in the S3 merge store's bucket (moto), and a KV v2 lock secret
//! in a `vault_kv2` target's destination (the second OpenBao). Every scenario runs on each
//! backend (`both!`, named when there were two); backend-specific checks follow.
//!
//! Short ttls (1–3 s) keep the tests quick; no test asserts how long anything took. Loops
//! that wait for something have a generous deadline only so that a broken lease fails the
//! test instead of hanging it.

use std::sync::Arc;

use secretsync_engine::cancel::Cancel;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use secretsync_engine::aws::{AwsContext, CallCounter};
use secretsync_engine::error::ErrorKind;
use secretsync_engine::lease::s3::S3Leases;
use secretsync_engine::lease::secrets_manager::SecretsManagerLeases;
use secretsync_engine::lease::vault_kv::VaultKvLeases;
use secretsync_engine::lease::{
    self, Holder, Lease, LeaseBackend, LeaseRecord, LeaseSpec, fmt_epoch, now_ms,
};
use secretsync_engine::targets::aws_sm;
use secretsync_test_support::proxy::{Action, Proxy, Rule, RuleId};

mod common;
use common::unique;

fn sdk() -> SdkConfig {
    common::aws::sdk(&common::aws::endpoint(), "us-east-1")
}

fn sm_client() -> aws_sdk_secretsmanager::Client {
    let cfg = sdk();
    aws_sm::client(&cfg, &CallCounter::default())
}

fn s3_client() -> aws_sdk_s3::Client {
    let cfg = sdk();
    AwsContext::from_sdk_config(cfg.clone()).s3(&cfg)
}

const STORE_PREFIX: &str = "merged/";

async fn sm_backend() -> Arc<dyn LeaseBackend> {
    Arc::new(SecretsManagerLeases::new(
        sm_client(),
        CallCounter::default(),
    ))
}

async fn s3_backend() -> Arc<dyn LeaseBackend> {
    let bucket = unique("lease-");
    s3_client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e:?}"));
    Arc::new(S3Leases::new(
        s3_client(),
        CallCounter::default(),
        bucket,
        STORE_PREFIX.into(),
        None,
    ))
}

/// KV v2 leases on the second OpenBao, below a folder of their own in `secret/`.
async fn vault_kv_backend() -> Arc<dyn LeaseBackend> {
    Arc::new(vault_kv_leases().await.0)
}

async fn vault_kv_leases() -> (VaultKvLeases, common::Bao, String) {
    let bao = common::Bao::second_from_env();
    let sub = format!("{}/", unique("leases-"));
    let leases = VaultKvLeases::new(bao.root_client().await, "secret/".into(), sub.clone());
    (leases, bao, sub)
}

fn holder(name: &str) -> Holder {
    Holder::new(
        format!("owner-{name}"),
        format!("run-{name}-{}", unique("")),
        format!("host-{name}"),
        format!("author-{name}"),
    )
}

fn new_key() -> String {
    lease::target_key(&unique("scope-"), "production")
}

fn spec(key: &str, ttl_secs: u64, wait: Duration) -> LeaseSpec {
    LeaseSpec {
        key: key.into(),
        ttl: Duration::from_secs(ttl_secs),
        wait,
    }
}

async fn take(
    b: &Arc<dyn LeaseBackend>,
    key: &str,
    ttl: u64,
    wait: Duration,
    who: &Holder,
) -> secretsync_engine::Result<Lease> {
    lease::acquire(
        b.clone(),
        spec(key, ttl, wait),
        who.clone(),
        &Cancel::default(),
    )
    .await
}

async fn stored(b: &Arc<dyn LeaseBackend>, key: &str) -> Option<lease::Stored> {
    b.current(key).await.expect("reading the lease")
}

/// Waits until the stored lease has expired (a crashed holder's lease).
async fn until_expired(b: &Arc<dyn LeaseBackend>, key: &str) {
    let exp = stored(b, key)
        .await
        .expect("a lease to expire")
        .record
        .expires_at;
    let left = (exp * 1000 + 100).saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(left)).await;
}

fn assert_names(msg: &str, who: &Holder) {
    for part in [&who.owner, &who.run_id, &who.host, &who.author] {
        assert!(msg.contains(part.as_str()), "`{part}` missing from: {msg}");
    }
}

/// Runs one scenario on both backends.
macro_rules! both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn secrets_manager() {
                super::$scenario(super::sm_backend().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$scenario(super::s3_backend().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn vault_kv() {
                super::$scenario(super::vault_kv_backend().await).await
            }
        }
    };
}

both!(a_second_run_times_out_naming_the_holder);
async fn a_second_run_times_out_naming_the_holder(b: Arc<dyn LeaseBackend>) {
    let key = new_key();
    let (alice, bob) = (holder("alice"), holder("bob"));
    let a = take(&b, &key, 30, Duration::ZERO, &alice)
        .await
        .expect("the first run takes the free lease");
    let e = take(&b, &key, 30, Duration::from_secs(1), &bob)
        .await
        .expect_err("the lease is held");
    assert_eq!(e.kind, ErrorKind::Locked, "{e}");
    assert_names(&e.message, &alice);
    assert!(!e.message.contains(&bob.run_id), "{e}");
    assert!(e.message.contains("--lock-timeout"), "{e}");
    let exp = fmt_epoch(stored(&b, &key).await.unwrap().record.expires_at);
    assert!(
        e.message
            .contains(&format!("a crashed run's lease expires at {exp}")),
        "{e}"
    );
    // The waiting run changed nothing.
    assert_eq!(
        stored(&b, &key).await.unwrap().record.nonce,
        a.record().nonce
    );
    assert!(!a.lost());
    a.release().await.unwrap();
}

both!(release_lets_the_waiting_run_in);
async fn release_lets_the_waiting_run_in(b: Arc<dyn LeaseBackend>) {
    let key = new_key();
    let (alice, bob) = (holder("alice"), holder("bob"));
    // A long ttl: the waiter can only get in through the release, not through expiry.
    let a = take(&b, &key, 300, Duration::ZERO, &alice).await.unwrap();
    let waiter = {
        let (b, key, bob) = (b.clone(), key.clone(), bob.clone());
        tokio::spawn(async move { take(&b, &key, 300, Duration::from_secs(60), &bob).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiter.is_finished(),
        "the second run must wait while the lease is held"
    );
    a.release().await.unwrap();
    let l = waiter
        .await
        .unwrap()
        .expect("the waiting run gets the released lease");
    assert_eq!(l.record().run_id, bob.run_id);
    assert_eq!(
        stored(&b, &key).await.unwrap().record.nonce,
        l.record().nonce
    );
    l.release().await.unwrap();
    assert_eq!(stored(&b, &key).await, None, "release deletes the lease");
}

both!(an_expired_lease_is_taken_over);
async fn an_expired_lease_is_taken_over(b: Arc<dyn LeaseBackend>) {
    let key = new_key();
    let (alice, bob) = (holder("alice"), holder("bob"));
    let a = take(&b, &key, 1, Duration::ZERO, &alice).await.unwrap();
    drop(a); // a crash: no more renewals, no release
    let left = stored(&b, &key)
        .await
        .expect("a crashed run's lease stays until it expires");
    assert_eq!(left.record.run_id, alice.run_id);
    let l = take(&b, &key, 2, Duration::from_secs(30), &bob)
        .await
        .expect("the expired lease is taken over");
    let now = stored(&b, &key).await.unwrap();
    assert_eq!(now.record.run_id, bob.run_id);
    assert_eq!(now.record.nonce, l.record().nonce);
    l.release().await.unwrap();
}

both!(of_two_concurrent_runs_exactly_one_wins);
async fn of_two_concurrent_runs_exactly_one_wins(b: Arc<dyn LeaseBackend>) {
    for round in 0..8 {
        let key = new_key();
        let (x, y) = (holder("x"), holder("y"));
        let (rx, ry) = tokio::join!(
            take(&b, &key, 30, Duration::ZERO, &x),
            take(&b, &key, 30, Duration::ZERO, &y)
        );
        let (winner, loser_err, winner_holder) = match (rx, ry) {
            (Ok(l), Err(e)) => (l, e, &x),
            (Err(e), Ok(l)) => (l, e, &y),
            (Ok(_), Ok(_)) => panic!("round {round}: both runs took the lease"),
            (Err(e1), Err(e2)) => panic!("round {round}: neither run took the lease: {e1}; {e2}"),
        };
        assert_eq!(
            loser_err.kind,
            ErrorKind::Locked,
            "round {round}: {loser_err}"
        );
        assert_names(&loser_err.message, winner_holder);
        assert_eq!(
            stored(&b, &key).await.unwrap().record.nonce,
            winner.record().nonce
        );
        winner.release().await.unwrap();
    }
}

both!(of_two_runs_that_see_an_expired_lease_one_takes_it_over);
async fn of_two_runs_that_see_an_expired_lease_one_takes_it_over(b: Arc<dyn LeaseBackend>) {
    // The backend itself: two writers that read the same expired version; the second
    // compare-and-swap must be refused (a delete-then-create would let both in).
    let key = new_key();
    drop(
        take(&b, &key, 1, Duration::ZERO, &holder("crashed"))
            .await
            .unwrap(),
    );
    until_expired(&b, &key).await;
    let old = stored(&b, &key).await.unwrap();
    let (x, y) = (holder("x"), holder("y"));
    let rx = LeaseRecord::new(&x, "lx", now_ms(), Duration::from_secs(30));
    let ry = LeaseRecord::new(&y, "ly", now_ms(), Duration::from_secs(30));
    assert!(
        b.compare_and_swap(&key, &old.token, &rx)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        b.compare_and_swap(&key, &old.token, &ry).await.unwrap(),
        None
    );
    assert_eq!(stored(&b, &key).await.unwrap().record.nonce, rx.nonce);

    // Through `acquire`, racing.
    for round in 0..4 {
        let key = new_key();
        drop(
            take(&b, &key, 1, Duration::ZERO, &holder("crashed"))
                .await
                .unwrap(),
        );
        until_expired(&b, &key).await;
        let (x, y) = (holder("x"), holder("y"));
        let (rx, ry) = tokio::join!(
            take(&b, &key, 30, Duration::ZERO, &x),
            take(&b, &key, 30, Duration::ZERO, &y)
        );
        let (winner, loser_err, winner_holder) = match (rx, ry) {
            (Ok(l), Err(e)) => (l, e, &x),
            (Err(e), Ok(l)) => (l, e, &y),
            (Ok(_), Ok(_)) => panic!("round {round}: both runs took over the expired lease"),
            (Err(e1), Err(e2)) => panic!("round {round}: neither run took over: {e1}; {e2}"),
        };
        assert_eq!(
            loser_err.kind,
            ErrorKind::Locked,
            "round {round}: {loser_err}"
        );
        assert_names(&loser_err.message, winner_holder);
        assert_eq!(
            stored(&b, &key).await.unwrap().record.nonce,
            winner.record().nonce
        );
        winner.release().await.unwrap();
    }
}

both!(renewal_keeps_a_lease_past_its_ttl);
async fn renewal_keeps_a_lease_past_its_ttl(b: Arc<dyn LeaseBackend>) {
    let key = new_key();
    let (alice, bob) = (holder("alice"), holder("bob"));
    let a = take(&b, &key, 3, Duration::ZERO, &alice).await.unwrap();
    let first = a.record();
    tokio::time::sleep(Duration::from_secs(7)).await; // more than twice the ttl
    assert!(!a.lost(), "{:?}", a.lost_reason());
    a.check().unwrap();
    let now = stored(&b, &key).await.unwrap();
    assert_eq!(now.record.lease_id, first.lease_id);
    assert!(
        now.record.expires_at > first.expires_at,
        "the expiry moved on"
    );
    assert!(!now.record.expired_at(now_ms()));
    let e = take(&b, &key, 2, Duration::ZERO, &bob)
        .await
        .expect_err("still held");
    assert_names(&e.message, &alice);
    a.release().await.unwrap();
    assert_eq!(stored(&b, &key).await, None);
}

both!(a_lease_taken_over_by_someone_else_is_lost);
async fn a_lease_taken_over_by_someone_else_is_lost(b: Arc<dyn LeaseBackend>) {
    let key = new_key();
    let (alice, mallory) = (holder("alice"), holder("mallory"));
    let a = take(&b, &key, 3, Duration::ZERO, &alice).await.unwrap();
    // Another run overwrites the lease (as if alice's host had been frozen past expiry).
    let theirs = loop {
        let now = stored(&b, &key).await.unwrap();
        let r = LeaseRecord::new(&mallory, "lm", now_ms(), Duration::from_secs(60));
        // A renewal of alice's may slip in between the read and the write: read again.
        if b.compare_and_swap(&key, &now.token, &r)
            .await
            .unwrap()
            .is_some()
        {
            break r;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.lost() {
        assert!(
            Instant::now() < deadline,
            "the lease was never seen as lost"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let why = a.lost_reason().unwrap();
    assert!(why.contains(&mallory.run_id), "{why}");
    let e = a.check().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Locked);
    assert!(e.message.contains(&mallory.run_id), "{e}");
    // Releasing a lost lease leaves the new holder's lease alone.
    a.release().await.unwrap();
    assert_eq!(stored(&b, &key).await.unwrap().record.nonce, theirs.nonce);
}

both!(a_released_lease_that_someone_else_holds_is_not_deleted);
async fn a_released_lease_that_someone_else_holds_is_not_deleted(b: Arc<dyn LeaseBackend>) {
    // The backend's conditional delete: our stale token must not delete the new holder's lease.
    let key = new_key();
    let a = take(&b, &key, 30, Duration::ZERO, &holder("alice"))
        .await
        .unwrap();
    let ours = stored(&b, &key).await.unwrap();
    drop(a);
    let r = LeaseRecord::new(&holder("bob"), "lb", now_ms(), Duration::from_secs(60));
    assert!(
        b.compare_and_swap(&key, &ours.token, &r)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!b.delete_if_current(&key, &ours).await.unwrap());
    assert_eq!(stored(&b, &key).await.unwrap().record.nonce, r.nonce);
}

both!(cancelling_stops_the_wait);
async fn cancelling_stops_the_wait(b: Arc<dyn LeaseBackend>) {
    let key = new_key();
    let a = take(&b, &key, 30, Duration::ZERO, &holder("alice"))
        .await
        .unwrap();
    let cancel = Cancel::new();
    let setter = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cancel.cancel("cancelled by a test");
        })
    };
    let e = lease::acquire(
        b.clone(),
        spec(&key, 30, Duration::from_secs(300)),
        holder("bob"),
        &cancel,
    )
    .await
    .expect_err("cancelled");
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    setter.await.unwrap();
    assert_eq!(
        stored(&b, &key).await.unwrap().record.nonce,
        a.record().nonce
    );
    a.release().await.unwrap();
}

// ---- Vault KV v2 only ----

#[tokio::test]
async fn a_kv_lock_deleted_by_hand_is_undeleted_and_still_honoured() {
    let (leases, bao, sub) = vault_kv_leases().await;
    let b: Arc<dyn LeaseBackend> = Arc::new(leases);
    let key = new_key();
    let alice = holder("alice");
    let a = take(&b, &key, 30, Duration::ZERO, &alice).await.unwrap();
    let path = format!("secret/data/{sub}.secretsync/locks/{key}");
    // Someone soft-deletes the lock while alice holds it.
    bao.ok(reqwest::Method::DELETE, &path, None).await;
    let e = take(&b, &key, 30, Duration::ZERO, &holder("bob"))
        .await
        .expect_err("alice's lease is still valid");
    assert_eq!(e.kind, ErrorKind::Locked, "{e}");
    assert_names(&e.message, &alice);
    assert!(!a.lost());
    a.release().await.unwrap();
    assert_eq!(stored(&b, &key).await, None);
}

#[tokio::test]
async fn a_destroyed_kv_lock_is_free() {
    let (leases, bao, sub) = vault_kv_leases().await;
    let b: Arc<dyn LeaseBackend> = Arc::new(leases);
    let key = new_key();
    drop(
        take(&b, &key, 30, Duration::ZERO, &holder("alice"))
            .await
            .unwrap(),
    );
    let version = stored(&b, &key).await.unwrap().token;
    bao.ok(
        reqwest::Method::PUT,
        &format!("secret/destroy/{sub}.secretsync/locks/{key}"),
        Some(serde_json::json!({ "versions": [version.parse::<u64>().unwrap()] })),
    )
    .await;
    assert_eq!(stored(&b, &key).await, None);
    let bob = holder("bob");
    let l = take(&b, &key, 30, Duration::ZERO, &bob)
        .await
        .expect("a destroyed lease holds nothing");
    assert_eq!(stored(&b, &key).await.unwrap().record.run_id, bob.run_id);
    l.release().await.unwrap();
}

#[tokio::test]
async fn a_kv_lock_path_that_would_leave_the_lock_folder_is_refused() {
    let (leases, _, _) = vault_kv_leases().await;
    let e = leases.lock_path("../escape").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("`..`"), "{e}");
    assert!(leases.lock_path("acme/prod").is_ok());
}

// ---- Secrets Manager only ----

#[tokio::test]
async fn the_lock_secret_is_named_tagged_and_deleted_on_release() {
    let b = sm_backend().await;
    let key = format!("{}/prod us_1", unique("scope-"));
    let alice = holder("alice");
    let a = take(&b, &key, 30, Duration::ZERO, &alice).await.unwrap();
    let name = SecretsManagerLeases::secret_name(&key).unwrap();
    assert!(
        name.starts_with(".secretsync/locks/") && name.ends_with("/prod_20us_5f1"),
        "{name}"
    );
    let sm = sm_client();
    let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
    let tags: std::collections::BTreeMap<_, _> = d
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(
        tags.get("managed-by").map(String::as_str),
        Some("secretsync")
    );
    assert_eq!(
        tags.get("secretsync:role").map(String::as_str),
        Some("lock")
    );
    assert!(
        !tags.contains_key("secretsync:target"),
        "no target may count the lock as its own"
    );
    let v = sm
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
    assert_eq!(json["run_id"], alice.run_id.as_str());
    assert_eq!(json["author"], alice.author.as_str());
    assert!(json["expires_at"].as_u64().unwrap() > now_ms() / 1000);
    a.release().await.unwrap();
    let gone = sm.describe_secret().secret_id(&name).send().await;
    assert!(
        gone.is_err(),
        "the lock secret is deleted without a recovery window"
    );
}

#[tokio::test]
async fn a_lock_secret_scheduled_for_deletion_is_restored_and_taken_over() {
    let b = sm_backend().await;
    let key = new_key();
    drop(
        take(&b, &key, 1, Duration::ZERO, &holder("crashed"))
            .await
            .unwrap(),
    );
    let name = SecretsManagerLeases::secret_name(&key).unwrap();
    let sm = sm_client();
    // Someone deletes the lock secret with a recovery window: its name stays taken.
    sm.delete_secret()
        .secret_id(&name)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let bob = holder("bob");
    let l = take(&b, &key, 2, Duration::from_secs(30), &bob)
        .await
        .expect("taken over after restoring");
    let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert!(d.deleted_date().is_none());
    assert_eq!(stored(&b, &key).await.unwrap().record.run_id, bob.run_id);
    l.release().await.unwrap();
}

// ---- S3 only ----

#[tokio::test]
async fn the_lock_object_is_encrypted_and_under_the_store_prefix() {
    let bucket = unique("lease-");
    let s3 = s3_client();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let leases = S3Leases::new(
        s3_client(),
        CallCounter::default(),
        bucket.clone(),
        STORE_PREFIX.into(),
        None,
    );
    let key = new_key();
    let object = leases.object_key(&key);
    assert_eq!(object, format!("merged/.secretsync/locks/{key}.json"));
    let b: Arc<dyn LeaseBackend> = Arc::new(leases);
    let a = take(&b, &key, 3, Duration::ZERO, &holder("alice"))
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&object)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
    // Renewals are written encrypted too.
    let renewed = a.record();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_ne!(a.record().nonce, renewed.nonce, "renewed at ttl/3");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&object)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
    a.release().await.unwrap();
    assert!(
        s3.head_object()
            .bucket(&bucket)
            .key(&object)
            .send()
            .await
            .is_err()
    );
}

// ---- A write that landed but whose answer was lost (the SDK retries it) ----

/// A proxy in front of moto that forwards every request, but for the first one `rule` matches
/// resets the connection after moto has answered: the write landed, the client never hears
/// so and retries. The test asserts the rule was applied (the answer really was lost).
fn answer_losing_proxy(rule: Rule) -> (Proxy, RuleId) {
    let proxy = Proxy::start(&common::aws::endpoint());
    let id = proxy.add(rule.then(Action::ResetAfterForward).times(1));
    (proxy, id)
}

fn sdk_via(endpoint: &str) -> SdkConfig {
    sdk().to_builder().endpoint_url(endpoint).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_create_whose_answer_was_lost_is_still_ours() {
    let (proxy, lost) = answer_losing_proxy(Rule::method("PUT").header("if-none-match", "*"));
    let cfg = sdk_via(&proxy.url());
    let bucket = unique("lease-");
    s3_client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let s3 = AwsContext::from_sdk_config(cfg.clone()).s3(&cfg);
    let b: Arc<dyn LeaseBackend> = Arc::new(S3Leases::new(
        s3,
        CallCounter::default(),
        bucket,
        STORE_PREFIX.into(),
        None,
    ));
    let key = new_key();
    let alice = holder("alice");
    // The retried create answers 412; the record read back is ours, so the lease is ours
    // (not "held by alice" with nobody holding it).
    let a = take(&b, &key, 30, Duration::ZERO, &alice)
        .await
        .expect("the lease whose create landed is ours");
    assert_eq!(
        stored(&b, &key).await.unwrap().record.nonce,
        a.record().nonce
    );
    assert_eq!(proxy.hits(lost), 1, "the answer was lost on the way back");
    a.release().await.unwrap();
    assert_eq!(stored(&b, &key).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_a_renewal_whose_answer_was_lost_keeps_the_lease() {
    let (proxy, lost) =
        answer_losing_proxy(Rule::amz_target("secretsmanager.UpdateSecretVersionStage"));
    let cfg = sdk_via(&proxy.url());
    let sm = aws_sm::client(&cfg, &CallCounter::default());
    let b: Arc<dyn LeaseBackend> = Arc::new(SecretsManagerLeases::new(sm, CallCounter::default()));
    let key = new_key();
    // A ttl with room for the SDK's retry backoff before the safety margin.
    let a = take(&b, &key, 6, Duration::ZERO, &holder("alice"))
        .await
        .unwrap();
    let first = a.record();
    // The first renewal moves AWSCURRENT, its answer is lost, the retry is refused (AWSCURRENT
    // is no longer on the version it names): the version read back is ours, so still held.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!a.lost(), "{:?}", a.lost_reason());
    assert_ne!(a.record().nonce, first.nonce, "renewed at ttl/3");
    assert_eq!(
        stored(&b, &key).await.unwrap().record.nonce,
        a.record().nonce
    );
    assert_eq!(proxy.hits(lost), 1, "the answer was lost on the way back");
    a.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_a_takeover_whose_answer_was_lost_is_still_ours() {
    let b = sm_backend().await;
    let key = new_key();
    drop(
        take(&b, &key, 1, Duration::ZERO, &holder("crashed"))
            .await
            .unwrap(),
    );
    until_expired(&b, &key).await;
    let (proxy, lost) =
        answer_losing_proxy(Rule::amz_target("secretsmanager.UpdateSecretVersionStage"));
    let cfg = sdk_via(&proxy.url());
    let sm = aws_sm::client(&cfg, &CallCounter::default());
    let via: Arc<dyn LeaseBackend> =
        Arc::new(SecretsManagerLeases::new(sm, CallCounter::default()));
    let bob = holder("bob");
    let l = take(&via, &key, 30, Duration::ZERO, &bob)
        .await
        .expect("the takeover that landed is ours");
    assert_eq!(stored(&b, &key).await.unwrap().record.run_id, bob.run_id);
    assert_eq!(proxy.hits(lost), 1, "the answer was lost on the way back");
    l.release().await.unwrap();
}
