//! End to end: the real `secretsync` binary syncing the local OpenBao (the source) into a
//! second OpenBao server through a `vault_kv2` target, driven like a user with a config file.
//! Needs the local servers (`scripts/test.sh`, or `scripts/servers.sh start && source
//! .servers/env`), including the second OpenBao (`SECRETSYNC_TEST_VAULT2_ADDR`,
//! `SECRETSYNC_TEST_VAULT2_TOKEN`); without them every test fails loudly. The destination is
//! inspected through its plain HTTP API, never through the code under test.

mod support_sync;

use serde_json::{Value, json};
use support_sync::{World, plan_counts, unique};

/// The second OpenBao: address and root token.
fn destination() -> (String, String) {
    let get = |name: &str| match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need the second local OpenBao server. Run \
             `scripts/test.sh`, or `scripts/servers.sh start && source .servers/env` before \
             `cargo test`"
        ),
    };
    (
        get("SECRETSYNC_TEST_VAULT2_ADDR")
            .trim_end_matches('/')
            .to_string(),
        get("SECRETSYNC_TEST_VAULT2_TOKEN"),
    )
}

async fn call(
    addr: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("reach the second OpenBao");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The `(current_version, custom_metadata)` of a secret on the destination.
async fn metadata(addr: &str, token: &str, path: &str) -> (u64, Value) {
    let (status, v) = call(addr, token, reqwest::Method::GET, path, None).await;
    assert!(status.is_success(), "{path}: {status} {v}");
    (
        v["data"]["current_version"].as_u64().unwrap(),
        v["data"]["custom_metadata"].clone(),
    )
}

#[tokio::test]
async fn a_source_syncs_into_a_second_openbao_and_a_rerun_writes_nothing() {
    let w = World::from_env().await;
    let (addr, token) = destination();
    let id = unique("kvt");
    let kv = unique("dest");
    let (status, v) = call(
        &addr,
        &token,
        reqwest::Method::POST,
        &format!("sys/mounts/{kv}"),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    assert!(status.is_success(), "{status} {v}");
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "pw-1"}),
    )
    .await;
    w.put(&format!("{id}/base/app/api"), json!({"key": "k-1", "n": 3}))
        .await;
    let config = w.config(&format!(
        "owner: e2e-kv2
vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: regional
    type: vault_kv2
    address: {addr}
    auth: {{ token: {{ token: ${{OTHER_VAULT_TOKEN}} }} }}
    mount: {kv}/
    secret_prefix: apps/
    delete_orphans: true
    imports: [base]
"
    ));
    let env = [("OTHER_VAULT_TOKEN", token.as_str())];
    let first = w.pipeline_env(&config, &[], &env);
    first
        .success()
        .stdout_has(&plan_counts("regional", 2, 0, 0, 0, 0));
    // Values do not show without --show-values.
    first.stdout_lacks("pw-1");
    let (status, v) = call(
        &addr,
        &token,
        reqwest::Method::GET,
        &format!("{kv}/data/apps/app/db"),
        None,
    )
    .await;
    assert!(status.is_success(), "{status} {v}");
    assert_eq!(
        v["data"]["data"],
        json!({"user": "app", "password": "pw-1"})
    );
    let (db_version, marks) = metadata(&addr, &token, &format!("{kv}/metadata/apps/app/db")).await;
    assert_eq!(db_version, 1);
    assert_eq!(marks["managed-by"], "secretsync");
    assert_eq!(marks["secretsync:owner"], "e2e-kv2");
    assert_eq!(marks["secretsync:target"], "regional");
    assert_eq!(marks["secretsync:version"], "1");
    // The run's bookkeeping lives beside the secrets; its lease was released.
    let (status, _) = call(
        &addr,
        &token,
        reqwest::Method::GET,
        &format!("{kv}/data/.secretsync/fingerprint-key"),
        None,
    )
    .await;
    assert!(status.is_success());
    let (status, _) = call(
        &addr,
        &token,
        reqwest::Method::GET,
        &format!("{kv}/metadata/.secretsync/locks/e2e-kv2/regional"),
        None,
    )
    .await;
    assert_eq!(
        status,
        reqwest::StatusCode::NOT_FOUND,
        "the lease is released"
    );

    // A re-run writes nothing.
    let second = w.pipeline_env(&config, &[], &env);
    second
        .success()
        .stdout_has(&plan_counts("regional", 0, 0, 0, 2, 0));
    for path in ["apps/app/db", "apps/app/api"] {
        let (version, _) = metadata(&addr, &token, &format!("{kv}/metadata/{path}")).await;
        assert_eq!(version, 1, "{path} got no new version");
    }

    // A change at the source becomes one new version; a removed secret is soft-deleted.
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "pw-2"}),
    )
    .await;
    w.remove(&format!("{id}/base/app/api")).await;
    let third = w.pipeline_env(&config, &[], &env);
    third
        .success()
        .stdout_has(&plan_counts("regional", 0, 1, 1, 0, 0));
    let (version, _) = metadata(&addr, &token, &format!("{kv}/metadata/apps/app/db")).await;
    assert_eq!(version, 2);
    let (status, v) = call(
        &addr,
        &token,
        reqwest::Method::GET,
        &format!("{kv}/data/apps/app/api"),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["data"]["metadata"]["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "soft-deleted, recoverable: {v}"
    );
}

#[tokio::test]
async fn validate_rejects_an_aws_key_on_a_vault_target_with_its_line() {
    let w = World::from_env().await;
    let config = w.config(
        "vault_sources:
  - mount: secret/base/
targets:
  - name: regional
    type: vault_kv2
    address: https://vault.eu.example.com
    auth: { token: { token: t } }
    mount: synced/
    region: us-east-1
    adress: https://typo.example.com
    imports: [base]
",
    );
    let r = w.run(
        &[
            "validate".to_string(),
            "--config".to_string(),
            config.to_str().unwrap().to_string(),
        ],
        &[],
    );
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "error at line 9, column 5 (`targets[0].region`): unknown key `region`; `region` is a key of `aws_secretsmanager` and `aws_ssm` targets"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "error at line 10, column 5 (`targets[0].adress`): unknown key `adress`; did you mean `address`?"
        ),
        "{}",
        r.stderr
    );
}
