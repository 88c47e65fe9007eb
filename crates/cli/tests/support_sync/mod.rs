//! Helpers for the end-to-end sync tests (`tests/e2e_*.rs`): the real `secretsync` binary
//! against the real local OpenBao and moto servers (`scripts/servers.sh start && source
//! .servers/env`, or `scripts/test.sh`).
//!
//! * [`World::from_env`] reads `SECRETSYNC_TEST_VAULT_ADDR`, `SECRETSYNC_TEST_VAULT_TOKEN` and
//!   `SECRETSYNC_TEST_AWS_ENDPOINT` and panics when one is missing: never a silent skip.
//! * Seeding and inspection never go through the code under test: Vault through its plain HTTP
//!   API with the root token, AWS through the SDK pointed at moto.
//! * [`unique`] names give every test its own Vault paths, secret prefixes and buckets; each
//!   test also syncs into Secrets Manager regions no other test here uses. moto keeps one
//!   secrets table per account and region and its `ListSecrets` iterates that table unlocked:
//!   a `CreateSecret` in the same account and region at the same moment makes it fail with
//!   HTTP 500 ("dictionary changed size during iteration"). Separate regions keep tests from
//!   tripping each other; the inspection clients also retry transient 500s (as any AWS client
//!   should), in case something else uses the same server.
//! * [`World::run`] runs the binary with a clean environment that holds only what a user would
//!   export (`VAULT_ADDR`, `VAULT_TOKEN`, `AWS_ENDPOINT_URL`, test credentials, region).

#![allow(dead_code)] // not every helper is used by every test

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use serde_json::Value;

const VAULT_ADDR_VAR: &str = "SECRETSYNC_TEST_VAULT_ADDR";
const VAULT_TOKEN_VAR: &str = "SECRETSYNC_TEST_VAULT_TOKEN";
const AWS_ENDPOINT_VAR: &str = "SECRETSYNC_TEST_AWS_ENDPOINT";

/// The account moto gives the `test`/`test` credentials.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// A name no other test (or earlier run against the same servers) uses: `<prefix><12 hex>`.
/// Lowercase letters and digits only, so it is valid in Vault paths, secret names and buckets.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

/// The environment variable `name` (set by `.servers/env`); panics, saying how to set it, when missing.
pub fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: the end-to-end sync tests need the local OpenBao and moto \
             servers. Run `scripts/test.sh`, or `scripts/servers.sh start && source \
             .servers/env` before `cargo test`"
        ),
    }
}

/// What one run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "secretsync {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success\n{}", self.describe());
        self
    }

    /// Asserts a specific exit code.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.describe());
        self
    }

    /// Asserts stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Asserts stdout does not contain `needle`.
    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle),
            "stdout unexpectedly has {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Asserts stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// The stdout line that starts with `prefix` (after indentation); panics when absent.
    #[track_caller]
    pub fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no stdout line starts with {prefix:?}\n{}", self.describe()))
    }

    /// The plan line of one secret (text output): `<sign> <name>` followed by the end of the
    /// line, a space or a colon (so `a` does not find `ab`). Panics when absent.
    #[track_caller]
    pub fn change(&self, sign: &str, name: &str) -> &str {
        let head = format!("{sign} {name}");
        self.stdout
            .lines()
            .map(str::trim_start)
            .find(|l| {
                l.strip_prefix(head.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':']))
            })
            .unwrap_or_else(|| panic!("no plan line {head:?}\n{}", self.describe()))
    }

    /// The plan summary line of a target (text output).
    #[track_caller]
    pub fn plan_line(&self, target: &str) -> &str {
        self.line(&format!("Plan for target {target}:"))
    }

    /// Stdout parsed as JSON (`--output json`).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", self.describe()))
    }
}

/// The expected plan summary line of a target.
pub fn plan_counts(
    target: &str,
    add: usize,
    modify: usize,
    delete: usize,
    unchanged: usize,
    skipped: usize,
) -> String {
    format!(
        "Plan for target {target}: {add} to add, {modify} to modify, {delete} to delete, \
         {unchanged} unchanged, {skipped} skipped"
    )
}

/// One secret as `ListSecrets` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub tags: BTreeMap<String, String>,
    /// Every version id and its stages.
    pub versions: BTreeMap<String, Vec<String>>,
    pub deleted: bool,
}

impl Listed {
    /// The version id with the `AWSCURRENT` stage.
    pub fn current(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(v, _)| v.as_str())
    }
}

/// A Secrets Manager client for one account and region.
#[derive(Clone)]
pub struct Sm {
    pub client: aws_sdk_secretsmanager::Client,
}

impl Sm {
    /// Every secret whose name starts with `prefix`, pending deletions included.
    pub async fn list(&self, prefix: &str) -> BTreeMap<String, Listed> {
        self.list_with(prefix, true).await
    }

