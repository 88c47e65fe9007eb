//! The Secret Manager contract fake checked with Google's official Python client
//! (`crates/test-support/fakes/check_gcp_secretmanager.py`, REST transport, every call the Rust
//! target makes): if the fake drifts from what Google's client expects, this fails with the
//! script's output. Needs the local servers (`.servers/env`) and the virtualenv
//! (`scripts/venv.sh`, which installs `google-cloud-secret-manager`).

use std::process::Command;

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `scripts/servers.sh start` and source .servers/env")
    })
}

#[test]
fn the_official_python_client_accepts_the_fake() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let python = format!("{root}/.venv/bin/python");
    let out = Command::new(&python)
        .arg(format!(
            "{root}/crates/test-support/fakes/check_gcp_secretmanager.py"
        ))
        .arg(required("SECRETSYNC_TEST_GCP_ENDPOINT"))
        .arg(required("SECRETSYNC_TEST_GCP_TOKEN"))
        .env("REQUESTS_CA_BUNDLE", required("SECRETSYNC_TEST_CA_CERT"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run scripts/venv.sh): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the check failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the fake answered every call"), "{stdout}");
}
