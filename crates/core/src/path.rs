//! Relative secret paths (Vault keys, merge-store manifest entries): which ones are safe to
//! turn into names in a target or keys in a store.

/// Why a listed key or relative path is refused: a `..` segment (traversal), NUL or another
/// control character, an empty segment (`//`), or a leading `/`. `..` inside a name
/// (`config..bak`) is fine. A trailing `/` (a Vault folder) is allowed.
pub fn reject_key(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("is empty")
    } else if key.starts_with('/') {
        Some("starts with `/`")
    } else if key.contains('\0') {
        Some("contains NUL")
    } else if key.chars().any(char::is_control) {
        Some("contains a control character")
    } else if key.contains("//") {
        Some("contains `//`")
    } else if key.split('/').any(|s| s == ".." || s == ".") {
        Some("has a `.` or `..` path segment")
    } else {
        None
    }
}

/// Checks a `secret_prefix` of a kind whose names are relative paths (`vault_kv2`, `plugin`):
/// a safe relative path (or empty), not below the reserved `.secretsync/`, at most `max` bytes.
pub fn check_relative_prefix(p: &str, max: usize) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    if let Some(why) = reject_key(p) {
        return Err(format!("secret prefix {why}"));
    }
    if p.starts_with(crate::diff::RESERVED_PREFIX) {
        return Err(format!(
            "secret prefix is below `{}`, which SecretSync keeps for its own bookkeeping",
            crate::diff::RESERVED_PREFIX
        ));
    }
    if p.len() > max {
        return Err(format!("secret prefix is longer than {max} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reject_key;
    use proptest::prelude::*;

    #[test]
    fn unsafe_keys_are_rejected_and_dots_inside_names_are_not() {
        for bad in [
            "../x", "a/../b", "a/..", "..", "./a", "a\0b", "a//b", "/abs", "", "a\nb",
        ] {
            assert!(reject_key(bad).is_some(), "{bad:?}");
        }
        for good in [
            "app",
            "folder/",
            "a.b-c_d",
            "config..bak",
            "..hidden",
            "a/b../c",
        ] {
            assert!(reject_key(good).is_none(), "{good:?}");
        }
    }

    proptest! {
        /// Never panics, and an accepted path never walks out of its folder.
        #[test]
        fn accepted_paths_never_traverse(s in "\\PC{0,40}|[./a-c\\x00]{0,12}") {
            if reject_key(&s).is_none() {
                prop_assert!(!s.starts_with('/'));
                prop_assert!(s.split('/').all(|seg| seg != ".." && seg != "."));
                prop_assert!(!s.contains('\0'));
            }
        }
    }
}
