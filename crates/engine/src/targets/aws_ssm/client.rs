//! The `aws_ssm` target implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{
    ParameterStringFilter, ParameterTier, ParameterType, ResourceTypeForTagging, Tag,
};
use futures::{StreamExt, stream};
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{
    self, ChangeKind, Listed, MANAGED_VALUE, OWNERSHIP_TAGS, Ownership, SecretChange,
    TAG_FINGERPRINT, TAG_MANAGED, TAG_OWNER, TAG_ROLE, TAG_TARGET, TAG_VERSION, TargetPlan,
};
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::targets::aws_ssm::{
    AwsSsmRules, AwsSsmSettings as Settings, KEY_PARAMETER, Mapping, Param, RESERVED_PREFIX,
    TAG_PATH, Tier, check_plan, needs_reencrypt, reencrypt_change, version_mark,
};
use tokio::sync::Mutex;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::error::{code, map, send};
use crate::aws::{AwsContext, CallCounter};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::targets::support::apply::{self, Apply, Counted, Failed, Pace, Writes};
use crate::targets::support::key::{self, KeyCache, KeyRead, KeyStore};
use crate::targets::support::{self, Pacer, Prefetched};
use crate::targets::{ApplyReport, PlanContext, Target};

/// `DescribeParameters` page size (AWS's maximum).
const PAGE: i32 = 50;
/// Names per `GetParameters` / `DeleteParameters` call (AWS's maximum).
const BATCH: usize = 10;
/// Concurrent reads (`GetParameters`, `ListTagsForResource`) while planning.
const READ_CONCURRENCY: usize = 4;
const SECURE: &str = "SecureString";

/// A parameter as `DescribeParameters` shows it.
#[derive(Debug, Clone)]
struct Meta {
    version: i64,
    tier: Option<String>,
    kind: Option<String>,
    key_id: Option<String>,
}

/// Whose a listed parameter is, as far as the listings tell.
#[derive(Debug, Clone)]
enum Class {
    /// Matched the owner-and-target tag filter.
    Ours,
    /// Managed, but not matched by that filter: its tags, read one by one.
    Managed(BTreeMap<String, String>),
    Unmanaged,
}

/// Every parameter under the prefix.
type Listing = BTreeMap<String, (Meta, Class)>;

/// One parameter of a secret, as the plan saw it.
#[derive(Clone)]
struct Member {
    /// The `per_key` key; `None` for a `whole` parameter (or, with `per_key`, a parameter named
    /// like the secret itself, which no key maps to).
    key: Option<String>,
    meta: Meta,
    /// Our ownership tags as they are (the touched keys only; empty for an unmanaged one).
    tags: BTreeMap<String, String>,
    /// The current value, when read.
    value: Option<Zeroizing<String>>,
}

/// A secret's parameters that a change may write or delete: its managed ones (ours or
/// inherited), plus unmanaged ones whose names it wants (taken over only with `adopt`).
#[derive(Clone, Default)]
struct Group {
    path: String,
    members: BTreeMap<String, Member>,
}

/// A current value as `GetParameters` returns it.
struct Current {
    value: Zeroizing<String>,
    version: i64,
    kind: Option<String>,
}

/// A listed parameter on its way into a group.
struct SeenParam {
    name: String,
    key: Option<String>,
    meta: Meta,
    ownership: Ownership,
    tags: BTreeMap<String, String>,
}

/// How a parameter is written besides its value.
#[derive(Clone, Copy)]
struct Shape<'a> {
    tier: Tier,
    /// `None`: `SecureString`.
    kind: Option<&'a str>,
    key_id: Option<&'a str>,
}

/// The previous state of a parameter, to put it back.
struct Before {
    value: Zeroizing<String>,
    tier: Option<String>,
    kind: Option<String>,
    key_id: Option<String>,
    tags: BTreeMap<String, String>,
}

/// One completed write call, and how to undo it.
enum Op {
    Created {
        name: String,
    },
    Overwrote {
        name: String,
        before: Before,
        /// The tier written (a parameter never goes back to a lower tier).
        tier: Tier,
    },
    Tagged {
        name: String,
        before: BTreeMap<String, String>,
    },
    Deleted {
        name: String,
        before: Before,
    },
}

/// One secret's completed (or, on failure, partial) writes.
struct Done {
    secret: String,
    kind: Counted,
    ops: Vec<Op>,
}

/// Every tag key a write sets (and a rollback restores or removes).
fn touched() -> impl Iterator<Item = &'static str> {
    OWNERSHIP_TAGS.iter().copied().chain([TAG_PATH])
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder()
        .key(k)
        .value(v)
        .build()
        .expect("a tag has a key and a value")
}

fn filter(key: &str, option: Option<&str>, values: &[&str]) -> ParameterStringFilter {
    ParameterStringFilter::builder()
        .key(key)
        .set_option(option.map(str::to_string))
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
        .expect("a filter has a key")
}

fn tier_of(t: Tier) -> ParameterTier {
    match t {
        Tier::Standard => ParameterTier::Standard,
        Tier::Advanced => ParameterTier::Advanced,
    }
}

fn parse_tier(t: Option<&str>) -> Tier {
    match t {
        Some("Advanced") => Tier::Advanced,
        _ => Tier::Standard,
    }
}

fn unexpected(msg: String) -> Error {
    Error::new(ErrorKind::Unexpected, msg)
}

pub struct AwsSsmTarget {
    name: String,
    owner: String,
    policy: TargetPolicy,
    settings: Settings,
    rules: AwsSsmRules,
    client: Client,
    /// Secrets Manager in the same account and region: where the lease lives.
    sm: aws_sdk_secretsmanager::Client,
    counter: CallCounter,
    prefetched: Prefetched<Listing>,
    /// The account and region's fingerprint key, once read (or created).
    key: KeyCache,
    /// What the last plan saw of each secret (by name): apply writes from it and rollback
    /// restores it.
    observed: Mutex<BTreeMap<String, Group>>,
}

