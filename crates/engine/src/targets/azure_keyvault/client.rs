//! The `azure_keyvault` target implementation: the connection (the SDK's `SecretClient` over
//! our reqwest client, a static token or the Azure identity chain), the listing (live and
//! soft-deleted secrets with their tags), value reads, the fingerprint key, and the writes,
//! soft deletes, purges, recoveries and their undo that `support::apply` drives.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::models::{
    SecretClientGetSecretOptions, SecretClientListDeletedSecretPropertiesOptions,
    SecretClientListSecretPropertiesOptions, SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures::{StreamExt, TryStreamExt, stream};
use secretsync_core::config::TargetPolicy;
use secretsync_core::diff::{
    ChangeKind, Listed, MANAGED_VALUE, SecretChange, TAG_FINGERPRINT, TAG_HASH, TAG_MANAGED,
    TAG_OWNER, TAG_ROLE, TAG_TARGET, TAG_VERSION, Tags, TargetPlan,
};
use secretsync_core::fingerprint::FingerprintKey;
use secretsync_core::secret::{Collected, SecretValue};
use secretsync_core::targets::TargetRules;
use secretsync_core::targets::azure_keyvault::{
    AzureAuth, AzureKeyVaultRules, AzureKeyVaultSettings as Settings, CONTENT_TYPE, MAX_TAGS,
    refuse_case_collisions,
};
use serde_json::Value;
use tracing::{debug, warn};

use super::error::{Failure, MAX_RETRY_AFTER, in_target};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::LeaseBackend;
use crate::observe::{self, Endpoint, Observers, Outcome};
use crate::targets::support::apply::{self, Apply, Counted, Failed, Pace, Writes};
use crate::targets::support::key::{self, KeyCache, KeyRead, KeyStore};
use crate::targets::support::{self, Prefetched, payload};
use crate::targets::{ApplyReport, PlanContext, Target};

/// The fingerprint key's secret (see `secretsync_core::fingerprint`): readable by exactly
/// those who can read the secrets. Its single `-` before a letter other than `-sudx` makes it
/// a name the mapping never produces, so no Vault path can collide with it.
pub const KEY_NAME: &str = "secretsync-fingerprint-key";
/// The fingerprint key's `content_type`.
const KEY_CONTENT_TYPE: &str = "application/vnd.secretsync.fingerprint-key";
/// A listing page (Key Vault's maximum).
const PAGE: i32 = 25;
/// Entries a listing may hold before the target is refused.
const MAX_LISTED: usize = 1_000_000;
/// How often, and how many times, a recovery or deletion in progress is polled.
const POLL_EVERY: Duration = Duration::from_millis(250);
const POLLS: u32 = 240;

/// A static bearer token (`auth: { token: … }`): given as it is, for any scope.
struct StaticToken(Secret);

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(redacted)")
    }
}

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// The scopes a token is given for: Key Vault's, in the public and sovereign clouds. The
/// scope comes from the vault's authentication challenge; a server that is not a vault (a
/// wrong `vault_url`) could otherwise ask for a token to another Azure API.
const VAULT_SCOPES: &[&str] = &[
    "https://vault.azure.net/.default",
    "https://vault.azure.cn/.default",
    "https://vault.usgovcloudapi.net/.default",
    "https://vault.microsoftazure.de/.default",
];

/// A credential that gives tokens for Key Vault's scopes only.
#[derive(Debug)]
struct VaultOnly(Arc<dyn TokenCredential>);

#[async_trait]
impl TokenCredential for VaultOnly {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if scopes.is_empty()
            || scopes
                .iter()
                .any(|s| !VAULT_SCOPES.contains(&s.trim_end_matches('/')))
        {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "the server at `vault_url` asked for a token for {scopes:?}, which is not Key Vault's (`https://vault.azure.net/.default`); no token was given: check `vault_url`"
                ),
            ));
        }
        self.0.get_token(scopes, options).await
    }
}

/// The Azure identity chain: the first of these that gives a token serves every later
/// request. azure_identity 1.x has no `DefaultAzureCredential`; this is its order.
pub(crate) struct Chain {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    chosen: std::sync::Mutex<Option<usize>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("sources", &self.names())
            .finish()
    }
}

