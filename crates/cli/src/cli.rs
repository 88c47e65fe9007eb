//! Command-line arguments, lowered once into typed settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::filter::LevelFilter;

/// Keeps AWS Secrets Manager exactly in line with HashiCorp Vault (KV v2).
///
/// Reads Vault sources, deep-merges them into each target's desired state (targets can
/// inherit from other targets), shows a masked plan, and applies only the differences.
#[derive(Parser, Debug)]
#[command(name = "secretsync", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// How much to log (to stderr). Secret values are never logged at any level.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info, env = "SECRETSYNC_LOG_LEVEL")]
    pub log_level: LogLevel,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SECRETSYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the pipeline: merge Vault sources into each target's desired state, then sync.
    Pipeline(PipelineArgs),
    /// Check a config file without contacting anything; lists every problem at once.
    Validate(ValidateArgs),
    /// Show sources, targets by level and the execution order.
    Graph(GraphArgs),
    /// Run discovery: the accounts AWS Organizations lists, which the `discovery:` blocks
    /// select, and the targets they become (without syncing anything).
    Discover(DiscoverArgs),
    /// Where each key of a target's secret comes from: the layers of its inheritance chain in
    /// merge order, and for each key the layer that won and the layers it overrode.
    Explain(ExplainArgs),
    /// The history kept in the merge store: every version of every secret an apply changed,
    /// and every revision of every target.
    #[command(subcommand)]
    Version(VersionCommand),
    /// The hash-chained audit log (`audit:`): verify it, export it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Policy as code: check the config's Rego policies against the current plans.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Regenerate, in Vault, the keys that `rotation:` blocks select once they are `every`
    /// old (check-and-set writes); the next `pipeline` run distributes the new values.
    Rotate(RotateArgs),
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the chain: every event intact, none removed, inserted or reordered; names the
    /// first broken one (exit 1).
    Verify(AuditVerify),
    /// Print the events (since a time) as JSON Lines or CSV, after verifying the chain (a
    /// broken chain is reported and exits 1, the export is still printed).
    Export(AuditExport),
}

/// Which copy of the log: the file, or the merge store (default: `audit.file` when set).
#[derive(Args, Debug)]
pub struct AuditSource {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Read this log file instead of the config's.
    #[arg(long, value_name = "FILE", conflicts_with = "store")]
    pub from: Option<PathBuf>,
    /// Read the log in the merge store.
    #[arg(long)]
    pub store: bool,
}

#[derive(Args, Debug)]
pub struct AuditVerify {
    #[command(flatten)]
    pub source: AuditSource,
}

#[derive(Args, Debug)]
pub struct AuditExport {
    #[command(flatten)]
    pub source: AuditSource,
    /// Only events at or after this time: RFC 3339 (`2026-12-01T00:00:00Z`), a date
    /// (`2026-12-01`), or a duration back from now (`7d`, `12h`).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Output format: one JSON object per line (as stored), or CSV with a header row.
    #[arg(long, value_enum, default_value_t = AuditFormat::Jsonl)]
    pub format: AuditFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    Jsonl,
    Csv,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Run the policies against the current plan of each target (read-only: a dry run);
    /// exit 1 when a policy denies a target.
    Test(PolicyTest),
}

