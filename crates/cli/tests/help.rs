//! `--help` is complete for every command: snapshots make changes to it deliberate.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_secretsync"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .env_remove("SECRETSYNC_CONFIG")
        .env_remove("SECRETSYNC_LOG_LEVEL")
        .env_remove("SECRETSYNC_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_snapshots() {
    insta::assert_snapshot!("main", help(&[]));
    insta::assert_snapshot!("pipeline", help(&["pipeline"]));
    insta::assert_snapshot!("validate", help(&["validate"]));
    insta::assert_snapshot!("graph", help(&["graph"]));
    insta::assert_snapshot!("explain", help(&["explain"]));
    insta::assert_snapshot!("rotate", help(&["rotate"]));
    insta::assert_snapshot!("version", help(&["version"]));
    insta::assert_snapshot!("policy_test", help(&["policy", "test"]));
    insta::assert_snapshot!("audit_verify", help(&["audit", "verify"]));
    insta::assert_snapshot!("audit_export", help(&["audit", "export"]));
    for sub in ["list", "show", "rollback", "unpin"] {
        insta::assert_snapshot!(format!("version_{sub}"), help(&["version", sub]));
    }
}

#[test]
fn every_pipeline_flag_is_documented() {
    let h = help(&["pipeline"]);
    for flag in [
        "--config",
        "--dry-run",
        "--merge-only",
        "--sync-only",
        "--targets",
        "--output",
        "--diff",
        "--show-values",
        "--exit-code",
        "--log-level",
        "--log-format",
        "--version",
        "--plan-out",
        "--plan ",
        "--provenance",
    ] {
        assert!(h.contains(flag), "{flag} missing from pipeline --help");
    }
    for format in ["text", "side-by-side", "json", "github", "compact"] {
        assert!(h.contains(format), "output format {format} missing");
    }
}
