//! The observation seam against the real servers: every attempt of every Vault (OpenBao) and
//! AWS (moto) call is admitted by the run's observers first and reported to them after, with
//! the operation's name (never a path), the outcome, our request id and the backend's; a
//! refusal stops the call before anything is sent.

mod common;

use std::sync::{Arc, Mutex};

use common::{Bao, no_env, source, unique};
use secretsync_core::diff::ChangeKind;
use secretsync_engine::aws::AwsContext;
use secretsync_engine::error::{Error, ErrorKind};
use secretsync_engine::observe::{Attempt, Backend, Endpoint, Observer, Observers, Outcome};
use secretsync_engine::targets::{PlanContext, Target, aws_sm::AwsSmTarget};
use secretsync_engine::vault::VaultClient;
use serde_json::json;

#[derive(Debug, Clone)]
struct Seen {
    backend: Backend,
    service: String,
    breaker: String,
    operation: String,
    request_id: String,
    backend_request_id: Option<String>,
    attempt: u32,
    outcome: Outcome,
    pagination: bool,
}

/// Records every attempt; refuses operations named in `refuse`.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    refuse: Vec<&'static str>,
    asked: Mutex<Vec<String>>,
}

impl Observer for Recorder {
    fn admit(&self, e: &Endpoint, operation: &str) -> Result<(), Error> {
        self.asked.lock().unwrap().push(operation.to_string());
        if self.refuse.contains(&operation) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("circuit open for {}", e.breaker_key()),
            ));
        }
        Ok(())
    }
    fn attempt(&self, a: &Attempt<'_>) {
        self.seen.lock().unwrap().push(Seen {
            backend: a.endpoint.backend,
            service: a.endpoint.service.clone(),
            breaker: a.endpoint.breaker_key(),
            operation: a.operation.to_string(),
            request_id: a.request_id.to_string(),
            backend_request_id: a.backend_request_id.map(str::to_string),
            attempt: a.attempt,
            outcome: a.outcome,
            pagination: a.pagination,
        });
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn ops(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.operation).collect()
    }
}

fn observers(r: &Arc<Recorder>) -> Observers {
    Observers::new(vec![r.clone() as Arc<dyn Observer>])
}

#[tokio::test]
async fn every_vault_attempt_is_admitted_and_reported_without_paths() {
    let bao = Bao::from_env();
    let mount = format!("{}/", unique("obs"));
    bao.enable_kv2(&mount).await;
    bao.put(&mount, "team-alpha/db-password", json!({"v": "x"}))
        .await;
    bao.put(&mount, "team-alpha/api", json!({"v": "y"})).await;

    let rec = Arc::new(Recorder::default());
    let client =
        VaultClient::connect_observed(&bao.token_settings(&bao.root), &no_env, observers(&rec))
            .await
            .unwrap();
    let read = common::read_source(&client, &source("s", &mount), 4)
        .await
        .unwrap();
    assert_eq!(read.len(), 2);

    let seen = rec.seen();
    // As many attempts reported as requests sent, each admitted first.
    assert_eq!(seen.len() as u64, client.request_count());
    assert_eq!(rec.asked.lock().unwrap().len(), seen.len());
    let mut ops = rec.ops();
    ops.sort();
    assert_eq!(
        ops,
        [
            "auth.lookup-self",
            "kv.list",
            "kv.list",
            "kv.read",
            "kv.read",
            "sys.mount"
        ],
        "{seen:#?}"
    );
    for s in &seen {
        assert_eq!(s.backend, Backend::Vault);
        assert_eq!(s.service, "vault");
        assert_eq!(s.breaker, format!("vault/{}", bao.addr));
        assert_eq!(s.outcome, Outcome::Ok, "{s:?}");
        assert_eq!(s.attempt, 1);
        assert_eq!(s.request_id.len(), 16);
        // OpenBao names each request in its answer (and its audit log).
        assert!(
            s.backend_request_id
                .as_deref()
                .is_some_and(|id| !id.is_empty()),
            "{s:?}"
        );
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("team-alpha") && !shown.contains(&mount),
            "{shown}"
        );
    }
    let ids: std::collections::BTreeSet<_> = seen.iter().map(|s| &s.request_id).collect();
    assert_eq!(ids.len(), seen.len(), "a request id per call");
}

