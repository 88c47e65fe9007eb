//! Discovery, end to end: the real binary against moto's AWS Organizations (and OpenBao for
//! the secrets). Each test builds its own subtree of OUs (three levels) with tagged accounts in
//! the one organization moto keeps, and scopes its discovery to that subtree, so tests never
//! see each other's accounts. Discovered targets write into their own accounts through the
//! `{account_id}` role (moto keeps each assumed account's secrets apart).

mod support_sync;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support_sync::{Run, World, unique};

/// The organization moto keeps (created once; later tests reuse it) and its root id.
async fn root(w: &World) -> String {
    let org = w.organizations();
    if org.describe_organization().send().await.is_err() {
        // Two tests may race to create it: whoever loses reuses the winner's.
        let _ = org
            .create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await;
    }
    let roots = org.list_roots().send().await.expect("ListRoots");
    roots.roots()[0].id().expect("a root id").to_string()
}

async fn ou(w: &World, parent: &str, name: &str) -> String {
    w.organizations()
        .create_organizational_unit()
        .parent_id(parent)
        .name(name)
        .send()
        .await
        .expect("CreateOrganizationalUnit")
        .organizational_unit()
        .and_then(|o| o.id())
        .expect("an OU id")
        .to_string()
}

/// Creates an account under `parent` with `tags`; returns its id.
async fn account(w: &World, root: &str, parent: &str, name: &str, tags: &[(&str, &str)]) -> String {
    let org = w.organizations();
    let created = org
        .create_account()
        .account_name(name)
        .email(format!("{name}@example.com"))
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| {
                    aws_sdk_organizations::types::Tag::builder()
                        .key(*k)
                        .value(*v)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .expect("CreateAccount");
    let id = created
        .create_account_status()
        .and_then(|s| s.account_id())
        .expect("an account id")
        .to_string();
    org.move_account()
        .account_id(&id)
        .source_parent_id(root)
        .destination_parent_id(parent)
        .send()
        .await
        .expect("MoveAccount");
    id
}

async fn close(w: &World, id: &str) {
    w.organizations()
        .close_account()
        .account_id(id)
        .send()
        .await
        .expect("CloseAccount");
}

/// The binary with a cache directory of this test's own.
fn run(w: &World, cache: &std::path::Path, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    w.run(&args, &[("XDG_CACHE_HOME", cache.to_str().unwrap())])
}

fn ids(doc: &Value, block: usize) -> Vec<String> {
    let mut v: Vec<String> = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["block"] == block)
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Tag wildcards with `match: all`, `match: any` with an OU that stops at its own level,
/// suspended accounts left out, two blocks in one config; the cache answers a second run with
/// no Organizations call, `--refresh-discovery` asks again.
#[tokio::test]
async fn discover_selects_by_tags_ous_and_state_and_caches_the_answer() {
    let w = World::from_env().await;
    let id = unique("dsc");
    let root = root(&w).await;
    let top = ou(&w, &root, &format!("top-{id}")).await;
    let prod = ou(&w, &top, "prod").await;
    let web = ou(&w, &prod, "web").await;
    let stag = ou(&w, &top, "staging").await;
    let env = |e: &str| format!("{e}-{id}");
    let a1 = account(
        &w,
        &root,
        &web,
        &format!("{id}-web"),
        &[("Environment", &env("prod-eu"))],
    )
    .await;
    let a2 = account(
        &w,
        &root,
        &prod,
        &format!("{id}-core"),
        &[("Environment", &env("production"))],
    )
    .await;
    let a3 = account(
        &w,
        &root,
        &stag,
        &format!("{id}-stag"),
        &[("Environment", &env("staging"))],
    )
    .await;
    let a4 = account(
        &w,
        &root,
        &web,
        &format!("{id}-old"),
        &[("Environment", &env("prod-us"))],
    )
    .await;
    let a5 = account(&w, &root, &top, &format!("{id}-misc"), &[]).await;
    close(&w, &a4).await;
    let config = w.config(&format!(
        r#"vault_sources:
  - mount: secret/{id}/base/
    name: base
discovery:
  - type: aws_organizations
    match: all
    filters:
      - tag: Environment
        values: ["prod*-{id}", "nothing"]
      - ou: {top}
    target_template:
      name: "{{account_name}}-{{region}}"
      regions: [us-east-1]
      imports: [base]
  - type: aws_organizations
    match: any
    filters:
      - tag: Environment
        values: ["staging-{id}"]
      - ou: {prod}
        include_nested: false
    exclude_accounts: ["{a5}"]
    target_template:
      name: "any-{{account_id}}"
      regions: [us-east-1]
      imports: [base]
"#
    ));
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{id}"));
    let c = config.to_str().unwrap();
    let r = run(&w, &cache, &["discover", "--config", c, "--output", "json"]);
    r.success();
    let doc = r.json();
    // Block 1: under `top`, tagged prod*: web (nested two levels down) and core; the closed
    // account is not ACTIVE.
    assert_eq!(
        ids(&doc, 0),
        sorted(vec![a1.clone(), a2.clone()]),
        "{doc:#}"
    );
    // Block 2: tagged staging, or directly in `prod` (not `prod/web`).
    assert_eq!(
        ids(&doc, 1),
        sorted(vec![a2.clone(), a3.clone()]),
        "{doc:#}"
    );
    let web_acct = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == a1.as_str())
        .unwrap()
        .clone();
    assert_eq!(web_acct["ou_path"], format!("Root/top-{id}/prod/web"));
    assert_eq!(web_acct["state"], "ACTIVE");
    let names: Vec<&str> = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&format!("{id}-web-us-east-1").as_str()),
        "{names:?}"
    );
    assert!(names.contains(&format!("any-{a3}").as_str()), "{names:?}");
    assert!(doc["blocks"][0]["calls"].as_u64().unwrap() > 0);
    assert_eq!(doc["blocks"][0]["cache_age_seconds"], Value::Null);

    // Cached: no call.
    let r = run(&w, &cache, &["discover", "--config", c, "--output", "json"]);
    r.success();
    let doc = r.json();
    assert_eq!(doc["blocks"][0]["calls"], 0, "{doc:#}");
    assert!(doc["blocks"][0]["cache_age_seconds"].is_u64(), "{doc:#}");
    assert_eq!(ids(&doc, 0), sorted(vec![a1.clone(), a2.clone()]));
    // Refreshed: asked again.
    let r = run(
        &w,
        &cache,
        &[
            "discover",
            "--config",
            c,
            "--output",
            "json",
            "--refresh-discovery",
        ],
    );
    r.success();
    assert!(r.json()["blocks"][0]["calls"].as_u64().unwrap() > 0);
    // The text form names the accounts and what matched.
    let r = run(&w, &cache, &["discover", "--config", c]);
    r.success()
        .stdout_has("Discovery block 1: 2 of ")
        .stdout_has(&format!("{a1}  {id}-web  ACTIVE  Root/top-{id}/prod/web"));
    // `validate --check-backends` runs discovery and counts; plain `validate` calls nothing.
    let r = run(&w, &cache, &["validate", "--config", c, "--check-backends"]);
    r.success()
        .stdout_has("discovery block 1: ")
        .stdout_has(" listed, 2 selected, 2 targets (cached answer, ");
    run(&w, &cache, &["validate", "--config", c])
        .success()
        .stdout_has("discovery 2 blocks (templates checked; `secretsync discover` runs it)");
    // `graph` marks the discovered targets.
    let r = run(&w, &cache, &["graph", "--config", c]);
    r.success()
        .stdout_has(&format!("{id}-web-us-east-1 [aws_secretsmanager"))
        .stdout_has(&format!("(discovered: account {a1}, us-east-1)"));
}

