//! The `vault_kv2` target kind: another Vault or OpenBao (another cluster, namespace or mount)
//! as a destination. Settings, validation, and the naming and size rules checked before any
//! write.
//!
//! ```yaml
//! targets:
//!   - name: regional-vault
//!     type: vault_kv2
//!     address: https://vault.eu.example.com    # https unless loopback, like `vault.address`
//!     auth: { token: { token: ${OTHER_VAULT_TOKEN} } }   # same shape as `vault.auth`
//!     namespace: team-a                      # optional; ca_cert: optional
//!     mount: synced/                         # KV v2 mount (+ optional sub-path)
//!     secret_prefix: apps/                   # path below the mount = prefix + relative path
//!     destroy: false                         # orphans: soft delete (recoverable) by default
//!     imports: [base]
//! ```
//!
//! The connection never falls back to the environment (`VAULT_ADDR`, `VAULT_TOKEN`,
//! `VAULT_NAMESPACE` belong to the source Vault): `address` and `auth` are required, and a
//! `token` auth must name its token.

use crate::config::validate::{Validator, at};
use crate::config::{S, VaultSettings};
use crate::diag::Pos;

/// Longest name (the path below the configured mount) accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest value written, as canonical JSON in bytes (Vault's default request limit is
/// 32 MiB; a secret this large is a mistake, and every version is kept).
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Longest `secret_prefix`, in bytes.
pub const MAX_PREFIX_LEN: usize = 512;

crate::raw_target! {
    /// The YAML shape of a `vault_kv2` target.
    Raw {
        address: S<String>,
        namespace: S<String>,
        auth: S<crate::config::RawVaultAuth>,
        ca_cert: S<String>,
        mount: S<String>,
        destroy: S<bool>,
    }
}

/// A validated `vault_kv2` target.
#[derive(Debug, Clone, PartialEq)]
pub struct VaultKv2Settings {
    /// The destination's connection: `address` and `auth` are always set.
    pub vault: VaultSettings,
    /// The KV v2 mount and optional sub-path, ending in `/` (which part is the mount is asked
    /// of Vault at run time).
    pub mount: String,
    /// Orphans are destroyed (every version and the metadata) instead of soft-deleted.
    pub destroy: bool,
}

/// Validates the backend's own keys (the common ones are done by the caller).
pub(crate) fn lower(
    v: &mut Validator,
    mut r: Raw,
    pos: Option<Pos>,
    path: &str,
) -> VaultKv2Settings {
    if r.address.is_none() {
        v.missing(
            pos,
            &format!("{path}.address"),
            "the destination Vault's address, e.g. `https://vault.eu.example.com`; `VAULT_ADDR` is the source's and is not used",
        );
    }
    match &r.auth {
        None => v.missing(
            pos,
            &format!("{path}.auth"),
            "e.g. `auth: { token: { token: ${OTHER_VAULT_TOKEN} } }`; the source's credentials are never sent to a target",
        ),
        // A token method without its token would mean VAULT_TOKEN, the source's.
        Some(a) => {
            if let Some(t) = &a.value.token
                && t.value.token.is_none()
                && a.value.approle.is_none()
                && a.value.kubernetes.is_none()
            {
                v.missing(
                    at(t),
                    &format!("{path}.auth.token.token"),
                    "write `token: { token: ${OTHER_VAULT_TOKEN} }`; a `vault_kv2` target never takes VAULT_TOKEN (that is the source's)",
                );
            }
        }
    }
    let mount = match &r.mount {
        Some(m) => v.kv_mount(m).unwrap_or_default(),
        None => {
            v.missing(
                pos,
                &format!("{path}.mount"),
                "the KV v2 mount and optional sub-path to write into, e.g. `synced/`",
            );
            String::new()
        }
    };
    let destroy = r.destroy.as_ref().is_some_and(|d| d.value);
    let vault = v.vault_connection(
        path,
        r.address.take(),
        r.namespace.take(),
        r.auth.take(),
        r.ca_cert.take(),
        &None,
    );
    VaultKv2Settings {
        vault,
        mount,
        destroy,
    }
}

/// Checks a configured `secret_prefix`: a safe relative path (or empty), not below the
/// reserved `.secretsync/`.
pub fn check_prefix(p: &str) -> Result<(), String> {
    crate::path::check_relative_prefix(p, MAX_PREFIX_LEN)
}