impl Chain {
    /// The credentials tried, in order.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|(n, _)| *n).collect()
    }

    /// Workload identity (AZURE_FEDERATED_TOKEN_FILE), a client secret (AZURE_TENANT_ID,
    /// AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), a managed identity, the Azure CLI and Azure
    /// Developer CLI.
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Chain> {
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        let cred_err = |what: &str, e: azure_core::Error| {
            Error::config(format!("cannot set up the {what} credential: {e}"))
        };
        if let Some(file) = env("AZURE_FEDERATED_TOKEN_FILE") {
            let options = azure_identity::WorkloadIdentityCredentialOptions {
                tenant_id: env("AZURE_TENANT_ID"),
                client_id: env("AZURE_CLIENT_ID"),
                token_file_path: Some(file.into()),
                ..Default::default()
            };
            let c = azure_identity::WorkloadIdentityCredential::new(Some(options))
                .map_err(|e| cred_err("workload identity", e))?;
            sources.push(("workload identity", c));
        }
        if let (Some(tenant), Some(client), Some(secret)) = (
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_CLIENT_SECRET"),
        ) {
            let c = azure_identity::ClientSecretCredential::new(
                &tenant,
                client,
                Secret::new(secret),
                None,
            )
            .map_err(|e| cred_err("client secret", e))?;
            sources.push(("client secret (AZURE_CLIENT_SECRET)", c));
        }
        let c = azure_identity::ManagedIdentityCredential::new(None)
            .map_err(|e| cred_err("managed identity", e))?;
        sources.push(("managed identity", c));
        let c = azure_identity::DeveloperToolsCredential::new(None)
            .map_err(|e| cred_err("Azure CLI", e))?;
        sources.push(("Azure CLI / Azure Developer CLI", c));
        Ok(Chain {
            sources,
            chosen: std::sync::Mutex::new(None),
        })
    }
}

#[async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = *self.chosen.lock().expect("chain lock");
        if let Some(i) = chosen {
            return self.sources[i].1.get_token(scopes, options).await;
        }
        let mut tried = Vec::new();
        for (i, (name, c)) in self.sources.iter().enumerate() {
            match c.get_token(scopes, options.clone()).await {
                Ok(t) => {
                    *self.chosen.lock().expect("chain lock") = Some(i);
                    debug!(credential = name, "an Azure credential gave a token");
                    return Ok(t);
                }
                Err(e) => tried.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "no credential of the Azure identity chain gave a token ({})",
                tried.join("; ")
            ),
        ))
    }
}

/// The vault: the SDK client and the call wrapper (retries, counting, error mapping).
pub(crate) struct Vault {
    client: SecretClient,
    calls: Arc<AtomicU64>,
    retry: crate::retry::Policy,
    observers: Observers,
    endpoint: Endpoint,
}

/// A secret as listed: its name and its latest version's tags.
struct Item {
    name: String,
    tags: BTreeMap<String, String>,
}

/// The secret's name from its id (`https://<vault>/secrets/<name>[/<version>]` or
/// `…/deletedsecrets/<name>`).
fn name_of_id(id: Option<&str>) -> Result<String> {
    let id = id.unwrap_or_default();
    let rest = id
        .split_once("/secrets/")
        .or_else(|| id.split_once("/deletedsecrets/"))
        .map(|(_, r)| r)
        .unwrap_or_default();
    let name = rest.split('/').next().unwrap_or_default();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "the vault listed a secret whose id `{}` has no secret name",
                id.chars().take(200).collect::<String>()
            ),
        ));
    }
    Ok(name.to_string())
}

/// ` (path \`apps/db\`)` for a name the mapping makes, for messages.
fn path_note(name: &str) -> String {
    match secretsync_core::targets::azure_keyvault::decode(name) {
        Some(p) if p != name => format!(" (path `{p}`)"),
        _ => String::new(),
    }
}

