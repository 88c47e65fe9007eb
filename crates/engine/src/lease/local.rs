//! Leases as files on this machine, for targets with no shared store of their own (a `plugin`
//! target without an S3 merge store): the lease for key `k` is `<dir>/<k>.json` (the key
//! encoded like lock secret names, [`super::encode_key`]) holding the [`LeaseRecord`], 0600 in
//! a 0700 directory. `dir` is the user's cache directory (`$XDG_CACHE_HOME/secretsync/locks`,
//! or `~/.cache/secretsync/locks`).
//!
//! Every operation holds an exclusive `flock` on `<dir>/.lock` while it reads and writes, so
//! the create-if-absent and the compare-and-swap (the token is the record's nonce) are atomic
//! between processes of this machine. Two runs on **different machines** are not excluded:
//! that needs a shared store (an S3 merge store, whose bucket then holds the lease).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{LeaseBackend, LeaseRecord, Stored, encode_key};
use crate::error::{Error, ErrorKind, Result};

pub struct LocalLeases {
    /// `None`: no cache directory is known (every operation fails, saying so).
    dir: Option<PathBuf>,
}

impl LocalLeases {
    /// Leases in `dir` (created when first needed).
    pub fn new(dir: PathBuf) -> Self {
        LocalLeases { dir: Some(dir) }
    }

    /// Leases in the user's cache directory. Without `XDG_CACHE_HOME` or `HOME` every lease
    /// operation fails (so only a run that has something to write to such a target fails).
    pub fn in_user_cache(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let base = env("XDG_CACHE_HOME")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                env("HOME")
                    .filter(|s| !s.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            });
        LocalLeases {
            dir: base.map(|b| b.join("secretsync").join("locks")),
        }
    }

    /// The file of the lease for `key` (relative when no cache directory is known).
    pub fn path(&self, key: &str) -> PathBuf {
        let file = format!("{}.json", encode_key(key));
        match &self.dir {
            Some(d) => d.join(file),
            None => PathBuf::from(file),
        }
    }

    /// Runs `f` on the lease file's path under the directory's exclusive lock (on a blocking
    /// thread: `flock` waits).
    async fn locked<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&Path) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let Some(dir) = self.dir.clone() else {
            return Err(Error::config(
                "this target keeps its lease in a lock file in the user's cache directory, and neither XDG_CACHE_HOME nor HOME is set; set one (or configure an S3 merge store, whose bucket then holds the lease)",
            ));
        };
        let path = self.path(key);
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || -> std::io::Result<T> {
            create_private_dir(&dir)?;
            if let Some(parent) = path.parent() {
                create_private_dir(parent)?;
            }
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(".lock"))?;
            lock.lock()?;
            let out = f(&path);
            let _ = lock.unlock();
            out
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("lease file task: {e}")))?
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("lease file `{shown}`: {e}")))
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// The record in `path`, if any (`Err(InvalidData)`: not a lease).
fn read(path: &Path) -> std::io::Result<Option<LeaseRecord>> {
    match fs::read_to_string(path) {
        Ok(s) => LeaseRecord::from_json(&s, &path.display().to_string())
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.message)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the record (a temporary file renamed over the lease, so a reader never sees half).
fn write(path: &Path, record: &LeaseRecord) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut o = OpenOptions::new();
    o.create(true).truncate(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f: File = o.open(&tmp)?;
    f.write_all(record.to_json().as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[async_trait]
impl LeaseBackend for LocalLeases {
    fn location(&self, key: &str) -> String {
        format!("lock file {} (this machine only)", self.path(key).display())
    }

    async fn try_create(&self, key: &str, record: &LeaseRecord) -> Result<bool> {
        let record = record.clone();
        self.locked(key, move |p| {
            if read(p)?.is_some() {
                return Ok(false);
            }
            write(p, &record)?;
            Ok(true)
        })
        .await
    }

    async fn current(&self, key: &str) -> Result<Option<Stored>> {
        self.locked(key, |p| {
            Ok(read(p)?.map(|r| Stored {
                token: r.nonce.clone(),
                record: r,
            }))
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        record: &LeaseRecord,
    ) -> Result<Option<String>> {
        let (expected, record) = (expected.to_string(), record.clone());
        self.locked(key, move |p| match read(p)? {
            Some(r) if r.nonce == expected => {
                write(p, &record)?;
                Ok(Some(record.nonce.clone()))
            }
            _ => Ok(None),
        })
        .await
    }

    async fn delete_if_current(&self, key: &str, ours: &Stored) -> Result<bool> {
        let token = ours.token.clone();
        self.locked(key, move |p| match read(p)? {
            Some(r) if r.nonce == token => {
                fs::remove_file(p)?;
                Ok(true)
            }
            _ => Ok(false),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::cancel::Cancel;
    use crate::lease::{self, Holder, LeaseSpec};

    fn spec(key: &str, wait: Duration) -> LeaseSpec {
        LeaseSpec {
            key: key.into(),
            ttl: Duration::from_secs(30),
            wait,
        }
    }

    #[tokio::test]
    async fn a_held_lease_excludes_a_second_run_until_released() {
        let dir = std::env::temp_dir().join(format!("secretsync-lease-{}", uuid::Uuid::new_v4()));
        let b: Arc<dyn LeaseBackend> = Arc::new(LocalLeases::new(dir.clone()));
        let first = lease::acquire(
            b.clone(),
            spec("o/t", Duration::ZERO),
            Holder::new("o", "run-1", "h", "a"),
            &Cancel::default(),
        )
        .await
        .unwrap();
        let file = LocalLeases::new(dir.clone()).path("o/t");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let e = lease::acquire(
            b.clone(),
            spec("o/t", Duration::from_millis(300)),
            Holder::new("o", "run-2", "h", "a"),
            &Cancel::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Locked);
        assert!(e.message.contains("run-1"), "{e}");
        // Another key is free.
        let other = lease::acquire(
            b.clone(),
            spec("o/u", Duration::ZERO),
            Holder::new("o", "run-2", "h", "a"),
            &Cancel::default(),
        )
        .await
        .unwrap();
        other.release().await.unwrap();
        first.release().await.unwrap();
        assert!(!file.exists());
        let again = lease::acquire(
            b,
            spec("o/t", Duration::ZERO),
            Holder::new("o", "run-2", "h", "a"),
            &Cancel::default(),
        )
        .await
        .unwrap();
        again.release().await.unwrap();
        let _ = fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn the_cache_directory_comes_from_the_environment_and_its_absence_is_explained() {
        let b = LocalLeases::in_user_cache(&|k| (k == "HOME").then(|| "/h".to_string()));
        assert_eq!(
            b.path("o/t"),
            PathBuf::from("/h/.cache/secretsync/locks/o/t.json")
        );
        let b = LocalLeases::in_user_cache(&|k| {
            (k == "XDG_CACHE_HOME" || k == "HOME").then(|| "/x".to_string())
        });
        assert_eq!(b.path("k"), PathBuf::from("/x/secretsync/locks/k.json"));
        let e = LocalLeases::in_user_cache(&|_| None)
            .current("o/t")
            .await
            .unwrap_err();
        assert!(
            e.message.contains("XDG_CACHE_HOME") && e.message.contains("S3 merge store"),
            "{e}"
        );
    }
}