/// Checks a full name (the path below the configured mount).
pub fn check_name(name: &str) -> Result<(), String> {
    if let Some(why) = crate::path::reject_key(name) {
        return Err(format!("secret path {why}"));
    }
    if name.ends_with('/') {
        return Err("secret path ends in `/`, which names a folder in Vault".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "secret path is {} bytes; this target allows at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// Checks a value's size (its canonical JSON).
pub fn check_size(bytes: usize) -> Result<(), String> {
    if bytes > MAX_VALUE_BYTES {
        return Err(format!(
            "secret value is {bytes} bytes as JSON; a vault_kv2 target writes at most {MAX_VALUE_BYTES} (1 MiB)"
        ));
    }
    Ok(())
}

/// KV v2's rules as this target applies them: safe relative paths of at most
/// [`MAX_NAME_LEN`] bytes, values of at most [`MAX_VALUE_BYTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VaultKv2Rules;

impl super::TargetRules for VaultKv2Rules {
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
    use crate::config::{TargetBackend, VaultAuth, load};

    fn env(k: &str) -> Option<String> {
        (k == "OTHER").then(|| "s3cret-token".to_string())
    }

    fn diagnostics(yaml: &str) -> String {
        crate::targets::test_util::diagnostics(yaml, &env)
    }

    const BASE: &str = "vault_sources:
  - mount: secret/base/
targets:
  - name: regional
    type: vault_kv2
";

    #[test]
    fn a_full_target_loads() {
        let yaml = format!(
            "{BASE}    address: http://127.0.0.1:8300
    auth: {{ token: {{ token: ${{OTHER}} }} }}
    namespace: team-a
    mount: /synced/sub
    secret_prefix: apps/
    destroy: true
    imports: [base]
"
        );
        let l = load(&yaml, &env);
        let c = l.config.unwrap_or_else(|| panic!("{}", diagnostics(&yaml)));
        let t = &c.targets[0];
        assert_eq!(t.backend.type_name(), "vault_kv2");
        assert_eq!(t.policy.secret_prefix, "apps/");
        let TargetBackend::VaultKv2(s) = &t.backend else {
            panic!("{:?}", t.backend)
        };
        assert_eq!(s.mount, "synced/sub/");
        assert!(s.destroy);
        assert_eq!(s.vault.address.as_deref(), Some("http://127.0.0.1:8300"));
        assert_eq!(s.vault.namespace.as_deref(), Some("team-a"));
        assert!(
            matches!(&s.vault.auth, Some(VaultAuth::Token(Some(t))) if t.expose() == "s3cret-token")
        );
        assert_eq!(
            t.backend.describe(),
            "vault_kv2 http://127.0.0.1:8300 synced/sub/"
        );
        assert!(!format!("{t:?}").contains("s3cret-token"));
    }

    #[test]
    fn address_auth_and_mount_are_required_and_never_taken_from_the_environment() {
        let out = diagnostics(&format!("{BASE}    imports: [base]\n"));
        for key in ["targets[0].address", "targets[0].auth", "targets[0].mount"] {
            assert!(
                out.contains(&format!("(`{key}`): missing required key")),
                "{out}"
            );
        }
        let out = diagnostics(&format!(
            "{BASE}    address: https://v.example.com\n    auth: {{ token: {{}} }}\n    mount: kv/\n"
        ));
        assert!(
            out.contains("`targets[0].auth.token.token`")
                && out.contains("never takes VAULT_TOKEN"),
            "{out}"
        );
    }

    #[test]
    fn the_connection_is_checked_like_the_source_vault() {
        let out = diagnostics(&format!(
            "{BASE}    address: http://vault.example.com
    auth: {{ token: {{ token: x }}, approle: {{ role_id: r, secret_id: s }} }}
    mount: ../up
"
        ));
        assert!(out.contains("plain http to a non-loopback host"), "{out}");
        assert!(
            out.contains(
                "`targets[0].auth` must hold exactly one of `token`, `approle`, `kubernetes`"
            ),
            "{out}"
        );
        assert!(out.contains("contains `..`"), "{out}");
        let out = diagnostics(&format!(
            "{BASE}    address: https://v.example.com\n    auth: {{ approle: {{ role_id: r }} }}\n    mount: kv/\n"
        ));
        assert!(out.contains("`targets[0].auth.approle.secret_id`"), "{out}");
    }

    #[test]
    fn an_aws_key_is_rejected_with_its_line_and_the_closest_key() {
        let out = diagnostics(&format!(
            "{BASE}    address: https://v.example.com
    auth: {{ token: {{ token: x }} }}
    mount: kv/
    region: us-east-1
"
        ));
        // No key of this kind is near `region`: the kinds that have it are named.
        assert!(
            out.contains("error at line 9, column 5 (`targets[0].region`): unknown key `region`"),
            "{out}"
        );
        assert!(
            out.contains("`region` is a key of `aws_secretsmanager` and `aws_ssm` targets"),
            "{out}"
        );
        let out = diagnostics(&format!(
            "{BASE}    adress: https://v.example.com
    auth: {{ token: {{ token: x }} }}
    mount: kv/
"
        ));
        assert!(
            out.contains("line 6") && out.contains("did you mean `address`?"),
            "{out}"
        );
    }

    #[test]
    fn names_prefixes_and_sizes() {
        assert!(check_name("apps/db").is_ok());
        assert!(check_name("apps/config..bak").is_ok());
        for bad in ["", "apps/../x", "/abs", "a//b", "folder/", "a\nb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert!(check_name(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(check_prefix("").is_ok() && check_prefix("apps/").is_ok());
        assert!(check_prefix("apps-").is_ok());
        assert!(check_prefix(".secretsync/x/").is_err());
        assert!(check_prefix("../x/").is_err());
        assert!(check_size(MAX_VALUE_BYTES).is_ok() && check_size(MAX_VALUE_BYTES + 1).is_err());
    }
}
