//! The plan for one target: compare the desired state with what the target holds and decide,
//! per secret, what to do. Pure: the engine lists the target, reads the values this module
//! asks for ([`needs_value`]), and passes both in.
//!
//! Ownership is an identity, not a name: a secret the tool creates carries [`TAG_MANAGED`] =
//! `secretsync`, the deployment's owner scope ([`TAG_OWNER`]), the target name, a keyed
//! fingerprint of what it wrote ([`TAG_FINGERPRINT`], see [`crate::fingerprint`]) and the
//! version id it wrote. A desired name that exists without those marks is never overwritten
//! unless the target says `adopt: true`; one marked by another owner or target is a failure of
//! that secret. Only secrets of this owner and target (or of a target named in `adopt_from`)
//! are ever orphans.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::fingerprint::{FingerprintKey, legacy_content_hash};
use crate::secret::{Bundle, Gap, SecretValue, summarize};
use crate::targets::TargetRules;

pub const TAG_MANAGED: &str = "managed-by";
pub const MANAGED_VALUE: &str = "secretsync";
pub const TAG_OWNER: &str = "secretsync:owner";
pub const TAG_TARGET: &str = "secretsync:target";
pub const TAG_FINGERPRINT: &str = "secretsync:fingerprint";
/// Written by versions before 0.2: a plain SHA-256 of the value. Recognised (so such secrets
/// are re-tagged without new versions) and removed; never written.
pub const TAG_HASH: &str = "secretsync:content-hash";
pub const TAG_VERSION: &str = "secretsync:version";
/// Marks the tool's own bookkeeping secrets (`fingerprint-key`, `lock`).
pub const TAG_ROLE: &str = "secretsync:role";
/// Every ownership tag, in the order they are written.
pub const OWNERSHIP_TAGS: &[&str] = &[
    TAG_MANAGED,
    TAG_OWNER,
    TAG_TARGET,
    TAG_FINGERPRINT,
    TAG_VERSION,
];
/// Names below this prefix are the tool's own (fingerprint key, leases): never desired.
pub const RESERVED_PREFIX: &str = ".secretsync/";
/// A relative plan may delete this many managed secrets without `--allow-mass-delete`,
/// whatever fraction of the target that is.
pub const MASS_DELETE_FLOOR: usize = 5;

/// A secret's tags (or metadata) as listed, compact ([`crate::tags::TagMap`]) and shared: a
/// plan's changes point at the listing's maps instead of copying them.
pub type Tags = std::sync::Arc<crate::tags::TagMap>;

/// One secret as a cheap listing shows it (no value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listed {
    pub name: String,
    pub tags: Tags,
    /// The version id that has the `AWSCURRENT` stage.
    pub current_version: Option<String>,
    pub pending_deletion: bool,
}

/// Whose a listed secret is, from this target's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No SecretSync marks.
    Unmanaged,
    /// This owner scope and this target.
    Ours,
    /// This owner and a target named in `adopt_from`, or this target's name (or an
    /// `adopt_from` name) marked by a version without owner scopes: taken over and re-marked.
    /// `scoped` is false for the unscoped (pre-0.2) marks, which never make orphans.
    Inherited { scoped: bool },
    /// Another owner or target: never written, never deleted.
    Foreign {
        owner: Option<String>,
        target: String,
    },
}

impl Listed {
    /// The target name a SecretSync mark names, if the secret is managed at all.
    pub fn managed_by(&self) -> Option<&str> {
        (self.tags.get(TAG_MANAGED).map(String::as_str) == Some(MANAGED_VALUE))
            .then(|| self.tags.get(TAG_TARGET).map(String::as_str).unwrap_or(""))
    }

    /// The owner scope a SecretSync mark names.
    pub fn owner(&self) -> Option<&str> {
        self.tags.get(TAG_OWNER).map(String::as_str)
    }

    pub fn ownership(&self, opts: &PlanOptions) -> Ownership {
        let Some(target) = self.managed_by() else {
            return Ownership::Unmanaged;
        };
        let mine = target == opts.target;
        let adopted = opts.adopt_from.iter().any(|t| t == target);
        match self.owner() {
            Some(o) if o == opts.owner && mine => Ownership::Ours,
            Some(o) if o == opts.owner && adopted => Ownership::Inherited { scoped: true },
            None if mine || adopted => Ownership::Inherited { scoped: false },
            owner => Ownership::Foreign {
                owner: owner.map(str::to_string),
                target: target.to_string(),
            },
        }
    }

    /// Ours, written by us at the current version with this fingerprint.
    fn provably_unchanged(&self, opts: &PlanOptions, fingerprint: &str) -> bool {
        self.ownership(opts) == Ownership::Ours
            && self.tags.get(TAG_FINGERPRINT).map(String::as_str) == Some(fingerprint)
            && self.written_by_us()
    }

    /// Ours or inherited, at the version the tool wrote, with a fingerprint or a pre-0.2 plain
    /// hash that proves the content equal: only the marks need rewriting (no value read, no
    /// new version).
    fn provably_same_content(&self, fingerprint: &str, value: &SecretValue) -> bool {
        self.written_by_us()
            && (self.tags.get(TAG_FINGERPRINT).map(String::as_str) == Some(fingerprint)
                || self
                    .tags
                    .get(TAG_HASH)
                    .is_some_and(|h| *h == legacy_content_hash(value)))
    }

    fn written_by_us(&self) -> bool {
        self.current_version.is_some()
            && self.tags.get(TAG_VERSION) == self.current_version.as_ref()
    }

    /// Marks that must go (an unkeyed hash from before 0.2).
    pub fn has_legacy_marks(&self) -> bool {
        self.tags.contains_key(TAG_HASH)
    }
}

