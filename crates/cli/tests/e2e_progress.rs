//! Progress of a long run, through the binary against local OpenBao and moto: without a
//! terminal (CI) a periodic `progress` log line at info level; on a terminal (a pseudo-terminal
//! from util-linux `script`) a live line on stderr. Neither shows a secret path or value.

mod support_sync;

use serde_json::json;
use support_sync::{World, single_target, unique};

const N: usize = 8;

/// `N` secrets and a target slowed to 4 writes a second (a run of about two seconds).
async fn slow_run(w: &World, region: &str) -> (String, std::path::PathBuf) {
    let id = unique("prog");
    w.put_many(
        (0..N)
            .map(|i| {
                (
                    format!("{id}/base/deep-folder/item{i}"),
                    json!({ "password": format!("pw-{id}-{i}") }),
                )
            })
            .collect(),
    )
    .await;
    let cfg = w.config(&single_target(&id, region, "    writes_per_second: 4\n"));
    (id, cfg)
}

#[tokio::test]
async fn without_a_terminal_progress_is_a_periodic_info_line() {
    let w = World::from_env().await;
    let (id, cfg) = slow_run(&w, "eu-south-1").await;
    // At `--log-level warn` there is no progress line (a dry run: the apply below is the slow
    // part).
    let quiet = w.run(
        &[
            "--log-level".into(),
            "warn".into(),
            "pipeline".into(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
            "--progress-interval".into(),
            "200ms".into(),
            "--dry-run".into(),
        ],
        &[],
    );
    quiet.success();
    assert!(!quiet.stderr.contains("progress"), "{}", quiet.stderr);
    // At the default level (info), a line every interval; `--output json` keeps stdout a
    // JSON document.
    let run = w.pipeline(&cfg, &["--progress-interval", "200ms", "--output", "json"]);
    run.success();
    let _: serde_json::Value = run.json();
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("progress"))
        .collect();
    assert!(!lines.is_empty(), "no progress line: {}", run.stderr);
    for l in &lines {
        assert!(
            !l.contains(&id) && !l.contains("deep-folder") && !l.contains("pw-"),
            "{l}"
        );
    }
}

#[tokio::test]
async fn while_applying_the_log_line_counts_writes_against_the_plan() {
    let w = World::from_env().await;
    let (id, cfg) = slow_run(&w, "eu-south-2").await;
    let run = w.run(
        &[
            "--log-level".into(),
            "info".into(),
            "pipeline".into(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
            "--progress-interval".into(),
            "300ms".into(),
        ],
        &[],
    );
    run.success();
    let applying: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("progress") && l.contains("applying t"))
        .collect();
    assert!(!applying.is_empty(), "{}", run.stderr);
    assert!(
        applying
            .iter()
            .any(|l| l.contains(&format!("for {N} planned changes"))),
        "{applying:#?}"
    );
    assert!(
        applying
            .iter()
            .all(|l| l.contains(&format!("{N} secrets read"))),
        "{applying:#?}"
    );
    for l in &applying {
        assert!(!l.contains(&id) && !l.contains("pw-"), "{l}");
    }
}

#[tokio::test]
async fn on_a_terminal_progress_is_a_live_line() {
    let w = World::from_env().await;
    let (id, cfg) = slow_run(&w, "eu-central-2").await;
    // `script` gives the binary a pseudo-terminal for stdin, stdout and stderr, and copies
    // what it writes to its own stdout.
    let bin = env!("CARGO_BIN_EXE_secretsync");
    let cmd = format!("{bin} pipeline --config {}", cfg.to_str().unwrap());
    let script = std::process::Command::new("script")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("VAULT_ADDR", &w.vault_addr)
        .env("VAULT_TOKEN", &w.vault_token)
        .env("AWS_ENDPOINT_URL", &w.aws_endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("run `script` (util-linux)");
    let out = String::from_utf8_lossy(&script.stdout);
    assert!(script.status.success(), "{out}");
    assert!(out.contains("applying t: "), "no live line: {out}");
    assert!(out.contains("targets done"), "{out}");
    assert!(!out.contains("pw-"), "{out}");
    // The plan itself names the secrets; the live line does not.
    let live: Vec<&str> = out
        .split(['\r', '\n'])
        .filter(|l| l.contains("targets done"))
        .collect();
    for l in live {
        assert!(!l.contains(&id), "{l}");
    }
}
