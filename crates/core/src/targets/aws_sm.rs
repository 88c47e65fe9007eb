//! The `aws_secretsmanager` target kind: settings, validation, and the naming and size rules
//! checked before any write.
//!
//! ```yaml
//! targets:
//!   - name: production-us-east-1
//!     type: aws_secretsmanager
//!     region: us-east-1
//!     role_arn: arn:aws:iam::123456789012:role/SecretSync   # optional; external_id: optional
//!     secret_prefix: prod/            # AWS name = prefix + relative path
//!     imports: [base]
//!     deletion_recovery_days: 30      # 7..30; force_delete: true skips the window
//!     kms_key_id: alias/secrets       # optional; default: the account's aws/secretsmanager key
//!     tags: { team: platform }        # added to the ownership tags, kept in sync
//!     description: synced from Vault  # optional, kept in sync
//!     replica_regions: [us-west-2, eu-west-1]   # multi-region replicas, reconciled every run
//! ```
//!
//! Settings other than the value (description, key, extra tags, replicas) are compared with
//! what the listing shows and brought in line without a new version: [`metadata_changes`] and
//! [`replica_changes`] compute those [`SettingChange`]s, purely. `ListSecrets` does not return
//! replication status, so a tag ([`TAG_REPLICAS`]) records the region set last seen fully in
//! sync; only a secret whose tag differs from the desired set is described (one
//! `DescribeSecret`) and reconciled.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::S;
use crate::config::validate::Validator;
use crate::de::Spanned;
use crate::diff::{SettingChange, TAG_MANAGED};

/// Longest secret name AWS accepts.
pub const MAX_NAME_LEN: usize = 512;
/// Largest secret value AWS accepts, in bytes.
pub const MAX_VALUE_BYTES: usize = 65_536;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// Checks a configured `secret_prefix`.
pub fn check_prefix(p: &str) -> Result<(), String> {
    match p.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!(
            "secret prefix contains `{}`, which AWS does not allow in names",
            c.escape_debug()
        )),
        None if p.len() > 256 => Err("secret prefix is longer than 256 characters".into()),
        None => Ok(()),
    }
}

/// Checks a full secret name against AWS's hard rules.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("secret name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "secret name is {} characters; AWS allows at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "secret name contains `{}`; AWS allows letters, digits and `/_+=.@-`",
            c.escape_debug()
        ));
    }
    Ok(())
}

