//! Secret rotation's pure half: which secrets a `rotation:` block selects (path globs), how
//! old a key is (the walk back through a secret's versions), how a new value is drawn from a
//! charset (rejection sampling over random bytes passed in), and the report with its text
//! and JSON renderings. The engine (`secretsync_engine::rotation`) does the reads and the
//! check-and-set writes in Vault around it.
//!
//! ```yaml
//! vault_sources:
//!   - mount: secret/base/
//! rotation:
//!   - source: base
//!     paths: ["app/*/db", "legacy/**"]
//!     key: password
//!     every: 30d
//!     generator: { length: 32 }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::secret::Gap;

/// The charset used when a generator gives none: `A-Z`, `a-z`, `0-9` (62 characters).
pub const DEFAULT_CHARSET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The fewest distinct characters a charset may have.
pub const MIN_CHARSET: usize = 10;
/// Generated values are this long at least, and at most [`MAX_LENGTH`].
pub const MIN_LENGTH: usize = 16;
pub const MAX_LENGTH: usize = 1024;

// ---- path globs ----

/// A glob over a secret's path relative to its source's `mount:`: `*` matches within one
/// path segment (any run of characters without `/`, the empty one included), `**` as a whole
/// segment matches any number of segments (none included: `app/**` matches `app` too, and
/// `**/db` matches `db`). Every other character is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`
    AnyDepth,
    /// A segment, with `*` wildcards (kept as written).
    Pattern(String),
}

/// Why a glob was refused: the message and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobError {
    pub message: String,
    pub help: String,
}

impl Glob {
    pub fn parse(text: &str) -> Result<Glob, GlobError> {
        let err = |message: String, help: &str| {
            Err(GlobError {
                message,
                help: help.to_string(),
            })
        };
        if text.is_empty() {
            return err(
                "the path glob is empty".into(),
                "write a glob relative to the source's mount, e.g. `app/*/db`",
            );
        }
        if text.contains('\0') {
            return err("the path glob contains a NUL character".into(), "remove it");
        }
        if text.starts_with('/') {
            return err(
                format!("`{text}` starts with `/`"),
                "globs are relative to the source's `mount:`; remove the leading `/`",
            );
        }
        if text.ends_with('/') {
            return err(
                format!("`{text}` ends with `/`, so it can only match a folder"),
                "rotation selects secrets, not folders: write `app/**` for every secret below `app/`",
            );
        }
        let mut segments = Vec::new();
        for seg in text.split('/') {
            if seg.is_empty() {
                return err(
                    format!("`{text}` has an empty segment (`//`)"),
                    "write a single `/` between segments",
                );
            }
            if seg == ".." || seg == "." {
                return err(
                    format!("`{text}` has a `{seg}` segment"),
                    "write the path below the source's mount without `.` or `..`",
                );
            }
            if seg == "**" {
                // `a/**/**/b` is `a/**/b`.
                if segments.last() != Some(&Segment::AnyDepth) {
                    segments.push(Segment::AnyDepth);
                }
            } else if seg.contains("**") {
                return err(
                    format!("`{text}` has `**` inside the segment `{seg}`"),
                    "`**` must be a whole segment (`app/**/db`); use `*` to match within a segment",
                );
            } else {
                segments.push(Segment::Pattern(seg.to_string()));
            }
        }
        Ok(Glob {
            text: text.to_string(),
            segments,
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the secret at `path` (relative to the source's mount) is selected.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(pattern: &[Segment], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((Segment::AnyDepth, rest)) => {
            (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..]))
        }
        Some((Segment::Pattern(p), rest)) => match parts.split_first() {
            Some((first, others)) => {
                wildcard(p.as_bytes(), first.as_bytes()) && { match_segments(rest, others) }
            }
            None => false,
        },
    }
}

/// `*` matches any run of bytes (the segment has no `/`); linear with one backtrack point.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

// ---- generator ----

/// How a new value is made: `length` characters drawn uniformly and independently from
/// `charset` (distinct printable ASCII characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    pub length: usize,
    pub charset: Vec<u8>,
}

/// Why a charset was refused: the message and what to do.
pub type CharsetError = GlobError;