/// Settings of a target that shape its plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub target: String,
    /// The kind's naming and size rules.
    pub rules: std::sync::Arc<dyn TargetRules>,
    /// The deployment's owner scope ([`crate::config::Config::owner_scope`]).
    pub owner: String,
    /// Earlier names of this target whose secrets it takes over.
    pub adopt_from: Vec<String>,
    pub prefix: String,
    pub adopt: bool,
    pub delete_orphans: bool,
    pub max_deletes: usize,
    /// A plan deleting more than this fraction of the managed secrets (and more than
    /// [`MASS_DELETE_FLOOR`]) is refused unless `allow_mass_delete`.
    pub max_delete_fraction: f64,
    pub allow_mass_delete: bool,
    /// What the read of the desired state skipped: non-empty holds every deletion, and a
    /// desired secret at a skipped path is not written either.
    pub incomplete: Vec<Gap>,
}

impl PlanOptions {
    /// Defaults for everything but the identity, with AWS Secrets Manager's rules (tests and
    /// fixtures; set `rules` for another kind).
    pub fn new(target: &str, owner: &str, prefix: &str) -> Self {
        PlanOptions {
            target: target.into(),
            rules: std::sync::Arc::new(crate::targets::aws_sm::AwsSmRules),
            owner: owner.into(),
            adopt_from: Vec::new(),
            prefix: prefix.into(),
            adopt: false,
            delete_orphans: false,
            max_deletes: crate::config::DEFAULT_MAX_DELETES,
            max_delete_fraction: 0.10,
            allow_mass_delete: false,
            incomplete: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Unchanged,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChangeKind {
    Added,
    Removed,
    Changed,
}

/// A change to one key of a secret; nested keys are joined with `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KeyChange {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: KeyChangeKind,
}

/// A change to a secret's settings in the target that writes no new version of its value (for
/// AWS Secrets Manager: its description, encryption key, extra tags and replica regions). The
/// kind computes these beside the plan; the plan shows them and the apply makes them. Never holds
/// a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingChange {
    /// What changes, in the kind's words: `description`, `kms_key_id`, `tag:<key>`,
    /// `replica:<region>`.
    pub setting: String,
    /// Before, as shown (`None`: not set).
    pub old: Option<String>,
    /// After, as shown (`None`: removed).
    pub new: Option<String>,
    /// What the plan reports about it (e.g. why a replica failed).
    pub note: Option<String>,
}

/// What happens to one secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretChange {
    /// Relative path (below the source mounts), or the AWS name for orphans.
    pub path: String,
    /// Full name in the target.
    pub name: String,
    pub kind: ChangeKind,
    /// Why a secret is skipped.
    pub reason: Option<String>,
    /// Skipped because the data is invalid (counts as a failure), not by policy.
    pub invalid: bool,
    pub keys: Vec<KeyChange>,
    /// The secret is pending deletion and is restored before it is updated.
    pub restore: bool,
    /// An unmanaged secret taken over because the target says `adopt: true`.
    pub adopt: bool,
    /// Only the ownership tags need fixing (the value already matches).
    pub retag: bool,
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    /// The tags the secret had when listed (restored on rollback); shared with the listing.
    pub old_tags: Tags,
    pub old_value: Option<SecretValue>,
    pub new_value: Option<SecretValue>,
    /// The keyed fingerprint of `new_value` (what the ownership marks will say).
    pub fingerprint: Option<String>,
    /// Settings brought in line beside (or instead of) the value: an otherwise unchanged secret
    /// with settings to change is a change without a new version.
    pub settings: Vec<SettingChange>,
    /// With history on (a merge store): the secret's current numbered version, if it has one
    /// that is not a deletion (`v5`).
    pub old_numbered: Option<Numbered>,
    /// With history on: the numbered version this change makes (`v6`); its time once made.
    pub new_numbered: Option<Numbered>,
    /// A rollback: the backend version that already holds the new value (its recorded AWS
    /// version id). A kind that can make it current again without writing the value (Secrets
    /// Manager: a stage move) does so; otherwise the value is written.
    pub reuse_version: Option<String>,
    /// Skipped because a rollback pinned the secret at this numbered version.
    pub pinned: Option<u64>,
}

/// A numbered version of a secret in the history (`secretsync_core::history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    pub number: u64,
    /// When it was made (RFC 3339, UTC); `None` for one not made yet.
    pub time: Option<String>,
}

impl SecretChange {
    /// Whether applying the change writes anything to the target (a value, a deletion, marks
    /// or settings).
    pub fn writes(&self) -> bool {
        matches!(
            self.kind,
            ChangeKind::Added | ChangeKind::Modified | ChangeKind::Deleted
        ) || self.retag
            || !self.settings.is_empty()
    }

    /// Whether the change re-encrypts the secret under a new KMS key (a `kms_key_id` setting
    /// change, whose note says `re-encrypt:`).
    pub fn reencrypts(&self) -> bool {
        self.settings.iter().any(|s| s.setting == "kms_key_id")
    }

    pub(crate) fn new(path: &str, name: &str, kind: ChangeKind) -> Self {
        SecretChange {
            path: path.to_string(),
            name: name.to_string(),
            kind,
            reason: None,
            invalid: false,
            keys: Vec::new(),
            restore: false,
            adopt: false,
            retag: false,
            old_version: None,
            new_version: None,
            old_tags: Tags::default(),
            old_value: None,
            new_value: None,
            fingerprint: None,
            settings: Vec::new(),
            old_numbered: None,
            new_numbered: None,
            reuse_version: None,
            pinned: None,
        }
    }
}

/// Counts by change kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn changes(&self) -> usize {
        self.added + self.modified + self.deleted
    }
    pub fn add(&mut self, o: &Counts) {
        self.added += o.added;
        self.modified += o.modified;
        self.deleted += o.deleted;
        self.unchanged += o.unchanged;
        self.skipped += o.skipped;
    }
}

