//! Configuration: the typed form everything after loading sees, and [`load`], which parses
//! YAML, expands `${VAR}`, and validates everything in one pass (all problems at once).
//!
//! ```yaml
//! vault_sources:
//!   - mount: secret/base/
//! targets:
//!   - name: prod
//!     type: aws_secretsmanager
//!     region: us-east-1
//!     imports: [base]
//! ```

mod raw;
pub(crate) mod validate;

pub(crate) use raw::RawVaultAuth;
pub use raw::{RawCommon, RawTarget, RawTransform, S};

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};
use zeroize::Zeroize;

use crate::diag::Diagnostics;
use crate::graph::Graph;

pub use validate::{
    MAX_DURATION, check_endpoint, check_region, check_role_arn, check_vault_address, parse_duration,
};

/// A credential from the config (AppRole secret id, token). `Debug` redacts.
///
/// Zeroizing is best effort: this value's own buffer is wiped on drop (and the loader moves
/// the parsed text into it rather than copying it), but copies made before it exists are
/// not — the config file's text, the YAML parser's buffers and the process environment a
/// `${VAR}` came from. Rust gives no way to reach those, and the environment outlives the run.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(s: impl Into<String>) -> Self {
        Sensitive(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(redacted)")
    }
}
impl Drop for Sensitive {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `owner:` as written; see [`Config::owner_scope`] for the scope in effect.
    pub owner: Option<String>,
    pub vault: VaultSettings,
    pub sources: Vec<SourceConfig>,
    pub merge_store: Option<MergeStoreConfig>,
    pub targets: Vec<TargetConfig>,
    /// The `discovery:` blocks that are enabled (one block or a list).
    pub discovery: Vec<DiscoveryConfig>,
    pub metrics: MetricsConfig,
    pub circuit_breaker: CircuitBreakerConfig,
    pub retries: RetriesConfig,
    /// `max_parallel_targets`: targets planned, and then applied, at once (default
    /// [`DEFAULT_PARALLEL_TARGETS`]; `--parallel-targets` overrides it).
    pub max_parallel_targets: usize,
    /// `merge_store.retain_versions`: versions of each secret, and revisions of each target,
    /// that the history in the merge store keeps (default [`DEFAULT_RETAIN_VERSIONS`]). Without
    /// a merge store there is no history.
    pub retain_versions: u64,
    pub masking: MaskingConfig,
    /// `audit:`: where the hash-chained audit log goes (`secretsync_core::audit`); `None`: no
    /// audit log.
    pub audit: Option<AuditConfig>,
    /// `policies:`: Rego policies checked on every plan, in order (`secretsync_core::policy`).
    pub policies: Vec<PolicyConfig>,
    /// `rotation:` blocks, in config order (`secretsync rotate`).
    pub rotation: Vec<RotationConfig>,
    /// `notifications:` blocks: a POST after each run whose outcome they ask for
    /// (`secretsync_core::notify`).
    pub notifications: Vec<NotificationConfig>,
    /// Targets, sources and imports resolved into a checked DAG.
    pub graph: Graph,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct VaultSettings {
    /// `None`: take `VAULT_ADDR` from the environment at run time.
    pub address: Option<String>,
    pub namespace: Option<String>,
    /// `None`: take credentials from the environment at run time (`VAULT_TOKEN`, or
    /// `VAULT_ROLE_ID` + `VAULT_SECRET_ID`).
    pub auth: Option<VaultAuth>,
    pub concurrency: usize,
    pub ca_cert: Option<String>,
}

pub const DEFAULT_VAULT_CONCURRENCY: usize = 16;

/// Upper bounds for counts in the config: far above any real need, low enough that no
/// arithmetic overflows and no buffer is sized from a typo.
pub const MAX_CONCURRENCY: usize = 256;
pub const MAX_SECRETS_LIMIT: usize = 10_000_000;
pub const MAX_DEPTH_LIMIT: usize = 1024;
pub const MAX_DELETES_LIMIT: usize = 1_000_000;
pub const MAX_WRITES_PER_SECOND: u32 = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub enum VaultAuth {
    /// `None`: the token comes from `VAULT_TOKEN`.
    Token(Option<Sensitive>),
    AppRole {
        role_id: Sensitive,
        secret_id: Sensitive,
        mount: String,
    },
    Kubernetes {
        role: String,
        jwt_path: String,
        mount: String,
    },
}

/// A Vault KV v2 source: `mount` is the full path as written (`secret/base/`), always ending
/// in `/`. Which part is the KV mount is asked of Vault at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub mount: String,
    pub max_secrets: usize,
    pub queue_compaction_threshold: usize,
    pub max_depth: usize,
}

