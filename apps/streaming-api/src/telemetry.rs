//! Metrics export and request observation: the Prometheus recorder behind
//! the `metrics` facade the core and adapters emit through, `/metrics`, and
//! the middleware that gives every request a trace id, a span and its HTTP
//! metrics (labelled by route template, never by raw path).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpMessage, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use streaming_core::telemetry as names;
use tracing::Instrument;

use crate::problem::{ApiError, TraceId};
use crate::state::AppState;

/// Milliseconds buckets: sub-millisecond cache hits up to a slow second.
const MS_BUCKETS: [f64; 12] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
/// Seconds buckets, the same range.
const SECONDS_BUCKETS: [f64; 12] = [0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The process-wide Prometheus recorder, installed on first use; `None` when
/// another recorder was installed first (an embedder's), which then gets
/// every metric instead.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (metric, buckets) in [
                (names::STREAM_URL_DURATION_MS, &MS_BUCKETS),
                (names::MANIFEST_RENDER_MS, &MS_BUCKETS),
                (names::HTTP_DURATION_SECONDS, &SECONDS_BUCKETS),
                (names::FLUSH_SECONDS, &SECONDS_BUCKETS),
            ] {
                builder = builder.set_buckets_for_metric(Matcher::Full(metric.to_owned()), buckets).ok()?;
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            names::describe();
            // Series a dashboard divides by exist from the start, at 0.
            for counter in [names::STREAM_URL_CACHE_HITS, names::STREAM_URL_CACHE_MISSES, names::STREAM_URL_PRESIGNS] {
                metrics::counter!(counter).increment(0);
            }
            for (status, cache_hit) in [("success", "true"), ("success", "false"), ("error", "false")] {
                metrics::counter!(names::STREAM_URL_REQUESTS, "status" => status, "cache_hit" => cache_hit)
                    .increment(0);
            }
            metrics::describe_gauge!(RSS, metrics::Unit::Bytes, "Resident memory of the process.");
            // Histograms keep their samples until upkeep folds them in.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics upkeep thread not started");
            }
            Some(handle)
        })
        .as_ref()
}

/// `process_resident_memory_bytes`, refreshed at each scrape.
const RSS: &str = "process_resident_memory_bytes";

/// Resident memory from `/proc/self/statm` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0)
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Every metric of the process.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "`metrics.enabled = false`, or the embedding program installed its own recorder.",
            body = crate::routes::openapi::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::routes::openapi::InternalError),
    ),
)]
pub async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let handle = state.metrics.ok_or(ApiError::RouteNotFound)?;
    if let Some(rss) = resident_bytes() {
        metrics::gauge!(RSS).set(rss);
    }
    handle.run_upkeep();
    let mut body = Vec::with_capacity(16 * 1024);
    handle.render_to_write(&mut body).map_err(|_| ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// Middleware body, outermost: the request's trace id (from a valid
/// `traceparent`, else fresh), an `http.request` span every log line of the
/// request carries, `http_requests_total` and `http_request_duration_seconds`
/// by route template, one access log line, and `traceparent`/`trace-id` on
/// the response.
pub async fn observe<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let incoming = req.headers().get("traceparent").and_then(TraceId::parse_traceparent);
    let (span, trace, span_id, exported) = request_span(method, incoming);
    req.extensions_mut().insert(trace.clone());
    let mut res = next.call(req).instrument(span.clone()).await?;

    let route = res.request().match_name().and_then(crate::routes::template).unwrap_or("unmatched");
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if exported {
        span.record("route", route);
        span.record("status", status);
    }
    let (requests, duration) = http_metrics(method, route, status);
    requests.increment(1);
    duration.record(elapsed.as_secs_f64());
    // Successes at debug (one line per request costs throughput); failures louder.
    let duration_ms = elapsed.as_secs_f64() * 1_000.0;
    span.in_scope(|| match status {
        500.. => tracing::warn!(route, status, duration_ms, "request failed"),
        400.. => tracing::info!(route, status, duration_ms, "request refused"),
        _ => tracing::debug!(route, status, duration_ms, "request served"),
    });

    let headers = res.headers_mut();
    let mut traceparent = String::with_capacity(55);
    for part in ["00-", &trace.0, "-", &span_id, "-01"] {
        traceparent.push_str(part);
    }
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        headers.insert(HeaderName::from_static("traceparent"), value);
    }
    if let Ok(value) = HeaderValue::from_str(&trace.0) {
        headers.insert(HeaderName::from_static("trace-id"), value);
    }
    Ok(res)
}

