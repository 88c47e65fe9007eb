//! The bundle logic every merge store shares, written once over [`Objects`].
//!
//! **Writing** a bundle: load (or create, once) the store's fingerprint key; read the previous
//! manifest and validate its paths like Vault keys; compare each secret's keyed fingerprint
//! with the manifest's; if anything is to be written, first mark the manifest `writing` (so a
//! reader never takes a half-written bundle for data, and an interrupted run's objects stay
//! listed for the next run to clean up); write the changed objects; delete the objects of
//! secrets no longer in the bundle; write the new manifest.
//!
//! **Reading** a bundle: read the manifest, validate its paths, refuse it while `writing`, read
//! every object and check it against its fingerprint. A missing, tampered or half-written
//! object is an error naming it, never data.
//!
//! **Fingerprints** are HMAC-SHA256 under the store's own random key
//! ([`FingerprintKey`]), kept as the object `.secretsync/fingerprint-key` in the store itself
//! (created with a create-if-absent write, so concurrent first runs agree on one key). Whoever
//! can read the store can read the values anyway; a reader of manifests alone cannot test a
//! guessed value. The manifest records the key's id (`key_id`).
//!
//! **Manifests without `key_id`** were written before keyed fingerprints and hold plain SHA-256
//! hashes. Reading one verifies each object by that legacy hash; writing over one compares
//! nothing and rewrites every object once, leaving a keyed manifest behind.
//!
//! Only objects a manifest lists are ever deleted: the store never lists its backend, so a
//! store pointed at a prefix or mount that holds other data cannot remove it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use secretsync_core::fingerprint::{FingerprintKey, KEY_LEN, legacy_content_hash};
use secretsync_core::path::reject_key;
use secretsync_core::secret::{Bundle, SecretValue};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tracing::debug;
use zeroize::Zeroize;

use super::{MergeStore, Objects, StoredBundle, WriteStats};
use crate::error::{Error, ErrorKind, Result};

/// Where the store keeps its fingerprint key, relative to its root.
pub const KEY_OBJECT: &str = ".secretsync/fingerprint-key";
/// The folder the store reserves for itself: no bundle may be called that.
const RESERVED: &str = ".secretsync";
/// Objects read or written at once.
const CONCURRENCY: usize = 16;

/// What a stored bundle holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub bundle: String,
    /// Relative path -> fingerprint of the secret's value: keyed (HMAC-SHA256 under the key
    /// `key_id` names) or, in manifests without `key_id`, a plain SHA-256.
    pub secrets: BTreeMap<String, String>,
    pub run_id: String,
    /// The id of the fingerprint key ([`FingerprintKey::id`]); absent in legacy manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Why the bundle is incomplete (source paths skipped while merging); empty: complete.
    #[serde(default)]
    pub incomplete: Vec<secretsync_core::secret::Gap>,
    /// Set while a run writes the bundle's objects; a reader refuses such a manifest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writing: bool,
    /// The KMS key ([`Objects::encryption_key`]) every object of the bundle was last written
    /// or re-encrypted under; absent without one (and in manifests from before it was kept).
    /// A different configured key re-encrypts the unchanged objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_key: Option<String>,
}

/// The objects a bundle write touches.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WritePlan {
    /// Paths whose object is (re)written.
    pub write: Vec<String>,
    /// Paths whose object is deleted (in the old manifest, not in the bundle).
    pub delete: Vec<String>,
}

