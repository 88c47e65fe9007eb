//! Pushing the final metrics to a Prometheus Pushgateway: a batch run (CronJob, CI) ends
//! before anyone scrapes it.
//!
//! `PUT <url>/metrics/job/secretsync/config/<config name>`: the group of this job and config
//! is replaced by this run's metrics, so what the Pushgateway shows is always one whole run.

use std::time::Duration;

use super::Metrics;

/// The grouping key's job label.
pub const JOB: &str = "secretsync";

/// How long a push may take before it is given up (a warning, never a failed sync).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the metrics of `config` are pushed: `<base>/metrics/job/secretsync/config/<config>`,
/// the config name percent-encoded as one path segment.
pub fn group_url(base: &str, config: &str) -> Result<reqwest::Url, String> {
    let mut url =
        reqwest::Url::parse(base).map_err(|e| format!("`{base}` is not a valid URL: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("`{base}` cannot take a path"))?
        .pop_if_empty()
        .extend(["metrics", "job", JOB, "config", config]);
    Ok(url)
}

/// Pushes the current state of `metrics` for `config` (the config file's stem) to the
/// Pushgateway at `base`. The error says what failed, for a warning.
pub async fn push(metrics: &Metrics, base: &str, config: &str) -> Result<(), String> {
    let url = group_url(base, config)?;
    let body = metrics.encode()?;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let shown = url.to_string();
    let resp = client
        .put(url)
        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot push the metrics to {shown}: {}", chain(&e)))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(300).collect();
    Err(format!(
        "the Pushgateway at {shown} answered {status}{}{text}",
        if text.is_empty() { "" } else { ": " }
    ))
}

/// An error with its causes (`error sending request: connection refused`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_job_and_config_name() {
        for (base, config, want) in [
            (
                "http://127.0.0.1:9091",
                "prod",
                "http://127.0.0.1:9091/metrics/job/secretsync/config/prod",
            ),
            (
                "https://gw.example/push/",
                "team a%",
                "https://gw.example/push/metrics/job/secretsync/config/team%20a%25",
            ),
        ] {
            assert_eq!(group_url(base, config).unwrap().as_str(), want);
        }
        assert!(group_url("not a url", "x").is_err());
    }
}