pub const DEFAULT_MAX_SECRETS: usize = 10_000;
pub const DEFAULT_MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum MergeStoreConfig {
    S3 {
        bucket: String,
        /// Empty or ending in `/`.
        prefix: String,
        region: Option<String>,
        kms_key_id: Option<String>,
    },
    Vault {
        /// The KV v2 mount and optional sub-path, ending in `/`.
        mount: String,
    },
}

/// One target: where a desired state goes and how it is built. `Debug` shows the override
/// keys, not their values (an override may be a secret).
#[derive(Clone, PartialEq)]
pub struct TargetConfig {
    pub name: String,
    pub imports: Vec<String>,
    pub overrides: Map<String, Value>,
    /// What every kind of target shares: where names go, what may be deleted, pacing.
    pub policy: TargetPolicy,
    pub backend: TargetBackend,
    /// `transform:` blocks, in order, applied to the desired state before the diff
    /// (`crate::transform`); empty: none.
    pub transform: Vec<crate::transform::TransformConfig>,
}

impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetConfig")
            .field("name", &self.name)
            .field("imports", &self.imports)
            .field("overrides", &self.overrides.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .field("backend", &self.backend)
            .field("transform", &self.transform)
            .finish()
    }
}

/// The settings every target kind has.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPolicy {
    /// Name in the target = prefix + relative path (checked by the kind's rules).
    pub secret_prefix: String,
    pub delete_orphans: bool,
    pub max_deletes: usize,
    /// A plan that would delete more than this fraction of the target's managed secrets (and
    /// more than a handful) is refused without `--allow-mass-delete`. In (0, 1].
    pub max_delete_fraction: f64,
    pub adopt: bool,
    /// Former names of this target: secrets marked as theirs (same owner scope) are taken
    /// over, so a renamed target keeps managing its secrets.
    pub adopt_from: Vec<String>,
    /// Concurrent writes.
    pub concurrency: usize,
    /// A ceiling on writes per second.
    pub writes_per_second: u32,
}

impl Default for TargetPolicy {
    fn default() -> Self {
        TargetPolicy {
            secret_prefix: String::new(),
            delete_orphans: false,
            max_deletes: DEFAULT_MAX_DELETES,
            max_delete_fraction: DEFAULT_MAX_DELETE_FRACTION,
            adopt: false,
            adopt_from: Vec::new(),
            concurrency: DEFAULT_TARGET_CONCURRENCY,
            writes_per_second: DEFAULT_WRITES_PER_SECOND,
        }
    }
}

pub use crate::targets::aws_sm::{AwsSmSettings, DEFAULT_RECOVERY_DAYS};
pub use crate::targets::vault_kv2::VaultKv2Settings;

/// The registry of target kinds: one variant per kind, its settings inside.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetBackend {
    AwsSecretsManager(AwsSmSettings),
    VaultKv2(VaultKv2Settings),
    AwsSsm(crate::targets::aws_ssm::AwsSsmSettings),
    Webhook(crate::targets::webhook::WebhookSettings),
    Plugin(crate::targets::plugin::PluginSettings),
    AzureKeyVault(crate::targets::azure_keyvault::AzureKeyVaultSettings),
    GcpSecretManager(crate::targets::gcp_secretmanager::GcpSmSettings),
}