/// The plan of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPlan {
    pub target: String,
    /// Sorted by path.
    pub changes: Vec<SecretChange>,
    /// Managed secrets no longer desired, kept because `delete_orphans` is off.
    pub orphans_kept: Vec<String>,
    /// Set when the plan must not be applied (e.g. more deletions than `max_deletes`).
    pub refused: Option<String>,
    /// Why no deletion is planned although `delete_orphans` is on (an incomplete source read:
    /// the reason names the source and the paths that were skipped). The orphans are listed in
    /// `orphans_kept`.
    pub deletions_held: Option<String>,
    /// What the policies said (`policies:`): a denial also sets `refused`.
    pub policy: crate::policy::Verdict,
}

/// Why a target failed, in one word: what a report, a dashboard or an alert can branch on
/// (`result.failure_kind` in JSON). The message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The configuration or an input is wrong.
    Config,
    /// Credentials missing, invalid or expired (Vault token, AWS credentials).
    Auth,
    /// The credentials work but lack a permission.
    Permission,
    /// A limit was exceeded (`max_secrets`, `max_deletes`, a service quota or size).
    Limit,
    /// The service kept throttling past every retry.
    Throttled,
    /// The service could not be reached, timed out, answered 5xx, or its circuit breaker is
    /// open.
    Unreachable,
    /// The service answered something SecretSync cannot use.
    Unexpected,
    /// A conflicting state (a secret owned by someone else, a concurrent change).
    Conflict,
    /// Another run holds the target's lease, or this run lost it.
    Locked,
    /// The run was cancelled (a signal).
    Cancelled,
    /// The plan was refused before any write (a guard: mass delete, `max_deletes`).
    Refused,
    /// A policy (`policies:`) denied the plan; nothing was written.
    Denied,
    /// Secrets in the desired state are invalid for the target (names, sizes).
    Invalid,
    /// The Vault read was incomplete, so deletions were held.
    Incomplete,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Config => "config",
            FailureKind::Auth => "auth",
            FailureKind::Permission => "permission",
            FailureKind::Limit => "limit",
            FailureKind::Throttled => "throttled",
            FailureKind::Unreachable => "unreachable",
            FailureKind::Unexpected => "unexpected",
            FailureKind::Conflict => "conflict",
            FailureKind::Locked => "locked",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Refused => "refused",
            FailureKind::Denied => "denied",
            FailureKind::Invalid => "invalid",
            FailureKind::Incomplete => "incomplete",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What applying a plan did: the counts actually applied (after any rollback they still say
/// what was written before it), what was rolled back, and what is left changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub retagged: usize,
    /// The failure that stopped the apply, if any (a refused plan sets it, with zero writes).
    pub failure: Option<String>,
    /// What kind of failure [`ApplyReport::failure`] is.
    pub failure_kind: Option<FailureKind>,
    /// The apply stopped because the run was cancelled (a signal).
    pub cancelled: bool,
    /// How many completed writes the rollback undid.
    pub rolled_back: usize,
    /// Writes that could not be undone (`name: why`).
    pub rollback_failures: Vec<String>,
    /// Names of secrets the target is left with changed by this run (applied and not rolled
    /// back): empty after a clean rollback, every applied name after a success.
    pub left_changed: Vec<String>,
    /// What did not work out without failing the apply (e.g. a replica that failed to
    /// replicate: `name: why`).
    pub warnings: Vec<String>,
    /// Secrets whose current backend version is not the one the plan chose (name → the one
    /// made current): a rollback that moved a stage back to a version that already held the
    /// value.
    #[serde(skip)]
    pub versions: BTreeMap<String, String>,
}

impl ApplyReport {
    /// Changes that remain applied.
    pub fn applied(&self) -> usize {
        self.left_changed.len()
    }
}

impl TargetPlan {
    /// Drops every value the plan holds (the last copy of a value wipes it): once a target is
    /// applied and reported, what is kept of its plan (exit code, plan file, metrics) needs none.
    pub fn forget_values(&mut self) {
        for c in &mut self.changes {
            c.old_value = None;
            c.new_value = None;
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for ch in &self.changes {
            match ch.kind {
                ChangeKind::Added => c.added += 1,
                ChangeKind::Modified => c.modified += 1,
                ChangeKind::Deleted => c.deleted += 1,
                ChangeKind::Unchanged => c.unchanged += 1,
                ChangeKind::Skipped => c.skipped += 1,
            }
        }
        c
    }
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(SecretChange::writes)
    }

    /// Drops what the changes that write nothing will never use — the tags they were listed
    /// with, the fingerprint they would be marked with — and any spare capacity. Plans are held
    /// until the run ends: at 100,000 unchanged secrets those tags were most of a plan.
    pub fn compact(&mut self) {
        for c in self.changes.iter_mut().filter(|c| !c.writes()) {
            c.old_tags = Tags::default();
            c.fingerprint = None;
        }
        self.changes.shrink_to_fit();
    }
    pub fn invalid(&self) -> impl Iterator<Item = &SecretChange> {
        self.changes.iter().filter(|c| c.invalid)
    }
}

/// The names whose values must be read to plan: desired secrets that exist, are readable
/// (not pending deletion), may be written by us (ours, inherited, or adoptable), and whose
/// marks do not prove their content.
pub fn needs_value(
    opts: &PlanOptions,
    key: &FingerprintKey,
    desired: &Bundle,
    listed: &BTreeMap<String, Listed>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, value) in desired {
        let name = opts.rules.name(&opts.prefix, path);
        let Some(l) = listed.get(&name) else { continue };
        if l.pending_deletion || opts.incomplete.iter().any(|g| g.covers(path)) {
            continue;
        }
        let writable = match l.ownership(opts) {
            Ownership::Ours | Ownership::Inherited { .. } => true,
            Ownership::Unmanaged => opts.adopt,
            Ownership::Foreign { .. } => false,
        };
        if writable && !l.provably_same_content(&key.fingerprint(value), value) {
            out.push(name);
        }
    }
    out
}

