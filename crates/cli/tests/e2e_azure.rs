//! The `azure_keyvault` target, end to end: real runs of the binary (OpenBao → the Key Vault
//! contract fake over HTTPS with the test CA, `crates/test-support/fakes/azure_keyvault.py`).
//! The first run creates each secret with `content_type: application/json` and the ownership
//! tags; a re-run writes nothing (no new version anywhere); a Vault change makes exactly one new
//! version of that secret; `delete_orphans` soft-deletes a secret no longer desired; no value is
//! ever printed. The vault is inspected through its REST API, not through the binary.

mod support_sync;

use serde_json::{Value, json};
use support_sync::*;

fn required(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!(
            "{k} is not set: start the local servers (scripts/servers.sh) and source .servers/env"
        )
    })
}

struct Vault {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Vault {
    fn from_env() -> Vault {
        let ca = std::fs::read(required("SECRETSYNC_TEST_CA_CERT")).unwrap();
        Vault {
            http: reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .build()
                .unwrap(),
            url: required("SECRETSYNC_TEST_AZURE_VAULT_URL"),
            token: required("SECRETSYNC_TEST_AZURE_TOKEN"),
        }
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = self
            .http
            .get(format!("{}{path}{sep}api-version=7.5", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => Some(r.json().await.unwrap()),
            404 => None,
            s => panic!("GET {path}: {s} {}", r.text().await.unwrap_or_default()),
        }
    }

    async fn versions(&self, name: &str) -> usize {
        self.get(&format!("/secrets/{name}/versions?maxresults=25"))
            .await
            .map(|v| v["value"].as_array().unwrap().len())
            .unwrap_or(0)
    }
}

fn config(world: &World, id: &str, extra: &str) -> std::path::PathBuf {
    world.config(&format!(
        "owner: {id}
vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: azure
    type: azure_keyvault
    vault_url: {url}
    ca_cert: {ca}
    auth: {{ token: ${{AZURE_ACCESS_TOKEN}} }}
    secret_prefix: {id}/
    tags: {{ team: platform }}
    imports: [base]
{extra}",
        url = required("SECRETSYNC_TEST_AZURE_VAULT_URL"),
        ca = required("SECRETSYNC_TEST_CA_CERT"),
    ))
}

/// A run at debug level: nothing it logs may carry a value or the token.
fn run(world: &World, cfg: &std::path::Path, cache: &std::path::Path) -> Run {
    let token = required("SECRETSYNC_TEST_AZURE_TOKEN");
    world.pipeline_env(
        cfg,
        &["--log-level", "debug"],
        &[
            ("AZURE_ACCESS_TOKEN", token.as_str()),
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
        ],
    )
}

#[track_caller]
fn no_value(run: &Run, values: &[&str]) {
    for v in values {
        assert!(
            !run.stdout.contains(v) && !run.stderr.contains(v),
            "a value was printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    let token = required("SECRETSYNC_TEST_AZURE_TOKEN");
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));
}

#[tokio::test]
async fn create_rerun_change_and_delete_through_the_binary() {
    let world = World::from_env().await;
    let kv = Vault::from_env();
    let id = unique("az");
    let cache = std::env::temp_dir().join(unique("secretsync-e2e-azure-cache-"));
    let (db, api) = ("sentinel-azure-db-5e1f", "sentinel-azure-api-90ab");
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": db}),
        )
        .await;
    world
        .put(&format!("{id}/base/app/api_key"), json!({"token": api}))
        .await;
    let cfg = config(
        &world,
        &id,
        "    delete_orphans: true\n    max_delete_fraction: 1\n",
    );
    // `<id>/app/db` → `<id>-sapp-sdb` (the prefix has letters and digits only).
    let (n_db, n_api) = (format!("{id}-sapp-sdb"), format!("{id}-sapp-sapi-ukey"));