/// Where an account and region's Parameter Store fingerprint key lives: [`KEY_PARAMETER`],
/// created with `Overwrite=false` (which fails for all but one concurrent creator).
struct KeyParameter<'a> {
    client: &'a Client,
    counter: &'a CallCounter,
    target: &'a str,
}

#[async_trait]
impl KeyStore for KeyParameter<'_> {
    type Slot = ();

    fn location(&self) -> String {
        KEY_PARAMETER.to_string()
    }

    async fn read(&self, _create: bool, _retry: bool) -> Result<KeyRead<()>> {
        let got = send(self.counter, "GetParameter", || {
            self.client
                .get_parameter()
                .name(KEY_PARAMETER)
                .with_decryption(true)
                .send()
        })
        .await;
        match got {
            Ok(out) => {
                let hex = Zeroizing::new(
                    out.parameter()
                        .and_then(|p| p.value())
                        .unwrap_or_default()
                        .to_string(),
                );
                FingerprintKey::from_hex(&hex).map(KeyRead::Found).ok_or_else(|| {
                    unexpected(format!(
                        "`{KEY_PARAMETER}` in the account of target `{}` does not hold a SecretSync fingerprint key; delete it (SecretSync recreates it)",
                        self.target
                    ))
                })
            }
            Err(e) if code(&e) == Some("ParameterNotFound") => Ok(KeyRead::Absent(())),
            Err(e) => Err(map(
                e,
                &format!(
                    "reading the fingerprint key `{KEY_PARAMETER}` (the role needs ssm:GetParameter on it)"
                ),
            )),
        }
    }

    async fn create(&self, (): (), key: &FingerprintKey, retry: bool) -> Result<bool> {
        let hex = Zeroizing::new(key.to_hex());
        // The account's default key (`alias/aws/ssm`): every target in the account and region
        // shares this parameter, whatever its own `kms_key_id`.
        let res = send(self.counter, "PutParameter", || {
            self.client
                .put_parameter()
                .name(KEY_PARAMETER)
                .description("SecretSync fingerprint key (HMAC for ownership tags)")
                .value(hex.as_str())
                .r#type(ParameterType::SecureString)
                .overwrite(false)
                .tags(tag(TAG_MANAGED, MANAGED_VALUE))
                .tags(tag(TAG_ROLE, "fingerprint-key"))
                .send()
        })
        .await;
        match res {
            Ok(_) => Ok(true),
            // Someone else created it first: use theirs.
            Err(e) if code(&e) == Some("ParameterAlreadyExists") && retry => Ok(false),
            Err(e) => Err(map(
                e,
                &format!("creating the fingerprint key `{KEY_PARAMETER}`"),
            )),
        }
    }
}

impl AwsSsmTarget {
    pub async fn new(
        name: &str,
        owner: &str,
        policy: &TargetPolicy,
        settings: &Settings,
        aws: &AwsContext,
    ) -> Self {
        let cfg = aws
            .config_for(
                &settings.region,
                settings.role_arn.as_deref(),
                settings.external_id.as_deref(),
            )
            .await;
        let counter = aws.counter_for(&settings.region, settings.role_arn.as_deref());
        AwsSsmTarget {
            name: name.to_string(),
            owner: owner.to_string(),
            policy: policy.clone(),
            settings: settings.clone(),
            rules: settings.rules(),
            client: Client::from_conf(
                aws_sdk_ssm::config::Builder::from(&cfg)
                    .interceptor(counter.clone())
                    // Retried by the retry layer, never by the SDK as well.
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .build(),
            ),
            sm: crate::targets::aws_sm::client(&cfg, &counter),
            counter,
            prefetched: Prefetched::default(),
            key: KeyCache::default(),
            observed: Mutex::new(BTreeMap::new()),
        }
    }

    fn prefix(&self) -> &str {
        AwsSsmRules::effective_prefix(&self.policy.secret_prefix)
    }

    /// The ceiling on write calls per second: the common `writes_per_second` and this kind's
    /// (which defaults to Parameter Store's quota when the common key is absent).
    fn writes_per_second(&self) -> u32 {
        match self.policy.writes_per_second {
            0 => self.settings.writes_per_second,
            common => common.min(self.settings.writes_per_second),
        }
        .max(1)
    }

    /// `DescribeParameters` with `filters`, every page: name → metadata.
    async fn describe(
        &self,
        filters: Vec<ParameterStringFilter>,
    ) -> Result<BTreeMap<String, Meta>> {
        let req = self
            .client
            .describe_parameters()
            .set_parameter_filters(Some(filters))
            .max_results(PAGE);
        let mut out = BTreeMap::new();
        let prefix = self.prefix();
        let mut next: Option<String> = None;
        loop {
            let page = send(&self.counter, "DescribeParameters", || {
                req.clone().set_next_token(next.clone()).send()
            })
            .await
            .map_err(|e| {
                map(
                    e,
                    &format!("listing the parameters of target `{}`", self.name),
                )
            })?;
            next = page.next_token().map(str::to_string);
            for p in page.parameters() {
                let name = p.name().ok_or_else(|| {
                    unexpected(format!(
                        "listing the parameters of target `{}`: a parameter without a name",
                        self.name
                    ))
                })?;
                if !name.starts_with(prefix) || name.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                out.insert(
                    name.to_string(),
                    Meta {
                        version: p.version(),
                        tier: p.tier().map(|t| t.as_str().to_string()),
                        kind: p.r#type().map(|t| t.as_str().to_string()),
                        key_id: p.key_id().map(str::to_string),
                    },
                );
            }
            if next.as_deref().is_none_or(str::is_empty) {
                break;
            }
        }
        Ok(out)
    }