impl TargetBackend {
    /// Whether the kind talks to AWS (and so needs AWS credentials and config); a webhook
    /// does through its S3 merge store (its state and its lease).
    pub fn uses_aws(&self) -> bool {
        matches!(
            self,
            TargetBackend::AwsSecretsManager(_)
                | TargetBackend::AwsSsm(_)
                | TargetBackend::Webhook(_)
        )
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            TargetBackend::AwsSecretsManager(_) => "aws_secretsmanager",
            TargetBackend::VaultKv2(_) => "vault_kv2",
            TargetBackend::AwsSsm(_) => "aws_ssm",
            TargetBackend::Webhook(_) => "webhook",
            TargetBackend::Plugin(_) => "plugin",
            TargetBackend::AzureKeyVault(_) => "azure_keyvault",
            TargetBackend::GcpSecretManager(_) => "gcp_secretmanager",
        }
    }

    /// The kind's naming and size rules for the plan.
    pub fn rules(&self) -> std::sync::Arc<dyn crate::targets::TargetRules> {
        match self {
            TargetBackend::AwsSecretsManager(_) => {
                std::sync::Arc::new(crate::targets::aws_sm::AwsSmRules)
            }
            TargetBackend::VaultKv2(_) => {
                std::sync::Arc::new(crate::targets::vault_kv2::VaultKv2Rules)
            }
            TargetBackend::AwsSsm(s) => std::sync::Arc::new(s.rules()),
            TargetBackend::Webhook(_) => std::sync::Arc::new(crate::targets::webhook::WebhookRules),
            TargetBackend::Plugin(_) => {
                std::sync::Arc::new(crate::targets::plugin::PluginRules::default())
            }
            TargetBackend::AzureKeyVault(_) => {
                std::sync::Arc::new(crate::targets::azure_keyvault::AzureKeyVaultRules)
            }
            TargetBackend::GcpSecretManager(_) => {
                std::sync::Arc::new(crate::targets::gcp_secretmanager::GcpSmRules)
            }
        }
    }

    /// Where it writes, for `graph` (`aws_secretsmanager us-east-1`).
    pub fn describe(&self) -> String {
        match self {
            TargetBackend::AwsSecretsManager(a) if a.replica_regions.is_empty() => {
                format!("aws_secretsmanager {}", a.region)
            }
            TargetBackend::AwsSecretsManager(a) => format!(
                "aws_secretsmanager {} (replicas: {})",
                a.region,
                a.replica_regions.join(", ")
            ),
            TargetBackend::VaultKv2(v) => format!(
                "vault_kv2 {} {}",
                v.vault.address.as_deref().unwrap_or_default(),
                v.mount
            ),
            TargetBackend::AwsSsm(s) => format!("aws_ssm {}", s.region),
            TargetBackend::Webhook(w) => format!("webhook {}", w.describe()),
            TargetBackend::Plugin(p) => format!("plugin {}", p.display_command()),
            TargetBackend::AzureKeyVault(a) => format!("azure_keyvault {}", a.vault_url),
            TargetBackend::GcpSecretManager(g) => format!("gcp_secretmanager {}", g.describe()),
        }
    }
}

pub const DEFAULT_MAX_DELETE_FRACTION: f64 = 0.10;
pub const DEFAULT_MAX_DELETES: usize = 50;
pub const DEFAULT_TARGET_CONCURRENCY: usize = 8;
/// No fixed ceiling: writes are paced adaptively per account and region (the engine's
/// `pacing`); `writes_per_second` sets a hard ceiling on top.
pub const DEFAULT_WRITES_PER_SECOND: u32 = 0;

/// One `discovery:` block (there may be several): which accounts it asks for and the targets
/// its template makes of them (`secretsync_core::discovery`; docs/discovery.md).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryConfig {
    pub kind: DiscoveryKind,
    pub filters: Vec<DiscoveryFilter>,
    /// `match: all` (every filter matches; the default) or `any`.
    pub match_all: bool,
    /// The discovery role (Organizations or Identity Center reads), not the targets' roles.
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// Where Organizations is called (`us-east-1` by default), or the Identity Center
    /// instance's region.
    pub region: Option<String>,
    /// Account states kept (default: active only).
    pub states: Vec<AccountState>,
    /// Only these account ids (empty: any).
    pub include_accounts: Vec<String>,
    /// Never these account ids.
    pub exclude_accounts: Vec<String>,
    /// Identity Center: accounts where one of these permission sets is assigned.
    pub permission_sets: Vec<String>,
    /// Identity Center: only assignments to these groups (display names); empty: to anyone.
    pub groups: Vec<String>,
    pub cache_ttl: Duration,
    pub template: TargetTemplate,
}