/// Checks a `charset` as written: only printable ASCII without whitespace (`!` to `~`),
/// every character once, at least [`MIN_CHARSET`] of them. Characters are literal: `A-Z` is
/// the three characters `A`, `-` and `Z`.
pub fn parse_charset(text: &str) -> Result<Vec<u8>, CharsetError> {
    let mut out: Vec<u8> = Vec::new();
    for c in text.chars() {
        let bad = if c.is_whitespace() {
            Some(format!("a whitespace character ({:?})", c))
        } else if !c.is_ascii() {
            Some(format!("`{c}`, which is not ASCII"))
        } else if c.is_ascii_control() {
            Some(format!("a control character ({:?})", c))
        } else {
            None
        };
        if let Some(what) = bad {
            return Err(GlobError {
                message: format!("`charset` has {what}"),
                help: "list only printable ASCII characters other than space (`!` to `~`)".into(),
            });
        }
        let b = c as u8;
        if out.contains(&b) {
            return Err(GlobError {
                message: format!("`charset` lists `{c}` more than once"),
                help: "list each character once: every character listed is drawn with the same probability".into(),
            });
        }
        out.push(b);
    }
    if out.len() < MIN_CHARSET {
        return Err(GlobError {
            message: format!(
                "`charset` has {} distinct character{}; at least {MIN_CHARSET} are needed",
                out.len(),
                if out.len() == 1 { "" } else { "s" }
            ),
            help: "list more characters, or remove `charset` for the default (A-Z, a-z and 0-9)"
                .into(),
        });
    }
    Ok(out)
}

/// The ranges a charset seems to mean (`a-z`, `0-9`), which it does not: characters are
/// literal. For a warning.
pub fn range_lookalikes(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    b.windows(3)
        .filter(|w| {
            w[1] == b'-'
                && w[0] < w[2]
                && ((w[0].is_ascii_lowercase() && w[2].is_ascii_lowercase())
                    || (w[0].is_ascii_uppercase() && w[2].is_ascii_uppercase())
                    || (w[0].is_ascii_digit() && w[2].is_ascii_digit()))
        })
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

impl Generator {
    /// A new value: `length` characters, each drawn uniformly from the charset with the
    /// random bytes `fill` gives. Rejection sampling: a byte at or above the largest multiple
    /// of the charset's size that fits in 256 is thrown away, so no character is likelier
    /// than another (no modulo bias). The value and the random bytes are wiped when dropped.
    pub fn generate<E>(
        &self,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), E>,
    ) -> Result<Zeroizing<String>, E> {
        let n = self.charset.len();
        assert!(
            (1..=256).contains(&n),
            "a validated charset has 10 to 94 characters"
        );
        let limit = 256 - (256 % n);
        let mut out = Zeroizing::new(String::with_capacity(self.length));
        let mut buf = Zeroizing::new([0u8; 64]);
        while out.len() < self.length {
            fill(&mut buf[..])?;
            for &byte in buf.iter() {
                if out.len() == self.length {
                    break;
                }
                if usize::from(byte) < limit {
                    out.push(char::from(self.charset[usize::from(byte) % n]));
                }
            }
        }
        Ok(out)
    }
}

// ---- key age ----

/// What Vault's metadata says about one version of a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionInfo {
    pub created: SystemTime,
    /// Neither soft-deleted nor destroyed.
    pub live: bool,
}

/// The walk back from a secret's current version that finds how old one key's value is: the
/// created time of the earliest version in the unbroken run of versions, going back from the
/// current one, that hold the same value for the key. It reads older versions only while that
/// run's start is younger than `every` (once it is older the key is due, and older versions
/// cannot change that); a deleted, destroyed or pruned version ends the run.
///
/// Drive it: while [`KeyAge::next`] names a version, read it and [`KeyAge::step`] whether it
/// holds the same value; then [`KeyAge::age`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAge {
    start: u64,
    /// An older version held a different value (or none): the run is known.
    ended: bool,
}

impl KeyAge {
    pub fn new(current_version: u64) -> Self {
        KeyAge {
            start: current_version,
            ended: false,
        }
    }