/// AWS advises against names ending in `-` and six characters: a partial-ARN lookup can
/// mistake that suffix for the random ARN suffix. Worth a warning, not a refusal.
pub fn has_arn_like_suffix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 7
        && bytes[bytes.len() - 7] == b'-'
        && bytes[bytes.len() - 6..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

/// Checks a secret value's size.
pub fn check_size(bytes: usize) -> Result<(), String> {
    if bytes > MAX_VALUE_BYTES {
        return Err(format!(
            "secret value is {bytes} bytes; AWS allows at most {MAX_VALUE_BYTES}"
        ));
    }
    Ok(())
}

/// Records the replica regions last seen all in sync (sorted, space-separated; a digest when
/// that is longer than a tag value may be). Absent: no replicas reconciled.
pub const TAG_REPLICAS: &str = "secretsync:replicas";
/// Records the `kms_key_id` last applied, because AWS may report the key in another form than
/// the one configured (a key ARN for an alias).
pub const TAG_KMS_KEY: &str = "secretsync:kms-key";
/// Tags AWS allows on one secret.
pub const MAX_TAGS: usize = 50;
/// Tags SecretSync may write itself: the five ownership marks, [`TAG_REPLICAS`] and
/// [`TAG_KMS_KEY`].
pub const RESERVED_TAG_COUNT: usize = 7;
/// Extra `tags` a target may add.
pub const MAX_EXTRA_TAGS: usize = MAX_TAGS - RESERVED_TAG_COUNT;
pub const MAX_TAG_KEY_LEN: usize = 128;
pub const MAX_TAG_VALUE_LEN: usize = 256;
pub const MAX_DESCRIPTION_LEN: usize = 2048;
pub const MAX_KMS_KEY_ID_LEN: usize = 2048;

fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// Whether a tag key is SecretSync's own (`managed-by`, `secretsync:*`) or AWS's (`aws:*`).
pub fn is_reserved_tag(key: &str) -> bool {
    key == TAG_MANAGED
        || key.starts_with("secretsync:")
        || key.to_ascii_lowercase().starts_with("aws:")
}

/// Checks an extra tag's key.
pub fn check_tag_key(key: &str) -> Result<(), String> {
    if is_reserved_tag(key) {
        return Err(format!(
            "tag key `{key}` is reserved (`{TAG_MANAGED}` and `secretsync:*` mark ownership, `aws:*` is AWS's own)"
        ));
    }
    check_tag_text(key, "key", 1, MAX_TAG_KEY_LEN)
}

/// Checks an extra tag's value.
pub fn check_tag_value(value: &str) -> Result<(), String> {
    check_tag_text(value, "value", 0, MAX_TAG_VALUE_LEN)
}

fn check_tag_text(s: &str, what: &str, min: usize, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(format!(
            "tag {what} `{s}` is {n} characters; AWS allows {min} to {max}"
        ));
    }
    if let Some(c) = s.chars().find(|c| !tag_char(*c)) {
        return Err(format!(
            "tag {what} `{s}` contains `{}`; AWS allows letters, digits, spaces and `_.:/=+-@`",
            c.escape_debug()
        ));
    }
    Ok(())
}

/// Checks a `kms_key_id`: a key id, key ARN, alias name (`alias/…`) or alias ARN.
pub fn check_kms_key_id(k: &str) -> Result<(), String> {
    if k.is_empty() {
        return Err("`kms_key_id` is empty".into());
    }
    if k.len() > MAX_KMS_KEY_ID_LEN {
        return Err(format!(
            "`kms_key_id` is {} characters; AWS allows at most {MAX_KMS_KEY_ID_LEN}",
            k.len()
        ));
    }
    if k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`kms_key_id` `{}` contains a space",
            k.escape_debug()
        ));
    }
    Ok(())
}

crate::raw_target! {
    /// The YAML shape of an `aws_secretsmanager` target.
    Raw {
        region: S<String>,
        role_arn: S<String>,
        external_id: S<String>,
        deletion_recovery_days: S<u64>,
        force_delete: S<bool>,
        kms_key_id: S<String>,
        tags: S<BTreeMap<String, Spanned<String>>>,
        description: S<String>,
        replica_regions: S<Vec<Spanned<String>>>,
    }
}

/// A validated `aws_secretsmanager` target.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsSmSettings {
    pub region: String,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub deletion_recovery_days: u32,
    pub force_delete: bool,
    /// `CreateSecret`'s `KmsKeyId`, kept in sync with `UpdateSecret` (AWS re-encrypts the
    /// `AWSCURRENT`, `AWSPENDING` and `AWSPREVIOUS` versions; no new version). `None`: the
    /// key of a secret is left as it is (new ones get `aws/secretsmanager`).
    pub kms_key_id: Option<String>,
    /// Extra tags beside the ownership marks, kept in sync (a key removed from the config is
    /// left on existing secrets).
    pub tags: BTreeMap<String, String>,
    /// Kept in sync; `None`: left as it is.
    pub description: Option<String>,
    /// Regions the secrets are replicated to (never the target's own region), as configured.
    pub replica_regions: Vec<String>,
}

pub const DEFAULT_RECOVERY_DAYS: u32 = 30;

