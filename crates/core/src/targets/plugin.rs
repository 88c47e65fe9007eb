//! The `plugin` target kind: an external program that speaks SecretSync's plugin protocol
//! (JSON lines on stdin/stdout, `docs/targets/plugin.md`), so a destination can be added in any
//! language. Settings, validation, and the naming and size rules checked before any write (the
//! plugin may narrow them in its `hello`: [`PluginRules::narrowed`]).
//!
//! ```yaml
//! targets:
//!   - name: custom
//!     type: plugin
//!     command: [python3, examples/plugins/dir_store.py, --root, /var/lib/secrets]
//!     timeout: 30s                 # per request (default 30s)
//!     env: { STORE_TOKEN: "${STORE_TOKEN}" }   # the plugin's only environment besides PATH, HOME, …
//!     secret_prefix: apps/
//!     imports: [base]
//! ```
//!
//! `command` is the program and its arguments, run without a shell. Values never travel in
//! the command line or the environment: only over the plugin's stdin.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::validate::Validator;
use crate::config::{S, Sensitive};
use crate::de::Spanned;
use crate::diag::Pos;

/// Longest name (prefix + relative path) accepted unless the plugin announces less, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest value written (canonical JSON, bytes) unless the plugin announces less.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Longest `secret_prefix`, in bytes.
pub const MAX_PREFIX_LEN: usize = 512;
/// A request's default time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most arguments in `command` (a bound, not a limit anyone should meet).
pub const MAX_ARGS: usize = 256;
/// Environment variables the plugin inherits from SecretSync's own environment; everything
/// else (Vault tokens, AWS credentials) stays out unless `env:` passes it on purpose.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SYSTEMROOT",
];

crate::raw_target! {
    /// The YAML shape of a `plugin` target.
    Raw {
        command: S<Vec<Spanned<String>>>,
        timeout: S<String>,
        env: S<BTreeMap<String, Spanned<String>>>,
    }
}

/// A validated `plugin` target. `Debug` shows the environment's names, not their values.
#[derive(Clone, PartialEq)]
pub struct PluginSettings {
    /// The program and its arguments (non-empty).
    pub command: Vec<String>,
    /// Each request's time limit (the `hello` included).
    pub timeout: Duration,
    /// Variables set in the plugin's environment, on top of [`INHERITED_ENV`].
    pub env: BTreeMap<String, Sensitive>,
}

impl std::fmt::Debug for PluginSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSettings")
            .field("command", &self.command)
            .field("timeout", &self.timeout)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PluginSettings {
    /// The command for messages: its words joined with spaces (`python3 store.py --root /x`).
    pub fn display_command(&self) -> String {
        self.command.join(" ")
    }
}

fn check_env_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an environment variable name",
            n.escape_debug()
        ))
    }
}

/// Validates the backend's own keys (the common ones are done by the caller).
pub(crate) fn lower(v: &mut Validator, mut r: Raw, pos: Option<Pos>, path: &str) -> PluginSettings {
    let command = match r.command.take() {
        None => {
            v.missing(
                pos,
                &format!("{path}.command"),
                "the plugin program and its arguments, e.g. `[python3, examples/plugins/dir_store.py, --root, /var/lib/secrets]`",
            );
            Vec::new()
        }
        Some(c) if c.value.is_empty() => {
            v.error(
                &c,
                "`command` is empty",
                "name the program first, then its arguments: `[python3, store.py, --root, /var/lib/secrets]`",
            );
            Vec::new()
        }
        Some(c) if c.value.len() > MAX_ARGS => {
            v.error(
                &c,
                format!("`command` has more than {MAX_ARGS} words"),
                "pass settings in a file the plugin reads instead",
            );
            Vec::new()
        }
        Some(c) => {
            for (i, w) in c.value.iter().enumerate() {
                if w.value.contains('\0') {
                    v.error(w, "a command word contains a NUL byte", "remove it");
                } else if i == 0 && w.value.trim().is_empty() {
                    v.error(
                        w,
                        "the program name is empty",
                        "the first word is the program to run, e.g. `python3`",
                    );
                }
            }
            c.value.into_iter().map(|w| w.value).collect()
        }
    };
    let timeout = v.duration(&r.timeout, DEFAULT_TIMEOUT);
    let mut env = BTreeMap::new();
    for (name, value) in r.env.take().map(|e| e.value).unwrap_or_default() {
        if let Err(e) = check_env_name(&name) {
            v.error(
                &value,
                e,
                "use letters, digits and `_`, not starting with a digit",
            );
            continue;
        }
        if value.value.contains('\0') {
            v.error(&value, "the value contains a NUL byte", "remove it");
            continue;
        }
        env.insert(name, Sensitive::new(value.value));
    }
    PluginSettings {
        command,
        timeout,
        env,
    }
}