    /// The earliest version of the run found so far.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The next older version to read, or `None` when the walk is over.
    pub fn next(
        &self,
        versions: &BTreeMap<u64, VersionInfo>,
        every: Duration,
        now: SystemTime,
    ) -> Option<u64> {
        if self.ended {
            return None;
        }
        let created = versions.get(&self.start)?.created;
        if age(now, created) >= every {
            return None;
        }
        let prev = self.start.checked_sub(1).filter(|v| *v > 0)?;
        versions.get(&prev).filter(|v| v.live).map(|_| prev)
    }

    /// The version [`KeyAge::next`] named was read: `same` tells whether it holds the key
    /// with the same value as the current version.
    pub fn step(&mut self, version: u64, same: bool) {
        if same && version + 1 == self.start {
            self.start = version;
        } else {
            self.ended = true;
        }
    }

    /// The key's age at `now`, and whether it is only a lower bound (the walk stopped at
    /// `every` while an older live version might have held the same value). `None` when the
    /// run's start is not in `versions` (a caller's bug or a malformed answer).
    pub fn age(
        &self,
        versions: &BTreeMap<u64, VersionInfo>,
        now: SystemTime,
    ) -> Option<KeyAgeValue> {
        let created = versions.get(&self.start)?.created;
        let older_live = self
            .start
            .checked_sub(1)
            .and_then(|p| versions.get(&p))
            .is_some_and(|v| v.live);
        Some(KeyAgeValue {
            age: age(now, created),
            at_least: !self.ended && older_live,
        })
    }
}

/// A key's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAgeValue {
    pub age: Duration,
    /// The key may be older than `age` (the walk stopped once it was due).
    pub at_least: bool,
}

/// `now - created`, zero when `created` is later (clocks disagree).
fn age(now: SystemTime, created: SystemTime) -> Duration {
    now.duration_since(created).unwrap_or(Duration::ZERO)
}

/// A duration as the report shows it: whole days from one day on (`31d`), else whole hours,
/// minutes or seconds (`5h`, `3m`, `12s`).
pub fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

// ---- the report ----

/// What happened to one key of one secret (or, in a dry run, what would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// Written with a new value.
    Rotated,
    /// Due, not written (a dry run).
    Due,
    NotDue,
    /// Not touched, and nothing to fix in Vault for it to be (no such key, the current
    /// version is deleted, the value is not a string).
    Skipped(String),
    /// The secret changed between the read and the write: nothing was written.
    Conflict(String),
    Failed(String),
}

impl KeyStatus {
    /// The word a text line starts with.
    pub fn word(&self) -> &'static str {
        match self {
            KeyStatus::Rotated => "rotated",
            KeyStatus::Due => "due",
            KeyStatus::NotDue => "not due",
            KeyStatus::Skipped(_) => "skipped",
            KeyStatus::Conflict(_) => "conflict",
            KeyStatus::Failed(_) => "failed",
        }
    }

    fn json_word(&self) -> &'static str {
        match self {
            KeyStatus::NotDue => "not_due",
            other => other.word(),
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            KeyStatus::Skipped(r) | KeyStatus::Conflict(r) | KeyStatus::Failed(r) => Some(r),
            _ => None,
        }
    }
}

/// One key of one secret in the report. Never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    pub key: String,
    /// The `rotation:` block (index) that selected it.
    pub block: usize,
    pub every: Duration,
    /// `None` when it could not be known (no such key, unreadable metadata).
    pub age: Option<KeyAgeValue>,
    pub status: KeyStatus,
}

/// One selected secret: every key the `rotation:` blocks chose in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReport {
    pub source: String,
    /// Relative to the source's `mount:`.
    pub path: String,
    /// The version read (and written against with check-and-set).
    pub version: Option<u64>,
    /// The version written, when something was.
    pub new_version: Option<u64>,
    pub keys: Vec<KeyReport>,
}

