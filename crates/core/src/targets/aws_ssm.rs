//! The `aws_ssm` target kind (AWS Systems Manager Parameter Store): settings, validation, the
//! naming, size and tier rules checked before any write, and how a secret maps to parameters.
//!
//! ```yaml
//! targets:
//!   - name: params
//!     type: aws_ssm
//!     region: us-east-1
//!     role_arn: arn:aws:iam::123456789012:role/SecretSync   # optional; external_id: optional
//!     secret_prefix: /myorg/prod/     # parameter name = prefix + relative path (+ /<key>)
//!     mapping: per_key                # whole (default) | per_key
//!     kms_key_id: alias/params        # optional: the KMS key of the SecureStrings
//!     imports: [base]
//! ```
//!
//! Every parameter is a `SecureString`.
//!
//! * `mapping: whole`: one parameter per secret, named prefix + relative path, holding the
//!   secret's canonical JSON.
//! * `mapping: per_key`: one parameter per top-level key, named prefix + relative path + `/` +
//!   key. A string value is stored as itself, any other value as its canonical JSON (the number
//!   `5` and the string `"5"` are both stored as `5`). A key must be one valid name segment
//!   (letters, digits, `_.-`): with that, a parameter name splits into relative path and key at
//!   its last `/`, so the names alone say which secret a parameter belongs to.
//!
//! Reading back for the plan ([`AwsSsmRules::rebuild`]): `whole` parses the stored JSON (an
//! object; anything else is a difference); `per_key` compares what is stored, key by key: a
//! stored string equal to the desired value's stored form counts as that value (so `"5"` stored
//! for a desired number `5` is no difference, as nothing a reader of the parameter sees would
//! change), any other stored string is read as a string and differs.
//!
//! Limits (AWS's, enforced here because emulators accept more): a value of at most 4,096 bytes
//! goes to the Standard tier, up to 8,192 bytes to the Advanced tier, anything bigger is
//! rejected before any write; names use `a-zA-Z0-9_.-/`, have at most 15 levels, at most 1,011
//! characters counting the ARN in front of them (`arn:aws:ssm:<region>:<account>:parameter`),
//! and cannot start with `aws` or `ssm` in any case.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::S;
use crate::config::validate::Validator;
use crate::secret::SecretValue;

/// Longest parameter name, counting the ARN in front of it.
pub const MAX_NAME_WITH_ARN: usize = 1011;
/// Most levels (segments) in a parameter name.
pub const MAX_LEVELS: usize = 15;
/// Largest value of a Standard-tier parameter, in bytes.
pub const STANDARD_MAX_BYTES: usize = 4096;
/// Largest value of an Advanced-tier parameter, in bytes.
pub const ADVANCED_MAX_BYTES: usize = 8192;
/// Names below this prefix are SecretSync's own bookkeeping (never desired, never listed).
pub const RESERVED_PREFIX: &str = "/.secretsync/";
/// The parameter holding the account and region's fingerprint key.
pub const KEY_PARAMETER: &str = "/.secretsync/fingerprint-key";
/// Tag on every parameter: the relative path of the secret it belongs to.
pub const TAG_PATH: &str = "secretsync:path";
/// Default ceiling on write calls per second when `writes_per_second` is not set: Parameter
/// Store's default (standard) throughput allows about 3 `PutParameter` calls per second.
pub const DEFAULT_WRITES_PER_SECOND: u32 = 3;
/// The prefix used when `secret_prefix` is empty.
pub const ROOT_PREFIX: &str = "/";

/// How a secret is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mapping {
    /// One parameter holding the canonical JSON.
    #[default]
    Whole,
    /// One parameter per top-level key.
    PerKey,
}

impl Mapping {
    pub fn as_str(self) -> &'static str {
        match self {
            Mapping::Whole => "whole",
            Mapping::PerKey => "per_key",
        }
    }
}

/// A parameter tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Standard,
    Advanced,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "Standard",
            Tier::Advanced => "Advanced",
        }
    }

    /// The tier a stored value of `bytes` needs; too big is an error.
    pub fn for_size(bytes: usize) -> Result<Tier, String> {
        if bytes <= STANDARD_MAX_BYTES {
            Ok(Tier::Standard)
        } else if bytes <= ADVANCED_MAX_BYTES {
            Ok(Tier::Advanced)
        } else {
            Err(format!(
                "value is {bytes} bytes; Parameter Store allows at most {ADVANCED_MAX_BYTES} (Advanced tier)"
            ))
        }
    }
}

