//! Extra root certificates from config (`vault.ca_cert`, a target's `ca_cert`).

use crate::error::{Error, Result};

/// The PEM certificate in the file `path`, which the config key `key` names, to trust beside the
/// system roots; a config error naming the key and the file when it cannot be read or parsed.
pub(crate) fn root_certificate(key: &str, path: &str) -> Result<reqwest::Certificate> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::config(format!("cannot read `{key}` file `{path}`: {e}")))?;
    reqwest::Certificate::from_pem(&pem).map_err(|e| {
        Error::config(format!(
            "`{key}` file `{path}` is not a PEM certificate: {e}"
        ))
    })
}