/// An account's state, as Organizations reports it: `State` (since 2026-09-09) or the retired
/// `Status`, whose words are a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccountState {
    Active,
    Suspended,
    PendingActivation,
    PendingClosure,
    Closed,
}

impl AccountState {
    pub const WORDS: [&'static str; 5] = [
        "ACTIVE",
        "SUSPENDED",
        "PENDING_ACTIVATION",
        "PENDING_CLOSURE",
        "CLOSED",
    ];

    /// A state word of either vocabulary (case-insensitive).
    pub fn parse(s: &str) -> Option<AccountState> {
        Some(match s.to_ascii_uppercase().as_str() {
            "ACTIVE" => AccountState::Active,
            "SUSPENDED" => AccountState::Suspended,
            "PENDING_ACTIVATION" => AccountState::PendingActivation,
            "PENDING_CLOSURE" => AccountState::PendingClosure,
            "CLOSED" => AccountState::Closed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryKind {
    AwsOrganizations,
    IdentityCenter,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryFilter {
    /// Tag key and accepted values (`*` wildcards allowed).
    Tag {
        key: String,
        values: Vec<String>,
    },
    Ou {
        id: String,
        include_nested: bool,
    },
    PermissionSet {
        name: String,
    },
}

/// How a discovered account becomes targets: one per region, with placeholders filled
/// (`secretsync_core::discovery`). `Debug` shows the override keys, not their values (an
/// override may be a secret).
#[derive(Clone, PartialEq)]
pub struct TargetTemplate {
    pub name: String,
    pub regions: Vec<String>,
    pub role_arn: String,
    pub external_id: Option<String>,
    pub imports: Vec<String>,
    pub overrides: Map<String, Value>,
    /// `secret_prefix` (with placeholders), `delete_orphans`, `adopt` and the other common
    /// target keys.
    pub policy: TargetPolicy,
}

impl fmt::Debug for TargetTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetTemplate")
            .field("name", &self.name)
            .field("regions", &self.regions)
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id.as_ref().map(|_| "…"))
            .field("imports", &self.imports)
            .field("overrides", &self.overrides.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .finish()
    }
}

/// `metrics:`: Prometheus metrics, served on `address:port` for the whole run (with `/health`
/// and `/ready`) and/or pushed to a Pushgateway at its end (`docs/metrics.md`). The command
/// line (`--metrics-port`, `--metrics-push-url`) can switch either on without the block.
///
/// ```yaml
/// metrics:
///   address: 127.0.0.1
///   port: 9464
///   push_url: http://pushgateway.monitoring:9091
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// `enabled:` (default `true` inside a block; `false` without the block).
    pub requested: bool,
    /// Whether the endpoint is served: the block is enabled and either has a `port` or no
    /// `push_url` (a block with only `push_url` pushes without opening a port).
    pub serve: bool,
    /// The address the endpoint listens on (`address`, default `0.0.0.0`).
    pub address: std::net::IpAddr,
    pub port: u16,
    pub path: String,
    /// `push_url`: the Pushgateway the final metrics are pushed to at the end of every run.
    pub push_url: Option<String>,
}

impl MetricsConfig {
    /// The default port (`metrics.port`).
    pub const DEFAULT_PORT: u16 = 9090;

    /// Whether metrics are collected at all (served, pushed or both) by the config alone.
    pub const fn active(&self) -> bool {
        self.requested
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            requested: false,
            serve: false,
            address: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port: MetricsConfig::DEFAULT_PORT,
            path: "/metrics".into(),
            push_url: None,
        }
    }
}

/// Paths the metrics endpoint serves beside `metrics.path`: `metrics.path` may not be one.
pub const METRICS_RESERVED_PATHS: [&str; 2] = ["/health", "/ready"];

/// Checks a Pushgateway URL (`metrics.push_url`, `--metrics-push-url`): `http://` or
/// `https://`, a host, no query or fragment (the grouping key is appended to its path).
pub fn check_push_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.contains('@') {
        return Err(
            "the URL holds credentials (`user:password@`), which would show in logs; give the URL without them".into(),
        );
    }
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if url.contains(['?', '#']) {
        return Err(format!(
            "`{url}` has a query or fragment; give the Pushgateway's base URL"
        ));
    }
    Ok(())
}

