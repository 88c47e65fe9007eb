//! End-to-end tests of the diff output formats, masking, exit codes and the GitHub Action
//! entrypoint: the real binary against real OpenBao and moto (addresses from `scripts/test.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Env {
    vault: String,
    token: String,
    aws: String,
}

fn servers() -> Env {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run the tests through scripts/test.sh, which starts OpenBao and moto"))
    };
    Env {
        vault: get("SECRETSYNC_TEST_VAULT_ADDR"),
        token: get("SECRETSYNC_TEST_VAULT_TOKEN"),
        aws: get("SECRETSYNC_TEST_AWS_ENDPOINT"),
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("out{}{}", std::process::id(), nanos % 1_000_000_000)
}

fn vault_put(e: &Env, path: &str, data: &str) {
    let status = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-H",
            &format!("X-Vault-Token: {}", e.token),
            "-d",
            &format!("{{\"data\": {data}}}"),
        ])
        .arg(format!("{}/v1/secret/data/{path}", e.vault))
        .status()
        .expect("curl runs");
    assert!(status.success(), "seeding {path} failed");
}

/// A scenario: a source under `secret/<id>/` and one target with prefix `<id>/`.
struct Case {
    env: Env,
    id: String,
    dir: PathBuf,
    config: PathBuf,
}

