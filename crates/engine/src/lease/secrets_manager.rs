//! Leases as lock secrets in AWS Secrets Manager, in the target's own account and region, so
//! they work without a merge store.
//!
//! The lease for key `k` is the secret `.secretsync/locks/<k>` (the key encoded into AWS name
//! characters, [`super::encode_key`]), tagged `managed-by=secretsync` and
//! `secretsync:role=lock` (and no `secretsync:target`, so no target ever counts it among its
//! secrets); its `AWSCURRENT` value is the [`LeaseRecord`] as JSON.
//!
//! * create: `CreateSecret` — `ResourceExistsException` when held;
//! * compare-and-swap (takeover, renewal): `PutSecretValue` of a new version with only the
//!   staging label `secretsync-next` (not `AWSCURRENT`), then `UpdateSecretVersionStage`
//!   moving `AWSCURRENT` to it with `RemoveFromVersionId` = the version read as current. AWS
//!   refuses that move when `AWSCURRENT` is no longer on that version, so of two runs that
//!   read the same expired lease only one can move it. A version that lost keeps only
//!   `secretsync-next` until the next write moves the label away, then is deprecated;
//! * read: `GetSecretValue` with `VersionStage=AWSCURRENT` named explicitly (moto's default
//!   read ignores stage moves); a lock secret pending deletion is restored and read again;
//! * release: `GetSecretValue`, then `DeleteSecret` with `ForceDeleteWithoutRecovery` only if
//!   the current version is still ours. Secrets Manager has no conditional delete; the check
//!   is safe because the holder releases only while its lease is valid, and nobody takes
//!   over a valid lease.
//!
//! Permissions on `.secretsync/locks/*`: `CreateSecret`, `GetSecretValue`, `PutSecretValue`,
//! `UpdateSecretVersionStage`, `DescribeSecret`, `RestoreSecret`, `DeleteSecret`,
//! `TagResource`.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use tracing::{debug, warn};

use super::{LeaseBackend, LeaseRecord, Stored, encode_key};
use crate::aws::CallCounter;
use crate::error::{Error, ErrorKind, Result};
use crate::targets::aws_sm::error::{code, map, send};

/// Name prefix of every lock secret.
pub const LOCK_PREFIX: &str = ".secretsync/locks/";
/// The staging label of a version written for a compare-and-swap.
pub const NEXT_STAGE: &str = "secretsync-next";
/// Tag that marks the secret as a lock.
pub use secretsync_core::diff::TAG_ROLE;
pub const ROLE_LOCK: &str = "lock";

const CURRENT: &str = "AWSCURRENT";
/// AWS secret names are at most 512 characters.
const MAX_NAME: usize = 512;

pub struct SecretsManagerLeases {
    client: Client,
    calls: CallCounter,
}

impl SecretsManagerLeases {
    /// Leases kept with `client` (the target's client: its account and region), whose calls
    /// `calls` counts (and retries).
    pub fn new(client: Client, calls: CallCounter) -> Self {
        SecretsManagerLeases { client, calls }
    }

    /// The lock secret's name for `key`.
    pub fn secret_name(key: &str) -> Result<String> {
        let name = format!("{LOCK_PREFIX}{}", encode_key(key));
        if name.len() > MAX_NAME {
            return Err(Error::config(format!(
                "the lock secret name for `{key}` would be {} characters (AWS allows {MAX_NAME}); \
                 use a shorter owner scope or target name",
                name.len()
            )));
        }
        Ok(name)
    }