/// Plans a bundle write. Fingerprints in `old` are trusted for comparison only when they were
/// made with the same key and the manifest is finished: otherwise every object is rewritten.
pub fn plan_write(old: Option<&Manifest>, new: &Manifest) -> WritePlan {
    let comparable = old.filter(|m| !m.writing && m.key_id.is_some() && m.key_id == new.key_id);
    let write = new
        .secrets
        .iter()
        .filter(|(p, fp)| comparable.is_none_or(|m| m.secrets.get(*p) != Some(*fp)))
        .map(|(p, _)| p.clone())
        .collect();
    let delete = old
        .map(|m| {
            m.secrets
                .keys()
                .filter(|p| !new.secrets.contains_key(*p))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    WritePlan { write, delete }
}

/// Why a relative path cannot name an object: unsafe as a Vault key, or a folder.
fn reject_path(path: &str) -> Option<&'static str> {
    reject_key(path).or_else(|| path.ends_with('/').then_some("ends with `/`"))
}

fn check_bundle_name(name: &str) -> Result<()> {
    if name.contains('/') || reject_key(name).is_some() || name == RESERVED {
        return Err(Error::config(format!(
            "`{name}` cannot name a bundle in a merge store (no `/`, no `.` or `..`, not `{RESERVED}`); rename the target or import"
        )));
    }
    Ok(())
}

/// The stored form of the fingerprint key.
#[derive(Deserialize)]
struct KeyObject {
    key: String,
}

/// The merge store over a backend's objects.
pub struct ManifestStore<O> {
    objects: std::sync::Arc<O>,
    key: OnceCell<FingerprintKey>,
}

impl<O: Objects> ManifestStore<O> {
    pub fn new(objects: O) -> Self {
        ManifestStore {
            objects: std::sync::Arc::new(objects),
            key: OnceCell::new(),
        }
    }

    fn secret_key(&self, bundle: &str, path: &str) -> String {
        format!("{bundle}/{path}{}", self.objects.suffix())
    }

    fn manifest_key(&self, bundle: &str) -> String {
        format!("{bundle}.bundle{}", self.objects.suffix())
    }

    /// The store's fingerprint key: read, or (when `create`) created if there is none.
    async fn key(&self, create: bool) -> Result<&FingerprintKey> {
        self.key
            .get_or_try_init(|| async {
                if let Some(k) = self.read_key().await? {
                    return Ok(k);
                }
                let where_ = self.objects.describe(KEY_OBJECT);
                if !create {
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "the merge store's fingerprint key {where_} is missing, so its bundles cannot be verified; re-run the merge phase"
                        ),
                    ));
                }
                self.create_key().await?;
                // Whatever is stored now: ours, or the key of a run that created it first.
                self.read_key().await?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "the merge store's fingerprint key {where_} could not be created or read back; check that nothing deletes it and re-run"
                        ),
                    )
                })
            })
            .await
    }

    async fn create_key(&self) -> Result<()> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "cannot get random bytes from the operating system for a fingerprint key: {e}"
                ),
            )
        })?;
        let key = FingerprintKey::from_bytes(bytes);
        bytes.zeroize();
        let mut hex = key.to_hex();
        let mut body = format!("{{\"key\":\"{hex}\"}}").into_bytes();
        hex.zeroize();
        let created = self.objects.create(KEY_OBJECT, &body).await;
        body.zeroize();
        if !created? {
            debug!(
                store = %self.objects.location(),
                "another run created the merge store's fingerprint key first"
            );
        }
        Ok(())
    }

    async fn read_key(&self) -> Result<Option<FingerprintKey>> {
        let Some(mut bytes) = self.objects.get(KEY_OBJECT).await? else {
            return Ok(None);
        };
        let parsed = serde_json::from_slice::<KeyObject>(&bytes);
        bytes.zeroize();
        let key = parsed.ok().and_then(|mut k| {
            let key = FingerprintKey::from_hex(&k.key);
            k.key.zeroize();
            key
        });
        match key {
            Some(k) => Ok(Some(k)),
            None => Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is not a SecretSync fingerprint key; delete it and re-run the merge phase (every stored bundle is then rewritten once)",
                    self.objects.describe(KEY_OBJECT)
                ),
            )),
        }
    }

    /// Reads and validates a bundle's manifest: it names this bundle and only safe paths.
    async fn read_manifest(&self, name: &str) -> Result<Option<Manifest>> {
        let key = self.manifest_key(name);
        let Some(bytes) = self.objects.get(&key).await? else {
            return Ok(None);
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is not a SecretSync manifest ({e}); delete it and re-run the merge phase",
                    self.objects.describe(&key)
                ),
            )
        })?;
        if m.bundle != name {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is the manifest of bundle `{}`, not `{name}`; delete it and re-run the merge phase",
                    self.objects.describe(&key),
                    m.bundle
                ),
            ));
        }
        if let Some((p, why)) = m
            .secrets
            .keys()
            .find_map(|p| reject_path(p).map(|why| (p, why)))
        {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} lists `{p}`, which {why}: SecretSync never writes such a path, so nothing was read or deleted; delete the manifest and re-run the merge phase",
                    self.objects.describe(&key)
                ),
            ));
        }
        Ok(Some(m))
    }

    async fn write_manifest(&self, name: &str, m: &Manifest) -> Result<()> {
        let body = serde_json::to_vec_pretty(m).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot encode the manifest: {e}"),
            )
        })?;
        self.objects.put(&self.manifest_key(name), &body).await
    }

    async fn write_objects(&self, name: &str, bundle: &Bundle, paths: &[String]) -> Result<()> {
        stream::iter(paths.iter().cloned())
            .map(|p| async move {
                let mut body = bundle[&p].canonical_json().into_bytes();
                let put = self.objects.put(&self.secret_key(name, &p), &body).await;
                body.zeroize();
                put
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// After a change of the store's KMS key (the old manifest records another one, or none):
    /// copies every object the write left as it was onto itself under the new key (those
    /// already under it are left alone). The manifest itself is rewritten anyway. Returns how
    /// many were re-encrypted.
    async fn reencrypt(
        &self,
        name: &str,
        bundle: &Bundle,
        old: Option<&Manifest>,
        plan: &WritePlan,
    ) -> Result<usize> {
        let (Some(key), Some(old)) = (self.objects.encryption_key(), old) else {
            return Ok(0);
        };
        if old.sse_key.as_deref() == Some(key) {
            return Ok(0);
        }
        let kept: Vec<String> = bundle
            .keys()
            .filter(|p| !plan.write.contains(p))
            .map(|p| self.secret_key(name, p))
            .collect();
        let done: Vec<bool> = stream::iter(kept)
            .map(|k| async move { self.objects.reencrypt(&k).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let n = done.into_iter().filter(|d| *d).count();
        debug!(store = %self.objects.location(), bundle = name, reencrypted = n, "re-encrypted the bundle's objects under the configured key");
        Ok(n)
    }

    async fn read_object(&self, name: &str, path: &str) -> Result<SecretValue> {
        let key = self.secret_key(name, path);
        let mut bytes = self.objects.get(&key).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is listed in the manifest but missing; re-run the merge phase",
                    self.objects.describe(&key)
                ),
            )
        })?;
        let parsed = serde_json::from_slice(&bytes);
        bytes.zeroize();
        match parsed {
            Ok(serde_json::Value::Object(m)) => Ok(SecretValue::new(m)),
            _ => Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "{} is not a JSON object (changed or half-written); re-run the merge phase",
                    self.objects.describe(&key)
                ),
            )),
        }
    }
}