    /// Like [`Sm::list`]; `include_deleted: false` leaves out secrets pending deletion.
    pub async fn list_with(&self, prefix: &str, include_deleted: bool) -> BTreeMap<String, Listed> {
        let mut pages = self
            .client
            .list_secrets()
            .include_planned_deletion(include_deleted)
            .max_results(100)
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(prefix)
                    .build(),
            )
            .into_paginator()
            .send();
        let mut out = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("ListSecrets {prefix}: {e:?}"));
            for s in page.secret_list() {
                let name = s.name().expect("a listed secret has a name");
                if !name.starts_with(prefix) {
                    continue;
                }
                let tags = s
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                let versions = s
                    .secret_versions_to_stages()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                out.insert(
                    name.to_string(),
                    Listed {
                        tags,
                        versions,
                        deleted: s.deleted_date().is_some(),
                    },
                );
            }
        }
        out
    }

    /// The version that is current as AWS would have it. moto does not take `AWSCURRENT` off a
    /// version that a rollback (`UpdateSecretVersionStage`) moved it back to when a later
    /// `PutSecretValue` lands, so two versions can carry it; on AWS the later one alone would.
    pub async fn current_version(&self, name: &str, l: &Listed) -> String {
        let current: Vec<&String> = l
            .versions
            .iter()
            .filter(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(v, _)| v)
            .collect();
        match current[..] {
            [] => panic!("{name} has no AWSCURRENT version: {l:?}"),
            [one] => one.clone(),
            _ => {
                let listed = self
                    .client
                    .list_secret_version_ids()
                    .secret_id(name)
                    .include_deprecated(true)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("ListSecretVersionIds {name}: {e:?}"));
                listed
                    .versions()
                    .iter()
                    .filter(|v| {
                        v.version_id()
                            .is_some_and(|id| current.iter().any(|c| *c == id))
                    })
                    .max_by_key(|v| v.created_date().map(|d| (d.secs(), d.subsec_nanos())))
                    .and_then(|v| v.version_id())
                    .unwrap_or_else(|| panic!("{name}: none of {current:?} is listed"))
                    .to_string()
            }
        }
    }

    /// The value of a secret at [`Sm::current_version`], read by version id (after a stage
    /// move moto's default read returns the last write).
    pub async fn current_value(&self, name: &str) -> String {
        let listed = self.list(name).await;
        let l = listed
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not listed"));
        let version = self.current_version(name, l).await;
        self.client
            .get_secret_value()
            .secret_id(name)
            .version_id(version)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetSecretValue {name}: {e:?}"))
            .secret_string()
            .unwrap_or_default()
            .to_string()
    }

    /// The current value of a secret.
    pub async fn value(&self, name: &str) -> String {
        self.client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetSecretValue {name}: {e:?}"))
            .secret_string()
            .unwrap_or_else(|| panic!("{name} has no string value"))
            .to_string()
    }

    /// Creates a secret directly, without any tags (an "unmanaged" secret).
    pub async fn create_unmanaged(&self, name: &str, value: &str) {
        self.client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
    }
}

/// The local servers, and clients to seed and inspect them.
#[derive(Clone)]
pub struct World {
    pub vault_addr: String,
    pub vault_token: String,
    pub aws_endpoint: String,
    http: reqwest::Client,
    sdk: SdkConfig,
}

