//! The `azure_keyvault` target kind: an Azure Key Vault's secrets. Settings, validation, the
//! name mapping (Key Vault names are `[0-9A-Za-z-]`, at most 127 characters, and
//! case-insensitive), and the naming, size and tag rules checked before any write.
//!
//! ```yaml
//! targets:
//!   - name: azure
//!     type: azure_keyvault
//!     vault_url: https://my-vault.vault.azure.net
//!     ca_cert: tests/ca.pem            # optional: an extra root CA (a test server)
//!     auth: { token: ${AZURE_ACCESS_TOKEN} }   # optional; default: the Azure identity chain
//!     purge: false                     # orphans: soft delete only (recoverable)
//!     tags: { team: platform }         # optional; beside SecretSync's own 5 (15 in all)
//!     delete_orphans: true
//!     imports: [base]
//! ```
//!
//! **Names.** A secret's name in the vault is [`encode`] of `secret_prefix` + its relative
//! path: letters and digits stay, `-` is the escape character (`-` → `--`, `/` → `-s`,
//! `_` → `-u`, `.` → `-d`, every other byte → `-x` + two lowercase hex digits), so `apps/db_url`
//! is `apps-sdb-uurl`. The mapping is injective and [`decode`] reverses it; a name that does
//! not decode (`secretsync-fingerprint-key`, anything written by hand with a single `-` before
//! another letter) is never SecretSync's; a hand-made name that happens to decode (`my-secret` is
//! `my/ecret`) carries no ownership marks, so it is never written or deleted unless adopted. Names longer than 127 characters once mapped are
//! refused in the plan, naming the path; two desired paths whose names differ only in case
//! are one secret to Key Vault and are both refused ([`refuse_case_collisions`]).

use std::collections::BTreeMap;

use crate::config::validate::{Validator, at};
use crate::config::{S, Sensitive};
use crate::de::Spanned;
use crate::diag::Pos;
use crate::diff::{ChangeKind, OWNERSHIP_TAGS, TargetPlan};

/// Longest Key Vault secret name.
pub const MAX_NAME_LEN: usize = 127;
/// Largest secret value Key Vault stores (25 KiB), in bytes of its canonical JSON.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// Tags Key Vault allows on one secret (version).
pub const MAX_TAGS: usize = 15;
/// Tags SecretSync writes on every secret it manages (`managed-by`, owner, target,
/// fingerprint, version).
pub const OWN_TAGS: usize = 5;
/// Longest tag name and tag value Key Vault accepts.
pub const MAX_TAG_KEY_LEN: usize = 512;
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// The `content_type` of every secret SecretSync writes.
pub const CONTENT_TYPE: &str = "application/json";

crate::raw_target! {
    /// The YAML shape of an `azure_keyvault` target.
    Raw {
        vault_url: S<String>,
        ca_cert: S<String>,
        auth: S<RawAuth>,
        purge: S<bool>,
        tags: S<BTreeMap<String, Spanned<String>>>,
    }
}

/// `auth:` of an `azure_keyvault` target.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub token: S<String>,
}

/// How the target gets its bearer token.
#[derive(Clone, PartialEq)]
pub enum AzureAuth {
    /// The Azure identity chain (workload identity, client secret from the environment,
    /// managed identity, Azure CLI / Developer CLI).
    Chain,
    /// A static access token (`auth: { token: … }`), used as it is.
    Token(Sensitive),
}

impl std::fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AzureAuth::Chain => f.write_str("Chain"),
            AzureAuth::Token(_) => f.write_str("Token(redacted)"),
        }
    }
}

/// A validated `azure_keyvault` target.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureKeyVaultSettings {
    /// `https://<name>.vault.azure.net`, without a trailing `/`.
    pub vault_url: String,
    /// A PEM file with an extra root certificate to trust.
    pub ca_cert: Option<String>,
    pub auth: AzureAuth,
    /// Orphans are purged after their soft delete.
    pub purge: bool,
    /// Extra tags beside the ownership marks.
    pub tags: BTreeMap<String, String>,
}