    async fn tags_of(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let out = send(&self.counter, "ListTagsForResource", || {
            self.client
                .list_tags_for_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .send()
        })
        .await
        .map_err(|e| map(e, &format!("reading the tags of `{name}`")))?;
        Ok(out
            .tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    /// This target's parameters under the prefix (one listing with a `tag:` filter on
    /// managed-by, owner and target), and with `adopt_from` those of the targets it takes over
    /// (a second listing; their tags are read, one call each).
    async fn list(&self) -> Result<Listing> {
        let prefix = self.prefix();
        let base = || {
            vec![
                filter("Name", Some("BeginsWith"), &[prefix]),
                filter(&format!("tag:{TAG_MANAGED}"), None, &[MANAGED_VALUE]),
                filter(&format!("tag:{TAG_OWNER}"), None, &[&self.owner]),
            ]
        };
        let mut ours = base();
        ours.push(filter(&format!("tag:{TAG_TARGET}"), None, &[&self.name]));
        let mut out: Listing = self
            .describe(ours)
            .await?
            .into_iter()
            .map(|(n, meta)| (n, (meta, Class::Ours)))
            .collect();
        if !self.policy.adopt_from.is_empty() {
            let mut inherited = base();
            let from: Vec<&str> = self.policy.adopt_from.iter().map(String::as_str).collect();
            inherited.push(filter(&format!("tag:{TAG_TARGET}"), None, &from));
            let found = self.describe(inherited).await?;
            for (n, t) in self.tags_of_all(found.keys().cloned().collect()).await? {
                if let Some(meta) = found.get(&n) {
                    out.entry(n).or_insert((meta.clone(), Class::Managed(t)));
                }
            }
        }
        Ok(out)
    }

    /// The tags of each name, read concurrently.
    async fn tags_of_all(
        &self,
        names: Vec<String>,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let tagged: Vec<Result<(String, BTreeMap<String, String>)>> = stream::iter(names)
            .map(|n| async move { self.tags_of(&n).await.map(|t| (n, t)) })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        tagged.into_iter().collect()
    }

    /// Which of `names` (not in the listing) exist, and whose they are: `DescribeParameters`
    /// by exact names, 50 per call, once as they are and once with the managed-by filter;
    /// the managed ones (another owner or target) have their tags read. A no-change run asks
    /// nothing here: every desired name is already listed.
    async fn check_names(&self, names: Vec<String>) -> Result<Listing> {
        let mut out = Listing::new();
        for chunk in names.chunks(PAGE as usize) {
            let values: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let by_name = || filter("Name", Some("Equals"), &values);
            let found = self.describe(vec![by_name()]).await?;
            if found.is_empty() {
                continue;
            }
            let managed = self
                .describe(vec![
                    by_name(),
                    filter(&format!("tag:{TAG_MANAGED}"), None, &[MANAGED_VALUE]),
                ])
                .await?;
            let mut tags = self.tags_of_all(managed.keys().cloned().collect()).await?;
            for (n, meta) in found {
                let class = match tags.remove(&n) {
                    Some(t) => Class::Managed(t),
                    None => Class::Unmanaged,
                };
                out.insert(n, (meta, class));
            }
        }
        Ok(out)
    }

    /// Current values (decrypted) with `GetParameters`, 10 names per call. A name that is
    /// gone is absent from the answer.
    async fn read_values(&self, names: Vec<String>) -> Result<BTreeMap<String, Current>> {
        let chunks: Vec<Vec<String>> = names.chunks(BATCH).map(<[String]>::to_vec).collect();
        let read: Vec<Result<Vec<(String, Current)>>> = stream::iter(chunks)
            .map(|chunk| async move {
                let out = send(&self.counter, "GetParameters", || {
                    self.client
                        .get_parameters()
                        .set_names(Some(chunk.clone()))
                        .with_decryption(true)
                        .send()
                })
                .await
                .map_err(|e| {
                    map(
                        e,
                        &format!(
                            "reading {} current values of target `{}`",
                            chunk.len(),
                            self.name
                        ),
                    )
                })?;
                out.parameters()
                    .iter()
                    .map(|p| {
                        let name = p.name().ok_or_else(|| {
                            unexpected(format!(
                                "reading values of target `{}`: a parameter without a name",
                                self.name
                            ))
                        })?;
                        Ok((
                            name.to_string(),
                            Current {
                                value: Zeroizing::new(p.value().unwrap_or_default().to_string()),
                                version: p.version(),
                                kind: p.r#type().map(|t| t.as_str().to_string()),
                            },
                        ))
                    })
                    .collect()
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for chunk in read {
            for (n, cur) in chunk? {
                out.insert(n, cur);
            }
        }
        Ok(out)
    }

    /// Where a parameter name belongs: the secret's relative path and the key.
    fn locate<'a>(&self, name: &'a str) -> Option<(&'a str, Option<&'a str>)> {
        let rel = name.strip_prefix(self.prefix())?;
        if rel.is_empty() {
            return None;
        }
        match self.settings.mapping {
            Mapping::Whole => Some((rel, None)),
            Mapping::PerKey => Some(
                self.rules
                    .split(&self.policy.secret_prefix, name)
                    .unwrap_or((rel, None)),
            ),
        }
    }

    /// Ownership marks for a value with this fingerprint, written at `version`.
    fn marks(&self, fingerprint: &str, version: i64, path: &str) -> Vec<Tag> {
        let v = version.to_string();
        [
            (TAG_MANAGED, MANAGED_VALUE),
            (TAG_OWNER, self.owner.as_str()),
            (TAG_TARGET, self.name.as_str()),
            (TAG_FINGERPRINT, fingerprint),
            (TAG_VERSION, v.as_str()),
            (TAG_PATH, path),
        ]
        .into_iter()
        .map(|(k, v)| tag(k, v))
        .collect()
    }

    /// The plan, with what it saw of each secret.
    async fn plan_inner(
        &self,
        listing: Listing,
        desired: &Collected,
        ctx: &PlanContext,
    ) -> Result<(TargetPlan, BTreeMap<String, Group>)> {
        let store = KeyParameter {
            client: &self.client,
            counter: &self.counter,
            target: &self.name,
        };
        let create = !ctx.dry_run;
        let key = self
            .key
            .get(create, key::get_or_create(&store, &self.name, create))
            .await?;
        let opts = support::plan_options(
            &self.name,
            &self.owner,
            &self.policy,
            Arc::new(self.rules.clone()),
            ctx,
            &desired.incomplete,
        );
        let mut listing = listing;
        // Desired names the listing does not know: free, taken by an unmanaged parameter, or
        // by another owner's or target's.
        let unknown: Vec<String> = desired
            .secrets
            .iter()
            .filter(|(path, _)| !desired.incomplete.iter().any(|g| g.covers(path)))
            .filter_map(|(path, v)| self.rules.parameters(&self.rules_name(path), v).ok())
            .flatten()
            .map(|p| p.name)
            .filter(|n| !listing.contains_key(n))
            .collect();
        listing.extend(self.check_names(unknown).await?);
        // With `per_key`, a secret is every parameter below `<secret>/`: a new secret whose
        // folder already holds someone else's parameters (another key) is theirs, not free.
        // One `DescribeParameters` per secret the listing does not know (never on a no-change
        // run).
        if self.settings.mapping == Mapping::PerKey {
            // Only valid secrets (an invalid one is reported and never written).
            let fresh: Vec<String> = desired
                .secrets
                .iter()
                .filter(|(path, _)| !desired.incomplete.iter().any(|g| g.covers(path)))
                .filter(|(path, v)| self.rules.parameters(&self.rules_name(path), v).is_ok())
                .map(|(path, _)| format!("{}/", self.rules_name(path)))
                .filter(|folder| !listing.keys().any(|n| n.starts_with(folder.as_str())))
                .collect();
            let mut found: Vec<String> = Vec::new();
            for folder in fresh {
                let under = self
                    .describe(vec![filter("Name", Some("BeginsWith"), &[folder.as_str()])])
                    .await?;
                found.extend(
                    under
                        .into_keys()
                        .filter(|n| self.locate(n).is_some_and(|(_, k)| k.is_some())),
                );
            }
            if !found.is_empty() {
                listing.extend(self.check_names(found).await?);
            }
        }

        // Each parameter into its secret's group, with its ownership.
        struct Seen {
            path: String,
            params: Vec<SeenParam>,
        }
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        let ours_tags = |path: &str| {
            BTreeMap::from([
                (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
                (TAG_OWNER.to_string(), self.owner.clone()),
                (TAG_TARGET.to_string(), self.name.clone()),
                (TAG_PATH.to_string(), path.to_string()),
            ])
        };
        for (name, (meta, class)) in listing {
            let Some((path, k)) = self
                .locate(&name)
                .map(|(p, k)| (p.to_string(), k.map(str::to_string)))
            else {
                continue;
            };
            let path = path.as_str();
            let (ownership, tags) = match class {
                Class::Ours => (Ownership::Ours, ours_tags(path)),
                Class::Managed(t) => {
                    let l = Listed {
                        name: name.clone(),
                        tags: std::sync::Arc::new(t.clone().into()),
                        ..Default::default()
                    };
                    (l.ownership(&opts), t)
                }
                Class::Unmanaged => (Ownership::Unmanaged, BTreeMap::new()),
            };
            let secret = self.rules_name(path);
            seen.entry(secret)
                .or_insert_with(|| Seen {
                    path: path.to_string(),
                    params: Vec::new(),
                })
                .params
                .push(SeenParam {
                    name,
                    key: k,
                    meta,
                    ownership,
                    tags,
                });
        }

        // Per secret: who it belongs to (as one listed entry), which parameters a change may
        // touch, and which values to read.
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let mut listed: BTreeMap<String, Listed> = BTreeMap::new();
        let mut reads: Vec<String> = Vec::new();
        let held = !desired.incomplete.is_empty();
        for (secret, s) in seen {
            let want = desired.secrets.get(&s.path);
            let wanted: BTreeSet<String> = want
                .and_then(|v| self.rules.parameters(&secret, v).ok())
                .map(|ps| ps.into_iter().map(|p| p.name).collect())
                .unwrap_or_default();
            let writable =
                |o: &Ownership| matches!(o, Ownership::Ours | Ownership::Inherited { .. });
            let foreign = s.params.iter().find(|p| {
                wanted.contains(&p.name) && matches!(p.ownership, Ownership::Foreign { .. })
            });
            let has_writable = s.params.iter().any(|p| writable(&p.ownership));
            // A desired secret with any parameter of nobody's (its own key or another one in its
            // folder) is unmanaged as a whole: skipped unless `adopt`, like a whole-mapping
            // secret.
            let unmanaged_hit =
                want.is_some() && s.params.iter().any(|p| p.ownership == Ownership::Unmanaged);
            let tags = if let Some(f) = foreign {
                f.tags.clone()
            } else if unmanaged_hit {
                BTreeMap::new()
            } else if has_writable {
                // Inherited marks win, so that the plan re-marks them.
                s.params
                    .iter()
                    .find(|p| matches!(p.ownership, Ownership::Inherited { .. }))
                    .map(|p| p.tags.clone())
                    .unwrap_or_else(|| ours_tags(&s.path))
            } else {
                continue;
            };
            let members: BTreeMap<String, Member> = if foreign.is_some() {
                BTreeMap::new()
            } else {
                s.params
                    .into_iter()
                    .filter(|p| {
                        writable(&p.ownership)
                            || (unmanaged_hit && p.ownership == Ownership::Unmanaged)
                    })
                    .map(|p| {
                        let (n, k, meta) = (p.name, p.key, p.meta);
                        let tags = p
                            .tags
                            .into_iter()
                            .filter(|(t, _)| touched().any(|x| x == t))
                            .collect();
                        (
                            n,
                            Member {
                                key: k,
                                meta,
                                tags,
                                value: None,
                            },
                        )
                    })
                    .collect()
            };
            let covered = desired.incomplete.iter().any(|g| g.covers(&s.path));
            let read = match want {
                Some(_) => !covered && (!unmanaged_hit || self.policy.adopt),
                // An orphan's values are kept for a rollback of its deletion.
                None => self.policy.delete_orphans && !held,
            };
            if read {
                reads.extend(members.keys().cloned());
            }
            listed.insert(
                secret.clone(),
                Listed {
                    name: secret.clone(),
                    tags: std::sync::Arc::new(tags.into()),
                    current_version: None,
                    pending_deletion: false,
                },
            );
            groups.insert(
                secret,
                Group {
                    path: s.path,
                    members,
                },
            );
        }
        debug!(target_name = %self.name, secrets = listed.len(), reads = reads.len(), "listed the target");
        let read = self.read_values(reads).await?;

        // What the values say: the marks the plan compares (fingerprint of what is stored, the
        // version mark of the parameters as they are), and the values themselves.
        let mut values: BTreeMap<String, SecretValue> = BTreeMap::new();
        let mut plaintext: BTreeSet<String> = BTreeSet::new();
        for (secret, g) in &mut groups {
            let mut stored: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
            let mut complete = !g.members.is_empty();
            let mut versions = BTreeMap::new();
            for (n, m) in &mut g.members {
                match read.get(n) {
                    Some(Current {
                        value: v,
                        version,
                        kind,
                    }) => {
                        m.value = Some(v.clone());
                        m.meta.version = *version;
                        if kind.is_some() {
                            m.meta.kind = kind.clone();
                        }
                        if m.meta.kind.as_deref() != Some(SECURE) {
                            plaintext.insert(secret.clone());
                        }
                        versions.insert(n.clone(), *version);
                        match (&m.key, self.settings.mapping) {
                            (None, Mapping::Whole) => {
                                stored.insert(String::new(), v.clone());
                            }
                            (Some(k), Mapping::PerKey) => {
                                stored.insert(k.clone(), v.clone());
                            }
                            _ => complete = false,
                        }
                    }
                    None => complete = false,
                }
            }
            if !complete {
                continue;
            }
            let Some(value) = self.rules.rebuild(&stored, desired.secrets.get(&g.path)) else {
                continue;
            };
            let fp = key.fingerprint(&value);
            let mark = version_mark(self.settings.mapping, &versions);
            if let Some(l) = listed.get_mut(secret) {
                let tags = std::sync::Arc::make_mut(&mut l.tags);
                tags.insert(TAG_FINGERPRINT, fp.clone());
                tags.insert(TAG_VERSION, mark.clone());
                l.current_version = Some(mark);
            }
            // Our marks as they are: what a rollback puts back.
            for m in g.members.values_mut() {
                if m.tags.contains_key(TAG_MANAGED) {
                    m.tags.insert(TAG_FINGERPRINT.into(), fp.clone());
                    m.tags
                        .insert(TAG_VERSION.into(), m.meta.version.to_string());
                }
            }
            values.insert(secret.clone(), value);
        }

        let mut plan = diff::plan(&opts, &key, &desired.secrets, &listed, &values);
        check_plan(&self.rules, &mut plan);
        for c in &mut plan.changes {
            match c.kind {
                ChangeKind::Unchanged if plaintext.contains(&c.name) => {
                    c.kind = ChangeKind::Modified;
                    c.retag = false;
                    c.reason = Some(
                        "stored as a plain String, not a SecureString: written again, encrypted"
                            .into(),
                    );
                }
                ChangeKind::Deleted => {
                    c.reason = Some(
                        "deleted for good: Parameter Store keeps no deleted parameters (a failed apply recreates them)"
                            .into(),
                    );
                }
                _ => {}
            }
        }
        self.plan_reencrypt(&mut plan, &groups);
        Ok((plan, groups))
    }

    /// Whether a member is a `SecureString` under another key than the configured one.
    fn stale_key(&self, m: &Member) -> bool {
        m.meta.kind.as_deref() == Some(SECURE)
            && needs_reencrypt(
                self.settings.kms_key_id.as_deref(),
                m.meta.key_id.as_deref(),
            )
    }

    /// Plans a re-encryption (a `kms_key_id` setting change) for every secret kept or written
    /// whose desired parameters include a `SecureString` under another key: the apply writes
    /// those again with the same value under the configured key ([`Self::update`]).
    fn plan_reencrypt(&self, plan: &mut TargetPlan, groups: &BTreeMap<String, Group>) {
        let Some(key) = self.settings.kms_key_id.as_deref() else {
            return;
        };
        for c in &mut plan.changes {
            if !matches!(c.kind, ChangeKind::Unchanged | ChangeKind::Modified) {
                continue;
            }
            let (Some(g), Some(value)) = (groups.get(&c.name), c.new_value.as_ref()) else {
                continue;
            };
            let Ok(params) = self.rules.parameters(&c.name, value) else {
                continue;
            };
            let stale: Vec<(&str, Option<&str>)> = params
                .iter()
                .filter_map(|p| g.members.get_key_value(&p.name))
                .filter(|(_, m)| self.stale_key(m))
                .map(|(n, m)| (n.as_str(), m.meta.key_id.as_deref()))
                .collect();
            if !stale.is_empty() {
                c.settings.push(reencrypt_change(key, &stale, params.len()));
            }
        }
    }

    fn rules_name(&self, path: &str) -> String {
        use secretsync_core::targets::TargetRules;
        self.rules.name(&self.policy.secret_prefix, path)
    }

    /// One `PutParameter` (`kind` defaults to `SecureString`); a create (`overwrite` false)
    /// carries `tags`.
    async fn put(
        &self,
        name: &str,
        value: &str,
        shape: Shape<'_>,
        overwrite: bool,
        tags: Vec<Tag>,
    ) -> crate::aws::Sent<i64, aws_sdk_ssm::operation::put_parameter::PutParameterError> {
        let kind = shape.kind.unwrap_or(SECURE);
        let mut req = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::from(kind))
            .tier(tier_of(shape.tier))
            .overwrite(overwrite);
        if kind == SECURE
            && let Some(k) = shape.key_id
        {
            req = req.key_id(k);
        }
        if !overwrite && !tags.is_empty() {
            req = req.set_tags(Some(tags));
        }
        send(&self.counter, "PutParameter", || req.clone().send())
            .await
            .map(|o| o.version())
    }

    /// After a write failed in a way that may have landed (timeout, lost connection, 5xx):
    /// the version now holding `value`, if it is newer than `after`. `Err`: unknown.
    async fn landed(
        &self,
        name: &str,
        value: &str,
        after: i64,
    ) -> std::result::Result<Option<i64>, ()> {
        let got = send(&self.counter, "GetParameters", || {
            self.client
                .get_parameters()
                .names(name)
                .with_decryption(true)
                .send()
        })
        .await
        .map_err(|_| ())?;
        Ok(got
            .parameters()
            .iter()
            .find(|p| p.name() == Some(name))
            .filter(|p| p.version() > after && p.value() == Some(value))
            .map(|p| p.version()))
    }

    /// A write of `value` to `name` (`prior`: the version it overwrites; `None` creates, with
    /// `tags`), resolving a failure that may have landed: a timeout, a lost connection, a 5xx,
    /// or a create whose first attempt landed but whose answer was lost, so that the SDK's
    /// retry met `ParameterAlreadyExists`. Landed means: a newer version holds `value` (and, for
    /// a create, carries the tags this create sent, which nobody else writes).
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        pacer: &Pacer,
        name: &str,
        value: &str,
        tier: Tier,
        prior: Option<i64>,
        tags: Vec<Tag>,
        what: &str,
    ) -> Result<i64> {
        pacer.wait().await;
        let sent: BTreeMap<String, String> = tags
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let res = self
            .put(
                name,
                value,
                Shape {
                    tier,
                    kind: None,
                    key_id: self.settings.kms_key_id.as_deref(),
                },
                prior.is_some(),
                tags,
            )
            .await;
        let e = match res {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let retried_create = prior.is_none() && code(&e) == Some("ParameterAlreadyExists");
        let err = map(e, &format!("{what} `{name}`"));
        if !retried_create && !matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Unexpected) {
            return Err(err);
        }
        let landed = match self.landed(name, value, prior.unwrap_or(0)).await {
            Ok(Some(v)) if prior.is_none() => match self.tags_of(name).await {
                Ok(t) if sent.iter().all(|(k, v)| t.get(k) == Some(v)) => Ok(Some(v)),
                Ok(_) => Ok(None),
                Err(_) => Err(()),
            },
            other => other,
        };
        match landed {
            Ok(Some(v)) => {
                warn!(target_name = %self.name, parameter = %name, "a write reported an error but landed; continuing");
                Ok(v)
            }
            Ok(None) => Err(err),
            Err(()) => Err(Error::new(
                err.kind,
                format!(
                    "{}; it may have landed and its state could not be checked: look at `{name}`",
                    err.message
                ),
            )),
        }
    }

    async fn add_tags(&self, pacer: Option<&Pacer>, name: &str, tags: Vec<Tag>) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        if let Some(p) = pacer {
            p.wait().await;
        }
        send(&self.counter, "AddTagsToResource", || {
            self.client
                .add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await
        .map_err(|e| map(e, &format!("tagging `{name}`")))?;
        Ok(())
    }

    /// Puts our tag keys back as they were: restored where they existed, removed where not.
    /// `version` replaces a restored version mark (the parameter's version after a restore).
    async fn restore_tags(
        &self,
        name: &str,
        before: &BTreeMap<String, String>,
        version: Option<i64>,
    ) -> Result<()> {
        let restore: Vec<Tag> = touched()
            .filter_map(|k| {
                before.get(k).map(|v| match (k, version) {
                    (TAG_VERSION, Some(n)) => tag(k, &n.to_string()),
                    _ => tag(k, v),
                })
            })
            .collect();
        self.add_tags(None, name, restore).await?;
        let remove: Vec<String> = touched()
            .filter(|k| !before.contains_key(*k))
            .map(str::to_string)
            .collect();
        if remove.is_empty() {
            return Ok(());
        }
        send(&self.counter, "RemoveTagsFromResource", || {
            self.client
                .remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tag_keys(Some(remove.clone()))
                .send()
        })
        .await
        .map_err(|e| map(e, &format!("removing the ownership tags added to `{name}`")))?;
        Ok(())
    }

    /// The parameters a change writes, and the secret's fingerprint.
    fn payload<'a>(&self, c: &'a SecretChange) -> Result<(Vec<Param>, &'a str)> {
        let (value, fp) = support::payload(c)?;
        let params = self
            .rules
            .parameters(&c.name, value)
            .map_err(|e| Error::new(ErrorKind::Limit, format!("`{}`: {e}", c.name)))?;
        Ok((params, fp))
    }

    /// Creates a secret's parameters (each with its ownership tags).
    async fn create(
        &self,
        c: &SecretChange,
        path: &str,
        pacer: &Pacer,
        done: &mut Done,
    ) -> Result<()> {
        let (params, fp) = self.payload(c)?;
        for p in params {
            self.write(
                pacer,
                &p.name,
                &p.value,
                p.tier,
                None,
                self.marks(fp, 1, path),
                "creating",
            )
            .await?;
            done.ops.push(Op::Created { name: p.name });
        }
        Ok(())
    }

    /// Brings a secret's parameters to the desired value: writes what differs, creates new
    /// keys, re-marks the rest, deletes removed keys. Retags only, when the value matches.
    async fn update(
        &self,
        c: &SecretChange,
        g: &Group,
        pacer: &Pacer,
        done: &mut Done,
    ) -> Result<()> {
        let (params, fp) = self.payload(c)?;
        let mut keep: Vec<(&str, &Member)> = Vec::new();
        let wanted: BTreeSet<&str> = params.iter().map(|p| p.name.as_str()).collect();
        for p in &params {
            match g.members.get(&p.name) {
                // Kept as it is unless it is under another key than the configured one
                // (re-encrypted: written again, the same value under the new key).
                Some(m)
                    if (c.retag
                        || (m.value.as_deref().map(String::as_str) == Some(p.value.as_str())
                            && m.meta.kind.as_deref() == Some(SECURE)))
                        && !self.stale_key(m) =>
                {
                    keep.push((&p.name, m));
                }
                Some(m) => {
                    let tier = p.tier.max(parse_tier(m.meta.tier.as_deref()));
                    let before = Before {
                        value: m.value.clone().ok_or_else(|| {
                            unexpected(format!(
                                "cannot update `{}`: its current value was not read",
                                p.name
                            ))
                        })?,
                        tier: m.meta.tier.clone(),
                        kind: m.meta.kind.clone(),
                        key_id: m.meta.key_id.clone(),
                        tags: m.tags.clone(),
                    };
                    let v = self
                        .write(
                            pacer,
                            &p.name,
                            &p.value,
                            tier,
                            Some(m.meta.version),
                            Vec::new(),
                            "writing",
                        )
                        .await?;
                    done.ops.push(Op::Overwrote {
                        name: p.name.clone(),
                        before,
                        tier,
                    });
                    self.add_tags(Some(pacer), &p.name, self.marks(fp, v, &g.path))
                        .await?;
                }
                None => {
                    self.write(
                        pacer,
                        &p.name,
                        &p.value,
                        p.tier,
                        None,
                        self.marks(fp, 1, &g.path),
                        "creating",
                    )
                    .await?;
                    done.ops.push(Op::Created {
                        name: p.name.clone(),
                    });
                }
            }
        }
        // A re-encryption alone re-marks only what it wrote: the rest keeps its marks.
        let reencrypt_only = c.kind == ChangeKind::Unchanged && !c.retag;
        for (name, m) in keep.into_iter().filter(|_| !reencrypt_only) {
            self.add_tags(Some(pacer), name, self.marks(fp, m.meta.version, &g.path))
                .await?;
            done.ops.push(Op::Tagged {
                name: name.to_string(),
                before: m.tags.clone(),
            });
        }
        let removed: Vec<(&String, &Member)> = g
            .members
            .iter()
            // Ours, or the rest of a secret this change adopts (`adopt: true` takes the whole
            // folder over; its keys that are not desired go, and a rollback brings them back).
            .filter(|(n, m)| {
                !wanted.contains(n.as_str()) && (m.tags.contains_key(TAG_MANAGED) || c.adopt)
            })
            .collect();
        self.delete(&removed, pacer, done).await
    }

    /// Deletes parameters (10 per call), keeping each one's value and tags to recreate it.
    async fn delete(
        &self,
        members: &[(&String, &Member)],
        pacer: &Pacer,
        done: &mut Done,
    ) -> Result<()> {
        for chunk in members.chunks(BATCH) {
            let mut befores = BTreeMap::new();
            for (name, m) in chunk {
                let value = m.value.clone().ok_or_else(|| {
                    unexpected(format!(
                        "cannot delete `{name}`: its value was not read, so a rollback could not recreate it"
                    ))
                })?;
                befores.insert(
                    name.to_string(),
                    Before {
                        value,
                        tier: m.meta.tier.clone(),
                        kind: m.meta.kind.clone(),
                        key_id: m.meta.key_id.clone(),
                        // Every tag (not only ours), to recreate it as it was.
                        tags: self.tags_of(name).await?,
                    },
                );
            }
            pacer.wait().await;
            let names: Vec<String> = befores.keys().cloned().collect();
            let res = send(&self.counter, "DeleteParameters", || {
                self.client
                    .delete_parameters()
                    .set_names(Some(names.clone()))
                    .send()
            })
            .await;
            let gone: Vec<String> = match res {
                Ok(out) => out.deleted_parameters().to_vec(),
                Err(e) => {
                    let err = map(e, &format!("deleting {}", names.join(", ")));
                    // Whatever went is recorded, so the rollback recreates it.
                    if let Ok(now) = send(&self.counter, "GetParameters", || {
                        self.client
                            .get_parameters()
                            .set_names(Some(names.clone()))
                            .send()
                    })
                    .await
                    {
                        for n in now.invalid_parameters() {
                            if let Some(before) = befores.remove(n) {
                                done.ops.push(Op::Deleted {
                                    name: n.clone(),
                                    before,
                                });
                            }
                        }
                    }
                    return Err(err);
                }
            };
            for n in gone {
                if let Some(before) = befores.remove(&n) {
                    done.ops.push(Op::Deleted { name: n, before });
                }
            }
        }
        Ok(())
    }

    /// Undoes one write call.
    async fn undo(&self, op: Op) -> Result<()> {
        match op {
            Op::Created { name } => {
                send(&self.counter, "DeleteParameter", || {
                    self.client.delete_parameter().name(&name).send()
                })
                .await
                .map_err(|e| map(e, &format!("rolling back the creation of `{name}`")))?;
                Ok(())
            }
            Op::Overwrote { name, before, tier } => {
                let v = self
                    .put(
                        &name,
                        &before.value,
                        Shape {
                            tier: tier.max(parse_tier(before.tier.as_deref())),
                            kind: before.kind.as_deref(),
                            key_id: before.key_id.as_deref(),
                        },
                        true,
                        Vec::new(),
                    )
                    .await
                    .map_err(|e| map(e, &format!("rolling back `{name}` to its previous value")))?;
                self.restore_tags(&name, &before.tags, Some(v)).await
            }
            Op::Tagged { name, before } => self.restore_tags(&name, &before, None).await,
            Op::Deleted { name, before } => {
                let tags: Vec<Tag> = before
                    .tags
                    .iter()
                    .map(|(k, v)| {
                        if k == TAG_VERSION {
                            tag(k, "1")
                        } else {
                            tag(k, v)
                        }
                    })
                    .collect();
                self.put(
                    &name,
                    &before.value,
                    Shape {
                        tier: parse_tier(before.tier.as_deref()),
                        kind: before.kind.as_deref(),
                        key_id: before.key_id.as_deref(),
                    },
                    false,
                    tags,
                )
                .await
                .map_err(|e| map(e, &format!("rolling back the deletion of `{name}`")))?;
                Ok(())
            }
        }
    }

    /// Undoes one secret's writes in reverse order; `Err` says what could not be undone.
    async fn undo_all(&self, ops: Vec<Op>) -> Result<()> {
        let mut failures = Vec::new();
        for op in ops.into_iter().rev() {
            if let Err(e) = self.undo(op).await {
                failures.push(e.message);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(unexpected(failures.join("; ")))
        }
    }
}

#[async_trait]
impl Target for AwsSsmTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn calls(&self) -> u64 {
        self.counter.get()
    }

    /// Parameter Store has no compare-and-swap: the lease is a lock secret in Secrets Manager
    /// in the same account and region.
    fn lease_backend(&self) -> Arc<dyn crate::lease::LeaseBackend> {
        crate::targets::aws_sm::leases(&self.sm, &self.counter)
    }

    async fn prefetch(&self) {
        self.prefetched.keep(self.list().await).await;
    }

    async fn plan(&self, desired: &Collected, ctx: &PlanContext) -> Result<TargetPlan> {
        let listing = self.prefetched.take_or(self.list()).await?;
        let (plan, groups) = self.plan_inner(listing, desired, ctx).await?;
        *self.observed.lock().await = groups;
        Ok(plan)
    }

    async fn apply(&self, plan: &TargetPlan, cancel: &Cancel) -> ApplyReport {
        let writer = Writer {
            target: self,
            observed: self.observed.lock().await.clone(),
        };
        let pace = Pace {
            writes_per_second: self.writes_per_second(),
            ..Pace::from(&self.policy)
        };
        apply::run(&writer, &self.name, pace, plan, cancel).await
    }
}

/// The target's half of the apply ([`apply::run`]), with what the plan saw.
struct Writer<'a> {
    target: &'a AwsSsmTarget,
    observed: BTreeMap<String, Group>,
}

#[async_trait]
impl Apply for Writer<'_> {
    type Done = Done;

