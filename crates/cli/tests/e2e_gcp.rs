//! End to end: the real `secretsync` binary syncing the local OpenBao into the Secret Manager
//! contract fake (`crates/test-support/fakes/gcp_secretmanager.py`, started by
//! `scripts/servers.sh`) through a `gcp_secretmanager` target, driven like a user with a config
//! file: `endpoint`, `ca_cert`, a static token from the environment, and `SSL_CERT_FILE` (how
//! Google's client takes a CA). The fake is inspected through its REST API.

mod support_sync;

use base64::Engine;
use serde_json::{Value, json};
use support_sync::{World, plan_counts, unique};

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: run `scripts/test.sh`, or `scripts/servers.sh start && source .servers/env` before `cargo test`"
        ),
    }
}

struct Fake {
    base: String,
    token: String,
    parent: String,
    http: reqwest::Client,
}

impl Fake {
    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}/v1/{}/{path}", self.base, self.parent))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("the fake answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
    async fn value(&self, id: &str) -> Value {
        let (s, v) = self
            .get(&format!("secrets/{id}/versions/latest:access"))
            .await;
        assert_eq!(s, 200, "{id}: {v}");
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["payload"]["data"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&data).unwrap()
    }
    async fn versions(&self, id: &str) -> usize {
        let (s, v) = self.get(&format!("secrets/{id}/versions")).await;
        assert_eq!(s, 200, "{id}: {v}");
        v["versions"].as_array().map(Vec::len).unwrap_or(0)
    }
    async fn labels(&self, id: &str) -> Value {
        let (s, v) = self.get(&format!("secrets/{id}")).await;
        assert_eq!(s, 200, "{id}: {v}");
        v["labels"].clone()
    }
}

#[tokio::test]
async fn openbao_syncs_into_secret_manager_and_only_changes_write() {
    let w = World::from_env().await;
    let ca = required("SECRETSYNC_TEST_CA_CERT");
    let project = unique("e2e-gcp-");
    let fake = Fake {
        base: required("SECRETSYNC_TEST_GCP_ENDPOINT"),
        token: required("SECRETSYNC_TEST_GCP_TOKEN"),
        parent: format!("projects/{project}"),
        http: reqwest::Client::builder()
            .tls_certs_merge(
                [reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()],
            )
            .build()
            .unwrap(),
    };
    let id = unique("gcp");
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "pw-1"}),
    )
    .await;
    w.put(&format!("{id}/base/app/api_key"), json!({"key": "k-1"}))
        .await;
    let config = w.config(&format!(
        "owner: e2e-gcp
vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: gcp
    type: gcp_secretmanager
    project: {project}
    replication: automatic
    endpoint: {endpoint}
    ca_cert: {ca}
    auth: {{ token: ${{GCP_ACCESS_TOKEN}} }}
    secret_prefix: apps/
    imports: [base]
",
        endpoint = fake.base,
    ));
    let cache = std::env::temp_dir().join(unique("secretsync-gcp-cache-"));
    let env = [
        ("GCP_ACCESS_TOKEN", fake.token.as_str()),
        ("SSL_CERT_FILE", &required("SSL_CERT_FILE")),
        ("XDG_CACHE_HOME", cache.to_str().unwrap()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, *v)).collect();

    let first = w.pipeline_env(&config, &[], &env);
    first
        .success()
        .stdout_has(&plan_counts("gcp", 2, 0, 0, 0, 0));
    first.stdout_lacks("pw-1").stdout_lacks(&fake.token);
    let (db, api) = ("apps__app__db", "apps__app__api_5Fkey");
    assert_eq!(
        fake.value(db).await,
        json!({"user": "app", "password": "pw-1"})
    );
    assert_eq!(fake.value(api).await, json!({"key": "k-1"}));
    let labels = fake.labels(db).await;
    assert_eq!(labels["managed-by"], "secretsync");
    assert_eq!(labels["secretsync-owner"], "e2e-gcp");
    assert_eq!(labels["secretsync-target"], "gcp");
    assert_eq!(labels["secretsync-version"], "1");

    // A re-run writes nothing: no new version anywhere.
    w.pipeline_env(&config, &[], &env)
        .success()
        .stdout_has(&plan_counts("gcp", 0, 0, 0, 2, 0));
    assert_eq!((fake.versions(db).await, fake.versions(api).await), (1, 1));

    // A change writes exactly one new version of that secret.
    w.put(
        &format!("{id}/base/app/db"),
        json!({"user": "app", "password": "pw-2"}),
    )
    .await;
    w.pipeline_env(&config, &[], &env)
        .success()
        .stdout_has(&plan_counts("gcp", 0, 1, 0, 1, 0));
    assert_eq!((fake.versions(db).await, fake.versions(api).await), (2, 1));
    assert_eq!(fake.value(db).await["password"], "pw-2");
    assert_eq!(fake.labels(db).await["secretsync-version"], "2");

    // `ca_cert` while the environment trusts only the system roots: refused, saying how to fix
    // it. (An empty SSL_CERT_FILE is no way to say so: the AWS SDK then finds no roots.)
    let untrusted: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| {
            if *k == "SSL_CERT_FILE" {
                (*k, "/etc/ssl/certs/ca-certificates.crt")
            } else {
                (*k, *v)
            }
        })
        .collect();
    w.pipeline_env(&config, &[], &untrusted)
        .stderr_has("SSL_CERT_FILE")
        .code(1);
    let _ = std::fs::remove_dir_all(&cache);
}