fn hashmap(tags: &BTreeMap<String, String>) -> HashMap<String, String> {
    tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl Vault {
    pub(crate) fn connect(
        settings: &Settings,
        env: &dyn Fn(&str) -> Option<String>,
        transport: Option<Transport>,
    ) -> Result<Vault> {
        let credential: Arc<dyn TokenCredential> = match &settings.auth {
            AzureAuth::Token(t) => Arc::new(StaticToken(Secret::new(t.expose().to_string()))),
            AzureAuth::Chain => Arc::new(Chain::from_env(env)?),
        };
        let credential: Arc<dyn TokenCredential> = Arc::new(VaultOnly(credential));
        let transport = match transport {
            Some(t) => t,
            None => Transport::new(Arc::new(http_client(settings)?)),
        };
        let options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(transport),
                retry: RetryOptions::none(),
                ..Default::default()
            },
            // A vault behind another host name (a test server, a private DNS name) answers
            // with the `vault.azure.net` resource, which the SDK would refuse for that host;
            // [`VaultOnly`] still refuses any scope that is not Key Vault's.
            verify_challenge_resource: Some(is_vault_host(&settings.vault_url)),
            ..Default::default()
        };
        let client = SecretClient::new(&settings.vault_url, credential, Some(options))
            .map_err(|e| Error::config(format!("`vault_url` cannot be used: {e}")))?;
        let host =
            observe::url_host(&settings.vault_url).unwrap_or_else(|| settings.vault_url.clone());
        Ok(Vault {
            client,
            calls: Arc::new(AtomicU64::new(0)),
            retry: crate::retry::Policy::new(crate::retry::AZURE_MAX_ATTEMPTS),
            observers: Observers::default(),
            endpoint: Endpoint::azure(&host),
        })
    }

    /// Every call is retried by `retry`, and every attempt admitted by and reported to
    /// `observers` (metrics, circuit breakers, tracing) as `azure/<vault host>`.
    pub(crate) fn observed(mut self, retry: crate::retry::Policy, observers: Observers) -> Self {
        self.retry = retry;
        self.observers = observers;
        self
    }

    /// One call through the retry layer: the failure after the last attempt, if any. A
    /// throttled attempt waits the vault's `Retry-After` (at most 30 s) before the next one.
    async fn call<T, F, Fut>(
        &self,
        op: &str,
        what: &str,
        f: F,
    ) -> std::result::Result<T, (Failure, Error)>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let wait = std::sync::Mutex::new(None::<Duration>);
        let tried = crate::retry::run(
            &self.retry,
            op,
            |f: &Failure| f.to_error(what),
            |_n| {
                let pending = wait.lock().expect("wait lock").take();
                let calls = self.calls.clone();
                let fut = f();
                let wait = &wait;
                async move {
                    if let Some(d) = pending {
                        tokio::time::sleep(d.min(MAX_RETRY_AFTER)).await;
                    }
                    let attempt = async {
                        calls.fetch_add(1, Ordering::Relaxed);
                        fut.await.map_err(|e| {
                            let failure = Failure::from_azure(&e);
                            *wait.lock().expect("wait lock") = failure.retry_after;
                            failure
                        })
                    };
                    let outcome = |r: &std::result::Result<T, Failure>| match r {
                        Ok(_) => Outcome::Ok,
                        Err(f) => f.outcome(),
                    };
                    match observe::observed(&self.observers, &self.endpoint, op, outcome, attempt)
                        .await
                    {
                        Ok(r) => r,
                        Err(refusal) => Err(Failure::refused(refusal)),
                    }
                }
            },
        )
        .await;
        let (attempts, elapsed, request_id) = (tried.attempts, tried.elapsed, tried.request_id);
        tried.result.map_err(|f| {
            let e = f.to_error(what).with_call(crate::error::CallFacts {
                operation: op.to_string(),
                path: String::new(),
                attempts,
                elapsed,
                request_id,
            });
            (f, e)
        })
    }

    /// [`Vault::call`] with not found as `None` and every other failure as the error.
    async fn optional<T, F, Fut>(&self, op: &str, what: &str, f: F) -> Result<Option<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        match self.call(op, what, f).await {
            Ok(t) => Ok(Some(t)),
            Err((f, _)) if f.is_not_found() => Ok(None),
            Err((_, e)) => Err(e),
        }
    }

    async fn list(&self, deleted: bool) -> Result<Vec<Item>> {
        let what = if deleted {
            "listing the deleted secrets"
        } else {
            "listing the secrets"
        };
        let op = if deleted {
            "getDeletedSecrets"
        } else {
            "getSecrets"
        };
        let raw = self
            .call(op, what, || async {
                let mut out = Vec::new();
                if deleted {
                    let opts = SecretClientListDeletedSecretPropertiesOptions {
                        maxresults: Some(PAGE),
                        ..Default::default()
                    };
                    let mut pages = self.client.list_deleted_secret_properties(Some(opts))?;
                    while let Some(p) = pages.try_next().await? {
                        out.push((p.id, p.tags));
                        if out.len() > MAX_LISTED {
                            break;
                        }
                    }
                } else {
                    let opts = SecretClientListSecretPropertiesOptions {
                        maxresults: Some(PAGE),
                        ..Default::default()
                    };
                    let mut pages = self.client.list_secret_properties(Some(opts))?;
                    while let Some(p) = pages.try_next().await? {
                        out.push((p.id, p.tags));
                        if out.len() > MAX_LISTED {
                            break;
                        }
                    }
                }
                Ok(out)
            })
            .await
            .map_err(|(_, e)| e)?;
        if raw.len() > MAX_LISTED {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("the vault lists more than {MAX_LISTED} secrets; use a vault per purpose"),
            ));
        }
        raw.into_iter()
            .map(|(id, tags)| {
                Ok(Item {
                    name: name_of_id(id.as_deref())?,
                    tags: tags.unwrap_or_default().into_iter().collect(),
                })
            })
            .collect()
    }

    /// The latest value of `name` (`None`: no such live secret).
    async fn get(&self, name: &str) -> Result<Option<String>> {
        let what = format!("reading `{name}`");
        let got = self
            .optional("getSecret", &what, || async {
                self.client
                    .get_secret(name, None::<SecretClientGetSecretOptions>)
                    .await?
                    .into_model()
            })
            .await?;
        match got {
            None => Ok(None),
            Some(s) => s.value.map(Some).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("{what}: the vault answered without a value"),
                )
            }),
        }
    }

    /// The tags of the soft-deleted `name` (`None`: not soft-deleted, or not yet).
    async fn get_deleted(&self, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        let what = format!("reading the deleted secret `{name}`");
        Ok(self
            .optional("getDeletedSecret", &what, || async {
                self.client
                    .get_deleted_secret(name, None)
                    .await?
                    .into_model()
            })
            .await?
            .map(|d| d.tags.unwrap_or_default().into_iter().collect()))
    }

    /// Sets a new version of `name`.
    async fn set(
        &self,
        name: &str,
        value: &str,
        content_type: &str,
        tags: &BTreeMap<String, String>,
    ) -> std::result::Result<(), (Failure, Error)> {
        let what = format!("writing `{name}`{}", path_note(name));
        self.call("setSecret", &what, || async {
            let params = SetSecretParameters {
                value: Some(value.to_string()),
                content_type: Some(content_type.to_string()),
                tags: Some(hashmap(tags)),
                ..Default::default()
            };
            self.client
                .set_secret(name, params.try_into()?, None)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Replaces the tags of the latest version of `name`.
    async fn set_tags(&self, name: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        let what = format!("updating the tags of `{name}`");
        self.call("updateSecret", &what, || async {
            let params = UpdateSecretPropertiesParameters {
                tags: Some(hashmap(tags)),
                ..Default::default()
            };
            self.client
                .update_secret_properties(name, params.try_into()?, None)
                .await
                .map(|_| ())
        })
        .await
        .map_err(|(_, e)| e)
    }

    /// Soft-deletes `name`; `false`: it was not there.
    async fn delete(&self, name: &str) -> Result<bool> {
        let what = format!("deleting `{name}`{}", path_note(name));
        Ok(self
            .optional("deleteSecret", &what, || async {
                self.client.delete_secret(name, None).await.map(|_| ())
            })
            .await?
            .is_some())
    }

    /// Recovers the soft-deleted `name` and waits until it can be read (recovery is
    /// asynchronous).
    async fn recover(&self, name: &str) -> Result<()> {
        let what = format!("recovering `{name}`");
        let mut polls = 0;
        loop {
            match self
                .call("recoverDeletedSecret", &what, || async {
                    self.client
                        .recover_deleted_secret(name, None)
                        .await
                        .map(|_| ())
                })
                .await
            {
                Ok(()) => break,
                // Not (or no longer) deleted: recovered by someone else, or live; the wait
                // below tells.
                Err((f, _)) if f.is_not_found() => break,
                // Its deletion is still completing: it can be recovered once it has.
                Err((f, _)) if f.is_in_progress() && polls < POLLS => {
                    polls += 1;
                    tokio::time::sleep(POLL_EVERY).await;
                }
                Err((_, e)) => return Err(e),
            }
        }
        self.wait(name, true).await
    }

    /// Purges the soft-deleted `name`, once its deletion has completed.
    async fn purge(&self, name: &str) -> Result<()> {
        let what = format!("purging `{name}`");
        self.wait(name, false).await?;
        match self
            .call("purgeDeletedSecret", &what, || async {
                self.client
                    .purge_deleted_secret(name, None)
                    .await
                    .map(|_| ())
            })
            .await
        {
            Ok(()) => Ok(()),
            Err((f, _)) if f.is_not_found() => Ok(()),
            Err((_, e)) => Err(e),
        }
    }

    /// Waits until `name` is readable (`live`) or readable as a deleted secret.
    async fn wait(&self, name: &str, live: bool) -> Result<()> {
        for _ in 0..POLLS {
            let there = if live {
                self.get(name).await?.is_some()
            } else {
                self.get_deleted(name).await?.is_some()
            };
            if there {
                return Ok(());
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        let state = if live { "recovered" } else { "deleted" };
        Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "`{name}` was not {state} after {}s; look at it in the vault and run again",
                (POLL_EVERY * POLLS).as_secs()
            ),
        ))
    }
}

/// Whether the URL's host is a Key Vault DNS name of a public or sovereign cloud.
pub(crate) fn is_vault_host(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    VAULT_SCOPES.iter().any(|s| {
        let domain = s
            .trim_start_matches("https://")
            .trim_end_matches("/.default");
        host.ends_with(&format!(".{domain}"))
    })
}

/// The reqwest client the SDK sends through: rustls, the system roots plus `ca_cert`,
/// no redirects (a bearer token never follows one), bounded time.
pub(crate) fn http_client(settings: &Settings) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10));
    if let Some(ca) = &settings.ca_cert {
        builder = builder.add_root_certificate(crate::tls::root_certificate("ca_cert", ca)?);
    }
    builder.build().map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("cannot build the HTTP client: {e}"),
        )
    })
}

