//! Policy as code: Rego policies, evaluated in-process (regorus), judge every target's plan
//! before anything is written to it. A `deny` message refuses the target (nothing is written,
//! the run fails); a `warn` message is shown beside the plan.
//!
//! ```yaml
//! policies:
//!   - path: policies/                # a .rego file or a folder of them
//!     query: data.secretsync.deny    # optional: without it, `deny` and `warn` of `data.secretsync`
//!     with_values: false
//! ```
//!
//! The input of a policy is one target's plan ([`input`]): the target (name, type, account,
//! region, tags, prefix, imports), the counts, and every change that writes (path, destination
//! name, kind, keys added/removed/changed, the key names, the value's size, the keyed
//! fingerprint). Never a value — unless the block says `with_values: true`: then that block's
//! policies (and only theirs) see each change's new value, inside this process, and any value
//! their messages quote is masked before the message goes anywhere.
//!
//! Pure: the files' text is given (the engine reads them), nothing here reads a clock.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::config::{PolicyConfig, PolicyEffect, PolicyRule, TargetBackend, TargetConfig};
use crate::diff::{ChangeKind, KeyChangeKind, TargetPlan};

/// One policy file: the path it is shown as and its text.
pub struct PolicyFile {
    pub path: String,
    pub text: String,
}

/// A problem with a policy: a Rego syntax or compile error (with the file and line), a rule the
/// config names that no file declares, or a folder without policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or the block's path) it is about.
    pub file: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub message: String,
    /// The offending source line with a caret under the column, when known.
    pub snippet: Option<String>,
    pub help: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message)?,
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message)?,
            _ => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(h) = &self.help {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl PolicyError {
    /// Reads regorus's message (`\n--> file:line:col\n … \nerror: what`) into its parts.
    fn from_rego(file: &str, e: &anyhow::Error) -> PolicyError {
        let text = format!("{e}");
        let mut out = PolicyError {
            file: file.to_string(),
            line: None,
            col: None,
            message: text.trim().to_string(),
            snippet: None,
            help: None,
        };
        let Some(start) = text.find("--> ") else {
            return out;
        };
        let rest = &text[start + 4..];
        let (location, body) = rest.split_once('\n').unwrap_or((rest, ""));
        let mut parts = location.rsplitn(3, ':');
        let col = parts.next().and_then(|c| c.trim().parse().ok());
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        if let (Some(line), Some(col), Some(f)) = (line, col, parts.next()) {
            out.file = f.to_string();
            out.line = Some(line);
            out.col = Some(col);
        }
        let lines: Vec<&str> = body.lines().collect();
        if let Some(idx) = lines.iter().rposition(|l| l.starts_with("error: ")) {
            out.message = lines[idx]["error: ".len()..].trim().to_string();
            let snippet: Vec<&str> = lines[..idx]
                .iter()
                .copied()
                .filter(|l| {
                    !l.trim_end().ends_with('|') || l.contains(|c: char| c.is_ascii_digit())
                })
                .collect();
            let snippet = snippet.join("\n");
            if !snippet.trim().is_empty() {
                out.snippet = Some(snippet);
            }
            // Anything after the error line is part of the message (rare).
            let tail = lines[idx + 1..].join(" ");
            if !tail.trim().is_empty() {
                out.message = format!("{} {}", out.message, tail.trim());
            }
        }
        out
    }
}

/// What the policies said of one target's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Messages of deny rules: the target is refused.
    pub denied: Vec<Finding>,
    /// Messages of warn rules: shown, nothing else.
    pub warnings: Vec<Finding>,
}

impl Verdict {
    pub fn is_empty(&self) -> bool {
        self.denied.is_empty() && self.warnings.is_empty()
    }
}

/// One message of one rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The policy block's path as written in the config.
    pub policy: String,
    /// The rule (`data.secretsync.deny`).
    pub rule: String,
    pub message: String,
}

/// The longest message kept (longer ones are cut), in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// The most messages kept per rule and target (the rest are counted in one more message).
pub const MAX_MESSAGES_PER_RULE: usize = 100;

