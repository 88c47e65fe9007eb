//! Discovery: asks AWS Organizations for the accounts of the organization (every account with
//! its state, OU path and tags), lets each `discovery:` block select among them and make
//! targets of them (`secretsync_core::discovery`), and adds those targets to the config before
//! the graph is built.
//!
//! **Calls.** The OU tree is walked breadth-first from the root: per parent one
//! `ListAccountsForParent` and one `ListOrganizationalUnitsForParent` (every page), then one
//! `ListTagsForResource` per account (only when a filter or the template reads tags), a few at
//! a time. Every call goes through the retry layer (Organizations throttles hard: throttling is
//! retried with backoff). A failure fails discovery with the call and the permission it needs —
//! never an empty fleet.
//!
//! **Cache.** What Organizations answered (accounts, never secrets) is kept for `cache_ttl`,
//! keyed by the block's discovery role, region and kind: in the merge store when the config has
//! one (`.secretsync/discovery/<key>`: a CronJob's next run reuses it), else in the user cache
//! directory (`$XDG_CACHE_HOME/secretsync/discovery/`, or `~/.cache/…`). A cached run makes no
//! Organizations call; `refresh` (`--refresh-discovery`) ignores the cache. The cache also keeps
//! the names of the targets the last discovery made, so that a target whose account stopped
//! matching is reported as "no longer discovered" (nothing is deleted in it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use futures::{StreamExt, TryStreamExt, stream};
use secretsync_core::config::{Config, DiscoveryConfig, DiscoveryKind};
use secretsync_core::discovery::{Account, Discovered, expand, no_longer, selects};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::aws::{AwsContext, CallCounter, Failed, OperationError, Sent, ServiceErrors, map_error};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Objects;

/// Tag reads in flight at once (Organizations allows a few calls per second).
const TAG_CONCURRENCY: usize = 4;

const ORGANIZATIONS: ServiceErrors = ServiceErrors {
    name: "AWS Organizations",
    kind: |code| {
        Some(match code {
            "TooManyRequestsException" => ErrorKind::Throttled,
            "AWSOrganizationsNotInUseException" => ErrorKind::Config,
            "ServiceException" => ErrorKind::Unavailable,
            _ => return None,
        })
    },
    hint: |kind, code| match (kind, code) {
        (ErrorKind::PermissionDenied, _) => {
            "; the discovery role (`discovery.role_arn`, or the default credentials) needs organizations:ListRoots, ListAccountsForParent, ListOrganizationalUnitsForParent and ListTagsForResource, in the management account or a delegated administrator account"
        }
        (_, "AWSOrganizationsNotInUseException") => {
            "; the credentials' account is not in an organization: point `discovery.role_arn` at a role in the management account"
        }
        _ => "",
    },
};

fn map<E: OperationError>(e: Failed<E>, what: &str) -> Error {
    map_error(e, what, &ORGANIZATIONS)
}

const IDENTITY_CENTER: ServiceErrors = ServiceErrors {
    name: "AWS IAM Identity Center",
    kind: |code| {
        Some(match code {
            "TooManyRequestsException" => ErrorKind::Throttled,
            "ResourceNotFoundException" => ErrorKind::Config,
            "InternalServerException" => ErrorKind::Unavailable,
            _ => return None,
        })
    },
    hint: |kind, _| match kind {
        ErrorKind::PermissionDenied => {
            "; the discovery role needs sso:ListInstances, sso:ListPermissionSets, sso:DescribePermissionSet, sso:ListAccountsForProvisionedPermissionSet, sso:ListAccountAssignments, sso:ListAccountAssignmentsForPrincipal and identitystore:GetGroupId, in the Identity Center instance's region (`discovery.region`)"
        }
        _ => "",
    },
};

fn map_ic<E: OperationError>(e: Failed<E>, what: &str) -> Error {
    map_error(e, what, &IDENTITY_CENTER)
}

