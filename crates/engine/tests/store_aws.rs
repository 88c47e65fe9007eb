//! AWS access: every call has connect and operation timeouts (a black-holed endpoint fails
//! instead of hanging), endpoint overrides must be https or plain http to loopback, and S3
//! path-style addressing is forced only with an endpoint override.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::SdkError;
use aws_smithy_runtime_api::box_error::BoxError;
use secretsync_core::config::MergeStoreConfig;
use secretsync_engine::aws::{
    ATTEMPT_TIMEOUT, AwsContext, CONNECT_TIMEOUT, CallCounter, OPERATION_TIMEOUT, Timeouts,
    check_endpoint_env,
};
use secretsync_engine::error::ErrorKind;
use secretsync_engine::store;
use tokio::net::TcpListener;

fn sdk(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut b = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2));
    if let Some(ep) = endpoint {
        b = b.endpoint_url(ep);
    }
    b.build()
}

/// A TCP server that accepts connections and never answers (nor closes them).
async fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    format!("http://{addr}")
}

const SHORT: Timeouts = Timeouts {
    connect: Duration::from_millis(500),
    attempt: Duration::from_millis(300),
    operation: Duration::from_secs(1),
};

#[tokio::test]
async fn a_black_holed_endpoint_times_out_instead_of_hanging() {
    let ep = black_hole().await;
    let ctx = AwsContext::with_timeouts(sdk(Some(&ep)), SHORT);
    let cfg = ctx.config_for("us-east-1", None, None).await;
    let counter = CallCounter::default();
    let sm = secretsync_engine::targets::aws_sm::client(&cfg, &counter);
    let err = sm
        .list_secrets()
        .send()
        .await
        .expect_err("a server that never answers cannot succeed");
    assert!(
        matches!(err, SdkError::TimeoutError(_)),
        "expected a timeout, got {err:?}"
    );
    assert!(counter.get() >= 1, "the call was never attempted");

    // The merge store says so in words.
    let s3 = store::build(
        &MergeStoreConfig::S3 {
            bucket: "nowhere".into(),
            prefix: "merged/".into(),
            region: None,
            kms_key_id: None,
        },
        Some(&ctx),
        None,
    )
    .await
    .unwrap();
    let err = s3
        .read_bundle("t")
        .await
        .expect_err("cannot read a black hole");
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("timed out"), "{}", err.message);
}

#[tokio::test]
async fn default_timeouts_apply_to_every_context() {
    let ctx = AwsContext::from_sdk_config(sdk(None));
    let tc = ctx.base().timeout_config().expect("timeouts are set");
    assert_eq!(tc.connect_timeout(), Some(CONNECT_TIMEOUT));
    assert_eq!(tc.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    assert_eq!(tc.operation_timeout(), Some(OPERATION_TIMEOUT));
    // ... and survive the per-region configs the clients are built from.
    let cfg = ctx.config_for("eu-west-1", None, None).await;
    let tc = cfg.timeout_config().expect("timeouts are set");
    assert_eq!(tc.operation_timeout(), Some(OPERATION_TIMEOUT));
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[test]
fn endpoint_overrides_are_https_or_loopback_http() {
    for (var, url) in [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ("AWS_ENDPOINT_URL", "HTTP://localhost:4566"),
        ("AWS_ENDPOINT_URL", "http://[::1]:4566/"),
        ("AWS_ENDPOINT_URL_S3", "https://s3.example.com"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "HTTPS://sm.example.com"),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
        ("AWS_ENDPOINT_URL_S3", ""),
    ] {
        let env = env_of(&[(var, url)]);
        assert!(check_endpoint_env(&env).is_ok(), "{var}={url}");
    }
    for (var, url) in [
        ("AWS_ENDPOINT_URL", "http://aws-proxy.corp.example.com"),
        ("AWS_ENDPOINT_URL", "HTTP://10.0.0.5:4566"),
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1.nip.io"),
        (
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            "http://127.0.0.1@evil.example.com",
        ),
        ("AWS_ENDPOINT_URL_STS", "ftp://127.0.0.1"),
        ("AWS_ENDPOINT_URL_STS", "sts.amazonaws.com"),
        ("AWS_ENDPOINT_URL_SSO", "http://sso.example.com"),
    ] {
        let env = env_of(&[(var, url), ("AWS_ENDPOINT_URL", "https://fine.example.com")]);
        let err = check_endpoint_env(&env).expect_err(&format!("{var}={url} must be refused"));
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(
            err.message.starts_with(&format!("{var}: "))
                && err.message.contains(&format!("unset {var}")),
            "{}",
            err.message
        );
    }
}

#[tokio::test]
async fn loading_refuses_a_plain_http_endpoint_before_anything_is_sent() {
    let env = env_of(&[("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://sm.example.com")]);
    let err = AwsContext::load(3, &env)
        .await
        .err()
        .expect("a plain-http endpoint to a remote host is refused");
    assert!(
        err.message.contains("AWS_ENDPOINT_URL_SECRETS_MANAGER")
            && err.message.contains("plain http"),
        "{}",
        err.message
    );
}

/// Records the URI of each request and stops it before it is sent.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "capture"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(ctx.request().uri().to_string());
        Err("captured, not sent".into())
    }
}

/// The URI an S3 GetObject of `bucket/key` would go to.
async fn s3_uri(ctx: &AwsContext) -> String {
    let cfg = ctx.config_for("us-east-1", None, None).await;
    let capture = Capture::default();
    let conf = ctx
        .s3(&cfg)
        .config()
        .to_builder()
        .interceptor(capture.clone())
        .build();
    let _ = aws_sdk_s3::Client::from_conf(conf)
        .get_object()
        .bucket("my-bucket")
        .key("k")
        .send()
        .await;
    let uris = capture.0.lock().unwrap().clone();
    assert_eq!(uris.len(), 1, "{uris:?}");
    uris[0].clone()
}

#[tokio::test]
async fn path_style_s3_only_with_an_endpoint_override() {
    let aws = AwsContext::from_sdk_config(sdk(None));
    assert!(!aws.s3_path_style());
    let uri = s3_uri(&aws).await;
    assert!(uri.starts_with("https://my-bucket.s3."), "{uri}");
    let local = AwsContext::from_sdk_config(sdk(Some("http://127.0.0.1:9")));
    assert!(local.s3_path_style());
    let uri = s3_uri(&local).await;
    assert!(uri.starts_with("http://127.0.0.1:9/my-bucket/k"), "{uri}");
}

#[tokio::test]
async fn loading_accepts_a_loopback_endpoint_and_sets_the_timeouts() {
    let env = env_of(&[("AWS_ENDPOINT_URL_S3", "HTTP://127.0.0.1:9")]);
    let ctx = AwsContext::load(3, &env)
        .await
        .expect("a loopback endpoint is accepted");
    let tc = ctx.base().timeout_config().expect("timeouts are set");
    assert_eq!(tc.connect_timeout(), Some(CONNECT_TIMEOUT));
    assert_eq!(tc.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    assert_eq!(tc.operation_timeout(), Some(OPERATION_TIMEOUT));
    assert!(
        ctx.s3_path_style(),
        "an S3 endpoint override forces path style"
    );
}
