//! The `azure_keyvault` target: an Azure Key Vault's secrets, through Microsoft's
//! `azure_security_keyvault_secrets` client (`docs/targets/azure_keyvault.md` is the
//! reference).
//!
//! ```yaml
//! targets:
//!   - name: azure
//!     type: azure_keyvault
//!     vault_url: https://my-vault.vault.azure.net
//!     auth: { token: ${AZURE_ACCESS_TOKEN} }   # optional; default: the Azure identity chain
//!     purge: false
//!     imports: [base]
//! ```
//!
//! Names: `secretsync_core::targets::azure_keyvault::encode` of prefix + path (`apps/db` →
//! `apps-sdb`). Plan: the secrets and the soft-deleted secrets are listed (paged, 25 a page,
//! with the tags of each one's latest version: the ownership marks); values are read only
//! where the marks do not prove them unchanged. Apply: a changed or new secret gets a new
//! version (Set Secret, `content_type: application/json`, the marks as tags); an unchanged
//! one is not touched; a soft-deleted desired one is recovered (the recovery is awaited),
//! then written — never purged to make room. Orphans (`delete_orphans`) are soft-deleted,
//! and purged afterwards only with `purge: true`. On a failure the target is rolled back in
//! reverse order: a created secret is deleted (and purged, where allowed), an update is undone
//! by writing the previous value back as a new version with its old tags, a deletion is
//! recovered.
//!
//! The fingerprint key is the secret `secretsync-fingerprint-key` (a name the mapping never
//! makes); the lease lives in the S3 merge store's bucket when the config has one, otherwise
//! in a lock file on this machine ([`super::support::leases`], as `plugin` and `gcp_secretmanager`): Key Vault
//! has no conditional write to build a lease on.
//!
//! Files: `mod.rs` ([`build`], the registry's arm), `client.rs` (the credential, the SDK
//! client over our reqwest client, the `Target` implementation), `error.rs` (the one place
//! Key Vault's answers are interpreted).

mod client;
pub mod error;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use secretsync_core::config::TargetConfig;
use secretsync_core::targets::azure_keyvault::AzureKeyVaultSettings;

pub use azure_core::http::{HttpClient, Transport};
pub use client::{AzureKeyVaultTarget, KEY_NAME};

use super::{Clients, Target};
use crate::error::Result;
use crate::lease::LeaseBackend;
use secretsync_core::config::TargetPolicy;

/// A target that sends through `transport` (an [`HttpClient`] of the caller's: a test's fault
/// injector in front of the real client), with `leases`.
pub fn with_transport(
    name: &str,
    owner: &str,
    policy: &TargetPolicy,
    settings: &AzureKeyVaultSettings,
    transport: Transport,
    leases: Arc<dyn LeaseBackend>,
) -> Result<AzureKeyVaultTarget> {
    let vault = client::Vault::connect(settings, &|_| None, Some(transport))?;
    Ok(AzureKeyVaultTarget::new(
        name, owner, policy, settings, vault, leases,
    ))
}

/// The reqwest client this kind sends through (rustls, `ca_cert`, no redirects), for a
/// [`Transport`] that wraps it.
pub fn http_client(settings: &AzureKeyVaultSettings) -> Result<reqwest::Client> {
    client::http_client(settings)
}

/// The target of `cfg`, as the registry ([`super::build`]) builds it: the credential and the
/// client are set up (a `ca_cert` that cannot be read fails here); nothing is sent until the
/// target is first used.
pub async fn build(
    cfg: &TargetConfig,
    settings: &AzureKeyVaultSettings,
    clients: &Clients<'_>,
) -> Result<Arc<dyn Target>> {
    let vault = client::Vault::connect(settings, clients.env, None)
        .map_err(|e| super::azure_keyvault::error::in_target(e, &cfg.name, &settings.vault_url))?
        .observed(
            crate::retry::Policy::new(clients.retries.azure_max_attempts),
            clients.observers.clone(),
        );
    let leases = super::support::leases(clients).await;
    Ok(Arc::new(AzureKeyVaultTarget::new(
        &cfg.name,
        clients.owner,
        &cfg.policy,
        settings,
        vault,
        leases,
    )))
}
