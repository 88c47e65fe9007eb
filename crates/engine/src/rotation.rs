//! Secret rotation in Vault (`secretsync rotate`): Vault stays the source of truth, so a due
//! key is regenerated *there*, with check-and-set, and the next `pipeline` run distributes it
//! like any other change.
//!
//! * [`plan`] lists each `rotation:` block's source (once per source, like the pipeline's
//!   read: limits, unsafe keys, gaps), selects the paths the blocks' globs match, groups the
//!   keys of one secret (one write per secret, whatever the number of blocks), and reads each
//!   selected secret's metadata and current version. A key's age is found by walking back
//!   through the versions (`secretsync_core::rotation::KeyAge`: bounded by `every`).
//! * [`apply`] writes every secret with a due key: the current version's data with only the
//!   due keys replaced by generated values, with `cas` = the version read. A secret changed in
//!   between is a conflict and keeps its concurrent value.
//!
//! ```yaml
//! rotation:
//!   - source: base
//!     paths: ["app/*/db"]
//!     key: password
//!     every: 30d
//!     generator: { length: 32 }
//! ```

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::{StreamExt, stream};
use secretsync_core::config::{Config, RotationConfig};
use secretsync_core::rotation::{
    Generator, KeyAge, KeyReport, KeyStatus, Report, SecretReport, VersionInfo,
};
use secretsync_core::secret::{Gap, SecretValue};
use serde_json::Value;
use tracing::{info, warn};

use crate::cancel::Cancel;
use crate::error::Result;
use crate::vault::client::{CasOutcome, ReadOutcome};
use crate::vault::{VaultClient, source};

/// What a rotation run found: per selected secret the version read, its data (for the
/// write) and each key's age and verdict. [`RotationPlan::report`] shows it without writing.
pub struct RotationPlan {
    forced: bool,
    concurrency: usize,
    secrets: Vec<PlannedSecret>,
    incomplete: Vec<Gap>,
}

/// The report of a run ([`apply`]) or of a plan ([`RotationPlan::report`]).
pub type RotationReport = Report;

struct PlannedSecret {
    report: SecretReport,
    kv_mount: String,
    /// Below the KV mount (the source's sub-path + the relative path).
    vault_path: String,
    /// The current version's data; `None` when it could not be read.
    data: Option<SecretValue>,
    /// Beside `report.keys`: the generator of each due key.
    generators: Vec<Option<Generator>>,
}

impl RotationPlan {
    /// The plan as a dry run's report: due keys stay `due`, nothing was written.
    pub fn report(&self) -> RotationReport {
        Report {
            dry_run: true,
            forced: self.forced,
            secrets: self.secrets.iter().map(|s| s.report.clone()).collect(),
            incomplete: self.incomplete.clone(),
        }
    }

    /// Keys that are due.
    pub fn due(&self) -> usize {
        self.secrets
            .iter()
            .flat_map(|s| &s.report.keys)
            .filter(|k| k.status == KeyStatus::Due)
            .count()
    }
}

/// One selected secret before it is read: which keys which blocks chose.
struct Candidate {
    source: String,
    path: String,
    kv_mount: String,
    vault_path: String,
    /// Key → the blocks (indexes in `config.rotation`) that selected it.
    keys: BTreeMap<String, Vec<usize>>,
}

/// Lists the sources of `config.rotation`, selects the secrets, and finds each selected key's
/// age at `now` and whether it is due (`age >= every`, or every key with `force`). Reads
/// only: nothing is written. A source that cannot be resolved or listed at its root fails
/// the run; a folder that cannot be listed is reported as incomplete; a secret that cannot
/// be read is reported as failed.
pub async fn plan(
    config: &Config,
    vault: &VaultClient,
    now: SystemTime,
    force: bool,
) -> Result<RotationPlan> {
    let concurrency = config.vault.concurrency.max(1);
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut incomplete = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    for block in &config.rotation {
        if !sources.contains(&block.source.as_str()) {
            sources.push(&block.source);
        }
    }
    for name in sources {
        let Some(src) = config.source(name) else {
            // Validation checked every block's source.
            continue;
        };
        let at = source::resolve(vault, src).await?;
        let listing = source::list_all(vault, src, &at, concurrency, &Cancel::default()).await?;
        incomplete.extend(listing.incomplete);
        for path in listing.paths {
            let mut keys: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, block) in config.rotation.iter().enumerate() {
                if block.source == name && block.paths.iter().any(|g| g.matches(&path)) {
                    keys.entry(block.key.clone()).or_default().push(i);
                }
            }
            if keys.is_empty() {
                continue;
            }
            candidates.push(Candidate {
                source: name.to_string(),
                vault_path: format!("{}{path}", at.sub_path),
                kv_mount: at.kv_mount.clone(),
                path,
                keys,
            });
        }
    }
    let secrets: Vec<PlannedSecret> = stream::iter(candidates)
        .map(|c| inspect(vault, &config.rotation, c, now, force))
        .buffered(concurrency)
        .collect()
        .await;
    Ok(RotationPlan {
        forced: force,
        concurrency,
        secrets,
        incomplete,
    })
}

