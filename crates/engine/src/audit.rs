//! The audit log's sinks: a local JSON Lines file and the merge store
//! (`secretsync_core::audit` has the events, the chain and its verification; docs/audit.md).
//!
//! * **File**: events are appended under an exclusive lock on the file (two runs never
//!   interleave or fork the chain), after the chain's last line, and synced to disk.
//! * **Merge store**: one object per run's batch of events, `.secretsync/audit/runs/<first
//!   seq>` (12 digits), created only if absent — two runs that read the same head cannot both
//!   write the next batch: the second chains again after the first — and a head,
//!   `.secretsync/audit/head`, naming the last event. On S3 every object is encrypted (SSE).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secretsync_core::audit::{Broken, Event, Head, chain, head_of_line, verify};
use secretsync_core::config::AuditConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::store::{MergeStore, Objects};

/// Where the audit log's objects live in the merge store.
pub const STORE_DIR: &str = ".secretsync/audit/";
const RUNS_DIR: &str = ".secretsync/audit/runs/";
const HEAD_KEY: &str = ".secretsync/audit/head";
/// Attempts to append to the store when other runs keep appending first.
const STORE_ATTEMPTS: usize = 8;

/// The audit log of a config: each configured sink.
pub struct AuditLog {
    file: Option<PathBuf>,
    store: Option<Arc<dyn Objects>>,
}

/// A run object in the store: the lines of one batch, exactly as chained.
#[derive(Serialize, Deserialize)]
struct RunObject {
    lines: Vec<String>,
}

/// The store's head: the last event, and the object holding it.
#[derive(Serialize, Deserialize)]
struct StoreHead {
    seq: u64,
    hash: String,
    object: String,
}

impl AuditLog {
    /// The sinks `cfg` names; `store` is the run's merge store (required for `store: true`,
    /// which validation checks).
    pub fn new(cfg: &AuditConfig, store: Option<&Arc<dyn MergeStore>>) -> Result<AuditLog> {
        let store = if cfg.store {
            Some(
                store
                    .ok_or_else(|| Error::config("`audit.store` needs a merge store"))?
                    .objects(),
            )
        } else {
            None
        };
        Ok(AuditLog {
            file: cfg.file.as_ref().map(PathBuf::from),
            store,
        })
    }

    /// The sinks `cfg` names, the store's objects given (required for `store: true`).
    pub fn open(cfg: &AuditConfig, objects: Option<Arc<dyn Objects>>) -> Result<AuditLog> {
        if cfg.store && objects.is_none() {
            return Err(Error::config("`audit.store` needs a merge store"));
        }
        Ok(AuditLog {
            file: cfg.file.as_ref().map(PathBuf::from),
            store: objects.filter(|_| cfg.store),
        })
    }

    /// The audit log of `config` (its merge store opened for `store: true`) for commands
    /// that do not open the store themselves (`rotate`); `None` without `audit:`.
    pub async fn for_config(
        config: &secretsync_core::config::Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<AuditLog>> {
        let Some(a) = &config.audit else {
            return Ok(None);
        };
        let objects = if a.store {
            let history = crate::history::open(config, env)
                .await?
                .ok_or_else(|| Error::config("`audit.store` needs a merge store"))?;
            Some(history.objects())
        } else {
            None
        };
        AuditLog::open(a, objects).map(Some)
    }

    /// Appends `events` to every sink (the file first). An error names the sink.
    pub async fn append(&self, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(path) = &self.file {
            let (path, events) = (path.clone(), events.clone());
            tokio::task::spawn_blocking(move || append_file(&path, events))
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("the audit log writer stopped: {e}"),
                    )
                })??;
        }
        if let Some(objects) = &self.store {
            append_store(&**objects, events).await?;
        }
        Ok(())
    }
}

fn file_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("cannot {what} the audit log `{}`: {e}", path.display()),
    )
}

/// The last line of a file (without its newline), reading backwards from the end in blocks.
fn last_line(f: &mut std::fs::File) -> std::io::Result<Option<String>> {
    let len = f.seek(SeekFrom::End(0))?;
    let mut buf = Vec::new();
    let mut pos = len;
    const BLOCK: u64 = 64 * 1024;
    loop {
        let start = pos.saturating_sub(BLOCK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        // Trailing newlines are not part of the last line.
        while buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(String::from_utf8_lossy(&buf[i + 1..]).into_owned()));
        }
        if start == 0 {
            return Ok((!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned()));
        }
        pos = start;
    }
}

fn append_file(path: &Path, events: Vec<Event>) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).append(true).create(true);
    // Names and fingerprints are nobody else's business: the file is the owner's only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .map_err(|e| file_error(path, "open", e))?;
    // Held until the file is closed: another run appending waits.
    f.lock().map_err(|e| file_error(path, "lock", e))?;
    let head = match last_line(&mut f).map_err(|e| file_error(path, "read", e))? {
        None => Head::default(),
        Some(line) => head_of_line(&line).ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "the audit log `{}` does not end with an event; check it with `secretsync audit verify --from {}` before anything is added to it",
                    path.display(),
                    path.display()
                ),
            )
        })?,
    };
    let (lines, _) = chain(&head, events);
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| file_error(path, "write", e))?;
    Ok(())
}

async fn read_json<T: serde::de::DeserializeOwned>(
    objects: &dyn Objects,
    key: &str,
) -> Result<Option<T>> {
    match objects.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("{} is not an audit log object: {e}", objects.describe(key)),
            )
        }),
    }
}

