//! The `gcp_secretmanager` target: Google Cloud Secret Manager through Google's official Rust
//! client (`google-cloud-secretmanager-v1`, REST).
//!
//! ```yaml
//! targets:
//!   - name: gcp
//!     type: gcp_secretmanager
//!     project: my-project
//!     replication: automatic              # or a list of regions; or `location:` (regional)
//!     endpoint: https://127.0.0.1:8443    # optional override (tests, private endpoints)
//!     ca_cert: tests/ca.pem               # must also be trusted through SSL_CERT_FILE/DIR
//!     auth: { token: "${GCP_ACCESS_TOKEN}" } # optional; default: the Google credential chain
//!     delete_orphans: true
//!     imports: [base]
//! ```
//!
//! Plan: one `ListSecrets` walk of the project (or location) gives every secret's labels,
//! which carry the ownership marks (`secretsync_core::targets::gcp_secretmanager`); values are
//! read (`AccessSecretVersion`) only where the labels do not prove them unchanged. Apply: a new
//! secret is `CreateSecret` (replication or regional) + `AddSecretVersion` + the labels; a
//! changed one gets one `AddSecretVersion` and its labels; an unchanged one nothing. Orphans,
//! with `delete_orphans`, in two steps (Secret Manager has no recovery window): the first run
//! disables their enabled versions (undone by the rollback or by a later run that wants the
//! secret again), a later run that still finds them orphaned deletes them (every guard applies
//! again to those deletions).
//!
//! The fingerprint key is the secret `_2Esecretsync__fingerprint-key` (the id of
//! `.secretsync/fingerprint-key`) in the same project or location. The lease lives in the S3
//! merge store's bucket when the config has one, else in a lock file on this machine (like the
//! `plugin` kind): Secret Manager has no create-if-absent with a lease's expiry that is cheaper
//! than that.
//!
//! TLS: the client library builds its own HTTP client, which trusts the system roots or, when
//! set, `SSL_CERT_FILE` / `SSL_CERT_DIR` — it has no way to add a CA. `ca_cert` is therefore
//! checked, not silently dropped: [`build`] refuses the target unless the CA's certificates are
//! among those the environment makes the client trust, and says how to set it.
//!
//! Files: `mod.rs` ([`build`], the static-token credentials, the `ca_cert` check), `client.rs`
//! (the `Target`), `error.rs` (the client's errors interpreted), `tests.rs` (error cases
//! through the client's stub seam).

mod client;
pub mod error;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use secretsync_core::config::{Sensitive, TargetConfig};
use secretsync_core::targets::gcp_secretmanager::GcpSmSettings;

pub use client::{GcpSmTarget, KEY_ID};

use super::{Clients, Target};
use crate::error::{Error, Result};

/// The target of `cfg`, as the registry ([`super::build`]) builds it: the client (and the
/// credential chain) is set up when the target is first used.
pub async fn build(
    cfg: &TargetConfig,
    settings: &GcpSmSettings,
    clients: &Clients<'_>,
) -> Result<Arc<dyn Target>> {
    if let Some(ca) = &settings.ca_cert {
        check_ca_trusted(&cfg.name, ca, clients.env)?;
    }
    let leases = super::support::leases(clients).await;
    Ok(Arc::new(
        GcpSmTarget::new(&cfg.name, clients.owner, &cfg.policy, settings, leases)
            .retried(crate::retry::Policy::new(clients.retries.gcp_max_attempts))
            .observed(clients.observers.clone()),
    ))
}

/// A static OAuth 2 access token (`auth.token`), sent as `Authorization: Bearer …`.
#[derive(Clone)]
pub struct StaticToken {
    header: http::HeaderValue,
    tag: EntityTag,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(redacted)")
    }
}

impl StaticToken {
    pub fn credentials(token: &Sensitive) -> Result<Credentials> {
        let mut header = http::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| {
                Error::config(
                    "`auth.token` holds characters an HTTP header cannot carry; set it to the access token alone",
                )
            })?;
        header.set_sensitive(true);
        Ok(Credentials::from(StaticToken {
            header,
            tag: EntityTag::new(),
        }))
    }
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        extensions: http::Extensions,
    ) -> std::result::Result<
        CacheableResource<http::HeaderMap>,
        google_cloud_auth::errors::CredentialsError,
    > {
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        let mut data = http::HeaderMap::new();
        data.insert(http::header::AUTHORIZATION, self.header.clone());
        Ok(CacheableResource::New {
            entity_tag: self.tag.clone(),
            data,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// The base64 bodies of the PEM certificates in `text`, whitespace removed.
fn pem_certs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(c) = current.take() {
                out.push(c);
            }
        } else if let Some(c) = current.as_mut() {
            c.push_str(line);
        }
    }
    out
}

/// `ca_cert`: the client library cannot take a CA, it trusts what `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` name (instead of the system roots). Refuses the target unless every
/// certificate of `ca` is among those.
fn check_ca_trusted(target: &str, ca: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    let text = std::fs::read_to_string(ca).map_err(|e| {
        Error::config(format!(
            "target `{target}`: cannot read `ca_cert` `{ca}`: {e}"
        ))
    })?;
    let wanted = pem_certs(&text);
    if wanted.is_empty() {
        return Err(Error::config(format!(
            "target `{target}`: `ca_cert` `{ca}` holds no PEM certificate"
        )));
    }
    let mut trusted = Vec::new();
    if let Some(f) = env("SSL_CERT_FILE").filter(|f| !f.is_empty())
        && let Ok(t) = std::fs::read_to_string(&f)
    {
        trusted.extend(pem_certs(&t));
    }
    if let Some(dirs) = env("SSL_CERT_DIR") {
        for dir in std::env::split_paths(&dirs).filter(|p| !p.as_os_str().is_empty()) {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if let Ok(t) = std::fs::read_to_string(entry.path()) {
                    trusted.extend(pem_certs(&t));
                }
            }
        }
    }
    if wanted.iter().all(|c| trusted.contains(c)) {
        return Ok(());
    }
    Err(Error::config(format!(
        "target `{target}`: Google's client library cannot take `ca_cert` itself; it trusts the certificates named by SSL_CERT_FILE or SSL_CERT_DIR (instead of the system's), and `{ca}` is not among them. Run with SSL_CERT_FILE set to a bundle that holds the system roots and this CA (e.g. `cat /etc/ssl/certs/ca-certificates.crt {ca} > bundle.pem`), or SSL_CERT_DIR=/etc/ssl/certs:<a folder holding {ca}>"
    )))
}