/// Validates the backend's own keys (the common ones are done by the caller).
pub(crate) fn lower(
    v: &mut Validator,
    mut r: Raw,
    pos: Option<Pos>,
    path: &str,
    delete_orphans: &S<bool>,
) -> AzureKeyVaultSettings {
    let vault_url = match r.vault_url.take() {
        None => {
            v.missing(
                pos,
                &format!("{path}.vault_url"),
                "the vault's URL, e.g. `https://my-vault.vault.azure.net`",
            );
            String::new()
        }
        Some(u) => match check_vault_url(&u.value) {
            Ok(()) => u.value.trim_end_matches('/').to_string(),
            Err(e) => {
                v.error(
                    &u,
                    e,
                    "write the vault's https URL, e.g. `https://my-vault.vault.azure.net` (a local test server: https with `ca_cert`)",
                );
                String::new()
            }
        },
    };
    let ca_cert = match r.ca_cert.take() {
        Some(c) if c.value.trim().is_empty() => {
            v.error(
                &c,
                "`ca_cert` is empty",
                "name a PEM file, or remove the key",
            );
            None
        }
        c => c.map(|c| c.value),
    };
    let auth = match r.auth.take() {
        None => AzureAuth::Chain,
        Some(a) => match a.value.token {
            Some(t) if !t.value.trim().is_empty() => AzureAuth::Token(Sensitive::new(t.value)),
            Some(t) => {
                v.error(
                    &t,
                    "`auth.token` is empty",
                    "set it to an access token for `https://vault.azure.net` (e.g. `${AZURE_ACCESS_TOKEN}`), or remove `auth` to use the Azure identity chain",
                );
                AzureAuth::Chain
            }
            None => {
                v.missing(
                    at(&a),
                    &format!("{path}.auth.token"),
                    "an access token for `https://vault.azure.net`, e.g. `${AZURE_ACCESS_TOKEN}`; without `auth` the Azure identity chain is used",
                );
                AzureAuth::Chain
            }
        },
    };
    let purge = r.purge.as_ref().is_some_and(|p| p.value);
    if let Some(p) = &r.purge
        && p.value
        && !delete_orphans.as_ref().is_some_and(|d| d.value)
    {
        v.push(
            crate::diag::Diagnostic::warning(
                at(p),
                p.key.clone(),
                "`purge: true` does nothing without `delete_orphans: true`: only orphans are purged",
            )
            .with_help("add `delete_orphans: true`, or remove `purge`"),
        );
    }
    let mut tags = BTreeMap::new();
    if let Some(t) = r.tags.take() {
        if t.value.len() > MAX_TAGS - OWN_TAGS {
            v.error(
                &t,
                format!(
                    "`tags` has {} entries; at most {} fit beside SecretSync's own {OWN_TAGS} (Key Vault allows {MAX_TAGS} per secret)",
                    t.value.len(),
                    MAX_TAGS - OWN_TAGS
                ),
                "remove some tags",
            );
        }
        for (key, value) in t.value {
            if let Err(e) = check_tag(&key, &value.value) {
                v.error(&value, e, "choose another tag");
                continue;
            }
            tags.insert(key, value.value);
        }
    }
    AzureKeyVaultSettings {
        vault_url,
        ca_cert,
        auth,
        purge,
        tags,
    }
}

/// `vault_url`: an `https://` URL with a host and nothing after it but `/`. Azure's client
/// sends bearer tokens over https only, loopback included.
pub fn check_vault_url(u: &str) -> Result<(), String> {
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!("`{u}` is not a URL"));
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "`{u}` does not use https; Key Vault is reached over https only (bearer tokens never travel in plain http, not even to loopback)"
        ));
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(format!("`{u}` has no host"));
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "`{u}` has a path, query or user part; the vault URL is only `https://<host>`"
        ));
    }
    Ok(())
}

/// Whether a tag key is SecretSync's own.
pub fn is_reserved_tag(key: &str) -> bool {
    OWNERSHIP_TAGS.contains(&key) || key.starts_with("secretsync:")
}

/// Checks an extra tag.
pub fn check_tag(key: &str, value: &str) -> Result<(), String> {
    if is_reserved_tag(key) {
        return Err(format!(
            "tag key `{key}` is reserved (`managed-by` and `secretsync:*` mark ownership)"
        ));
    }
    if key.is_empty() || key.chars().count() > MAX_TAG_KEY_LEN {
        return Err(format!(
            "tag key `{key}` must be 1 to {MAX_TAG_KEY_LEN} characters"
        ));
    }
    if value.chars().count() > MAX_TAG_VALUE_LEN {
        return Err(format!(
            "the value of tag `{key}` is longer than {MAX_TAG_VALUE_LEN} characters (Key Vault's limit)"
        ));
    }
    Ok(())
}

/// The Key Vault name of a relative path (see the module docs): injective, and [`decode`]
/// reverses it.
pub fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' => out.push(b as char),
            b'-' => out.push_str("--"),
            b'/' => out.push_str("-s"),
            b'_' => out.push_str("-u"),
            b'.' => out.push_str("-d"),
            _ => out.push_str(&format!("-x{b:02x}")),
        }
    }
    out
}

