//! Transformations end to end (OpenBao → moto): a target's `transform:` reshapes what the
//! merge produced before the diff, `name_template` places the names, a re-run writes nothing,
//! and a template naming a key a secret lacks fails that target with the secret and the key
//! named — nothing written, no value printed.

mod support_sync;

use serde_json::{Value, json};
use support_sync::*;

const REGION: &str = "ap-east-1";

#[tokio::test]
async fn a_transformed_target_gets_the_reshaped_values_and_a_rerun_writes_nothing() {
    let world = World::from_env().await;
    let id = unique("trf");
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": "p@ss/word", "host": "db.internal", "port": 5432, "db": "main", "debug_sql": true, "options": {"ssl": true}}),
        )
        .await;
    world
        .put(
            &format!("{id}/base/shared/logging"),
            json!({"level": "info", "debug_trace": false}),
        )
        .await;
    let cfg = world.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: plain
    type: aws_secretsmanager
    region: {REGION}
    secret_prefix: {id}/plain/
    imports: [base]
  - name: env
    type: aws_secretsmanager
    region: {REGION}
    tags: {{ team: {id} }}
    name_template: \"{{team}}/{{target}}/{{path}}\"
    imports: [base]
    transform:
      - paths: [\"app/*\"]
        template: {{ DATABASE_URL: \"postgres://{{{{ user }}}}:{{{{ password | percent_encode }}}}@{{{{ host }}}}:{{{{ port }}}}/{{{{ db }}}}\" }}
        include: [user, options]
      - exclude: [\"debug_*\"]
        rename: {{ user: username }}
        flatten: _
        case: upper
"
    ));
    let run = world.pipeline(&cfg, &[]);
    run.success();
    assert!(!run.stdout.contains("p@ss/word") && !run.stderr.contains("p@ss/word"));

    let sm = world.sm(REGION);
    let plain = sm.list(&format!("{id}/plain/")).await;
    assert_eq!(
        plain.len(),
        2,
        "the untransformed target is untouched by the other's transform"
    );
    let raw: Value =
        serde_json::from_str(&sm.current_value(&format!("{id}/plain/app/db")).await).unwrap();
    assert_eq!(raw["debug_sql"], true);

    let env = sm.list(&format!("{id}/env/")).await;
    assert_eq!(
        env.keys().cloned().collect::<Vec<_>>(),
        [
            format!("{id}/env/app/db"),
            format!("{id}/env/shared/logging")
        ],
        "names follow name_template"
    );
    let db: Value =
        serde_json::from_str(&sm.current_value(&format!("{id}/env/app/db")).await).unwrap();
    assert_eq!(
        db,
        json!({
            "USERNAME": "app",
            "OPTIONS_SSL": true,
            "DATABASE_URL": "postgres://app:p%40ss%2Fword@db.internal:5432/main"
        })
    );
    let logging: Value =
        serde_json::from_str(&sm.current_value(&format!("{id}/env/shared/logging")).await).unwrap();
    assert_eq!(logging, json!({"LEVEL": "info"}));

    // `explain` shows the merged keys and what the transform makes of them.
    let explained = world.run(
        &[
            "explain".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--target".into(),
            "env".into(),
            "--path".into(),
            "app/db".into(),
        ],
        &[],
    );
    explained
        .success()
        .stdout_has("Transformed (transform blocks 1, 2): the keys the target gets")
        .stdout_has("DATABASE_URL  ← template (block 1) of db, host, password, port, user")
        .stdout_has("OPTIONS_SSL   ← options.ssl")
        .stdout_has("USERNAME      ← user")
        .stdout_has("Not sent as such: db, debug_sql, host, password, port");
    assert!(!explained.stdout.contains("p@ss/word"));

    // The transformed state is the desired state: nothing to do the second time.
    let again = world.pipeline(&cfg, &[]);
    again.success();
    let before = versions(&env);
    assert_eq!(versions(&sm.list(&format!("{id}/env/")).await), before);
    assert!(
        again
            .stdout
            .contains("0 to add, 0 to modify, 0 to delete, 2 unchanged"),
        "{}",
        again.stdout
    );
}

#[tokio::test]
async fn a_template_naming_a_missing_key_fails_its_target_with_the_secret_and_key() {
    let world = World::from_env().await;
    let id = unique("trf");
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": "sentinel-transform-9f2"}),
        )
        .await;
    let cfg = world.config(&single_target(
        &id,
        REGION,
        "    transform:\n      template: { URL: \"{{ user }}:{{ password }}@{{ host }}\" }\n",
    ));
    let run = world.pipeline(&cfg, &[]);
    run.code(1)
        .stdout_has("secret `app/db`: template `URL` uses `host`, which the secret does not have (its keys: `password`, `user`)")
        .stdout_has("nothing was written to it");
    assert!(
        !run.stdout.contains("sentinel-transform-9f2")
            && !run.stderr.contains("sentinel-transform-9f2"),
        "a value leaked:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(sm_names(&world, &id).await.is_empty(), "nothing written");
}

async fn sm_names(world: &World, id: &str) -> Vec<String> {
    world
        .sm(REGION)
        .list(&format!("{id}/t/"))
        .await
        .into_keys()
        .collect()
}
