//! The `aws_secretsmanager` target kind: settings, validation, and the naming and size rules
//! checked before any write.
//!
//! ```yaml
//! targets:
//!   - name: production-us-east-1
//!     type: aws_secretsmanager
//!     region: us-east-1
//!     role_arn: arn:aws:iam::123456789012:role/SecretSync   # optional; external_id: optional
//!     secret_prefix: prod/            # AWS name = prefix + relative path
//!     imports: [base]
//!     deletion_recovery_days: 30      # 7..30; force_delete: true skips the window
//! ```

use crate::config::S;
use crate::config::validate::Validator;

/// Longest secret name AWS accepts.
pub const MAX_NAME_LEN: usize = 512;
/// Largest secret value AWS accepts, in bytes.
pub const MAX_VALUE_BYTES: usize = 65_536;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// Checks a configured `secret_prefix`.
pub fn check_prefix(p: &str) -> Result<(), String> {
    match p.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!(
            "secret prefix contains `{}`, which AWS does not allow in names",
            c.escape_debug()
        )),
        None if p.len() > 256 => Err("secret prefix is longer than 256 characters".into()),
        None => Ok(()),
    }
}

/// Checks a full secret name against AWS's hard rules.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("secret name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "secret name is {} characters; AWS allows at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "secret name contains `{}`; AWS allows letters, digits and `/_+=.@-`",
            c.escape_debug()
        ));
    }
    Ok(())
}

/// AWS advises against names ending in `-` and six characters: a partial-ARN lookup can
/// mistake that suffix for the random ARN suffix. Worth a warning, not a refusal.
pub fn has_arn_like_suffix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 7
        && bytes[bytes.len() - 7] == b'-'
        && bytes[bytes.len() - 6..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

/// Checks a secret value's size.
pub fn check_size(bytes: usize) -> Result<(), String> {
    if bytes > MAX_VALUE_BYTES {
        return Err(format!(
            "secret value is {bytes} bytes; AWS allows at most {MAX_VALUE_BYTES}"
        ));
    }
    Ok(())
}

crate::raw_target! {
    /// The YAML shape of an `aws_secretsmanager` target.
    Raw {
        region: S<String>,
        role_arn: S<String>,
        external_id: S<String>,
        deletion_recovery_days: S<u64>,
        force_delete: S<bool>,
    }
}

/// A validated `aws_secretsmanager` target.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSmSettings {
    pub region: String,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub deletion_recovery_days: u32,
    pub force_delete: bool,
}

pub const DEFAULT_RECOVERY_DAYS: u32 = 30;

/// Validates the backend's own keys (the common ones are done by the caller).
pub(crate) fn lower(
    v: &mut Validator,
    r: &Raw,
    pos: Option<crate::diag::Pos>,
    path: &str,
) -> AwsSmSettings {
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
    let deletion_recovery_days = match &r.deletion_recovery_days {
        Some(d) if !(7..=30).contains(&d.value) => {
            v.error(
                d,
                "`deletion_recovery_days` must be between 7 and 30",
                "AWS accepts 7 to 30 days; use `force_delete: true` to delete without recovery",
            );
            DEFAULT_RECOVERY_DAYS
        }
        Some(d) => d.value as u32,
        None => DEFAULT_RECOVERY_DAYS,
    };
    AwsSmSettings {
        region,
        role_arn: v.role_arn(&r.role_arn),
        external_id: r.external_id.as_ref().map(|e| e.value.clone()),
        deletion_recovery_days,
        force_delete: r.force_delete.as_ref().is_some_and(|d| d.value),
    }
}

/// AWS Secrets Manager's rules: names of `A-Za-z0-9/_+=.@-`, at most 512 characters; values
/// at most 65,536 bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsSmRules;

impl super::TargetRules for AwsSmRules {
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

    #[test]
    fn names() {
        assert!(check_name("prod/app/db").is_ok());
        assert!(check_name("prod/app/db-pass1").is_ok());
        assert!(check_name("prod/app/db-abcdef").is_ok());
        assert!(
            has_arn_like_suffix("prod/app/db-abcdef") && !has_arn_like_suffix("prod/app/db-pass1")
        );
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(513)).is_err());
        assert!(check_size(65_536).is_ok() && check_size(65_537).is_err());
    }
}