pub struct AzureKeyVaultTarget {
    name: String,
    owner: String,
    policy: TargetPolicy,
    settings: Settings,
    vault: Vault,
    prefetched: Prefetched<BTreeMap<String, Listed>>,
    key: KeyCache,
    leases: Arc<dyn LeaseBackend>,
}

/// One completed write, and how to undo it.
enum Done {
    Created {
        name: String,
    },
    Updated {
        name: String,
        /// The previous value as stored (JSON or not), written back on undo.
        old_value: Option<zeroize::Zeroizing<String>>,
        old_tags: Tags,
    },
    Retagged {
        name: String,
        old_tags: Tags,
    },
    /// A soft-deleted secret recovered (and written).
    Restored {
        name: String,
    },
    /// Soft-deleted (recoverable).
    Deleted {
        name: String,
    },
    Purged {
        name: String,
    },
}

fn done_name(d: &Done) -> &str {
    match d {
        Done::Created { name }
        | Done::Updated { name, .. }
        | Done::Retagged { name, .. }
        | Done::Restored { name }
        | Done::Deleted { name }
        | Done::Purged { name } => name,
    }
}

/// A value as written: its canonical JSON object.
fn parse_value(s: &str) -> Option<SecretValue> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Some(SecretValue::new(m)),
        _ => None,
    }
}

