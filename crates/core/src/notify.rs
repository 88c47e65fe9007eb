//! Notifications' pure half: a run's outcome ([`Notice`]), which `notifications:` blocks it
//! triggers, the bodies (SecretSync JSON, Slack) and their signature. The engine sends them
//! (`secretsync_engine::notify`; docs/notifications.md).
//!
//! A body holds names, counts, failure kinds and reasons — never a value, a fingerprint or a
//! token. Reasons are the run's own error messages, which hold none by design; they are
//! scrubbed again here ([`scrub`]) before they leave the process, in case a backend's message
//! quoted something it should not have.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::config::{NotificationConfig, NotifyFormat, NotifyTrigger};

/// The JSON body's schema version.
pub const SCHEMA: u64 = 1;
/// A reason is cut to this many characters.
pub const MAX_REASON: usize = 300;
/// Failed targets listed one by one in a Slack message (the rest are counted).
pub const SLACK_MAX_LISTED: usize = 20;

/// What a run did, as a notification tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub run_id: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// `pipeline`, `pipeline --merge-only`, …
    pub command: String,
    pub dry_run: bool,
    pub targets: Vec<TargetNotice>,
    /// Vault paths the read could not complete (the run fails on them).
    pub incomplete: usize,
    /// Why the run as a whole failed (before or around its targets), if it did.
    pub error: Option<String>,
}

/// One target's part of a [`Notice`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetNotice {
    pub name: String,
    /// `applied`, `planned`, `unchanged`, `failed`, `not_started`.
    pub status: String,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Secrets whose tags or settings only were changed.
    pub retagged: usize,
    /// Changes the plan had that write (applied or, in a dry run, not).
    pub planned: usize,
    /// The failure kind (`denied`, `auth`, `throttled`, …).
    pub failure_kind: Option<String>,
    pub reason: Option<String>,
}

impl TargetNotice {
    fn failed(&self) -> bool {
        self.status == "failed"
    }
    fn changed(&self) -> usize {
        self.created + self.updated + self.deleted + self.retagged
    }
}