    /// A secret is several parameters: every write call is paced.
    fn paces_each_call(&self) -> bool {
        true
    }

    /// Besides writes and re-marks: re-encryptions (an unchanged secret with a `kms_key_id`
    /// setting change).
    fn writes(&self, c: &SecretChange) -> bool {
        matches!(c.kind, ChangeKind::Added | ChangeKind::Modified)
            || (c.kind == ChangeKind::Unchanged && (c.retag || !c.settings.is_empty()))
    }

    async fn write(&self, c: &SecretChange, w: &Writes<'_>) -> Result<Done, Failed<Done>> {
        let kind = match c.kind {
            ChangeKind::Added => Counted::Created,
            ChangeKind::Modified => Counted::Updated,
            _ => Counted::Retagged,
        };
        let mut done = Done {
            secret: c.name.clone(),
            kind,
            ops: Vec::new(),
        };
        let r = match (kind, self.observed.get(&c.name)) {
            (Counted::Created, _) => {
                let path = c.path.clone();
                self.target.create(c, &path, w.pacer, &mut done).await
            }
            (_, Some(g)) => self.target.update(c, g, w.pacer, &mut done).await,
            (_, None) => Err(unexpected(format!(
                "`{}` was not seen by this target's plan; plan again before applying",
                c.name
            ))),
        };
        match r {
            Ok(()) => Ok(done),
            Err(error) => Err(Failed {
                error,
                partial: Some(done),
            }),
        }
    }