/// A rotation run: per secret and key what happened, and what could not be looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub dry_run: bool,
    pub forced: bool,
    pub secrets: Vec<SecretReport>,
    /// Folders or secrets of a source that could not be listed: a secret there may have been
    /// due and not looked at.
    pub incomplete: Vec<Gap>,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub rotated: usize,
    pub due: usize,
    pub not_due: usize,
    pub skipped: usize,
    pub conflicts: usize,
    pub failed: usize,
    pub incomplete: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            incomplete: self.incomplete.len(),
            ..Summary::default()
        };
        for k in self.secrets.iter().flat_map(|s| &s.keys) {
            match k.status {
                KeyStatus::Rotated => s.rotated += 1,
                KeyStatus::Due => s.due += 1,
                KeyStatus::NotDue => s.not_due += 1,
                KeyStatus::Skipped(_) => s.skipped += 1,
                KeyStatus::Conflict(_) => s.conflicts += 1,
                KeyStatus::Failed(_) => s.failed += 1,
            }
        }
        s
    }

    /// Whether the run did everything it had to: no conflict, no failure, nothing unlisted.
    pub fn ok(&self) -> bool {
        let s = self.summary();
        s.conflicts == 0 && s.failed == 0 && s.incomplete == 0
    }

    /// One line per key, one per gap, then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for s in &self.secrets {
            for k in &s.keys {
                let head = format!("{}  {} {}  {}", k.status.word(), s.source, s.path, k.key);
                let age = k.age.map(|a| {
                    format!(
                        "age {}{}",
                        if a.at_least { "at least " } else { "" },
                        format_age(a.age)
                    )
                });
                let forced = if self.forced { ", forced" } else { "" };
                let every = format_age(k.every);
                let _ = match (&k.status, age) {
                    (KeyStatus::Rotated, Some(age)) => {
                        writeln!(out, "{head} ({age}{forced})")
                    }
                    (KeyStatus::Due | KeyStatus::NotDue, Some(age)) => {
                        writeln!(out, "{head} ({age}, every {every}{forced})")
                    }
                    (status, _) => match status.reason() {
                        Some(r) => writeln!(out, "{head}: {r}"),
                        None => writeln!(out, "{head}"),
                    },
                };
            }
        }
        for g in &self.incomplete {
            let _ = writeln!(
                out,
                "incomplete  {} {}  {}; a secret there was not looked at",
                g.source, g.path, g.reason
            );
        }
        let s = self.summary();
        let tail = if s.incomplete > 0 {
            format!(", {} incomplete", s.incomplete)
        } else {
            String::new()
        };
        let _ = if self.dry_run {
            writeln!(
                out,
                "Rotation (dry run, nothing written): {} due, {} not due, {} skipped, {} failed{tail}",
                s.due, s.not_due, s.skipped, s.failed
            )
        } else {
            writeln!(
                out,
                "Rotation: {} rotated, {} not due, {} skipped, {} conflict{}, {} failed{tail}",
                s.rotated,
                s.not_due,
                s.skipped,
                s.conflicts,
                if s.conflicts == 1 { "" } else { "s" },
                s.failed
            )
        };
        out
    }

    /// The JSON document (`version: 1`): per secret its versions and keys (status, age and
    /// `every` in seconds, the reason where there is one), the gaps, the counts. Never a value.
    pub fn render_json(&self) -> Value {
        let s = self.summary();
        json!({
            "version": 1,
            "dry_run": self.dry_run,
            "forced": self.forced,
            "secrets": self.secrets.iter().map(|sec| json!({
                "source": sec.source,
                "path": sec.path,
                "version": sec.version,
                "new_version": sec.new_version,
                "keys": sec.keys.iter().map(|k| json!({
                    "key": k.key,
                    "block": k.block,
                    "status": k.status.json_word(),
                    "reason": k.status.reason(),
                    "age_seconds": k.age.map(|a| a.age.as_secs()),
                    "age_at_least": k.age.map(|a| a.at_least),
                    "every_seconds": k.every.as_secs(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "incomplete": self.incomplete.iter().map(|g| json!({
                "source": g.source,
                "path": g.path,
                "reason": g.reason,
            })).collect::<Vec<_>>(),
            "summary": {
                "rotated": s.rotated,
                "due": s.due,
                "not_due": s.not_due,
                "skipped": s.skipped,
                "conflicts": s.conflicts,
                "failed": s.failed,
                "incomplete": s.incomplete,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_glob(glob: &str, yes: &[&str], no: &[&str]) {
        let g = Glob::parse(glob).unwrap_or_else(|e| panic!("{glob}: {e:?}"));
        for p in yes {
            assert!(g.matches(p), "`{glob}` should match `{p}`");
        }
        for p in no {
            assert!(!g.matches(p), "`{glob}` should not match `{p}`");
        }
    }

    #[test]
    fn star_stays_within_one_segment() {
        check_glob(
            "app/*/db",
            &["app/web/db", "app/api/db", "app/x.y-z/db"],
            &[
                "app/db",
                "app/web/api/db",
                "app/web/db2",
                "xapp/web/db",
                "app/web/db/x",
            ],
        );
        check_glob(
            "app/db-*",
            &["app/db-1", "app/db-"],
            &["app/db", "app/db-1/x"],
        );
        check_glob("*", &["top", "a"], &["a/b"]);
        check_glob(
            "a*b*c",
            &["abc", "a1b2c", "abbc", "aXbYbZc"],
            &["ab", "acb", "a/b/c"],
        );
    }

    #[test]
    fn double_star_spans_any_number_of_segments() {
        check_glob(
            "app/**",
            &["app", "app/db", "app/web/db", "app/a/b/c/d"],
            &["apps/db", "other/app/db"],
        );
        check_glob(
            "**/db",
            &["db", "app/db", "a/b/c/db"],
            &["app/db2", "app/db/x"],
        );
        check_glob(
            "app/**/db",
            &["app/db", "app/web/db", "app/a/b/db"],
            &["app/web/db/x", "app/web"],
        );
        check_glob("**", &["a", "a/b/c"], &[]);
        check_glob("a/**/**/b", &["a/b", "a/x/y/b"], &["a/x/y"]);
        check_glob("**/*-db/**", &["x-db", "a/x-db/b/c"], &["a/xdb/b"]);
    }

    #[test]
    fn other_characters_are_literal() {
        check_glob("app/[a]/d?b", &["app/[a]/d?b"], &["app/a/dxb"]);
    }

    #[test]
    fn bad_globs_say_why() {
        for (glob, needle) in [
            ("", "empty"),
            ("/app/db", "starts with `/`"),
            ("app/", "ends with `/`"),
            ("app//db", "empty segment"),
            ("app/../db", "`..` segment"),
            ("app/a**/db", "`**` inside"),
            ("a\0b", "NUL"),
        ] {
            let e = Glob::parse(glob).expect_err(glob);
            assert!(e.message.contains(needle), "{glob}: {e:?}");
            assert!(!e.help.is_empty());
        }
    }

    #[test]
    fn charsets_are_literal_printable_ascii() {
        assert_eq!(parse_charset(DEFAULT_CHARSET).unwrap().len(), 62);
        assert_eq!(parse_charset("0123456789").unwrap(), b"0123456789".to_vec());
        for (cs, needle) in [
            ("abcdefghij k", "whitespace"),
            ("abcdefghij\t", "whitespace"),
            ("abcdefghijé", "not ASCII"),
            ("abcdefghij\u{7f}", "control"),
            ("abcdefghija", "`a` more than once"),
            ("abcdefghi", "9 distinct characters"),
            ("", "0 distinct characters"),
        ] {
            let e = parse_charset(cs).expect_err(cs);
            assert!(e.message.contains(needle), "{cs:?}: {e:?}");
        }
        assert_eq!(range_lookalikes("A-Za-z0-9_"), ["A-Z", "a-z", "0-9"]);
        assert!(range_lookalikes("abc-+!Z-A").is_empty());
    }

    /// Feeds the generator the bytes 0, 1, ..., 255 over and over.
    fn counting() -> impl FnMut(&mut [u8]) -> Result<(), ()> {
        let mut next = 0u8;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = next;
                next = next.wrapping_add(1);
            }
            Ok(())
        }
    }

    #[test]
    fn every_byte_value_maps_to_a_character_at_most_evenly() {
        // 62 characters: bytes 248..=255 are thrown away, so one pass over every byte value
        // (256 bytes) yields 248 characters, each exactly 4 times.
        let g = Generator {
            length: 248,
            charset: DEFAULT_CHARSET.as_bytes().to_vec(),
        };
        let v = g.generate(&mut counting()).unwrap();
        assert_eq!(v.len(), 248);
        let mut counts: BTreeMap<char, usize> = BTreeMap::new();
        for c in v.chars() {
            *counts.entry(c).or_default() += 1;
        }
        assert_eq!(counts.len(), 62);
        assert!(counts.values().all(|n| *n == 4), "{counts:?}");
    }

    #[test]
    fn rejected_bytes_are_skipped_not_folded() {
        // 10 characters: 256 % 10 = 6, bytes 250..=255 are rejected. All-rejected input then
        // a usable byte: the value comes only from usable bytes.
        let g = Generator {
            length: 16,
            charset: b"0123456789".to_vec(),
        };
        let mut calls = 0;
        let v = g
            .generate(&mut |buf: &mut [u8]| {
                calls += 1;
                let byte = if calls == 1 { 255 } else { 13 };
                buf.fill(byte);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(v.as_str(), "3333333333333333");
    }

    #[test]
    fn a_failing_random_source_is_an_error() {
        let g = Generator {
            length: 16,
            charset: b"0123456789".to_vec(),
        };
        assert_eq!(
            g.generate(&mut |_: &mut [u8]| Err("no entropy")),
            Err("no entropy")
        );
    }

    fn t(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400)
    }

    fn info(created_day: u64, live: bool) -> VersionInfo {
        VersionInfo {
            created: t(created_day),
            live,
        }
    }

    /// Runs the walk over `values` (per version: the key's value, `None` = absent) and
    /// returns (age in days, at least, versions read).
    fn check_age(
        versions: &[(u64, VersionInfo, Option<&str>)],
        every_days: u64,
        now_day: u64,
    ) -> (u64, bool, Vec<u64>) {
        let map: BTreeMap<u64, VersionInfo> = versions.iter().map(|(n, i, _)| (*n, *i)).collect();
        let value = |n: u64| {
            versions
                .iter()
                .find(|(v, ..)| *v == n)
                .and_then(|(.., x)| *x)
        };
        let current = *map.keys().last().unwrap();
        let mut walk = KeyAge::new(current);
        let mut read = Vec::new();
        let every = Duration::from_secs(every_days * 86_400);
        while let Some(v) = walk.next(&map, every, t(now_day)) {
            read.push(v);
            walk.step(v, value(v) == value(current));
        }
        let a = walk.age(&map, t(now_day)).unwrap();
        (a.age.as_secs() / 86_400, a.at_least, read)
    }

    #[test]
    fn age_is_the_start_of_the_run_of_equal_values() {
        // v1 A (day 0), v2 B (day 10), v3 B (day 20), v4 B (day 25); now day 30.
        let vs = [
            (1, info(0, true), Some("A")),
            (2, info(10, true), Some("B")),
            (3, info(20, true), Some("B")),
            (4, info(25, true), Some("B")),
        ];
        assert_eq!(check_age(&vs, 60, 30), (20, false, vec![3, 2, 1]));
        // every 10d: v4 is 5d old, v3 10d: due, stop; v2 is never read.
        assert_eq!(check_age(&vs, 10, 30), (10, true, vec![3]));
        // every 1d: the current version alone is old enough.
        assert_eq!(check_age(&vs, 1, 30), (5, true, vec![]));
    }

    #[test]
    fn deleted_destroyed_and_pruned_versions_end_the_run() {
        let vs = [
            (1, info(0, true), Some("B")),
            (2, info(10, false), None),
            (3, info(20, true), Some("B")),
        ];
        assert_eq!(check_age(&vs, 60, 30), (10, false, vec![]));
        // Version 1 pruned (max_versions): the run starts at the oldest version kept.
        let vs = [
            (2, info(10, true), Some("B")),
            (3, info(20, true), Some("B")),
        ];
        assert_eq!(check_age(&vs, 60, 30), (20, false, vec![2]));
        // A version without the key ends the run.
        let vs = [(1, info(0, true), None), (2, info(10, true), Some("B"))];
        assert_eq!(check_age(&vs, 60, 30), (20, false, vec![1]));
    }

    #[test]
    fn a_creation_time_in_the_future_is_age_zero() {
        let vs = [(1, info(40, true), Some("A"))];
        assert_eq!(check_age(&vs, 60, 30), (0, false, vec![]));
    }

    #[test]
    fn ages_are_shown_in_their_largest_whole_unit() {
        for (secs, shown) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3_599, "59m"),
            (3_600, "1h"),
            (86_399, "23h"),
            (86_400, "1d"),
            (31 * 86_400 + 7, "31d"),
        ] {
            assert_eq!(format_age(Duration::from_secs(secs)), shown);
        }
    }

    fn sample() -> Report {
        let day = Duration::from_secs(86_400);
        let key = |key: &str, status: KeyStatus, age: Option<u64>| KeyReport {
            key: key.into(),
            block: 0,
            every: 30 * day,
            age: age.map(|d| KeyAgeValue {
                age: day * u32::try_from(d).unwrap(),
                at_least: false,
            }),
            status,
        };
        Report {
            dry_run: false,
            forced: false,
            secrets: vec![
                SecretReport {
                    source: "base".into(),
                    path: "app/web/db".into(),
                    version: Some(3),
                    new_version: Some(4),
                    keys: vec![key("password", KeyStatus::Rotated, Some(31))],
                },
                SecretReport {
                    source: "base".into(),
                    path: "app/api/db".into(),
                    version: Some(1),
                    new_version: None,
                    keys: vec![key("password", KeyStatus::NotDue, Some(2))],
                },
                SecretReport {
                    source: "base".into(),
                    path: "app/old/db".into(),
                    version: Some(1),
                    new_version: None,
                    keys: vec![key("password", KeyStatus::Skipped("no key `password`".into()), None)],
                },
                SecretReport {
                    source: "base".into(),
                    path: "app/busy/db".into(),
                    version: Some(7),
                    new_version: None,
                    keys: vec![key(
                        "password",
                        KeyStatus::Conflict("changed concurrently (version 7 is no longer current), not rotated; run again".into()),
                        Some(40),
                    )],
                },
            ],
            incomplete: vec![Gap::new("base", "team/", "could not be listed (permission denied)")],
        }
    }

    #[test]
    fn text_report() {
        let r = sample();
        assert_eq!(
            r.render_text(),
            "rotated  base app/web/db  password (age 31d)
not due  base app/api/db  password (age 2d, every 30d)
skipped  base app/old/db  password: no key `password`
conflict  base app/busy/db  password: changed concurrently (version 7 is no longer current), not rotated; run again
incomplete  base team/  could not be listed (permission denied); a secret there was not looked at
Rotation: 1 rotated, 1 not due, 1 skipped, 1 conflict, 0 failed, 1 incomplete
"
        );
        assert!(!r.ok());
        let mut dry = sample();
        dry.dry_run = true;
        dry.forced = true;
        dry.secrets.truncate(2);
        dry.secrets[0].keys[0].status = KeyStatus::Due;
        dry.secrets[0].new_version = None;
        dry.incomplete.clear();
        assert_eq!(
            dry.render_text(),
            "due  base app/web/db  password (age 31d, every 30d, forced)
not due  base app/api/db  password (age 2d, every 30d, forced)
Rotation (dry run, nothing written): 1 due, 1 not due, 0 skipped, 0 failed
"
        );
        assert!(dry.ok());
    }

    #[test]
    fn json_report() {
        let j = sample().render_json();
        assert_eq!(j["version"], 1);
        assert_eq!(j["secrets"][0]["keys"][0]["status"], "rotated");
        assert_eq!(j["secrets"][0]["keys"][0]["age_seconds"], 31 * 86_400);
        assert_eq!(j["secrets"][0]["new_version"], 4);
        assert_eq!(j["secrets"][1]["keys"][0]["status"], "not_due");
        assert_eq!(j["secrets"][2]["keys"][0]["reason"], "no key `password`");
        assert_eq!(j["secrets"][2]["keys"][0]["age_seconds"], Value::Null);
        assert_eq!(j["incomplete"][0]["path"], "team/");
        assert_eq!(
            j["summary"],
            json!({"rotated": 1, "due": 0, "not_due": 1, "skipped": 1, "conflicts": 1, "failed": 0, "incomplete": 1})
        );
    }
}