#[tokio::test]
async fn a_refused_vault_call_sends_nothing_and_says_why_with_its_request_id() {
    let bao = Bao::from_env();
    let mount = format!("{}/", unique("obsno"));
    bao.enable_kv2(&mount).await;
    let rec = Arc::new(Recorder {
        refuse: vec!["kv.list"],
        ..Recorder::default()
    });
    let client =
        VaultClient::connect_observed(&bao.token_settings(&bao.root), &no_env, observers(&rec))
            .await
            .unwrap();
    let before = client.request_count();
    let err = client.list(&mount, "").await.unwrap_err();
    assert_eq!(client.request_count(), before, "nothing was sent");
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message.starts_with("[req=")
            && err.message.contains(&format!(
                "failed to list secrets at path \"{mount}metadata/\""
            ))
            && err.message.contains("(retries: 0)")
            && err
                .message
                .contains(&format!("circuit open for vault/{}", bao.addr)),
        "{}",
        err.message
    );
    assert!(
        !rec.ops().contains(&"kv.list".to_string()),
        "a refused attempt is not reported as made"
    );
}

#[tokio::test]
async fn every_aws_attempt_is_admitted_and_reported_with_awss_request_id() {
    const REGION: &str = "ca-central-1";
    let rec = Arc::new(Recorder::default());
    let aws = AwsContext::from_sdk_config(common::aws::sdk(&common::aws::endpoint(), REGION))
        .observe(observers(&rec));
    let prefix = format!("{}/", unique("obs"));
    let t = AwsSmTarget::new(
        "t",
        "owner-obs",
        &common::policy(&prefix),
        &common::aws::sm_settings(REGION),
        &aws,
    )
    .await;
    let plan = t
        .plan(
            &common::bundle(&[("db", json!({"p": "s3cr3t"}))]),
            &PlanContext {
                dry_run: true,
                allow_mass_delete: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(common::kinds(&plan)["db"], ChangeKind::Added);
    let seen = rec.seen();
    assert_eq!(seen.len() as u64, t.calls(), "{seen:#?}");
    assert!(rec.ops().contains(&"ListSecrets".to_string()), "{seen:#?}");
    for s in &seen {
        assert_eq!(s.backend, Backend::Aws);
        assert_eq!(s.service, "secretsmanager");
        assert_eq!(s.breaker, format!("aws/default/{REGION}"));
        assert!(!s.pagination, "one page: {s:?}");
        assert!(
            s.backend_request_id
                .as_deref()
                .is_some_and(|id| !id.is_empty()),
            "{s:?}"
        );
        assert!(!format!("{s:?}").contains(&prefix));
    }
    // The fingerprint key is missing in this fresh region: that answer is AWS refusing
    // (not found), not AWS failing.
    assert!(
        seen.iter()
            .all(|s| matches!(s.outcome, Outcome::Ok | Outcome::Refused)),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn a_refused_aws_call_sends_nothing_and_the_error_says_why() {
    const REGION: &str = "ca-central-1";
    let rec = Arc::new(Recorder {
        refuse: vec!["ListSecrets"],
        ..Recorder::default()
    });
    let aws = AwsContext::from_sdk_config(common::aws::sdk(&common::aws::endpoint(), REGION))
        .observe(observers(&rec));
    let t = AwsSmTarget::new(
        "t",
        "owner-obs",
        &common::policy(&format!("{}/", unique("obsno"))),
        &common::aws::sm_settings(REGION),
        &aws,
    )
    .await;
    let err = t
        .plan(
            &common::bundle(&[("db", json!({"p": "x"}))]),
            &PlanContext {
                dry_run: true,
                allow_mass_delete: false,
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("circuit open for aws/default/ca-central-1"),
        "{}",
        err.message
    );
    assert!(
        !rec.ops().contains(&"ListSecrets".to_string()),
        "refused attempts are not made"
    );
}
