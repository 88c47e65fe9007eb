//! Raw config types: the YAML shape, every field optional so that one pass reports every
//! problem. They hold credentials and override values as plain text, so none derives
//! `Debug`. Nothing outside `config` sees these; [`super::validate`] lowers them into the
//! typed [`super::Config`].

use serde::Deserialize;

use crate::de::Spanned;

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The owner scope written into ownership tags.
    pub owner: S<String>,
    pub vault: S<RawVault>,
    pub vault_sources: S<Vec<Spanned<RawSource>>>,
    pub merge_store: S<RawMergeStore>,
    pub targets: S<Vec<Spanned<RawTarget>>>,
    pub discovery: S<RawDiscovery>,
    pub metrics: S<RawMetrics>,
    pub circuit_breaker: S<RawCircuitBreaker>,
    pub masking: S<RawMasking>,
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
pub struct RawMergeStore {
    pub enabled: S<bool>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub bucket: S<String>,
    pub prefix: S<String>,
    pub region: S<String>,
    pub kms_key_id: S<String>,
    pub mount: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: S<String>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub region: S<String>,
    pub role_arn: S<String>,
    pub external_id: S<String>,
    pub secret_prefix: S<String>,
    pub imports: S<Vec<Spanned<String>>>,
    pub overrides: S<serde_json::Value>,
    pub delete_orphans: S<bool>,
    pub deletion_recovery_days: S<u64>,
    pub force_delete: S<bool>,
    pub max_deletes: S<u64>,
    pub adopt: S<bool>,
    /// Former names of this target whose secrets it takes over.
    pub adopt_from: S<Vec<Spanned<String>>>,
    pub max_delete_fraction: S<f64>,
    pub concurrency: S<u64>,
    pub writes_per_second: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    pub enabled: S<bool>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub filters: S<Vec<Spanned<RawFilter>>>,
    /// How filters combine: `and` (every filter matches) or `or` (any filter matches).
    pub match_mode: S<String>,
    pub role_arn: S<String>,
    pub external_id: S<String>,
    pub region: S<String>,
    pub statuses: S<Vec<Spanned<String>>>,
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
    pub region: S<String>,
    pub secret_prefix: S<String>,
    pub overrides: S<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub enabled: S<bool>,
    pub port: S<u64>,
    pub path: S<String>,
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