impl World {
    /// Reads the servers' addresses from the environment; panics when one is missing.
    pub async fn from_env() -> World {
        let vault_addr = required(VAULT_ADDR_VAR).trim_end_matches('/').to_string();
        let vault_token = required(VAULT_TOKEN_VAR);
        let aws_endpoint = required(AWS_ENDPOINT_VAR).trim_end_matches('/').to_string();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&aws_endpoint)
            .region(Region::new("us-east-1"))
            .test_credentials()
            .retry_config(RetryConfig::standard().with_max_attempts(8))
            .load()
            .await;
        World {
            vault_addr,
            vault_token,
            aws_endpoint,
            http: reqwest::Client::new(),
            sdk,
        }
    }

    // ---- Vault (KV v2 mount `secret/`) ----

    /// One root-token request straight to OpenBao (`/v1/<path>`) that must succeed; returns the
    /// JSON body (`null` when empty).
    pub async fn vault(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/v1/{path}", self.vault_addr);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Token", &self.vault_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: cannot reach OpenBao: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url}: {status}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        }
    }

    /// Writes a new version of `secret/<path>`.
    pub async fn put(&self, path: &str, data: Value) {
        self.vault(
            reqwest::Method::POST,
            &format!("secret/data/{path}"),
            Some(serde_json::json!({ "data": data })),
        )
        .await;
    }

    /// Writes many secrets, 16 at a time.
    pub async fn put_many(&self, items: Vec<(String, Value)>) {
        let limit = Arc::new(tokio::sync::Semaphore::new(16));
        let mut tasks = tokio::task::JoinSet::new();
        for (path, data) in items {
            let world = self.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore open");
                world.put(&path, data).await;
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("a Vault write task panicked");
        }
    }

    /// Removes `secret/<path>` entirely (every version and its metadata).
    pub async fn remove(&self, path: &str) {
        self.vault(
            reqwest::Method::DELETE,
            &format!("secret/metadata/{path}"),
            None,
        )
        .await;
    }

    // ---- AWS (moto) ----

    /// Secrets Manager in the default account (123456789012).
    pub fn sm(&self, region: &str) -> Sm {
        let conf = aws_sdk_secretsmanager::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_string()))
            .build();
        Sm {
            client: aws_sdk_secretsmanager::Client::from_conf(conf),
        }
    }

    /// Credentials of `role_arn`, assumed with STS; checks they belong to `account`.
    pub async fn assume(&self, role_arn: &str, account: &str) -> Credentials {
        let sts = aws_sdk_sts::Client::new(&self.sdk);
        let out = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name("secretsync-e2e")
            .send()
            .await
            .unwrap_or_else(|e| panic!("AssumeRole {role_arn}: {e:?}"));
        let c = out.credentials().expect("AssumeRole returns credentials");
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "secretsync-e2e",
        );
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .credentials_provider(creds.clone())
            .build();
        let who = aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetCallerIdentity as {role_arn}: {e:?}"));
        assert_eq!(
            who.account(),
            Some(account),
            "assumed role {role_arn} is not in account {account}"
        );
        creds
    }

    /// Secrets Manager in another account, through an assumed role.
    pub async fn sm_as(&self, role_arn: &str, account: &str, region: &str) -> Sm {
        let creds = self.assume(role_arn, account).await;
        let conf = aws_sdk_secretsmanager::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_string()))
            .credentials_provider(creds)
            .build();
        Sm {
            client: aws_sdk_secretsmanager::Client::from_conf(conf),
        }
    }

    /// AWS Organizations, as the default (management) account.
    pub fn organizations(&self) -> aws_sdk_organizations::Client {
        aws_sdk_organizations::Client::new(&self.sdk)
    }

    /// S3 in us-east-1 (path-style, as local endpoints need).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Creates a bucket in us-east-1.
    pub async fn create_bucket(&self, bucket: &str) {
        self.s3()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e:?}"));
    }

    // ---- the binary ----

    /// Writes a config file for one run.
    pub fn config(&self, yaml: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-sync");
        std::fs::create_dir_all(&dir).expect("create the config directory");
        let path = dir.join(format!("{}.yaml", unique("config-")));
        std::fs::write(&path, yaml).expect("write the config file");
        path
    }

    /// Runs `secretsync pipeline --config <config> <args>` like a user with the local servers'
    /// addresses exported.
    pub fn pipeline(&self, config: &std::path::Path, args: &[&str]) -> Run {
        self.pipeline_env(config, args, &[])
    }

    /// Like [`World::pipeline`], with some environment variables replaced.
    pub fn pipeline_env(
        &self,
        config: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let config = config.to_str().expect("utf-8 path").to_string();
        let mut all = vec!["pipeline".to_string(), "--config".to_string(), config];
        all.extend(args.iter().map(|a| a.to_string()));
        self.run(&all, env)
    }

    /// The binary with `args` and a clean environment that holds only what a user would export
    /// for the local servers, with `env` replacing or adding variables.
    pub fn command(&self, args: &[String], env: &[(&str, &str)]) -> Command {
        let mut vars: BTreeMap<&str, &str> = BTreeMap::from([
            ("VAULT_ADDR", self.vault_addr.as_str()),
            ("VAULT_TOKEN", self.vault_token.as_str()),
            ("AWS_ENDPOINT_URL", self.aws_endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]);
        vars.extend(env.iter().copied());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secretsync"));
        cmd.args(args).env_clear().envs(vars);
        cmd
    }

    /// Runs the binary with `args` and a clean environment ([`World::command`]).
    pub fn run(&self, args: &[String], env: &[(&str, &str)]) -> Run {
        let out = self
            .command(args, env)
            .output()
            .expect("run the secretsync binary");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.to_vec(),
        }
    }
}

/// A config with one source `base` at `secret/<id>/base/` and one `aws_secretsmanager` target
/// `t` (prefix `<id>/t/`) in `region` importing it; `extra` holds more target settings (YAML
/// lines indented by four spaces, each ending in a newline).
pub fn single_target(id: &str, region: &str, extra: &str) -> String {
    format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: t
    type: aws_secretsmanager
    region: {region}
    secret_prefix: {id}/t/
    imports: [base]
{extra}"
    )
}

/// The version map of every listed secret, for "nothing was written" checks.
pub fn versions(
    listed: &BTreeMap<String, Listed>,
) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    listed
        .iter()
        .map(|(k, v)| (k.clone(), v.versions.clone()))
        .collect()
}

/// A loopback address where nothing listens (a port bound and released just now).
pub fn closed_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = l.local_addr().expect("local address").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// HMAC-SHA256 (RFC 2104) in hex, built from SHA-256 alone, so signature checks in the tests
/// share no code with the signer.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), msg].concat());
    hex::encode(Sha256::digest([opad.as_slice(), inner.as_slice()].concat()))
}
