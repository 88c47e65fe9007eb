//! Raw config types: the YAML shape, every field optional so that one pass reports every
//! problem. They hold credentials and override values as plain text, so none derives
//! `Debug`. Nothing outside `config` sees these; [`super::validate`] lowers them into the
//! typed [`super::Config`].

use serde::Deserialize;

use crate::de::Spanned;

/// An optional positioned value: every raw field has this type.
pub type S<T> = Option<Spanned<T>>;

/// Declares a target kind's raw settings: the keys every target has (name, type, imports,
/// overrides and the sync policy) plus the kind's own. `deny_unknown_fields`: a key of
/// another kind is reported with its line and the closest key of this kind.
#[macro_export]
macro_rules! raw_target {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub name: $crate::config::S<String>,
            #[serde(rename = "type")]
            pub kind: $crate::config::S<String>,
            pub imports: $crate::config::S<Vec<$crate::de::Spanned<String>>>,
            pub overrides: $crate::config::S<serde_json::Value>,
            pub secret_prefix: $crate::config::S<String>,
            pub delete_orphans: $crate::config::S<bool>,
            pub max_deletes: $crate::config::S<u64>,
            pub max_delete_fraction: $crate::config::S<f64>,
            pub adopt: $crate::config::S<bool>,
            pub adopt_from: $crate::config::S<Vec<$crate::de::Spanned<String>>>,
            pub concurrency: $crate::config::S<u64>,
            pub writes_per_second: $crate::config::S<u64>,
            pub transform: $crate::config::S<$crate::de::OneOrMany<$crate::de::Spanned<$crate::config::RawTransform>>>,
            pub name_template: $crate::config::S<String>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }
        impl $name {
            /// Moves the keys every target has out.
            pub fn take_common(&mut self) -> $crate::config::RawCommon {
                $crate::config::RawCommon {
                    name: self.name.take(),
                    imports: self.imports.take(),
                    overrides: self.overrides.take(),
                    secret_prefix: self.secret_prefix.take(),
                    delete_orphans: self.delete_orphans.take(),
                    max_deletes: self.max_deletes.take(),
                    max_delete_fraction: self.max_delete_fraction.take(),
                    adopt: self.adopt.take(),
                    adopt_from: self.adopt_from.take(),
                    concurrency: self.concurrency.take(),
                    writes_per_second: self.writes_per_second.take(),
                    transform: self.transform.take(),
                    name_template: self.name_template.take(),
                }
            }
        }
    };
}

/// The keys every target has, whatever its kind.
#[derive(Default)]
pub struct RawCommon {
    pub name: S<String>,
    pub imports: S<Vec<Spanned<String>>>,
    pub overrides: S<serde_json::Value>,
    pub secret_prefix: S<String>,
    pub delete_orphans: S<bool>,
    pub max_deletes: S<u64>,
    pub max_delete_fraction: S<f64>,
    pub adopt: S<bool>,
    pub adopt_from: S<Vec<Spanned<String>>>,
    pub concurrency: S<u64>,
    pub writes_per_second: S<u64>,
    pub transform: S<crate::de::OneOrMany<Spanned<RawTransform>>>,
    pub name_template: S<String>,
}

/// A `transform:` block of a target (`crate::transform`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTransform {
    pub paths: S<Vec<Spanned<String>>>,
    pub include: S<Vec<Spanned<String>>>,
    pub exclude: S<Vec<Spanned<String>>>,
    pub rename: S<std::collections::BTreeMap<String, Spanned<String>>>,
    pub template: S<std::collections::BTreeMap<String, Spanned<String>>>,
    pub case: S<String>,
    pub flatten: S<String>,
}

