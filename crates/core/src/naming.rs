//! AWS Secrets Manager naming and size rules, checked before any write.

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