/// One parameter a secret maps to: its name, the string stored, and the tier it needs.
pub struct Param {
    pub name: String,
    /// The key (`per_key`), or `None` for the one parameter of `whole`.
    pub key: Option<String>,
    pub value: Zeroizing<String>,
    pub tier: Tier,
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Param({}, {} bytes, {:?})",
            self.name,
            self.value.len(),
            self.tier
        )
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}

fn reserved_start(s: &str) -> bool {
    let l = s.trim_start_matches('/').to_ascii_lowercase();
    l.starts_with("aws") || l.starts_with("ssm")
}

/// Checks one name segment (a `per_key` key).
pub fn check_segment(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("an empty key cannot name a parameter".into());
    }
    if let Some(c) = s.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "key `{}` contains `{}`; with `mapping: per_key` a key names a parameter, which allows letters, digits and `_.-`",
            s.escape_debug(),
            c.escape_debug()
        ));
    }
    Ok(())
}

/// Checks a configured `secret_prefix`.
pub fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    if !p.starts_with('/') || !p.ends_with('/') {
        return Err(
            "an aws_ssm secret prefix is a hierarchy path: it starts and ends with `/` (e.g. `/myorg/prod/`)"
                .into(),
        );
    }
    if let Some(c) = p.chars().find(|c| !allowed(*c) && *c != '/') {
        return Err(format!(
            "secret prefix contains `{}`, which Parameter Store does not allow in names",
            c.escape_debug()
        ));
    }
    if p.contains("//") {
        return Err("secret prefix contains an empty level (`//`)".into());
    }
    if reserved_start(p) {
        return Err("Parameter Store names cannot start with `aws` or `ssm` (in any case)".into());
    }
    if p.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "names below `{RESERVED_PREFIX}` are reserved for SecretSync's own bookkeeping"
        ));
    }
    if p.len() > 512 {
        return Err("secret prefix is longer than 512 characters".into());
    }
    Ok(())
}

/// The partition of a region, for the ARN length.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso") {
        "aws-iso"
    } else {
        "aws"
    }
}

/// The longest name Parameter Store accepts in `region` (1,011 characters minus the ARN in
/// front of the name: `arn:<partition>:ssm:<region>:<12-digit account>:parameter`).
pub fn max_name_len(region: &str) -> usize {
    let arn = format!(
        "arn:{}:ssm:{region}:123456789012:parameter",
        partition(region)
    );
    MAX_NAME_WITH_ARN.saturating_sub(arn.len())
}

/// The rules of one `aws_ssm` target.
#[derive(Debug, Clone)]
pub struct AwsSsmRules {
    pub mapping: Mapping,
    /// The longest name in the target's region ([`max_name_len`]).
    pub max_name_len: usize,
}

impl AwsSsmRules {
    pub fn new(mapping: Mapping, region: &str) -> Self {
        AwsSsmRules {
            mapping,
            max_name_len: max_name_len(region),
        }
    }

    /// The prefix names start with (`/` for an empty one).
    pub fn effective_prefix(prefix: &str) -> &str {
        if prefix.is_empty() {
            ROOT_PREFIX
        } else {
            prefix
        }
    }

    /// Checks a full parameter name against Parameter Store's rules.
    pub fn check_parameter_name(&self, name: &str) -> Result<(), String> {
        if !name.starts_with('/') {
            return Err(format!(
                "parameter name `{name}` does not start with `/`; set a `secret_prefix` such as `/myorg/`"
            ));
        }
        if let Some(c) = name.chars().find(|c| !allowed(*c) && *c != '/') {
            return Err(format!(
                "parameter name contains `{}`; Parameter Store allows letters, digits and `_.-/`",
                c.escape_debug()
            ));
        }
        if name.ends_with('/') || name.contains("//") {
            return Err(format!("parameter name `{name}` has an empty level"));
        }
        if reserved_start(name) {
            return Err(format!(
                "parameter name `{name}` starts with `aws` or `ssm`, which Parameter Store reserves"
            ));
        }
        if name.starts_with(RESERVED_PREFIX) {
            return Err(format!(
                "names below `{RESERVED_PREFIX}` are reserved for SecretSync's own bookkeeping; rename the Vault secret or change `secret_prefix`"
            ));
        }
        let levels = name.split('/').filter(|s| !s.is_empty()).count();
        if levels > MAX_LEVELS {
            return Err(format!(
                "parameter name `{name}` has {levels} levels; Parameter Store allows at most {MAX_LEVELS}"
            ));
        }
        if name.len() > self.max_name_len {
            return Err(format!(
                "parameter name is {} characters; Parameter Store allows at most {} in this region (1011 with the ARN)",
                name.len(),
                self.max_name_len
            ));
        }
        Ok(())
    }