/// `circuit_breaker:`: one breaker per service (Vault per address, AWS per account and region)
/// that opens after `failure_threshold` failed attempts within `window`, refuses calls for
/// `timeout`, then lets `max_requests` trial attempts through (`secretsync_engine::breaker`).
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreakerConfig {
    /// What the config asked for (`enabled:`, default `true` inside a block; `false` without
    /// the block), not what runs.
    pub requested: bool,
    pub failure_threshold: u32,
    pub timeout: Duration,
    pub max_requests: u32,
    pub window: Duration,
}

impl CircuitBreakerConfig {
    /// Whether circuit breakers guard the calls: when the block is there and not
    /// `enabled: false`.
    pub const fn active(&self) -> bool {
        self.requested
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            requested: false,
            failure_threshold: 5,
            timeout: Duration::from_secs(30),
            max_requests: 1,
            window: Duration::from_secs(10),
        }
    }
}

/// Targets synced at once unless `max_parallel_targets` or `--parallel-targets` says.
pub const DEFAULT_PARALLEL_TARGETS: usize = 4;
/// The most targets synced at once.
pub const MAX_PARALLEL_TARGETS: usize = 64;

/// Versions (and revisions) the history keeps unless `merge_store.retain_versions` says.
pub const DEFAULT_RETAIN_VERSIONS: u64 = 10;
/// The most `merge_store.retain_versions` may be.
pub const MAX_RETAIN_VERSIONS: u64 = 1000;

/// `retries:`: how many attempts each call gets (the first included) when it fails in a way
/// worth another try (throttled, 5xx, no connection, timed out). Nothing else is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetriesConfig {
    /// Per call to Vault (the source and `vault_kv2` targets). Default 4.
    pub vault_max_attempts: u32,
    /// Per call to AWS (Secrets Manager, SSM, S3). Default 5.
    pub aws_max_attempts: u32,
    /// Per call to GCP Secret Manager (`gcp_secretmanager` targets). Default 5.
    pub gcp_max_attempts: u32,
    /// Per call to Azure Key Vault (`azure_keyvault` targets). Default 5.
    pub azure_max_attempts: u32,
}

impl RetriesConfig {
    /// The most attempts a call may be given.
    pub const MAX_ATTEMPTS: u32 = 20;
}

impl Default for RetriesConfig {
    fn default() -> Self {
        RetriesConfig {
            vault_max_attempts: 4,
            aws_max_attempts: 5,
            gcp_max_attempts: 5,
            azure_max_attempts: 5,
        }
    }
}

/// `audit:`: every run appends hash-chained events (run start and end, each applied change)
/// to a local file, the merge store, or both (docs/audit.md).
///
/// ```yaml
/// audit:
///   file: /var/log/secretsync/audit.jsonl
///   store: true
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// A JSON Lines file, relative to the working directory (like every output path).
    pub file: Option<String>,
    /// Into the merge store too: `.secretsync/audit/` (one object per run, and a head).
    pub store: bool,
}