#[async_trait]
impl<O: Objects + 'static> MergeStore for ManifestStore<O> {
    async fn write_bundle(
        &self,
        name: &str,
        bundle: &Bundle,
        incomplete: &[secretsync_core::secret::Gap],
        run_id: &str,
    ) -> Result<WriteStats> {
        check_bundle_name(name)?;
        if let Some((p, why)) = bundle
            .keys()
            .find_map(|p| reject_path(p).map(|why| (p, why)))
        {
            return Err(Error::config(format!(
                "secret `{p}` of bundle `{name}` cannot be stored: its path {why}"
            )));
        }
        let key = self.key(true).await?;
        let old = self.read_manifest(name).await?;
        let new = Manifest {
            bundle: name.to_string(),
            secrets: bundle
                .iter()
                .map(|(p, v)| (p.clone(), key.fingerprint(v)))
                .collect(),
            run_id: run_id.to_string(),
            key_id: Some(key.id()),
            incomplete: incomplete.to_vec(),
            writing: false,
            sse_key: self.objects.encryption_key().map(str::to_string),
        };
        let plan = plan_write(old.as_ref(), &new);
        if !plan.write.is_empty() {
            // Until the new manifest is written, the old and the new paths are listed and the
            // bundle is marked unfinished.
            let mut pending = new.clone();
            pending.writing = true;
            if let Some(old) = &old {
                for (p, fp) in &old.secrets {
                    pending
                        .secrets
                        .entry(p.clone())
                        .or_insert_with(|| fp.clone());
                }
            }
            self.write_manifest(name, &pending).await?;
        }
        self.write_objects(name, bundle, &plan.write).await?;
        if !plan.delete.is_empty() {
            let keys: Vec<String> = plan
                .delete
                .iter()
                .map(|p| self.secret_key(name, p))
                .collect();
            self.objects
                .delete_many(&keys)
                .await
                .map_err(|e| e.context(format!("removing stale secrets of bundle `{name}`")))?;
        }
        let reencrypted = self.reencrypt(name, bundle, old.as_ref(), &plan).await?;
        self.write_manifest(name, &new).await?;
        let stats = WriteStats {
            written: plan.write.len(),
            unchanged: bundle.len() - plan.write.len(),
            deleted: plan.delete.len(),
            reencrypted,
        };
        debug!(
            store = %self.objects.location(),
            bundle = name,
            written = stats.written,
            unchanged = stats.unchanged,
            deleted = stats.deleted,
            "wrote bundle"
        );
        Ok(stats)
    }

    async fn read_bundle(&self, name: &str) -> Result<Option<StoredBundle>> {
        check_bundle_name(name)?;
        let Some(m) = self.read_manifest(name).await? else {
            return Ok(None);
        };
        if m.writing {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "bundle `{name}` in {} is half-written (run {} has not finished writing it, or was interrupted); re-run the merge phase",
                    self.objects.location(),
                    m.run_id
                ),
            ));
        }
        let key = match &m.key_id {
            None => None,
            Some(id) => {
                let key = self.key(false).await?;
                if key.id() != *id {
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "{} was fingerprinted with key {id}, but the store's key is {}; re-run the merge phase",
                            self.objects.describe(&self.manifest_key(name)),
                            key.id()
                        ),
                    ));
                }
                Some(key)
            }
        };
        let fingerprint = |v: &SecretValue| match key {
            Some(k) => k.fingerprint(v),
            None => legacy_content_hash(v),
        };
        let secrets: Bundle = stream::iter(m.secrets.clone())
            .map(|(p, expected)| async move {
                let v = self.read_object(name, &p).await?;
                if fingerprint(&v) != expected {
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "{} does not match its fingerprint in the manifest (changed or half-written); re-run the merge phase",
                            self.objects.describe(&self.secret_key(name, &p))
                        ),
                    ));
                }
                Ok((p, v))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Some(StoredBundle {
            secrets,
            incomplete: m.incomplete,
        }))
    }

    fn location(&self) -> String {
        self.objects.location()
    }

    fn objects(&self) -> std::sync::Arc<dyn Objects> {
        self.objects.clone()
    }

    async fn fingerprint_key(&self, create: bool) -> Result<FingerprintKey> {
        self.key(create).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(key_id: Option<&str>, secrets: &[(&str, &str)]) -> Manifest {
        Manifest {
            bundle: "b".into(),
            secrets: secrets
                .iter()
                .map(|(p, f)| (p.to_string(), f.to_string()))
                .collect(),
            run_id: "r".into(),
            key_id: key_id.map(str::to_string),
            incomplete: vec![],
            writing: false,
            sse_key: None,
        }
    }

    fn check(old: Option<&Manifest>, new: &Manifest, write: &[&str], delete: &[&str]) {
        assert_eq!(
            plan_write(old, new),
            WritePlan {
                write: write.iter().map(|s| s.to_string()).collect(),
                delete: delete.iter().map(|s| s.to_string()).collect(),
            }
        );
    }

    #[test]
    fn only_changed_secrets_are_written_and_removed_ones_deleted() {
        let old = manifest(Some("k1"), &[("a", "1"), ("b", "2"), ("gone", "3")]);
        let new = manifest(Some("k1"), &[("a", "1"), ("b", "changed"), ("c", "4")]);
        check(Some(&old), &new, &["b", "c"], &["gone"]);
        check(None, &new, &["a", "b", "c"], &[]);
        check(Some(&new), &new, &[], &[]);
    }

    #[test]
    fn legacy_unfinished_or_other_key_manifests_rewrite_everything() {
        let new = manifest(Some("k1"), &[("a", "1"), ("b", "2")]);
        let legacy = manifest(None, &[("a", "1"), ("old", "9")]);
        check(Some(&legacy), &new, &["a", "b"], &["old"]);
        let other_key = manifest(Some("k2"), &[("a", "1"), ("b", "2")]);
        check(Some(&other_key), &new, &["a", "b"], &[]);
        let mut unfinished = new.clone();
        unfinished.writing = true;
        check(Some(&unfinished), &new, &["a", "b"], &[]);
    }

    #[test]
    fn legacy_manifests_parse_and_new_fields_round_trip() {
        let legacy: Manifest =
            serde_json::from_str(r#"{"bundle":"b","secrets":{"a":"ff"},"run_id":"r"}"#).unwrap();
        assert_eq!(legacy, manifest(None, &[("a", "ff")]));
        let mut m = manifest(Some("k1"), &[("a", "1")]);
        m.incomplete = vec![secretsync_core::secret::Gap::new(
            "src",
            "app/",
            "is deeper than `max_depth` (1)",
        )];
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("writing"), "{json}");
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
    }

    #[test]
    fn unsafe_paths_and_bundle_names_are_refused() {
        for bad in ["../x", "a/../b", "a/", "/a", ""] {
            assert!(reject_path(bad).is_some(), "{bad:?}");
        }
        assert!(reject_path("config..bak").is_none());
        for bad in ["a/b", "..", ".", ".secretsync", ""] {
            assert!(check_bundle_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_bundle_name("prod.v2").is_ok());
    }
}
