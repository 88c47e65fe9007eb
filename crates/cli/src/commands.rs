//! Command implementations: each returns an exit code or an error to print once.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use secretsync_core::config::{self, Config, MergeStoreConfig};
use secretsync_engine::cancel::Cancel;
use secretsync_engine::metrics::Metrics;
use secretsync_engine::observe::{Observer, Observers};
use secretsync_engine::pipeline;
use serde_json::json;

use crate::cli::{Cli, Command, GraphArgs, GraphFormat, PipelineArgs, ValidateArgs};

/// An error with a specific exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Failure {}

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads and validates the config, printing every diagnostic to stderr.
pub(crate) fn load_config(path: &std::path::Path) -> Result<Config> {
    load_config_counting_warnings(path).map(|(c, _)| c)
}

/// [`load_config`], also returning how many warnings were printed.
fn load_config_counting_warnings(path: &std::path::Path) -> Result<(Config, usize)> {
    use std::io::Read;
    // One byte past the limit is enough to tell a config that is too large (or a device
    // such as `/dev/zero`) without reading all of it.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(config::MAX_CONFIG_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .with_context(|| format!("cannot read config file `{}`", path.display()))?;
    let loaded = config::load_bytes(&bytes, &env);
    let name = path.display();
    for d in &loaded.diagnostics.0 {
        eprintln!("{name}: {d}");
    }
    match loaded.config {
        Some(c) => Ok((c, loaded.diagnostics.warnings().count())),
        None => {
            let n = loaded.diagnostics.errors().count();
            anyhow::bail!(
                "{name}: {n} error{} in the config; fix {} and run again",
                if n == 1 { "" } else { "s" },
                if n == 1 { "it" } else { "them" }
            )
        }
    }
}

/// Reads and compiles the config's policies (paths relative to the config file's folder),
/// printing every problem to stderr (with the file, line and the offending source line).
pub(crate) fn load_policies(
    c: &Config,
    config_path: &std::path::Path,
) -> Result<Option<Arc<secretsync_core::policy::Policies>>> {
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match secretsync_engine::policy::load(c, dir) {
        Ok(p) => Ok(p.map(Arc::new)),
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
                if let Some(s) = &e.snippet {
                    eprintln!("{s}");
                }
            }
            let n = errors.len();
            anyhow::bail!(
                "{n} error{} in the policies; fix {} and run again",
                plural(n),
                if n == 1 { "it" } else { "them" }
            )
        }
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate(a) => Box::pin(validate(a)).await,
        Command::Graph(a) => graph(a).await,
        Command::Discover(a) => Box::pin(crate::discover::run(a)).await,
        Command::Pipeline(a) => Box::pin(pipeline_cmd(a)).await,
        Command::Explain(a) => Box::pin(crate::explain::run(a)).await,
        // Boxed: the pipeline future is deep enough already.
        Command::Version(v) => Box::pin(crate::version::run(v)).await,
        Command::Policy(crate::cli::PolicyCommand::Test(a)) => {
            Box::pin(crate::policy::test(a)).await
        }
        Command::Audit(a) => Box::pin(crate::audit::run(a)).await,
        Command::Rotate(a) => Box::pin(crate::rotate::run(a)).await,
    }
}

/// Waits for the next SIGINT (Ctrl-C) or SIGTERM (Kubernetes, CI cancellation).
async fn next_signal(#[cfg(unix)] term: &mut Option<tokio::signal::unix::Signal>) -> &'static str {
    #[cfg(unix)]
    {
        let term_recv = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term_recv => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// SIGINT and SIGTERM alike. First: stop starting writes and targets, end the Vault read,
/// roll back the target in progress, report. Second: the rollback continues within a bounded
/// time and the report names what was left written. Third: exit at once.
pub(crate) fn cancel_on_signals() -> std::sync::Arc<Cancel> {
    let cancel = Cancel::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let sig = next_signal(
            #[cfg(unix)]
            &mut term,
        )
        .await;
        tracing::warn!(
            signal = sig,
            "interrupted: no new writes or targets start; the target being applied is rolled back. Signal again to bound the rollback to {} s",
            secretsync_engine::cancel::HURRY_BUDGET.as_secs()
        );
        c.cancel(format!("cancelled by {sig}"));
        let sig = next_signal(
            #[cfg(unix)]
            &mut term,
        )
        .await;
        tracing::warn!(
            signal = sig,
            "interrupted again: finishing the rollback within {} s; what it cannot undo is reported as left written. Signal a third time to exit at once",
            secretsync_engine::cancel::HURRY_BUDGET.as_secs()
        );
        c.hurry();
        let _ = next_signal(
            #[cfg(unix)]
            &mut term,
        )
        .await;
        eprintln!(
            "error: aborted by a third signal; the target being applied may be partly written (see the log above)"
        );
        // The spans of what finished; briefly, as the user asked to stop now.
        crate::tracing_otel::shutdown(std::time::Duration::from_secs(1));
        std::process::exit(130);
    });
    cancel
}