/// One `notifications:` block: where a run's outcome is POSTed, when, in which shape
/// (docs/notifications.md).
///
/// ```yaml
/// notifications:
///   - url: https://hooks.slack.com/services/T000/B000/XXXX
///     format: slack          # json (default) | slack
///     on: [failure, changes] # failure (default) | changes | drift
///     secret: ${HOOK_SECRET} # optional: signs the body (X-SecretSync-Signature)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationConfig {
    /// The hook's URL. A Slack hook's URL is itself a credential: [`Sensitive`], and shown
    /// as [`NotificationConfig::describe`] only.
    pub url: Sensitive,
    pub format: NotifyFormat,
    /// What the run must have done for the POST to be sent (at least one of them).
    pub on: Vec<NotifyTrigger>,
    /// The HMAC-SHA256 key of `X-SecretSync-Signature`.
    pub secret: Option<Sensitive>,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl NotificationConfig {
    /// The URL as logs may show it: scheme and host, no path (a Slack hook's path is its
    /// secret).
    pub fn describe(&self) -> String {
        let url = self.url.expose();
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        format!("{scheme}://{host}")
    }
}

/// `notifications[].timeout`: per attempt.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// `notifications[].max_attempts`: the first and three retries.
pub const DEFAULT_NOTIFY_ATTEMPTS: u32 = 4;

/// The body a notification is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// SecretSync's own JSON document (docs/notifications.md).
    Json,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
}

/// What a run did that a notification is sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotifyTrigger {
    /// The run failed (exit code 1): a target failed or was refused, the Vault read was
    /// incomplete, or the run stopped before its targets.
    Failure,
    /// The run changed at least one secret in a target.
    Changes,
    /// A dry run found at least one target out of line with Vault.
    Drift,
}

impl NotifyTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyTrigger::Failure => "failure",
            NotifyTrigger::Changes => "changes",
            NotifyTrigger::Drift => "drift",
        }
    }
}

/// One `policies:` block: Rego files and the rules of theirs that judge plans.
///
/// ```yaml
/// policies:
///   - path: policies/                # a .rego file or a folder of them
///     query: data.secretsync.deny    # optional: without it, `deny` and `warn` of `data.secretsync`
///     with_values: false
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// As written: a `.rego` file or a folder of them (every `*.rego` below it except
    /// `*_test.rego`), relative to the config file's folder.
    pub path: String,
    /// The rules evaluated and what their messages do.
    pub rules: Vec<PolicyRule>,
    /// The policy sees the new values of the changes (inside the process only).
    pub with_values: bool,
    /// Where the block is in the config (for messages).
    pub line: usize,
}

/// A rule of a policy block: its results are messages that deny or warn.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    /// `data.<package>.<rule>`.
    pub query: String,
    pub effect: PolicyEffect,
    /// Written in the config (`query:`), so it must exist; the default rules need not both.
    pub explicit: bool,
}

/// What a policy's messages do to a target's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyEffect {
    /// The target is refused: nothing is written to it.
    Deny,
    /// Shown beside the plan (a GitHub annotation under `--output github`).
    Warn,
}

/// The package whose `deny` and `warn` rules a block without `query` evaluates.
pub const DEFAULT_POLICY_PACKAGE: &str = "data.secretsync";

/// One `rotation:` block: the key `key` of every secret of source `source` whose relative
/// path matches one of `paths` is regenerated in Vault once it is `every` old
/// (`secretsync_core::rotation`, `secretsync_engine::rotation`, docs/rotation.md).
#[derive(Debug, Clone, PartialEq)]
pub struct RotationConfig {
    /// A `vault_sources` name (checked).
    pub source: String,
    pub paths: Vec<crate::rotation::Glob>,
    /// A top-level key (nested keys are not supported).
    pub key: String,
    pub every: Duration,
    pub generator: crate::rotation::Generator,
}

/// Which keys stay masked even under `--show-values`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskingConfig {
    pub enabled: bool,
    pub patterns: Vec<String>,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            enabled: true,
            patterns: crate::mask::DEFAULT_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl MaskingConfig {
    /// The display policy for this config.
    pub fn policy(&self, show_values: bool) -> crate::mask::MaskPolicy {
        crate::mask::MaskPolicy::new(
            show_values,
            if self.enabled {
                self.patterns.clone()
            } else {
                Vec::new()
            },
        )
    }
}