/// The relative path a Key Vault name stands for; `None` when the name is not one
/// [`encode`] makes (not SecretSync's).
pub fn decode(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() {
            out.push(c);
            i += 1;
            continue;
        }
        if c != b'-' {
            return None;
        }
        match b.get(i + 1)? {
            b'-' => out.push(b'-'),
            b's' => out.push(b'/'),
            b'u' => out.push(b'_'),
            b'd' => out.push(b'.'),
            b'x' => {
                let hex = name.get(i + 2..i + 4)?;
                if !hex.bytes().all(|h| matches!(h, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                let byte = u8::from_str_radix(hex, 16).ok()?;
                // Only bytes `encode` escapes this way: anything else has a shorter form.
                if byte.is_ascii_alphanumeric() || b"-/_.".contains(&byte) {
                    return None;
                }
                out.push(byte);
                i += 4;
                continue;
            }
            _ => return None,
        }
        i += 2;
    }
    String::from_utf8(out).ok()
}

/// Marks every desired secret whose Key Vault name equals another's but for case as invalid
/// (Key Vault names are case-insensitive: they would be one secret), naming both paths. Run
/// on the plan before anything is written; the colliding names stay desired, so neither is
/// ever taken for an orphan.
pub fn refuse_case_collisions(plan: &mut TargetPlan) {
    let mut by_folded: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in plan.changes.iter().enumerate() {
        if c.kind != ChangeKind::Deleted {
            by_folded
                .entry(c.name.to_ascii_lowercase())
                .or_default()
                .push(i);
        }
    }
    for idx in by_folded.into_values().filter(|v| v.len() > 1) {
        let paths: Vec<String> = idx
            .iter()
            .map(|&i| format!("`{}`", plan.changes[i].path))
            .collect();
        for &i in &idx {
            let c = &mut plan.changes[i];
            let others: Vec<&String> = paths
                .iter()
                .filter(|p| **p != format!("`{}`", c.path))
                .collect();
            c.kind = ChangeKind::Skipped;
            c.invalid = true;
            c.retag = false;
            c.restore = false;
            c.new_value = None;
            c.new_version = None;
            c.fingerprint = None;
            c.keys.clear();
            c.settings.clear();
            c.reason = Some(format!(
                "Key Vault names are case-insensitive: `{}` (the name of `{}`) is the same secret as the name of {}; rename one of the Vault paths",
                c.name,
                c.path,
                others
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
}

/// The names and sizes an `azure_keyvault` target accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AzureKeyVaultRules;

impl super::TargetRules for AzureKeyVaultRules {
    fn name(&self, prefix: &str, path: &str) -> String {
        encode(&format!("{prefix}{path}"))
    }

    fn path_of(&self, prefix: &str, name: &str) -> Option<String> {
        decode(name)?.strip_prefix(prefix).map(str::to_string)
    }

    fn check_prefix(&self, prefix: &str) -> Result<(), String> {
        crate::path::check_relative_prefix(prefix, MAX_NAME_LEN)?;
        let n = encode(prefix).len();
        if n >= MAX_NAME_LEN {
            return Err(format!(
                "secret prefix is {n} characters once mapped to Key Vault's alphabet; names are at most {MAX_NAME_LEN}"
            ));
        }
        Ok(())
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        let Some(path) = decode(name) else {
            return Err(format!("`{name}` is not a name SecretSync makes"));
        };
        if let Some(why) = crate::path::reject_key(&path) {
            return Err(format!("secret name {why}"));
        }
        if path.ends_with('/') {
            return Err("secret name ends in `/`".into());
        }
        if path.starts_with(crate::diff::RESERVED_PREFIX) {
            return Err(format!(
                "secret name is below `{}`, which SecretSync keeps for its own bookkeeping",
                crate::diff::RESERVED_PREFIX
            ));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(format!(
                "its Key Vault name `{name}` is {} characters (`-` escapes `-`, `/`, `_`, `.` and other characters); Key Vault allows at most {MAX_NAME_LEN}: shorten the path or `secret_prefix`",
                name.len()
            ));
        }
        Ok(())
    }

    fn check_size(&self, bytes: usize) -> Result<(), String> {
        if bytes > MAX_VALUE_BYTES {
            return Err(format!(
                "secret value is {bytes} bytes as JSON; Key Vault stores at most {MAX_VALUE_BYTES}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TargetBackend, load};
    use crate::diff::SecretChange;
    use crate::targets::TargetRules;
    use proptest::prelude::*;

    fn env(k: &str) -> Option<String> {
        (k == "AZURE_ACCESS_TOKEN").then(|| "s3cret-token".to_string())
    }

    fn diagnostics(yaml: &str) -> String {
        crate::targets::test_util::diagnostics(yaml, &env)
    }

    const BASE: &str = "vault_sources:
  - mount: secret/base/
targets:
  - name: azure
    type: azure_keyvault
";

    #[test]
    fn the_module_example_loads() {
        let yaml = crate::targets::test_util::module_example(include_str!("azure_keyvault.rs"));
        let l = load(&yaml, &env);
        let c = l.config.unwrap_or_else(|| panic!("{}", diagnostics(&yaml)));
        assert!(l.diagnostics.0.is_empty(), "{}", diagnostics(&yaml));
        let t = &c.targets[0];
        let TargetBackend::AzureKeyVault(s) = &t.backend else {
            panic!("{:?}", t.backend)
        };
        assert_eq!(s.vault_url, "https://my-vault.vault.azure.net");
        assert_eq!(s.ca_cert.as_deref(), Some("tests/ca.pem"));
        assert_eq!(s.auth, AzureAuth::Token(Sensitive::new("s3cret-token")));
        assert!(!s.purge);
        assert_eq!(s.tags["team"], "platform");
        assert!(!format!("{t:?}").contains("s3cret-token"), "{t:?}");
        assert_eq!(
            t.backend.describe(),
            "azure_keyvault https://my-vault.vault.azure.net"
        );
    }

    #[test]
    fn vault_url_is_required_and_https() {
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    imports: [base]\n")), @"error at line 4, column 9 (`targets[0].vault_url`): missing required key `vault_url`; add `vault_url: …` (the vault's URL, e.g. `https://my-vault.vault.azure.net`)");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: http://my-vault.vault.azure.net\n")), @"error at line 6, column 16 (`targets[0].vault_url`): `http://my-vault.vault.azure.net` does not use https; Key Vault is reached over https only (bearer tokens never travel in plain http, not even to loopback); write the vault's https URL, e.g. `https://my-vault.vault.azure.net` (a local test server: https with `ca_cert`)");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: http://127.0.0.1:8444\n")), @"error at line 6, column 16 (`targets[0].vault_url`): `http://127.0.0.1:8444` does not use https; Key Vault is reached over https only (bearer tokens never travel in plain http, not even to loopback); write the vault's https URL, e.g. `https://my-vault.vault.azure.net` (a local test server: https with `ca_cert`)");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: https://v.vault.azure.net/secrets/x\n")), @"error at line 6, column 16 (`targets[0].vault_url`): `https://v.vault.azure.net/secrets/x` has a path, query or user part; the vault URL is only `https://<host>`; write the vault's https URL, e.g. `https://my-vault.vault.azure.net` (a local test server: https with `ca_cert`)");
        let c = load(
            &format!("{BASE}    vault_url: https://127.0.0.1:8444/\n"),
            &env,
        )
        .config
        .expect("loads");
        let TargetBackend::AzureKeyVault(s) = &c.targets[0].backend else {
            panic!()
        };
        assert_eq!(s.vault_url, "https://127.0.0.1:8444");
        assert_eq!(s.auth, AzureAuth::Chain);
    }

    #[test]
    fn unknown_keys_auth_purge_and_tags_are_checked() {
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: https://v.vault.azure.net\n    vaulturl: x\n")), @"error at line 7, column 5 (`targets[0].vaulturl`): unknown key `vaulturl`; did you mean `vault_url`?");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: https://v.vault.azure.net\n    region: us-east-1\n")), @"error at line 7, column 5 (`targets[0].region`): unknown key `region`; `region` is a key of `aws_secretsmanager` and `aws_ssm` targets, not of this target's `type`: remove it, or change `type`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: https://v.vault.azure.net\n    auth: {{ tokn: x }}\n")), @r"
        error at line 7, column 11 (`targets[0].auth.token`): missing required key `token`; add `token: …` (an access token for `https://vault.azure.net`, e.g. `${AZURE_ACCESS_TOKEN}`; without `auth` the Azure identity chain is used)
        error at line 7, column 13 (`targets[0].auth.tokn`): unknown key `tokn`; did you mean `token`?
        ");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: https://v.vault.azure.net\n    purge: true\n")), @"warning at line 7, column 12 (`targets[0].purge`): `purge: true` does nothing without `delete_orphans: true`: only orphans are purged; add `delete_orphans: true`, or remove `purge`");
        assert_eq!(
            diagnostics(&format!(
                "{BASE}    vault_url: https://v.vault.azure.net\n    purge: true\n    delete_orphans: true\n    imports: [base]\n"
            )),
            ""
        );
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    vault_url: https://v.vault.azure.net\n    tags: {{ managed-by: me }}\n")), @"error at line 7, column 25 (`targets[0].tags.managed-by`): tag key `managed-by` is reserved (`managed-by` and `secretsync:*` mark ownership); choose another tag");
        let many: Vec<String> = (0..11).map(|i| format!("t{i}: v")).collect();
        let out = diagnostics(&format!(
            "{BASE}    vault_url: https://v.vault.azure.net\n    tags: {{ {} }}\n",
            many.join(", ")
        ));
        assert!(
            out.contains("`tags` has 11 entries; at most 10 fit beside SecretSync's own 5 (Key Vault allows 15 per secret)"),
            "{out}"
        );
    }

    #[test]
    fn names_map_to_key_vaults_alphabet_and_back() {
        for (path, name) in [
            ("apps/db", "apps-sdb"),
            ("apps/db_url", "apps-sdb-uurl"),
            ("my-app/config.json", "my--app-sconfig-djson"),
            ("a b", "a-x20b"),
            ("é", "-xc3-xa9"),
        ] {
            assert_eq!(encode(path), name);
            assert_eq!(decode(name).as_deref(), Some(path));
        }
        // Not SecretSync's names: the fingerprint key, hand-made names, unescaped characters.
        for n in [
            "secretsync-fingerprint-key",
            "my-zsecret",
            "a-",
            "a-x2",
            "a-xZZ",
            "a-x41",
            "a-X20",
            "a_b",
        ] {
            assert_eq!(decode(n), None, "{n}");
        }
    }

    proptest! {
        #[test]
        fn decode_reverses_encode(p in "\\PC{0,40}") {
            let n = encode(&p);
            prop_assert!(n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            prop_assert_eq!(decode(&n), Some(p));
        }

        #[test]
        fn encode_is_injective(a in "[a-z/_.-]{0,8}", b in "[a-z/_.-]{0,8}") {
            prop_assume!(a != b);
            prop_assert_ne!(encode(&a), encode(&b));
        }
    }

    #[test]
    fn names_are_checked_after_mapping() {
        let r = AzureKeyVaultRules;
        assert_eq!(r.name("apps/", "db"), "apps-sdb");
        assert_eq!(r.path_of("apps/", "apps-sdb").as_deref(), Some("db"));
        assert_eq!(r.path_of("apps/", "other-sdb"), None);
        assert_eq!(r.path_of("", "secretsync-fingerprint-key"), None);
        assert!(r.check_name(&r.name("", "apps/db")).is_ok());
        assert!(r.check_name(&r.name("", &"x".repeat(127))).is_ok());
        let e = r
            .check_name(&r.name("", &format!("{}x", "x/".repeat(45))))
            .unwrap_err();
        assert!(
            e.contains("is 136 characters") && e.contains("at most 127"),
            "{e}"
        );
        for bad in ["a//b", "folder/", ".secretsync/x", "../x"] {
            assert!(r.check_name(&encode(bad)).is_err(), "{bad}");
        }
        assert!(r.check_size(MAX_VALUE_BYTES).is_ok());
        assert!(r.check_size(MAX_VALUE_BYTES + 1).is_err());
        assert!(r.check_prefix("apps/").is_ok() && r.check_prefix("").is_ok());
        assert!(r.check_prefix(&"p".repeat(127)).is_err());
        assert!(r.check_prefix(".secretsync/").is_err());
    }

    #[test]
    fn paths_that_differ_only_in_case_are_both_refused() {
        let mut plan = TargetPlan {
            target: "azure".into(),
            changes: vec![
                SecretChange::new("apps/DB", &encode("apps/DB"), ChangeKind::Added),
                SecretChange::new("apps/db", &encode("apps/db"), ChangeKind::Unchanged),
                SecretChange::new("apps/other", &encode("apps/other"), ChangeKind::Added),
            ],
            orphans_kept: vec![],
            refused: None,
            deletions_held: None,
            policy: Default::default(),
        };
        refuse_case_collisions(&mut plan);
        let [a, b, c] = &plan.changes[..] else {
            panic!()
        };
        for x in [a, b] {
            assert_eq!(x.kind, ChangeKind::Skipped);
            assert!(x.invalid && !x.writes());
            let r = x.reason.as_deref().unwrap();
            assert!(r.contains("`apps/DB`") && r.contains("`apps/db`"), "{r}");
        }
        assert_eq!(c.kind, ChangeKind::Added);
    }
}