fn foreign_reason(owner: &Option<String>, target: &str, opts: &PlanOptions) -> String {
    match owner {
        Some(o) if *o == opts.owner => format!(
            "already managed by target `{target}` of this deployment; two targets must not write the same secret (give one a different `secret_prefix`, or add `adopt_from: [{target}]` to target `{}` if it replaces `{target}`)",
            opts.target
        ),
        Some(o) => format!(
            "managed by target `{target}` of another deployment (owner `{o}`; this one is `{}`); it is left untouched. If that owner is this deployment under an earlier scope, set `owner: {o}` in the config; otherwise give this target a different `secret_prefix`",
            opts.owner
        ),
        None => format!(
            "managed by target `{target}` (marked by an older SecretSync without an owner scope); it is left untouched. If this target replaces `{target}`, add `adopt_from: [{target}]`"
        ),
    }
}

/// Builds the plan. `values` holds what was read for [`needs_value`]'s names.
pub fn plan(
    opts: &PlanOptions,
    key: &FingerprintKey,
    desired: &Bundle,
    listed: &BTreeMap<String, Listed>,
    values: &BTreeMap<String, SecretValue>,
) -> TargetPlan {
    // One change per desired secret, and the orphans: sized once (a vector that grows to its
    // length holds up to twice what it needs, at the moment memory peaks).
    let mut changes = Vec::with_capacity(desired.len());
    let mut desired_names = BTreeSet::new();
    for (path, value) in desired {
        let name = opts.rules.name(&opts.prefix, path);
        desired_names.insert(name.clone());
        let json = value.canonical_json();
        let checked = if name.starts_with(RESERVED_PREFIX) {
            Err(format!(
                "names below `{RESERVED_PREFIX}` are reserved for SecretSync's own bookkeeping; rename the Vault secret or change `secret_prefix`"
            ))
        } else {
            opts.rules
                .check_name(&name)
                .and_then(|_| opts.rules.check_size(json.len()))
        };
        if let Err(e) = checked {
            let mut c = SecretChange::new(path, &name, ChangeKind::Skipped);
            c.reason = Some(e);
            c.invalid = true;
            changes.push(c);
            continue;
        }
        // A lower layer alone must not overwrite what an unread layer holds at this path.
        if let Some(gap) = opts.incomplete.iter().find(|g| g.covers(path)) {
            let mut c = SecretChange::new(path, &name, ChangeKind::Skipped);
            c.reason = Some(format!(
                "not written: the read of its sources was incomplete here ({gap}); fix that and run again"
            ));
            changes.push(c);
            continue;
        }
        let fingerprint = key.fingerprint(value);
        let Some(l) = listed.get(&name) else {
            let mut c = SecretChange::new(path, &name, ChangeKind::Added);
            c.keys = key_changes(
                &Value::Object(Default::default()),
                &Value::Object(value.expose().clone()),
            );
            c.new_value = Some(value.clone());
            c.fingerprint = Some(fingerprint);
            changes.push(c);
            continue;
        };
        let ownership = l.ownership(opts);
        let mut c = SecretChange::new(path, &name, ChangeKind::Unchanged);
        c.old_version = l.current_version.clone();
        c.old_tags = l.tags.clone();
        c.new_value = Some(value.clone());
        c.fingerprint = Some(fingerprint.clone());
        match &ownership {
            Ownership::Foreign { owner, target } => {
                c.kind = ChangeKind::Skipped;
                c.invalid = true;
                c.reason = Some(foreign_reason(owner, target, opts));
                changes.push(c);
                continue;
            }
            Ownership::Unmanaged if !opts.adopt => {
                c.kind = ChangeKind::Skipped;
                c.reason = Some(format!(
                    "exists but is not managed by secretsync; it is left untouched. To take it over, set `adopt: true` on target `{}`",
                    opts.target
                ));
                changes.push(c);
                continue;
            }
            _ => {}
        }
        c.adopt = ownership == Ownership::Unmanaged;
        if l.pending_deletion {
            c.kind = ChangeKind::Modified;
            c.restore = true;
        } else if l.provably_unchanged(opts, &fingerprint) {
            c.kind = ChangeKind::Unchanged;
            // Still carrying a pre-0.2 plain hash beside the keyed one: remove it.
            c.retag = l.has_legacy_marks();
        } else if ownership != Ownership::Unmanaged && l.provably_same_content(&fingerprint, value)
        {
            c.kind = ChangeKind::Unchanged;
            c.retag = true;
        } else {
            match values.get(&name) {
                Some(old) if old.canonical_json() == json => {
                    c.kind = ChangeKind::Unchanged;
                    c.retag = true;
                    c.old_value = Some(old.clone());
                }
                Some(old) => {
                    c.kind = ChangeKind::Modified;
                    c.keys = key_changes(
                        &Value::Object(old.expose().clone()),
                        &Value::Object(value.expose().clone()),
                    );
                    c.old_value = Some(old.clone());
                }
                None => {
                    // Unreadable or not a JSON object: overwrite with the desired value.
                    c.kind = ChangeKind::Modified;
                }
            }
        }
        changes.push(c);
    }

    // Orphans: this owner's secrets of this target (or of an `adopt_from` target) under the
    // prefix that are no longer desired. Unscoped pre-0.2 marks are never deleted.
    let mut orphans = Vec::new();
    let mut managed = 0usize;
    for (name, l) in listed {
        if opts.rules.path_of(&opts.prefix, name).is_none() || l.pending_deletion {
            continue;
        }
        let scoped = matches!(
            l.ownership(opts),
            Ownership::Ours | Ownership::Inherited { scoped: true }
        );
        if scoped {
            managed += 1;
        }
        let unscoped_orphan = l.ownership(opts) == Ownership::Inherited { scoped: false };
        if !desired_names.contains(name) && (scoped || unscoped_orphan) {
            orphans.push((name.clone(), scoped));
        }
    }
    let mut refused = None;
    let mut deletions_held = None;
    let mut orphans_kept = Vec::new();
    let deletable: Vec<String> = orphans
        .iter()
        .filter(|(_, scoped)| *scoped)
        .map(|(n, _)| n.clone())
        .collect();
    orphans_kept.extend(
        orphans
            .iter()
            .filter(|(_, scoped)| !*scoped)
            .map(|(n, _)| n.clone()),
    );
    if !opts.incomplete.is_empty() {
        deletions_held = Some(format!(
            "the desired state is incomplete, so nothing is deleted{}: {}",
            if deletable.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} orphan{} kept)",
                    deletable.len(),
                    if deletable.len() == 1 { "" } else { "s" }
                )
            },
            summarize(&opts.incomplete, 10)
        ));
        orphans_kept.extend(deletable);
    } else if opts.delete_orphans {
        let n = deletable.len();
        if n > opts.max_deletes {
            refused = Some(format!(
                "{n} managed secrets are no longer desired, more than `max_deletes` ({}) allows; nothing was changed. If this is expected, raise `max_deletes` on target `{}`; otherwise check that every Vault source was read completely",
                opts.max_deletes, opts.target
            ));
        } else if n > 0 && !opts.allow_mass_delete {
            if desired.is_empty() {
                refused = Some(format!(
                    "the desired state of target `{}` is empty while it manages {managed} secret{}; deleting them all needs `--allow-mass-delete`. Nothing was changed: check the target's imports and that its sources hold secrets",
                    opts.target,
                    if managed == 1 { "" } else { "s" }
                ));
            } else if n > MASS_DELETE_FLOOR && n as f64 > opts.max_delete_fraction * managed as f64
            {
                refused = Some(format!(
                    "the plan deletes {n} of the {managed} secrets target `{}` manages, more than `max_delete_fraction` ({}%); nothing was changed. If this is expected, run again with `--allow-mass-delete` (or raise `max_delete_fraction`)",
                    opts.target,
                    opts.max_delete_fraction * 100.0
                ));
            }
        }
        changes.reserve_exact(deletable.len());
        for name in deletable {
            let path = opts
                .rules
                .path_of(&opts.prefix, &name)
                .unwrap_or_else(|| name.clone());
            let mut c = SecretChange::new(&path, &name, ChangeKind::Deleted);
            c.old_version = listed.get(&name).and_then(|l| l.current_version.clone());
            c.old_tags = listed
                .get(&name)
                .map(|l| l.tags.clone())
                .unwrap_or_default();
            changes.push(c);
        }
    } else {
        orphans_kept.extend(deletable);
    }
    orphans_kept.sort();
    changes.sort_by(|a, b| a.path.cmp(&b.path).then(a.name.cmp(&b.name)));
    TargetPlan {
        target: opts.target.clone(),
        changes,
        orphans_kept,
        refused,
        deletions_held,
        policy: Default::default(),
    }
}