impl Config {
    /// The owner scope written into ownership tags, so that two deployments sharing an
    /// account never treat each other's secrets as theirs: `owner:` when set, else `auto-`
    /// and the first 12 hex digits of SHA-256 over the sources' mounts (normalized, with a
    /// trailing `/`), sorted and joined by newlines. The automatic scope is stable as long as
    /// the sources do not change; set `owner:` to pin it.
    pub fn owner_scope(&self) -> String {
        if let Some(owner) = &self.owner {
            return owner.clone();
        }
        use sha2::{Digest, Sha256};
        let mut mounts: Vec<&str> = self.sources.iter().map(|s| s.mount.as_str()).collect();
        mounts.sort_unstable();
        let digest = hex::encode(Sha256::digest(mounts.join("\n").as_bytes()));
        format!("auto-{}", &digest[..12])
    }

    /// Adds discovered targets and builds the graph again: a discovered target named like a
    /// static one is dropped (the static one wins) with a warning. Returns the warnings and
    /// errors of the new graph (an import a discovered target names that nothing provides).
    pub fn add_discovered(
        &mut self,
        discovered: Vec<crate::discovery::Discovered>,
    ) -> Vec<crate::diag::Diagnostic> {
        use crate::diag::Diagnostic;
        let mut diags = Vec::new();
        for d in discovered {
            if self.targets.iter().any(|t| t.name == d.target.name) {
                diags.push(
                    Diagnostic::warning(
                        None,
                        "discovery",
                        format!(
                            "discovered target `{}` (account {}, {}) has the name of a target of the config; the config's target is used",
                            d.target.name, d.account_id, d.region
                        ),
                    )
                    .with_help("change the template's `name`, or rename the static target"),
                );
                continue;
            }
            self.targets.push(d.target);
        }
        let inputs: Vec<crate::graph::GraphInput> = self
            .targets
            .iter()
            .map(|t| crate::graph::GraphInput {
                name: t.name.clone(),
                pos: None,
                imports: t.imports.iter().map(|i| (i.clone(), None)).collect(),
            })
            .collect();
        let sources: Vec<String> = self.sources.iter().map(|s| s.name.clone()).collect();
        let (graph, graph_diags) =
            crate::graph::Graph::build(&inputs, &sources, self.merge_store.is_some());
        self.graph = graph;
        diags.extend(graph_diags);
        diags
    }

    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }
    /// Source names by name, for lookups.
    pub fn sources_by_name(&self) -> BTreeMap<&str, &SourceConfig> {
        self.sources.iter().map(|s| (s.name.as_str(), s)).collect()
    }
}

/// The result of loading: the config when there were no errors, and every diagnostic
/// (warnings too) either way.
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Diagnostics,
}

/// Like [`load`], for a config file's bytes: more than [`MAX_CONFIG_BYTES`] or text that is not
/// UTF-8 is a diagnostic. A caller reading a file needs to read at most
/// `MAX_CONFIG_BYTES + 1` bytes to tell.
pub fn load_bytes(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Loaded {
    let refuse = |d: crate::diag::Diagnostic| Loaded {
        config: None,
        diagnostics: Diagnostics(vec![d]),
    };
    if bytes.len() > MAX_CONFIG_BYTES {
        return refuse(crate::yaml::too_large());
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => load(text, env),
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            refuse(
                crate::diag::Diagnostic::error(
                    Some(crate::diag::Pos { line, col }),
                    "",
                    "the config is not UTF-8 text",
                )
                .with_help("save the file as UTF-8"),
            )
        }
    }
}

/// The largest config accepted, in bytes (4 MiB).
pub const MAX_CONFIG_BYTES: usize = crate::yaml::MAX_SOURCE_BYTES;

/// Parses, expands and validates a config. `env` looks up environment variables for
/// `${VAR}`; pass `|k| std::env::var(k).ok()` from the binary.
pub fn load(source: &str, env: &dyn Fn(&str) -> Option<String>) -> Loaded {
    validate::load(source, env)
}
