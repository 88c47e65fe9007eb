//! The `gcp_secretmanager` target kind: Google Cloud Secret Manager (global secrets with
//! automatic or user-managed replication, or regional secrets). Settings, validation, the
//! mapping of relative paths to secret ids, the ownership labels, and the naming and size rules
//! checked before any write.
//!
//! ```yaml
//! targets:
//!   - name: gcp
//!     type: gcp_secretmanager
//!     project: my-project
//!     replication: automatic              # or a list of regions: [europe-west1, europe-west4]
//!     endpoint: https://127.0.0.1:8443    # optional override (tests, private endpoints)
//!     ca_cert: tests/ca.pem               # optional extra CA for that endpoint
//!     auth: { token: "${GCP_ACCESS_TOKEN}" } # optional; default: the Google credential chain
//!     secret_prefix: apps/
//!     imports: [base]
//! ```
//!
//! `location: europe-west1` instead of `replication` makes regional secrets (they live in
//! that region only; the regional endpoint is used unless `endpoint` says otherwise).
//!
//! Secret ids allow only `[A-Za-z0-9_-]`, at most 255 characters: [`encode_id`] maps
//! `secret_prefix` + relative path reversibly ([`decode_id`]), with `_` as the escape
//! character: `/` becomes `__`, every other byte outside `[A-Za-z0-9-]` (`_` itself included)
//! becomes `_` and two upper-case hex digits (`app/db_main.json` → `app__db_5Fmain_2Ejson`).
//! The mapping is injective, so two paths never share an id.
//!
//! Labels (keys and values: lower-case letters, digits, `_`, `-`, at most 63 characters) carry
//! the ownership marks ([`LABEL_MANAGED`] …): [`label_value`] maps an owner scope or target name
//! that does not fit, and [`fingerprint_label`] writes the keyed fingerprint as 52 characters
//! of lower-case unpadded base32.

use crate::config::validate::{Validator, at};
use crate::config::{S, Sensitive};
use crate::de::Spanned;
use crate::diag::Pos;
use sha2::{Digest, Sha256};

/// Longest secret id Secret Manager accepts.
pub const MAX_ID_LEN: usize = 255;
/// Largest payload Secret Manager accepts (64 KiB).
pub const MAX_VALUE_BYTES: usize = 65_536;
/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest `secret_prefix`, in bytes (its id is checked with each name).
pub const MAX_PREFIX_LEN: usize = 200;

/// `managed-by` = `secretsync`.
pub const LABEL_MANAGED: &str = "managed-by";
/// The owner scope ([`label_value`]).
pub const LABEL_OWNER: &str = "secretsync-owner";
/// The target name ([`label_value`]).
pub const LABEL_TARGET: &str = "secretsync-target";
/// The keyed fingerprint of the value written ([`fingerprint_label`]).
pub const LABEL_FINGERPRINT: &str = "secretsync-fingerprint";
/// The version number written.
pub const LABEL_VERSION: &str = "secretsync-version";
/// The tool's own bookkeeping secrets (`fingerprint-key`).
pub const LABEL_ROLE: &str = "secretsync-role";
/// Set while an orphan's versions are disabled (the first step of its deletion).
pub const LABEL_DISABLED: &str = "secretsync-disabled";

crate::raw_target! {
    /// The YAML shape of a `gcp_secretmanager` target.
    Raw {
        project: S<String>,
        location: S<String>,
        replication: S<serde_json::Value>,
        endpoint: S<String>,
        ca_cert: S<String>,
        auth: S<RawGcpAuth>,
    }
}

/// `auth:` of a `gcp_secretmanager` target.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGcpAuth {
    /// A static OAuth 2 access token (sent as `Authorization: Bearer …`).
    pub token: S<String>,
}

/// Where new secrets are replicated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Replication {
    /// Google chooses (`replication: automatic`, the default).
    #[default]
    Automatic,
    /// These regions (`replication: [europe-west1, europe-west4]`).
    UserManaged(Vec<String>),
}