/// Validates the backend's own keys (the common ones are done by the caller).
pub(crate) fn lower(
    v: &mut Validator,
    r: &Raw,
    pos: Option<crate::diag::Pos>,
    path: &str,
) -> AwsSmSettings {
    let region = match &r.region {
        Some(rg) => {
            v.region(rg);
            rg.value.clone()
        }
        None => {
            v.missing(
                pos,
                &format!("{path}.region"),
                "the AWS region, e.g. `us-east-1`",
            );
            String::new()
        }
    };
    let deletion_recovery_days = match &r.deletion_recovery_days {
        Some(d) if !(7..=30).contains(&d.value) => {
            v.error(
                d,
                "`deletion_recovery_days` must be between 7 and 30",
                "AWS accepts 7 to 30 days; use `force_delete: true` to delete without recovery",
            );
            DEFAULT_RECOVERY_DAYS
        }
        Some(d) => d.value as u32,
        None => DEFAULT_RECOVERY_DAYS,
    };
    let kms_key_id = r.kms_key_id.as_ref().map(|k| {
        if let Err(e) = check_kms_key_id(&k.value) {
            v.error(
                k,
                e,
                "use a KMS key id, key ARN, alias name (`alias/…`) or alias ARN, or remove the key for the account's `aws/secretsmanager` key",
            );
        }
        k.value.clone()
    });
    let description = r.description.as_ref().map(|d| {
        if d.value.is_empty() || d.value.chars().count() > MAX_DESCRIPTION_LEN {
            v.error(
                d,
                format!("`description` must be 1 to {MAX_DESCRIPTION_LEN} characters"),
                "shorten it, or remove the key to leave descriptions as they are",
            );
        }
        d.value.clone()
    });
    let mut tags = BTreeMap::new();
    if let Some(t) = &r.tags {
        if t.value.len() > MAX_EXTRA_TAGS {
            v.error(
                t,
                format!(
                    "`tags` has {} entries; at most {MAX_EXTRA_TAGS} fit beside SecretSync's own {RESERVED_TAG_COUNT} (AWS allows {MAX_TAGS} per secret)",
                    t.value.len()
                ),
                "remove some tags",
            );
        }
        for (key, value) in &t.value {
            if let Err(e) = check_tag_key(key) {
                v.error(value, e, "choose another tag key");
            }
            if let Err(e) = check_tag_value(&value.value) {
                v.error(
                    value,
                    e,
                    "shorten the value or remove the characters AWS rejects",
                );
            }
            tags.insert(key.clone(), value.value.clone());
        }
    }
    let mut replica_regions = Vec::new();
    for rg in r.replica_regions.iter().flat_map(|l| l.value.iter()) {
        v.region(rg);
        if rg.value == region {
            v.error(
                rg,
                format!("`{}` is the target's own region", rg.value),
                "list only other regions in `replica_regions`; the primary secret lives in `region`",
            );
        } else if replica_regions.contains(&rg.value) {
            v.error(
                rg,
                format!("`{}` is listed twice in `replica_regions`", rg.value),
                "list each region once",
            );
        } else {
            replica_regions.push(rg.value.clone());
        }
    }
    AwsSmSettings {
        region,
        role_arn: v.role_arn(&r.role_arn),
        external_id: r.external_id.as_ref().map(|e| e.value.clone()),
        deletion_recovery_days,
        force_delete: r.force_delete.as_ref().is_some_and(|d| d.value),
        kms_key_id,
        tags,
        description,
        replica_regions,
    }
}

/// The settings a plan can change, and how they are named in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    Description,
    KmsKey,
    /// An extra tag.
    Tag(String),
    /// The replica in a region: added (`new` = `add`), retried after a failure (`retry`:
    /// removed, then added again), or removed (`new` = `None`).
    Replica(String),
    /// The [`TAG_REPLICAS`] record: every desired replica was seen in sync.
    ReplicasRecord,
}

/// [`Setting::Replica`]'s `new` for an added replica.
pub const REPLICA_ADD: &str = "add";
/// [`Setting::Replica`]'s `new` for a failed replica that is removed and added again.
pub const REPLICA_RETRY: &str = "retry";
pub const STATUS_IN_SYNC: &str = "InSync";
pub const STATUS_FAILED: &str = "Failed";

