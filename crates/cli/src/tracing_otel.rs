//! OpenTelemetry traces over OTLP/HTTP (protobuf), when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; nothing at all otherwise (no layer is
//! installed, and the engine's spans cost a disabled callsite each).
//!
//! What is exported: spans only, never log events (a log line may name a secret path):
//! * SecretSync's own spans: `run` (`run_id`) → `merge` / `sync` (`phase`) → `target`
//!   (`target_name`), made in `secretsync_engine::pipeline`;
//! * the AWS SDK's operation spans (`Secrets Manager.ListSecrets`, with `rpc.service`,
//!   `rpc.method`, `rpc.system`), wherever they run;
//! * one span per attempt of every backend call, from [`call_spans`] (an
//!   [`Observer`](secretsync_engine::observe::Observer)): named `<service> <operation>`
//!   (`vault kv.list`, `secretsmanager ListSecrets`), with our and the backend's request ids,
//!   the attempt number and the outcome, under whatever span the call ran in.
//!
//! Span fields hold names (targets, operations, services), ids and counts: never a value or a
//! secret path. The standard `OTEL_*` variables work as documented for OTLP exporters
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, default `secretsync`);
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` switch it off. [`shutdown`] sends
//! what is left on every way out of the process.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use secretsync_engine::observe::{Attempt, Backend, Observer, Outcome};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The one provider of this process, kept so that [`shutdown`] can flush it from any exit.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// How long the last export at exit may wait for the receiver.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The instrumentation scope of every span.
const SCOPE: &str = "secretsync";

/// Whether the environment asks for traces: an OTLP endpoint is set, and the SDK is not
/// switched off.
pub fn requested(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    let is =
        |name: &str, value: &str| env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// The spans that leave the process: SecretSync's own and the AWS SDK's operation spans.
fn exported(m: &tracing::Metadata<'_>) -> bool {
    m.is_span()
        && (m.target().starts_with("secretsync")
            || (m.target().starts_with("aws_sdk_") && m.fields().field("rpc.method").is_some()))
}

/// The subscriber layer that exports spans, when the environment asks for it (`Ok(None)`
/// otherwise). Sets up the exporter and the provider [`shutdown`] flushes; an endpoint that
/// cannot be used is an `Err` to warn about (the run goes on without traces).
pub fn layer<S>(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<impl Layer<S> + Send + Sync + use<S>>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if !requested(env) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("cannot export traces over OTLP/HTTP: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| v.contains("service.name="));
    if !named {
        resource = resource.with_service_name("secretsync");
    }
    resource = resource.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer(SCOPE);
    // Only the first set-up of a process counts (there is one).
    let _ = PROVIDER.set(provider);
    Ok(Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_filter(tracing_subscriber::filter::filter_fn(exported)),
    ))
}

/// The observer that makes one span per attempt of every backend call, when traces are
/// exported (after [`layer`]); `None` otherwise. Put it among the run's observers.
pub fn call_spans() -> Option<Arc<dyn Observer>> {
    PROVIDER.get().map(|p| {
        Arc::new(CallSpans {
            tracer: p.tracer(SCOPE),
        }) as Arc<dyn Observer>
    })
}

/// Sends the spans not yet exported and stops the exporter, waiting at most `within` for the
/// receiver. Called on every way out of the process; a no-op without traces (or the second
/// time).
pub fn shutdown(within: Duration) {
    if let Some(p) = PROVIDER.get()
        && let Err(e) = p.shutdown_with_timeout(within)
        && !matches!(e, opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown)
    {
        tracing::warn!(error = %e, "could not send the last traces to the OTLP endpoint");
    }
}

/// One span per attempt, ended when the attempt is reported (it started `elapsed` before).
struct CallSpans {
    tracer: SdkTracer,
}

impl Observer for CallSpans {
    fn attempt(&self, a: &Attempt<'_>) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        // The span the call runs in: an AWS SDK operation span, a target, a phase, the run.
        let parent = tracing::Span::current().context();
        let end = SystemTime::now();
        let start = end.checked_sub(a.elapsed).unwrap_or(end);
        let mut attributes = vec![
            KeyValue::new(
                "rpc.system",
                match a.endpoint.backend {
                    Backend::Vault => "vault",
                    Backend::Aws => "aws-api",
                    Backend::Gcp => "gcp-api",
                    Backend::Azure => "azure-api",
                    Backend::Webhook => "webhook",
                    Backend::Plugin => "plugin",
                },
            ),
            KeyValue::new("rpc.service", a.endpoint.service.clone()),
            KeyValue::new("rpc.method", a.operation.to_string()),
            KeyValue::new("service", a.endpoint.breaker_key()),
            KeyValue::new("request_id", a.request_id.to_string()),
            KeyValue::new("attempt", i64::from(a.attempt)),
            KeyValue::new("outcome", a.outcome.label()),
            KeyValue::new("pagination", a.pagination),
        ];
        if let Some(b) = a.backend_request_id {
            attributes.push(KeyValue::new("backend_request_id", b.to_string()));
        }
        let mut span = self
            .tracer
            .span_builder(format!("{} {}", a.endpoint.service, a.operation))
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        if a.outcome != Outcome::Ok {
            span.set_status(Status::error(a.outcome.label()));
        }
        span.end_with_timestamp(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn only_an_endpoint_switches_traces_on() {
        let on = |vars: &[(&str, &str)]| requested(&env(vars));
        assert!(!on(&[]));
        assert!(!on(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]));
        assert!(on(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )]));
        assert!(on(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )]));
        assert!(!on(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ]));
        assert!(!on(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]));
    }
}