/// A validated `gcp_secretmanager` target. `Debug` redacts the token.
#[derive(Debug, Clone, PartialEq)]
pub struct GcpSmSettings {
    pub project: String,
    /// Regional secrets in this location (no replication then).
    pub location: Option<String>,
    pub replication: Replication,
    /// The API endpoint (`https://secretmanager.googleapis.com` or the regional one by default).
    pub endpoint: Option<String>,
    /// A PEM file with an extra CA the endpoint's certificate is checked against.
    pub ca_cert: Option<String>,
    /// A static access token; `None`: the Google credential chain.
    pub token: Option<Sensitive>,
}

impl GcpSmSettings {
    /// The parent of the target's secrets: `projects/p` or `projects/p/locations/l`.
    pub fn parent(&self) -> String {
        match &self.location {
            Some(l) => format!("projects/{}/locations/{l}", self.project),
            None => format!("projects/{}", self.project),
        }
    }

    /// Where it writes, for `graph`.
    pub fn describe(&self) -> String {
        match (&self.location, &self.replication) {
            (Some(_), _) => self.parent(),
            (None, Replication::Automatic) => self.parent(),
            (None, Replication::UserManaged(r)) => {
                format!("{} (replicas: {})", self.parent(), r.join(", "))
            }
        }
    }
}

/// A project id (6–30 lower-case letters, digits and `-`, starting with a letter, not ending
/// with `-`) or a project number.
pub fn check_project(p: &str) -> Result<(), String> {
    if !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    let ok = (6..=30).contains(&p.len())
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && !p.ends_with('-')
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Google Cloud project id",
            p.escape_debug()
        ))
    }
}

/// A Google Cloud region name such as `europe-west1` or `us-central1`.
pub fn check_gcp_region(r: &str) -> Result<(), String> {
    let ok = r.split_once('-').is_some_and(|(area, place)| {
        !area.is_empty()
            && area.bytes().all(|b| b.is_ascii_lowercase())
            && place.len() >= 2
            && place.starts_with(|c: char| c.is_ascii_lowercase())
            && place.ends_with(|c: char| c.is_ascii_digit())
            && place
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Google Cloud region name",
            r.escape_debug()
        ))
    }
}

/// Validates the backend's own keys (the common ones are done by the caller).
pub(crate) fn lower(v: &mut Validator, mut r: Raw, pos: Option<Pos>, path: &str) -> GcpSmSettings {
    let project = match r.project.take() {
        None => {
            v.missing(
                pos,
                &format!("{path}.project"),
                "the Google Cloud project id the secrets live in, e.g. `my-project`",
            );
            String::new()
        }
        Some(p) => {
            if let Err(e) = check_project(&p.value) {
                v.error(
                    &p,
                    e,
                    "write the project id (6 to 30 lower-case letters, digits and `-`) or the project number",
                );
            }
            p.value
        }
    };
    let location = r.location.take().map(|l| {
        if let Err(e) = check_gcp_region(&l.value) {
            v.error(
                &l,
                e,
                "write the region of the regional secrets, e.g. `europe-west1`",
            );
        }
        l.value
    });
    let replication = match r.replication.take() {
        None => Replication::Automatic,
        Some(rep) => {
            if location.is_some() {
                v.error(
                    &rep,
                    "`replication` and `location` both say where secrets live",
                    "keep one: `location` makes regional secrets (no replication), `replication` global ones",
                );
            }
            replication(v, &rep)
        }
    };
    let endpoint = r.endpoint.take().map(|e| {
        if let Err(msg) = crate::config::validate::check_endpoint(&e.value) {
            v.error(
                &e,
                msg,
                "use `https://` (plain `http://` only to a loopback address, for tests)",
            );
        }
        e.value.trim_end_matches('/').to_string()
    });
    let ca_cert = r.ca_cert.take().map(|c| {
        if endpoint.is_none() {
            v.error(
                &c,
                "`ca_cert` without `endpoint`",
                "Google's own endpoints use public certificates; set `endpoint` to the server this CA signed, or remove `ca_cert`",
            );
        }
        c.value
    });
    let token = r.auth.take().and_then(|a| {
        let auth = &a;
        match a.value.token {
            Some(t) if t.value.trim().is_empty() => {
                v.error(
                    &t,
                    "`auth.token` is empty",
                    "set it to an access token (`${GCP_ACCESS_TOKEN}`), or remove `auth` to use the Google credential chain",
                );
                None
            }
            Some(t) => Some(Sensitive::new(t.value)),
            None => {
                v.missing(
                    at(auth),
                    &format!("{path}.auth.token"),
                    "an access token, e.g. `${GCP_ACCESS_TOKEN}`; without `auth` the Google credential chain is used",
                );
                None
            }
        }
    });
    GcpSmSettings {
        project,
        location,
        replication,
        endpoint,
        ca_cert,
        token,
    }
}

