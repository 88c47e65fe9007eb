//! Diff renderers: a closed set of formats, each a module with the same two entry points —
//! `target` (one target's plan, printed before it is applied) and `finish` (what comes after
//! every target: totals, or the whole document for formats that need it). Pure: they write to
//! the `out` they are given. Values pass through [`MaskPolicy`] and are masked unless the user
//! asked to see them.

pub mod compact;
pub mod github;
pub mod json;
pub mod side_by_side;
pub mod text;

use std::io::{self, Write};

use crate::diff::{ChangeKind, Counts, TargetPlan};
use crate::mask::MaskPolicy;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    SideBySide,
    Json,
    Github,
    Compact,
}

/// One target's plan and, once known, how it ended.
#[derive(Debug, Clone)]
pub struct TargetDiff {
    pub plan: TargetPlan,
    /// Why the target failed, if it did.
    pub error: Option<String>,
}

/// How to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub policy: MaskPolicy,
    /// ANSI colour (terminal and no `NO_COLOR`).
    pub color: bool,
    /// `--diff`: key-level detail (and values where shown).
    pub details: bool,
    pub dry_run: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            policy: MaskPolicy::default(),
            color: false,
            details: true,
            dry_run: true,
        }
    }
}

impl Format {
    /// Renders one target's plan as soon as it exists.
    pub fn target(
        &self,
        plan: &TargetPlan,
        opts: &RenderOptions,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Format::Text => text::target(plan, opts, out),
            Format::SideBySide => side_by_side::target(plan, opts, out),
            Format::Json => Ok(()),
            Format::Github => github::target(plan, opts, out),
            Format::Compact => compact::target(plan, opts, out),
        }
    }

    /// Renders what follows all targets.
    pub fn finish(
        &self,
        diffs: &[TargetDiff],
        opts: &RenderOptions,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Format::Text | Format::SideBySide => text::finish(diffs, opts, out),
            Format::Json => json::finish(diffs, opts, out),
            Format::Github => github::finish(diffs, opts, out),
            Format::Compact => compact::finish(diffs, opts, out),
        }
    }
}

/// Totals over targets.
pub fn totals(diffs: &[TargetDiff]) -> Counts {
    let mut c = Counts::default();
    for d in diffs {
        c.add(&d.plan.counts());
    }
    c
}

/// The changes worth listing (everything but plain unchanged).
pub fn listed(plan: &TargetPlan) -> impl Iterator<Item = &crate::diff::SecretChange> {
    plan.changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Unchanged || c.retag)
}

/// Short form of a version id for display (`v` + 8 characters).
pub fn short_version(v: &Option<String>) -> String {
    match v {
        Some(v) if v.len() > 8 => format!("v{}", &v[..8]),
        Some(v) => format!("v{v}"),
        None => "none".into(),
    }
}

pub(crate) fn sign(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "+",
        ChangeKind::Modified => "~",
        ChangeKind::Deleted => "-",
        ChangeKind::Unchanged => "=",
        ChangeKind::Skipped => "!",
    }
}