impl AzureKeyVaultTarget {
    /// The target over `vault` ([`Vault::connect`]); nothing is sent until it is first used.
    pub(crate) fn new(
        name: &str,
        owner: &str,
        policy: &TargetPolicy,
        settings: &Settings,
        vault: Vault,
        leases: Arc<dyn LeaseBackend>,
    ) -> Self {
        AzureKeyVaultTarget {
            name: name.to_string(),
            owner: owner.to_string(),
            policy: policy.clone(),
            settings: settings.clone(),
            vault,
            prefetched: Prefetched::default(),
            key: KeyCache::default(),
            leases,
        }
    }

    fn err(&self, e: Error) -> Error {
        in_target(e, &self.name, &self.settings.vault_url)
    }

    async fn vault(&self) -> Result<&Vault> {
        Ok(&self.vault)
    }

    /// Every live and soft-deleted secret whose name the mapping makes.
    async fn list(&self) -> Result<BTreeMap<String, Listed>> {
        let v = self.vault().await.map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for (deleted, items) in [
            (false, v.list(false).await.map_err(|e| self.err(e))?),
            (true, v.list(true).await.map_err(|e| self.err(e))?),
        ] {
            for it in items {
                if secretsync_core::targets::azure_keyvault::decode(&it.name).is_none() {
                    continue;
                }
                // Key Vault binds tags to a version, and its listing names no version: the
                // version mark is the write id SecretSync chose, true for the version it
                // is on (a version written by anyone else starts without it).
                let version = it
                    .tags
                    .get(TAG_VERSION)
                    .cloned()
                    .unwrap_or_else(|| "-".into());
                out.insert(
                    it.name.clone(),
                    Listed {
                        name: it.name,
                        tags: Arc::new(it.tags.into()),
                        current_version: Some(version),
                        pending_deletion: deleted,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The listing keyed by the desired names' spelling where a listed name differs from one
    /// only in case (Key Vault names are case-insensitive: it is the same secret).
    fn fold_case(
        &self,
        mut listed: BTreeMap<String, Listed>,
        desired: &Collected,
    ) -> BTreeMap<String, Listed> {
        let rules = AzureKeyVaultRules;
        let folded: HashMap<String, String> = listed
            .keys()
            .map(|k| (k.to_ascii_lowercase(), k.clone()))
            .collect();
        for path in desired.secrets.keys() {
            let name = rules.name(&self.policy.secret_prefix, path);
            if listed.contains_key(&name) {
                continue;
            }
            if let Some(actual) = folded.get(&name.to_ascii_lowercase())
                && let Some(mut l) = listed.remove(actual)
            {
                l.name = name.clone();
                listed.insert(name, l);
            }
        }
        listed
    }

    async fn read_values(&self, names: Vec<String>) -> Result<BTreeMap<String, SecretValue>> {
        let v = self.vault().await?;
        let conc = self.policy.concurrency.max(1);
        let read: Vec<(String, Option<String>)> = stream::iter(names)
            .map(|n| async move {
                let got = v.get(&n).await?;
                Ok::<_, Error>((n, got))
            })
            .buffer_unordered(conc)
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for (name, got) in read {
            match got.as_deref().and_then(parse_value) {
                Some(value) => {
                    out.insert(name, value);
                }
                None => {
                    debug!(target_name = %self.name, secret = %name, "the value is not a JSON object (or is gone); it will be written over");
                }
            }
        }
        Ok(out)
    }

    /// Tags after a write of this fingerprint with this write id: what was there (the user's
    /// own tags stay), the configured `tags`, the ownership marks; the pre-0.2 hash removed.
    fn marks(&self, old: &Tags, fingerprint: &str, version: &str) -> BTreeMap<String, String> {
        let mut m = old.to_map();
        m.remove(TAG_HASH);
        for (k, v) in &self.settings.tags {
            m.insert(k.clone(), v.clone());
        }
        for (k, v) in [
            (TAG_MANAGED, MANAGED_VALUE),
            (TAG_OWNER, self.owner.as_str()),
            (TAG_TARGET, self.name.as_str()),
            (TAG_FINGERPRINT, fingerprint),
            (TAG_VERSION, version),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    /// Refuses (before anything is written) a change whose tags would exceed Key Vault's 15,
    /// and re-tags an unchanged secret whose configured `tags` differ.
    fn check_tags(&self, plan: &mut TargetPlan) {
        for c in &mut plan.changes {
            if c.kind == ChangeKind::Unchanged
                && self
                    .settings
                    .tags
                    .iter()
                    .any(|(k, v)| c.old_tags.get(k) != Some(v))
            {
                c.retag = true;
            }
            if !(matches!(c.kind, ChangeKind::Added | ChangeKind::Modified) || c.retag) {
                continue;
            }
            let marks = self.marks(&c.old_tags, "f", "v");
            if marks.len() > MAX_TAGS {
                let foreign: Vec<String> = c
                    .old_tags
                    .to_map()
                    .into_keys()
                    .filter(|k| !secretsync_core::targets::azure_keyvault::is_reserved_tag(k))
                    .filter(|k| !self.settings.tags.contains_key(k))
                    .map(|k| format!("`{k}`"))
                    .collect();
                c.reason = Some(format!(
                    "it would carry {} tags and Key Vault allows {MAX_TAGS}: SecretSync needs 5 and `tags:` sets {}; remove {} of the secret's own tags ({}) or some of `tags:`",
                    marks.len(),
                    self.settings.tags.len(),
                    marks.len() - MAX_TAGS,
                    foreign.join(", ")
                ));
                c.kind = ChangeKind::Skipped;
                c.invalid = true;
                c.retag = false;
                c.restore = false;
                c.new_value = None;
                c.new_version = None;
                c.keys.clear();
            }
        }
    }

    /// Writes `value` as a new version of `name`. A name found soft-deleted (since the plan)
    /// is recovered first when it is this target's, never purged to make room.
    async fn write_value(
        &self,
        name: &str,
        value: &SecretValue,
        tags: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let v = self.vault().await?;
        let json = value.canonical_json();
        match v.set(name, &json, CONTENT_TYPE, tags).await {
            Ok(()) => Ok(false),
            Err((f, e)) if f.is_deleted_but_recoverable() => {
                let deleted = v.get_deleted(name).await?.unwrap_or_default();
                let ours = deleted.get(TAG_TARGET).map(String::as_str) == Some(self.name.as_str())
                    && deleted.get(TAG_OWNER).map(String::as_str) == Some(self.owner.as_str());
                if !ours {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "{}; it is not this target's (its tags do not name target `{}` of owner `{}`), so SecretSync neither recovers nor purges it",
                            e.message, self.name, self.owner
                        ),
                    ));
                }
                warn!(target_name = %self.name, secret = %name, "the secret was soft-deleted since the plan; recovering it before writing");
                v.recover(name).await?;
                v.set(name, &json, CONTENT_TYPE, tags)
                    .await
                    .map_err(|(_, e)| e)?;
                Ok(true)
            }
            Err((_, e)) => Err(e),
        }
    }

    async fn write(&self, c: &SecretChange) -> Result<Done> {
        let v = self.vault().await?;
        let version = c.new_version.clone().unwrap_or_else(new_write_id);
        if c.retag {
            let fingerprint = c
                .fingerprint
                .clone()
                .or_else(|| c.old_tags.get(TAG_FINGERPRINT).cloned())
                .unwrap_or_default();
            let keep = c.old_tags.get(TAG_VERSION).cloned().unwrap_or(version);
            v.set_tags(&c.name, &self.marks(&c.old_tags, &fingerprint, &keep))
                .await?;
            return Ok(Done::Retagged {
                name: c.name.clone(),
                old_tags: c.old_tags.clone(),
            });
        }
        let (value, fingerprint) = payload(c)?;
        let tags = self.marks(&c.old_tags, fingerprint, &version);
        if c.restore {
            // Soft-deleted and ours (or adoptable): brought back, then written on top.
            v.recover(&c.name).await?;
            if let Err(mut e) = self.write_value(&c.name, value, &tags).await {
                if let Err(u) = v.delete(&c.name).await {
                    e.message = format!(
                        "{}; deleting the recovered secret again also failed: {u}",
                        e.message
                    );
                }
                return Err(e);
            }
            return Ok(Done::Restored {
                name: c.name.clone(),
            });
        }
        if c.kind == ChangeKind::Added {
            let recovered = self.write_value(&c.name, value, &tags).await?;
            let name = c.name.clone();
            return Ok(if recovered {
                Done::Restored { name }
            } else {
                Done::Created { name }
            });
        }
        // What a rollback writes back.
        let old_value = match &c.old_value {
            Some(o) => Some(zeroize::Zeroizing::new(o.canonical_json())),
            None => v.get(&c.name).await?.map(zeroize::Zeroizing::new),
        };
        self.write_value(&c.name, value, &tags).await?;
        Ok(Done::Updated {
            name: c.name.clone(),
            old_value,
            old_tags: c.old_tags.clone(),
        })
    }

    async fn undo(&self, d: Done) -> Result<()> {
        let v = self.vault().await?;
        match d {
            Done::Created { name } => {
                v.delete(&name).await?;
                // Purged so the name is free again; without the purge permission it stays
                // soft-deleted (the next run recovers it if it is still desired).
                if let Err(e) = v.purge(&name).await {
                    warn!(target_name = %self.name, secret = %name, error = %e.message, "the secret created by the rolled-back run stays soft-deleted");
                }
                Ok(())
            }
            Done::Updated {
                name,
                old_value,
                old_tags,
            } => {
                let old = old_value.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "cannot roll back `{name}`: its previous value could not be read; it keeps the new value"
                        ),
                    )
                })?;
                // Versions are immutable: the previous value goes back as a new version.
                v.set(&name, &old, CONTENT_TYPE, &old_tags.to_map())
                    .await
                    .map_err(|(_, e)| e)
            }
            Done::Retagged { name, old_tags } => v.set_tags(&name, &old_tags.to_map()).await,
            Done::Restored { name } => v.delete(&name).await.map(|_| ()),
            Done::Deleted { name } => v.recover(&name).await,
            Done::Purged { name } => Err(Error::new(
                ErrorKind::Unexpected,
                format!("`{name}` was purged (`purge: true`); it cannot be restored"),
            )),
        }
    }
}