impl Setting {
    pub fn key(&self) -> String {
        match self {
            Setting::Description => "description".into(),
            Setting::KmsKey => "kms_key_id".into(),
            Setting::Tag(k) => format!("tag:{k}"),
            Setting::Replica(r) => format!("replica:{r}"),
            Setting::ReplicasRecord => "replicas".into(),
        }
    }

    pub fn parse(s: &str) -> Option<Setting> {
        match s {
            "description" => Some(Setting::Description),
            "kms_key_id" => Some(Setting::KmsKey),
            "replicas" => Some(Setting::ReplicasRecord),
            _ => {
                if let Some(k) = s.strip_prefix("tag:") {
                    Some(Setting::Tag(k.into()))
                } else {
                    s.strip_prefix("replica:")
                        .map(|r| Setting::Replica(r.into()))
                }
            }
        }
    }
}

fn change(
    setting: Setting,
    old: Option<&str>,
    new: Option<&str>,
    note: Option<String>,
) -> SettingChange {
    SettingChange {
        setting: setting.key(),
        old: old.map(str::to_string),
        new: new.map(str::to_string),
        note,
    }
}

/// A secret's settings as `ListSecrets` shows them.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    pub description: Option<&'a str>,
    pub kms_key_id: Option<&'a str>,
    pub tags: &'a crate::tags::TagMap,
}

/// Whether the key AWS reports (`listed`) is the configured one: the same text, the ARN of
/// the configured alias or key id (or the other way round), or the key the tool last applied
/// ([`TAG_KMS_KEY`]) while AWS reports some customer key (AWS may report an alias as its
/// key's ARN).
pub fn kms_matches(configured: &str, listed: Option<&str>, recorded: Option<&str>) -> bool {
    let Some(listed) = listed else { return false };
    let same =
        |a: &str, b: &str| a == b || a.ends_with(&format!(":{b}")) || a.ends_with(&format!("/{b}"));
    same(listed, configured) || same(configured, listed) || recorded == Some(configured)
}

/// How an existing secret's description, key and extra tags differ from the settings, from the
/// listing alone (no call). A setting that is not configured is left as it is.
pub fn metadata_changes(s: &AwsSmSettings, l: &Listing<'_>) -> Vec<SettingChange> {
    let mut out = Vec::new();
    if let Some(d) = &s.description
        && l.description != Some(d.as_str())
    {
        out.push(change(Setting::Description, l.description, Some(d), None));
    }
    if let Some(k) = &s.kms_key_id
        && !kms_matches(k, l.kms_key_id, l.tags.get(TAG_KMS_KEY).map(String::as_str))
    {
        // `None`: the account's `aws/secretsmanager` key (ListSecrets leaves it out).
        out.push(change(
            Setting::KmsKey,
            l.kms_key_id,
            Some(k),
            Some("re-encrypt: AWS re-encrypts the current, pending and previous versions under the new key; no new version".into()),
        ));
    }
    for (k, v) in &s.tags {
        let old = l.tags.get(k).map(String::as_str);
        if old != Some(v.as_str()) {
            out.push(change(Setting::Tag(k.clone()), old, Some(v), None));
        }
    }
    out
}