struct Block {
    label: String,
    engine: regorus::Engine,
    rules: Vec<PolicyRule>,
    with_values: bool,
}

/// Every policy block of a config, compiled.
#[derive(Default)]
pub struct Policies {
    blocks: Vec<Block>,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.blocks.iter().map(|b| &b.label))
            .finish()
    }
}

impl Policies {
    /// Compiles each block's files (every problem of every block at once). A rule the config
    /// names (`query:`) must be declared by one of the block's files; a block without `query`
    /// must declare `deny` or `warn` in `data.secretsync`.
    pub fn compile(
        blocks: Vec<(&PolicyConfig, Vec<PolicyFile>)>,
    ) -> Result<Policies, Vec<PolicyError>> {
        let mut errors = Vec::new();
        let mut out = Policies::default();
        for (cfg, files) in blocks {
            if files.is_empty() {
                errors.push(PolicyError {
                    file: cfg.path.clone(),
                    line: None,
                    col: None,
                    message: "no `.rego` file here".into(),
                    snippet: None,
                    help: Some(
                        "give a .rego file or a folder holding some (`*_test.rego` files are not loaded)"
                            .into(),
                    ),
                });
                continue;
            }
            let mut engine = regorus::Engine::new();
            // Built-ins that fail make the rule fail (and so deny), not quietly undefined.
            engine.set_strict_builtin_errors(true);
            let mut packages: Vec<(String, String)> = Vec::new();
            let mut ok = true;
            for f in &files {
                match engine.add_policy(f.path.clone(), f.text.clone()) {
                    Ok(pkg) => packages.push((f.path.clone(), pkg)),
                    Err(e) => {
                        ok = false;
                        errors.push(PolicyError::from_rego(&f.path, &e));
                    }
                }
            }
            if !ok {
                continue;
            }
            let declared = |query: &str| {
                packages.iter().any(|(file, pkg)| {
                    query
                        .strip_prefix(pkg.as_str())
                        .and_then(|r| r.strip_prefix('.'))
                        .is_some_and(|rule| {
                            engine
                                .has_declared_rule_rooted_at(file, rule)
                                .unwrap_or(false)
                        })
                })
            };
            let mut rules = Vec::new();
            for rule in &cfg.rules {
                if declared(&rule.query) {
                    rules.push(rule.clone());
                } else if rule.explicit {
                    errors.push(PolicyError {
                        file: cfg.path.clone(),
                        line: None,
                        col: None,
                        message: format!("no file here declares the rule `{}`", rule.query),
                        snippet: None,
                        help: Some(format!(
                            "packages here: {}; fix `query` (line {}) or the package name",
                            packages
                                .iter()
                                .map(|(_, p)| p.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            cfg.line
                        )),
                    });
                }
            }
            if rules.is_empty() && cfg.rules.iter().all(|r| !r.explicit) {
                errors.push(PolicyError {
                    file: cfg.path.clone(),
                    line: None,
                    col: None,
                    message: format!(
                        "no rule `deny` or `warn` in package `{}`",
                        crate::config::DEFAULT_POLICY_PACKAGE
                    ),
                    snippet: None,
                    help: Some(format!(
                        "write `package secretsync` with `deny contains msg if {{ … }}`, or set `query:` (line {}) to your rule",
                        cfg.line
                    )),
                });
                continue;
            }
            out.blocks.push(Block {
                label: cfg.path.clone(),
                engine,
                rules,
                with_values: cfg.with_values,
            });
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Evaluates every block on `plan`. A rule that cannot be evaluated (a built-in failing, a
    /// result that is not messages) denies, naming the rule: a policy that does not run never
    /// lets a plan through.
    pub fn judge(&self, target: &TargetConfig, plan: &TargetPlan) -> Verdict {
        let mut verdict = Verdict::default();
        if self.blocks.is_empty() {
            return verdict;
        }
        let plain = input(target, plan, false);
        let mut with_values: Option<(Value, Vec<String>)> = None;
        for block in &self.blocks {
            let (doc, secrets) = if block.with_values {
                let (doc, secrets) = with_values
                    .get_or_insert_with(|| (input(target, plan, true), value_strings(plan)));
                (&*doc, secrets.as_slice())
            } else {
                (&plain, &[][..])
            };
            let mut engine = block.engine.clone();
            engine.set_input(regorus::Value::from(doc.clone()));
            for rule in &block.rules {
                let messages = match engine.eval_rule(rule.query.clone()) {
                    Ok(v) => messages(&v),
                    Err(e) => Err(format!("{}", PolicyError::from_rego(&block.label, &e))),
                };
                let (effect, messages) = match messages {
                    Ok(m) => (rule.effect, m),
                    Err(why) => (
                        PolicyEffect::Deny,
                        vec![format!(
                            "the rule could not be evaluated, so the plan is denied: {why}"
                        )],
                    ),
                };
                let list = match effect {
                    PolicyEffect::Deny => &mut verdict.denied,
                    PolicyEffect::Warn => &mut verdict.warnings,
                };
                let total = messages.len();
                for m in messages.into_iter().take(MAX_MESSAGES_PER_RULE) {
                    list.push(Finding {
                        policy: block.label.clone(),
                        rule: rule.query.clone(),
                        message: clean(&m, secrets),
                    });
                }
                if total > MAX_MESSAGES_PER_RULE {
                    list.push(Finding {
                        policy: block.label.clone(),
                        rule: rule.query.clone(),
                        message: format!("… and {} more", total - MAX_MESSAGES_PER_RULE),
                    });
                }
            }
        }
        verdict
    }

    /// Judges `plan` and records the verdict in it: denials refuse it (unless it is refused
    /// already, which stays the reason shown).
    pub fn apply(&self, target: &TargetConfig, plan: &mut TargetPlan) {
        let verdict = self.judge(target, plan);
        if let Some(first) = verdict.denied.first()
            && plan.refused.is_none()
        {
            // The first reason; every one is listed beside the plan.
            let more = match verdict.denied.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            plan.refused = Some(format!(
                "denied by policy, so nothing is written to target `{}`: {}{more}",
                plan.target, first.message
            ));
        }
        plan.policy = verdict;
    }
}

/// A rule's value as messages: a set or array of strings (or of objects with a `msg`), a
/// string, or a boolean (`true`: one message naming the rule). Undefined, `false`, an empty
/// set: none.
fn messages(v: &regorus::Value) -> Result<Vec<String>, String> {
    if *v == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json = serde_json::to_value(v).map_err(|e| format!("its result cannot be read: {e}"))?;
    let one = |item: &Value| -> Result<String, String> {
        match item {
            Value::String(s) => Ok(s.clone()),
            Value::Object(o) => match o.get("msg").or_else(|| o.get("message")) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err("an object in its result has no `msg` string".into()),
            },
            other => Ok(other.to_string()),
        }
    };
    match &json {
        Value::Null | Value::Bool(false) => Ok(Vec::new()),
        Value::Bool(true) => Ok(vec!["the rule holds".into()]),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Object(_) => one(&json).map(|m| vec![m]),
        Value::Number(_) => Err(format!(
            "its result is a number ({json}), not messages; make it a set of strings"
        )),
    }
}

/// A message as shown: at most [`MAX_MESSAGE_CHARS`], with any value of the plan it quotes
/// masked (a policy that sees values may print one).
fn clean(message: &str, secrets: &[String]) -> String {
    let mut m = message.to_string();
    for s in secrets {
        if m.contains(s.as_str()) {
            m = m.replace(s.as_str(), crate::mask::MASK);
        }
    }
    if m.chars().count() > MAX_MESSAGE_CHARS {
        m = m.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    m
}

/// Every scalar of every new value in the plan, as text (longest first, so a value holding
/// another is masked whole), for [`clean`]. Short ones (under 4 characters) would mask
/// ordinary words and say little: they are left.
fn value_strings(plan: &TargetPlan) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Bool(_) | Value::Null => {}
        }
    }
    let mut out = Vec::new();
    for c in &plan.changes {
        if let Some(v) = &c.new_value {
            for x in v.expose().values() {
                walk(x, &mut out);
            }
        }
    }
    out.retain(|s| s.chars().count() >= 4);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// The document a policy sees as `input` for one target's plan (see the module docs and
/// `docs/policies.md`). Values only with `with_values`.
pub fn input(target: &TargetConfig, plan: &TargetPlan, with_values: bool) -> Value {
    let (account, region, tags) = facts(&target.backend);
    let counts = plan.counts();
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .filter(|c| c.writes())
        .map(|c| {
            let keys = |kind: KeyChangeKind| -> Vec<&str> {
                c.keys
                    .iter()
                    .filter(|k| k.kind == kind)
                    .map(|k| k.key.as_str())
                    .collect()
            };
            let mut key_names = Vec::new();
            let mut size = None;
            if let Some(v) = &c.new_value {
                leaf_keys("", v.expose(), &mut key_names);
                size = Some(serialized_len(v.expose()));
            }
            let mut doc = json!({
                "path": c.path,
                "name": c.name,
                "kind": match c.kind {
                    ChangeKind::Added => "added",
                    ChangeKind::Modified => "modified",
                    ChangeKind::Deleted => "deleted",
                    // Only settings or marks change.
                    ChangeKind::Unchanged | ChangeKind::Skipped => "settings",
                },
                "keys": {
                    "added": keys(KeyChangeKind::Added),
                    "removed": keys(KeyChangeKind::Removed),
                    "changed": keys(KeyChangeKind::Changed),
                },
                "key_names": key_names,
                "size": size,
                "fingerprint": c.fingerprint,
                "adopt": c.adopt,
                "restore": c.restore,
                "settings": c.settings.iter().map(|s| s.setting.as_str()).collect::<Vec<_>>(),
            });
            if with_values && let (Some(v), Value::Object(o)) = (&c.new_value, &mut doc) {
                o.insert("value".into(), Value::Object(v.expose().clone()));
            }
            doc
        })
        .collect();
    json!({
        "target": {
            "name": target.name,
            "type": target.backend.type_name(),
            "account": account,
            "region": region,
            "tags": tags,
            "secret_prefix": target.policy.secret_prefix,
            "imports": target.imports,
            "delete_orphans": target.policy.delete_orphans,
        },
        "counts": {
            "added": counts.added,
            "modified": counts.modified,
            "deleted": counts.deleted,
            "unchanged": counts.unchanged,
            "skipped": counts.skipped,
        },
        "orphans_kept": plan.orphans_kept.len(),
        "changes": changes,
    })
}

/// The target's account (from its role), region and configured tags, where its kind has them.
pub(crate) fn facts(
    backend: &TargetBackend,
) -> (Option<String>, Option<String>, Map<String, Value>) {
    let account = |role: &Option<String>| {
        role.as_deref()
            .and_then(|r| r.split(':').nth(4))
            .map(str::to_string)
    };
    match backend {
        TargetBackend::AwsSecretsManager(a) => (
            account(&a.role_arn),
            Some(a.region.clone()),
            a.tags
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
        TargetBackend::AwsSsm(s) => (account(&s.role_arn), Some(s.region.clone()), Map::new()),
        TargetBackend::AzureKeyVault(a) => (
            None,
            None,
            a.tags
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
        // The project stands where an AWS account does; regional secrets have a region.
        TargetBackend::GcpSecretManager(g) => {
            (Some(g.project.clone()), g.location.clone(), Map::new())
        }
        TargetBackend::VaultKv2(_) | TargetBackend::Webhook(_) | TargetBackend::Plugin(_) => {
            (None, None, Map::new())
        }
    }
}

/// Leaf key paths of a value, nested keys joined with `.` (as in the plan's key changes).
fn leaf_keys(prefix: &str, m: &Map<String, Value>, out: &mut Vec<String>) {
    for (k, v) in m {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if !inner.is_empty() => leaf_keys(&key, inner, out),
            _ => out.push(key),
        }
    }
}

/// The length of the value as JSON, counted without making a copy of it.
fn serialized_len(m: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, m);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PolicyConfig, PolicyRule};
    use crate::diff::{KeyChange, SecretChange};
    use crate::merge::secret;

    fn block(query: Option<&str>, with_values: bool) -> PolicyConfig {
        let rules = match query {
            Some(q) => vec![PolicyRule {
                query: q.into(),
                effect: if q.ends_with(".warn") {
                    PolicyEffect::Warn
                } else {
                    PolicyEffect::Deny
                },
                explicit: true,
            }],
            None => vec![
                PolicyRule {
                    query: "data.secretsync.deny".into(),
                    effect: PolicyEffect::Deny,
                    explicit: false,
                },
                PolicyRule {
                    query: "data.secretsync.warn".into(),
                    effect: PolicyEffect::Warn,
                    explicit: false,
                },
            ],
        };
        PolicyConfig {
            path: "policies/".into(),
            rules,
            with_values,
            line: 3,
        }
    }

    fn file(text: &str) -> PolicyFile {
        PolicyFile {
            path: "policies/p.rego".into(),
            text: text.into(),
        }
    }

    fn target() -> TargetConfig {
        let yaml = r#"
vault_sources:
  - mount: secret/base/
targets:
  - name: staging
    type: aws_secretsmanager
    region: eu-west-1
    role_arn: arn:aws:iam::111122223333:role/sync
    tags: { team: payments }
    imports: [base]
"#;
        let loaded = crate::config::load(yaml, &|_| None);
        loaded.config.expect("config").targets.remove(0)
    }

    fn plan() -> TargetPlan {
        let mut add = SecretChange::new("app/db", "app/db", ChangeKind::Added);
        add.new_value = Some(secret(
            json!({"password": "hunter2-sentinel-value", "user": "app"}),
        ));
        add.keys = vec![
            KeyChange {
                key: "password".into(),
                kind: KeyChangeKind::Added,
            },
            KeyChange {
                key: "user".into(),
                kind: KeyChangeKind::Added,
            },
        ];
        add.fingerprint = Some("fp1".into());
        let del = SecretChange::new("old", "old", ChangeKind::Deleted);
        let same = SecretChange::new("same", "same", ChangeKind::Unchanged);
        TargetPlan {
            target: "staging".into(),
            changes: vec![add, del, same],
            orphans_kept: Vec::new(),
            refused: None,
            deletions_held: None,
            policy: Default::default(),
        }
    }

    fn check(cfg: PolicyConfig, text: &str) -> Result<Verdict, Vec<PolicyError>> {
        let p = Policies::compile(vec![(&cfg, vec![file(text)])])?;
        Ok(p.judge(&target(), &plan()))
    }

    fn messages(v: &[Finding]) -> Vec<&str> {
        v.iter().map(|f| f.message.as_str()).collect()
    }

    #[test]
    fn deny_and_warn_rules_of_the_default_package() {
        let v = check(
            block(None, false),
            r#"package secretsync
deny contains msg if {
    some c in input.changes
    c.kind == "deleted"
    msg := sprintf("%s would be deleted", [c.name])
}
warn contains msg if {
    not input.target.tags.owner
    msg := "no owner tag"
}
"#,
        )
        .unwrap();
        assert_eq!(messages(&v.denied), ["old would be deleted"]);
        assert_eq!(messages(&v.warnings), ["no owner tag"]);
        assert_eq!(v.denied[0].rule, "data.secretsync.deny");
    }

    #[test]
    fn the_input_has_no_value_without_with_values() {
        let doc = input(&target(), &plan(), false);
        let text = doc.to_string();
        assert!(!text.contains("hunter2-sentinel-value"), "{text}");
        assert_eq!(doc["target"]["account"], "111122223333");
        assert_eq!(doc["target"]["region"], "eu-west-1");
        assert_eq!(doc["target"]["tags"]["team"], "payments");
        // Only changes that write.
        assert_eq!(doc["changes"].as_array().unwrap().len(), 2);
        assert_eq!(doc["changes"][0]["key_names"], json!(["password", "user"]));
        assert_eq!(
            doc["changes"][0]["keys"]["added"],
            json!(["password", "user"])
        );
        assert_eq!(
            doc["changes"][0]["size"],
            json!(r#"{"password":"hunter2-sentinel-value","user":"app"}"#.len())
        );
        assert_eq!(doc["changes"][0]["fingerprint"], "fp1");
        assert_eq!(doc["counts"]["unchanged"], 1);
        let with = input(&target(), &plan(), true);
        assert_eq!(
            with["changes"][0]["value"]["password"],
            "hunter2-sentinel-value"
        );
    }

    #[test]
    fn with_values_sees_values_and_quoted_values_are_masked() {
        let text = r#"package secretsync
deny contains msg if {
    some c in input.changes
    count(c.value.password) < 32
    msg := sprintf("%s: password %s is too short", [c.path, c.value.password])
}
"#;
        let v = check(block(None, true), text).unwrap();
        assert_eq!(
            messages(&v.denied),
            [format!(
                "app/db: password {} is too short",
                crate::mask::MASK
            )]
        );
        // The same policy without values: the rule finds no value and says nothing.
        let v = check(block(None, false), text).unwrap();
        assert!(v.denied.is_empty(), "{v:?}");
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let errs = check(
            block(None, false),
            "package secretsync\n\ndeny contains msg if {\n    msg := \n}\n",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].file, "policies/p.rego");
        // The assignment left without a value, where its value should start.
        assert_eq!((errs[0].line, errs[0].col), (Some(4), Some(9)), "{errs:?}");
        assert!(
            errs[0].to_string().starts_with("policies/p.rego:4:9: "),
            "{}",
            errs[0]
        );
        assert!(
            errs[0].snippet.as_deref().unwrap().contains("msg :="),
            "{errs:?}"
        );
    }

    #[test]
    fn a_query_no_file_declares_is_an_error() {
        let errs = check(
            block(Some("data.secretsync.denny"), false),
            "package secretsync\ndeny contains \"x\" if { true }\n",
        )
        .unwrap_err();
        assert!(
            errs[0].message.contains("data.secretsync.denny"),
            "{errs:?}"
        );
        let errs = check(
            block(None, false),
            "package other\ndeny contains \"x\" if { true }\n",
        )
        .unwrap_err();
        assert!(
            errs[0].message.contains("no rule `deny` or `warn`"),
            "{errs:?}"
        );
    }

    #[test]
    fn an_explicit_query_in_another_package() {
        let v = check(
            block(Some("data.acme.rules.forbidden"), false),
            "package acme.rules\nforbidden contains \"no\" if { input.counts.added > 0 }\n",
        )
        .unwrap();
        assert_eq!(messages(&v.denied), ["no"]);
    }

    #[test]
    fn a_rule_that_fails_denies() {
        // A message that is not a string is shown as JSON.
        let v = check(
            block(None, false),
            "package secretsync\ndeny contains msg if {\n  msg := 1\n}\n",
        )
        .unwrap();
        assert_eq!(messages(&v.denied), ["1"]);
        // A result that is not messages at all denies.
        let v = check(
            block(Some("data.secretsync.n"), false),
            "package secretsync\nn := 5\n",
        )
        .unwrap();
        assert!(
            v.denied[0].message.contains("could not be evaluated"),
            "{v:?}"
        );
    }

    #[test]
    fn apply_refuses_a_denied_plan() {
        let cfg = block(None, false);
        let p = Policies::compile(vec![(
            &cfg,
            vec![file("package secretsync\ndeny contains \"no deletions\" if { input.counts.deleted > 0 }\n")],
        )])
        .unwrap();
        let mut plan = plan();
        p.apply(&target(), &mut plan);
        let refused = plan.refused.clone().unwrap();
        assert!(
            refused.contains("denied by policy") && refused.contains("no deletions"),
            "{refused}"
        );
        assert_eq!(plan.policy.denied.len(), 1);
    }
}
