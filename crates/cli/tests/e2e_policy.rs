//! Policy as code, end to end: the shipped example policies (`examples/policies/`) judge real
//! plans made from OpenBao against moto. A denied target gets nothing written; warnings show
//! (as GitHub annotations under `--output github`); a policy with values sees them and never
//! prints them; Rego errors name the file and line.

mod support_sync;

use serde_json::json;
use support_sync::*;

const REGION: &str = "eu-north-1";

fn examples() -> String {
    format!("{}/../../examples/policies", env!("CARGO_MANIFEST_DIR"))
}

/// Two targets on the same sources: `prod-<id>` (tagged production, with an owner) and
/// `sandbox-<id>` (neither), with the example policies.
fn config(world: &World, id: &str, policies: &str) -> std::path::PathBuf {
    world.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: prod
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/prod/
    tags: {{ environment: production, owner: platform }}
    imports: [base]
  - name: sandbox
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/sandbox/
    imports: [base]
{policies}"
    ))
}

fn example_blocks() -> String {
    format!(
        "policies:
  - path: {ex}/plan/
  - path: {ex}/values/
    with_values: true
",
        ex = examples()
    )
}

#[tokio::test]
async fn a_denied_target_gets_nothing_and_the_others_sync() {
    let world = World::from_env().await;
    let id = unique("pol");
    world
        .put(
            &format!("{id}/base/ci/deploy"),
            json!({"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "sentinel-aws-key-0001"}),
        )
        .await;
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": "long-enough-password"}),
        )
        .await;
    let cfg = config(&world, &id, &example_blocks());

    let run = world.pipeline(&cfg, &[]);
    run.code(1)
        .stdout_has("policy denied")
        .stdout_has("ci/deploy holds `aws_access_key_id`, which is allowed in production targets only (target sandbox)")
        .stdout_has("policy warning")
        .stdout_has("target sandbox has no `owner` tag");
    assert!(
        !run.stdout.contains("sentinel-aws-key-0001")
            && !run.stderr.contains("sentinel-aws-key-0001"),
        "a value leaked:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    let sm = world.sm(REGION);
    assert!(
        sm.list(&format!("{id}/sandbox/")).await.is_empty(),
        "the denied target was written to"
    );
    let prod = sm.list(&format!("{id}/prod/")).await;
    assert_eq!(
        prod.keys().cloned().collect::<Vec<_>>(),
        [format!("{id}/prod/app/db"), format!("{id}/prod/ci/deploy")],
        "the allowed target is synced"
    );

    // `--exit-code`: a denial is a failure (2), and the JSON report names it.
    let run = world.pipeline(&cfg, &["--exit-code", "--output", "json", "--dry-run"]);
    run.code(2);
    let doc = run.json();
    let sandbox = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "sandbox")
        .unwrap()
        .clone();
    assert_eq!(sandbox["result"]["failure_kind"], "denied", "{sandbox:#}");
    assert_eq!(
        sandbox["policy"]["denied"].as_array().unwrap().len(),
        2,
        "{sandbox:#}"
    );
    assert!(
        sandbox["refused"]
            .as_str()
            .unwrap()
            .contains("denied by policy"),
        "{sandbox:#}"
    );
}

#[tokio::test]
async fn warnings_are_github_annotations() {
    let world = World::from_env().await;
    let id = unique("polgh");
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"password": "long-enough-password"}),
        )
        .await;
    let cfg = config(&world, &id, &example_blocks());
    let run = world.pipeline(
        &cfg,
        &["--dry-run", "--output", "github", "--targets", "sandbox"],
    );
    run.success().stdout_has("::warning title=policy warning (");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("::warning title=policy warning")
                && l.contains("sandbox has no `owner` tag")),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_policy_with_values_sees_them_and_never_prints_them() {
    let world = World::from_env().await;
    let id = unique("polval");
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"password": "short-pw-9"}),
        )
        .await;
    let ex = examples();
    // The values policy in a block without `with_values`: it sees no value and says nothing.
    let blind = config(&world, &id, &format!("policies:\n  - path: {ex}/values/\n"));
    world
        .pipeline(&blind, &["--dry-run", "--targets", "prod"])
        .success()
        .stdout_lacks("policy denied");
    // With values: the short password is denied, and not shown.
    let seeing = config(
        &world,
        &id,
        &format!("policies:\n  - path: {ex}/values/\n    with_values: true\n"),
    );
    let run = world.pipeline(&seeing, &["--targets", "prod", "--show-values"]);
    run.code(1)
        .stdout_has("app/db: `password` is 10 characters, fewer than 12");
    assert!(!run.stdout.contains("short-pw-9") && !run.stderr.contains("short-pw-9"));
    assert!(
        world
            .sm(REGION)
            .list(&format!("{id}/prod/"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn policy_test_reports_every_target_and_writes_nothing() {
    let world = World::from_env().await;
    let id = unique("poltest");
    world
        .put(
            &format!("{id}/base/ci/deploy"),
            json!({"aws_secret_access_key": "sentinel-aws-key-0002"}),
        )
        .await;
    let cfg = config(&world, &id, &example_blocks());
    let args: Vec<String> = [
        "policy",
        "test",
        "--config",
        cfg.to_str().unwrap(),
        "--output",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = world.run(&args, &[]);
    run.code(1);
    let doc = run.json();
    assert_eq!(doc["denied_targets"], 1, "{doc:#}");
    let by_name = |n: &str| {
        doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("prod")["denied"], json!([]));
    assert_eq!(
        by_name("sandbox")["denied"][0]["rule"],
        "data.secretsync.deny",
        "{doc:#}"
    );
    assert!(!run.stdout.contains("sentinel-aws-key-0002"));
    let sm = world.sm(REGION);
    assert!(
        sm.list(&format!("{id}/")).await.is_empty(),
        "policy test wrote to AWS"
    );
    // Text: one line per target.
    let text = world.run(&args[..4], &[]);
    text.code(1)
        .stdout_has("prod: allowed")
        .stdout_has("sandbox: DENIED")
        .stdout_has("2 targets checked: 1 denied, 0 could not be planned");
}

#[tokio::test]
async fn rego_errors_name_the_file_and_line() {
    let world = World::from_env().await;
    let id = unique("polerr");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("policies-"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broken.rego"),
        "package secretsync\n\ndeny contains msg if {\n    msg := \n}\n",
    )
    .unwrap();
    let cfg = config(
        &world,
        &id,
        &format!("policies:\n  - path: {}/\n", dir.display()),
    );
    let validate: Vec<String> = ["validate", "--config", cfg.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let run = world.run(&validate, &[]);
    run.code(1)
        .stderr_has(&format!(
            "{}/broken.rego:4:9: expecting `}}`",
            dir.display()
        ))
        .stderr_has("1 error in the policies");
    // The pipeline refuses to start with it: nothing is planned.
    world
        .pipeline(&cfg, &["--dry-run"])
        .code(1)
        .stdout_lacks("Plan for");

    // A `query` no file declares is named.
    std::fs::write(
        dir.join("broken.rego"),
        "package secretsync\ndeny contains \"x\" if { false }\n",
    )
    .unwrap();
    let typo = config(
        &world,
        &id,
        &format!(
            "policies:\n  - path: {}/\n    query: data.secretsync.denny\n",
            dir.display()
        ),
    );
    let validate: Vec<String> = ["validate", "--config", typo.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    world
        .run(&validate, &[])
        .code(1)
        .stderr_has("no file here declares the rule `data.secretsync.denny`");
    // And a good one compiles.
    world
        .run(
            &[
                "validate".into(),
                "--config".into(),
                cfg.to_str().unwrap().into(),
            ],
            &[],
        )
        .success()
        .stdout_has("policies 1 block compiled");
}