/// A target, tagged by its `type`: one variant per kind (the registry of raw settings).
/// Parsed once per config; the size difference to `Unknown` does not matter.
#[derive(Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RawTarget {
    #[serde(rename = "aws_secretsmanager")]
    AwsSecretsManager(crate::targets::aws_sm::Raw),
    #[serde(rename = "vault_kv2")]
    VaultKv2(crate::targets::vault_kv2::Raw),
    #[serde(rename = "aws_ssm")]
    AwsSsm(crate::targets::aws_ssm::Raw),
    #[serde(rename = "webhook")]
    Webhook(crate::targets::webhook::Raw),
    #[serde(rename = "plugin")]
    Plugin(crate::targets::plugin::Raw),
    #[serde(rename = "azure_keyvault")]
    AzureKeyVault(crate::targets::azure_keyvault::Raw),
    #[serde(rename = "gcp_secretmanager")]
    GcpSecretManager(crate::targets::gcp_secretmanager::Raw),
    /// An unknown or missing `type` (already reported).
    #[serde(other, rename = "$unknown")]
    Unknown,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The owner scope written into ownership tags.
    pub owner: S<String>,
    pub vault: S<RawVault>,
    pub vault_sources: S<Vec<Spanned<RawSource>>>,
    pub merge_store: S<RawMergeStore>,
    pub targets: S<Vec<Spanned<RawTarget>>>,
    pub discovery: S<crate::de::OneOrMany<Spanned<RawDiscovery>>>,
    pub metrics: S<RawMetrics>,
    pub circuit_breaker: S<RawCircuitBreaker>,
    pub retries: S<RawRetries>,
    /// Targets synced at once (`--parallel-targets` overrides it).
    pub max_parallel_targets: S<u64>,
    pub masking: S<RawMasking>,
    /// The hash-chained audit log (`secretsync_core::audit`).
    pub audit: S<RawAudit>,
    /// Rego policies checked on every plan (`secretsync_core::policy`).
    pub policies: S<Vec<Spanned<RawPolicy>>>,
    /// Keys regenerated in Vault (`secretsync rotate`).
    pub rotation: S<Vec<Spanned<RawRotation>>>,
    /// POSTs after runs (`secretsync_core::notify`).
    pub notifications: S<Vec<Spanned<RawNotification>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawNotification {
    pub url: S<String>,
    /// `json` or `slack`.
    pub format: S<String>,
    /// `failure`, `changes`, `drift`.
    pub on: S<Vec<Spanned<String>>>,
    /// The HMAC key of the signature header.
    pub secret: S<String>,
    /// Per attempt (`10s`).
    pub timeout: S<String>,
    pub max_attempts: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// A local JSON Lines file the events are appended to.
    pub file: S<String>,
    /// Also into the merge store (one object per run and a chain head).
    pub store: S<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// A `.rego` file or a folder of them, relative to the config file's folder.
    pub path: S<String>,
    /// The rule whose results are messages (`data.secretsync.deny`).
    pub query: S<String>,
    /// `deny` or `warn`: what the query's messages do.
    pub effect: S<String>,
    /// Whether the policy sees the values of the changes.
    pub with_values: S<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRotation {
    /// A `vault_sources` name.
    pub source: S<String>,
    /// Globs over the secret's path relative to the source's mount.
    pub paths: S<Vec<Spanned<String>>>,
    /// A top-level key of the selected secrets.
    pub key: S<String>,
    pub every: S<String>,
    pub generator: S<RawGenerator>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGenerator {
    pub length: S<u64>,
    pub charset: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    pub vault_max_attempts: S<u64>,
    pub aws_max_attempts: S<u64>,
    pub gcp_max_attempts: S<u64>,
    pub azure_max_attempts: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMasking {
    /// `false` switches off masking of sensitive-looking keys under `--show-values`.
    pub enabled: S<bool>,
    /// Replaces the default sensitive-name patterns.
    pub patterns: S<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    pub address: S<String>,
    pub namespace: S<String>,
    pub auth: S<RawVaultAuth>,
    /// Concurrent requests to Vault (lists and reads).
    pub concurrency: S<u64>,
    /// Extra PEM CA bundle file for Vault's TLS certificate.
    pub ca_cert: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawVaultAuth {
    pub token: S<RawTokenAuth>,
    pub approle: S<RawAppRole>,
    pub kubernetes: S<RawKubernetes>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTokenAuth {
    pub token: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAppRole {
    pub role_id: S<String>,
    pub secret_id: S<String>,
    pub mount: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    pub role: S<String>,
    pub jwt_path: S<String>,
    pub mount: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub mount: S<String>,
    pub name: S<String>,
    pub max_secrets: S<u64>,
    pub queue_compaction_threshold: S<u64>,
    pub max_depth: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawS3Store {
    pub enabled: S<bool>,
    /// Read by the `type` dispatch of [`RawMergeStore`].
    #[serde(rename = "type")]
    #[allow(dead_code)]
    pub kind: S<String>,
    pub bucket: S<String>,
    pub prefix: S<String>,
    pub region: S<String>,
    pub kms_key_id: S<String>,
    pub retain_versions: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawVaultStore {
    pub enabled: S<bool>,
    /// Read by the `type` dispatch of [`RawMergeStore`].
    #[serde(rename = "type")]
    #[allow(dead_code)]
    pub kind: S<String>,
    pub mount: S<String>,
    pub prefix: S<String>,
    pub retain_versions: S<u64>,
}

/// A merge store, tagged by its `type`: one variant per kind.
#[derive(Deserialize)]
pub enum RawMergeStore {
    #[serde(rename = "s3")]
    S3(RawS3Store),
    #[serde(rename = "vault")]
    Vault(RawVaultStore),
    /// An unknown or missing `type` (already reported).
    #[serde(other, rename = "$unknown")]
    Unknown,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    pub enabled: S<bool>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub filters: S<Vec<Spanned<RawFilter>>>,
    /// How filters combine: `all` (every filter matches) or `any` (one does).
    #[serde(rename = "match")]
    pub match_mode: S<String>,
    pub role_arn: S<String>,
    pub external_id: S<String>,
    pub region: S<String>,
    /// Account states kept (`ACTIVE` by default); the retired `Status` words are accepted.
    pub states: S<Vec<Spanned<String>>>,
    /// The same as `states` (the seed's word).
    pub statuses: S<Vec<Spanned<String>>>,
    /// Only these account ids (after the filters).
    pub include_accounts: S<Vec<Spanned<String>>>,
    /// Never these account ids.
    pub exclude_accounts: S<Vec<Spanned<String>>>,
    /// Identity Center: accounts where one of these permission sets is assigned.
    pub permission_sets: S<Vec<Spanned<String>>>,
    /// Identity Center: only assignments to these groups (display names).
    pub groups: S<Vec<Spanned<String>>>,
    pub cache_ttl: S<String>,
    pub target_template: S<RawTemplate>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    pub tag: S<String>,
    pub values: S<Vec<Spanned<String>>>,
    pub ou: S<String>,
    pub include_nested: S<bool>,
    pub permission_set: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub name: S<String>,
    pub imports: S<Vec<Spanned<String>>>,
    pub role_arn: S<String>,
    pub external_id: S<String>,
    /// One target per region.
    pub regions: S<Vec<Spanned<String>>>,
    /// The same as `regions: [<region>]`.
    pub region: S<String>,
    pub secret_prefix: S<String>,
    pub overrides: S<serde_json::Value>,
    pub delete_orphans: S<bool>,
    pub max_deletes: S<u64>,
    pub max_delete_fraction: S<f64>,
    pub adopt: S<bool>,
    pub concurrency: S<u64>,
    pub writes_per_second: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub enabled: S<bool>,
    pub address: S<String>,
    pub port: S<u64>,
    pub path: S<String>,
    pub push_url: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub enabled: S<bool>,
    pub failure_threshold: S<u64>,
    pub timeout: S<String>,
    pub max_requests: S<u64>,
    pub window: S<String>,
}