/// A full pipeline lands each discovered account's secrets in that account only, through the
/// `{account_id}` role, with its own overrides; an account closed between two runs leaves the
/// plan ("no longer discovered") and keeps its secrets; an Organizations answer of access
/// denied fails the run loudly, naming the call and the permission, and nothing is written.
#[tokio::test]
async fn pipeline_syncs_each_discovered_account_and_forgets_a_closed_one() {
    use secretsync_test_support::proxy::{Action, Proxy, Rule};
    let w = World::from_env().await;
    let id = unique("dsp");
    let root = root(&w).await;
    let top = ou(&w, &root, &format!("fleet-{id}")).await;
    let team = ou(&w, &top, "team").await;
    let b1 = account(&w, &root, &team, &format!("{id}-one"), &[("Team", "a")]).await;
    let b2 = account(&w, &root, &team, &format!("{id}-two"), &[("Team", "b")]).await;
    w.put(&format!("{id}/base/app/db"), json!({"user": "app"}))
        .await;
    let config = w.config(&format!(
        r#"vault_sources:
  - mount: secret/{id}/base/
    name: base
discovery:
  type: aws_organizations
  filters: [ {{ ou: {top} }} ]
  target_template:
    name: "{{account_name}}-{{region}}"
    regions: [eu-west-1]
    role_arn: "arn:aws:iam::{{account_id}}:role/SecretSync"
    secret_prefix: "{id}/"
    imports: [base]
    overrides: {{ account: "{{account_id}}", team: "{{tag:Team}}" }}
"#
    ));
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{id}"));
    let c = config.to_str().unwrap();
    let r = run(&w, &cache, &["pipeline", "--config", c]);
    r.success()
        .stdout_has(&format!("Plan for target {id}-one-eu-west-1: 1 to add"))
        .stdout_has(&format!("Plan for target {id}-two-eu-west-1: 1 to add"));
    for (acct, team) in [(&b1, "a"), (&b2, "b")] {
        let role = format!("arn:aws:iam::{acct}:role/SecretSync");
        let sm = w.sm_as(&role, acct, "eu-west-1").await;
        assert_eq!(
            sm.value(&format!("{id}/app/db")).await,
            json!({"account": acct, "team": team, "user": "app"}).to_string()
        );
    }
    // Nothing landed in the management account.
    assert!(w.sm("eu-west-1").list(&format!("{id}/")).await.is_empty());

    // Closed: no longer a target; its secrets stay.
    close(&w, &b2).await;
    let r = run(
        &w,
        &cache,
        &["pipeline", "--config", c, "--refresh-discovery"],
    );
    r.success()
        .stdout_has(&format!(
            "Target {id}-two-eu-west-1: no longer discovered (its account stopped matching); nothing is deleted in it"
        ))
        .stdout_lacks(&format!("Plan for target {id}-two-eu-west-1"));
    let role = format!("arn:aws:iam::{b2}:role/SecretSync");
    let sm = w.sm_as(&role, &b2, "eu-west-1").await;
    assert!(
        !sm.list(&format!("{id}/")).await.is_empty(),
        "its secrets are kept"
    );

    // Access denied by Organizations: the run fails naming the call and what to grant.
    let aws = Proxy::start(&w.aws_endpoint);
    aws.add(
        Rule::amz_target("AWSOrganizationsV20161128.ListRoots").then(Action::aws_error(
            400,
            "AccessDeniedException",
            "not allowed",
        )),
    );
    let url = aws.url();
    let args: Vec<String> = ["pipeline", "--config", c, "--refresh-discovery"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = w.run(
        &args,
        &[
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
            ("AWS_ENDPOINT_URL", url.as_str()),
        ],
    );
    r.code(1)
        .stderr_has("listing the organization's roots failed")
        .stderr_has("AccessDeniedException")
        .stderr_has("organizations:ListRoots");
    assert!(!r.stdout.contains("Plan for target"), "{}", r.stdout);
}

/// Identity Center: accounts where a permission set is assigned to a group (by display name),
/// or to anyone; cross-checked with Organizations (a closed account is left out), and
/// `{permission_set}` in the template.
#[tokio::test]
async fn identity_center_selects_accounts_by_permission_set_and_group() {
    let w = World::from_env().await;
    let id = unique("dic");
    let root = root(&w).await;
    let top = ou(&w, &root, &format!("ic-{id}")).await;
    let c1 = account(&w, &root, &top, &format!("{id}-a"), &[]).await;
    let c2 = account(&w, &root, &top, &format!("{id}-b"), &[]).await;
    let c3 = account(&w, &root, &top, &format!("{id}-c"), &[]).await;
    let c4 = account(&w, &root, &top, &format!("{id}-d"), &[]).await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&w.aws_endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ssoadmin::config::Credentials::new(
            "test", "test", None, None, "e2e",
        ))
        .load()
        .await;
    let sso = aws_sdk_ssoadmin::Client::new(&sdk);
    let store = aws_sdk_identitystore::Client::new(&sdk);
    let instances = sso.list_instances().send().await.expect("ListInstances");
    let inst = &instances.instances()[0];
    let (arn, store_id) = (
        inst.instance_arn().unwrap().to_string(),
        inst.identity_store_id().unwrap().to_string(),
    );
    let ps = |name: String| {
        let (sso, arn) = (sso.clone(), arn.clone());
        async move {
            sso.create_permission_set()
                .instance_arn(arn)
                .name(name)
                // moto returns a number for a missing SessionDuration, which the SDK rejects.
                .session_duration("PT1H")
                .send()
                .await
                .expect("CreatePermissionSet")
                .permission_set()
                .and_then(|p| p.permission_set_arn())
                .unwrap()
                .to_string()
        }
    };
    let admin = ps(format!("Admin-{id}")).await;
    let read = ps(format!("Read-{id}")).await;
    let group = |name: String| {
        let (store, store_id) = (store.clone(), store_id.clone());
        async move {
            store
                .create_group()
                .identity_store_id(store_id)
                .display_name(name)
                .send()
                .await
                .expect("CreateGroup")
                .group_id()
                .to_string()
        }
    };
    let platform = group(format!("platform-{id}")).await;
    let others = group(format!("others-{id}")).await;
    for (acct, set, principal) in [
        (&c1, &admin, &platform),
        (&c2, &read, &platform),
        (&c3, &admin, &others),
        (&c4, &admin, &platform),
    ] {
        sso.create_account_assignment()
            .instance_arn(&arn)
            .target_id(acct)
            .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
            .permission_set_arn(set)
            .principal_type(aws_sdk_ssoadmin::types::PrincipalType::Group)
            .principal_id(principal)
            .send()
            .await
            .expect("CreateAccountAssignment");
    }
    close(&w, &c4).await;
    let config = w.config(&format!(
        r#"vault_sources:
  - mount: secret/{id}/base/
    name: base
discovery:
  - type: identity_center
    region: us-east-1
    permission_sets: ["Admin-{id}"]
    groups: ["platform-{id}"]
    target_template: {{ name: "grp-{{account_id}}", regions: [us-east-1], imports: [base] }}
  - type: identity_center
    region: us-east-1
    permission_sets: ["Admin-{id}", "Read-*"]
    filters: [ {{ ou: {top} }} ]
    target_template:
      name: "any-{{account_id}}"
      regions: [us-east-1]
      imports: [base]
      overrides: {{ sets: "{{permission_set}}" }}
"#
    ));
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{id}"));
    let r = run(
        &w,
        &cache,
        &[
            "discover",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    r.success();
    let doc = r.json();
    // The group's Admin assignment: c1 (c4 is closed; c2 has Read; c3's is another group's).
    assert_eq!(ids(&doc, 0), vec![c1.clone()], "{doc:#}");
    // Admin or Read-* to anyone, under the OU: c1, c2, c3.
    assert_eq!(
        ids(&doc, 1),
        sorted(vec![c1.clone(), c2.clone(), c3.clone()]),
        "{doc:#}"
    );
    let r = run(
        &w,
        &cache,
        &[
            "graph",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    r.success();
    let g = r.json();
    assert!(
        g["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == format!("any-{c2}").as_str()),
        "{g:#}"
    );
}

/// With a merge store, the discovery cache lives in it: a run on another machine (another
/// cache directory) reuses the answer and makes no Organizations call.
#[tokio::test]
async fn the_cache_lives_in_the_merge_store_when_there_is_one() {
    let w = World::from_env().await;
    let id = unique("dcs");
    let root = root(&w).await;
    let top = ou(&w, &root, &format!("store-{id}")).await;
    let a = account(&w, &root, &top, &format!("{id}-a"), &[]).await;
    let bucket = unique("dcs-").to_lowercase();
    w.create_bucket(&bucket).await;
    let config = w.config(&format!(
        r#"vault_sources:
  - mount: secret/{id}/base/
    name: base
merge_store: {{ type: s3, bucket: {bucket}, prefix: m/, region: us-east-1 }}
discovery:
  type: aws_organizations
  filters: [ {{ ou: {top} }} ]
  target_template: {{ name: "d-{{account_id}}", regions: [us-east-1], imports: [base] }}
"#
    ));
    let c = config.to_str().unwrap();
    let tmp = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let first = run(
        &w,
        &tmp.join(format!("one-{id}")),
        &["discover", "--config", c, "--output", "json"],
    );
    first.success();
    assert!(first.json()["blocks"][0]["calls"].as_u64().unwrap() > 0);
    let second = run(
        &w,
        &tmp.join(format!("two-{id}")),
        &["discover", "--config", c, "--output", "json"],
    );
    second.success();
    let doc = second.json();
    assert_eq!(doc["blocks"][0]["calls"], 0, "{doc:#}");
    assert_eq!(ids(&doc, 0), vec![a]);
    let objects = w
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("m/.secretsync/discovery/")
        .send()
        .await
        .unwrap();
    assert_eq!(objects.contents().len(), 1, "{objects:?}");
}

/// One fixture account: where it is and what it carries.
struct Fixture {
    id: String,
    /// OU ids from `top` down to its own OU.
    ous: Vec<String>,
    env: String,
    team: String,
    active: bool,
}

/// An organization of 60 accounts in three levels of nested OUs below a test's own OU, tagged,
/// six of them closed: each block selects exactly the accounts the rules say (computed here
/// from the fixture, independently of the tool), and a cached answer expires after
/// `cache_ttl`.
#[tokio::test]
async fn sixty_accounts_in_three_levels_are_selected_exactly_and_the_cache_expires() {
    let w = World::from_env().await;
    let id = unique("d60");
    let root = root(&w).await;
    let top = ou(&w, &root, &format!("org60-{id}")).await;
    // Level 1: prod, staging, sandbox; level 2: web, api under each; level 3: edge under each.
    let mut leaves: Vec<Vec<String>> = Vec::new();
    let mut l1 = BTreeMap::new();
    for name in ["prod", "staging", "sandbox"] {
        let a = ou(&w, &top, name).await;
        l1.insert(name, a.clone());
        leaves.push(vec![top.clone(), a.clone()]);
        for sub in ["web", "api"] {
            let b = ou(&w, &a, sub).await;
            leaves.push(vec![top.clone(), a.clone(), b.clone()]);
            let c = ou(&w, &b, "edge").await;
            leaves.push(vec![top.clone(), a.clone(), b.clone(), c]);
        }
    }
    let envs = ["prod-eu", "prod-us", "staging", "dev"];
    let teams = ["a", "b", "c"];
    let mut fx = Vec::new();
    for i in 0..60 {
        let ous = leaves[i % leaves.len()].clone();
        let env = format!("{}-{id}", envs[i % envs.len()]);
        let team = teams[i % teams.len()].to_string();
        let acct = account(
            &w,
            &root,
            ous.last().unwrap(),
            &format!("{id}-{i:02}"),
            &[("Environment", &env), ("Team", &team)],
        )
        .await;
        fx.push(Fixture {
            id: acct,
            ous,
            env,
            team,
            active: i % 10 != 3,
        });
    }
    for f in fx.iter().filter(|f| !f.active) {
        close(&w, &f.id).await;
    }
    let (prod, staging) = (l1["prod"].clone(), l1["staging"].clone());
    let excluded = fx[1].id.clone();
    let config = w.config(&format!(
        r#"vault_sources:
  - mount: secret/{id}/base/
    name: base
discovery:
  - type: aws_organizations
    filters:
      - {{ tag: Environment, values: ["prod-*-{id}"] }}
      - {{ ou: {prod} }}
    target_template: {{ name: "a-{{account_id}}", regions: [us-east-1], imports: [base] }}
  - type: aws_organizations
    match: any
    filters:
      - {{ tag: Team, values: [c] }}
      - {{ ou: {staging}, include_nested: false }}
    target_template: {{ name: "b-{{account_id}}", regions: [us-east-1], imports: [base] }}
  - type: aws_organizations
    states: [ACTIVE, SUSPENDED]
    exclude_accounts: ["{excluded}"]
    cache_ttl: 2s
    filters: [ {{ ou: {top} }} ]
    target_template: {{ name: "c-{{account_id}}", regions: [us-east-1], imports: [base] }}
"#
    ));
    let expect = |pick: &dyn Fn(&Fixture) -> bool| -> Vec<String> {
        sorted(
            fx.iter()
                .filter(|f| pick(f))
                .map(|f| f.id.clone())
                .collect(),
        )
    };
    let b0 = expect(&|f| f.active && f.env.starts_with("prod-") && f.ous.contains(&prod));
    // Team `c` anywhere in the organization would include other tests' accounts: the tests
    // of this file tag no other account with `Team: c` under this run's ids, so the first
    // filter is checked against this fixture's accounts only.
    let b1 = expect(&|f| f.active && (f.team == "c" || f.ous.last() == Some(&staging)));
    let b2 = expect(&|f| f.id != excluded);
    assert!(!b0.is_empty() && !b1.is_empty() && b2.len() == 59);
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{id}"));
    let c = config.to_str().unwrap();
    let r = run(&w, &cache, &["discover", "--config", c, "--output", "json"]);
    r.success();
    let doc = r.json();
    let mine = |block: usize| -> Vec<String> {
        let ours: std::collections::BTreeSet<&String> = fx.iter().map(|f| &f.id).collect();
        ids(&doc, block)
            .into_iter()
            .filter(|a| ours.contains(a))
            .collect()
    };
    assert_eq!(ids(&doc, 0), b0, "block 1");
    assert_eq!(mine(1), b1, "block 2");
    assert_eq!(ids(&doc, 2), b2, "block 3");
    let suspended = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["block"] == 2 && a["state"] == "SUSPENDED")
        .count();
    assert_eq!(suspended, 6);
    // Within its TTL the answer is reused; after it, AWS is asked again.
    let r = run(&w, &cache, &["discover", "--config", c, "--output", "json"]);
    r.success();
    assert_eq!(r.json()["blocks"][2]["calls"], 0);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let r = run(&w, &cache, &["discover", "--config", c, "--output", "json"]);
    r.success();
    let doc = r.json();
    assert!(
        doc["blocks"][2]["calls"].as_u64().unwrap() > 0,
        "{:#}",
        doc["blocks"]
    );
    assert_eq!(
        doc["blocks"][0]["calls"], 0,
        "block 1's TTL (1h) has not passed"
    );
}