/// Checks a configured `secret_prefix`: a safe relative path (or empty), not below the
/// reserved `.secretsync/`.
pub fn check_prefix(p: &str) -> Result<(), String> {
    crate::path::check_relative_prefix(p, MAX_PREFIX_LEN)
}

/// The names and sizes a plugin target accepts: safe relative paths (as Vault keys), at most
/// `max_name_bytes`, values of at most `max_value_bytes`; when `allowed_punctuation` is set,
/// names hold only ASCII letters, digits, `/` and those characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRules {
    pub max_name_bytes: usize,
    pub max_value_bytes: usize,
    pub allowed_punctuation: Option<String>,
}

impl Default for PluginRules {
    fn default() -> Self {
        PluginRules {
            max_name_bytes: MAX_NAME_LEN,
            max_value_bytes: MAX_VALUE_BYTES,
            allowed_punctuation: None,
        }
    }
}

impl PluginRules {
    /// These rules narrowed by what a plugin announced in its `hello` (a plugin can lower the
    /// limits, never raise them).
    pub fn narrowed(
        &self,
        max_name_bytes: Option<u64>,
        max_value_bytes: Option<u64>,
        allowed_punctuation: Option<String>,
    ) -> PluginRules {
        let lower = |own: usize, theirs: Option<u64>| match theirs {
            Some(n) => own.min(usize::try_from(n).unwrap_or(usize::MAX)),
            None => own,
        };
        PluginRules {
            max_name_bytes: lower(self.max_name_bytes, max_name_bytes),
            max_value_bytes: lower(self.max_value_bytes, max_value_bytes),
            allowed_punctuation: allowed_punctuation.or_else(|| self.allowed_punctuation.clone()),
        }
    }
}

