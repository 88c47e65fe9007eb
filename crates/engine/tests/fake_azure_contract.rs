//! The Key Vault contract fake (`crates/test-support/fakes/azure_keyvault.py`) checked with
//! Microsoft's own Python client (`azure-keyvault-secrets`, installed by `scripts/venv.sh`):
//! `check_azure_keyvault.py` makes every call the `azure_keyvault` target makes (challenge
//! authentication, set, get latest and by version, update tags, paged listings, soft delete,
//! the 409 on a soft-deleted name, recover, purge, the 15-tag, name and size limits, a wrong
//! token) and asserts the service's answers. Its output is printed when it fails.

use std::process::Command;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!(
            "{k} is not set: start the local servers (scripts/servers.sh) and source .servers/env"
        )
    })
}

#[test]
fn microsofts_python_client_agrees_with_the_fake() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!(
            "{root}/crates/test-support/fakes/check_azure_keyvault.py"
        ))
        .arg(env("SECRETSYNC_TEST_AZURE_VAULT_URL"))
        .arg(env("SECRETSYNC_TEST_AZURE_TOKEN"))
        .arg(env("SECRETSYNC_TEST_CA_CERT"))
        .output()
        .expect("run .venv/bin/python (scripts/venv.sh creates it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "the check failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