/// The request's span, trace id and our span id, and whether the span is
/// exported. While traces are exported, the exported span's ids; otherwise
/// the caller's trace (or a fresh one) and a random span id. The span is
/// made with every field it will show in logs: recording a field later
/// formats the span's fields again, on every request. Route and status go
/// on the request's closing line, and on the span only when it is exported.
fn request_span(method: &'static str, incoming: Option<(&str, &str, &str)>) -> (tracing::Span, TraceId, String, bool) {
    use tracing::field::Empty;
    #[cfg(feature = "otlp")]
    if crate::otlp::exporting() {
        let span = tracing::info_span!("http.request", trace_id = Empty, method, route = Empty, status = Empty);
        if let Some((trace, span_id)) = crate::otlp::join(&span, incoming) {
            span.record("trace_id", trace.as_str());
            return (span, TraceId(trace), span_id, true);
        }
    }
    let trace = incoming.map_or_else(TraceId::random, |(trace, _, _)| TraceId(trace.to_owned()));
    let span = tracing::info_span!("http.request", trace_id = trace.0.as_str(), method, route = Empty, status = Empty);
    (span, trace, crate::problem::lower_hex(&rand::random::<u64>().max(1).to_be_bytes()), false)
}

/// The method as a label: the standard ones by name, any other `OTHER`
/// (a client must not be able to mint label values).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The handles of `http_requests_total` and `http_request_duration_seconds`
/// for one (method, route, status), registered once per worker thread:
/// looking a labelled metric up in the registry on every request would
/// build and hash its key each time.
fn http_metrics(method: &'static str, route: &'static str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    type Handles = std::collections::HashMap<(&'static str, &'static str, u16), (metrics::Counter, metrics::Histogram)>;
    thread_local! {
        static HANDLES: std::cell::RefCell<Handles> = std::cell::RefCell::default();
    }
    HANDLES.with(|handles| {
        handles
            .borrow_mut()
            .entry((method, route, status))
            .or_insert_with(|| {
                let requests = metrics::counter!(
                    names::HTTP_REQUESTS,
                    "method" => method,
                    "route" => route,
                    "status" => status.to_string()
                );
                let duration = metrics::histogram!(names::HTTP_DURATION_SECONDS, "method" => method, "route" => route);
                (requests, duration)
            })
            .clone()
    })
}

/// Line timestamps as RFC 3339 UTC with microseconds
/// (`2026-01-02T03:04:05.678901Z`, as the default timer writes them), the
/// part up to the second formatted once a second per thread.
#[derive(Debug, Clone, Copy)]
struct UtcMicros;

impl tracing_subscriber::fmt::time::FormatTime for UtcMicros {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        thread_local! {
            static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
        }
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
        SECOND.with(|second| {
            let mut second = second.borrow_mut();
            if second.0 != secs {
                let at = i64::try_from(secs)
                    .ok()
                    .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let (date, clock) = (at.date(), at.time());
                let text = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                    date.year(),
                    u8::from(date.month()),
                    date.day(),
                    clock.hour(),
                    clock.minute(),
                    clock.second()
                );
                *second = (secs, text);
            }
            w.write_str(&second.1)?;
            let mut digits = [b'0'; 7];
            let mut rest = micros;
            for digit in digits[..6].iter_mut().rev() {
                // `rest % 10` is a single decimal digit.
                *digit = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            digits[6] = b'Z';
            w.write_str(std::str::from_utf8(&digits).map_err(|_| std::fmt::Error)?)
        })
    }
}

/// Dependencies that print object keys or signing material at debug level
/// (rusoto logs every request's URI and its signer the canonical request):
/// held at `info` whatever the configured filter says.
const LEAKY_TARGETS: [&str; 3] = ["rusoto_core", "rusoto_signature", "rusoto_credential"];

/// `filter` with the [`LEAKY_TARGETS`] held at `info`.
fn capped(mut filter: tracing_subscriber::EnvFilter) -> LineFilter {
    for target in LEAKY_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    LineFilter::new(filter)
}

/// An [`EnvFilter`](tracing_subscriber::EnvFilter) that hears of spans only
/// when it has span directives (`target[span{field=value}]=level`). Without
/// them its verdicts never depend on spans, yet it would look every span up
/// under a process-wide lock each time one is made, entered, left, recorded
/// or closed: several times per request.
struct LineFilter {
    inner: tracing_subscriber::EnvFilter,
    spans: bool,
}

impl LineFilter {
    fn new(inner: tracing_subscriber::EnvFilter) -> Self {
        // Span directives are the ones written with `[`; `Display` writes every directive.
        let spans = inner.to_string().contains('[');
        Self { inner, spans }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for LineFilter {
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        tracing_subscriber::layer::Filter::<S>::enabled(&self.inner, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing_subscriber::layer::Filter::<S>::callsite_enabled(&self.inner, meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        tracing_subscriber::layer::Filter::<S>::max_level_hint(&self.inner)
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_new_span(&self.inner, attrs, id, cx);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_record(&self.inner, id, values, cx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_enter(&self.inner, id, cx);
        }
    }

    fn on_exit(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_exit(&self.inner, id, cx);
        }
    }

    fn on_close(&self, id: tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_close(&self.inner, id, cx);
        }
    }
}

/// What [`install_logging`] leaves running: the trace exporter, when one is
/// configured. [`Telemetry::shutdown`] sends its buffered spans.
#[derive(Debug, Default)]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    exporter: Option<crate::otlp::Exporter>,
}

impl Telemetry {
    /// Flushes and stops trace export (blocking; a no-op without it).
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = self.exporter {
            exporter.shutdown();
        }
    }
}