    async fn delete(&self, c: &SecretChange, w: &Writes<'_>) -> Result<Done, Failed<Done>> {
        let mut done = Done {
            secret: c.name.clone(),
            kind: Counted::Deleted,
            ops: Vec::new(),
        };
        let members: Vec<(&String, &Member)> = self
            .observed
            .get(&c.name)
            .map(|g| {
                g.members
                    .iter()
                    .filter(|(_, m)| m.tags.contains_key(TAG_MANAGED))
                    .collect()
            })
            .unwrap_or_default();
        match self.target.delete(&members, w.pacer, &mut done).await {
            Ok(()) => Ok(done),
            Err(error) => Err(Failed {
                error,
                partial: Some(done),
            }),
        }
    }

    fn counted(&self, d: &Done) -> Counted {
        d.kind
    }

    /// As for every target: re-marked secrets kept their values, so they are not "left
    /// changed".
    fn changed<'d>(&self, d: &'d Done) -> Option<&'d str> {
        (d.kind != Counted::Retagged).then_some(d.secret.as_str())
    }

    /// A secret with a write call to undo (re-marked ones included).
    fn undoable<'d>(&self, d: &'d Done) -> Option<&'d str> {
        (!d.ops.is_empty()).then_some(d.secret.as_str())
    }

    async fn undo(&self, d: Done) -> Result<()> {
        self.target.undo_all(d.ops).await
    }
}