fn replication(v: &mut Validator, rep: &Spanned<serde_json::Value>) -> Replication {
    use serde_json::Value;
    let help =
        "write `replication: automatic` or a list of regions, e.g. `[europe-west1, europe-west4]`";
    match &rep.value {
        Value::String(s) if s == "automatic" => Replication::Automatic,
        Value::Array(items) if items.is_empty() => {
            v.error(rep, "`replication` is an empty list of regions", help);
            Replication::Automatic
        }
        Value::Array(items) => {
            let mut regions: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(r) => {
                        if let Err(e) = check_gcp_region(r) {
                            v.error(rep, format!("`replication[{i}]`: {e}"), help);
                        } else if regions.contains(r) {
                            v.error(
                                rep,
                                format!("`replication[{i}]`: region `{r}` is listed twice"),
                                "list each region once",
                            );
                        } else {
                            regions.push(r.clone());
                        }
                    }
                    _ => v.error(
                        rep,
                        format!("`replication[{i}]` is not a region name"),
                        help,
                    ),
                }
            }
            Replication::UserManaged(regions)
        }
        other => {
            let shown = match other {
                Value::String(s) => format!("`{}`", s.escape_debug()),
                _ => "this value".into(),
            };
            v.error(
                rep,
                format!("{shown} is not a replication: expected `automatic` or a list of regions"),
                help,
            );
            Replication::Automatic
        }
    }
}

/// Whether a byte stands for itself in a secret id.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The secret id of a full name (`secret_prefix` + relative path): `/` → `__`, any other byte
/// outside `[A-Za-z0-9-]` → `_XX` (upper-case hex). Injective; [`decode_id`] inverts it.
pub fn encode_id(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if plain(b) {
            out.push(b as char);
        } else if b == b'/' {
            out.push_str("__");
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The full name of a secret id written by [`encode_id`]; `None` for an id that encoding never
/// produces (lower-case hex, a byte that did not need escaping, a bad escape, not UTF-8).
pub fn decode_id(id: &str) -> Option<String> {
    let bytes = id.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if plain(b) {
            out.push(b);
            i += 1;
            continue;
        }
        if b != b'_' {
            return None;
        }
        match bytes.get(i + 1) {
            Some(b'_') => {
                out.push(b'/');
                i += 2;
            }
            Some(_) => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex
                    .iter()
                    .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h))
                {
                    return None;
                }
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if plain(v) || v == b'/' {
                    return None;
                }
                out.push(v);
                i += 3;
            }
            None => return None,
        }
    }
    String::from_utf8(out).ok()
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Lower-case unpadded base32 (RFC 4648 alphabet).
pub fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The bytes of [`base32`]'s output; `None` for anything it does not write.
pub fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = BASE32.iter().position(|&x| x == c)? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding, as `base32` writes them.
    (buf == 0 && bits < 5).then_some(out)
}

/// The label form of a keyed fingerprint (64 hex characters): 52 characters of base32.
pub fn fingerprint_label(hex_fingerprint: &str) -> Option<String> {
    hex::decode(hex_fingerprint).ok().map(|b| base32(&b))
}

