//! The `aws_secretsmanager` target.
//!
//! ```yaml
//! targets:
//!   - name: production-us-east-1
//!     type: aws_secretsmanager
//!     region: us-east-1
//!     role_arn: arn:aws:iam::123456789012:role/SecretSync   # optional; external_id: optional
//!     secret_prefix: prod/            # AWS name = prefix + relative path
//!     imports: [base, production]
//!     overrides: { environment: production }
//!     delete_orphans: false           # delete managed secrets no longer desired
//!     deletion_recovery_days: 30      # 7..30; force_delete: true skips the window
//!     max_deletes: 50                 # more orphans than this fails the target, deletes nothing
//!     adopt: false                    # take over existing unmanaged secrets of desired names
//!     concurrency: 8                  # concurrent writes
//!     writes_per_second: 40           # optional ceiling (default: adaptive pacing only)
//!     kms_key_id: alias/secrets       # optional: CreateSecret/UpdateSecret KmsKeyId
//!     tags: { team: platform }        # beside the ownership tags
//!     description: synced from Vault  # optional
//!     replica_regions: [us-west-2, eu-west-1]
//! ```
//!
//! Plan: `ListSecrets` (100 per page, pending deletions included) gives names, tags, the
//! `AWSCURRENT` version, description and key; values are read with `BatchGetSecretValue` (20
//! per call) only for secrets whose tags do not prove them unchanged. Description, key and
//! extra tags are compared with the listing; replicas with `DescribeSecret` only where the
//! `secretsync:replicas` tag (the region set last seen all in sync) differs from
//! `replica_regions`, and before each deletion (a primary with replicas cannot be deleted).
//! A run with nothing to do costs one `ListSecrets` page per 100 secrets.
//!
//! Apply: creates (with description, key, tags and replicas in one `CreateSecret`) and updates
//! run concurrently (bounded and paced), deletions after every write succeeded. Settings change
//! without a new version (`UpdateSecret` without a value, `TagResource`,
//! `ReplicateSecretToRegions`, `RemoveRegionsFromReplication`). A replica that failed is a
//! warning of the result and retried by the next run (removed, then added: adding a region that
//! has a replica, even a failed one, does not replace it; `ForceOverwriteReplicaSecret` is never
//! set, so another secret of that name in the replica region is never overwritten). On a
//! failure the target is rolled back (created secrets and their replicas deleted, `AWSCURRENT`
//! moved back, settings and tags put back, deletions restored with their replicas) and the
//! report says what could not be undone.
//!
//! Files: `mod.rs` ([`build`], the registry's arm; [`client`], the Secrets Manager client, and
//! [`leases`], the lease backend on it, which the `aws_ssm` target uses too), `client.rs` (the
//! `Target` implementation: listing, value reads, where the fingerprint key is kept, and the
//! writes and their undo that `support::apply` drives), `settings.rs` (description, KMS key,
//! extra tags and replicas: planned, applied, undone), `error.rs` (the one place Secrets
//! Manager's error codes are interpreted).

mod client;
pub mod error;
mod settings;

use std::sync::Arc;

use aws_config::SdkConfig;
use secretsync_core::config::{AwsSmSettings, TargetConfig};

pub use client::AwsSmTarget;

use super::{Clients, Target};
use crate::aws::CallCounter;
use crate::error::Result;
use crate::lease::LeaseBackend;
use crate::lease::secrets_manager::SecretsManagerLeases;

/// The target of `cfg`, as the registry ([`super::build`]) builds it.
pub async fn build(
    cfg: &TargetConfig,
    settings: &AwsSmSettings,
    clients: &Clients<'_>,
) -> Result<Arc<dyn Target>> {
    let aws = clients.aws(&cfg.name)?;
    let target = AwsSmTarget::new(&cfg.name, clients.owner, &cfg.policy, settings, aws);
    Ok(Arc::new(target.await))
}

/// A Secrets Manager client for `cfg` (from [`crate::aws::AwsContext::config_for`]) whose calls
/// `counter` counts.
pub fn client(cfg: &SdkConfig, counter: &CallCounter) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::from(cfg)
        .interceptor(counter.clone())
        // Retried by the retry layer ([`CallCounter::send`]), never by the SDK as well.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// Leases as lock secrets in `client`'s account and region: they work without a merge store and
/// lock where an AWS target writes.
/// `counter` counts (and retries) their calls.
pub fn leases(
    client: &aws_sdk_secretsmanager::Client,
    counter: &CallCounter,
) -> Arc<dyn LeaseBackend> {
    Arc::new(SecretsManagerLeases::new(client.clone(), counter.clone()))
}

#[cfg(test)]
mod tests {
    use secretsync_core::config::{TargetBackend, load};

    /// The example above is a valid target.
    #[test]
    fn the_module_example_loads() {
        let doc: String = include_str!("mod.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
            .skip_while(|l| !l.starts_with("```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let yaml = format!(
            "vault_sources:\n  - mount: secret/base/\n  - mount: secret/production/\n{doc}\n"
        );
        let loaded = load(&yaml, &|_| None);
        let config = loaded
            .config
            .unwrap_or_else(|| panic!("{yaml}\n{:?}", loaded.diagnostics.0));
        // Refutable once there are other kinds.
        #[allow(irrefutable_let_patterns)]
        let TargetBackend::AwsSecretsManager(s) = &config.targets[0].backend else {
            panic!("not an aws_secretsmanager target")
        };
        assert_eq!(s.kms_key_id.as_deref(), Some("alias/secrets"));
        assert_eq!(s.replica_regions, ["us-west-2", "eu-west-1"]);
    }
}