async fn validate(a: ValidateArgs) -> Result<ExitCode> {
    let (c, warnings) = load_config_counting_warnings(&a.config.config)?;
    // Compiled, not run: a Rego error is reported with its file and line.
    let policies = load_policies(&c, &a.config.config)?;
    if a.check_backends && !c.discovery.is_empty() {
        let (with, found) = secretsync_engine::discovery::apply(c.clone(), &env, false).await?;
        for f in &found {
            println!(
                "discovery block {}: {} account{} listed, {} selected, {} target{}{}",
                f.block + 1,
                f.listed,
                plural(f.listed),
                f.accounts.len(),
                f.targets.len(),
                plural(f.targets.len()),
                match f.cache_age {
                    Some(age) => format!(" (cached answer, {}s old)", age.as_secs()),
                    None => format!(" ({} calls)", f.calls),
                }
            );
        }
        println!(
            "with the discovered targets: {} target{} in {} level{}",
            with.targets.len(),
            plural(with.targets.len()),
            with.graph.levels.len(),
            plural(with.graph.levels.len())
        );
    }
    let store = match &c.merge_store {
        None => "none".to_string(),
        Some(MergeStoreConfig::S3 { bucket, prefix, .. }) => format!("s3://{bucket}/{prefix}"),
        Some(MergeStoreConfig::Vault { mount }) => format!("vault {mount}"),
    };
    // `validate` never calls AWS: the blocks and templates are checked, not run.
    let discovery = match c.discovery.len() {
        0 => "off".to_string(),
        n => format!(
            "{n} block{} (templates checked; `secretsync discover` runs it)",
            plural(n)
        ),
    };
    let verdict = match warnings {
        0 => "config OK".to_string(),
        n => format!("config valid with {n} warning{} (see above)", plural(n)),
    };
    let policies = match policies {
        None => "none".to_string(),
        Some(_) => format!(
            "{} block{} compiled",
            c.policies.len(),
            plural(c.policies.len())
        ),
    };
    // Governance, mentioned only when configured.
    let mut governance = String::new();
    if let Some(a) = &c.audit {
        let sinks = match (&a.file, a.store) {
            (Some(f), true) => format!("{f} and the merge store"),
            (Some(f), false) => f.clone(),
            (None, _) => "the merge store".to_string(),
        };
        governance.push_str(&format!(", audit log to {sinks}"));
    }
    if !c.notifications.is_empty() {
        let to: Vec<String> = c.notifications.iter().map(|n| n.describe()).collect();
        governance.push_str(&format!(
            ", {} notification{} ({})",
            to.len(),
            plural(to.len()),
            to.join(", ")
        ));
    }
    if !c.rotation.is_empty() {
        governance.push_str(&format!(
            ", {} rotation block{}",
            c.rotation.len(),
            plural(c.rotation.len())
        ));
    }
    println!(
        "{verdict}: {} source{}, {} target{} in {} level{}, merge store {store}, discovery {discovery}, policies {policies}{governance}, owner scope {}",
        c.sources.len(),
        plural(c.sources.len()),
        c.targets.len(),
        plural(c.targets.len()),
        c.graph.levels.len(),
        plural(c.graph.levels.len()),
        c.owner_scope()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn graph(a: GraphArgs) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    let (c, found) = secretsync_engine::discovery::apply(c, &env, a.refresh_discovery).await?;
    // Discovered targets are marked: name -> (account, region).
    let discovered: std::collections::BTreeMap<&str, (&str, &str)> = found
        .iter()
        .flat_map(|f| f.targets.iter())
        .map(|d| {
            (
                d.target.name.as_str(),
                (d.account_id.as_str(), d.region.as_str()),
            )
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match a.format {
        GraphFormat::Json => {
            let v = json!({
                "sources": c.sources.iter().map(|s| json!({"name": s.name, "mount": s.mount, "max_secrets": s.max_secrets})).collect::<Vec<_>>(),
                "targets": c.targets.iter().map(|t| json!({
                    "name": t.name,
                    "type": t.backend.type_name(),
                    "imports": c.graph.imports.get(&t.name),
                    "discovered": discovered.get(t.name.as_str()).map(|(a, r)| json!({"account_id": a, "region": r})),
                    "shard": a.shard.map(|s| secretsync_core::shard::shard_of(&t.name, s.count)),
                })).collect::<Vec<_>>(),
                "shard": a.shard.map(|s| json!({
                    "index": s.index,
                    "count": s.count,
                    "targets": c.graph.order.iter().filter(|t| s.has(t)).collect::<Vec<_>>(),
                })),
                "levels": c.graph.levels,
                "order": c.graph.order,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        GraphFormat::Dot => {
            writeln!(out, "digraph secretsync {{\n  rankdir=LR;")?;
            for s in &c.sources {
                writeln!(
                    out,
                    "  \"source:{}\" [shape=cylinder, label=\"{}\\n{}\"];",
                    s.name, s.name, s.mount
                )?;
            }
            for t in &c.targets {
                let mark = discovered
                    .get(t.name.as_str())
                    .map(|(a, _)| format!("\\ndiscovered: {a}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  \"target:{}\" [shape=box, label=\"{}{mark}\"];",
                    t.name, t.name
                )?;
                for imp in c.graph.imports.get(&t.name).into_iter().flatten() {
                    writeln!(
                        out,
                        "  \"{}:{}\" -> \"target:{}\";",
                        imp.kind(),
                        imp.name(),
                        t.name
                    )?;
                }
            }
            writeln!(out, "}}")?;
        }
        GraphFormat::Text => {
            writeln!(out, "sources:")?;
            for s in &c.sources {
                writeln!(
                    out,
                    "  {} ({}, max {} secrets)",
                    s.name, s.mount, s.max_secrets
                )?;
            }
            writeln!(out, "targets by level:")?;
            for (i, level) in c.graph.levels.iter().enumerate() {
                writeln!(out, "  level {i}:")?;
                for name in level {
                    let imports: Vec<String> = c
                        .graph
                        .imports
                        .get(name)
                        .into_iter()
                        .flatten()
                        .map(|i| format!("{} {}", i.kind(), i.name()))
                        .collect();
                    let kind = c
                        .target(name)
                        .map(|t| t.backend.describe())
                        .unwrap_or_default();
                    let mut mark = discovered
                        .get(name.as_str())
                        .map(|(a, r)| format!(" (discovered: account {a}, {r})"))
                        .unwrap_or_default();
                    if let Some(s) = a.shard {
                        mark.push_str(&format!(
                            " (shard {}/{})",
                            secretsync_core::shard::shard_of(name, s.count),
                            s.count
                        ));
                    }
                    writeln!(
                        out,
                        "    {name} [{kind}]{mark} <- {}",
                        if imports.is_empty() {
                            "(nothing)".into()
                        } else {
                            imports.join(", ")
                        }
                    )?;
                }
            }
            writeln!(out, "execution order: {}", c.graph.order.join(" -> "))?;
            if let Some(s) = a.shard {
                let mine: Vec<&str> = c
                    .graph
                    .order
                    .iter()
                    .filter(|t| s.has(t))
                    .map(String::as_str)
                    .collect();
                writeln!(
                    out,
                    "shard {s}: {}",
                    if mine.is_empty() {
                        "(no targets)".to_string()
                    } else {
                        mine.join(", ")
                    }
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn selected_targets(c: &Config, requested: &[String]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(c.graph.order.clone());
    }
    for r in requested {
        if c.target(r).is_none() {
            let names: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
            anyhow::bail!(
                "--targets names unknown target `{r}`; known targets: {}",
                names.join(", ")
            );
        }
    }
    Ok(c.graph
        .order
        .iter()
        .filter(|n| requested.contains(n))
        .cloned()
        .collect())
}

/// What the config and the flags ask of metrics: serve (where), push (where).
struct MetricsPlan {
    serve: Option<(std::net::IpAddr, u16, String)>,
    push: Option<String>,
}

impl MetricsPlan {
    fn new(c: &config::MetricsConfig, a: &PipelineArgs) -> MetricsPlan {
        let serve = match a.metrics_port {
            Some(port) => Some(port),
            None => c.serve.then_some(c.port),
        };
        MetricsPlan {
            serve: serve.map(|port| (c.address, port, c.path.clone())),
            push: a
                .metrics_push_url
                .clone()
                .or_else(|| c.push_url.clone().filter(|_| c.requested)),
        }
    }
}

/// The Pushgateway grouping key's `config` label: the config file's name without its
/// extension (`prod.yaml` → `prod`).
fn config_name(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "config".into())
}

/// Who sees every Vault and AWS call of the run: the circuit breakers (when
/// `circuit_breaker:` asks for them; first, so a refused attempt is refused before anyone
/// counts it; their states go to `secretsync_circuit_breaker_state`), the progress, the metrics
/// (when on), and the per-attempt spans (when traces are exported).
fn observers(c: &Config, progress: Arc<dyn Observer>, metrics: &Metrics) -> Observers {
    use secretsync_engine::breaker::{BreakerState, Breakers, StateHook};
    let mut list: Vec<Arc<dyn Observer>> = Vec::new();
    let hook: Option<StateHook> = metrics.is_on().then(|| {
        let m = metrics.clone();
        Arc::new(move |service: &str, state: BreakerState| m.set_breaker_state(service, state))
            as StateHook
    });
    if let Some(b) = Breakers::from_config(&c.circuit_breaker, hook) {
        list.push(b);
    }
    list.push(progress);
    if metrics.is_on() {
        list.push(Arc::new(metrics.clone()));
    }
    list.extend(crate::tracing_otel::call_spans());
    Observers::new(list)
}

async fn pipeline_cmd(a: PipelineArgs) -> Result<ExitCode> {
    let c = load_config(&a.config.config)?;
    // Discovered targets join the config before anything else reads it.
    let (c, found) = secretsync_engine::discovery::apply(c, &env, a.refresh_discovery).await?;
    crate::discover::report_gone(&found, a.output);
    let plan = MetricsPlan::new(&c.metrics, &a);
    let metrics = if plan.serve.is_some() || plan.push.is_some() {
        Metrics::new()
    } else {
        Metrics::off()
    };
    let started = std::time::Instant::now();
    let result = async {
        // Kept until the run is over; dropping it stops the endpoint.
        let _server = match &plan.serve {
            Some((address, port, path)) => Some(
                secretsync_engine::metrics::serve(metrics.clone(), *address, *port, path.clone())
                    .await?,
            ),
            None => None,
        };
        pipeline_run(&a, &c, &metrics).await
    }
    .await;
    metrics.run_finished(
        result.is_ok(),
        started.elapsed(),
        std::time::SystemTime::now(),
    );
    if let Some(url) = &plan.push {
        let name = config_name(&a.config.config);
        match secretsync_engine::metrics::push(&metrics, url, &name).await {
            Ok(()) => {
                tracing::info!(url = %url, config = %name, "pushed the run's metrics to the Pushgateway")
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not push the run's metrics; the run's result stands")
            }
        }
    }
    result
}

async fn pipeline_run(a: &PipelineArgs, c: &Config, metrics: &Metrics) -> Result<ExitCode> {
    let failure_code = if a.exit_code { 2 } else { 1 };
    if a.provenance && a.output != crate::cli::Output::Json {
        anyhow::bail!(Failure {
            code: failure_code,
            message: "--provenance adds a field to the JSON document: use it with --output json (for one secret in text, see `secretsync explain`)".into(),
        });
    }
    let mut selected = selected_targets(c, &a.targets)?;
    if let Some(shard) = a.shard {
        selected.retain(|t| shard.has(t));
        if selected.is_empty() {
            eprintln!("shard {shard} has no targets: nothing to do");
            return Ok(ExitCode::SUCCESS);
        }
        tracing::info!(shard = %shard, targets = selected.len(), "running one shard");
    }
    // Progress on stderr: live on a terminal (unless the output is JSON), else a log line.
    let source_vault = c
        .vault
        .address
        .clone()
        .or_else(|| env("VAULT_ADDR"))
        .map(|a| a.trim_end_matches('/').to_string());
    let progress = crate::progress::Progress::new(source_vault, selected.len());
    let live = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && !matches!(a.output, crate::cli::Output::Json);
    let opts = pipeline::RunOptions {
        dry_run: a.dry_run,
        merge_only: a.merge_only,
        sync_only: a.sync_only,
        targets: selected.clone(),
        aws_max_attempts: None,
        allow_mass_delete: a.allow_mass_delete,
        lock_timeout: a.lock_timeout,
        observers: observers(c, Arc::new(progress.clone()), metrics),
        cancel: cancel_on_signals(),
        metrics: metrics.clone(),
        parallel_targets: a
            .parallel_targets
            .map_or(c.max_parallel_targets, |n| n as usize),
        provenance: a.provenance,
        plan_file: match &a.plan {
            Some(path) => Some(Arc::new(read_plan_file(path, c, failure_code)?)),
            None => None,
        },
        policies: load_policies(c, &a.config.config)?,
    };
    let policy = c.masking.policy(a.show_values);
    let mut reporter =
        crate::report::Printer::new(a.output, policy, a.diff, a.dry_run, a.merge_only);
    let shown = progress.show(live, a.progress_interval);
    let mut reporting = crate::progress::Reporting {
        inner: &mut reporter,
        progress,
    };
    let summary = match a.version {
        // A whole target as of one of its revisions, from the history.
        Some(r) => {
            let ([target], [_]) = (selected.as_slice(), a.targets.as_slice()) else {
                anyhow::bail!(Failure {
                    code: failure_code,
                    message: "--version restores one target: name it with --targets T".into(),
                });
            };
            Box::pin(secretsync_engine::restore::restore(
                c,
                &opts,
                &env,
                &mut reporting,
                target,
                &secretsync_engine::restore::What::Revision(r),
            ))
            .await
        }
        None => pipeline::run(c, &opts, &env, &mut reporting).await,
    };
    drop(shown);
    let summary = summary?;
    if let Some(path) = &a.plan_out {
        write_plan_file(path, c, &summary)?;
    }
    conclude(&mut reporter, summary, a.exit_code)
}

/// Reads `--plan FILE`: a plan file made with this config (its shape: the config's
/// fingerprint), or an error that says what to do.
fn read_plan_file(
    path: &std::path::Path,
    c: &Config,
    failure_code: u8,
) -> Result<secretsync_core::planfile::PlanFile> {
    let fail = |message: String| Failure {
        code: failure_code,
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read the plan file {}: {e}", path.display())))?;
    let file = secretsync_core::planfile::PlanFile::parse(&text)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    if file.config != secretsync_core::planfile::config_fingerprint(c) {
        return Err(fail(format!(
            "the plan file {} was made with another config (targets, sources or settings changed since, or another SecretSync version); nothing was applied; make a new plan with `--dry-run --plan-out` and review it",
            path.display()
        ))
        .into());
    }
    Ok(file)
}

/// Writes `--plan-out FILE`: every planned target's changes (no values).
fn write_plan_file(
    path: &std::path::Path,
    c: &Config,
    summary: &pipeline::RunSummary,
) -> Result<()> {
    use secretsync_core::planfile::{FORMAT, PlanFile, PlannedTarget};
    let file = PlanFile {
        secretsync_plan: FORMAT,
        config: secretsync_core::planfile::config_fingerprint(c),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        targets: summary
            .targets
            .iter()
            .filter_map(|t| t.plan.as_ref())
            .map(|p| PlannedTarget::of(p))
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file)?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("writing the plan file {}", path.display()))?;
    eprintln!(
        "wrote the plan to {} ({} target{}); apply it with `--plan {}`",
        path.display(),
        file.targets.len(),
        plural(file.targets.len()),
        path.display()
    );
    Ok(())
}

/// Prints the end of a run's report and turns its summary into the exit code: 0, or 1 for a
/// failure; with `exit_code`, 1 for changes and 2 for a failure.
pub(crate) fn conclude(
    reporter: &mut crate::report::Printer,
    summary: pipeline::RunSummary,
    exit_code: bool,
) -> Result<ExitCode> {
    let failure_code = if exit_code { 2 } else { 1 };
    let changes = reporter.done(&summary)?;
    if summary.failed() {
        let failed: Vec<&str> = summary
            .targets
            .iter()
            .filter(|t| t.failed())
            .map(|t| t.name.as_str())
            .collect();
        let mut message = if failed.is_empty() {
            String::new()
        } else {
            format!(
                "{} target{} failed: {}",
                failed.len(),
                plural(failed.len()),
                failed.join(", ")
            )
        };
        if !summary.incomplete.is_empty() {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(&format!(
                "the Vault read was incomplete, so nothing was deleted and the skipped paths were not written ({}); fix the token's policy or the named paths and run again",
                secretsync_core::secret::summarize(&summary.incomplete, 5)
            ));
        }
        if let Some(a) = &summary.audit_error {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(a);
        }
        return Err(Failure {
            code: failure_code,
            message,
        }
        .into());
    }
    Ok(if exit_code && changes {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