/// The fingerprint (64 hex characters) of its label form.
pub fn fingerprint_of_label(label: &str) -> Option<String> {
    unbase32(label)
        .filter(|b| b.len() == 32)
        .map(|b| hex::encode(&b))
}

/// Whether a string is a valid label value as it is.
pub fn is_label_value(s: &str) -> bool {
    s.len() <= MAX_LABEL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The label value of an owner scope or target name: itself when it is a valid label value,
/// otherwise a readable lower-case form and a hash of the original (`Prod.EU` →
/// `prod-eu-` + 12 base32 characters), so that different names keep different values.
pub fn label_value(s: &str) -> String {
    if is_label_value(s) {
        return s.to_string();
    }
    let readable: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_LABEL_LEN - 13)
        .collect();
    let hash = base32(&Sha256::digest(s.as_bytes()))[..12].to_string();
    format!("{readable}-{hash}")
}

/// Checks a configured `secret_prefix`: a safe relative path (or empty), not below the
/// reserved `.secretsync/`.
pub fn check_prefix(p: &str) -> Result<(), String> {
    crate::path::check_relative_prefix(p, MAX_PREFIX_LEN)
}

/// Checks a secret id (an encoded full name).
pub fn check_name(id: &str) -> Result<(), String> {
    let Some(name) = decode_id(id) else {
        return Err(format!(
            "`{}` is not a secret id SecretSync writes",
            id.escape_debug()
        ));
    };
    if let Some(why) = crate::path::reject_key(&name) {
        return Err(format!("secret path {why}"));
    }
    if name.ends_with('/') {
        return Err("secret path ends in `/`".into());
    }
    if name.starts_with(crate::diff::RESERVED_PREFIX) {
        return Err(format!(
            "names below `{}` are reserved for SecretSync's own bookkeeping; rename the Vault secret or change `secret_prefix`",
            crate::diff::RESERVED_PREFIX
        ));
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "secret id `{id}` (from `{name}`) is {} characters; Secret Manager allows at most {MAX_ID_LEN} (`/` counts 2, other characters outside `A-Za-z0-9-` count 3 each): shorten the path or `secret_prefix`",
            id.len()
        ));
    }
    Ok(())
}

/// Checks a value's size (its canonical JSON).
pub fn check_size(bytes: usize) -> Result<(), String> {
    if bytes > MAX_VALUE_BYTES {
        return Err(format!(
            "secret value is {bytes} bytes as JSON; Secret Manager accepts at most {MAX_VALUE_BYTES} (64 KiB)"
        ));
    }
    Ok(())
}

/// Secret Manager's rules as this target applies them: ids from [`encode_id`] of at most
/// [`MAX_ID_LEN`] characters, values of at most [`MAX_VALUE_BYTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GcpSmRules;

impl super::TargetRules for GcpSmRules {
    fn name(&self, prefix: &str, path: &str) -> String {
        encode_id(&format!("{prefix}{path}"))
    }
    fn path_of(&self, prefix: &str, name: &str) -> Option<String> {
        decode_id(name)?.strip_prefix(prefix).map(str::to_string)
    }
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
    use crate::config::{TargetBackend, load};
    use crate::targets::TargetRules;
    use proptest::prelude::*;

    fn env(k: &str) -> Option<String> {
        (k == "GCP_ACCESS_TOKEN").then(|| "ya29.s3cret-token".to_string())
    }

    fn diagnostics(yaml: &str) -> String {
        crate::targets::test_util::diagnostics(yaml, &env)
    }

    fn settings(yaml: &str) -> GcpSmSettings {
        let l = load(yaml, &env);
        let c = l.config.unwrap_or_else(|| panic!("{}", diagnostics(yaml)));
        let TargetBackend::GcpSecretManager(s) = &c.targets[0].backend else {
            panic!("{:?}", c.targets[0].backend)
        };
        s.clone()
    }

    const BASE: &str = "vault_sources:
  - mount: secret/base/
targets:
  - name: gcp
    type: gcp_secretmanager
";