#[derive(Args, Debug)]
pub struct PolicyTest {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only these targets (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    #[arg(long, value_enum, default_value_t = VersionOutput::Text)]
    pub output: VersionOutput,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Read Vault and show which keys are due; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rotate every selected key now, whatever its age.
    #[arg(long)]
    pub force: bool,
    /// Output format of the report on stdout (names, versions and ages; never a value).
    #[arg(long, value_enum, default_value_t = VersionOutput::Text)]
    pub output: VersionOutput,
}

#[derive(Subcommand, Debug)]
pub enum VersionCommand {
    /// List the versions of one secret (`--path`), or the revisions of a target.
    List(VersionList),
    /// Show one version (metadata and masked value), or the key-level diff between two.
    Show(VersionShow),
    /// Make version N of a secret current again (a stage move where AWS still holds it, else
    /// a write of the recorded value), recorded as a rollback and pinned until `unpin`.
    Rollback(VersionRollback),
    /// Release the pins of a target (all, or one secret's): later runs sync them from Vault
    /// again.
    Unpin(VersionUnpin),
}

#[derive(Args, Debug)]
pub struct VersionRollback {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The target (a name from the config).
    #[arg(long)]
    pub target: String,
    /// The secret's path relative to the target's prefix (`app/db`).
    #[arg(long)]
    pub path: String,
    /// The version to make current again (`version list` shows them).
    #[arg(long)]
    pub version: u64,
    /// Show the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format for the plan and the result.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Reveal values in the output (masked by default).
    #[arg(long)]
    pub show_values: bool,
    /// Exit 0 for no change, 1 for a change, 2 on failure (without it: 0 success, 1 failure).
    #[arg(long)]
    pub exit_code: bool,
    /// How long to wait for a run that holds the target, e.g. `30s`.
    #[arg(long, default_value = "2m", value_parser = parse_duration_arg)]
    pub lock_timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct VersionUnpin {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The target (a name from the config).
    #[arg(long)]
    pub target: String,
    /// Only this secret's pin (without it: every pin of the target).
    #[arg(long)]
    pub path: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOutput {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct VersionList {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The target (a name from the config).
    #[arg(long)]
    pub target: String,
    /// A secret's path relative to the target's prefix (`app/db`); without it, the target's
    /// revisions are listed.
    #[arg(long)]
    pub path: Option<String>,
    #[arg(long, value_enum, default_value_t = VersionOutput::Text)]
    pub output: VersionOutput,
}

#[derive(Args, Debug)]
pub struct VersionShow {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The target (a name from the config).
    #[arg(long)]
    pub target: String,
    /// The secret's path relative to the target's prefix (`app/db`).
    #[arg(long)]
    pub path: String,
    /// The version number (`version list` shows them).
    #[arg(long)]
    pub version: u64,
    /// Show the key-level changes from this version to `--version` instead.
    #[arg(long, value_name = "M")]
    pub diff_from: Option<u64>,
    /// Reveal values (masked by default); sensitive-looking keys stay masked unless
    /// `masking.enabled: false`.
    #[arg(long)]
    pub show_values: bool,
    #[arg(long, value_enum, default_value_t = VersionOutput::Text)]
    pub output: VersionOutput,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The target (a name from the config, or one discovery makes).
    #[arg(long)]
    pub target: String,
    /// The secret's relative path (below its source's `mount:`, as `pipeline --merge-only`
    /// lists it), e.g. `app/db`.
    #[arg(long)]
    pub path: String,
    /// Only this key (nested keys joined with `.`, e.g. `db.host`).
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// Output format (the JSON document is described in docs/explain.md).
    #[arg(long, value_enum, default_value_t = VersionOutput::Text)]
    pub output: VersionOutput,
    /// Also show the final values (without it no value is printed at all). Keys that look
    /// sensitive stay masked unless `masking.enabled: false`.
    #[arg(long)]
    pub show_values: bool,
    /// Run discovery again instead of using its cached answer.
    #[arg(long)]
    pub refresh_discovery: bool,
}

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The YAML config file.
    #[arg(long, short = 'c', env = "SECRETSYNC_CONFIG")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Compute and show the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after the merge phase (writes the merge store unless --dry-run).
    #[arg(long, conflicts_with = "sync_only")]
    pub merge_only: bool,
    /// Sync what is in the merge store, without reading Vault.
    #[arg(long)]
    pub sync_only: bool,
    /// Only these targets (comma separated); their dependencies are merged, not synced.
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Output format for plans and results on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Show key-level detail for every change (changed keys; values where --show-values allows).
    #[arg(long)]
    pub diff: bool,
    /// Reveal secret values in the output (masked by default). Keys that look sensitive
    /// (password, secret, token, private key, API/access key, credential) stay masked unless
    /// `masking.enabled: false` is set in the config.
    #[arg(long)]
    pub show_values: bool,
    /// Exit 0 when there are no changes, 1 when there are (pending in a dry run, or applied),
    /// 2 on failure. Without it: 0 success, 1 failure.
    #[arg(long)]
    pub exit_code: bool,
    /// Allow plans that delete more than a target's `max_delete_fraction` of its managed
    /// secrets (and more than 5), or all of them.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// How long to wait for a target that another run is applying (its lease), e.g. `30s`,
    /// `5m`; `0s` fails at once. The target then fails, naming the run that holds it.
    #[arg(long, default_value = "2m", value_parser = parse_duration_arg)]
    pub lock_timeout: std::time::Duration,
    /// How often progress is logged (at info level) when stderr is not a terminal or the
    /// output is JSON; on a terminal progress is a live line instead.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub progress_interval: std::time::Duration,
    /// Serve Prometheus metrics (and /health, /ready) on this port while the run lasts, on
    /// `metrics.address` (default 0.0.0.0). Overrides `metrics.port`; needs no `metrics:`
    /// block.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub metrics_port: Option<u16>,
    /// Restore the target named by `--targets` as of its revision R in the history (the merge
    /// store's; `secretsync version list --target T` lists them) instead of syncing it from
    /// Vault: planned and applied like a sync, recorded as rollbacks, and pinned until
    /// `secretsync version unpin --target T`.
    #[arg(long, value_name = "R", conflicts_with_all = ["merge_only", "sync_only"])]
    pub version: Option<u64>,
    /// Ask AWS for the discovered accounts again instead of using the cached answer
    /// (`discovery.cache_ttl`).
    #[arg(long)]
    pub refresh_discovery: bool,
    /// Targets planned, and then applied, at once (default: `max_parallel_targets` in the
    /// config, else 4). Output stays in execution order, one whole block per target.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub parallel_targets: Option<u64>,
    /// Only the targets in shard I of N (I from 0, e.g. Kubernetes' JOB_COMPLETION_INDEX): a
    /// stable hash of each target's name decides, so shards run on separate machines never
    /// overlap. Their dependencies are merged, not synced (as with --targets).
    #[arg(long, value_name = "I/N", value_parser = parse_shard, env = "SECRETSYNC_SHARD")]
    pub shard: Option<secretsync_core::shard::Shard>,
    /// With --dry-run: also write the plan to FILE (JSON: per target and secret the change, the
    /// keyed fingerprint of the desired value and the version it was planned against; never a
    /// value), to apply later with --plan.
    #[arg(long, value_name = "FILE", requires = "dry_run", conflicts_with_all = ["plan", "merge_only"])]
    pub plan_out: Option<PathBuf>,
    /// Apply exactly the plan in FILE (from --plan-out): Vault and the targets are read again,
    /// and a target whose plan differs from the file in any way is refused as a whole (nothing
    /// written to it), naming the secrets that drifted.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["version", "merge_only"])]
    pub plan: Option<PathBuf>,
    /// At the end of the run, success or failure, push its metrics to this Prometheus
    /// Pushgateway (job `secretsync`, grouped by `config` = the config file's name without
    /// its extension). Overrides `metrics.push_url`. A failed push is only a warning.
    #[arg(long, value_name = "URL", value_parser = parse_push_url)]
    pub metrics_push_url: Option<String>,
    /// With --output json: add to every added or modified change a `provenance` map naming,
    /// for each key, the layer whose value won (`source:base`, `target:common` for its
    /// overrides, `stored:name`). Needs the merge phase (not with --sync-only or --merge-only).
    #[arg(long, conflicts_with_all = ["sync_only", "merge_only", "version"])]
    pub provenance: bool,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    secretsync_core::config::parse_duration(s)
}

fn parse_shard(s: &str) -> Result<secretsync_core::shard::Shard, String> {
    secretsync_core::shard::Shard::parse(s)
}

fn parse_push_url(s: &str) -> Result<String, String> {
    secretsync_core::config::check_push_url(s)?;
    Ok(s.trim_end_matches('/').to_string())
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Human-readable; colour on a terminal (not with NO_COLOR or when piped).
    Text,
    /// Old | new for each changed key.
    SideBySide,
    /// A versioned JSON document (docs/diff-json-schema.md).
    Json,
    /// GitHub Actions workflow commands, step outputs and step summary.
    Github,
    /// One line per target and a total.
    Compact,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also run discovery (AWS Organizations, Identity Center) and report what it finds;
    /// without it nothing is contacted.
    #[arg(long)]
    pub check_backends: bool,
}

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[arg(long, value_enum, default_value_t = VersionOutput::Text)]
    pub output: VersionOutput,
    /// Ask AWS again instead of using the cached answer (`cache_ttl`).
    #[arg(long)]
    pub refresh_discovery: bool,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Show which targets shard I of N runs (and the shard of every target).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<secretsync_core::shard::Shard>,
    /// Run discovery again instead of using its cached answer.
    #[arg(long)]
    pub refresh_discovery: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Text,
    Dot,
    Json,
}

/// Logs go to stderr. Only SecretSync's own crates log below `warn`: dependencies (the AWS
/// SDK, HTTP stacks) stay at `warn` so no request or response body is ever logged. Log lines
/// are events only (spans do not change them). With an OTLP endpoint in the environment, spans
/// are also exported ([`crate::tracing_otel`]); flush them with
/// [`crate::tracing_otel::shutdown`] before the process ends.
pub fn init_logging(g: &Global) {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, Registry};

    let level = match g.log_level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.min(level).into())
        .parse_lossy(format!(
            "secretsync={level},secretsync_engine={level},secretsync_core={level}"
        ));
    let events = filter.and(filter_fn(|m: &tracing::Metadata<'_>| m.is_event()));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(crate::progress::Stderr)
        .with_target(false);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match g.log_format {
        LogFormat::Json => fmt.json().with_filter(events).boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(events)
            .boxed(),
    };
    let (otel, otel_error) =
        match crate::tracing_otel::layer::<Registry>(&|n| std::env::var(n).ok()) {
            Ok(l) => (l.map(Layer::boxed), None),
            Err(e) => (None, Some(e)),
        };
    tracing_subscriber::registry()
        .with(otel.into_iter().chain([fmt]).collect::<Vec<_>>())
        .init();
    if let Some(e) = otel_error {
        tracing::warn!("{e}; the run goes on without traces (check OTEL_EXPORTER_OTLP_ENDPOINT)");
    }
}
