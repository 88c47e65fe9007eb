//! The `aws_ssm` target: AWS Systems Manager Parameter Store.
//!
//! ```yaml
//! targets:
//!   - name: params
//!     type: aws_ssm
//!     region: us-east-1
//!     role_arn: arn:aws:iam::123456789012:role/SecretSync   # optional; external_id: optional
//!     secret_prefix: /myorg/prod/     # parameter name = prefix + relative path (+ /<key>)
//!     mapping: per_key                # whole (default): one parameter holding the JSON
//!     kms_key_id: alias/params        # optional: the SecureStrings' KMS key
//!     imports: [base]
//!     delete_orphans: false           # delete managed parameters no longer desired
//!     max_deletes: 50                 # more orphan secrets than this deletes nothing
//!     adopt: false                    # take over existing unmanaged parameters
//!     concurrency: 4                  # secrets written at once
//!     writes_per_second: 3            # the default: Parameter Store's standard write quota
//! ```
//!
//! Every parameter is a `SecureString` carrying the ownership tags (`managed-by`,
//! `secretsync:owner`, `secretsync:target`, `secretsync:fingerprint` of the whole secret,
//! `secretsync:version` = the parameter version the tool wrote) and `secretsync:path` (the
//! secret's relative path). How secrets map to parameters, and the limits, are in
//! `secretsync_core::targets::aws_ssm`.
//!
//! Plan: Parameter Store lists no tags, and reading them costs one `ListTagsForResource` per
//! parameter. Instead one `DescribeParameters` listing under the prefix with `tag:` filters
//! (managed-by, owner, target; 50 per page) finds this target's parameters (with
//! `adopt_from`, a second one finds the adopted targets' and reads their tags), their current
//! values are read with `GetParameters` (10 per call, decrypted), and content is proven by those
//! values, not by the fingerprint tag, so an out-of-band edit is always seen. Desired names
//! the listing does not know are looked up exactly (`DescribeParameters` by `Name`, 50 per
//! call, plus the managed-by filter; tags are read only for other owners' or targets'): an
//! unmanaged parameter is never written without `adopt: true`, another target's never. A
//! no-change run of P parameters costs ⌈P/50⌉ listing pages, ⌈P/10⌉ `GetParameters`, one
//! `GetParameter` for the fingerprint key and the lease's Secrets Manager calls.
//!
//! Apply: each secret is one change (with `per_key`: added keys become new parameters, changed
//! ones are overwritten, removed ones deleted), written concurrently (bounded, every write call
//! paced; a `SecureString` under another key than `kms_key_id` is written again with the same
//! value under it: a re-encrypt, planned as a `kms_key_id` setting change); orphans are deleted
//! last with `DeleteParameters` (10 per call) — Parameter Store
//! has no recovery window, so a deletion is final once the apply succeeded. On a failure
//! everything is rolled back: overwritten parameters get their previous value back (as a new
//! version) and their tags, created ones are deleted, deleted ones are recreated with their
//! value and tags (as version 1). The lease lives in Secrets Manager in the same account and
//! region (Parameter Store has no compare-and-swap).
//!
//! Files: `mod.rs` ([`build`], the registry's arm, which checks `AWS_ENDPOINT_URL_SSM` first),
//! `client.rs` (the `Target` implementation: its Parameter Store client and a Secrets Manager
//! one for the lease ([`super::aws_sm::client`]), listing, value reads, where the fingerprint
//! key is kept, and the writes and their undo that `support::apply` drives), `error.rs` (the
//! one place Parameter Store's error codes are interpreted).

mod client;
pub mod error;

use std::sync::Arc;

use secretsync_core::config::TargetConfig;
use secretsync_core::targets::aws_ssm::AwsSsmSettings;

pub use client::AwsSsmTarget;

use super::{Clients, Target};
use crate::aws::check_endpoint_var;
use crate::error::Result;

/// The variable that overrides Parameter Store's endpoint (the SDK honours it).
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_SSM";

/// The target of `cfg`, as the registry ([`super::build`]) builds it, once Parameter Store's
/// endpoint override ([`ENDPOINT_VAR`]) is known not to send anything over plain http to
/// another host than loopback.
pub async fn build(
    cfg: &TargetConfig,
    settings: &AwsSsmSettings,
    clients: &Clients<'_>,
) -> Result<Arc<dyn Target>> {
    check_endpoint_var(clients.env, ENDPOINT_VAR)?;
    let aws = clients.aws(&cfg.name)?;
    let target = AwsSsmTarget::new(&cfg.name, clients.owner, &cfg.policy, settings, aws);
    Ok(Arc::new(target.await))
}

#[cfg(test)]
mod tests {
    use secretsync_core::config::{TargetBackend, load};

    use super::ENDPOINT_VAR;
    use crate::aws::AwsContext;
    use crate::error::ErrorKind;
    use crate::targets::Clients;

    /// Parameter Store's endpoint override is checked when the target is built, like the shared
    /// ones when AWS access is loaded: plain http only to loopback.
    #[tokio::test]
    async fn building_checks_the_parameter_store_endpoint_override() {
        let yaml = "vault_sources:\n  - mount: secret/base/\ntargets:\n  - name: params\n    type: aws_ssm\n    region: us-east-1\n    imports: [base]\n";
        let config = load(yaml, &|_| None).config.expect("a valid config");
        let (target, TargetBackend::AwsSsm(settings)) =
            (&config.targets[0], &config.targets[0].backend)
        else {
            panic!("not an aws_ssm target")
        };
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let aws = &AwsContext::from_sdk_config(sdk);
        let build = |url: &'static str| async move {
            let env = move |var: &str| (var == ENDPOINT_VAR).then(|| url.to_string());
            let clients = Clients {
                aws: Some(aws),
                owner: "o",
                env: &env,
                observers: Default::default(),
                retries: secretsync_core::config::RetriesConfig {
                    vault_max_attempts: 1,
                    ..Default::default()
                },
                store: None,
                merge_store: None,
            };
            super::build(target, settings, &clients).await.map(|_| ())
        };
        build("http://127.0.0.1:4566").await.expect("loopback http");
        build("https://ssm.example.com").await.expect("https");
        for url in ["http://ssm.example.com", "ftp://127.0.0.1"] {
            let err = build(url).await.expect_err(url);
            assert_eq!(err.kind, ErrorKind::Config);
            assert!(
                err.message.starts_with("AWS_ENDPOINT_URL_SSM: ")
                    && err.message.contains("unset AWS_ENDPOINT_URL_SSM"),
                "{}",
                err.message
            );
        }
    }
}