    let first = run(&world, &cfg, &cache);
    first.success();
    no_value(&first, &[db, api]);
    let s = kv.get(&format!("/secrets/{n_db}/")).await.expect("created");
    assert_eq!(s["contentType"], "application/json");
    let value: Value = serde_json::from_str(s["value"].as_str().unwrap()).unwrap();
    assert_eq!(value, json!({"user": "app", "password": db}));
    let tags = &s["tags"];
    assert_eq!(tags["managed-by"], "secretsync");
    assert_eq!(tags["secretsync:owner"], id.as_str());
    assert_eq!(tags["secretsync:target"], "azure");
    assert_eq!(tags["team"], "platform");
    assert!(
        tags["secretsync:fingerprint"]
            .as_str()
            .is_some_and(|f| !f.contains(db)),
        "{tags}"
    );
    assert!(kv.get(&format!("/secrets/{n_api}/")).await.is_some());
    assert!(
        kv.get("/secrets/secretsync-fingerprint-key/")
            .await
            .is_some(),
        "the fingerprint key is kept in the vault"
    );

    // A re-run writes nothing: no new version of anything.
    let again = run(&world, &cfg, &cache);
    again.success();
    no_value(&again, &[db, api]);
    assert_eq!(
        (kv.versions(&n_db).await, kv.versions(&n_api).await),
        (1, 1)
    );

    // A change in Vault makes one new version of that secret only.
    let db2 = "sentinel-azure-db-2-c3d4";
    world
        .put(
            &format!("{id}/base/app/db"),
            json!({"user": "app", "password": db2}),
        )
        .await;
    let change = run(&world, &cfg, &cache);
    change.success();
    no_value(&change, &[db, db2, api]);
    assert_eq!(
        (kv.versions(&n_db).await, kv.versions(&n_api).await),
        (2, 1)
    );
    let s = kv.get(&format!("/secrets/{n_db}/")).await.unwrap();
    let value: Value = serde_json::from_str(s["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["password"], db2);

    // No longer in Vault: soft-deleted (recoverable), not purged.
    world.remove(&format!("{id}/base/app/api_key")).await;
    let del = run(&world, &cfg, &cache);
    del.success();
    assert!(kv.get(&format!("/secrets/{n_api}/")).await.is_none());
    let mut deleted = None;
    for _ in 0..200 {
        deleted = kv.get(&format!("/deletedsecrets/{n_api}")).await;
        if deleted.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(deleted.is_some(), "soft-deleted, recoverable");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_bad_vault_url_is_refused_with_its_key_and_line() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-azure");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.yaml");
    std::fs::write(
        &cfg,
        "vault_sources:\n  - mount: secret/base/\ntargets:\n  - name: azure\n    type: azure_keyvault\n    vault_url: http://my-vault.vault.azure.net\n    imports: [base]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretsync"))
        .args(["validate", "--config", cfg.to_str().unwrap()])
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("line 6")
            && stderr.contains("targets[0].vault_url")
            && stderr.contains("does not use https"),
        "{stderr}"
    );
}

/// `retries.azure_max_attempts` is the attempts of every Key Vault call: against a vault whose
/// port refuses connections, the run makes the same calls with 2 and with 3 attempts each, so
/// the target's call counts stand as 2 to 3.
#[tokio::test]
async fn azure_max_attempts_sets_the_attempts_per_call() {
    let world = World::from_env().await;
    let id = unique("azr");
    world.put(&format!("{id}/base/a"), json!({"k": "v"})).await;
    let vault_url = closed_address().replace("http://", "https://");
    let calls = |attempts: u32| {
        let cfg = world.config(&format!(
            "owner: {id}
vault_sources:
  - mount: secret/{id}/base/
    name: base
retries: {{ azure_max_attempts: {attempts} }}
targets:
  - name: azure
    type: azure_keyvault
    vault_url: {vault_url}
    auth: {{ token: not-a-real-token }}
    imports: [base]
"
        ));
        let cache = std::env::temp_dir().join(unique("secretsync-azr-cache-"));
        let r = world.pipeline_env(
            &cfg,
            &["--output", "json"],
            &[("XDG_CACHE_HOME", cache.to_str().unwrap())],
        );
        assert_ne!(r.code, 0, "{}", r.stderr);
        let doc = r.json();
        doc["targets"][0]["result"]["aws_calls"]
            .as_u64()
            .unwrap_or_else(|| panic!("a call count in {doc:#}"))
    };
    let (two, three) = (calls(2), calls(3));
    assert!(two > 0 && two % 2 == 0, "{two} attempts with 2 per call");
    assert_eq!(
        two / 2 * 3,
        three,
        "{two} attempts with 2 per call, {three} with 3"
    );
}