pub(crate) fn paint(s: &str, k: ChangeKind, color: bool) -> String {
    if !color {
        return s.to_string();
    }
    let code = match k {
        ChangeKind::Added => "32",
        ChangeKind::Modified => "33",
        ChangeKind::Deleted => "31",
        ChangeKind::Unchanged => "2",
        ChangeKind::Skipped => "35",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::diff::{
        Listed, MANAGED_VALUE, PlanOptions, TAG_HASH, TAG_MANAGED, TAG_TARGET, TAG_VERSION, plan,
    };
    use crate::merge::secret;
    use crate::secret::Bundle;

    /// Sentinel values that must never appear in masked output.
    pub const SENTINELS: &[&str] = &[
        "sentinel-old-pw",
        "sentinel-new-pw",
        "sentinel-added",
        "sentinel-user",
    ];

    /// A fixed two-target diff: an add, a modify with nested key changes, a delete, an
    /// unchanged, a skipped (unmanaged) and an invalid secret.
    pub fn diffs() -> Vec<TargetDiff> {
        let managed = |name: &str, v: &crate::secret::SecretValue, ver: &str| Listed {
            name: name.into(),
            tags: BTreeMap::from([
                (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
                (TAG_TARGET.to_string(), "prod".to_string()),
                (TAG_HASH.to_string(), v.content_hash()),
                (TAG_VERSION.to_string(), ver.to_string()),
            ]),
            current_version: Some(ver.into()),
            pending_deletion: false,
        };
        let old_db = secret(
            json!({"user": "sentinel-user", "password": "sentinel-old-pw", "pool": {"max": 5, "min": 1}, "legacy": true}),
        );
        let new_db = secret(
            json!({"user": "sentinel-user", "password": "sentinel-new-pw", "pool": {"max": 10, "min": 1}, "timeout": 30}),
        );
        let same = secret(json!({"level": "info"}));
        let desired = Bundle::from([
            ("app/db".to_string(), new_db),
            (
                "app/new".to_string(),
                secret(json!({"api_token": "sentinel-added", "url": "https://x"})),
            ),
            ("shared/logging".to_string(), same.clone()),
            ("app/unmanaged".to_string(), same.clone()),
            ("bad name".to_string(), same.clone()),
        ]);
        let mut listed = BTreeMap::new();
        listed.insert(
            "prod/app/db".to_string(),
            managed(
                "prod/app/db",
                &old_db,
                "11111111-aaaa-bbbb-cccc-000000000001",
            ),
        );
        listed.insert(
            "prod/shared/logging".to_string(),
            managed("prod/shared/logging", &same, "22222222-aaaa"),
        );
        listed.insert(
            "prod/app/old".to_string(),
            managed("prod/app/old", &same, "33333333-aaaa"),
        );
        listed.insert(
            "prod/app/unmanaged".to_string(),
            Listed {
                name: "prod/app/unmanaged".into(),
                current_version: Some("44444444".into()),
                ..Default::default()
            },
        );
        let opts = PlanOptions {
            target: "prod".into(),
            prefix: "prod/".into(),
            adopt: false,
            delete_orphans: true,
            max_deletes: 10,
        };
        let values = BTreeMap::from([("prod/app/db".to_string(), old_db)]);
        let mut p = plan(&opts, &desired, &listed, &values);
        for c in &mut p.changes {
            if matches!(c.kind, ChangeKind::Added | ChangeKind::Modified) {
                c.new_version = Some(format!("99999999-new-{}", c.path.len()));
            }
        }
        let empty = TargetPlan {
            target: "staging".into(),
            changes: Vec::new(),
            orphans_kept: vec!["staging/x".into()],
            refused: None,
            deletions_held: None,
        };
        vec![
            TargetDiff {
                plan: p,
                error: None,
            },
            TargetDiff {
                plan: empty,
                error: Some("AccessDeniedException: not allowed".into()),
            },
        ]
    }

    /// Sentinels under sensitive keys inside lists of objects: they stay masked even under
    /// `--show-values`.
    pub const LIST_SENTINELS: &[&str] = &[
        "sentinel-list-old-pw",
        "sentinel-list-new-pw",
        "sentinel-list-deep-token",
        "sentinel-list-added-key",
    ];

    /// One target: a modified secret whose list of users changed (passwords inside), and an
    /// added secret with a list of API keys.
    pub fn list_diffs() -> Vec<TargetDiff> {
        let old = secret(json!({
            "users": [{"name": "visible-alice", "password": "sentinel-list-old-pw"}],
            "level": 1
        }));
        let new = secret(json!({
            "users": [{"name": "visible-bob", "password": "sentinel-list-new-pw"}],
            "nested": [[{"auth": {"token": "sentinel-list-deep-token", "host": "visible-host"}}]],
            "level": 2
        }));
        let listed = BTreeMap::from([(
            "prod/app/users".to_string(),
            Listed {
                name: "prod/app/users".into(),
                tags: BTreeMap::from([
                    (TAG_MANAGED.to_string(), MANAGED_VALUE.to_string()),
                    (TAG_TARGET.to_string(), "prod".to_string()),
                    (TAG_HASH.to_string(), old.content_hash()),
                    (TAG_VERSION.to_string(), "v1".to_string()),
                ]),
                current_version: Some("v1".into()),
                pending_deletion: false,
            },
        )]);
        let desired = Bundle::from([
            ("app/users".to_string(), new),
            (
                "app/keys".to_string(),
                secret(
                    json!({"clients": [{"id": "visible-id", "api_key": "sentinel-list-added-key"}]}),
                ),
            ),
        ]);
        let opts = PlanOptions {
            target: "prod".into(),
            prefix: "prod/".into(),
            adopt: false,
            delete_orphans: false,
            max_deletes: 10,
        };
        let values = BTreeMap::from([("prod/app/users".to_string(), old)]);
        vec![TargetDiff {
            plan: plan(&opts, &desired, &listed, &values),
            error: None,
        }]
    }

    pub fn render_diffs(diffs: &[TargetDiff], format: Format, opts: &RenderOptions) -> String {
        let mut out = Vec::new();
        for d in diffs {
            format.target(&d.plan, opts, &mut out).unwrap();
        }
        format.finish(diffs, opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    pub fn render(format: Format, opts: &RenderOptions) -> String {
        let diffs = diffs();
        let mut out = Vec::new();
        for d in &diffs {
            format.target(&d.plan, opts, &mut out).unwrap();
        }
        format.finish(&diffs, opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::mask::DEFAULT_PATTERNS;

    const FORMATS: [Format; 5] = [
        Format::Text,
        Format::SideBySide,
        Format::Json,
        Format::Github,
        Format::Compact,
    ];

    #[test]
    fn masked_output_never_contains_sentinels() {
        for details in [false, true] {
            for f in FORMATS {
                let out = render(
                    f,
                    &RenderOptions {
                        details,
                        ..Default::default()
                    },
                );
                for s in SENTINELS {
                    assert!(!out.contains(s), "{f:?} leaked {s}:\n{out}");
                }
            }
        }
    }

    #[test]
    fn show_values_reveals_only_non_sensitive_keys() {
        let opts = RenderOptions {
            policy: MaskPolicy::new(
                true,
                DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
            ),
            ..Default::default()
        };
        for f in [Format::Text, Format::SideBySide, Format::Json] {
            let out = render(f, &opts);
            // Text formats show changed keys only; JSON shows whole values.
            let visible = if f == Format::Json {
                "sentinel-user"
            } else {
                "https://x"
            };
            assert!(out.contains(visible), "{f:?} should show {visible}:\n{out}");
            for s in ["sentinel-old-pw", "sentinel-new-pw", "sentinel-added"] {
                assert!(!out.contains(s), "{f:?} leaked sensitive {s}:\n{out}");
            }
        }
        let all = RenderOptions {
            policy: MaskPolicy::new(true, vec![]),
            ..Default::default()
        };
        assert!(render(Format::Json, &all).contains("sentinel-new-pw"));
    }

    /// `--show-values` reveals non-sensitive values, but a sensitive key inside a list of
    /// objects stays masked in every format, with and without `--diff`.
    #[test]
    fn sensitive_keys_inside_lists_stay_masked_in_every_format() {
        let diffs = list_diffs();
        let policy = MaskPolicy::new(
            true,
            DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
        );
        for details in [false, true] {
            for f in FORMATS {
                let opts = RenderOptions {
                    policy: policy.clone(),
                    details,
                    ..Default::default()
                };
                let out = render_diffs(&diffs, f, &opts);
                for s in LIST_SENTINELS {
                    assert!(
                        !out.contains(s),
                        "{f:?} (details {details}) leaked {s}:\n{out}"
                    );
                }
                // Where values are shown at all, the non-sensitive ones are.
                let shows_values = f == Format::Json
                    || (details && matches!(f, Format::Text))
                    || f == Format::SideBySide;
                if shows_values {
                    assert!(
                        out.contains("visible-bob"),
                        "{f:?} should show values:\n{out}"
                    );
                }
                if f == Format::Json {
                    assert!(
                        out.contains("visible-host") && out.contains("visible-id"),
                        "{out}"
                    );
                }
            }
        }
        // Without pattern masking everything is shown: the sentinels are really there.
        let all = RenderOptions {
            policy: MaskPolicy::new(true, vec![]),
            ..Default::default()
        };
        let out = render_diffs(&diffs, Format::Json, &all);
        for s in LIST_SENTINELS {
            assert!(out.contains(s), "{s} missing from unmasked output:\n{out}");
        }
    }

    #[test]
    fn snapshots() {
        let opts = RenderOptions::default();
        insta::assert_snapshot!("text", render(Format::Text, &opts));
        insta::assert_snapshot!(
            "text_no_details",
            render(
                Format::Text,
                &RenderOptions {
                    details: false,
                    ..Default::default()
                }
            )
        );
        insta::assert_snapshot!("side_by_side", render(Format::SideBySide, &opts));
        insta::assert_snapshot!("json", render(Format::Json, &opts));
        insta::assert_snapshot!("github", render(Format::Github, &opts));
        insta::assert_snapshot!("compact", render(Format::Compact, &opts));
        insta::assert_snapshot!("github_step_summary", github::step_summary(&diffs(), &opts));
        let outputs: Vec<String> = github::outputs(&diffs(), &opts)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        insta::assert_snapshot!("github_outputs", outputs.join("\n"));
    }

    #[test]
    fn dry_run_plans_show_no_invented_version_ids() {
        let mut diffs = diffs();
        for c in &mut diffs[0].plan.changes {
            c.new_version = None;
        }
        let mut out = Vec::new();
        Format::Text
            .target(&diffs[0].plan, &RenderOptions::default(), &mut out)
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("~ prod/app/db (v11111111 → new version)"),
            "{out}"
        );
        assert!(out.contains("+ prod/app/new (new)"), "{out}");
        assert!(!out.contains("none"), "{out}");
    }

    #[test]
    fn colour_only_when_asked() {
        let plain = render(Format::Text, &RenderOptions::default());
        assert!(!plain.contains('\x1b'));
        let coloured = render(
            Format::Text,
            &RenderOptions {
                color: true,
                ..Default::default()
            },
        );
        assert!(coloured.contains("\x1b[32m+"));
    }
}