/// Reads one selected secret's metadata and current version and judges each of its keys.
async fn inspect(
    vault: &VaultClient,
    blocks: &[RotationConfig],
    c: Candidate,
    now: SystemTime,
    force: bool,
) -> PlannedSecret {
    let mut planned = PlannedSecret {
        report: SecretReport {
            source: c.source,
            path: c.path,
            version: None,
            new_version: None,
            keys: Vec::new(),
        },
        kv_mount: c.kv_mount,
        vault_path: c.vault_path,
        data: None,
        generators: Vec::new(),
    };
    let every_key = |status: &dyn Fn(&str, &[usize]) -> KeyStatus| -> Vec<KeyReport> {
        c.keys
            .iter()
            .map(|(key, bs)| KeyReport {
                key: key.clone(),
                block: bs[0],
                every: blocks[bs[0]].every,
                age: None,
                status: status(key, bs),
            })
            .collect()
    };
    let (mount, path) = (&planned.kv_mount, &planned.vault_path);
    let meta = match vault.read_metadata(mount, path).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            planned.report.keys = every_key(&|_, _| {
                KeyStatus::Skipped("the secret no longer exists (it vanished after listing)".into())
            });
            return planned;
        }
        Err(e) => {
            warn!(source = %planned.report.source, path = %planned.report.path, error = %e.message, "could not read a secret's metadata; its keys are not rotated");
            planned.report.keys = every_key(&|_, _| KeyStatus::Failed(e.message.clone()));
            return planned;
        }
    };
    let current = meta.current_version;
    planned.report.version = Some(current);
    let state = match meta.current() {
        Some(s) => s,
        None => {
            let why = format!(
                "Vault's metadata does not list the current version {current}; check the secret in Vault"
            );
            planned.report.keys = every_key(&|_, _| KeyStatus::Failed(why.clone()));
            return planned;
        }
    };
    if state.deleted || state.destroyed {
        let why = format!(
            "the current version {current} is {}; nothing is rotated in a deleted secret",
            if state.destroyed {
                "destroyed"
            } else {
                "deleted"
            }
        );
        info!(source = %planned.report.source, path = %planned.report.path, version = current, "skipping a secret whose current version is deleted");
        planned.report.keys = every_key(&|_, _| KeyStatus::Skipped(why.clone()));
        return planned;
    }
    let mut versions: BTreeMap<u64, VersionInfo> = BTreeMap::new();
    for (n, st) in &meta.versions {
        let Some(created) = st.created else {
            let why = format!(
                "Vault's metadata has no readable `created_time` for version {n}, so the key's age is unknown"
            );
            planned.report.keys = every_key(&|_, _| KeyStatus::Failed(why.clone()));
            return planned;
        };
        versions.insert(
            *n,
            VersionInfo {
                created,
                live: !st.deleted && !st.destroyed,
            },
        );
    }
    let data = match vault.read_version(mount, path, current).await {
        Ok(ReadOutcome::Found { data, .. }) => SecretValue::new(data),
        Ok(ReadOutcome::Deleted { .. } | ReadOutcome::Missing) => {
            planned.report.keys = every_key(&|_, _| {
                KeyStatus::Skipped(format!(
                    "version {current} was deleted while it was read; nothing is rotated in a deleted secret"
                ))
            });
            return planned;
        }
        Err(e) => {
            planned.report.keys = every_key(&|_, _| KeyStatus::Failed(e.message.clone()));
            return planned;
        }
    };
    // Older versions read so far (`None`: deleted or gone by the time it was read).
    let mut older: BTreeMap<u64, Option<SecretValue>> = BTreeMap::new();
    for (key, bs) in &c.keys {
        let block = &blocks[bs[0]];
        let mut report = KeyReport {
            key: key.clone(),
            block: bs[0],
            every: block.every,
            age: None,
            status: KeyStatus::NotDue,
        };
        let mut generator = None;
        if bs.len() > 1 {
            let names: Vec<String> = bs.iter().map(|b| format!("`rotation[{b}]`")).collect();
            report.status = KeyStatus::Failed(format!(
                "selected for this key by {}; make their `paths` select different secrets, or rotate different keys",
                names.join(" and ")
            ));
            planned.report.keys.push(report);
            planned.generators.push(None);
            continue;
        }
        let value = match data.expose().get(key) {
            None => {
                report.status = KeyStatus::Skipped(format!("no key `{key}`"));
                planned.report.keys.push(report);
                planned.generators.push(None);
                continue;
            }
            Some(Value::String(_)) => data.expose().get(key),
            Some(other) => {
                report.status = KeyStatus::Skipped(format!(
                    "`{key}` is {}, not a string; only string values are rotated",
                    json_kind(other)
                ));
                planned.report.keys.push(report);
                planned.generators.push(None);
                continue;
            }
        };
        let mut walk = KeyAge::new(current);
        let mut failed = None;
        while let Some(v) = walk.next(&versions, block.every, now) {
            if let std::collections::btree_map::Entry::Vacant(slot) = older.entry(v) {
                match vault.read_version(mount, path, v).await {
                    Ok(ReadOutcome::Found { data, .. }) => {
                        slot.insert(Some(SecretValue::new(data)));
                    }
                    Ok(_) => {
                        slot.insert(None);
                    }
                    Err(e) => {
                        failed = Some(e.message);
                        break;
                    }
                }
            }
            let same = older
                .get(&v)
                .and_then(|d| d.as_ref())
                .is_some_and(|d| d.expose().get(key) == value);
            walk.step(v, same);
        }
        if let Some(why) = failed {
            report.status = KeyStatus::Failed(why);
        } else {
            match walk.age(&versions, now) {
                Some(age) => {
                    report.age = Some(age);
                    if force || age.age >= block.every {
                        report.status = KeyStatus::Due;
                        generator = Some(block.generator.clone());
                    }
                }
                None => {
                    report.status = KeyStatus::Failed(format!(
                        "Vault's metadata does not list version {}; check the secret in Vault",
                        walk.start()
                    ));
                }
            }
        }
        planned.report.keys.push(report);
        planned.generators.push(generator);
    }
    planned.data = Some(data);
    planned
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Writes every secret of `plan` that has a due key: its current data with only the due keys
/// replaced by generated values, with check-and-set on the version read. Returns what
/// happened to every key (never a value). A check-and-set mismatch is a conflict (the secret
/// keeps its concurrent value), unless the version after ours holds exactly what we wrote
/// (our own write, landed by an earlier attempt of a retried call).
pub async fn apply(plan: RotationPlan, vault: &VaultClient) -> RotationReport {
    let forced = plan.forced;
    let secrets: Vec<SecretReport> = stream::iter(plan.secrets)
        .map(|s| write_one(vault, s))
        .buffered(plan.concurrency)
        .collect()
        .await;
    Report {
        dry_run: false,
        forced,
        secrets,
        incomplete: plan.incomplete,
    }
}