impl super::TargetRules for PluginRules {
    fn check_prefix(&self, prefix: &str) -> Result<(), String> {
        check_prefix(prefix)
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        if let Some(why) = crate::path::reject_key(name) {
            return Err(format!("secret name {why}"));
        }
        if name.ends_with('/') {
            return Err("secret name ends in `/`".into());
        }
        if name.starts_with(crate::diff::RESERVED_PREFIX) {
            return Err(format!(
                "secret name is below `{}`, which SecretSync keeps for its own bookkeeping",
                crate::diff::RESERVED_PREFIX
            ));
        }
        if name.len() > self.max_name_bytes {
            return Err(format!(
                "secret name is {} bytes; this plugin accepts at most {}",
                name.len(),
                self.max_name_bytes
            ));
        }
        if let Some(extra) = &self.allowed_punctuation
            && let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '/' || extra.contains(*c)))
        {
            return Err(format!(
                "secret name contains `{}`; this plugin accepts only letters, digits, `/` and `{extra}`",
                c.escape_debug()
            ));
        }
        Ok(())
    }

    fn check_size(&self, bytes: usize) -> Result<(), String> {
        if bytes > self.max_value_bytes {
            return Err(format!(
                "secret value is {bytes} bytes as JSON; this plugin accepts at most {}",
                self.max_value_bytes
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
        (k == "STORE_TOKEN").then(|| "s3cret-token".to_string())
    }

    fn diagnostics(yaml: &str) -> String {
        crate::targets::test_util::diagnostics(yaml, &env)
    }

    const BASE: &str = "vault_sources:
  - mount: secret/base/
targets:
  - name: custom
    type: plugin
";

    #[test]
    fn the_module_example_loads() {
        let yaml = crate::targets::test_util::module_example(include_str!("plugin.rs"));
        let l = load(&yaml, &env);
        let c = l.config.unwrap_or_else(|| panic!("{}", diagnostics(&yaml)));
        let t = &c.targets[0];
        assert_eq!(t.backend.type_name(), "plugin");
        let TargetBackend::Plugin(s) = &t.backend else {
            panic!("{:?}", t.backend)
        };
        assert_eq!(
            s.command,
            [
                "python3",
                "examples/plugins/dir_store.py",
                "--root",
                "/var/lib/secrets"
            ]
        );
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.env["STORE_TOKEN"].expose(), "s3cret-token");
        assert!(!format!("{t:?}").contains("s3cret-token"), "{t:?}");
        assert_eq!(
            t.backend.describe(),
            "plugin python3 examples/plugins/dir_store.py --root /var/lib/secrets"
        );
    }

    #[test]
    fn command_is_required_and_a_non_empty_list_of_strings() {
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    imports: [base]\n")), @"error at line 4, column 9 (`targets[0].command`): missing required key `command`; add `command: …` (the plugin program and its arguments, e.g. `[python3, examples/plugins/dir_store.py, --root, /var/lib/secrets]`)");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: []\n")), @"error at line 6, column 14 (`targets[0].command`): `command` is empty; name the program first, then its arguments: `[python3, store.py, --root, /var/lib/secrets]`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: python3 store.py\n")), @"error at line 6, column 14 (`targets[0].command`): expected a list, found a string; write a list here");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: [\"\", x]\n")), @"error at line 6, column 15 (`targets[0].command[0]`): the program name is empty; the first word is the program to run, e.g. `python3`");
    }

    #[test]
    fn timeout_and_env_are_checked() {
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: [x]\n    timeout: soon\n")), @"error at line 7, column 14 (`targets[0].timeout`): `soon` is not a duration; write a duration such as `500ms`, `30s`, `5m`, `1h` or `1h30m`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: [x]\n    timeout: 0s\n")), @"error at line 7, column 14 (`targets[0].timeout`): duration must be greater than zero; write e.g. `30s`, `5m` or `1h`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: [x]\n    env: {{ 1BAD: x, GOOD: y }}\n")), @"error at line 7, column 18 (`targets[0].env.1BAD`): `1BAD` is not an environment variable name; use letters, digits and `_`, not starting with a digit");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: [x]\n    env: [a]\n")), @"error at line 7, column 10 (`targets[0].env`): expected a map, found a list; write a map here");
        let l = load(
            &format!("{BASE}    command: [x]\n    timeout: 2s\n    env: {{ A_1: v }}\n"),
            &env,
        );
        let c = l.config.expect("loads");
        let TargetBackend::Plugin(s) = &c.targets[0].backend else {
            panic!()
        };
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.env["A_1"].expose(), "v");
    }

    #[test]
    fn a_key_of_another_kind_is_rejected_with_its_line() {
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: [x]\n    region: us-east-1\n")), @"error at line 7, column 5 (`targets[0].region`): unknown key `region`; `region` is a key of `aws_secretsmanager` and `aws_ssm` targets, not of this target's `type`: remove it, or change `type`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    comand: [x]\n")), @r#"
error at line 4, column 9 (`targets[0].command`): missing required key `command`; add `command: …` (the plugin program and its arguments, e.g. `[python3, examples/plugins/dir_store.py, --root, /var/lib/secrets]`)
error at line 6, column 5 (`targets[0].comand`): unknown key `comand`; did you mean `command`?
"#);
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    command: [x]\n    secret_prefix: ../x/\n")), @"error at line 7, column 20 (`targets[0].secret_prefix`): secret prefix has a `.` or `..` path segment; fix the prefix so that every name it starts is valid in this target");
    }

    #[test]
    fn names_prefixes_and_sizes() {
        let r = PluginRules::default();
        assert!(r.check_name("apps/db").is_ok());
        for bad in [
            "",
            "apps/../x",
            "/abs",
            "a//b",
            "folder/",
            "a\nb",
            ".secretsync/x",
        ] {
            assert!(r.check_name(bad).is_err(), "{bad:?}");
        }
        assert!(r.check_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert!(r.check_name(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(
            r.check_size(MAX_VALUE_BYTES).is_ok() && r.check_size(MAX_VALUE_BYTES + 1).is_err()
        );
        assert!(check_prefix("").is_ok() && check_prefix("apps/").is_ok());
        assert!(check_prefix(".secretsync/x/").is_err() && check_prefix("../x/").is_err());

        // A plugin narrows the rules, never widens them.
        let n = r.narrowed(Some(10), Some(1 << 30), Some("-_".into()));
        assert_eq!((n.max_name_bytes, n.max_value_bytes), (10, MAX_VALUE_BYTES));
        assert!(n.check_name("a-b/c_d").is_ok());
        let e = n.check_name("a.b").unwrap_err();
        assert!(e.contains("`.`") && e.contains("`-_`"), "{e}");
        assert!(
            n.check_name("abcdefghijk")
                .unwrap_err()
                .contains("at most 10")
        );
    }
}
