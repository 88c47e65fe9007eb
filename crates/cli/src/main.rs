//! The `secretsync` binary: parses arguments once into typed settings, runs, prints the error
//! chain once. Results go to stdout; diagnostics and logs to stderr.

mod audit;
mod cli;
mod commands;
mod discover;
mod explain;
mod policy;
mod progress;
mod report;
mod rotate;
mod tracing_otel;
mod version;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // With --exit-code, failures exit 2 (1 means "changes").
    let failure_code = match &args.command {
        cli::Command::Pipeline(p) if p.exit_code => 2,
        cli::Command::Version(cli::VersionCommand::Rollback(r)) if r.exit_code => 2,
        _ => 1,
    };
    cli::init_logging(&args.global);
    let code = run(args, failure_code);
    // Every way out (success, failure, a cancelling signal) sends the spans left.
    tracing_otel::shutdown(tracing_otel::FLUSH_TIMEOUT);
    code
}

fn run(args: cli::Cli, failure_code: u8) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(failure_code);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(
                e.downcast_ref::<commands::Failure>()
                    .map_or(failure_code, |f| f.code),
            )
        }
    }
}