impl Notice {
    /// The run failed: what makes its exit code 1.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.incomplete > 0 || self.targets.iter().any(|t| t.failed())
    }

    /// What the run did, of the things a notification can be sent for.
    pub fn triggers(&self) -> Vec<NotifyTrigger> {
        let mut out = Vec::new();
        if self.failed() {
            out.push(NotifyTrigger::Failure);
        }
        if !self.dry_run && self.targets.iter().any(|t| t.changed() > 0) {
            out.push(NotifyTrigger::Changes);
        }
        if self.dry_run && self.targets.iter().any(|t| t.planned > 0) {
            out.push(NotifyTrigger::Drift);
        }
        out
    }

    /// The triggers of `cfg` this run matches; empty: `cfg` is not sent.
    pub fn matches(&self, cfg: &NotificationConfig) -> Vec<NotifyTrigger> {
        self.triggers()
            .into_iter()
            .filter(|t| cfg.on.contains(t))
            .collect()
    }

    fn totals(&self) -> (usize, usize, usize, usize, usize) {
        let sum = |f: fn(&TargetNotice) -> usize| self.targets.iter().map(f).sum::<usize>();
        (
            sum(|t| t.created),
            sum(|t| t.updated),
            sum(|t| t.deleted),
            sum(|t| t.retagged),
            sum(|t| t.planned),
        )
    }

    fn failed_targets(&self) -> impl Iterator<Item = &TargetNotice> {
        self.targets.iter().filter(|t| t.failed())
    }

    /// One line, no links: what happened, in numbers.
    pub fn summary(&self) -> String {
        let (created, updated, deleted, retagged, planned) = self.totals();
        let n = self.targets.len();
        let failed = self.failed_targets().count();
        let mut parts = vec![format!(
            "SecretSync {}{} {}",
            self.command,
            if self.dry_run { " (dry run)" } else { "" },
            if self.failed() { "failed" } else { "succeeded" }
        )];
        if n > 0 {
            parts.push(format!("{n} target{}", plural(n)));
        }
        if failed > 0 {
            parts.push(format!("{failed} failed"));
        }
        if self.dry_run {
            parts.push(format!("{planned} change{} planned", plural(planned)));
        } else {
            let mut changed = format!("{created} created, {updated} updated, {deleted} deleted");
            if retagged > 0 {
                changed.push_str(&format!(", {retagged} retagged"));
            }
            parts.push(changed);
        }
        if self.incomplete > 0 {
            parts.push(format!(
                "{} Vault path{} unread",
                self.incomplete,
                plural(self.incomplete)
            ));
        }
        let mut s = parts.join(": ");
        // "X failed: 3 targets: 1 failed: …" reads badly; join the counts with commas.
        if let Some((head, rest)) = s.split_once(": ") {
            s = format!("{head}: {}", rest.replace(": ", ", "));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(". {}", scrub(e)));
        }
        s
    }

    /// The SecretSync JSON body.
    pub fn json_body(&self, triggers: &[NotifyTrigger]) -> Value {
        let (created, updated, deleted, retagged, planned) = self.totals();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                json!({
                    "target": t.name,
                    "status": t.status,
                    "created": t.created,
                    "updated": t.updated,
                    "deleted": t.deleted,
                    "retagged": t.retagged,
                    "planned": t.planned,
                    "failure_kind": t.failure_kind,
                    "reason": t.reason.as_deref().map(scrub),
                })
            })
            .collect();
        let failed: Vec<Value> = self
            .failed_targets()
            .map(|t| {
                json!({
                    "target": t.name,
                    "failure_kind": t.failure_kind,
                    "reason": t.reason.as_deref().map(scrub),
                })
            })
            .collect();
        json!({
            "schema": SCHEMA,
            "event": "run_finished",
            "run_id": self.run_id,
            "time": self.time,
            "command": self.command,
            "dry_run": self.dry_run,
            "result": if self.failed() { "failure" } else { "success" },
            "triggers": triggers.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "summary": self.summary(),
            "totals": {
                "targets": self.targets.len(),
                "failed": failed.len(),
                "created": created,
                "updated": updated,
                "deleted": deleted,
                "retagged": retagged,
                "planned": planned,
                "incomplete_paths": self.incomplete,
            },
            "targets": targets,
            "failed": failed,
            "error": self.error.as_deref().map(scrub),
        })
    }

    /// A Slack incoming-webhook message: `text` (the summary, for notifications and clients
    /// without blocks) and `blocks`. Names and reasons are escaped and reasons are set as
    /// code, so nothing in them becomes a link or a mention.
    pub fn slack_body(&self) -> Value {
        let title = format!(
            "SecretSync {}{}: {}",
            self.command,
            if self.dry_run { " (dry run)" } else { "" },
            if self.failed() {
                "failed"
            } else if self.triggers().contains(&NotifyTrigger::Drift) {
                "drift found"
            } else {
                "succeeded"
            }
        );
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": title}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&self.summary())}}),
        ];
        let failed: Vec<&TargetNotice> = self.failed_targets().collect();
        if !failed.is_empty() {
            let mut lines = vec!["*Failed targets*".to_string()];
            for t in failed.iter().take(SLACK_MAX_LISTED) {
                let kind = t.failure_kind.as_deref().unwrap_or("error");
                let reason = t.reason.as_deref().map(scrub).unwrap_or_default();
                lines.push(format!(
                    "• *{}* ({}): {}",
                    slack_escape(&t.name),
                    slack_escape(kind),
                    slack_code(&reason)
                ));
            }
            if failed.len() > SLACK_MAX_LISTED {
                lines.push(format!("…and {} more", failed.len() - SLACK_MAX_LISTED));
            }
            blocks.push(
                json!({"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}}),
            );
        }
        let changed: Vec<String> = self
            .targets
            .iter()
            .filter(|t| !t.failed() && (t.changed() > 0 || (self.dry_run && t.planned > 0)))
            .take(SLACK_MAX_LISTED)
            .map(|t| {
                if self.dry_run {
                    format!("• *{}*: {} planned", slack_escape(&t.name), t.planned)
                } else {
                    format!(
                        "• *{}*: {} created, {} updated, {} deleted",
                        slack_escape(&t.name),
                        t.created,
                        t.updated,
                        t.deleted
                    )
                }
            })
            .collect();
        if !changed.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", if self.dry_run { "Out of line" } else { "Changed" }, changed.join("\n"))}}));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("run {} · {}", slack_escape(&self.run_id), slack_escape(&self.time))}]}));
        json!({"text": slack_escape(&self.summary()), "blocks": blocks})
    }

    /// The body `cfg` is sent, as bytes (exactly what is signed).
    pub fn body(&self, cfg: &NotificationConfig, triggers: &[NotifyTrigger]) -> Vec<u8> {
        let v = match cfg.format {
            NotifyFormat::Json => self.json_body(triggers),
            NotifyFormat::Slack => self.slack_body(),
        };
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

/// `X-SecretSync-Signature`: `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Slack's three control characters (`&`, `<`, `>`), which would otherwise make links and
/// mentions.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Inline code in Slack: no links, no formatting (backticks inside become quotes).
fn slack_code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    format!("`{}`", slack_escape(&s.replace('`', "'")))
}

/// A reason made safe to send: cut to [`MAX_REASON`] characters, and every word that looks
/// like a credential or a fingerprint replaced by `[redacted]`: an AWS access key id, or a
/// part of 32 or more characters mixing letters and digits with few `-`/`_` (a token, a key,
/// a hex fingerprint) — UUIDs (request and run ids) excepted.
pub fn scrub(s: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || "+/=._-".contains(c);
    let mut out = String::with_capacity(s.len().min(MAX_REASON + 8));
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if looks_secret(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in s.chars() {
        if is_word(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    if out.chars().count() > MAX_REASON {
        out = out.chars().take(MAX_REASON).collect::<String>() + "…";
    }
    out
}

fn looks_secret(w: &str) -> bool {
    let core = w.trim_matches(|c: char| ".-_".contains(c));
    let access_key = core.len() == 20
        && (core.starts_with("AKIA") || core.starts_with("ASIA"))
        && core
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if access_key {
        return true;
    }
    if is_uuid(core) {
        return false;
    }
    // Each part of a path or dotted name on its own (`hvs.<token>`, `prefix/<key>`): a long
    // mix of letters and digits with few separators is random, a name has words.
    core.split(['/', '.', ':']).any(|p| {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let letters = p.chars().filter(char::is_ascii_alphabetic).count();
        let separators = p.chars().filter(|c| *c == '-' || *c == '_').count();
        p.len() >= 32 && digits >= 3 && letters >= 3 && separators * 8 <= p.len()
    })
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sensitive;
    use std::time::Duration;

    fn cfg(format: NotifyFormat, on: &[NotifyTrigger]) -> NotificationConfig {
        NotificationConfig {
            url: Sensitive::new("http://127.0.0.1:1/hook"),
            format,
            on: on.to_vec(),
            secret: None,
            timeout: Duration::from_secs(1),
            max_attempts: 1,
        }
    }

    fn target(name: &str, status: &str) -> TargetNotice {
        TargetNotice {
            name: name.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn notice(dry_run: bool, targets: Vec<TargetNotice>) -> Notice {
        Notice {
            run_id: "0b6f0c1e-8f8a-4a55-9a57-1f9f3c1d2e3f".into(),
            time: "2026-12-02T10:00:00Z".into(),
            command: "pipeline".into(),
            dry_run,
            targets,
            incomplete: 0,
            error: None,
        }
    }

    #[test]
    fn triggers_follow_what_the_run_did() {
        use NotifyTrigger::*;
        let mut applied = target("prod", "applied");
        applied.updated = 2;
        applied.planned = 2;
        assert_eq!(notice(false, vec![applied.clone()]).triggers(), [Changes]);
        assert_eq!(notice(true, vec![applied.clone()]).triggers(), [Drift]);
        let quiet = target("prod", "unchanged");
        assert!(notice(false, vec![quiet.clone()]).triggers().is_empty());
        let mut failed = target("staging", "failed");
        failed.failure_kind = Some("denied".into());
        let n = notice(false, vec![applied, failed]);
        assert_eq!(n.triggers(), [Failure, Changes]);
        assert_eq!(n.matches(&cfg(NotifyFormat::Json, &[Failure])), [Failure]);
        assert!(
            notice(false, vec![quiet])
                .matches(&cfg(NotifyFormat::Json, &[Failure, Drift]))
                .is_empty()
        );
        let mut broken = notice(false, vec![]);
        broken.error = Some("Vault is unreachable".into());
        assert_eq!(broken.triggers(), [Failure]);
    }

    #[test]
    fn bodies_count_and_name_the_failures() {
        let mut applied = target("prod", "applied");
        applied.created = 1;
        applied.updated = 2;
        let mut failed = target("staging", "failed");
        failed.failure_kind = Some("denied".into());
        failed.reason = Some("policy secretsync.deny: <b> & `x`".into());
        let n = notice(false, vec![applied, failed]);
        assert_eq!(
            n.summary(),
            "SecretSync pipeline failed: 2 targets, 1 failed, 1 created, 2 updated, 0 deleted"
        );
        let j = n.json_body(&[NotifyTrigger::Failure]);
        assert_eq!(j["result"], "failure");
        assert_eq!(j["totals"]["created"], 1);
        assert_eq!(j["failed"][0]["target"], "staging");
        assert_eq!(j["failed"][0]["failure_kind"], "denied");
        assert_eq!(j["triggers"], json!(["failure"]));
        let s = n.slack_body();
        let text = s["blocks"][2]["text"]["text"].as_str().unwrap();
        assert_eq!(
            text,
            "*Failed targets*\n• *staging* (denied): `policy secretsync.deny: &lt;b&gt; &amp; 'x'`"
        );
        assert!(
            s["text"]
                .as_str()
                .unwrap()
                .starts_with("SecretSync pipeline failed")
        );
    }

    #[test]
    fn reasons_lose_anything_that_looks_like_a_credential() {
        let fp = "3f".repeat(32);
        let s = scrub(&format!(
            "AccessDenied for AKIAIOSFODNN7EXAMPLE (token hvs.CAESIJ2kR9wX8yQ3mN4pL5oK6jH7gF8dS9aZ0xC; fingerprint {fp}), request id 0b6f0c1e-8f8a-4a55-9a57-1f9f3c1d2e3f at arn:aws:iam::123456789012:role/secretsync-deployer"
        ));
        assert_eq!(
            s,
            "AccessDenied for [redacted] (token [redacted]; fingerprint [redacted]), request id 0b6f0c1e-8f8a-4a55-9a57-1f9f3c1d2e3f at arn:aws:iam::123456789012:role/secretsync-deployer"
        );
        // Ordinary long names stay.
        assert_eq!(
            scrub("prod/app/payments-service-database-credentials"),
            "prod/app/payments-service-database-credentials"
        );
        assert!(scrub(&"x".repeat(1000)).chars().count() <= MAX_REASON + 1);
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