async fn write_one(vault: &VaultClient, s: PlannedSecret) -> SecretReport {
    let PlannedSecret {
        mut report,
        kv_mount,
        vault_path,
        data,
        generators,
    } = s;
    let (Some(mut new), Some(version)) = (data, report.version) else {
        return report;
    };
    if generators.iter().all(Option::is_none) {
        return report;
    }
    let set = |report: &mut SecretReport, status: KeyStatus| {
        for (k, g) in report.keys.iter_mut().zip(&generators) {
            if g.is_some() {
                k.status = status.clone();
            }
        }
    };
    {
        let map = new.expose_mut();
        for (k, g) in report.keys.iter().zip(&generators) {
            let Some(g) = g else { continue };
            let mut fill = |buf: &mut [u8]| getrandom::fill(buf);
            match g.generate(&mut fill) {
                Ok(mut value) => {
                    map.insert(k.key.clone(), Value::String(std::mem::take(&mut *value)));
                }
                Err(e) => {
                    let why = format!(
                        "the system's random number generator failed ({e}); nothing was written"
                    );
                    set(&mut report, KeyStatus::Failed(why));
                    return report;
                }
            }
        }
    }
    let rotated: Vec<&str> = report
        .keys
        .iter()
        .zip(&generators)
        .filter(|(_, g)| g.is_some())
        .map(|(k, _)| k.key.as_str())
        .collect();
    let rotated = rotated.join(",");
    match vault
        .write_cas(&kv_mount, &vault_path, new.expose(), version)
        .await
    {
        Ok(CasOutcome::Written(v)) => {
            info!(source = %report.source, path = %report.path, keys = %rotated, version = v, "rotated in Vault");
            report.new_version = Some(v);
            set(&mut report, KeyStatus::Rotated);
        }
        Ok(CasOutcome::Mismatch) => {
            // Our own write may have landed on an earlier attempt of a retried call.
            let ours = match vault.read(&kv_mount, &vault_path).await {
                Ok(ReadOutcome::Found { data, version: v }) => {
                    (v == version + 1 && data == *new.expose()).then_some(v)
                }
                _ => None,
            };
            match ours {
                Some(v) => {
                    info!(source = %report.source, path = %report.path, keys = %rotated, version = v, "rotated in Vault");
                    report.new_version = Some(v);
                    set(&mut report, KeyStatus::Rotated);
                }
                None => {
                    warn!(source = %report.source, path = %report.path, version, "the secret changed in Vault after it was read; not rotated");
                    set(
                        &mut report,
                        KeyStatus::Conflict(format!(
                            "changed concurrently (version {version} is no longer current), not rotated; run again"
                        )),
                    );
                }
            }
        }
        Err(e) => {
            warn!(source = %report.source, path = %report.path, error = %e.message, "could not write a rotated secret");
            set(&mut report, KeyStatus::Failed(e.message));
        }
    }
    report
}