async fn send_ic<T, E, F, Fut>(calls: &CallCounter, operation: &'static str, call: F) -> Sent<T, E>
where
    E: OperationError,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
{
    calls.send(&IDENTITY_CENTER, operation, call).await
}

/// Whether a permission set's name is one the block asks for (its `permission_sets`, or its
/// `permission_set` filters when it lists none).
fn wanted(b: &DiscoveryConfig, name: &str) -> bool {
    use secretsync_core::config::DiscoveryFilter;
    let patterns: Vec<&str> = if b.permission_sets.is_empty() {
        b.filters
            .iter()
            .filter_map(|f| match f {
                DiscoveryFilter::PermissionSet { name } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    } else {
        b.permission_sets.iter().map(String::as_str).collect()
    };
    patterns
        .iter()
        .any(|p| secretsync_core::discovery::wildcard(p, name))
}

/// Identity Center: account id → the names of the permission sets the block asks for that are
/// assigned there (to its groups, or to anyone).
async fn assignments(
    sdk: &aws_config::SdkConfig,
    calls: &CallCounter,
    b: &DiscoveryConfig,
    accounts: &[String],
) -> Result<BTreeMap<String, std::collections::BTreeSet<String>>> {
    let sso = aws_sdk_ssoadmin::Client::from_conf(
        aws_sdk_ssoadmin::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let ids = aws_sdk_identitystore::Client::from_conf(
        aws_sdk_identitystore::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let listed = send_ic(calls, "ListInstances", || sso.list_instances().send())
        .await
        .map_err(|e| map_ic(e, "listing the Identity Center instances"))?;
    let instance = listed.instances().first().ok_or_else(|| {
        Error::config(format!(
            "no Identity Center instance in {region}; set `discovery.region` to the instance's region"
        ))
    })?;
    let (Some(arn), Some(store)) = (instance.instance_arn(), instance.identity_store_id()) else {
        return Err(Error::new(
            ErrorKind::Unexpected,
            "Identity Center listed an instance without its ARN or identity store",
        ));
    };
    // Permission set ARN -> name, read once each.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut name_of = async |ps: &str| -> Result<String> {
        if let Some(n) = names.get(ps) {
            return Ok(n.clone());
        }
        let d = send_ic(calls, "DescribePermissionSet", || {
            sso.describe_permission_set()
                .instance_arn(arn)
                .permission_set_arn(ps)
                .send()
        })
        .await
        .map_err(|e| map_ic(e, &format!("describing permission set {ps}")))?;
        let n = d
            .permission_set()
            .and_then(|p| p.name())
            .unwrap_or(ps)
            .to_string();
        names.insert(ps.to_string(), n.clone());
        Ok(n)
    };
    let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    if !b.groups.is_empty() {
        for g in &b.groups {
            let attr = aws_sdk_identitystore::types::UniqueAttribute::builder()
                .attribute_path("DisplayName")
                .attribute_value(aws_smithy_types::Document::String(g.clone()))
                .build()
                .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
            let got = send_ic(calls, "GetGroupId", || {
                ids.get_group_id()
                    .identity_store_id(store)
                    .alternate_identifier(
                        aws_sdk_identitystore::types::AlternateIdentifier::UniqueAttribute(
                            attr.clone(),
                        ),
                    )
                    .send()
            })
            .await
            .map_err(|e| {
                map_ic(
                    e,
                    &format!(
                        "finding group `{g}` in identity store {store} (check `discovery.groups`)"
                    ),
                )
            })?;
            let group = got.group_id().to_string();
            let mut next: Option<String> = None;
            loop {
                let page = send_ic(calls, "ListAccountAssignmentsForPrincipal", || {
                    sso.list_account_assignments_for_principal()
                        .instance_arn(arn)
                        .principal_id(&group)
                        .principal_type(aws_sdk_ssoadmin::types::PrincipalType::Group)
                        .set_next_token(next.clone())
                        .send()
                })
                .await
                .map_err(|e| map_ic(e, &format!("listing the assignments of group `{g}`")))?;
                for a in page.account_assignments() {
                    let (Some(acct), Some(ps)) = (a.account_id(), a.permission_set_arn()) else {
                        continue;
                    };
                    let n = name_of(ps).await?;
                    if wanted(b, &n) {
                        out.entry(acct.to_string()).or_default().insert(n);
                    }
                }
                next = page.next_token().map(str::to_string);
                if next.as_deref().is_none_or(str::is_empty) {
                    break;
                }
            }
        }
        return Ok(out);
    }
    // To anyone: each wanted permission set, asked per account of the organization whether it
    // is assigned there (`ListAccountAssignments`; one call per account and set).
    let mut sets = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = send_ic(calls, "ListPermissionSets", || {
            sso.list_permission_sets()
                .instance_arn(arn)
                .set_next_token(next.clone())
                .send()
        })
        .await
        .map_err(|e| map_ic(e, "listing the permission sets"))?;
        sets.extend(page.permission_sets().iter().cloned());
        next = page.next_token().map(str::to_string);
        if next.as_deref().is_none_or(str::is_empty) {
            break;
        }
    }
    let mut chosen = Vec::new();
    for ps in sets {
        let n = name_of(&ps).await?;
        if wanted(b, &n) {
            chosen.push((ps, n));
        }
    }
    let pairs: Vec<(&String, &(String, String))> = accounts
        .iter()
        .flat_map(|a| chosen.iter().map(move |c| (a, c)))
        .collect();
    let found: Vec<Option<(String, String)>> = stream::iter(pairs)
        .map(|(acct, (ps, n))| {
            let sso = &sso;
            async move {
                let page = send_ic(calls, "ListAccountAssignments", || {
                    sso.list_account_assignments()
                        .instance_arn(arn)
                        .account_id(acct)
                        .permission_set_arn(ps)
                        .send()
                })
                .await
                .map_err(|e| {
                    map_ic(
                        e,
                        &format!("listing the assignments of `{n}` in account {acct}"),
                    )
                })?;
                Ok::<_, Error>(
                    (!page.account_assignments().is_empty()).then(|| (acct.clone(), n.clone())),
                )
            }
        })
        .buffered(TAG_CONCURRENCY)
        .try_collect()
        .await?;
    for (acct, n) in found.into_iter().flatten() {
        out.entry(acct).or_default().insert(n);
    }
    Ok(out)
}

async fn send<T, E, F, Fut>(calls: &CallCounter, operation: &'static str, call: F) -> Sent<T, E>
where
    E: OperationError,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
{
    calls.send(&ORGANIZATIONS, operation, call).await
}

/// What one block found: the accounts it selected (with the filters that matched), the targets
/// they became, and the names of targets an earlier discovery made that it no longer does.
#[derive(Debug, Clone)]
pub struct Found {
    pub block: usize,
    pub kind: DiscoveryKind,
    pub accounts: Vec<(Account, Vec<String>)>,
    /// Every account the organization listed (before the block's selection).
    pub listed: usize,
    pub targets: Vec<Discovered>,
    pub no_longer: Vec<String>,
    /// How old the cached answer was; `None`: asked AWS now.
    pub cache_age: Option<Duration>,
    /// Discovery API calls made (0 from the cache).
    pub calls: u64,
}

/// What the cache keeps for one block's discovery inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    fetched_unix: u64,
    accounts: Vec<Account>,
    /// Per block (its index), the target names its last discovery made: several blocks with
    /// the same discovery inputs share one entry.
    #[serde(default)]
    targets: BTreeMap<String, Vec<String>>,
}

/// Where the cache lives.
pub enum CacheAt {
    /// Objects of the merge store (`.secretsync/discovery/<key>`).
    Store(Arc<dyn Objects>),
    /// A directory on this machine.
    Dir(PathBuf),
    /// No cache (every run asks AWS).
    Off,
}

impl CacheAt {
    /// The user cache directory: `$XDG_CACHE_HOME/secretsync/discovery`, or
    /// `~/.cache/secretsync/discovery`; `Off` without either.
    pub fn user_dir(env: &dyn Fn(&str) -> Option<String>) -> CacheAt {
        let base = env("XDG_CACHE_HOME")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")));
        match base {
            Some(b) => CacheAt::Dir(b.join("secretsync").join("discovery")),
            None => CacheAt::Off,
        }
    }

    async fn read(&self, key: &str) -> Option<Cached> {
        let bytes = match self {
            CacheAt::Store(o) => o
                .get(&format!(".secretsync/discovery/{key}{}", o.suffix()))
                .await
                .ok()
                .flatten(),
            CacheAt::Dir(d) => std::fs::read(d.join(format!("{key}.json"))).ok(),
            CacheAt::Off => None,
        }?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn write(&self, key: &str, c: &Cached) {
        let Ok(body) = serde_json::to_vec(c) else {
            return;
        };
        let result = match self {
            CacheAt::Store(o) => o
                .put(&format!(".secretsync/discovery/{key}{}", o.suffix()), &body)
                .await
                .map_err(|e| e.message),
            CacheAt::Dir(d) => std::fs::create_dir_all(d)
                .and_then(|()| std::fs::write(d.join(format!("{key}.json")), &body))
                .map_err(|e| e.to_string()),
            CacheAt::Off => Ok(()),
        };
        if let Err(e) = result {
            warn!(error = %e, "could not write the discovery cache; the next run asks AWS again");
        }
    }
}

/// The cache key of a block: what its account list depends on (not its filters or template,
/// which are applied to the cached list).
fn cache_key(b: &DiscoveryConfig) -> String {
    let text = format!(
        "{:?}|{}|{}|{}|{}|{}",
        b.kind,
        b.role_arn.as_deref().unwrap_or(""),
        b.external_id.is_some(),
        b.region.as_deref().unwrap_or(""),
        b.permission_sets.join(","),
        b.groups.join(",")
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a block needs every account's tags (a tag filter, or `{tag:…}` in its template).
fn needs_tags(b: &DiscoveryConfig) -> bool {
    b.filters
        .iter()
        .any(|f| matches!(f, secretsync_core::config::DiscoveryFilter::Tag { .. }))
        || format!("{:?}{:?}", b.template.name, b.template.policy.secret_prefix).contains("{tag:")
        || serde_json::to_string(&b.template.overrides)
            .unwrap_or_default()
            .contains("{tag:")
        || b.template.imports.iter().any(|i| i.contains("{tag:"))
}

/// Every account of the organization, with its OU path and (when `tags`) its tags.
async fn organization(
    client: &aws_sdk_organizations::Client,
    calls: &CallCounter,
    tags: bool,
) -> Result<Vec<Account>> {
    let mut roots = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = send(calls, "ListRoots", || {
            client.list_roots().set_next_token(next.clone()).send()
        })
        .await
        .map_err(|e| map(e, "listing the organization's roots"))?;
        roots.extend(
            page.roots()
                .iter()
                .filter_map(|r| r.id().map(str::to_string)),
        );
        next = page.next_token().map(str::to_string);
        if next.as_deref().is_none_or(str::is_empty) {
            break;
        }
    }
    let mut accounts = Vec::new();
    // (parent id, OU names from the root, ids from the root)
    let mut queue: std::collections::VecDeque<(String, String, Vec<String>)> = roots
        .into_iter()
        .map(|r| (r.clone(), "Root".to_string(), vec![r]))
        .collect();
    while let Some((parent, path, ids)) = queue.pop_front() {
        let mut next: Option<String> = None;
        loop {
            let page = send(calls, "ListAccountsForParent", || {
                client
                    .list_accounts_for_parent()
                    .parent_id(&parent)
                    .set_next_token(next.clone())
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("listing the accounts of {parent}")))?;
            for a in page.accounts() {
                let Some(id) = a.id() else { continue };
                let state = a
                    .state()
                    .map(|s| s.as_str().to_string())
                    .or_else(|| a.status().map(|s| s.as_str().to_string()))
                    .unwrap_or_else(|| "UNKNOWN".into());
                accounts.push(Account {
                    id: id.to_string(),
                    name: a.name().unwrap_or(id).to_string(),
                    state,
                    ou_path: path.clone(),
                    ou_ids: ids.clone(),
                    tags: BTreeMap::new(),
                    permission_sets: Vec::new(),
                });
            }
            next = page.next_token().map(str::to_string);
            if next.as_deref().is_none_or(str::is_empty) {
                break;
            }
        }
        let mut next: Option<String> = None;
        loop {
            let page = send(calls, "ListOrganizationalUnitsForParent", || {
                client
                    .list_organizational_units_for_parent()
                    .parent_id(&parent)
                    .set_next_token(next.clone())
                    .send()
            })
            .await
            .map_err(|e| map(e, &format!("listing the OUs under {parent}")))?;
            for ou in page.organizational_units() {
                let Some(id) = ou.id() else { continue };
                let mut child_ids = ids.clone();
                child_ids.push(id.to_string());
                queue.push_back((
                    id.to_string(),
                    format!("{path}/{}", ou.name().unwrap_or(id)),
                    child_ids,
                ));
            }
            next = page.next_token().map(str::to_string);
            if next.as_deref().is_none_or(str::is_empty) {
                break;
            }
        }
    }
    if tags {
        let tagged: Vec<BTreeMap<String, String>> = stream::iter(accounts.iter())
            .map(|a| account_tags(client, calls, &a.id))
            .buffered(TAG_CONCURRENCY)
            .try_collect()
            .await?;
        for (a, t) in accounts.iter_mut().zip(tagged) {
            a.tags = t;
        }
    }
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(accounts)
}

async fn account_tags(
    client: &aws_sdk_organizations::Client,
    calls: &CallCounter,
    id: &str,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = send(calls, "ListTagsForResource", || {
            client
                .list_tags_for_resource()
                .resource_id(id)
                .set_next_token(next.clone())
                .send()
        })
        .await
        .map_err(|e| map(e, &format!("reading the tags of account {id}")))?;
        for t in page.tags() {
            out.insert(t.key().to_string(), t.value().to_string());
        }
        next = page.next_token().map(str::to_string);
        if next.as_deref().is_none_or(str::is_empty) {
            break;
        }
    }
    Ok(out)
}

/// Runs every discovery block of `config` (from the cache unless `refresh`).
pub async fn discover(
    config: &Config,
    aws: &AwsContext,
    cache: &CacheAt,
    refresh: bool,
) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for (i, block) in config.discovery.iter().enumerate() {
        let key = cache_key(block);
        // Read even when refreshing: it knows which targets the last discovery made.
        let cached = cache.read(&key).await;
        let age = cached
            .as_ref()
            .map(|c| Duration::from_secs(now_unix().saturating_sub(c.fetched_unix)));
        let usable = !refresh && !block.cache_ttl.is_zero();
        let mut recorded = cached
            .as_ref()
            .map(|c| c.targets.clone())
            .unwrap_or_default();
        let before = recorded.get(&i.to_string()).cloned().unwrap_or_default();
        let fetched_before = cached.as_ref().map(|c| c.fetched_unix);
        let (accounts, cache_age, calls) = match (cached, age) {
            (Some(c), Some(a)) if usable && a < block.cache_ttl => {
                debug!(
                    block = i,
                    age_secs = a.as_secs(),
                    "discovery from the cache"
                );
                (c.accounts, Some(a), 0)
            }
            (_, _) => {
                // Organizations is global (us-east-1); Identity Center lives in its
                // instance's region.
                let org_region = match block.kind {
                    DiscoveryKind::AwsOrganizations => {
                        block.region.as_deref().unwrap_or("us-east-1")
                    }
                    DiscoveryKind::IdentityCenter => "us-east-1",
                };
                let sdk = aws
                    .config_for(
                        org_region,
                        block.role_arn.as_deref(),
                        block.external_id.as_deref(),
                    )
                    .await;
                let counter = aws.counter_for(org_region, block.role_arn.as_deref());
                let client = aws_sdk_organizations::Client::from_conf(
                    aws_sdk_organizations::config::Builder::from(&sdk)
                        .interceptor(counter.clone())
                        .retry_config(aws_config::retry::RetryConfig::disabled())
                        .build(),
                );
                let mut accounts = organization(&client, &counter, needs_tags(block))
                    .await
                    .map_err(|e| e.context("discovery (AWS Organizations)"))?;
                if block.kind == DiscoveryKind::IdentityCenter {
                    let ic_region = block.region.as_deref().unwrap_or("us-east-1");
                    let ic_sdk = aws
                        .config_for(
                            ic_region,
                            block.role_arn.as_deref(),
                            block.external_id.as_deref(),
                        )
                        .await;
                    // Only accounts in a state the block keeps are asked about.
                    let ids: Vec<String> = accounts
                        .iter()
                        .filter(|a| {
                            secretsync_core::config::AccountState::parse(&a.state)
                                .is_some_and(|s| block.states.contains(&s))
                        })
                        .map(|a| a.id.clone())
                        .collect();
                    let assigned = assignments(&ic_sdk, &counter, block, &ids)
                        .await
                        .map_err(|e| e.context("discovery (AWS IAM Identity Center)"))?;
                    // Cross-checked with Organizations: its state, OU path and tags.
                    accounts.retain_mut(|a| match assigned.get(&a.id) {
                        Some(sets) => {
                            a.permission_sets = sets.iter().cloned().collect();
                            true
                        }
                        None => false,
                    });
                }
                info!(
                    block = i,
                    accounts = accounts.len(),
                    calls = counter.get(),
                    "discovered the organization's accounts"
                );
                (accounts, None, counter.get())
            }
        };
        let selected: Vec<(Account, Vec<String>)> = accounts
            .iter()
            .filter_map(|a| selects(block, a).map(|m| (a.clone(), m)))
            .collect();
        let refs: Vec<&Account> = selected.iter().map(|(a, _)| a).collect();
        let targets = expand(block, i, &refs)
            .map_err(|e| Error::config(format!("discovery block {}: {e}", i + 1)))?;
        let gone = no_longer(&before, &targets);
        for g in &gone {
            warn!(target_name = %g, "no longer discovered: its account stopped matching; nothing is deleted in it");
        }
        let names: Vec<String> = targets.iter().map(|d| d.target.name.clone()).collect();
        if cache_age.is_none() || before != names {
            recorded.insert(i.to_string(), names);
            cache
                .write(
                    &key,
                    &Cached {
                        fetched_unix: match cache_age {
                            None => now_unix(),
                            Some(_) => fetched_before.unwrap_or_else(now_unix),
                        },
                        accounts: accounts.clone(),
                        targets: recorded,
                    },
                )
                .await;
        }
        out.push(Found {
            block: i,
            kind: block.kind,
            listed: accounts.len(),
            accounts: selected,
            targets,
            no_longer: gone,
            cache_age,
            calls,
        });
    }
    Ok(out)
}

/// The config with every discovered target added (a static target of the same name wins,
/// with a warning), and what discovery found; errors in the new graph fail.
pub async fn apply(
    mut config: Config,
    env: &dyn Fn(&str) -> Option<String>,
    refresh: bool,
) -> Result<(Config, Vec<Found>)> {
    if config.discovery.is_empty() {
        return Ok((config, Vec::new()));
    }
    let aws = AwsContext::load(config.retries.aws_max_attempts, env).await?;
    let cache = match &config.merge_store {
        Some(_) => match crate::history::open(&config, env).await {
            Ok(Some(h)) => CacheAt::Store(h.objects()),
            _ => CacheAt::user_dir(env),
        },
        None => CacheAt::user_dir(env),
    };
    let found = discover(&config, &aws, &cache, refresh).await?;
    let discovered: Vec<Discovered> = found.iter().flat_map(|f| f.targets.clone()).collect();
    let diags = config.add_discovered(discovered);
    let mut errors = Vec::new();
    for d in &diags {
        match d.severity {
            secretsync_core::diag::Severity::Error => errors.push(d.to_string()),
            _ => warn!("{d}"),
        }
    }
    if !errors.is_empty() {
        return Err(Error::config(format!(
            "the discovered targets do not fit the config: {}",
            errors.join("; ")
        )));
    }
    Ok((config, found))
}