/// Installs the process's logging and tracing: `filter` applied (leaky
/// dependencies capped), lines in `log.format` written to `writer` (stdout in
/// the binary; a buffer in tests), records of crates that use the `log`
/// facade brought in too, and, with `otlp.endpoint` set (and the `otlp`
/// feature), spans exported under `otlp.filter`.
///
/// # Errors
/// When logging was installed already, or trace export is misconfigured
/// (or configured in a build without it).
pub fn install_logging<W>(
    log: &crate::settings::LogSettings,
    otlp: &crate::settings::OtlpSettings,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Result<Telemetry, TelemetryError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    let lines = tracing_subscriber::fmt::layer().with_timer(UtcMicros).with_writer(writer);
    let lines = match log.format {
        crate::settings::LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            lines.with_target(false).with_ansi(ansi).boxed()
        }
        // Every enclosing span's fields: `trace_id` of the request, `TrackId` of the operation.
        crate::settings::LogFormat::Json => {
            lines.json().flatten_event(true).with_current_span(false).with_span_list(true).boxed()
        }
    };
    let registry = tracing_subscriber::registry().with(lines.with_filter(capped(filter)));

    #[cfg(feature = "otlp")]
    let (registry, telemetry) = {
        let exporter = crate::otlp::exporter(otlp)?;
        let spans = match &exporter {
            Some(exporter) => {
                let filter = tracing_subscriber::EnvFilter::try_new(&otlp.filter)
                    .map_err(|e| crate::settings::InvalidSetting { key: "otlp.filter", problem: e.to_string() })?;
                Some(crate::otlp::layer(exporter).with_filter(capped(filter)))
            }
            None => None,
        };
        (registry.with(spans), Telemetry { exporter })
    };
    #[cfg(not(feature = "otlp"))]
    let telemetry = match otlp.traces_url()? {
        Some(_) => {
            return Err(TelemetryError::Setting(crate::settings::InvalidSetting {
                key: "otlp.endpoint",
                problem: "set, but this build has no trace export (build with the `otlp` feature)".into(),
            }))
        }
        None => Telemetry::default(),
    };

    // Also routes the `log` facade's records into the subscriber.
    tracing_subscriber::util::SubscriberInitExt::try_init(registry)
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(telemetry)
}

/// Why logging or trace export could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting of logging or trace export cannot be used.
    #[error(transparent)]
    Setting(#[from] crate::settings::InvalidSetting),
    /// The trace exporter could not be built.
    #[error("otlp exporter: {0}")]
    Exporter(String),
    /// A subscriber is installed already in this process.
    #[error("logging is installed already: {0}")]
    AlreadyInstalled(String),
}

/// Counts a request refused by rate-limit policy `policy`.
pub fn rate_limited(policy: &str) {
    metrics::counter!(names::RATE_LIMIT_REJECTIONS, "policy" => policy.to_owned()).increment(1);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `directives` let through of a fixed set of lines.
    fn lines_under(directives: &str) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone());
        let filter = capped(tracing_subscriber::EnvFilter::try_new(directives).unwrap());
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("outside debug");
            tracing::info!("outside info");
            tracing::info_span!("picked", kind = "a").in_scope(|| tracing::debug!("inside picked debug"));
            tracing::info_span!("other").in_scope(|| tracing::debug!("inside other debug"));
            tracing::debug!(target: "rusoto_core", "leaky debug");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn line_timestamps_are_rfc3339_utc_with_microseconds() {
        use tracing_subscriber::fmt::time::FormatTime as _;
        let before = time::OffsetDateTime::now_utc();
        let mut text = String::new();
        UtcMicros.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text)).unwrap();
        let after = time::OffsetDateTime::now_utc();
        assert_eq!(text.len(), "2026-01-02T03:04:05.678901Z".len(), "{text}");
        let at = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap();
        assert!(before - time::Duration::microseconds(1) <= at && at <= after, "{text}");
        // The cached second is used again, with new microseconds.
        let mut again = String::new();
        UtcMicros.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut again)).unwrap();
        assert!(time::OffsetDateTime::parse(&again, &time::format_description::well_known::Rfc3339).unwrap() >= at);
    }

    #[test]
    fn plain_directives_filter_without_following_spans() {
        let filter = capped(tracing_subscriber::EnvFilter::try_new("info,streaming_core=debug").unwrap());
        assert!(!filter.spans);
        let text = lines_under("info");
        assert!(text.contains("outside info"));
        assert!(!text.contains("debug"), "{text}");
        let text = lines_under("debug");
        assert!(text.contains("outside debug") && text.contains("inside picked debug"));
        assert!(!text.contains("leaky debug"), "leaky targets stay capped: {text}");
    }

    #[test]
    fn span_directives_still_filter_by_span() {
        let filter = capped(tracing_subscriber::EnvFilter::try_new("info,[picked]=debug").unwrap());
        assert!(filter.spans);
        let text = lines_under("info,[picked{kind=a}]=debug");
        assert!(text.contains("inside picked debug"), "{text}");
        assert!(!text.contains("inside other debug"), "{text}");
        assert!(!text.contains("outside debug"), "{text}");
        assert!(text.contains("outside info"));
    }
}