/// The id a write records in its version mark.
fn new_write_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// Where the vault's fingerprint key lives: the secret [`KEY_NAME`]. Key Vault has no
/// create-if-absent; a concurrent first run may write its own key too, so a create reads the
/// key back and uses whichever was written last (a run whose key lost only reads more values
/// next time).
struct KeyEntry<'a> {
    vault: &'a Vault,
    target: &'a str,
}

#[async_trait]
impl KeyStore for KeyEntry<'_> {
    type Slot = ();

    fn location(&self) -> String {
        KEY_NAME.to_string()
    }

    async fn read(&self, create: bool, _retry: bool) -> Result<KeyRead<()>> {
        match self.vault.get(KEY_NAME).await? {
            Some(hex) => FingerprintKey::from_hex(hex.trim())
                .map(KeyRead::Found)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "`{KEY_NAME}` does not hold a SecretSync fingerprint key; delete and purge it (SecretSync recreates it, and then reads every managed value once)"
                        ),
                    )
                }),
            None if !create => Ok(KeyRead::Absent(())),
            None => {
                if self.vault.get_deleted(KEY_NAME).await?.is_some() {
                    warn!(target_name = %self.target, "the fingerprint key was soft-deleted; recovering it");
                    self.vault.recover(KEY_NAME).await?;
                    return Ok(KeyRead::Again);
                }
                Ok(KeyRead::Absent(()))
            }
        }
    }

    async fn create(&self, _slot: (), key: &FingerprintKey, _retry: bool) -> Result<bool> {
        let tags = BTreeMap::from([
            (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
            (TAG_ROLE.to_string(), "fingerprint-key".to_string()),
        ]);
        let hex = zeroize::Zeroizing::new(key.to_hex());
        self.vault
            .set(KEY_NAME, &hex, KEY_CONTENT_TYPE, &tags)
            .await
            .map_err(|(_, e)| e)?;
        let back = self.vault.get(KEY_NAME).await?.map(zeroize::Zeroizing::new);
        Ok(back.is_some_and(|b| b.trim() == hex.as_str()))
    }
}

