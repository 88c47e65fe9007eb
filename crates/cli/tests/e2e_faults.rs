//! Fault injection, end to end: the real `secretsync` binary against the real OpenBao and moto,
//! each behind a fault proxy (`secretsync-test-support`) that damages chosen answers — truncated,
//! non-JSON, `{}` and empty bodies, cross-origin redirects, 5xx, throttling, connection resets
//! before and after a write landed, stalls and delays (for SIGTERM mid-apply). Also a secret
//! nested deeper than the JSON parser allows, a token that may not read one secret, and two
//! deployments sharing one account, region and target name.
//!
//! A timeout after a landed write is tested one level down (`crates/engine/tests/faults_aws.rs`,
//! with short timeouts): through the binary it would take the tool's fixed 30 s attempt timeout.
//!
//! After every fault each test checks the promises: no managed secret that is still desired was
//! deleted, no unmanaged secret was touched, the report (text and `--output json`) and the exit
//! code say what happened, and a clean re-run converges to the desired state with no further
//! changes. Every target has `delete_orphans: true`, so a damaged answer read as "empty" would
//! really delete.
//!
//! Every test has its own names (`unique`) and keeps to Secrets Manager regions no other test
//! file uses (see `support_sync` for why); tests that list without a prefix have a region to
//! themselves.

mod support_sync;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use secretsync_test_support::http::Response;
use secretsync_test_support::proxy::{Action, Proxy, Recorder, Rule};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support_sync::{Listed, Run, Sm, World, plan_counts, single_target, unique, versions};

// ---------------------------------------------------------------------------------------------
// The scenario: one source, one target, both servers behind fault proxies
// ---------------------------------------------------------------------------------------------

/// The Vault tree every scenario starts from (paths below the source folder).
fn tree() -> Vec<(&'static str, Value)> {
    vec![
        ("app/db", json!({"user": "app", "password": "pw-db-1"})),
        ("app/api", json!({"key": "k-api-1", "limits": {"rps": 10}})),
        ("app/deep/cfg", json!({"level": 1, "tags": ["a", "b"]})),
        ("other/x", json!({"v": 1})),
        ("top", json!({"v": "top"})),
        // Exists in AWS without ownership marks: skipped, never written.
        ("handmade", json!({"v": "from-vault"})),
    ]
}

/// Names (below the target prefix) of the secrets the tool manages after the first run.
const MANAGED: [&str; 5] = ["app/api", "app/db", "app/deep/cfg", "other/x", "top"];
/// Secrets created by hand in AWS: `handmade` is desired (skipped), `unmanaged` is not.
const UNMANAGED: [&str; 2] = ["handmade", "unmanaged"];
const UNMANAGED_VALUE: &str = r#"{"by":"hand"}"#;

/// What a target holds at one moment: the listing and each live secret's current value.
#[derive(Debug, Clone)]
struct Snapshot {
    listed: BTreeMap<String, Listed>,
    values: BTreeMap<String, String>,
}

/// One test's world: Vault secrets under `secret/<id>/base/`, target `t` (prefix `<id>/t/`) in
/// a region, OpenBao and moto behind proxies the test controls.
struct Case {
    w: World,
    id: String,
    region: &'static str,
    vault: Proxy,
    aws: Proxy,
    config: PathBuf,
    /// The Vault token the binary uses (root unless a test narrows it).
    token: String,
    /// What Vault holds, to check convergence against.
    desired: std::sync::Mutex<BTreeMap<String, Value>>,
}

impl Case {
    /// A scenario whose target has `extra` settings (YAML lines indented for the target).
    async fn new(region: &'static str, extra: &str) -> Case {
        let w = World::from_env().await;
        let id = unique("flt");
        let vault = Proxy::start(&w.vault_addr);
        let aws = Proxy::start(&w.aws_endpoint);
        let config = w.config(&single_target(
            &id,
            region,
            &format!("    delete_orphans: true\n{extra}"),
        ));
        let token = w.vault_token.clone();
        Case {
            w,
            id,
            region,
            vault,
            aws,
            config,
            token,
            desired: Default::default(),
        }
    }

    fn prefix(&self) -> String {
        format!("{}/t/", self.id)
    }

    /// The AWS name of a path below the source.
    fn name(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix())
    }

    /// The HTTP path of a folder's LIST (`app/`) or of the source folder itself (``).
    fn list_path(&self, folder: &str) -> String {
        format!("/v1/secret/metadata/{}/base/{folder}", self.id)
    }

    /// The HTTP path of one secret's read.
    fn read_path(&self, rel: &str) -> String {
        format!("/v1/secret/data/{}/base/{rel}", self.id)
    }

    /// A rule for one folder's LIST.
    fn list_rule(&self, folder: &str) -> Rule {
        Rule::method("GET")
            .path_prefix(&self.list_path(folder))
            .query("list=true")
    }

    /// A rule for one secret's read (exact path: `app/db` must not match `app/db2`).
    fn read_rule(&self, rel: &str) -> Rule {
        Rule::method("GET").path_prefix(&self.read_path(rel))
    }

    /// A rule for one AWS JSON operation on one secret of the target.
    fn aws_rule(&self, operation: &str, rel: &str) -> Rule {
        Rule::amz_target(&format!("secretsmanager.{operation}"))
            .body_contains(&format!("\"{}\"", self.name(rel)))
    }

    async fn put(&self, rel: &str, data: Value) {
        self.w
            .put(&format!("{}/base/{rel}", self.id), data.clone())
            .await;
        self.desired.lock().unwrap().insert(rel.to_string(), data);
    }

    fn sm(&self) -> Sm {
        self.w.sm(self.region)
    }

    /// Runs `secretsync pipeline` through both proxies.
    fn run(&self, args: &[&str]) -> Run {
        let (vault, aws) = (self.vault.url(), self.aws.url());
        self.w.pipeline_env(
            &self.config,
            args,
            &[
                ("VAULT_ADDR", vault.as_str()),
                ("AWS_ENDPOINT_URL", aws.as_str()),
                ("VAULT_TOKEN", self.token.as_str()),
            ],
        )
    }

    async fn snapshot(&self) -> Snapshot {
        snapshot(&self.sm(), &self.prefix()).await
    }

    /// The state after a fault, checked against `before` for the promises every fault keeps:
    /// nothing that existed was deleted, the hand-made secrets are untouched.
    async fn after_fault(&self, before: &Snapshot) -> Snapshot {
        let after = self.snapshot().await;
        assert_nothing_deleted(before, &after);
        assert_unmanaged_untouched(self, before, &after);
        after
    }

    /// Seeds the tree and the hand-made AWS secrets, runs once without faults, and returns the
    /// state: five managed secrets, `handmade` skipped.
    async fn baseline(&self) -> Snapshot {
        for (rel, v) in tree() {
            self.put(rel, v).await;
        }
        for rel in UNMANAGED {
            self.sm()
                .create_unmanaged(&self.name(rel), UNMANAGED_VALUE)
                .await;
        }
        let first = self.run(&[]);
        first.success().stdout_has(&plan_counts("t", 5, 0, 0, 0, 1));
        let s = self.snapshot().await;
        for rel in MANAGED {
            assert_managed(&s, &self.name(rel));
        }
        s
    }

    /// After the fault: with no rules left, a run succeeds and leaves the target exactly as
    /// desired; the run after it (or that run itself) changes nothing.
    async fn converge(&self) {
        self.vault.clear();
        self.aws.clear();
        let mut run = self.run(&[]);
        run.success();
        if !run.stdout.contains("0 to add, 0 to modify, 0 to delete") {
            run = self.run(&[]);
            run.success();
        }
        let before = self.snapshot().await;
        let managed = self.desired.lock().unwrap().len() - 1; // all but `handmade`
        run.stdout_has(&plan_counts("t", 0, 0, 0, managed, 1));
        let again = self.run(&[]);
        again
            .success()
            .stdout_has(&plan_counts("t", 0, 0, 0, managed, 1));
        let after = self.snapshot().await;
        assert_eq!(
            versions(&before.listed),
            versions(&after.listed),
            "a converged target gets no new versions"
        );
        for (rel, v) in self.desired.lock().unwrap().iter() {
            let name = self.name(rel);
            if *rel == "handmade" {
                assert_eq!(
                    after.values.get(&name).map(String::as_str),
                    Some(UNMANAGED_VALUE)
                );
                continue;
            }
            assert_managed(&after, &name);
            assert_eq!(
                after.values.get(&name),
                Some(&canonical(v)),
                "{name} holds the desired value"
            );
        }
        assert_no_plain_hash_in_tags(&after);
    }
}

