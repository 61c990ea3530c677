//! Trace export over OTLP/HTTP (protobuf), built with the `otlp` feature:
//! the `tracing` spans of a request (`http.request`, `stream.get_url`, one per
//! port call) become OpenTelemetry spans in the trace the caller's
//! `traceparent` names, batched to the collector off the request path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId as OtelTraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::settings::OtlpSettings;
use crate::telemetry::TelemetryError;

/// Whether spans are being exported (the request middleware then joins them
/// to the caller's trace and reports the exported ids).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported now.
pub(crate) fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The exporter's provider; [`Exporter::shutdown`] sends what is buffered.
#[derive(Debug)]
pub struct Exporter(SdkTracerProvider);

impl Exporter {
    /// Sends the buffered spans and stops the export thread (blocking).
    pub fn shutdown(self) {
        EXPORTING.store(false, Ordering::Relaxed);
        if let Err(error) = self.0.shutdown() {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
    }
}

/// The provider for `settings`, or `None` when no endpoint is configured.
///
/// # Errors
/// A bad endpoint or ratio, or an exporter that cannot be built.
pub fn exporter(settings: &OtlpSettings) -> Result<Option<Exporter>, TelemetryError> {
    let Some(url) = settings.traces_url()? else {
        return Ok(None);
    };
    let (ratio, name) = (settings.sample_ratio, settings.service_name.clone());
    // The blocking HTTP client owns a runtime of its own and must not be
    // created (or dropped) on an async worker: build it on a plain thread.
    let built = std::thread::spawn(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok::<_, TelemetryError>(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
                .with_resource(Resource::builder().with_service_name(name).build())
                .build(),
        )
    })
    .join()
    .map_err(|_| TelemetryError::Exporter("the builder thread panicked".into()))??;
    Ok(Some(Exporter(built)))
}

/// The `tracing` layer feeding `exporter`.
pub fn layer<S>(exporter: &Exporter) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    EXPORTING.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer().with_tracer(exporter.0.tracer("streaming-api"))
}

/// Joins `span` to the caller's trace (`parent` = the `traceparent`'s trace
/// id, parent span id and flags, all hex) and returns the exported span's
/// trace and span ids (hex), or `None` when nothing is exported.
pub(crate) fn join(span: &tracing::Span, parent: Option<(&str, &str, &str)>) -> Option<(String, String)> {
    if !exporting() {
        return None;
    }
    if let Some((trace, span_id, flags)) = parent {
        let remote = SpanContext::new(
            OtelTraceId::from_hex(trace).ok()?,
            SpanId::from_hex(span_id).ok()?,
            TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
            true,
            TraceState::default(),
        );
        // Fails only when the span is disabled; it then has no ids to report.
        span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote)).ok()?;
    }
    let context = span.context();
    let ids = context.span().span_context().clone();
    ids.is_valid().then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}