    /// The stored string of one `per_key` value: a string as itself, anything else as its
    /// canonical JSON.
    pub fn stored_form(v: &Value) -> Zeroizing<String> {
        Zeroizing::new(match v {
            Value::String(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
    }

    /// The parameters a secret named `name` (prefix + relative path) maps to, every rule
    /// checked: names, empty values, sizes (and so tiers).
    pub fn parameters(&self, name: &str, value: &SecretValue) -> Result<Vec<Param>, String> {
        match self.mapping {
            Mapping::Whole => {
                self.check_parameter_name(name)?;
                let json = Zeroizing::new(value.canonical_json());
                let tier = Tier::for_size(json.len()).map_err(|e| format!("secret {e}"))?;
                Ok(vec![Param {
                    name: name.to_string(),
                    key: None,
                    value: json,
                    tier,
                }])
            }
            Mapping::PerKey => {
                if value.is_empty() {
                    return Err(
                        "secret has no keys; with `mapping: per_key` each key is one parameter, so an empty secret cannot be stored"
                            .into(),
                    );
                }
                let mut out = Vec::with_capacity(value.len());
                for (k, v) in value.expose() {
                    check_segment(k)?;
                    let pname = format!("{name}/{k}");
                    self.check_parameter_name(&pname)?;
                    let stored = Self::stored_form(v);
                    if stored.is_empty() {
                        return Err(format!(
                            "key `{k}` is an empty string; Parameter Store cannot store an empty value"
                        ));
                    }
                    let tier =
                        Tier::for_size(stored.len()).map_err(|e| format!("key `{k}`: {e}"))?;
                    out.push(Param {
                        name: pname,
                        key: Some(k.clone()),
                        value: stored,
                        tier,
                    });
                }
                Ok(out)
            }
        }
    }

    /// The relative path and key (`per_key`) of a parameter name under `prefix`, or `None`
    /// when the name cannot be one of this mapping's parameters.
    pub fn split<'a>(&self, prefix: &str, name: &'a str) -> Option<(&'a str, Option<&'a str>)> {
        let rel = name.strip_prefix(Self::effective_prefix(prefix))?;
        if rel.is_empty() {
            return None;
        }
        match self.mapping {
            Mapping::Whole => Some((rel, None)),
            Mapping::PerKey => {
                let (path, key) = rel.rsplit_once('/')?;
                (!path.is_empty() && !key.is_empty()).then_some((path, Some(key)))
            }
        }
    }

    /// The value a secret's stored parameters stand for (`stored`: key → string; `whole` uses
    /// the key `""`), read in the light of `desired` (see the module docs): `None` when the
    /// stored form is not a secret (`whole` not holding a JSON object).
    pub fn rebuild(
        &self,
        stored: &BTreeMap<String, Zeroizing<String>>,
        desired: Option<&SecretValue>,
    ) -> Option<SecretValue> {
        match self.mapping {
            Mapping::Whole => {
                let s = stored.get("")?;
                match serde_json::from_str(s) {
                    Ok(Value::Object(m)) => Some(SecretValue::new(m)),
                    _ => None,
                }
            }
            Mapping::PerKey => {
                let mut map = serde_json::Map::new();
                for (k, s) in stored {
                    let typed = desired
                        .and_then(|d| d.expose().get(k))
                        .filter(|d| *Self::stored_form(d) == **s)
                        .cloned();
                    map.insert(
                        k.clone(),
                        typed.unwrap_or_else(|| Value::String(s.to_string())),
                    );
                }
                Some(SecretValue::new(map))
            }
        }
    }
}

/// The version mark of a secret: its parameter's version (`whole`), or a short digest of every
/// parameter's name and version (`per_key`), which changes whenever any of them is written.
pub fn version_mark(mapping: Mapping, versions: &BTreeMap<String, i64>) -> String {
    match (mapping, versions.len()) {
        (Mapping::Whole, 1) => versions
            .values()
            .next()
            .map(i64::to_string)
            .unwrap_or_default(),
        _ => {
            let mut h = Sha256::new();
            for (name, v) in versions {
                h.update(name.as_bytes());
                h.update(b"\n");
                h.update(v.to_string().as_bytes());
                h.update(b"\n");
            }
            hex::encode(&h.finalize()[..6])
        }
    }
}

impl super::TargetRules for AwsSsmRules {
    fn name(&self, prefix: &str, path: &str) -> String {
        format!("{}{path}", Self::effective_prefix(prefix))
    }
    fn path_of(&self, prefix: &str, name: &str) -> Option<String> {
        name.strip_prefix(Self::effective_prefix(prefix))
            .map(str::to_string)
    }
    fn check_prefix(&self, prefix: &str) -> Result<(), String> {
        check_prefix(prefix)
    }
    /// The secret's own name; with `per_key` the parameter names below it are checked by
    /// [`AwsSsmRules::parameters`] (the engine marks such secrets invalid before planning
    /// writes for them).
    fn check_name(&self, name: &str) -> Result<(), String> {
        match self.mapping {
            Mapping::Whole => self.check_parameter_name(name),
            Mapping::PerKey => self.check_parameter_name(&format!("{name}/k")),
        }
    }
    /// `whole`: the one parameter's size; `per_key`: checked per parameter instead.
    fn check_size(&self, bytes: usize) -> Result<(), String> {
        match self.mapping {
            Mapping::Whole => Tier::for_size(bytes)
                .map(|_| ())
                .map_err(|e| format!("secret {e}")),
            Mapping::PerKey => Ok(()),
        }
    }
}

/// Whether a `SecureString` whose key `DescribeParameters` reports as `listed` must be written
/// again to be under the configured key. Nothing is re-encrypted when no key is configured (a
/// setting that is not configured is left as it is, as for Secrets Manager); forms are compared
/// as for Secrets Manager ([`super::aws_sm::kms_matches`]: an alias or key id matches its ARN).
/// A SecureString listed without a key is re-encrypted (writing the same value is harmless, and
/// not knowing the key is not knowing it is right).
pub fn needs_reencrypt(configured: Option<&str>, listed: Option<&str>) -> bool {
    configured.is_some_and(|k| !super::aws_sm::kms_matches(k, listed, None))
}

/// The plan's entry for a secret whose desired parameters include some under another key
/// (`stale`: each one's name and listed key; `of`: how many parameters the secret has): a
/// `kms_key_id` setting change, noted as a re-encryption (the same value written again under
/// the new key, a new version of each stale parameter). Never holds a value.
pub fn reencrypt_change(
    configured: &str,
    stale: &[(&str, Option<&str>)],
    of: usize,
) -> crate::diff::SettingChange {
    let olds: std::collections::BTreeSet<&str> =
        stale.iter().map(|(_, k)| k.unwrap_or("none")).collect();
    let old = olds.into_iter().collect::<Vec<_>>().join(", ");
    let note = if of <= 1 {
        "re-encrypt: the same value written again under the new key (a new parameter version)"
            .to_string()
    } else {
        format!(
            "re-encrypt: {} of {of} parameters written again with the same value under the new key (a new version each)",
            stale.len()
        )
    };
    crate::diff::SettingChange {
        setting: SETTING_KMS_KEY.into(),
        old: Some(old),
        new: Some(configured.to_string()),
        note: Some(note),
    }
}

/// The setting a re-encryption is planned under (the config key, as for Secrets Manager).
pub const SETTING_KMS_KEY: &str = "kms_key_id";

/// Marks every desired secret whose parameters break a rule (a key that is not a name
/// segment, an empty string, a parameter too big) as an invalid skip: nothing is written for
/// it, and it is not an orphan either.
pub fn check_plan(rules: &AwsSsmRules, plan: &mut crate::diff::TargetPlan) {
    use crate::diff::ChangeKind;
    for c in &mut plan.changes {
        if matches!(c.kind, ChangeKind::Deleted | ChangeKind::Skipped) {
            continue;
        }
        let Some(value) = c.new_value.as_ref() else {
            continue;
        };
        if let Err(e) = rules.parameters(&c.name, value) {
            c.kind = ChangeKind::Skipped;
            c.invalid = true;
            c.reason = Some(e);
            c.retag = false;
            c.adopt = false;
            c.keys.clear();
        }
    }
}

crate::raw_target! {
    /// The YAML shape of an `aws_ssm` target.
    Raw {
        region: S<String>,
        role_arn: S<String>,
        external_id: S<String>,
        mapping: S<String>,
        kms_key_id: S<String>,
    }
}

/// A validated `aws_ssm` target.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSsmSettings {
    pub region: String,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub mapping: Mapping,
    /// The KMS key of the SecureStrings (`None`: the account's `alias/aws/ssm`).
    pub kms_key_id: Option<String>,
    /// The ceiling on write calls per second: the target's `writes_per_second`, or
    /// [`DEFAULT_WRITES_PER_SECOND`] when that key is absent.
    pub writes_per_second: u32,
}

impl AwsSsmSettings {
    pub fn rules(&self) -> AwsSsmRules {
        AwsSsmRules::new(self.mapping, &self.region)
    }
}

/// Validates the backend's own keys (the common ones are done by the caller, which passes the
/// common `writes_per_second` so that its absence selects this kind's default).
pub(crate) fn lower(
    v: &mut Validator,
    r: &Raw,
    pos: Option<crate::diag::Pos>,
    path: &str,
    writes_per_second: &S<u64>,
) -> AwsSsmSettings {
    let region = match &r.region {
        Some(rg) => {
            v.region(rg);
            rg.value.clone()
        }
        None => {
            v.missing(
                pos,
                &format!("{path}.region"),
                "the AWS region, e.g. `us-east-1`",
            );
            String::new()
        }
    };
    let mapping = match &r.mapping {
        None => Mapping::Whole,
        Some(m) => match m.value.as_str() {
            "whole" => Mapping::Whole,
            "per_key" => Mapping::PerKey,
            other => {
                let help = match crate::diag::closest(other, ["whole", "per_key"]) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "use `whole` (one parameter holding the JSON) or `per_key` (one parameter per key)".into(),
                };
                v.error(m, format!("unknown mapping `{other}`"), help);
                Mapping::Whole
            }
        },
    };
    let kms_key_id = match &r.kms_key_id {
        Some(k) if k.value.trim().is_empty() || k.value.len() > 2048 => {
            v.error(
                k,
                "`kms_key_id` must be a KMS key id, ARN, alias or alias ARN",
                "write e.g. `alias/params`, or remove the key to use `alias/aws/ssm`",
            );
            None
        }
        Some(k) => Some(k.value.clone()),
        None => None,
    };
    let writes_per_second = match writes_per_second {
        // Out-of-range values are reported with the common keys.
        Some(w) => w
            .value
            .clamp(1, crate::config::MAX_WRITES_PER_SECOND as u64) as u32,
        None => DEFAULT_WRITES_PER_SECOND,
    };
    AwsSsmSettings {
        region,
        role_arn: v.role_arn(&r.role_arn),
        external_id: r.external_id.as_ref().map(|e| e.value.clone()),
        mapping,
        kms_key_id,
        writes_per_second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::secret;
    use crate::targets::TargetRules;
    use serde_json::json;

    fn rules(m: Mapping) -> AwsSsmRules {
        AwsSsmRules::new(m, "us-east-1")
    }

    #[test]
    fn names() {
        let r = rules(Mapping::Whole);
        assert!(r.check_parameter_name("/myorg/prod/app.db_1-x").is_ok());
        for bad in [
            "myorg/app",
            "/a b",
            "/a//b",
            "/a/",
            "/aws/x",
            "/AWSome/x",
            "/Ssm-things/x",
            "/.secretsync/fingerprint-key",
            "/a:1",
        ] {
            assert!(r.check_parameter_name(bad).is_err(), "{bad}");
        }
        let fifteen = "/l".repeat(15);
        assert!(r.check_parameter_name(&fifteen).is_ok());
        assert!(r.check_parameter_name(&format!("{fifteen}/x")).is_err());
        // 1011 with the ARN `arn:aws:ssm:us-east-1:123456789012:parameter` (44 characters).
        assert_eq!(max_name_len("us-east-1"), 1011 - 44);
        let long = format!("/{}", "x".repeat(966));
        assert!(r.check_parameter_name(&long).is_ok());
        assert!(r.check_parameter_name(&format!("{long}x")).is_err());
        assert!(max_name_len("us-gov-west-1") < max_name_len("us-east-1"));
    }

    #[test]
    fn prefixes() {
        for ok in ["", "/", "/myorg/prod/"] {
            assert!(check_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "myorg/",
            "/myorg",
            "/my org/",
            "//",
            "/ssm/",
            "/aws-things/",
            "/.secretsync/",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
        let r = rules(Mapping::Whole);
        assert_eq!(r.name("", "app/db"), "/app/db");
        assert_eq!(r.path_of("", "/app/db").as_deref(), Some("app/db"));
        assert_eq!(r.name("/p/", "app/db"), "/p/app/db");
    }

    #[test]
    fn tiers_from_size() {
        assert_eq!(Tier::for_size(4096), Ok(Tier::Standard));
        assert_eq!(Tier::for_size(4097), Ok(Tier::Advanced));
        assert_eq!(Tier::for_size(8192), Ok(Tier::Advanced));
        assert!(Tier::for_size(8193).is_err());
        // whole: the canonical JSON's size
        let r = rules(Mapping::Whole);
        let v = secret(json!({"k": "x".repeat(4089)}));
        assert_eq!(v.canonical_json().len(), 4097);
        assert_eq!(r.parameters("/p/a", &v).unwrap()[0].tier, Tier::Advanced);
        assert!(r.check_size(9000).is_err() && r.check_size(8192).is_ok());
        // per_key: each value alone
        let r = rules(Mapping::PerKey);
        let v = secret(json!({"a": "x".repeat(4096), "b": "y".repeat(5000), "c": 5}));
        let p = r.parameters("/p/s", &v).unwrap();
        let tiers: Vec<_> = p.iter().map(|p| (p.name.as_str(), p.tier)).collect();
        assert_eq!(
            tiers,
            [
                ("/p/s/a", Tier::Standard),
                ("/p/s/b", Tier::Advanced),
                ("/p/s/c", Tier::Standard)
            ]
        );
        assert!(
            r.check_size(1_000_000).is_ok(),
            "per_key checks per parameter"
        );
        let big = secret(json!({"a": "x".repeat(8193)}));
        assert!(r.parameters("/p/s", &big).unwrap_err().contains("key `a`"));
    }

    #[test]
    fn per_key_values_and_keys() {
        let r = rules(Mapping::PerKey);
        let v = secret(json!({"s": "text", "n": 5, "o": {"x": [1, true]}, "z": null}));
        let p = r.parameters("/p/app", &v).unwrap();
        let stored: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.key.as_deref().unwrap(), p.value.as_str()))
            .collect();
        assert_eq!(
            stored,
            [
                ("n", "5"),
                ("o", r#"{"x":[1,true]}"#),
                ("s", "text"),
                ("z", "null")
            ]
        );
        for (bad, why) in [
            (json!({"a/b": 1}), "contains `/`"),
            (json!({"a b": 1}), "contains ` `"),
            (json!({"": 1}), "empty key"),
            (json!({"e": ""}), "empty string"),
            (json!({}), "no keys"),
        ] {
            let e = r.parameters("/p/app", &secret(bad)).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn rebuild_compares_stored_forms() {
        let r = rules(Mapping::PerKey);
        let stored = |items: &[(&str, &str)]| -> BTreeMap<String, Zeroizing<String>> {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_string())))
                .collect()
        };
        let desired = secret(json!({"n": 5, "s": "5", "o": {"a": 1}}));
        // Same stored forms: the same value, whatever JSON type the desired value has.
        let same = r
            .rebuild(
                &stored(&[("n", "5"), ("s", "5"), ("o", r#"{"a":1}"#)]),
                Some(&desired),
            )
            .unwrap();
        assert_eq!(same.canonical_json(), desired.canonical_json());
        // A different stored string, an extra key: read as strings, and they differ.
        let other = r
            .rebuild(
                &stored(&[("n", "6"), ("s", "5"), ("x", "1")]),
                Some(&desired),
            )
            .unwrap();
        assert_eq!(other.expose().get("n"), Some(&Value::String("6".into())));
        let keys: Vec<_> = crate::diff::key_changes(
            &Value::Object(other.expose().clone()),
            &Value::Object(desired.expose().clone()),
        )
        .into_iter()
        .map(|k| (k.key, k.kind))
        .collect();
        use crate::diff::KeyChangeKind::*;
        assert_eq!(
            keys,
            [
                ("n".to_string(), Changed),
                ("o".to_string(), Added),
                ("x".to_string(), Removed)
            ]
        );
        // whole: the stored JSON object, or nothing.
        let w = rules(Mapping::Whole);
        assert_eq!(
            w.rebuild(&stored(&[("", r#"{ "a": 1 }"#)]), None)
                .unwrap()
                .canonical_json(),
            r#"{"a":1}"#
        );
        assert!(w.rebuild(&stored(&[("", "plain text")]), None).is_none());
    }

    #[test]
    fn split_names() {
        let pk = rules(Mapping::PerKey);
        assert_eq!(
            pk.split("/p/", "/p/app/db/user"),
            Some(("app/db", Some("user")))
        );
        assert_eq!(pk.split("/p/", "/p/app"), None);
        assert_eq!(pk.split("/p/", "/q/app/x"), None);
        let w = rules(Mapping::Whole);
        assert_eq!(w.split("/p/", "/p/app/db"), Some(("app/db", None)));
        assert_eq!(w.split("", "/app"), Some(("app", None)));
    }

    #[test]
    fn version_marks() {
        let one = BTreeMap::from([("/p/a".to_string(), 3)]);
        assert_eq!(version_mark(Mapping::Whole, &one), "3");
        let a = BTreeMap::from([("/p/a/x".to_string(), 1), ("/p/a/y".to_string(), 2)]);
        let mut b = a.clone();
        b.insert("/p/a/y".into(), 3);
        assert_ne!(
            version_mark(Mapping::PerKey, &a),
            version_mark(Mapping::PerKey, &b)
        );
        assert_eq!(version_mark(Mapping::PerKey, &a).len(), 12);
    }

    #[test]
    fn reencrypt_only_under_another_key() {
        let arn = "arn:aws:kms:us-east-1:123456789012:alias/params";
        assert!(
            !needs_reencrypt(None, Some("alias/old")),
            "no key configured"
        );
        assert!(!needs_reencrypt(Some("alias/params"), Some("alias/params")));
        assert!(!needs_reencrypt(Some("alias/params"), Some(arn)));
        assert!(!needs_reencrypt(Some(arn), Some("alias/params")));
        assert!(needs_reencrypt(Some("alias/params"), Some("alias/aws/ssm")));
        assert!(needs_reencrypt(Some("alias/params"), None));
        let one = reencrypt_change("alias/new", &[("/p/a", Some("alias/old"))], 1);
        assert_eq!(
            (one.setting.as_str(), one.old.as_deref(), one.new.as_deref()),
            ("kms_key_id", Some("alias/old"), Some("alias/new"))
        );
        assert!(one.note.unwrap().starts_with("re-encrypt: the same value"));
        let some = reencrypt_change(
            "alias/new",
            &[("/p/a/x", Some("alias/old")), ("/p/a/y", None)],
            3,
        );
        assert_eq!(some.old.as_deref(), Some("alias/old, none"));
        assert!(some.note.unwrap().contains("2 of 3 parameters"));
    }

    #[test]
    fn invalid_keys_become_invalid_skips() {
        use crate::diff::{ChangeKind, PlanOptions, plan};
        use crate::fingerprint::FingerprintKey;
        let r = rules(Mapping::PerKey);
        let opts = PlanOptions {
            rules: std::sync::Arc::new(r.clone()),
            ..PlanOptions::new("t", "o", "/p/")
        };
        let key = FingerprintKey::from_bytes([1; crate::fingerprint::KEY_LEN]);
        let desired = crate::secret::Bundle::from([
            ("good".into(), secret(json!({"a": 1}))),
            ("bad".into(), secret(json!({"a/b": 1}))),
        ]);
        let mut p = plan(&opts, &key, &desired, &BTreeMap::new(), &BTreeMap::new());
        check_plan(&r, &mut p);
        let kinds: Vec<_> = p
            .changes
            .iter()
            .map(|c| (c.path.as_str(), c.kind, c.invalid))
            .collect();
        assert_eq!(
            kinds,
            [
                ("bad", ChangeKind::Skipped, true),
                ("good", ChangeKind::Added, false)
            ]
        );
    }
}