#[async_trait]
impl Target for AzureKeyVaultTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn calls(&self) -> u64 {
        self.vault.calls.load(Ordering::Relaxed)
    }

    /// Key Vault has no conditional writes: the S3 merge store's bucket when the config has
    /// one, else a lock file on this machine (as for `plugin` targets).
    fn lease_backend(&self) -> Arc<dyn LeaseBackend> {
        self.leases.clone()
    }

    async fn prefetch(&self) {
        self.prefetched.keep(self.list().await).await;
    }

    async fn plan(&self, desired: &Collected, ctx: &PlanContext) -> Result<TargetPlan> {
        let listed = self.prefetched.take_or(self.list()).await?;
        let listed = self.fold_case(listed, desired);
        let create = !ctx.dry_run;
        let fetch = async {
            let vault = self.vault().await?;
            let store = KeyEntry {
                vault,
                target: &self.name,
            };
            key::get_or_create(&store, &self.name, create).await
        };
        let key = self.key.get(create, fetch).await.map_err(|e| self.err(e))?;
        let opts = support::plan_options(
            &self.name,
            &self.owner,
            &self.policy,
            Arc::new(AzureKeyVaultRules),
            ctx,
            &desired.incomplete,
        );
        let read = |names| self.read_values(names);
        let mut plan = support::plan_from_marks(&opts, &key, desired, &listed, read).await?;
        refuse_case_collisions(&mut plan);
        self.check_tags(&mut plan);
        support::set_new_versions(&mut plan, |_| new_write_id());
        Ok(plan)
    }

    async fn apply(&self, plan: &TargetPlan, cancel: &Cancel) -> ApplyReport {
        let pace = Pace::from(&self.policy);
        apply::run(&Writer(self), &self.name, pace, plan, cancel).await
    }
}