    /// Reads `AWSCURRENT`; `Err(None)` when the secret is pending deletion.
    async fn read(&self, name: &str) -> Result<Option<Stored>, Option<Error>> {
        let resp = send(&self.calls, "GetSecretValue", || {
            self.client
                .get_secret_value()
                .secret_id(name)
                .version_stage(CURRENT)
                .send()
        })
        .await;
        let out = match resp {
            Ok(o) => o,
            Err(e) => {
                return match code(&e) {
                    Some("ResourceNotFoundException") => Ok(None),
                    // Marked for deletion (AWS and moto alike).
                    Some("InvalidRequestException") => Err(None),
                    _ => Err(Some(map(e, &format!("reading lock secret {name}")))),
                };
            }
        };
        let what = format!("lock secret {name}");
        let (Some(version), Some(value)) = (out.version_id(), out.secret_string()) else {
            return Err(Some(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{what} has no current string value; if no SecretSync run is active, delete it"
                ),
            )));
        };
        if !out.version_stages().iter().any(|s| s == CURRENT) {
            return Err(Some(Error::new(
                ErrorKind::Unexpected,
                format!("{what}: AWS returned version {version} for AWSCURRENT without that stage"),
            )));
        }
        Ok(Some(Stored {
            record: LeaseRecord::from_json(value, &what).map_err(Some)?,
            token: version.to_string(),
        }))
    }

    /// Restores a lock secret that someone scheduled for deletion, so its lease can be read
    /// and, once expired, taken over (deleting it again is not conditional; restoring is
    /// idempotent). `false` when it is not pending deletion after all.
    async fn restore_if_deleted(&self, name: &str) -> Result<bool> {
        let d = match send(&self.calls, "DescribeSecret", || {
            self.client.describe_secret().secret_id(name).send()
        })
        .await
        {
            Ok(d) => d,
            Err(e) if code(&e) == Some("ResourceNotFoundException") => return Ok(false),
            Err(e) => return Err(map(e, &format!("describing lock secret {name}"))),
        };
        if d.deleted_date().is_none() {
            return Ok(false);
        }
        warn!(
            secret = name,
            "lock secret is scheduled for deletion; restoring it"
        );
        match send(&self.calls, "RestoreSecret", || {
            self.client.restore_secret().secret_id(name).send()
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(map(e, &format!("restoring lock secret {name}"))),
        }
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// Whether a service error says the compare-and-swap was refused (or the secret is gone).
fn refused<E>(e: &crate::aws::Failed<E>) -> bool
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata,
{
    matches!(
        code(e),
        Some("InvalidParameterException")
            | Some("InvalidRequestException")
            | Some("ResourceNotFoundException")
    )
}

#[async_trait]
impl LeaseBackend for SecretsManagerLeases {
    fn location(&self, key: &str) -> String {
        let name = Self::secret_name(key).unwrap_or_else(|_| format!("for `{key}`"));
        match self.client.config().region() {
            Some(r) => format!("lock secret {name} in {r}"),
            None => format!("lock secret {name}"),
        }
    }

    async fn try_create(&self, key: &str, record: &LeaseRecord) -> Result<bool> {
        let name = Self::secret_name(key)?;
        let resp = send(&self.calls, "CreateSecret", || self
            .client
            .create_secret()
            .name(&name)
            .description("SecretSync run lease: the run named in the value is applying this target; it expires on its own")
            .secret_string(record.to_json())
            // The nonce makes a retried create idempotent.
            .client_request_token(&record.nonce)
            .tags(tag(secretsync_core::diff::TAG_MANAGED, secretsync_core::diff::MANAGED_VALUE))
            .tags(tag(TAG_ROLE, ROLE_LOCK))
            .send())
            .await;
        match resp {
            Ok(_) => Ok(true),
            Err(e) => match code(&e) {
                Some("ResourceExistsException") => Ok(false),
                // AWS: the name is still scheduled for deletion (moto answers
                // ResourceExistsException); the read decides what to do.
                Some("InvalidRequestException") => {
                    debug!(secret = %name, error = %map(e, "creating"), "lock secret cannot be created now");
                    Ok(false)
                }
                _ => Err(map(e, &format!("creating lock secret {name}"))),
            },
        }
    }

    async fn current(&self, key: &str) -> Result<Option<Stored>> {
        let name = Self::secret_name(key)?;
        match self.read(&name).await {
            Ok(s) => Ok(s),
            Err(Some(e)) => Err(e),
            Err(None) => {
                if !self.restore_if_deleted(&name).await? {
                    // Deleted for good between the two calls.
                    return Ok(None);
                }
                match self.read(&name).await {
                    Ok(s) => Ok(s),
                    Err(Some(e)) => Err(e),
                    Err(None) => Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "lock secret {name} is still marked for deletion after restoring it; retry shortly"
                        ),
                    )),
                }
            }
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        record: &LeaseRecord,
    ) -> Result<Option<String>> {
        let name = Self::secret_name(key)?;
        let put = send(&self.calls, "PutSecretValue", || {
            self.client
                .put_secret_value()
                .secret_id(&name)
                .secret_string(record.to_json())
                .client_request_token(&record.nonce)
                .version_stages(NEXT_STAGE)
                .send()
        })
        .await;
        let version = match put {
            Ok(o) => match o.version_id() {
                Some(v) => v.to_string(),
                None => {
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!("writing lock secret {name}: AWS returned no version id"),
                    ));
                }
            },
            Err(e) if refused(&e) => return Ok(None),
            Err(e) => return Err(map(e, &format!("writing lock secret {name}"))),
        };
        let moved = send(&self.calls, "UpdateSecretVersionStage", || {
            self.client
                .update_secret_version_stage()
                .secret_id(&name)
                .version_stage(CURRENT)
                .move_to_version_id(&version)
                .remove_from_version_id(expected)
                .send()
        })
        .await;
        match moved {
            Ok(_) => Ok(Some(version)),
            // AWSCURRENT is no longer on `expected`: someone else swapped first.
            Err(e) if refused(&e) => {
                debug!(secret = %name, error = %map(e, "moving AWSCURRENT"), "compare-and-swap refused");
                Ok(None)
            }
            Err(e) => Err(map(e, &format!("moving AWSCURRENT of lock secret {name}"))),
        }
    }

    async fn delete_if_current(&self, key: &str, ours: &Stored) -> Result<bool> {
        let name = Self::secret_name(key)?;
        match self.read(&name).await {
            Ok(Some(now)) if now.token == ours.token && now.record.nonce == ours.record.nonce => {}
            Ok(_) | Err(None) => return Ok(false),
            Err(Some(e)) => return Err(e),
        }
        match send(&self.calls, "DeleteSecret", || {
            self.client
                .delete_secret()
                .secret_id(&name)
                .force_delete_without_recovery(true)
                .send()
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(map(e, &format!("deleting lock secret {name}"))),
        }
    }
}
