//! The error cases the contract fake does not model (quota, permission, conflicts), through
//! the client library's stub seam (`SecretManagerService::from_stub`): each checks that the
//! target's error says what to fix and that nothing is deleted. Also the `ca_cert` check and
//! the static token's header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::{Code, Status};
use google_cloud_gax::options::RequestOptions;
use google_cloud_gax::response::Response;
use google_cloud_secretmanager_v1::client::SecretManagerService as Client;
use google_cloud_secretmanager_v1::{model, stub};
use secretsync_core::config::{Sensitive, TargetPolicy};
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::targets::gcp_secretmanager::{GcpSmSettings, Replication};
use serde_json::json;

use super::{GcpSmTarget, KEY_ID, StaticToken, check_ca_trusted};
use crate::cancel::Cancel;
use crate::error::ErrorKind;
use crate::targets::{PlanContext, Target};

const PARENT: &str = "projects/p-test";

/// Answers from memory: one managed orphan `apps__old` and the fingerprint key; `fail` names
/// the operation that answers `code` instead. Every call is logged.
#[derive(Debug, Default)]
struct Stub {
    fail: Option<(&'static str, Code, &'static str)>,
    log: Mutex<Vec<String>>,
}

impl Stub {
    fn failing(op: &'static str, code: Code, message: &'static str) -> Arc<Stub> {
        Arc::new(Stub {
            fail: Some((op, code, message)),
            log: Mutex::default(),
        })
    }
    fn called(&self, op: &str) -> std::result::Result<(), GaxError> {
        self.log.lock().unwrap().push(op.to_string());
        match self.fail {
            Some((o, code, message)) if o == op => Err(GaxError::service(
                Status::default().set_code(code).set_message(message),
            )),
            _ => Ok(()),
        }
    }
    fn calls(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

type R<T> = google_cloud_secretmanager_v1::Result<Response<T>>;

impl stub::SecretManagerService for Stub {
    async fn list_secrets(
        &self,
        _req: model::ListSecretsRequest,
        _o: RequestOptions,
    ) -> R<model::ListSecretsResponse> {
        self.called("ListSecrets")?;
        let labels = HashMap::from([
            ("managed-by".to_string(), "secretsync".to_string()),
            ("secretsync-owner".to_string(), "owner".to_string()),
            ("secretsync-target".to_string(), "gcp".to_string()),
            ("secretsync-version".to_string(), "1".to_string()),
        ]);
        let old = model::Secret::new()
            .set_name(format!("{PARENT}/secrets/apps__old"))
            .set_labels(labels);
        Ok(Response::from(
            model::ListSecretsResponse::new().set_secrets([old]),
        ))
    }
    async fn access_secret_version(
        &self,
        req: model::AccessSecretVersionRequest,
        _o: RequestOptions,
    ) -> R<model::AccessSecretVersionResponse> {
        self.called("AccessSecretVersion")?;
        assert!(req.name.contains(KEY_ID), "{}", req.name);
        let key = json!({"key": "ab".repeat(32)}).to_string();
        Ok(Response::from(
            model::AccessSecretVersionResponse::new()
                .set_payload(model::SecretPayload::new().set_data(key.into_bytes())),
        ))
    }
    async fn create_secret(
        &self,
        req: model::CreateSecretRequest,
        _o: RequestOptions,
    ) -> R<model::Secret> {
        self.called("CreateSecret")?;
        Ok(Response::from(
            model::Secret::new().set_name(format!("{PARENT}/secrets/{}", req.secret_id)),
        ))
    }
    async fn add_secret_version(
        &self,
        req: model::AddSecretVersionRequest,
        _o: RequestOptions,
    ) -> R<model::SecretVersion> {
        self.called("AddSecretVersion")?;
        Ok(Response::from(
            model::SecretVersion::new().set_name(format!("{}/versions/1", req.parent)),
        ))
    }
    async fn update_secret(
        &self,
        req: model::UpdateSecretRequest,
        _o: RequestOptions,
    ) -> R<model::Secret> {
        self.called("UpdateSecret")?;
        Ok(Response::from(req.secret.unwrap_or_default()))
    }
    async fn delete_secret(
        &self,
        req: model::DeleteSecretRequest,
        _o: RequestOptions,
    ) -> google_cloud_secretmanager_v1::Result<Response<()>> {
        self.called(&format!("DeleteSecret {}", req.name))?;
        Ok(Response::from(()))
    }
    async fn list_secret_versions(
        &self,
        req: model::ListSecretVersionsRequest,
        _o: RequestOptions,
    ) -> R<model::ListSecretVersionsResponse> {
        self.called("ListSecretVersions")?;
        Ok(Response::from(
            model::ListSecretVersionsResponse::new().set_versions([model::SecretVersion::new()
                .set_name(format!("{}/versions/1", req.parent))
                .set_state(model::secret_version::State::Enabled)]),
        ))
    }
    async fn disable_secret_version(
        &self,
        req: model::DisableSecretVersionRequest,
        _o: RequestOptions,
    ) -> R<model::SecretVersion> {
        self.called("DisableSecretVersion")?;
        Ok(Response::from(
            model::SecretVersion::new().set_name(req.name),
        ))
    }
    async fn enable_secret_version(
        &self,
        req: model::EnableSecretVersionRequest,
        _o: RequestOptions,
    ) -> R<model::SecretVersion> {
        self.called("EnableSecretVersion")?;
        Ok(Response::from(
            model::SecretVersion::new().set_name(req.name),
        ))
    }
}

fn target(stub: &Arc<Stub>) -> GcpSmTarget {
    let settings = GcpSmSettings {
        project: "p-test".into(),
        location: None,
        replication: Replication::Automatic,
        endpoint: None,
        ca_cert: None,
        token: None,
    };
    let policy = TargetPolicy {
        secret_prefix: "apps/".into(),
        delete_orphans: true,
        max_deletes: 10,
        max_delete_fraction: 1.0,
        concurrency: 1,
        writes_per_second: 0,
        ..TargetPolicy::default()
    };
    let dir = std::env::temp_dir().join(format!("secretsync-gcp-unit-{}", uuid::Uuid::new_v4()));
    GcpSmTarget::new(
        "gcp",
        "owner",
        &policy,
        &settings,
        Arc::new(crate::lease::local::LocalLeases::new(dir)),
    )
    .with_client(Client::from_stub::<Stub>(stub.clone()))
    .retried(crate::retry::Policy::new(1))
}

fn desired() -> Collected {
    let mut c = Collected::default();
    let serde_json::Value::Object(m) = json!({"k": "v"}) else {
        unreachable!()
    };
    c.secrets.insert("new".into(), SecretValue::new(m));
    c
}

/// Nothing was deleted or disabled (a rollback's removal of what it just created aside).
fn nothing_deleted(stub: &Stub) {
    let calls = stub.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("DisableSecretVersion") || c.contains("apps__old")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn permission_denied_on_listing_fails_the_plan_and_says_which_role() {
    let stub = Stub::failing(
        "ListSecrets",
        Code::PermissionDenied,
        "Permission 'secretmanager.secrets.list' denied",
    );
    let err = target(&stub)
        .plan(&desired(), &PlanContext::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert!(
        err.message.contains("roles/secretmanager.admin")
            && err.message.contains("secretmanager.secrets.list")
            && err.message.contains("PERMISSION_DENIED"),
        "{}",
        err.message
    );
    nothing_deleted(&stub);
}

#[tokio::test]
async fn a_quota_error_rolls_the_create_back_and_deletes_nothing_else() {
    let stub = Stub::failing(
        "AddSecretVersion",
        Code::ResourceExhausted,
        "Quota exceeded for quota metric 'Write requests'",
    );
    let t = target(&stub);
    let plan = t.plan(&desired(), &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.as_deref().expect("the apply fails");
    assert!(
        failure.contains("RESOURCE_EXHAUSTED") && failure.contains("writes_per_second"),
        "{failure}"
    );
    assert_eq!((r.created, r.deleted), (0, 0), "{r:?}");
    let calls = stub.calls();
    // The secret just created is removed; the orphan is not touched (deletions come after
    // every write, and a write failed).
    assert!(
        calls.contains(&format!("DeleteSecret {PARENT}/secrets/apps__new")),
        "{calls:?}"
    );
    nothing_deleted(&stub);
}

#[tokio::test]
async fn a_conflict_on_create_is_reported_and_deletes_nothing() {
    let stub = Stub::failing(
        "CreateSecret",
        Code::AlreadyExists,
        "Secret [apps__new] already exists.",
    );
    let t = target(&stub);
    let plan = t.plan(&desired(), &PlanContext::default()).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.as_deref().expect("the apply fails");
    assert!(
        failure.contains("ALREADY_EXISTS") && failure.contains("run again"),
        "{failure}"
    );
    assert!(
        !stub.calls().iter().any(|c| c.starts_with("DeleteSecret")),
        "{:?}",
        stub.calls()
    );
    nothing_deleted(&stub);
}

#[tokio::test]
async fn an_aborted_disable_of_an_orphan_is_a_conflict_and_deletes_nothing() {
    let stub = Stub::failing(
        "DisableSecretVersion",
        Code::Aborted,
        "concurrent modification",
    );
    let t = target(&stub);
    let mut d = desired();
    d.secrets.clear();
    let ctx = PlanContext {
        allow_mass_delete: true,
        ..PlanContext::default()
    };
    let plan = t.plan(&d, &ctx).await.unwrap();
    let r = t.apply(&plan, &Cancel::default()).await;
    let failure = r.failure.as_deref().expect("the apply fails");
    assert!(
        failure.contains("ABORTED") && failure.contains("run again"),
        "{failure}"
    );
    assert_eq!(r.deleted, 0, "{r:?}");
    assert!(
        !stub.calls().iter().any(|c| c.starts_with("DeleteSecret")),
        "{:?}",
        stub.calls()
    );
}

#[test]
fn ca_cert_must_be_trusted_through_the_environment() {
    let dir = std::env::temp_dir().join(format!("secretsync-gcp-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBfake\nAAAA\n-----END CERTIFICATE-----\n";
    std::fs::write(&ca, pem).unwrap();
    let bundle = dir.join("bundle.pem");
    std::fs::write(
        &bundle,
        format!("-----BEGIN CERTIFICATE-----\nb3RoZXI=\n-----END CERTIFICATE-----\n{pem}"),
    )
    .unwrap();
    let ca_s = ca.to_str().unwrap();
    let none = |_: &str| None;
    let e = check_ca_trusted("gcp", ca_s, &none).unwrap_err();
    assert!(
        e.message.contains("SSL_CERT_FILE") && e.message.contains(ca_s),
        "{}",
        e.message
    );
    let b = bundle.to_str().unwrap().to_string();
    let file = move |k: &str| (k == "SSL_CERT_FILE").then(|| b.clone());
    assert!(check_ca_trusted("gcp", ca_s, &file).is_ok());
    let d = dir.to_str().unwrap().to_string();
    let dirs = move |k: &str| (k == "SSL_CERT_DIR").then(|| format!("/nonexistent:{d}"));
    assert!(check_ca_trusted("gcp", ca_s, &dirs).is_ok());
    std::fs::write(&ca, "not a certificate").unwrap();
    let e = check_ca_trusted("gcp", ca_s, &file).unwrap_err();
    assert!(e.message.contains("no PEM certificate"), "{}", e.message);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_static_token_is_a_sensitive_bearer_header() {
    let creds = StaticToken::credentials(&Sensitive::new("ya29.abc")).unwrap();
    let google_cloud_auth::credentials::CacheableResource::New { data, .. } =
        creds.headers(http::Extensions::new()).await.unwrap()
    else {
        panic!("new headers")
    };
    let h = &data[http::header::AUTHORIZATION];
    assert_eq!(h, "Bearer ya29.abc");
    assert!(h.is_sensitive());
    assert!(!format!("{creds:?}").contains("ya29"));
    assert!(StaticToken::credentials(&Sensitive::new("a\nb")).is_err());
}