/// The target's secrets, and the value of each live one at its current version, read by
/// version id (after a rollback moto's default read returns the last write).
async fn snapshot(sm: &Sm, prefix: &str) -> Snapshot {
    let listed = sm.list(prefix).await;
    let mut values = BTreeMap::new();
    for (name, l) in &listed {
        if l.deleted {
            continue;
        }
        let version = sm.current_version(name, l).await;
        let got = sm
            .client
            .get_secret_value()
            .secret_id(name)
            .version_id(&version)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetSecretValue {name} {version}: {e:?}"));
        values.insert(
            name.clone(),
            got.secret_string().unwrap_or_default().to_string(),
        );
    }
    Snapshot { listed, values }
}

/// Canonical JSON (sorted keys, no spaces): what the tool writes.
fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

#[track_caller]
fn assert_managed(s: &Snapshot, name: &str) {
    let l = s
        .listed
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in AWS: {:#?}", s.listed.keys()));
    assert!(!l.deleted, "{name} is pending deletion");
    assert_eq!(
        l.tags.get("managed-by").map(String::as_str),
        Some("secretsync"),
        "{name}: {l:?}"
    );
}

/// Every secret that existed before is still there and not pending deletion.
#[track_caller]
fn assert_nothing_deleted(before: &Snapshot, after: &Snapshot) {
    for (name, l) in &before.listed {
        if l.deleted {
            continue;
        }
        let now = after
            .listed
            .get(name)
            .unwrap_or_else(|| panic!("{name} was deleted: {:#?}", after.listed.keys()));
        assert!(!now.deleted, "{name} was scheduled for deletion");
    }
}

/// The hand-made secrets have the same versions, tags and values as before.
#[track_caller]
fn assert_unmanaged_untouched(c: &Case, before: &Snapshot, after: &Snapshot) {
    for rel in UNMANAGED {
        let name = c.name(rel);
        assert_eq!(
            before.listed.get(&name),
            after.listed.get(&name),
            "{name} was touched"
        );
        assert_eq!(
            after.values.get(&name).map(String::as_str),
            Some(UNMANAGED_VALUE),
            "{name}"
        );
    }
}

/// No tag of any secret the tool wrote holds a plain (unkeyed) SHA-256 of its value: neither of
/// the value as stored, nor of its canonical JSON, in hex of either case.
#[track_caller]
fn assert_no_plain_hash_in_tags(s: &Snapshot) {
    for (name, l) in &s.listed {
        if l.tags.get("managed-by").map(String::as_str) != Some("secretsync") {
            continue;
        }
        let Some(stored) = s.values.get(name) else {
            continue;
        };
        let mut hashes = vec![hex::encode(Sha256::digest(stored.as_bytes()))];
        if let Ok(v) = serde_json::from_str::<Value>(stored) {
            hashes.push(hex::encode(Sha256::digest(canonical(&v).as_bytes())));
        }
        for (key, value) in &l.tags {
            for h in &hashes {
                assert!(
                    !value.to_ascii_lowercase().contains(h),
                    "tag {key} of {name} is the plain SHA-256 of its value"
                );
            }
        }
        let fp = l
            .tags
            .get("secretsync:fingerprint")
            .unwrap_or_else(|| panic!("{name} has no keyed fingerprint tag: {l:?}"));
        assert!(
            fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: fingerprint {fp}"
        );
        assert!(
            !l.tags.contains_key("secretsync:content-hash"),
            "{name} carries the pre-0.2 plain hash tag"
        );
    }
}

/// The target object of the JSON report.
#[track_caller]
fn json_target(run: &Run, target: &str) -> Value {
    let doc = run.json();
    doc["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["target"] == target))
        .cloned()
        .unwrap_or_else(|| panic!("no target {target} in the JSON report: {doc:#}"))
}

/// The text plan section of target `t` (from its plan line to its result line).
fn plan_section<'a>(run: &'a Run, target: &str) -> &'a str {
    let start = run
        .stdout
        .find(&format!("Plan for target {target}:"))
        .unwrap_or_else(|| panic!("no plan for {target}:\n{}", run.stdout));
    let rest = &run.stdout[start..];
    let end = rest.find("\nResult for ").unwrap_or(rest.len());
    &rest[..end]
}

