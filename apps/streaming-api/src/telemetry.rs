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
    if let Ok(value) = HeaderValue::from_str(&format!("00-{}-{span_id}-01", trace.0)) {
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
    (span, trace, format!("{:016x}", rand::random::<u64>().max(1)), false)
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

/// Dependencies that print object keys or signing material at debug level
/// (rusoto logs every request's URI and its signer the canonical request):
/// held at `info` whatever the configured filter says.
const LEAKY_TARGETS: [&str; 3] = ["rusoto_core", "rusoto_signature", "rusoto_credential"];

/// `filter` with the [`LEAKY_TARGETS`] held at `info`.
fn capped(mut filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    for target in LEAKY_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
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
) -> Result<Telemetry, String>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
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
                let filter =
                    tracing_subscriber::EnvFilter::try_new(&otlp.filter).map_err(|e| format!("otlp.filter: {e}"))?;
                Some(crate::otlp::layer(exporter).with_filter(capped(filter)))
            }
            None => None,
        };
        (registry.with(spans), Telemetry { exporter })
    };
    #[cfg(not(feature = "otlp"))]
    let telemetry = match otlp.traces_url()? {
        Some(_) => {
            return Err(
                "otlp.endpoint is set, but this build has no trace export (build with the `otlp` feature)".into()
            )
        }
        None => Telemetry::default(),
    };

    // Also routes the `log` facade's records into the subscriber.
    tracing_subscriber::util::SubscriberInitExt::try_init(registry).map_err(|e| e.to_string())?;
    Ok(telemetry)
}

/// Counts a request refused by rate-limit policy `policy`.
pub fn rate_limited(policy: &str) {
    metrics::counter!(names::RATE_LIMIT_REJECTIONS, "policy" => policy.to_owned()).increment(1);
}
