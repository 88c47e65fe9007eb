//! Reads the policy files a config names and compiles them (`secretsync_core::policy`).
//!
//! A block's `path` is a `.rego` file or a folder, relative to the config file's folder. A
//! folder gives every `*.rego` file below it (sorted; hidden entries and `*_test.rego` files,
//! which hold OPA unit tests, are left out).

use std::path::{Path, PathBuf};

use secretsync_core::config::Config;
use secretsync_core::policy::{Policies, PolicyError, PolicyFile};

/// The largest policy file read, in bytes.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;
/// The most policy files one block may load.
pub const MAX_POLICY_FILES: usize = 1000;

/// Loads and compiles every `policies:` block of `config`, whose file is in `config_dir`.
/// `Ok(None)` when the config has no policies.
pub fn load(config: &Config, config_dir: &Path) -> Result<Option<Policies>, Vec<PolicyError>> {
    if config.policies.is_empty() {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let mut blocks = Vec::new();
    for block in &config.policies {
        match read_block(config_dir, &block.path) {
            Ok(files) => blocks.push((block, files)),
            Err(e) => errors.push(*e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Policies::compile(blocks).map(Some)
}

/// The error is boxed: it is large and rare.
fn read_block(config_dir: &Path, written: &str) -> Result<Vec<PolicyFile>, Box<PolicyError>> {
    let fail = |message: String, help: &str| {
        Box::new(PolicyError {
            file: written.to_string(),
            line: None,
            col: None,
            message,
            snippet: None,
            help: Some(help.to_string()),
        })
    };
    let root = config_dir.join(written);
    let meta = std::fs::metadata(&root).map_err(|e| {
        fail(
            format!("cannot read `{}`: {e}", root.display()),
            "policy paths are relative to the config file's folder; fix `path` or create the file",
        )
    })?;
    let mut paths: Vec<PathBuf> = Vec::new();
    if meta.is_dir() {
        collect(&root, &mut paths).map_err(|e| {
            fail(
                format!("cannot list `{}`: {e}", root.display()),
                "check the folder's permissions",
            )
        })?;
        paths.sort();
    } else {
        paths.push(root.clone());
    }
    if paths.len() > MAX_POLICY_FILES {
        return Err(fail(
            format!("{} policy files, more than {MAX_POLICY_FILES}", paths.len()),
            "point `path` at the folder of the policies themselves",
        ));
    }
    let mut files = Vec::new();
    for p in paths {
        // Shown as written: `policies/` + the file's path below it.
        let shown = if meta.is_dir() {
            let below = p.strip_prefix(&root).unwrap_or(&p);
            Path::new(written).join(below).display().to_string()
        } else {
            written.to_string()
        };
        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if size > MAX_POLICY_BYTES {
            return Err(Box::new(PolicyError {
                file: shown,
                line: None,
                col: None,
                message: format!("{size} bytes, more than {MAX_POLICY_BYTES}"),
                snippet: None,
                help: Some("split the policy into smaller files".into()),
            }));
        }
        let text = std::fs::read_to_string(&p).map_err(|e| {
            Box::new(PolicyError {
                file: shown.clone(),
                line: None,
                col: None,
                message: format!("cannot read it: {e}"),
                snippet: None,
                help: Some("policy files are UTF-8 text".into()),
            })
        })?;
        files.push(PolicyFile { path: shown, text });
    }
    Ok(files)
}

/// Every `*.rego` below `dir` except `*_test.rego` and hidden entries.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect(&path, out)?;
        } else if name.ends_with(".rego") && !name.ends_with("_test.rego") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml_policies: &str) -> Config {
        let yaml = format!(
            "vault_sources:\n  - mount: secret/base/\ntargets:\n  - name: t\n    type: aws_secretsmanager\n    region: us-east-1\n    imports: [base]\n{yaml_policies}"
        );
        secretsync_core::config::load(&yaml, &|_| None)
            .config
            .expect("config loads")
    }

    #[test]
    fn a_folder_gives_its_rego_files_but_not_tests() {
        let dir = std::env::temp_dir().join(format!("secretsync-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("policies/nested")).unwrap();
        std::fs::write(
            dir.join("policies/a.rego"),
            "package secretsync\ndeny contains \"a\" if { true }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("policies/nested/b.rego"),
            "package secretsync\nwarn contains \"b\" if { true }\n",
        )
        .unwrap();
        // A test file that does not even parse as a policy: never loaded.
        std::fs::write(dir.join("policies/a_test.rego"), "not rego").unwrap();
        std::fs::write(dir.join("policies/README.md"), "not rego").unwrap();
        let c = config("policies:\n  - path: policies/\n");
        let p = load(&c, &dir).expect("loads").expect("has policies");
        let plan = secretsync_core::diff::TargetPlan {
            target: "t".into(),
            changes: Vec::new(),
            orphans_kept: Vec::new(),
            refused: None,
            deletions_held: None,
            policy: Default::default(),
        };
        let v = p.judge(&c.targets[0], &plan);
        assert_eq!(v.denied.len(), 1);
        assert_eq!(v.warnings.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_path_says_where_it_was_looked_for() {
        let c = config("policies:\n  - path: nowhere/\n");
        let errs = load(&c, Path::new("/tmp")).unwrap_err();
        assert_eq!(errs[0].file, "nowhere/");
        assert!(errs[0].message.contains("/tmp/nowhere"), "{errs:?}");
    }
}