/// The [`TAG_REPLICAS`] value for a set of regions; `None` for no replicas.
pub fn replicas_record(regions: &[String]) -> Option<String> {
    let set: BTreeSet<&str> = regions.iter().map(String::as_str).collect();
    if set.is_empty() {
        return None;
    }
    let joined = set.into_iter().collect::<Vec<_>>().join(" ");
    if joined.len() <= MAX_TAG_VALUE_LEN {
        return Some(joined);
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(joined.as_bytes());
    Some(format!("sha256:{}", &hex::encode(digest)[..32]))
}

/// Whether the tags prove the replicas reconciled to `desired`: then no `DescribeSecret` is
/// needed. No replicas desired and no record: nothing to reconcile (replicas made by hand on a
/// target without `replica_regions` are left alone).
pub fn replicas_recorded(desired: &[String], tags: &crate::tags::TagMap) -> bool {
    tags.get(TAG_REPLICAS).cloned() == replicas_record(desired)
}

/// One entry of `DescribeSecret`'s `ReplicationStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub region: String,
    /// `InSync`, `InProgress` or `Failed`.
    pub status: String,
    pub message: Option<String>,
}

/// What to change so the replicas are the desired ones: missing regions added, failed ones
/// retried (removed, then added again: adding a region that has a replica, even a failed one,
/// does not replace it), extra ones removed; and once every desired replica is in sync and
/// nothing else is to be done, the record ([`TAG_REPLICAS`]) written. A replica still in
/// progress is left to finish: the record is not written, so the next run looks again.
pub fn replica_changes(
    desired: &[String],
    current: &[Replica],
    recorded: Option<&str>,
) -> Vec<SettingChange> {
    let mut out = Vec::new();
    let want: BTreeSet<&str> = desired.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    let mut all_in_sync = true;
    for r in current {
        if !seen.insert(r.region.as_str()) {
            continue;
        }
        if !want.contains(r.region.as_str()) {
            out.push(change(
                Setting::Replica(r.region.clone()),
                Some(&r.status),
                None,
                None,
            ));
        } else if r.status == STATUS_FAILED {
            out.push(change(
                Setting::Replica(r.region.clone()),
                Some(&r.status),
                Some(REPLICA_RETRY),
                Some(format!(
                    "failed: {}",
                    r.message.as_deref().unwrap_or("no reason given")
                )),
            ));
        } else if r.status != STATUS_IN_SYNC {
            all_in_sync = false;
        }
    }
    for region in want.iter().filter(|r| !seen.contains(*r)) {
        out.push(change(
            Setting::Replica(region.to_string()),
            None,
            Some(REPLICA_ADD),
            None,
        ));
    }
    out.sort_by(|a, b| a.setting.cmp(&b.setting));
    let record = replicas_record(desired);
    if out.is_empty() && all_in_sync && recorded != record.as_deref() {
        out.push(change(
            Setting::ReplicasRecord,
            recorded,
            record.as_deref(),
            Some("every replica is in sync".into()),
        ));
    }
    out
}

/// For a new secret: the replicas its creation adds (shown in the plan).
pub fn replicas_on_create(desired: &[String]) -> Vec<SettingChange> {
    let set: BTreeSet<&String> = desired.iter().collect();
    set.into_iter()
        .map(|r| change(Setting::Replica(r.clone()), None, Some(REPLICA_ADD), None))
        .collect()
}

/// AWS Secrets Manager's rules: names of `A-Za-z0-9/_+=.@-`, at most 512 characters; values
/// at most 65,536 bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsSmRules;

