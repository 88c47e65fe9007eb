//! The local AWS emulator (moto) for the integration tests: its address from
//! `SECRETSYNC_TEST_AWS_ENDPOINT` (a loud failure when unset), SDK configs and clients pointed at
//! it (or at a fault proxy in front of it), and the usual `aws_secretsmanager` settings.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use secretsync_core::config::AwsSmSettings;

/// moto's address; panics when the variable is missing: these tests never skip silently.
pub fn endpoint() -> String {
    std::env::var("SECRETSYNC_TEST_AWS_ENDPOINT").expect(
        "SECRETSYNC_TEST_AWS_ENDPOINT is not set: run the tests through scripts/test.sh, which starts moto",
    )
}

/// An SDK config for `endpoint` (moto or a proxy in front of it) in `region`, with test
/// credentials and at most `attempts` tries per call.
pub fn sdk_with_attempts(endpoint: &str, region: &str, attempts: u32) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
        .build()
}

/// [`sdk_with_attempts`] with 5 tries: moto answers 500 now and then under concurrent writes in
/// one region (a thread-safety bug of its own); the SDK retries those, as it does in production.
pub fn sdk(endpoint: &str, region: &str) -> SdkConfig {
    sdk_with_attempts(endpoint, region, 5)
}

/// A Secrets Manager client that reads moto directly in `region` (never through the code under
/// test).
pub fn sm(region: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk(&endpoint(), region))
}

/// `aws_secretsmanager` settings in `region`: 7 recovery days, everything else the default.
pub fn sm_settings(region: &str) -> AwsSmSettings {
    AwsSmSettings {
        region: region.into(),
        deletion_recovery_days: 7,
        ..AwsSmSettings::default()
    }
}
