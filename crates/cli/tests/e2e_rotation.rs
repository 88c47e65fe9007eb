//! `secretsync rotate` end to end, like a user: the real binary against the real OpenBao and
//! moto. A dry run writes nothing; fresh secrets are not due; `--force` rotates the selected
//! key in Vault (one new version, other keys and secrets untouched); the next `pipeline`
//! carries the new value to AWS Secrets Manager; no value, old or new, is ever printed.
//!
//! Region: us-iso-east-1 belongs to this file alone.

mod support_sync;

use serde_json::{Value, json};
use support_sync::{World, single_target, unique};

const REGION: &str = "us-iso-east-1";

const ROTATION: &str = r#"rotation:
  - source: base
    paths: ["app/*/db"]
    key: password
    every: 30d
    generator: { length: 32 }
"#;

/// A secret's current data and version in Vault (`secret/<path>`).
async fn vault_secret(world: &World, path: &str) -> (Value, u64) {
    let v = world
        .vault(reqwest::Method::GET, &format!("secret/data/{path}"), None)
        .await;
    (
        v["data"]["data"].clone(),
        v["data"]["metadata"]["version"]
            .as_u64()
            .expect("a version"),
    )
}

#[tokio::test]
async fn rotate_in_vault_then_the_pipeline_distributes_it() {
    let world = World::from_env().await;
    let id = unique("rot");
    let web = format!("{id}/base/app/web/db");
    let api = format!("{id}/base/app/api/db");
    let cache = format!("{id}/base/app/web/cache");
    let seeded = [
        (
            web.clone(),
            json!({"password": "old-web-password-4d1c", "user": "web"}),
        ),
        (
            api.clone(),
            json!({"password": "old-api-password-9e2f", "user": "api"}),
        ),
        (cache.clone(), json!({"password": "cache-password-77aa"})),
    ];
    for (path, data) in &seeded {
        world.put(path, data.clone()).await;
    }
    let config = world.config(&format!("{}{ROTATION}", single_target(&id, REGION, "")));
    let cfg = config.to_str().unwrap().to_string();
    let rotate = |extra: &[&str]| {
        let mut args = vec!["rotate".to_string(), "--config".to_string(), cfg.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        world.run(&args, &[])
    };
    let unchanged = || async {
        for (path, data) in &seeded {
            assert_eq!(
                vault_secret(&world, path).await,
                (data.clone(), 1),
                "{path}"
            );
        }
    };
    let mut outputs = Vec::new();

    // The first sync carries the old values.
    let run = world.pipeline(&config, &[]);
    run.success();
    outputs.push(run);
    let sm = world.sm(REGION);
    let synced: Value =
        serde_json::from_str(&sm.current_value(&format!("{id}/t/app/web/db")).await).unwrap();
    assert_eq!(synced["password"], "old-web-password-4d1c");

    // A forced dry run says what would be rotated, and writes nothing.
    let run = rotate(&["--dry-run", "--force"]);
    run.success()
        .stdout_has("due  base app/web/db  password (age ")
        .stdout_has("due  base app/api/db  password (age ")
        .stdout_has("Rotation (dry run, nothing written): 2 due, 0 not due, 0 skipped, 0 failed")
        .stdout_lacks("app/web/cache");
    outputs.push(run);
    unchanged().await;

    // Fresh secrets are not due.
    let run = rotate(&[]);
    run.success()
        .stdout_has("not due  base app/web/db  password (age ")
        .stdout_has(", every 30d)")
        .stdout_has("Rotation: 0 rotated, 2 not due, 0 skipped, 0 conflicts, 0 failed");
    outputs.push(run);
    unchanged().await;

    // `--force` rotates the password of both selected secrets, nothing else.
    let run = rotate(&["--force"]);
    run.success()
        .stdout_has("rotated  base app/web/db  password (age ")
        .stdout_has("rotated  base app/api/db  password (age ")
        .stdout_has("Rotation: 2 rotated, 0 not due, 0 skipped, 0 conflicts, 0 failed");
    outputs.push(run);
    let (web_now, v) = vault_secret(&world, &web).await;
    assert_eq!(v, 2);
    let new_web = web_now["password"].as_str().unwrap().to_string();
    assert_eq!(new_web.len(), 32);
    assert!(
        new_web.chars().all(|c| c.is_ascii_alphanumeric()),
        "{new_web:?}"
    );
    assert_eq!(web_now, json!({"password": new_web, "user": "web"}));
    let (api_now, v) = vault_secret(&world, &api).await;
    assert_eq!(v, 2);
    let new_api = api_now["password"].as_str().unwrap().to_string();
    assert_ne!(new_api, "old-api-password-9e2f");
    assert_eq!(api_now["user"], "api");
    assert_eq!(vault_secret(&world, &cache).await, (seeded[2].1.clone(), 1));

    // The JSON report after it: both keys are fresh again.
    let run = rotate(&["--dry-run", "--output", "json"]);
    run.success();
    let doc = run.json();
    assert_eq!(doc["summary"]["not_due"], 2, "{doc}");
    assert_eq!(doc["secrets"][0]["version"], 2, "{doc}");
    outputs.push(run);

    // The next pipeline run carries the new passwords to Secrets Manager.
    let run = world.pipeline(&config, &[]);
    run.success();
    outputs.push(run);
    for (name, want) in [("app/web/db", &new_web), ("app/api/db", &new_api)] {
        let synced: Value =
            serde_json::from_str(&sm.current_value(&format!("{id}/t/{name}")).await).unwrap();
        assert_eq!(synced["password"].as_str(), Some(want.as_str()), "{name}");
    }

    // No value, old or new, in any output.
    for run in &outputs {
        for value in [
            new_web.as_str(),
            new_api.as_str(),
            "old-web-password-4d1c",
            "old-api-password-9e2f",
            "cache-password-77aa",
        ] {
            assert!(
                !run.stdout.contains(value) && !run.stderr.contains(value),
                "`secretsync {}` printed a value\n--- stdout ---\n{}\n--- stderr ---\n{}",
                run.args.join(" "),
                run.stdout,
                run.stderr
            );
        }
    }
}

#[tokio::test]
async fn validate_reports_rotation_mistakes_with_their_lines() {
    let world = World::from_env().await;
    let id = unique("rot");
    let config = world.config(&format!(
        "{}rotation:
  - source: bsae
    paths: [\"/app/db\"]
    key: password
    every: 30d
    generator: {{ length: 8 }}
",
        single_target(&id, REGION, "")
    ));
    let run = world.run(
        &[
            "validate".into(),
            "--config".into(),
            config.to_str().unwrap().into(),
        ],
        &[],
    );
    run.code(1)
        .stderr_has("line 11, column 13 (`rotation[0].source`): unknown source `bsae`; did you mean `base`?")
        .stderr_has("(`rotation[0].paths[0]`): `/app/db` starts with `/`")
        .stderr_has("(`rotation[0].generator.length`): `length` must be from 16 to 1024, not 8")
        .stderr_has("3 errors in the config");
    // And `rotate` refuses the same config before contacting anything.
    let run = world.run(
        &[
            "rotate".into(),
            "--config".into(),
            config.to_str().unwrap().into(),
        ],
        &[],
    );
    run.code(1).stderr_has("3 errors in the config");
}