/// The run objects' names in order (their first `seq`).
async fn run_objects(objects: &dyn Objects) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for name in objects.list(RUNS_DIR).await? {
        let seq: u64 = name.parse().map_err(|_| {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} is not an audit log run object (names are the first event's number)",
                    objects.describe(&format!("{RUNS_DIR}{name}"))
                ),
            )
        })?;
        out.push((seq, format!("{RUNS_DIR}{name}")));
    }
    out.sort();
    Ok(out)
}

/// Where the store's chain ends: the head object, or (without one) the last run object.
async fn store_head(objects: &dyn Objects, trust_head: bool) -> Result<Head> {
    if trust_head && let Some(h) = read_json::<StoreHead>(objects, HEAD_KEY).await? {
        return Ok(Head {
            seq: h.seq,
            hash: h.hash,
        });
    }
    let Some((_, key)) = run_objects(objects).await?.pop() else {
        return Ok(Head::default());
    };
    let run: RunObject = read_json(objects, &key).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Conflict,
            format!("{} vanished while it was read", objects.describe(&key)),
        )
    })?;
    run.lines
        .last()
        .and_then(|l| head_of_line(l))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} holds no event; check the log with `secretsync audit verify --store`",
                    objects.describe(&key)
                ),
            )
        })
}

async fn append_store(objects: &dyn Objects, events: Vec<Event>) -> Result<()> {
    let mut trust_head = true;
    for _ in 0..STORE_ATTEMPTS {
        let head = store_head(objects, trust_head).await?;
        let (lines, new_head) = chain(&head, events.clone());
        let key = format!("{RUNS_DIR}{:012}", head.seq + 1);
        let body = serde_json::to_vec(&RunObject { lines }).map_err(|e| {
            Error::new(ErrorKind::Unexpected, format!("encoding audit events: {e}"))
        })?;
        if objects.create(&key, &body).await? {
            let head = StoreHead {
                seq: new_head.seq,
                hash: new_head.hash,
                object: key,
            };
            let body = serde_json::to_vec(&head).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("encoding the audit head: {e}"),
                )
            })?;
            return objects.put(HEAD_KEY, &body).await;
        }
        // Another run wrote that batch first (or the head is behind): chain after the last
        // run object instead.
        trust_head = false;
    }
    Err(Error::new(
        ErrorKind::Conflict,
        format!(
            "could not append to the audit log in {}: other runs kept appending first",
            objects.location()
        ),
    ))
}

/// A new run id (a UUID v4), for commands that are not pipeline runs (`rotate`).
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Now, as the audit log writes times (RFC 3339, UTC, seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Verifies a log file: `Ok(events)` or the first broken event.
pub fn verify_file(path: &Path) -> Result<std::result::Result<Head, Broken>> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, "read", e))?;
    let mut head = Head::default();
    let at = path.display().to_string();
    Ok(verify(&mut head, &at, text.split('\n')).map(|_| head))
}

/// Every line of the store's log, in order, after verifying it: `Err(Broken)` names the
/// first broken event or object, or a head that says more events were written than remain.
pub async fn store_lines(
    objects: Arc<dyn Objects>,
) -> Result<(Vec<String>, std::result::Result<Head, Broken>)> {
    let mut head = Head::default();
    let mut all = Vec::new();
    for (seq, key) in run_objects(&*objects).await? {
        let at = objects.describe(&key);
        let Some(run) = read_json::<RunObject>(&*objects, &key).await? else {
            continue;
        };
        if seq != head.seq + 1 {
            let why = Broken {
                line: 1,
                at: at.clone(),
                why: format!(
                    "the object's first event is {seq}, but the log so far ends at event {}: a run's events were removed",
                    head.seq
                ),
            };
            return Ok((all, Err(why)));
        }
        if let Err(b) = verify(&mut head, &at, run.lines.iter().map(String::as_str)) {
            return Ok((all, Err(b)));
        }
        all.extend(run.lines);
    }
    if let Some(h) = read_json::<StoreHead>(&*objects, HEAD_KEY).await?
        && h.seq > head.seq
    {
        let why = Broken {
            line: 0,
            at: objects.describe(HEAD_KEY),
            why: format!(
                "the head names event {} ({}), but the log ends at event {}: events at the end were removed",
                h.seq, h.object, head.seq
            ),
        };
        return Ok((all, Err(why)));
    }
    Ok((all, Ok(head)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::change(
                    "r",
                    "2026-12-02T10:00:00Z",
                    "t",
                    &format!("p{i}"),
                    &format!("n{i}"),
                    "created",
                    None,
                    None,
                )
            })
            .collect()
    }

    #[test]
    fn appends_continue_the_chain_of_the_file() {
        let path = std::env::temp_dir().join(format!("audit-{}.jsonl", uuid::Uuid::new_v4()));
        append_file(&path, events(2)).unwrap();
        append_file(&path, events(3)).unwrap();
        let head = verify_file(&path).unwrap().unwrap();
        assert_eq!(head.seq, 5);
        // A long last line (more than one read block) is found whole.
        let long = "x".repeat(200_000);
        append_file(
            &path,
            vec![Event::change(
                "r", "t", "t", &long, "n", "created", None, None,
            )],
        )
        .unwrap();
        append_file(&path, events(1)).unwrap();
        assert_eq!(verify_file(&path).unwrap().unwrap().seq, 7);
        // A file whose end is not an event is not appended to.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"garbage\n")
            .unwrap();
        let e = append_file(&path, events(1)).unwrap_err();
        assert!(
            e.message.contains("does not end with an event"),
            "{}",
            e.message
        );
        let _ = std::fs::remove_file(&path);
    }
}