/// The report says the deletions were held because of the gap: in the text plan (not the
/// `delete_orphans` wording, which is on) and in the JSON document (`deletions_held` naming
/// the gap, the target failed).
#[track_caller]
fn assert_held_reported(text: &Run, json: &Run, gap: &str) {
    let plan = plan_section(text, "t");
    assert!(
        plan.contains(&format!("`{gap}`")) && plan.contains("nothing is deleted"),
        "the text plan must say that deletions are held and name `{gap}`:\n{plan}"
    );
    assert!(
        !plan.contains("kept because `delete_orphans` is off"),
        "`delete_orphans` is on; the plan gives the wrong reason:\n{plan}"
    );
    let t = json_target(json, "t");
    let held = t["deletions_held"]
        .as_str()
        .unwrap_or_else(|| panic!("the JSON report has no `deletions_held` for target t: {t:#}"));
    assert!(held.contains(&format!("`{gap}`")), "{held}");
    // The JSON document and the CLI's closing message agree on whether the target failed.
    let verdict: Vec<&str> = json
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    let said_failed = verdict
        .iter()
        .any(|l| l.contains("target failed: t") || l.contains("targets failed: t"));
    assert_eq!(
        t["failed"],
        said_failed,
        "stderr and the JSON report disagree on whether target t failed:\n{}\n{t:#}",
        verdict.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Regions: each test keeps to its own (or shares with one other Vault-fault test)
// ---------------------------------------------------------------------------------------------

const R_LIST_BODY: &str = "af-south-1";
const R_READ_BODY: &str = "ap-east-1";
const R_REDIRECT: &str = "ap-east-2";
const R_VAULT_5XX: &str = "ap-northeast-3";
const R_DEEP_AND_DENIED: &str = "ap-south-2";
const R_AWS_TRANSIENT: &str = "ap-southeast-3";
const R_AWS_500: &str = "ap-southeast-5";
const R_AWS_THROTTLE: &str = "ap-southeast-6";
const R_AWS_RESET: &str = "ap-southeast-7";
const R_AWS_RESET_ALWAYS: &str = "ca-west-1";
const R_SIGTERM: &str = "eu-south-2";
const R_OWNERS_EXPLICIT: &str = "il-central-1";
const R_OWNERS_DEFAULT: &str = "me-central-1";
const R_TAGS: &str = "me-south-1";
const R_RETRIES: &str = "us-gov-west-1";
const R_RETRIES_VAULT: &str = "us-gov-east-1";

// ---------------------------------------------------------------------------------------------
// Vault answers that cannot be trusted: a gap, never "empty"
// ---------------------------------------------------------------------------------------------

/// A body fault on one folder's LIST or one secret's read, with an update elsewhere in the same
/// run: the update is applied, nothing is deleted, the run exits 1 naming the gap, the report
/// says why nothing was deleted, and a clean re-run converges.
async fn vault_gap(region: &'static str, rule: impl Fn(&Case) -> Rule, gap: &str) {
    let c = Case::new(region, "").await;
    let before = c.baseline().await;
    c.put("other/x", json!({"v": 2})).await;
    let fault = c.vault.add(rule(&c));
    let text = c.run(&[]);
    let json = c.run(&["--output", "json"]);
    let after = c.after_fault(&before).await;
    assert!(
        c.vault.hits(fault) >= 2,
        "the fault was injected in both runs"
    );

    for run in [&text, &json] {
        run.code(1)
            .stderr_has(&format!("`{gap}`"))
            .stderr_has("nothing was deleted");
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    // Creates and updates still happen.
    text.change("~", &c.name("other/x"));
    assert_eq!(
        after.values[&c.name("other/x")],
        r#"{"v":2}"#,
        "the update was applied despite the gap"
    );
    c.converge().await;
    assert_held_reported(&text, &json, gap);
}

/// One [`vault_gap`] test per entry, `name: region, rule(gap) => damage;`: `rule` is the
/// [`Case`] rule matching the request whose answer is damaged, `gap` the path the run must name,
/// `damage` what the proxy does to the answer.
macro_rules! vault_gap_tests {
    ($($name:ident: $region:ident, $rule:ident($gap:literal) => $action:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            vault_gap($region, |c| c.$rule($gap).then($action), $gap).await;
        }
    )*};
}

vault_gap_tests! {
    // A folder's LIST.
    truncated_folder_listing_is_a_gap_not_an_empty_folder:
        R_LIST_BODY, list_rule("app/") => Action::TruncateBody;
    non_json_folder_listing_is_a_gap:
        R_LIST_BODY, list_rule("app/") => Action::body("<html><body>502 Bad Gateway</body></html>");
    empty_object_folder_listing_is_a_gap:
        R_LIST_BODY, list_rule("app/") => Action::body("{}");
    empty_200_folder_listing_is_a_gap:
        R_LIST_BODY, list_rule("app/") => Action::body("");
    // One secret's read.
    truncated_secret_read_is_a_gap_not_a_missing_secret:
        R_READ_BODY, read_rule("app/db") => Action::TruncateBody;
    non_json_secret_read_is_a_gap:
        R_READ_BODY, read_rule("app/db") => Action::body("upstream connect error");
    empty_object_secret_read_is_a_gap:
        R_READ_BODY, read_rule("app/db") => Action::body("{}");
    empty_200_secret_read_is_a_gap:
        R_READ_BODY, read_rule("app/db") => Action::body("");
}

/// A 307 to another origin is not followed: the token never reaches it, the folder is a gap.
/// The other origin answers an empty listing, which would delete if it were believed.
#[tokio::test]
async fn redirect_to_another_origin_never_carries_the_token() {
    let other = Recorder::start(
        Response::new(200, br#"{"data":{"keys":[]}}"#.to_vec())
            .with_header("Content-Type", "application/json"),
    );
    let origin = other.url();
    vault_gap(
        R_REDIRECT,
        move |c| c.list_rule("app/").then(Action::redirect(&origin)),
        "app/",
    )
    .await;
    assert!(
        !other.saw_header("x-vault-token"),
        "the Vault token reached another origin"
    );
    assert!(
        other.requests().is_empty(),
        "a cross-origin redirect was followed: {:?}",
        other.requests()
    );
}

// ---------------------------------------------------------------------------------------------
// Vault 500s and connection resets mid-listing
// ---------------------------------------------------------------------------------------------

/// Transient: the first two answers for a subfolder are a 500 and a reset; the client retries
/// and the run is a normal, complete one.
#[tokio::test]
async fn transient_vault_500s_and_resets_mid_listing_are_retried() {
    let c = Case::new(R_VAULT_5XX, "").await;
    let before = c.baseline().await;
    c.put("other/x", json!({"v": 2})).await;
    let e500 = c.vault.add(
        c.list_rule("app/")
            .then(Action::status(
                500,
                r#"{"errors":["injected: internal error"]}"#,
            ))
            .times(2),
    );
    let reset = c.vault.add(
        c.list_rule("app/deep/")
            .then(Action::ResetBeforeForward)
            .times(2),
    );
    let run = c.run(&[]);
    run.success().stdout_has(&plan_counts("t", 0, 1, 0, 4, 1));
    assert_eq!((c.vault.hits(e500), c.vault.hits(reset)), (2, 2));
    assert!(
        c.vault.matched(e500) >= 3 && c.vault.matched(reset) >= 3,
        "each folder was listed again after its faults"
    );
    c.after_fault(&before).await;
    c.converge().await;
}

/// Persistent: a subfolder answers 500 (or resets) every time. Vault is failing, so the whole
/// run fails before anything is written — no update, no deletion — and says which path.
#[tokio::test]
async fn persistent_vault_500s_and_resets_fail_the_run_and_write_nothing() {
    let c = Case::new(R_VAULT_5XX, "").await;
    let before = c.baseline().await;
    c.put("other/x", json!({"v": 2})).await;

    let e500 = c.vault.add(c.list_rule("app/").then(Action::status(
        500,
        r#"{"errors":["injected: internal error"]}"#,
    )));
    for args in [&[][..], &["--output", "json"][..]] {
        let run = c.run(args);
        run.code(1).stderr_has("500").stderr_has("app/");
        assert!(!run.stdout.contains("Result for t"), "{}", run.stdout);
    }
    assert!(c.vault.hits(e500) >= 2 * 4, "retried before giving up");
    c.vault.clear();
    c.vault
        .add(c.list_rule("app/deep/").then(Action::ResetBeforeForward));
    let run = c.run(&[]);
    run.code(1)
        .stderr_has("cannot reach Vault")
        .stderr_has("app/deep/");

    let after = c.snapshot().await;
    assert_eq!(
        versions(&before.listed),
        versions(&after.listed),
        "a failed Vault read writes nothing at all"
    );
    assert_unmanaged_untouched(&c, &before, &after);
    c.converge().await;
}

// ---------------------------------------------------------------------------------------------
// Bad data at the source
// ---------------------------------------------------------------------------------------------

/// A secret nested deeper than serde_json's recursion limit (128), written straight to OpenBao:
/// a clear error or gap naming it, never a crash; nothing deleted.
#[tokio::test]
async fn a_secret_nested_deeper_than_the_parser_limit_is_a_gap_not_a_crash() {
    let c = Case::new(R_DEEP_AND_DENIED, "").await;
    let before = c.baseline().await;
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!({ "n": deep });
    }
    // A managed secret becomes unreadable: with a wrong "missing", it would be deleted.
    c.w.put(&format!("{}/base/app/db", c.id), deep).await;
    let text = c.run(&[]);
    let json = c.run(&["--output", "json"]);
    for run in [&text, &json] {
        run.code(1).stderr_has("`app/db`");
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let after = c.after_fault(&before).await;
    assert_eq!(
        before.values[&c.name("app/db")],
        after.values[&c.name("app/db")],
        "the unreadable secret keeps its last good value"
    );
    // Fixing the data converges.
    c.put("app/db", json!({"user": "app", "password": "pw-db-2"}))
        .await;
    c.converge().await;
    assert_held_reported(&text, &json, "app/db");
}

/// A token that may not read one secret (an OpenBao policy): no deletion planned, the plan
/// says why, the run exits 1 naming the secret; a token that may read it converges.
#[tokio::test]
async fn a_token_that_cannot_read_one_secret_plans_no_deletion() {
    let mut c = Case::new(R_DEEP_AND_DENIED, "").await;
    let before = c.baseline().await;
    let policy = format!("deny-{}", c.id);
    let id = &c.id;
    // Straight to OpenBao with the root token, not through the proxy.
    c.w.vault(
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{policy}"),
        Some(json!({ "policy": format!(
            r#"path "secret/metadata/{id}/*" {{ capabilities = ["list", "read"] }}
path "secret/data/{id}/*" {{ capabilities = ["read"] }}
path "secret/data/{id}/base/app/db" {{ capabilities = ["deny"] }}"#
        )})),
    )
    .await;
    let created =
        c.w.vault(
            reqwest::Method::POST,
            "auth/token/create",
            Some(json!({"policies": [policy], "ttl": "10m"})),
        )
        .await;
    c.token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    c.put("other/x", json!({"v": 2})).await;

    let text = c.run(&[]);
    let json = c.run(&["--output", "json"]);
    for run in [&text, &json] {
        run.code(1)
            .stderr_has("`app/db`")
            .stderr_has("permission denied");
    }
    assert!(
        text.plan_line("t").contains(" 0 to delete"),
        "{}",
        text.stdout
    );
    let after = c.after_fault(&before).await;
    assert_eq!(after.values[&c.name("other/x")], r#"{"v":2}"#);
    c.token = c.w.vault_token.clone();
    c.converge().await;
    assert_held_reported(&text, &json, "app/db");
}

// ---------------------------------------------------------------------------------------------
// AWS faults on writes
// ---------------------------------------------------------------------------------------------

/// One round of changes in Vault for the AWS-fault tests, applied in this order (one write at
/// a time with `concurrency: 1`): `app/api` and `app/db` are updated, `new/<round>` created,
/// `other/x` and `top` updated.
struct Round {
    api: String,
    new: String,
    top: String,
    /// Every secret the round updates.
    updated: [&'static str; 4],
}

async fn round(c: &Case, n: u32) -> Round {
    c.put(
        "app/api",
        json!({"key": format!("k-api-{}", n + 1), "limits": {"rps": 10}}),
    )
    .await;
    c.put(
        "app/db",
        json!({"user": "app", "password": format!("pw-db-{}", n + 1)}),
    )
    .await;
    c.put(&format!("new/{n}"), json!({"n": n})).await;
    c.put("other/x", json!({"v": n + 1})).await;
    c.put("top", json!({"v": format!("top-{n}")})).await;
    Round {
        api: "app/api".into(),
        new: format!("new/{n}"),
        top: "top".into(),
        updated: ["app/api", "app/db", "other/x", "top"],
    }
}

/// Every write of a round is a single new version: no duplicates, no lost versions.
#[track_caller]
fn assert_one_new_version_each(c: &Case, before: &Snapshot, after: &Snapshot, r: &Round) {
    for rel in r.updated {
        let name = c.name(rel);
        let (old, new) = (&before.listed[&name], &after.listed[&name]);
        assert_eq!(
            new.versions.len(),
            old.versions.len() + 1,
            "{name}: exactly one new version: {:?} -> {:?}",
            old.versions,
            new.versions
        );
    }
    let created = &after.listed[&c.name(&r.new)];
    assert_eq!(created.versions.len(), 1, "{:?}", created.versions);
    assert_managed(after, &c.name(&r.new));
}

/// After a rollback the target is exactly where it was: same current versions, values and
/// ownership tags; the secrets the rolled-back run created (`new/1` .. `new/<round>`) are gone.
#[track_caller]
fn assert_rolled_back(c: &Case, before: &Snapshot, after: &Snapshot, round: u32) {
    for rel in MANAGED {
        let name = c.name(rel);
        let (old, new) = (&before.listed[&name], &after.listed[&name]);
        assert_eq!(
            old.current(),
            new.current(),
            "{name}: AWSCURRENT moved back"
        );
        assert_eq!(old.tags, new.tags, "{name}: ownership tags restored");
        assert_eq!(before.values[&name], after.values[&name], "{name}: value");
    }
    for n in 1..=round {
        let name = c.name(&format!("new/{n}"));
        assert!(
            after.listed.get(&name).is_none_or(|l| l.deleted),
            "the created {name} was removed"
        );
    }
}

/// The first answers to writes are 500s and throttling (HTTP 400 `ThrottlingException`): the
/// SDK retries them and the run succeeds with each write made once.
#[tokio::test]
async fn transient_aws_500s_and_throttling_on_writes_are_retried() {
    let c = Case::new(R_AWS_TRANSIENT, "    concurrency: 1\n").await;
    let before = c.baseline().await;
    let r = round(&c, 1).await;
    let rules = [
        c.aws.add(
            c.aws_rule("PutSecretValue", &r.api)
                .then(Action::aws_error(500, "InternalServiceError", "injected"))
                .times(2),
        ),
        // One throttling answer: retried after 250–500 ms.
        c.aws.add(
            c.aws_rule("CreateSecret", &r.new)
                .then(Action::aws_error(
                    400,
                    "ThrottlingException",
                    "Rate exceeded",
                ))
                .times(1),
        ),
        c.aws.add(
            c.aws_rule("PutSecretValue", &r.top)
                .then(Action::aws_error(503, "ServiceUnavailable", "injected"))
                .times(2),
        ),
    ];
    let run = c.run(&["--output", "json"]);
    run.success();
    let t = json_target(&run, "t");
    assert_eq!(t["failed"], false, "{t:#}");
    assert_eq!(
        (
            &t["result"]["created"],
            &t["result"]["updated"],
            &t["result"]["rolled_back"]
        ),
        (&json!(1), &json!(4), &json!(0)),
        "{t:#}"
    );
    assert_eq!(rules.map(|id| c.aws.hits(id)), [2, 1, 2]);
    let after = c.after_fault(&before).await;
    assert_one_new_version_each(&c, &before, &after, &r);
    c.converge().await;
}

/// The writes a round makes before the one to `fail` (changes are applied in path order), as
/// (created, updated).
fn written_before(fail: &str, round: u32) -> (u64, u64) {
    let created = (1..=round)
        .filter(|k| format!("new/{k}").as_str() < fail)
        .count();
    let updated = ["app/api", "app/db", "other/x", "top"]
        .iter()
        .filter(|u| **u < fail)
        .count();
    (created as u64, updated as u64)
}

/// A write (the `PutSecretValue` of `fail`) that keeps failing with `status`/`code`: the
/// target is rolled back, the report says so (one round for each of `outputs`, the arguments
/// of a run: every round updates four secrets and creates `new/<round>`), the run exits 1, and
/// a clean re-run converges.
async fn persistent_write_failure(
    region: &'static str,
    (status, code, kind): (u16, &str, &str),
    fail: &str,
    outputs: &[&[&str]],
) {
    let c = Case::new(region, "    concurrency: 1\n").await;
    let before = c.baseline().await;
    for (n, args) in (1..).zip(outputs) {
        round(&c, n).await;
        let rule = c.aws.add(
            c.aws_rule("PutSecretValue", fail)
                .then(Action::aws_error(status, code, "injected")),
        );
        let run = c.run(args);
        run.code(1);
        assert_eq!(
            c.aws.hits(rule),
            5,
            "the retry layer made `retries.aws_max_attempts` (default 5) attempts"
        );
        let (created, updated) = written_before(fail, n);
        if args.contains(&"json") {
            let t = json_target(&run, "t");
            assert_eq!(t["failed"], true, "{t:#}");
            assert_eq!(t["result"]["status"], "rolled_back", "{t:#}");
            assert_eq!(t["result"]["left_changed"], json!([]), "{t:#}");
            let failure = t["result"]["failure"].as_str().unwrap_or_default();
            assert!(
                failure.contains(&c.name(fail))
                    && failure.contains(code)
                    && failure.contains("(retries: 4)"),
                "{t:#}"
            );
            assert_eq!(t["result"]["failure_kind"], kind, "{t:#}");
            assert_eq!(
                (&t["result"]["created"], &t["result"]["updated"]),
                (&json!(created), &json!(updated)),
                "{t:#}"
            );
            assert_eq!(t["result"]["rolled_back"], created + updated, "{t:#}");
            assert_eq!(t["result"]["rollback_failures"], json!([]), "{t:#}");
        } else {
            run.stdout_has(&format!(
                "Result for t: ROLLED BACK after a failure: created {created}, updated {updated}, deleted 0, retagged 0, then rolled back {}; nothing left changed",
                created + updated
            ))
            // The kind, AWS's request id (the proxy answers with the zero id), what was being
            // done, the retries, then AWS's code.
            .stdout_has(&format!(
                "  failure ({kind}): [req=00000000-0000-0000-0000-000000000000] writing `{}` failed after ",
                c.name(fail)
            ))
            .stdout_has(&format!("ms (retries: 4): {code}: injected"))
            .stdout_lacks("NOT rolled back")
            .stdout_lacks("left changed:");
        }
        let after = c.snapshot().await;
        assert_rolled_back(&c, &before, &after, n);
        assert_unmanaged_untouched(&c, &before, &after);
        c.aws.clear();
    }
    c.converge().await;
}

/// Three updates and a creation are written before `top` fails, then undone.
#[tokio::test]
async fn persistent_aws_500_on_a_write_rolls_the_target_back() {
    let e500 = (500, "InternalServiceError", "unreachable");
    persistent_write_failure(R_AWS_500, e500, "top", &[&[], &["--output", "json"]]).await;
}

/// JSON round only, failing on the second write (one update to undo); the four retries wait
/// about 4 s in all (throttling backs off from 250–500 ms, doubling).
#[tokio::test]
async fn persistent_aws_throttling_on_a_write_rolls_the_target_back() {
    let throttled = (400, "ThrottlingException", "throttled");
    persistent_write_failure(
        R_AWS_THROTTLE,
        throttled,
        "app/db",
        &[&["--output", "json"]],
    )
    .await;
}

/// The connection is reset after a `PutSecretValue` and a `CreateSecret` landed (the answer is
/// lost, once): the retry with the same client request token makes no duplicate, the report
/// does not call the writes failed, and a re-run has nothing to do.
#[tokio::test]
async fn reset_after_a_landed_write_makes_no_duplicate_and_is_not_a_failure() {
    let c = Case::new(R_AWS_RESET, "    concurrency: 1\n").await;
    let mut before = c.baseline().await;
    for (n, args) in [(1, &[][..]), (2, &["--output", "json"][..])] {
        let r = round(&c, n).await;
        let put = c.aws.add(
            c.aws_rule("PutSecretValue", &r.api)
                .then(Action::ResetAfterForward)
                .times(1),
        );
        let create = c.aws.add(
            c.aws_rule("CreateSecret", &r.new)
                .then(Action::ResetAfterForward)
                .times(1),
        );
        let run = c.run(args);
        run.success();
        assert_eq!((c.aws.hits(put), c.aws.hits(create)), (1, 1));
        if args.is_empty() {
            run.stdout_has("Result for t: created 1, updated 4, deleted 0")
                .stdout_lacks("FAILED");
        } else {
            let t = json_target(&run, "t");
            assert_eq!(t["failed"], false, "{t:#}");
            assert_eq!(
                (&t["result"]["created"], &t["result"]["updated"]),
                (&json!(1), &json!(4)),
                "{t:#}"
            );
        }
        let after = c.after_fault(&before).await;
        assert_one_new_version_each(&c, &before, &after, &r);
        c.aws.clear();
        before = after;
    }
    c.converge().await;
}

/// Every attempt of a `PutSecretValue` and a `CreateSecret` lands and loses its answer, so the
/// SDK gives up: the tool looks for its client request token, finds the writes landed, and
/// reports success — no duplicate, nothing rolled back, a re-run has nothing to do.
#[tokio::test]
async fn a_write_whose_every_answer_is_lost_is_resolved_as_landed() {
    // Two writes in flight at once: the SDK's retries of both overlap.
    let c = Case::new(R_AWS_RESET_ALWAYS, "    concurrency: 2\n").await;
    let before = c.baseline().await;
    let r = round(&c, 1).await;
    let put = c.aws.add(
        c.aws_rule("PutSecretValue", &r.api)
            .then(Action::ResetAfterForward),
    );
    let create = c.aws.add(
        c.aws_rule("CreateSecret", &r.new)
            .then(Action::ResetAfterForward),
    );
    let run = c.run(&["--output", "json"]);
    run.success();
    assert!(c.aws.hits(put) > 1 && c.aws.hits(create) > 1);
    let t = json_target(&run, "t");
    assert_eq!(t["failed"], false, "{t:#}");
    assert_eq!(
        (
            &t["result"]["created"],
            &t["result"]["updated"],
            &t["result"]["rolled_back"]
        ),
        (&json!(1), &json!(4), &json!(0)),
        "{t:#}"
    );
    let after = c.after_fault(&before).await;
    assert_one_new_version_each(&c, &before, &after, &r);
    c.converge().await;
}

// ---------------------------------------------------------------------------------------------
// SIGTERM mid-apply
// ---------------------------------------------------------------------------------------------

fn spawn_pipeline(
    w: &World,
    config: &std::path::Path,
    args: &[&str],
    vault: &Proxy,
    aws: &Proxy,
    token: &str,
) -> std::process::Child {
    let mut all = vec!["pipeline".to_string(), "--config".to_string()];
    all.push(config.to_str().expect("utf-8 path").to_string());
    all.extend(args.iter().map(|a| a.to_string()));
    let (vault, aws) = (vault.url(), aws.url());
    w.command(
        &all,
        &[
            ("VAULT_ADDR", vault.as_str()),
            ("VAULT_TOKEN", token),
            ("AWS_ENDPOINT_URL", aws.as_str()),
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap_or_else(|e| panic!("start {}: {e}", w.vault_addr))
}

/// Waits for a child to end; kills it and fails the test if it runs longer than `limit` (a
/// hang guard, not a timing assertion: every case here ends within seconds when it works).
#[track_caller]
fn finish(child: std::process::Child, limit: Duration) -> Run {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for secretsync"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let out = rx
                .recv()
                .expect("the killed child's output")
                .expect("output");
            panic!(
                "secretsync did not finish within {limit:?} (killed)\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: vec!["pipeline".into()],
    }
}

/// Writes of target `t1` are slowed by the proxy; SIGTERM arrives while the second is in
/// flight. The run stops: `t1` is rolled back (or reports what it left written), `t2` (which
/// imports `t1`) is reported as not started and writes nothing, the exit code is non-zero — in
/// the text and JSON reports alike. A clean re-run converges.
#[tokio::test]
async fn sigterm_mid_apply_rolls_back_and_later_targets_do_not_start() {
    let w = World::from_env().await;
    let id = unique("term");
    let vault = Proxy::start(&w.vault_addr);
    let aws = Proxy::start(&w.aws_endpoint);
    let names = ["a", "b", "c", "d"];
    for n in names {
        w.put(&format!("{id}/base/{n}"), json!({ "n": n })).await;
    }
    let config = w.config(&format!(
        "vault_sources:
  - mount: secret/{id}/base/
    name: base
targets:
  - name: t2
    type: aws_secretsmanager
    region: {R_SIGTERM}
    secret_prefix: {id}/t2/
    imports: [t1]
    delete_orphans: true
  - name: t1
    type: aws_secretsmanager
    region: {R_SIGTERM}
    secret_prefix: {id}/t1/
    imports: [base]
    delete_orphans: true
    concurrency: 1
max_parallel_targets: 1
"
    ));
    let sm = w.sm(R_SIGTERM);
    let prefix = format!("{id}/");
    // One target at a time, so that t2 is still waiting for its turn when the signal comes
    // (with targets in parallel, those applying at that moment are rolled back likewise): from
    // the config's `max_parallel_targets`, and from the flag.
    for args in [
        &[][..],
        &["--parallel-targets", "1", "--output", "json"][..],
    ] {
        aws.clear();
        let slow = aws.add(
            Rule::amz_target("secretsmanager.CreateSecret")
                .body_contains(&format!("\"{id}/t1/"))
                .then(Action::Delay(Duration::from_millis(300))),
        );
        let child = spawn_pipeline(&w, &config, args, &vault, &aws, &w.vault_token);
        // The first write landed and the second is in flight.
        assert!(
            aws.wait_for_hits(slow, 2, Duration::from_secs(60)),
            "the writes of t1 never started"
        );
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let run = finish(child, Duration::from_secs(60));
        assert_ne!(run.code, 0, "a cancelled run fails\n{}", run.stdout);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let left: Vec<String>;
        if !args.contains(&"json") {
            // Rolled back, or partly: then the names left changed are listed.
            let t1 = run.line("Result for t1:");
            assert!(
                t1.contains("ROLLED BACK after a failure: created ")
                    || t1.contains("PARTIALLY APPLIED after a failure: created "),
                "{t1}"
            );
            run.stdout_has("  failure (cancelled): cancelled by SIGTERM")
                .stdout_has("Result for t2: NOT STARTED")
                .stdout_has("  failure (cancelled): not started: cancelled by SIGTERM");
            left = run
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("left changed: "))
                .map(|l| l.split(", ").map(str::to_string).collect())
                .unwrap_or_default();
        } else {
            let t1 = json_target(&run, "t1");
            let t2 = json_target(&run, "t2");
            assert_eq!(t1["failed"], true, "{t1:#}");
            assert_eq!(t1["result"]["cancelled"], true, "{t1:#}");
            assert!(
                t1["result"]["failure"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("SIGTERM"),
                "{t1:#}"
            );
            assert_eq!(t2["not_started"], true, "{t2:#}");
            assert_eq!(t2["result"]["status"], "not_started", "{t2:#}");
            let created = t1["result"]["created"].as_u64().unwrap();
            assert!(created >= 1, "{t1:#}");
            left = t1["result"]["left_changed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                t1["result"]["rolled_back"].as_u64().unwrap() + left.len() as u64,
                created,
                "every write is either rolled back or named as left changed: {t1:#}"
            );
        }
        // What is live in t1 is exactly what the report names as left written; t2 is empty.
        let live: Vec<String> = sm
            .list(&prefix)
            .await
            .into_iter()
            .filter(|(_, l)| !l.deleted)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(live, left, "live secrets vs. the report\n{}", run.stdout);
        assert!(live.iter().all(|n| n.starts_with(&format!("{id}/t1/"))));
    }
    // A clean re-run converges.
    aws.clear();
    let run = spawn_pipeline(&w, &config, &[], &vault, &aws, &w.vault_token);
    let run = finish(run, Duration::from_secs(60));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let again = finish(
        spawn_pipeline(&w, &config, &[], &vault, &aws, &w.vault_token),
        Duration::from_secs(60),
    );
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    again
        .stdout_has(&plan_counts("t1", 0, 0, 0, 4, 0))
        .stdout_has(&plan_counts("t2", 0, 0, 0, 4, 0));
    let s = snapshot(&sm, &prefix).await;
    assert_eq!(s.values.len(), 8, "{:?}", s.values.keys());
    assert_no_plain_hash_in_tags(&s);
}

// ---------------------------------------------------------------------------------------------
// Two deployments, one account and region, one target name
// ---------------------------------------------------------------------------------------------

/// Two configs, each with a target `production` and `delete_orphans: true`, in one account and
/// region, with prefixes `prefix_a` and `prefix_b` (overlapping). Neither deletes the other's
/// secrets; a name both desire is a failure of the second, naming the first's owner.
async fn two_deployments(region: &str, owners: Option<(&str, &str)>, prefix: &str, id: &str) {
    let w = World::from_env().await;
    let config = |side: &str, owner: Option<&str>| {
        w.config(&format!(
            "{}vault_sources:
  - mount: secret/{id}/{side}/
    name: src
targets:
  - name: production
    type: aws_secretsmanager
    region: {region}
    secret_prefix: \"{prefix}\"
    imports: [src]
    delete_orphans: true
",
            owner.map(|o| format!("owner: {o}\n")).unwrap_or_default()
        ))
    };
    let a = config("a", owners.map(|o| o.0));
    let b = config("b", owners.map(|o| o.1));
    let x = format!("{id}-x");
    let z = format!("{id}-z");
    let shared = format!("{id}-shared");
    w.put(&format!("{id}/a/{x}"), json!({"from": "a"})).await;
    w.put(&format!("{id}/a/{shared}"), json!({"from": "a"}))
        .await;
    w.put(&format!("{id}/b/{z}"), json!({"from": "b"})).await;
    w.put(&format!("{id}/b/{shared}"), json!({"from": "b"}))
        .await;
    let sm = w.sm(region);
    let name = |n: &str| format!("{prefix}{n}");
    let mine = format!("{prefix}{id}-");

    w.pipeline(&a, &[])
        .success()
        .stdout_has(&plan_counts("production", 2, 0, 0, 0, 0));
    let owner_a = sm.list(&mine).await[&name(&x)].tags["secretsync:owner"].clone();

    // B: creates its own, fails on the shared name naming A's owner, deletes nothing of A's.
    for args in [&[][..], &["--output", "json"][..]] {
        let run = w.pipeline(&b, args);
        run.code(1);
        if args.is_empty() {
            let line = run.change("!", &name(&shared));
            assert!(
                line.contains("another deployment") && line.contains(&owner_a),
                "{line}"
            );
            run.stdout_has(" 0 to delete");
        } else {
            let doc = run.json();
            let change = doc["changes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name(&shared))
                .cloned()
                .unwrap_or_else(|| panic!("{doc:#}"));
            assert_eq!(change["type"], "skipped", "{change:#}");
            assert!(
                change["reason"].as_str().unwrap().contains(&owner_a),
                "{change:#}"
            );
            assert_eq!(json_target(&run, "production")["failed"], true);
            assert_eq!(doc["summary"]["deleted"], 0);
        }
    }
    // A again: nothing to do; B's secret is not its orphan.
    w.pipeline(&a, &[])
        .success()
        .stdout_has(&plan_counts("production", 0, 0, 0, 2, 0));

    let s = snapshot(&sm, &mine).await;
    let live: Vec<&String> = s
        .listed
        .iter()
        .filter(|(_, l)| !l.deleted)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        live,
        [&name(&shared), &name(&x), &name(&z)],
        "{:#?}",
        s.listed
    );
    assert_eq!(
        s.values[&name(&shared)],
        r#"{"from":"a"}"#,
        "A's value is kept"
    );
    let owner_b = s.listed[&name(&z)].tags["secretsync:owner"].clone();
    assert_ne!(owner_a, owner_b, "two deployments have two owner scopes");
    if let Some((oa, ob)) = owners {
        assert_eq!((owner_a.as_str(), owner_b.as_str()), (oa, ob));
    }
    assert_no_plain_hash_in_tags(&s);
}

#[tokio::test]
async fn two_configs_with_explicit_owners_and_an_empty_prefix_never_delete_each_other() {
    let id = unique("own");
    let (a, b) = (format!("team-a-{id}"), format!("team-b-{id}"));
    two_deployments(R_OWNERS_EXPLICIT, Some((&a, &b)), "", &id).await;
}

#[tokio::test]
async fn two_configs_with_default_owners_and_one_prefix_never_delete_each_other() {
    let id = unique("own");
    two_deployments(R_OWNERS_DEFAULT, None, &format!("{id}/"), &id).await;
}

// ---------------------------------------------------------------------------------------------
// Fingerprints in tags are keyed
// ---------------------------------------------------------------------------------------------

/// Values of many shapes, created then updated: no tag of any secret the tool wrote holds the
/// plain SHA-256 of the value (of its canonical JSON or of what is stored).
#[tokio::test]
async fn tags_hold_no_plain_sha256_of_any_value() {
    let c = Case::new(R_TAGS, "").await;
    c.baseline().await;
    let values = [
        ("shapes/empty", json!({})),
        (
            "shapes/nested",
            json!({"a": {"b": {"c": [1, 2, {"d": null}]}}, "z": true}),
        ),
        (
            "shapes/unicode",
            json!({"pässword": "ünïcødé ✓", "emoji": "🔑"}),
        ),
        (
            "shapes/numbers",
            json!({"int": 42, "neg": -1, "float": 1.5, "big": 9007199254740991u64}),
        ),
        ("shapes/guessable", json!({"password": "hunter2"})),
    ];
    for (rel, v) in &values {
        c.put(rel, v.clone()).await;
    }
    c.run(&[]).success();
    c.put("shapes/guessable", json!({"password": "hunter3"}))
        .await;
    c.run(&[]).success();
    let s = c.snapshot().await;
    for (rel, _) in &values {
        assert_managed(&s, &c.name(rel));
    }
    assert_no_plain_hash_in_tags(&s);
    // The hash of the guessed values themselves is nowhere either.
    for guess in [r#"{"password":"hunter2"}"#, r#"{"password":"hunter3"}"#] {
        let h = hex::encode(Sha256::digest(guess.as_bytes()));
        for (name, l) in &s.listed {
            assert!(
                l.tags
                    .values()
                    .all(|v| !v.to_ascii_lowercase().contains(&h)),
                "{name} has a tag with the plain hash of {guess}"
            );
        }
    }
    c.converge().await;
}

// ---------------------------------------------------------------------------------------------
// The retry layer: attempts from the config, what is not retried, what the failure was
// ---------------------------------------------------------------------------------------------

/// The JSON log line of a failed target (`--log-format json`): its fields.
#[track_caller]
fn failure_log(run: &Run) -> Value {
    run.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "target failed")
        .map(|v| v["fields"].clone())
        .unwrap_or_else(|| panic!("no `target failed` log line\n{}", run.stderr))
}

/// `retries.aws_max_attempts` is how many attempts an AWS call gets: a listing that keeps
/// answering 500 is sent exactly that often, then the target fails as `unreachable`, with the
/// retries in its message and the failed call's facts as JSON log fields. An expired token is
/// not retried at all and fails as `auth`, saying what to do. Nothing is written either time.
#[tokio::test]
async fn aws_attempts_follow_the_config_and_failures_say_their_kind() {
    let c = Case::new(R_RETRIES, "").await;
    let before = c.baseline().await;
    let mut yaml = std::fs::read_to_string(&c.config).unwrap();
    yaml.push_str("retries:\n  aws_max_attempts: 2\n");
    std::fs::write(&c.config, yaml).unwrap();
    c.put("other/x", json!({"v": 2})).await;
    let args = ["--output", "json", "--log-format", "json"];

    let e500 = c.aws.add(
        Rule::amz_target("secretsmanager.ListSecrets").then(Action::aws_error(
            500,
            "InternalServiceError",
            "injected",
        )),
    );
    let run = c.run(&args);
    run.code(1);
    assert_eq!(c.aws.hits(e500), 2, "two attempts, as configured");
    let t = json_target(&run, "t");
    assert_eq!(t["result"]["status"], "failed", "{t:#}");
    assert_eq!(t["result"]["failure_kind"], "unreachable", "{t:#}");
    let failure = t["result"]["failure"].as_str().unwrap_or_default();
    assert!(
        failure.starts_with(
            "[req=00000000-0000-0000-0000-000000000000] listing secrets of target `t` failed after "
        ) && failure.contains("ms (retries: 1): InternalServiceError: injected"),
        "{failure}"
    );
    let log = failure_log(&run);
    assert_eq!(log["target_name"], "t", "{log:#}");
    assert_eq!(log["failure_kind"], "unreachable", "{log:#}");
    assert_eq!(log["operation"], "ListSecrets", "{log:#}");
    assert_eq!(log["attempts"], 2, "{log:#}");
    assert_eq!(
        log["request_id"], "00000000-0000-0000-0000-000000000000",
        "{log:#}"
    );
    assert!(log["elapsed_ms"].as_u64().is_some(), "{log:#}");
    assert_eq!(log["error"].as_str(), Some(failure), "{log:#}");
    c.aws.clear();

    let expired =
        c.aws.add(
            Rule::amz_target("secretsmanager.ListSecrets").then(Action::aws_error(
                400,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            )),
        );
    let run = c.run(&args);
    run.code(1);
    assert_eq!(c.aws.hits(expired), 1, "a credential error is not retried");
    let t = json_target(&run, "t");
    assert_eq!(t["result"]["failure_kind"], "auth", "{t:#}");
    let failure = t["result"]["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("(retries: 0): ExpiredTokenException:")
            && failure.ends_with("; refresh the AWS credentials"),
        "{failure}"
    );
    assert_eq!(failure_log(&run)["failure_kind"], "auth");
    c.aws.clear();

    c.after_fault(&before).await;
    c.converge().await;
}

/// `retries.vault_max_attempts` is how many attempts a Vault call gets: a folder whose listing
/// keeps answering 503 is listed exactly that often, and the run fails naming it.
#[tokio::test]
async fn vault_attempts_follow_the_config() {
    let c = Case::new(R_RETRIES_VAULT, "").await;
    let before = c.baseline().await;
    let mut yaml = std::fs::read_to_string(&c.config).unwrap();
    yaml.push_str("retries:\n  vault_max_attempts: 3\n");
    std::fs::write(&c.config, yaml).unwrap();
    let e503 = c.vault.add(
        c.list_rule("app/")
            .then(Action::status(503, r#"{"errors":["injected: sealed"]}"#)),
    );
    let run = c.run(&[]);
    run.code(1)
        .stderr_has("failed to list secrets at path")
        .stderr_has("app/")
        .stderr_has("(retries: 2): Vault answered 503");
    assert_eq!(c.vault.hits(e503), 3, "three attempts, as configured");
    c.vault.clear();
    c.after_fault(&before).await;
    c.converge().await;
}