/// Key-level differences between two JSON values; nested maps recurse, anything else is
/// compared whole.
pub fn key_changes(old: &Value, new: &Value) -> Vec<KeyChange> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    // Kept in the plan until the run ends: no spare capacity.
    out.shrink_to_fit();
    out
}

fn walk(prefix: &str, old: &Value, new: &Value, out: &mut Vec<KeyChange>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    None => out.push(KeyChange {
                        key: join(k),
                        kind: KeyChangeKind::Removed,
                    }),
                    Some(vb) => walk(&join(k), va, vb, out),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(KeyChange {
                    key: join(k),
                    kind: KeyChangeKind::Added,
                });
            }
        }
        (a, b) if a != b => out.push(KeyChange {
            key: prefix.to_string(),
            kind: KeyChangeKind::Changed,
        }),
        _ => {}
    }
    out.sort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::secret;
    use serde_json::json;

    fn opts(adopt: bool, delete: bool) -> PlanOptions {
        PlanOptions {
            adopt,
            delete_orphans: delete,
            max_deletes: 2,
            ..PlanOptions::new("t", "o", "p/")
        }
    }

    fn key() -> FingerprintKey {
        FingerprintKey::from_bytes([9; crate::fingerprint::KEY_LEN])
    }

    fn managed(name: &str, v: &SecretValue, version: &str) -> Listed {
        Listed {
            name: name.into(),
            tags: Tags::new(crate::tags::TagMap::from(BTreeMap::from([
                (TAG_MANAGED.into(), MANAGED_VALUE.into()),
                (TAG_OWNER.into(), "o".into()),
                (TAG_TARGET.into(), "t".into()),
                (TAG_FINGERPRINT.into(), key().fingerprint(v)),
                (TAG_VERSION.into(), version.into()),
            ]))),
            current_version: Some(version.into()),
            pending_deletion: false,
        }
    }

    /// `compact` keeps what a write and its rollback need, and drops the listed tags and the
    /// fingerprint of changes that write nothing.
    #[test]
    fn compact_drops_only_what_no_write_uses() {
        let (a, b) = (secret(json!({"k": "1"})), secret(json!({"k": "2"})));
        let listed = BTreeMap::from([
            ("p/same".to_string(), managed("p/same", &a, "v1")),
            ("p/changed".to_string(), managed("p/changed", &a, "v1")),
        ]);
        let desired = Bundle::from([("same".into(), a.clone()), ("changed".into(), b.clone())]);
        let values = BTreeMap::from([("p/changed".to_string(), a.clone())]);
        let mut p = plan(&opts(false, false), &key(), &desired, &listed, &values);
        p.compact();
        let get = |n: &str| p.changes.iter().find(|c| c.name == n).unwrap();
        let (same, changed) = (get("p/same"), get("p/changed"));
        assert_eq!(
            (same.kind, changed.kind),
            (ChangeKind::Unchanged, ChangeKind::Modified)
        );
        assert!(same.old_tags.is_empty() && same.fingerprint.is_none());
        assert_eq!(
            changed.old_tags.get(TAG_VERSION).map(String::as_str),
            Some("v1")
        );
        assert_eq!(changed.fingerprint, Some(key().fingerprint(&b)));
        assert!(same.new_value.is_some() && changed.new_value.is_some());
        assert_eq!(p.changes.capacity(), p.changes.len());
    }

    fn kinds(p: &TargetPlan) -> Vec<(String, ChangeKind)> {
        p.changes.iter().map(|c| (c.name.clone(), c.kind)).collect()
    }

    #[test]
    fn cheap_unchanged_add_modify_and_unmanaged() {
        let a = secret(json!({"k": "1"}));
        let b_old = secret(json!({"k": "1", "gone": 1}));
        let b_new = secret(json!({"k": "2", "n": {"x": 1}}));
        let desired = Bundle::from([
            ("a".into(), a.clone()),
            ("b".into(), b_new.clone()),
            ("c".into(), a.clone()),
            ("u".into(), a.clone()),
        ]);
        let mut listed = BTreeMap::new();
        listed.insert("p/a".into(), managed("p/a", &a, "v1"));
        listed.insert("p/b".into(), managed("p/b", &b_old, "v1"));
        listed.insert(
            "p/u".into(),
            Listed {
                name: "p/u".into(),
                current_version: Some("x".into()),
                ..Default::default()
            },
        );
        let o = opts(false, false);
        // Only the changed managed secret needs a read; unmanaged ones are never read.
        assert_eq!(needs_value(&o, &key(), &desired, &listed), ["p/b"]);
        let values = BTreeMap::from([("p/b".to_string(), b_old)]);
        let p = plan(&o, &key(), &desired, &listed, &values);
        assert_eq!(
            kinds(&p),
            [
                ("p/a".into(), ChangeKind::Unchanged),
                ("p/b".into(), ChangeKind::Modified),
                ("p/c".into(), ChangeKind::Added),
                ("p/u".into(), ChangeKind::Skipped),
            ]
        );
        let keys: Vec<_> = p.changes[1]
            .keys
            .iter()
            .map(|k| (k.key.as_str(), k.kind))
            .collect();
        assert_eq!(
            keys,
            [
                ("gone", KeyChangeKind::Removed),
                ("k", KeyChangeKind::Changed),
                ("n", KeyChangeKind::Added)
            ]
        );
        assert!(
            p.changes[3]
                .reason
                .as_ref()
                .unwrap()
                .contains("adopt: true")
        );
        assert_eq!(
            p.counts(),
            Counts {
                added: 1,
                modified: 1,
                deleted: 0,
                unchanged: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn out_of_band_edit_is_detected_by_version() {
        let a = secret(json!({"k": "1"}));
        let mut l = managed("p/a", &a, "v1");
        l.current_version = Some("v2-console".into());
        let listed = BTreeMap::from([("p/a".to_string(), l)]);
        let desired = Bundle::from([("a".into(), a.clone())]);
        assert_eq!(
            needs_value(&opts(false, false), &key(), &desired, &listed),
            ["p/a"]
        );
        let edited = BTreeMap::from([("p/a".to_string(), secret(json!({"k": "evil"})))]);
        assert_eq!(
            plan(&opts(false, false), &key(), &desired, &listed, &edited).changes[0].kind,
            ChangeKind::Modified
        );
        let same = BTreeMap::from([("p/a".to_string(), a.clone())]);
        let p = plan(&opts(false, false), &key(), &desired, &listed, &same);
        assert!(p.changes[0].kind == ChangeKind::Unchanged && p.changes[0].retag);
    }

    #[test]
    fn orphans_kept_deleted_or_refused() {
        let a = secret(json!({"k": "1"}));
        let listed: BTreeMap<String, Listed> = ["p/x", "p/y", "p/z"]
            .iter()
            .map(|n| (n.to_string(), managed(n, &a, "v")))
            .collect();
        let mut foreign = listed.clone();
        foreign.insert("q/other".into(), managed("q/other", &a, "v"));
        let desired = Bundle::from([("x".into(), a.clone())]);
        let kept = plan(
            &opts(false, false),
            &key(),
            &desired,
            &foreign,
            &BTreeMap::new(),
        );
        assert_eq!(kept.orphans_kept, ["p/y", "p/z"]);
        let deleted = plan(
            &opts(false, true),
            &key(),
            &desired,
            &foreign,
            &BTreeMap::new(),
        );
        assert_eq!(deleted.counts().deleted, 2);
        assert!(deleted.refused.is_none());
        let none = plan(
            &opts(false, true),
            &key(),
            &Bundle::new(),
            &listed,
            &BTreeMap::new(),
        );
        assert!(none.refused.as_ref().unwrap().contains("max_deletes"));
    }

    #[test]
    fn invalid_names_and_pending_deletion() {
        let a = secret(json!({"k": "1"}));
        let big = secret(json!({"k": "x".repeat(70_000)}));
        let desired = Bundle::from([
            ("bad name".into(), a.clone()),
            ("big".into(), big),
            ("gone".into(), a.clone()),
        ]);
        let mut l = managed("p/gone", &a, "v1");
        l.pending_deletion = true;
        let listed = BTreeMap::from([("p/gone".to_string(), l)]);
        let p = plan(
            &opts(false, false),
            &key(),
            &desired,
            &listed,
            &BTreeMap::new(),
        );
        assert_eq!(p.invalid().count(), 2);
        let gone = &p.changes[2];
        assert!(gone.kind == ChangeKind::Modified && gone.restore);
    }

    #[test]
    fn plan_of_same_state_is_empty() {
        let desired = Bundle::from([("a".into(), secret(json!({"k": [1, 2]})))]);
        let listed = BTreeMap::from([("p/a".to_string(), managed("p/a", &desired["a"], "v"))]);
        assert!(
            !plan(
                &opts(false, true),
                &key(),
                &desired,
                &listed,
                &BTreeMap::new()
            )
            .has_changes()
        );
    }

    fn with_tags(mut l: Listed, f: impl FnOnce(&mut crate::tags::TagMap)) -> Listed {
        f(std::sync::Arc::make_mut(&mut l.tags));
        l
    }

    #[test]
    fn other_owners_and_targets_are_failures_never_orphans() {
        let a = secret(json!({"k": "1"}));
        let listed = BTreeMap::from([
            (
                "p/x".to_string(),
                with_tags(managed("p/x", &a, "v"), |t| {
                    t.insert(TAG_OWNER, "other-team".into());
                }),
            ),
            (
                "p/y".to_string(),
                with_tags(managed("p/y", &a, "v"), |t| {
                    t.insert(TAG_OWNER, "other-team".into());
                }),
            ),
            (
                "p/z".to_string(),
                with_tags(managed("p/z", &a, "v"), |t| {
                    t.insert(TAG_TARGET, "sibling".into());
                }),
            ),
        ]);
        let desired = Bundle::from([("x".into(), a.clone()), ("z".into(), a.clone())]);
        let o = opts(false, true);
        assert!(needs_value(&o, &key(), &desired, &listed).is_empty());
        let p = plan(&o, &key(), &desired, &listed, &BTreeMap::new());
        // `y` belongs to another deployment: not an orphan of ours, not deleted.
        assert_eq!(p.counts().deleted, 0);
        assert!(p.orphans_kept.is_empty());
        let x = &p.changes[0];
        assert!(x.invalid && x.kind == ChangeKind::Skipped);
        assert!(x.reason.as_ref().unwrap().contains("owner `other-team`"));
        let z = &p.changes[1];
        assert!(z.invalid && z.reason.as_ref().unwrap().contains("adopt_from: [sibling]"));
    }

    #[test]
    fn adopt_from_takes_over_and_legacy_marks_are_retagged_without_reads() {
        let a = secret(json!({"k": "1"}));
        let legacy = |name: &str, target: &str| Listed {
            name: name.into(),
            tags: Tags::new(crate::tags::TagMap::from(BTreeMap::from([
                (TAG_MANAGED.into(), MANAGED_VALUE.into()),
                (TAG_TARGET.into(), target.into()),
                (TAG_HASH.into(), legacy_content_hash(&a)),
                (TAG_VERSION.into(), "v".into()),
            ]))),
            current_version: Some("v".into()),
            pending_deletion: false,
        };
        let listed = BTreeMap::from([
            ("p/mine".to_string(), legacy("p/mine", "t")),
            ("p/old".to_string(), legacy("p/old", "old-name")),
            (
                "p/renamed".to_string(),
                with_tags(managed("p/renamed", &a, "v"), |t| {
                    t.insert(TAG_TARGET, "old-name".into());
                }),
            ),
            ("p/stale".to_string(), legacy("p/stale", "t")),
        ]);
        let desired = Bundle::from([
            ("mine".into(), a.clone()),
            ("old".into(), a.clone()),
            ("renamed".into(), a.clone()),
        ]);
        let mut o = opts(false, true);
        o.adopt_from = vec!["old-name".into()];
        // The legacy plain hash and the keyed fingerprint prove the content: no reads.
        assert!(needs_value(&o, &key(), &desired, &listed).is_empty());
        let p = plan(&o, &key(), &desired, &listed, &BTreeMap::new());
        for c in &p.changes {
            assert!(
                c.kind == ChangeKind::Unchanged && c.retag,
                "{}: {:?}",
                c.name,
                c.kind
            );
        }
        // An unscoped (pre-0.2) orphan is kept, never deleted.
        assert_eq!(p.orphans_kept, ["p/stale"]);
        assert_eq!(p.counts().deleted, 0);
        // Without adopt_from, the old target's secrets are someone else's.
        let p = plan(
            &opts(false, true),
            &key(),
            &desired,
            &listed,
            &BTreeMap::new(),
        );
        assert_eq!(p.invalid().count(), 2);
    }

    #[test]
    fn a_changed_legacy_secret_is_read() {
        let a = secret(json!({"k": "1"}));
        let b = secret(json!({"k": "2"}));
        let mut l = managed("p/a", &a, "v");
        let tags = std::sync::Arc::make_mut(&mut l.tags);
        tags.remove(TAG_FINGERPRINT);
        tags.remove(TAG_OWNER);
        tags.insert(TAG_HASH, legacy_content_hash(&a));
        let listed = BTreeMap::from([("p/a".to_string(), l)]);
        let desired = Bundle::from([("a".into(), b)]);
        assert_eq!(
            needs_value(&opts(false, false), &key(), &desired, &listed),
            ["p/a"]
        );
    }

    #[test]
    fn an_incomplete_desired_state_deletes_nothing_and_says_why() {
        let a = secret(json!({"k": "1"}));
        let listed: BTreeMap<String, Listed> = ["p/x", "p/y"]
            .iter()
            .map(|n| (n.to_string(), managed(n, &a, "v")))
            .collect();
        let mut o = opts(false, true);
        o.incomplete = vec![
            Gap::new("base", "app/", "could not be listed (permission denied)"),
            Gap::new("base", "db", "could not be read (permission denied)"),
        ];
        let desired = Bundle::from([
            ("x".into(), a.clone()),
            ("new".into(), a.clone()),
            // Covered by the gaps: the other layers alone must not be written there.
            ("app/under".into(), a.clone()),
            ("db".into(), secret(json!({"k": "from a lower layer"}))),
        ]);
        let mut l = listed.clone();
        l.insert("p/db".into(), managed("p/db", &a, "v"));
        let p = plan(&o, &key(), &desired, &l, &BTreeMap::new());
        assert_eq!(p.counts().deleted, 0);
        assert_eq!(
            p.counts().added,
            1,
            "creates and updates still happen elsewhere"
        );
        assert_eq!(p.counts().skipped, 2, "{:?}", kinds(&p));
        for c in p.changes.iter().filter(|c| c.kind == ChangeKind::Skipped) {
            assert!(c.reason.as_ref().unwrap().contains("incomplete"), "{c:?}");
            assert!(!c.invalid);
        }
        assert!(needs_value(&o, &key(), &desired, &l).is_empty());
        assert_eq!(p.orphans_kept, ["p/y"]);
        let held = p.deletions_held.unwrap();
        assert!(
            held.contains("app/") && held.contains("incomplete"),
            "{held}"
        );
        assert!(p.refused.is_none());
    }

    #[test]
    fn mass_deletions_need_the_flag() {
        let a = secret(json!({"k": "1"}));
        let names: Vec<String> = (0..20).map(|i| format!("p/s{i:02}")).collect();
        let listed: BTreeMap<String, Listed> = names
            .iter()
            .map(|n| (n.clone(), managed(n, &a, "v")))
            .collect();
        let keep = |n: usize| -> Bundle {
            names[..n]
                .iter()
                .map(|name| (name.strip_prefix("p/").unwrap().to_string(), a.clone()))
                .collect()
        };
        let mut o = opts(false, true);
        o.max_deletes = 100;
        // 2 of 20 (10%): allowed. 4 of 20 (20%) but not more than 5: allowed.
        for kept in [18, 16] {
            let p = plan(&o, &key(), &keep(kept), &listed, &BTreeMap::new());
            assert!(p.refused.is_none(), "{kept}");
            assert_eq!(p.counts().deleted, 20 - kept);
        }
        // 6 of 20 (30%): refused, unless allowed.
        let p = plan(&o, &key(), &keep(14), &listed, &BTreeMap::new());
        assert!(p.refused.as_ref().unwrap().contains("--allow-mass-delete"));
        // Empty desired state while managing secrets: always refused.
        let few: BTreeMap<String, Listed> = listed
            .iter()
            .take(2)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let p = plan(&o, &key(), &Bundle::new(), &few, &BTreeMap::new());
        assert!(p.refused.as_ref().unwrap().contains("empty"));
        o.allow_mass_delete = true;
        assert!(
            plan(&o, &key(), &keep(14), &listed, &BTreeMap::new())
                .refused
                .is_none()
        );
        assert!(
            plan(&o, &key(), &Bundle::new(), &few, &BTreeMap::new())
                .refused
                .is_none()
        );
    }

    #[test]
    fn reserved_names_are_never_desired() {
        let a = secret(json!({"k": "1"}));
        let mut o = opts(false, false);
        o.prefix = String::new();
        let desired = Bundle::from([(".secretsync/fingerprint-key".into(), a)]);
        let p = plan(&o, &key(), &desired, &BTreeMap::new(), &BTreeMap::new());
        assert!(p.changes[0].invalid);
    }

    use proptest::prelude::*;

    /// A simulated target: name -> (value, listing). Applying a plan the way the engine does.
    fn state_of(
        bundle: &Bundle,
        o: &PlanOptions,
    ) -> (BTreeMap<String, Listed>, BTreeMap<String, SecretValue>) {
        let mut listed = BTreeMap::new();
        let mut values = BTreeMap::new();
        for (p, v) in bundle {
            let name = format!("{}{p}", o.prefix);
            listed.insert(
                name.clone(),
                managed(&name, v, &format!("v-{}", key().fingerprint(v))),
            );
            values.insert(name, v.clone());
        }
        (listed, values)
    }

    fn apply(p: &TargetPlan, o: &PlanOptions, values: &mut BTreeMap<String, SecretValue>) {
        for c in &p.changes {
            match c.kind {
                ChangeKind::Added | ChangeKind::Modified => {
                    values.insert(c.name.clone(), c.new_value.clone().unwrap());
                }
                ChangeKind::Deleted => {
                    values.remove(&c.name);
                }
                _ => {}
            }
        }
        let _ = o;
    }

    fn bundles() -> impl Strategy<Value = Bundle> {
        prop::collection::btree_map(
            "[a-d]{1,2}(/[a-c])?",
            prop::collection::btree_map("[k-m]", 0i64..3, 0..3),
            0..6,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(p, kv)| {
                    (
                        p,
                        SecretValue::new(
                            kv.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
                        ),
                    )
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn apply_of_plan_reaches_desired(a in bundles(), b in bundles()) {
            let o = PlanOptions { delete_orphans: true, max_deletes: 100, allow_mass_delete: true, ..PlanOptions::new("t", "o", "p/") };
            let (listed, mut values) = state_of(&a, &o);
            // Values are read exactly for what the plan asks.
            let wanted = needs_value(&o, &key(), &b, &listed);
            let read: BTreeMap<String, SecretValue> = wanted.iter().filter_map(|n| values.get(n).map(|v| (n.clone(), v.clone()))).collect();
            let p = plan(&o, &key(), &b, &listed, &read);
            apply(&p, &o, &mut values);
            let want: BTreeMap<String, SecretValue> = b.iter().map(|(k, v)| (format!("p/{k}"), v.clone())).collect();
            prop_assert_eq!(values, want);
        }

        #[test]
        fn plan_of_same_state_has_no_changes(a in bundles()) {
            let o = PlanOptions { delete_orphans: true, max_deletes: 100, allow_mass_delete: true, ..PlanOptions::new("t", "o", "p/") };
            let (listed, _) = state_of(&a, &o);
            prop_assert!(needs_value(&o, &key(), &a, &listed).is_empty());
            let p = plan(&o, &key(), &a, &listed, &BTreeMap::new());
            prop_assert!(!p.has_changes());
            prop_assert_eq!(p.counts().unchanged, a.len());
        }
    }
}