impl Case {
    fn new() -> Case {
        let env = servers();
        let id = unique();
        let dir = std::env::temp_dir().join(format!("secretsync-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "vault_sources:\n  - mount: secret/{id}/\n    name: src\ntargets:\n  - name: t1\n    type: aws_secretsmanager\n    region: us-east-1\n    secret_prefix: {id}/\n    imports: [src]\n"
            ),
        )
        .unwrap();
        vault_put(
            &env,
            &format!("{id}/app/db"),
            r#"{"user": "sentinel-user-1", "password": "sentinel-pw-1", "port": 5432}"#,
        );
        vault_put(
            &env,
            &format!("{id}/app/api"),
            r#"{"url": "sentinel-url-1"}"#,
        );
        Case {
            env,
            id,
            dir,
            config,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_secretsync"));
        c.env("VAULT_ADDR", &self.env.vault)
            .env("VAULT_TOKEN", &self.env.token)
            .env("AWS_ENDPOINT_URL", &self.env.aws)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.arg("--log-level")
            .arg("debug")
            .arg("pipeline")
            .arg("--config")
            .arg(&self.config)
            .args(args);
        c.output().expect("binary runs")
    }

    /// Applies once, then changes one key of one secret in Vault.
    fn applied_then_changed(&self) {
        let out = self.run(&[]);
        assert!(
            out.status.success(),
            "first apply failed: {}",
            text(&out.stderr)
        );
        vault_put(
            &self.env,
            &format!("{}/app/db", self.id),
            r#"{"user": "sentinel-user-1", "password": "sentinel-pw-2", "port": 5432, "pool": 10}"#,
        );
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_no_sentinels(out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for s in [
        "sentinel-user-1",
        "sentinel-pw-1",
        "sentinel-pw-2",
        "sentinel-url-1",
    ] {
        assert!(!all.contains(s), "value {s} leaked:\n{all}");
    }
}

#[test]
fn dry_run_diff_in_every_format_shows_counts_and_keys_and_no_values() {
    let case = Case::new();
    case.applied_then_changed();
    let name = format!("{}/app/db", case.id);

    let out = case.run(&["--dry-run", "--diff", "--output", "text"]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(
        s.contains(
            "Plan for target t1: 0 to add, 1 to modify, 0 to delete, 1 unchanged, 0 skipped"
        ),
        "{s}"
    );
    assert!(
        s.contains(&format!("~ {name}"))
            && s.contains("~ password: ********** → **********")
            && s.contains("+ pool: **********"),
        "{s}"
    );
    assert_no_sentinels(&out);

    let out = case.run(&["--dry-run", "--diff", "--output", "side-by-side"]);
    let s = text(&out.stdout);
    assert!(
        s.contains("password │ ********** │ **********") && s.contains("pool"),
        "{s}"
    );
    assert_no_sentinels(&out);

    let out = case.run(&["--dry-run", "--diff", "--output", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["summary"]["modified"], 1);
    assert_eq!(doc["summary"]["unchanged"], 1);
    let change = &doc["changes"][0];
    assert_eq!(
        (change["path"].as_str(), change["type"].as_str()),
        (Some("app/db"), Some("modified"))
    );
    let keys: Vec<(&str, &str)> = change["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key"].as_str().unwrap(), k["type"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("password", "changed"), ("pool", "added")]);
    // The current version is known; the new one is chosen when writing (none in a dry run).
    assert!(change["old_version"].is_string() && change["new_version"].is_null());
    assert_no_sentinels(&out);

    let out = case.run(&["--dry-run", "--diff", "--output", "compact"]);
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        [
            "t1: CHANGES: +0 ~1 -0 =1",
            "TOTAL: CHANGES: +0 ~1 -0 =1 DRY_RUN"
        ]
    );
    assert_no_sentinels(&out);

    let gh_out = case.dir.join("github_output");
    let gh_sum = case.dir.join("github_summary");
    let out = case
        .cmd()
        .env("GITHUB_OUTPUT", &gh_out)
        .env("GITHUB_STEP_SUMMARY", &gh_sum)
        .args(["pipeline", "--config"])
        .arg(&case.config)
        .args(["--dry-run", "--diff", "--output", "github"])
        .output()
        .unwrap();
    let s = text(&out.stdout);
    assert!(s.contains("::group::secretsync plan for t1: +0 ~1 -0 =1 !0") && s.contains(&format!("::notice title=secret modified::t1: {name} will be modified (keys: ~password, +pool)")), "{s}");
    let outputs = std::fs::read_to_string(&gh_out).unwrap();
    for line in [
        "changes=1",
        "added=0",
        "modified=1",
        "deleted=0",
        "unchanged=1",
        "zero_sum=false",
    ] {
        assert!(
            outputs.lines().any(|l| l == line),
            "missing {line} in {outputs}"
        );
    }
    let summary = std::fs::read_to_string(&gh_sum).unwrap();
    assert!(
        summary.contains("| t1 | 0 | 1 | 0 | 1 | 0 | planned |"),
        "{summary}"
    );
    assert_no_sentinels(&out);
}

#[test]
fn show_values_reveals_only_non_sensitive_keys() {
    let case = Case::new();
    case.applied_then_changed();
    let out = case.run(&["--dry-run", "--output", "json", "--show-values"]);
    let s = text(&out.stdout);
    assert!(
        s.contains("sentinel-user-1"),
        "non-sensitive value should be shown: {s}"
    );
    assert!(
        !s.contains("sentinel-pw-1") && !s.contains("sentinel-pw-2"),
        "password leaked: {s}"
    );
}

#[test]
fn exit_codes() {
    let case = Case::new();
    let code = |o: &Output| o.status.code().unwrap();
    // Pending changes in a dry run: 1 with --exit-code, 0 without.
    assert_eq!(code(&case.run(&["--dry-run", "--exit-code"])), 1);
    assert_eq!(code(&case.run(&["--dry-run"])), 0);
    // Applying changes: 1 with --exit-code; then nothing to do: 0.
    assert_eq!(code(&case.run(&["--exit-code"])), 1);
    assert_eq!(code(&case.run(&["--exit-code"])), 0);
    // Failures: 2 with --exit-code, 1 without. Vault unreachable:
    let unreachable = |exit_code: bool| {
        let mut c = case.cmd();
        c.env("VAULT_ADDR", "http://127.0.0.1:9")
            .args(["pipeline", "--config"])
            .arg(&case.config);
        if exit_code {
            c.arg("--exit-code");
        }
        c.output().unwrap()
    };
    assert_eq!(code(&unreachable(true)), 2);
    assert_eq!(code(&unreachable(false)), 1);
    // Invalid config:
    let bad = case.dir.join("bad.yaml");
    std::fs::write(&bad, "targets:\n  - name: x\n    typo: 1\n").unwrap();
    let run_bad = |extra: &[&str]| {
        case.cmd()
            .args(["pipeline", "--config"])
            .arg(&bad)
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(code(&run_bad(&["--exit-code"])), 2);
    assert_eq!(code(&run_bad(&[])), 1);
}

fn entrypoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../action/entrypoint.sh")
}

#[test]
fn action_entrypoint_maps_inputs_and_writes_outputs() {
    let case = Case::new();
    let gh_out = case.dir.join("action_output");
    let gh_sum = case.dir.join("action_summary");
    let action = |dry: &str| {
        let mut c = case.cmd();
        c.env("SECRETSYNC_BIN", env!("CARGO_BIN_EXE_secretsync"))
            .env("INPUT_CONFIG", &case.config)
            .env("INPUT_DRY-RUN", dry)
            .env("INPUT_EXIT-CODE", "true")
            .env("INPUT_LOG-LEVEL", "warn")
            .env("INPUT_TARGETS", "t1")
            .env("GITHUB_OUTPUT", &gh_out)
            .env("GITHUB_STEP_SUMMARY", &gh_sum);
        let mut bash = Command::new("bash");
        bash.arg(entrypoint());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => bash.env(k, v),
                None => bash.env_remove(k),
            };
        }
        bash.output().expect("bash runs the entrypoint")
    };
    let out = action("true");
    assert_eq!(
        out.status.code(),
        Some(1),
        "dry run with pending changes exits 1 under exit-code: {}",
        text(&out.stderr)
    );
    let s = text(&out.stdout);
    assert!(
        s.contains("::group::secretsync plan for t1: +2 ~0 -0 =0 !0"),
        "default output format is github: {s}"
    );
    assert!(
        s.contains("+ url: **********") || s.contains("will be added"),
        "{s}"
    );
    let outputs = std::fs::read_to_string(&gh_out).unwrap();
    assert!(
        outputs.lines().any(|l| l == "changes=2") && outputs.lines().any(|l| l == "zero_sum=false"),
        "{outputs}"
    );
    assert!(
        std::fs::read_to_string(&gh_sum)
            .unwrap()
            .contains("SecretSync plan (dry run)")
    );
    // Apply through the action, then a dry run has nothing to do.
    assert_eq!(action("false").status.code(), Some(1));
    std::fs::remove_file(&gh_out).unwrap();
    let out = action("true");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs = std::fs::read_to_string(&gh_out).unwrap();
    assert!(
        outputs.lines().any(|l| l == "changes=0") && outputs.lines().any(|l| l == "zero_sum=true"),
        "{outputs}"
    );
    assert_no_sentinels(&out);
}