impl super::TargetRules for AwsSmRules {
    fn check_prefix(&self, prefix: &str) -> Result<(), String> {
        check_prefix(prefix)
    }
    fn check_name(&self, name: &str) -> Result<(), String> {
        check_name(name)
    }
    fn check_size(&self, bytes: usize) -> Result<(), String> {
        check_size(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Loaded, TargetBackend};
    use crate::diff::{TAG_OWNER, TAG_VERSION};

    #[test]
    fn names() {
        assert!(check_name("prod/app/db").is_ok());
        assert!(check_name("prod/app/db-pass1").is_ok());
        assert!(check_name("prod/app/db-abcdef").is_ok());
        assert!(
            has_arn_like_suffix("prod/app/db-abcdef") && !has_arn_like_suffix("prod/app/db-pass1")
        );
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(513)).is_err());
        assert!(check_size(65_536).is_ok() && check_size(65_537).is_err());
    }

    fn load(target_keys: &str) -> Loaded {
        let yaml = format!(
            "vault_sources:\n  - mount: secret/base/\ntargets:\n  - name: prod\n    type: aws_secretsmanager\n    region: us-east-1\n    imports: [base]\n{target_keys}"
        );
        crate::config::load(&yaml, &|_| None)
    }

    fn settings_of(target_keys: &str) -> AwsSmSettings {
        let loaded = load(target_keys);
        let config = loaded
            .config
            .unwrap_or_else(|| panic!("rejected: {:?}", loaded.diagnostics.0));
        // Refutable once there are other kinds.
        #[allow(irrefutable_let_patterns)]
        let TargetBackend::AwsSecretsManager(s) = &config.targets[0].backend else {
            panic!("not an aws_secretsmanager target")
        };
        s.clone()
    }

    /// Every diagnostic, one per line; the config must be rejected.
    fn errors(target_keys: &str) -> String {
        let loaded = load(target_keys);
        assert!(loaded.config.is_none(), "accepted: {target_keys}");
        loaded
            .diagnostics
            .0
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn options_are_validated_into_settings() {
        let s = settings_of(
            "    kms_key_id: alias/secrets\n    tags: { team: platform, cost center: \"42\" }\n    description: synced from Vault\n    replica_regions: [us-west-2, eu-west-1]\n",
        );
        assert_eq!(s.kms_key_id.as_deref(), Some("alias/secrets"));
        assert_eq!(
            s.tags,
            BTreeMap::from([
                ("cost center".to_string(), "42".to_string()),
                ("team".to_string(), "platform".to_string())
            ])
        );
        assert_eq!(s.description.as_deref(), Some("synced from Vault"));
        assert_eq!(s.replica_regions, ["us-west-2", "eu-west-1"]);
        let none = settings_of("");
        assert!(
            none.kms_key_id.is_none()
                && none.tags.is_empty()
                && none.description.is_none()
                && none.replica_regions.is_empty()
        );
    }

    #[test]
    fn reserved_tag_keys_are_refused_with_their_line() {
        for key in [
            "managed-by",
            "secretsync:owner",
            "secretsync:replicas",
            "aws:cloudformation",
        ] {
            let out = errors(&format!(
                "    tags:\n      team: platform\n      {key}: x\n"
            ));
            assert!(
                out.contains("line 10") && out.contains(&format!("tag key `{key}` is reserved")),
                "{key}: {out}"
            );
        }
    }

    #[test]
    fn tag_text_and_count_follow_aws_rules() {
        let out = errors("    tags: { team: \"a,b\" }\n");
        assert!(out.contains("tag value `a,b` contains `,`"), "{out}");
        let long = "k".repeat(129);
        assert!(errors(&format!("    tags: {{ {long}: v }}\n")).contains("AWS allows 1 to 128"));
        let many: Vec<String> = (0..=MAX_EXTRA_TAGS).map(|i| format!("t{i}: v")).collect();
        let out = errors(&format!("    tags: {{ {} }}\n", many.join(", ")));
        assert!(out.contains("`tags` has 44 entries; at most 43"), "{out}");
    }

    #[test]
    fn replica_regions_are_other_distinct_regions() {
        let out = errors("    replica_regions: [us-west-2, us-east-1, us-west-2, mars-1]\n");
        assert!(
            out.contains("`us-east-1` is the target's own region"),
            "{out}"
        );
        assert!(
            out.contains("`us-west-2` is listed twice in `replica_regions`"),
            "{out}"
        );
        assert!(out.contains("`mars-1` is not an AWS region"), "{out}");
        assert!(out.contains("(`targets[0].replica_regions"), "{out}");
    }

    #[test]
    fn kms_key_and_description_must_be_usable() {
        assert!(errors("    kms_key_id: \"\"\n").contains("`kms_key_id` is empty"));
        assert!(errors("    kms_key_id: \"alias/a b\"\n").contains("contains a space"));
        assert!(errors("    description: \"\"\n").contains("`description` must be 1 to 2048"));
        let long = "d".repeat(2049);
        assert!(errors(&format!("    description: {long}\n")).contains("must be 1 to 2048"));
    }

    #[test]
    fn the_module_example_loads() {
        let yaml = crate::targets::test_util::module_example(include_str!("aws_sm.rs"));
        let loaded = crate::config::load(&yaml, &|_| None);
        let config = loaded
            .config
            .unwrap_or_else(|| panic!("{yaml}\n{:?}", loaded.diagnostics.0));
        // Refutable once there are other kinds.
        #[allow(irrefutable_let_patterns)]
        let TargetBackend::AwsSecretsManager(s) = &config.targets[0].backend else {
            panic!("not an aws_secretsmanager target")
        };
        assert_eq!(s.replica_regions, ["us-west-2", "eu-west-1"]);
    }

    fn tags(pairs: &[(&str, &str)]) -> crate::tags::TagMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn settings(&[k, d]: &[Option<&str>; 2], t: &[(&str, &str)]) -> AwsSmSettings {
        AwsSmSettings {
            kms_key_id: k.map(str::to_string),
            description: d.map(str::to_string),
            tags: tags(t).to_map(),
            ..Default::default()
        }
    }

    fn settings_keys(c: &[SettingChange]) -> Vec<&str> {
        c.iter().map(|c| c.setting.as_str()).collect()
    }

    #[test]
    fn metadata_in_line_or_not() {
        let listed = tags(&[(TAG_OWNER, "o"), (TAG_VERSION, "v1"), ("team", "platform")]);
        let l = Listing {
            description: Some("synced"),
            kms_key_id: Some("alias/secrets"),
            tags: &listed,
        };
        let same = settings(
            &[Some("alias/secrets"), Some("synced")],
            &[("team", "platform")],
        );
        assert!(metadata_changes(&same, &l).is_empty());
        // Nothing configured: nothing to keep in line, whatever the secret has.
        assert!(metadata_changes(&AwsSmSettings::default(), &l).is_empty());

        let other = settings(
            &[Some("alias/other"), Some("new text")],
            &[("team", "payments"), ("env", "prod")],
        );
        let c = metadata_changes(&other, &l);
        assert_eq!(
            settings_keys(&c),
            ["description", "kms_key_id", "tag:env", "tag:team"]
        );
        assert_eq!(
            (c[0].old.as_deref(), c[0].new.as_deref()),
            (Some("synced"), Some("new text"))
        );
        assert_eq!(
            (c[3].old.as_deref(), c[3].new.as_deref()),
            (Some("platform"), Some("payments"))
        );
        assert_eq!(c[2].old, None);
    }

    #[test]
    fn kms_key_forms() {
        let arn = "arn:aws:kms:us-east-1:123456789012:alias/secrets";
        let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert!(kms_matches("alias/secrets", Some("alias/secrets"), None));
        assert!(kms_matches("alias/secrets", Some(arn), None));
        assert!(kms_matches(arn, Some("alias/secrets"), None));
        assert!(kms_matches(
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            Some(key),
            None
        ));
        // An alias reported as its key's ARN: proven by the record of what was applied.
        assert!(!kms_matches("alias/secrets", Some(key), None));
        assert!(kms_matches(
            "alias/secrets",
            Some(key),
            Some("alias/secrets")
        ));
        // The default key (not listed) is never the configured one, record or not.
        assert!(!kms_matches("alias/secrets", None, Some("alias/secrets")));
        assert!(!kms_matches(
            "alias/secrets",
            Some("alias/other"),
            Some("alias/old")
        ));
    }

    fn replica(region: &str, status: &str) -> Replica {
        Replica {
            region: region.into(),
            status: status.into(),
            message: (status == STATUS_FAILED).then(|| "name exists in region".into()),
        }
    }

    fn regions(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn replication_reconciled() {
        let want = regions(&["us-west-2", "eu-west-1"]);
        let record = replicas_record(&want);
        assert_eq!(record.as_deref(), Some("eu-west-1 us-west-2"));
        assert!(replicas_recorded(
            &want,
            &tags(&[(TAG_REPLICAS, "eu-west-1 us-west-2")])
        ));
        assert!(!replicas_recorded(
            &want,
            &tags(&[(TAG_REPLICAS, "eu-west-1")])
        ));
        assert!(replicas_recorded(&[], &tags(&[])));
        assert!(!replicas_recorded(
            &[],
            &tags(&[(TAG_REPLICAS, "eu-west-1")])
        ));

        // Missing, extra, failed.
        let c = replica_changes(
            &want,
            &[
                replica("eu-west-1", STATUS_FAILED),
                replica("ap-south-1", STATUS_IN_SYNC),
            ],
            None,
        );
        let got: Vec<(&str, Option<&str>, Option<&str>)> = c
            .iter()
            .map(|c| (c.setting.as_str(), c.old.as_deref(), c.new.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("replica:ap-south-1", Some("InSync"), None),
                ("replica:eu-west-1", Some("Failed"), Some(REPLICA_RETRY)),
                ("replica:us-west-2", None, Some(REPLICA_ADD)),
            ]
        );
        assert_eq!(c[1].note.as_deref(), Some("failed: name exists in region"));

        // All in sync: only the record is written, once.
        let synced = [
            replica("eu-west-1", STATUS_IN_SYNC),
            replica("us-west-2", STATUS_IN_SYNC),
        ];
        let c = replica_changes(&want, &synced, None);
        assert_eq!(settings_keys(&c), ["replicas"]);
        assert_eq!(c[0].new, record);
        assert!(replica_changes(&want, &synced, record.as_deref()).is_empty());
        // Still in progress: nothing to do, and no record yet.
        assert!(
            replica_changes(
                &want,
                &[
                    replica("eu-west-1", "InProgress"),
                    replica("us-west-2", STATUS_IN_SYNC)
                ],
                None
            )
            .is_empty()
        );
        // Replicas no longer wanted: removed; then the record goes.
        let c = replica_changes(&[], &synced, record.as_deref());
        assert_eq!(
            settings_keys(&c),
            ["replica:eu-west-1", "replica:us-west-2"]
        );
        let c = replica_changes(&[], &[], record.as_deref());
        assert_eq!(
            (settings_keys(&c), c[0].new.clone()),
            (vec!["replicas"], None)
        );
        // A second entry for one region (a failed re-add on some servers) counts once.
        let c = replica_changes(
            &want,
            &[
                replica("eu-west-1", STATUS_IN_SYNC),
                replica("us-west-2", STATUS_IN_SYNC),
                replica("us-west-2", STATUS_FAILED),
            ],
            record.as_deref(),
        );
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn a_long_replica_set_is_recorded_as_a_digest() {
        let many: Vec<String> = (1..=30).map(|i| format!("ap-southeast-{i}")).collect();
        let r = replicas_record(&many).unwrap();
        assert!(
            r.starts_with("sha256:") && r.len() <= MAX_TAG_VALUE_LEN,
            "{r}"
        );
        assert!(check_tag_value(&r).is_ok());
        let mut shuffled = many.clone();
        shuffled.reverse();
        assert_eq!(
            replicas_record(&shuffled).unwrap(),
            r,
            "order does not matter"
        );
    }

    #[test]
    fn setting_names_round_trip() {
        for s in [
            Setting::Description,
            Setting::KmsKey,
            Setting::Tag("cost center".into()),
            Setting::Replica("eu-west-1".into()),
            Setting::ReplicasRecord,
        ] {
            assert_eq!(Setting::parse(&s.key()), Some(s));
        }
        assert_eq!(Setting::parse("bogus"), None);
    }
}
