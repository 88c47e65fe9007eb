//! The `webhook` target kind: for systems with no secret store of their own. Each changed
//! secret is POSTed as JSON (`{name, path, version, value}`) to `url`, signed with
//! `X-SecretSync-Signature: sha256=HMAC(body)` under `secret`; orphans are POSTed as
//! `{name, deleted: true}` when `delete_orphans` is set.
//!
//! ```yaml
//! merge_store: { type: s3, bucket: my-merge-store }   # required: what was delivered is kept there
//! targets:
//!   - name: hook
//!     type: webhook
//!     url: https://receiver.example.com/secrets   # https unless loopback
//!     secret: ${HOOK_SECRET}                       # the HMAC-SHA256 key of the signature
//!     timeout: 10s                                 # per attempt (default 10s)
//!     max_attempts: 4                              # per delivery, the first included
//!     writes_per_second: 5                         # the target's rate (default: unpaced)
//!     batch_size: 50                               # changes per POST (default 1: one each)
//!     imports: [base]
//! ```
//!
//! A webhook has no readable state: what was last delivered (keyed fingerprints, never
//! values) is kept in the merge store, which this kind requires (an S3 one: the target's
//! lease lives in its bucket). The URL is never repeated in a diagnostic or a log past its
//! host: its path may be a credential.

use std::time::Duration;

use crate::config::validate::{Validator, at, check_endpoint};
use crate::config::{S, Sensitive};
use crate::diag::{Diagnostic, Pos};

/// Longest name (prefix + relative path) accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest value delivered, as canonical JSON in bytes: a body is one value, and receivers
/// commonly refuse bodies past a few MiB.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// `timeout` unless set: per attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `max_attempts` unless set: the first and three retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// The most `max_attempts` may be.
pub const MAX_ATTEMPTS: u32 = 10;
/// The most `batch_size` may be.
pub const MAX_BATCH_SIZE: u32 = 500;
/// A batch is closed before its body would pass this many bytes (a single change larger than
/// this still goes alone): receivers commonly refuse bodies past a few MiB.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

crate::raw_target! {
    /// The YAML shape of a `webhook` target.
    Raw {
        url: S<String>,
        secret: S<String>,
        timeout: S<String>,
        max_attempts: S<u64>,
        batch_size: S<u64>,
    }
}

/// A validated `webhook` target.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// Where each change is POSTed. Its path may be a credential: [`Sensitive`], shown as
    /// [`WebhookSettings::describe`] only.
    pub url: Sensitive,
    /// The HMAC-SHA256 key of `X-SecretSync-Signature`.
    pub secret: Sensitive,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// Changes per POST: 1 (the default) sends each change alone as `{name, path, version,
    /// value}`; more sends `{"secrets": [ … ]}` bodies of up to this many changes (and at most
    /// [`MAX_BATCH_BYTES`]).
    pub batch_size: u32,
}

impl WebhookSettings {
    /// The URL as logs and messages may show it: scheme and host, no path.
    pub fn describe(&self) -> String {
        host_only(self.url.expose())
    }
}