/// The target's half of the apply ([`apply::run`]).
struct Writer<'a>(&'a AzureKeyVaultTarget);

#[async_trait]
impl Apply for Writer<'_> {
    type Done = Done;

    async fn write(&self, c: &SecretChange, _: &Writes<'_>) -> Result<Done, Failed<Done>> {
        Ok(self.0.write(c).await?)
    }

    async fn delete(&self, c: &SecretChange, _: &Writes<'_>) -> Result<Done, Failed<Done>> {
        let v = self.0.vault().await?;
        v.delete(&c.name).await?;
        Ok(Done::Deleted {
            name: c.name.clone(),
        })
    }

    fn counted(&self, d: &Done) -> Counted {
        match d {
            Done::Created { .. } => Counted::Created,
            Done::Updated { .. } | Done::Restored { .. } => Counted::Updated,
            Done::Retagged { .. } => Counted::Retagged,
            Done::Deleted { .. } | Done::Purged { .. } => Counted::Deleted,
        }
    }

    fn changed<'d>(&self, d: &'d Done) -> Option<&'d str> {
        match d {
            Done::Retagged { .. } => None,
            d => Some(done_name(d)),
        }
    }

    fn undoable<'d>(&self, d: &'d Done) -> Option<&'d str> {
        Some(done_name(d))
    }

    async fn undo(&self, d: Done) -> Result<()> {
        self.0.undo(d).await
    }

    /// `purge: true`: once every deletion was made (recoverably), they are purged.
    fn finishes(&self, d: &Done) -> bool {
        self.0.settings.purge && matches!(d, Done::Deleted { .. })
    }

    async fn finish(&self, d: &mut Done) -> Result<()> {
        if let Done::Deleted { name } = d {
            self.0.vault().await?.purge(name).await?;
            *d = Done::Purged { name: name.clone() };
        }
        Ok(())
    }

    fn context(&self, e: Error) -> Error {
        self.0.err(e)
    }
}