    #[test]
    fn the_module_example_loads() {
        let yaml = crate::targets::test_util::module_example(include_str!("gcp_secretmanager.rs"));
        let l = load(&yaml, &env);
        let c = l.config.unwrap_or_else(|| panic!("{}", diagnostics(&yaml)));
        let t = &c.targets[0];
        assert_eq!(t.backend.type_name(), "gcp_secretmanager");
        assert_eq!(t.policy.secret_prefix, "apps/");
        let TargetBackend::GcpSecretManager(s) = &t.backend else {
            panic!("{:?}", t.backend)
        };
        assert_eq!(s.project, "my-project");
        assert_eq!(s.replication, Replication::Automatic);
        assert_eq!(s.endpoint.as_deref(), Some("https://127.0.0.1:8443"));
        assert_eq!(s.ca_cert.as_deref(), Some("tests/ca.pem"));
        assert_eq!(
            s.token.as_ref().map(Sensitive::expose),
            Some("ya29.s3cret-token")
        );
        assert!(!format!("{t:?}").contains("s3cret-token"), "{t:?}");
        assert_eq!(
            t.backend.describe(),
            "gcp_secretmanager projects/my-project"
        );
    }

    #[test]
    fn regions_and_locations() {
        let s = settings(&format!(
            "{BASE}    project: my-project\n    replication: [europe-west1, us-central1]\n"
        ));
        assert_eq!(
            s.replication,
            Replication::UserManaged(vec!["europe-west1".into(), "us-central1".into()])
        );
        assert_eq!(s.token, None);
        let s = settings(&format!(
            "{BASE}    project: \"123456789012\"\n    location: europe-west4\n"
        ));
        assert_eq!(s.parent(), "projects/123456789012/locations/europe-west4");
    }

