//! AWS access shared by every AWS backend: the SDK's default credential chain loaded once,
//! per-role credentials (assumed with STS, session name `secretsync`, cached and refreshed by
//! the SDK's identity cache), adaptive retries, and an interceptor that counts API calls.
//! `AWS_ENDPOINT_URL` is honoured by the SDK's config loader.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use tokio::sync::Mutex;

/// Counts every attempt (retries included) of the clients it is attached to.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<AtomicU64>);

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "secretsync-call-counter"
    }
    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// (role ARN, external id, region).
type RoleKey = (String, Option<String>, String);

/// The base SDK config and a cache of per-role configs.
pub struct AwsContext {
    base: SdkConfig,
    roles: Mutex<HashMap<RoleKey, SdkConfig>>,
    /// Calls made by shared clients (merge store); targets count their own.
    pub calls: CallCounter,
}

impl AwsContext {
    pub async fn load(max_attempts: u32) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::adaptive().with_max_attempts(max_attempts))
            .load()
            .await;
        AwsContext {
            base,
            roles: Mutex::new(HashMap::new()),
            calls: CallCounter::default(),
        }
    }

    /// From an explicit SDK config (tests and embedding).
    pub fn from_sdk_config(base: SdkConfig) -> Self {
        AwsContext {
            base,
            roles: Mutex::new(HashMap::new()),
            calls: CallCounter::default(),
        }
    }

    /// Config for a region, optionally through an assumed role.
    pub async fn config_for(
        &self,
        region: &str,
        role_arn: Option<&str>,
        external_id: Option<&str>,
    ) -> SdkConfig {
        let Some(role) = role_arn else {
            return self
                .base
                .to_builder()
                .region(Region::new(region.to_string()))
                .build();
        };
        let key = (
            role.to_string(),
            external_id.map(str::to_string),
            region.to_string(),
        );
        let mut roles = self.roles.lock().await;
        if let Some(c) = roles.get(&key) {
            return c.clone();
        }
        let mut b = AssumeRoleProvider::builder(role)
            .session_name("secretsync")
            .region(Region::new(region.to_string()))
            .configure(&self.base);
        if let Some(id) = external_id {
            b = b.external_id(id);
        }
        let provider = b.build().await;
        let cfg = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()))
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        roles.insert(key, cfg.clone());
        cfg
    }

    pub fn secrets_manager(
        &self,
        cfg: &SdkConfig,
        counter: &CallCounter,
    ) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::config::Builder::from(cfg)
            .interceptor(counter.clone())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    pub fn s3(&self, cfg: &SdkConfig) -> aws_sdk_s3::Client {
        // Path-style addressing works with every endpoint, local emulators included.
        let conf = aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .interceptor(self.calls.clone())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn base(&self) -> &SdkConfig {
        &self.base
    }
}