/// `scheme://host[:port]` of a URL, without user info, path or query.
pub fn host_only(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// Validates the backend's own keys (the common ones are done by the caller). `store`: the
/// kind of the config's merge store (`s3`, `vault`), if it has one.
pub(crate) fn lower(
    v: &mut Validator,
    mut r: Raw,
    pos: Option<Pos>,
    path: &str,
    store: Option<&str>,
    adopt: &S<bool>,
) -> WebhookSettings {
    if let Some(a) = adopt
        && a.value
    {
        v.push(
            Diagnostic::warning(at(a), a.key.clone(), "`adopt` does nothing on a `webhook` target: a receiver holds nothing SecretSync did not send, so there is nothing to take over")
                .with_help("remove `adopt`"),
        );
    }
    let type_pos = r.kind.as_ref().and_then(at).or(pos);
    let name = r.name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
    match store {
        None => v.push(
            Diagnostic::error(
                type_pos,
                format!("{path}.type"),
                format!(
                    "target `{name}` is a `webhook` target, which needs a `merge_store`: a webhook has no readable state, so what was delivered is recorded in the merge store"
                ),
            )
            .with_help("add a `merge_store: { type: s3, bucket: … }` block (see docs/targets/webhook.md)"),
        ),
        Some("s3") => {}
        Some(other) => v.push(
            Diagnostic::error(
                type_pos,
                format!("{path}.type"),
                format!(
                    "target `{name}` is a `webhook` target, which needs an S3 merge store (its lease lives in the store's bucket); this config's is `type: {other}`"
                ),
            )
            .with_help("use `merge_store: { type: s3, bucket: … }`, or another target kind"),
        ),
    }
    let url = match r.url.take() {
        None => {
            v.missing(
                pos,
                &format!("{path}.url"),
                "where each change is POSTed, e.g. `https://receiver.example.com/secrets`",
            );
            Sensitive::new("")
        }
        Some(u) => {
            // Never the URL itself: its path may be a credential.
            if let Err(e) = check_endpoint(&u.value) {
                let why = if e.contains("plain http") {
                    "the URL uses plain http to a non-loopback host; secret values would cross the network unencrypted"
                } else if e.contains("no host") {
                    "the URL has no host"
                } else {
                    "the URL is not an https:// URL"
                };
                v.error(
                    &u,
                    why,
                    "use https:// (plain http:// is only accepted for loopback addresses)",
                );
            }
            Sensitive::new(u.value.clone())
        }
    };
    let secret = match r.secret.take() {
        None => {
            v.missing(
                pos,
                &format!("{path}.secret"),
                "the HMAC key the receiver checks `X-SecretSync-Signature` with, e.g. `${HOOK_SECRET}`; deliveries are never unsigned",
            );
            Sensitive::new("")
        }
        Some(s) if s.value.is_empty() => {
            v.error(
                &s,
                "`secret` is empty",
                "give the HMAC key (e.g. `${HOOK_SECRET}`); deliveries are never unsigned",
            );
            Sensitive::new("")
        }
        Some(s) => Sensitive::new(s.value.clone()),
    };
    let timeout = v.duration(&r.timeout, DEFAULT_TIMEOUT);
    let max_attempts = v.count(&r.max_attempts, DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS);
    let batch_size = v.count(&r.batch_size, 1, MAX_BATCH_SIZE);
    WebhookSettings {
        url,
        secret,
        timeout,
        max_attempts,
        batch_size,
    }
}

/// Checks a full name (prefix + relative path).
pub fn check_name(name: &str) -> Result<(), String> {
    if let Some(why) = crate::path::reject_key(name) {
        return Err(format!("secret name {why}"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "secret name is {} bytes; this target allows at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// A webhook's rules: safe relative names of at most [`MAX_NAME_LEN`] bytes, values of at
/// most [`MAX_VALUE_BYTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookRules;

impl super::TargetRules for WebhookRules {
    fn check_prefix(&self, prefix: &str) -> Result<(), String> {
        if prefix.is_empty() {
            return Ok(());
        }
        if let Some(why) = crate::path::reject_key(prefix) {
            return Err(format!("secret prefix {why}"));
        }
        if prefix.len() > MAX_NAME_LEN / 2 {
            return Err(format!(
                "secret prefix is longer than {} bytes",
                MAX_NAME_LEN / 2
            ));
        }
        Ok(())
    }
    fn check_name(&self, name: &str) -> Result<(), String> {
        check_name(name)
    }
    fn check_size(&self, bytes: usize) -> Result<(), String> {
        if bytes > MAX_VALUE_BYTES {
            return Err(format!(
                "secret value is {bytes} bytes as JSON; a webhook target delivers at most {MAX_VALUE_BYTES} (1 MiB)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TargetBackend, load};
    use crate::targets::TargetRules;

    fn env(k: &str) -> Option<String> {
        (k == "HOOK_SECRET").then(|| "the-hmac-key".to_string())
    }

    fn diagnostics(yaml: &str) -> String {
        crate::targets::test_util::diagnostics(yaml, &env)
    }

    const STORE: &str = "merge_store: { type: s3, bucket: hooks-state }\n";

    fn config(store: &str, target: &str) -> String {
        format!(
            "vault_sources:\n  - mount: secret/base/\n{store}targets:\n  - name: hook\n    type: webhook\n{target}"
        )
    }

    #[test]
    fn the_module_example_loads() {
        let yaml = crate::targets::test_util::module_example(include_str!("webhook.rs"));
        let l = load(&yaml, &env);
        let c = l.config.unwrap_or_else(|| panic!("{}", diagnostics(&yaml)));
        let t = &c.targets[0];
        assert_eq!(t.backend.type_name(), "webhook");
        let TargetBackend::Webhook(s) = &t.backend else {
            panic!("{:?}", t.backend)
        };
        assert_eq!(s.url.expose(), "https://receiver.example.com/secrets");
        assert_eq!(s.secret.expose(), "the-hmac-key");
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.max_attempts, 4);
        assert_eq!(s.batch_size, 50);
        assert_eq!(t.policy.writes_per_second, 5);
        // Neither the path nor the secret is shown.
        assert_eq!(t.backend.describe(), "webhook https://receiver.example.com");
        let debug = format!("{t:?}");
        assert!(
            !debug.contains("the-hmac-key") && !debug.contains("/secrets"),
            "{debug}"
        );
    }

    #[test]
    fn url_and_secret_are_required() {
        let out = diagnostics(&config(STORE, "    imports: [base]\n"));
        assert!(
            out.contains(
                "error at line 5, column 9 (`targets[0].url`): missing required key `url`"
            ),
            "{out}"
        );
        assert!(
            out.contains("(`targets[0].secret`): missing required key `secret`")
                && out.contains("never unsigned"),
            "{out}"
        );
        let out = diagnostics(&config(
            STORE,
            "    url: https://r.example.com/x\n    secret: \"\"\n",
        ));
        assert!(
            out.contains("line 8, column 13 (`targets[0].secret`): `secret` is empty"),
            "{out}"
        );
    }

    #[test]
    fn a_plain_http_url_is_refused_without_showing_it() {
        let out = diagnostics(&config(
            STORE,
            "    url: http://r.example.com/services/T0/B0/credential-path\n    secret: ${HOOK_SECRET}\n",
        ));
        assert!(
            out.contains("error at line 7, column 10 (`targets[0].url`): the URL uses plain http to a non-loopback host"),
            "{out}"
        );
        assert!(
            !out.contains("credential-path") && !out.contains("r.example.com"),
            "{out}"
        );
        let out = diagnostics(&config(
            STORE,
            "    url: ftp://r.example.com/p\n    secret: k\n",
        ));
        assert!(out.contains("the URL is not an https:// URL"), "{out}");
        assert!(!out.contains("ftp://"), "{out}");
        // Loopback over plain http is fine (a receiver beside the tool, a test).
        let ok = config(
            STORE,
            "    url: http://127.0.0.1:9000/secrets\n    secret: k\n    imports: [base]\n",
        );
        assert!(load(&ok, &env).config.is_some(), "{}", diagnostics(&ok));
    }

    #[test]
    fn a_webhook_needs_an_s3_merge_store() {
        let body = "    url: https://r.example.com/x\n    secret: k\n    imports: [base]\n";
        let out = diagnostics(&config("", body));
        assert!(
            out.contains("error at line 5, column 11 (`targets[0].type`): target `hook` is a `webhook` target, which needs a `merge_store`"),
            "{out}"
        );
        let out = diagnostics(&config(
            "merge_store: { type: vault, mount: merged/ }\n",
            body,
        ));
        assert!(
            out.contains("(`targets[0].type`): target `hook` is a `webhook` target, which needs an S3 merge store")
                && out.contains("`type: vault`"),
            "{out}"
        );
    }

    #[test]
    fn timeout_and_max_attempts_are_checked() {
        let out = diagnostics(&config(
            STORE,
            "    url: https://r.example.com/x\n    secret: k\n    timeout: 0s\n    max_attempts: 11\n",
        ));
        assert!(
            out.contains(
                "line 9, column 14 (`targets[0].timeout`): duration must be greater than zero"
            ),
            "{out}"
        );
        assert!(
            out.contains("line 10, column 19 (`targets[0].max_attempts`): `targets[0].max_attempts` must be at most 10"),
            "{out}"
        );
    }

    #[test]
    fn batch_size_defaults_to_one_and_is_bounded() {
        let ok = config(
            STORE,
            "    url: https://r.example.com/x\n    secret: k\n    imports: [base]\n",
        );
        let l = load(&ok, &env);
        let c = l.config.unwrap_or_else(|| panic!("{}", diagnostics(&ok)));
        let TargetBackend::Webhook(s) = &c.targets[0].backend else {
            panic!("{:?}", c.targets[0].backend)
        };
        assert_eq!(s.batch_size, 1);
        for (bad, says) in [
            ("0", "must be greater than 0"),
            ("501", "must be at most 500"),
        ] {
            let out = diagnostics(&config(
                STORE,
                &format!(
                    "    url: https://r.example.com/x\n    secret: k\n    batch_size: {bad}\n"
                ),
            ));
            assert!(
                out.contains("line 9, column 17 (`targets[0].batch_size`)") && out.contains(says),
                "{out}"
            );
        }
    }

    #[test]
    fn adopt_is_warned_about() {
        let out = diagnostics(&config(
            STORE,
            "    url: https://r.example.com/x\n    secret: k\n    adopt: true\n    imports: [base]\n",
        ));
        assert_eq!(
            out,
            "warning at line 9, column 12 (`targets[0].adopt`): `adopt` does nothing on a `webhook` target: a receiver holds nothing SecretSync did not send, so there is nothing to take over; remove `adopt`"
        );
    }

    #[test]
    fn a_key_of_another_kind_is_named() {
        let out = diagnostics(&config(
            STORE,
            "    url: https://r.example.com/x\n    secret: k\n    region: us-east-1\n",
        ));
        assert!(
            out.contains("(`targets[0].region`): unknown key `region`")
                && out.contains("`region` is a key of `aws_secretsmanager` and `aws_ssm` targets"),
            "{out}"
        );
    }

    #[test]
    fn names_and_sizes() {
        let r = WebhookRules;
        assert!(r.check_name("apps/db").is_ok());
        for bad in ["", "apps/../x", "/abs", "a//b", "a\nb"] {
            assert!(r.check_name(bad).is_err(), "{bad:?}");
        }
        assert!(r.check_name(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(
            r.check_size(MAX_VALUE_BYTES).is_ok() && r.check_size(MAX_VALUE_BYTES + 1).is_err()
        );
        assert!(r.check_prefix("").is_ok() && r.check_prefix("apps/").is_ok());
        assert!(r.check_prefix("../x").is_err());
        assert_eq!(
            host_only("https://user:pw@h.example.com:8443/p/q?x#y"),
            "https://h.example.com:8443"
        );
    }
}