    #[test]
    fn diagnostics_name_the_key_and_line() {
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    imports: [base]\n")), @"error at line 4, column 9 (`targets[0].project`): missing required key `project`; add `project: …` (the Google Cloud project id the secrets live in, e.g. `my-project`)");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: My_Project\n")), @"error at line 6, column 14 (`targets[0].project`): `My_Project` is not a Google Cloud project id; write the project id (6 to 30 lower-case letters, digits and `-`) or the project number");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    location: europe-west1\n    replication: automatic\n")), @"error at line 8, column 18 (`targets[0].replication`): `replication` and `location` both say where secrets live; keep one: `location` makes regional secrets (no replication), `replication` global ones");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    replication: [europe-west1, Mars, europe-west1]\n")), @r"
        error at line 7, column 18 (`targets[0].replication`): `replication[1]`: `Mars` is not a Google Cloud region name; write `replication: automatic` or a list of regions, e.g. `[europe-west1, europe-west4]`
        error at line 7, column 18 (`targets[0].replication`): `replication[2]`: region `europe-west1` is listed twice; list each region once
        ");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    replication: []\n")), @"error at line 7, column 18 (`targets[0].replication`): `replication` is an empty list of regions; write `replication: automatic` or a list of regions, e.g. `[europe-west1, europe-west4]`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    replication: manual\n")), @"error at line 7, column 18 (`targets[0].replication`): `manual` is not a replication: expected `automatic` or a list of regions; write `replication: automatic` or a list of regions, e.g. `[europe-west1, europe-west4]`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    endpoint: http://secretmanager.example.com\n")), @"error at line 7, column 15 (`targets[0].endpoint`): `http://secretmanager.example.com` uses plain http to a non-loopback host; secrets would cross the network unencrypted; use `https://` (plain `http://` only to a loopback address, for tests)");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    ca_cert: ca.pem\n")), @"error at line 7, column 14 (`targets[0].ca_cert`): `ca_cert` without `endpoint`; Google's own endpoints use public certificates; set `endpoint` to the server this CA signed, or remove `ca_cert`");
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    auth: {{ token: \"\" }}\n")), @"error at line 7, column 20 (`targets[0].auth.token`): `auth.token` is empty; set it to an access token (`${GCP_ACCESS_TOKEN}`), or remove `auth` to use the Google credential chain");
    }

    #[test]
    fn a_key_of_another_kind_is_rejected_with_its_line() {
        insta::assert_snapshot!(diagnostics(&format!("{BASE}    project: my-project\n    region: us-east-1\n")), @"error at line 7, column 5 (`targets[0].region`): unknown key `region`; `region` is a key of `aws_secretsmanager` and `aws_ssm` targets, not of this target's `type`: remove it, or change `type`");
        let out = diagnostics(&format!("{BASE}    projct: my-project\n"));
        assert!(
            out.contains("line 6") && out.contains("did you mean `project`?"),
            "{out}"
        );
        let out = diagnostics(&format!(
            "{BASE}    project: my-project\n    auth: {{ key_file: x }}\n"
        ));
        assert!(out.contains("unknown key `key_file`"), "{out}");
    }

    #[test]
    fn ids_are_reversible_and_readable() {
        for (name, id) in [
            ("app/db", "app__db"),
            ("app/db_main.json", "app__db_5Fmain_2Ejson"),
            ("a-b/C9", "a-b__C9"),
            ("x y", "x_20y"),
            ("é", "_C3_A9"),
        ] {
            assert_eq!(encode_id(name), id);
            assert_eq!(decode_id(id).as_deref(), Some(name));
        }
        // Ids that encoding never makes are nobody's paths.
        for id in ["a_2e", "a_2", "a_", "a_41", "a_2F", "a.b", "_FF"] {
            assert_eq!(decode_id(id), None, "{id}");
        }
    }

    #[test]
    fn names_prefixes_and_sizes() {
        let r = GcpSmRules;
        assert_eq!(r.name("apps/", "db"), "apps__db");
        assert_eq!(r.path_of("apps/", "apps__db").as_deref(), Some("db"));
        assert_eq!(r.path_of("apps/", "other__db"), None);
        assert!(r.check_name(&r.name("", &"a".repeat(255))).is_ok());
        let e = r
            .check_name(&r.name("", &format!("{}a", "a/".repeat(90))))
            .unwrap_err();
        assert!(e.contains("at most 255"), "{e}");
        let e = r.check_name(&encode_id(".secretsync/x")).unwrap_err();
        assert!(e.contains("reserved"), "{e}");
        assert!(r.check_name(&encode_id("a/../b")).is_err());
        assert!(
            r.check_size(MAX_VALUE_BYTES).is_ok() && r.check_size(MAX_VALUE_BYTES + 1).is_err()
        );
        assert!(check_prefix("apps/").is_ok() && check_prefix("../x/").is_err());
    }

    #[test]
    fn labels_fit_google_rules() {
        assert_eq!(label_value("conformance"), "conformance");
        let l = label_value("Prod.EU");
        assert!(l.starts_with("prod-eu-") && is_label_value(&l), "{l}");
        assert_ne!(label_value("Prod.EU"), label_value("prod.eu"));
        assert!(is_label_value(&label_value(&"X".repeat(200))));
        let fp = "ab".repeat(32);
        let label = fingerprint_label(&fp).unwrap();
        assert_eq!(label.len(), 52);
        assert!(is_label_value(&label));
        assert_eq!(fingerprint_of_label(&label).as_deref(), Some(fp.as_str()));
        assert_eq!(fingerprint_of_label("not-base32!"), None);
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(name in "\\PC{0,40}") {
            let id = encode_id(&name);
            prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            prop_assert_eq!(decode_id(&id), Some(name));
        }

        #[test]
        fn distinct_names_get_distinct_ids(a in "[a-z/_.-]{0,12}", b in "[a-z/_.-]{0,12}") {
            prop_assume!(a != b);
            prop_assert_ne!(encode_id(&a), encode_id(&b));
        }

        #[test]
        fn base32_round_trips(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(unbase32(&base32(&data)), Some(data));
        }
    }
}
