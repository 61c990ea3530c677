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

/// `GET /metrics`: Prometheus text format.
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
    let trace = req.headers().get("traceparent").and_then(TraceId::from_traceparent).unwrap_or_else(TraceId::random);
    let span_id = format!("{:016x}", rand::random::<u64>().max(1));
    req.extensions_mut().insert(trace.clone());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.request",
        trace_id = %trace.0,
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let mut res = next.call(req).instrument(span.clone()).await?;

    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    span.record("route", route.as_str());
    span.record("status", status);
    let status_label = status.to_string();
    metrics::counter!(names::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status_label)
        .increment(1);
    metrics::histogram!(names::HTTP_DURATION_SECONDS, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    // Successes at debug (one line per request costs throughput); failures louder.
    let duration_ms = elapsed.as_secs_f64() * 1_000.0;
    span.in_scope(|| match status {
        500.. => tracing::warn!(duration_ms, "request failed"),
        400.. => tracing::info!(duration_ms, "request refused"),
        _ => tracing::debug!(duration_ms, "request served"),
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

/// Dependencies that print object keys or signing material at debug level
/// (rusoto logs every request's URI and its signer the canonical request):
/// held at `info` whatever the configured filter says.
const LEAKY_TARGETS: [&str; 3] = ["rusoto_core", "rusoto_signature", "rusoto_credential"];

/// Installs the process's logging: `filter` applied (leaky dependencies
/// capped), lines in `log.format` written to `writer` (stdout in the
/// binary; a buffer in tests), and records of crates that use the `log`
/// facade brought in too.
///
/// # Errors
/// When logging was installed already.
pub fn install_logging<W>(
    log: &crate::settings::LogSettings,
    mut filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Result<(), String>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    for target in LEAKY_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = match log.format {
        crate::settings::LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            Box::new(builder.with_target(false).with_ansi(ansi).finish())
        }
        // Every enclosing span's fields: `trace_id` of the request, `TrackId` of the operation.
        crate::settings::LogFormat::Json => {
            Box::new(builder.json().flatten_event(true).with_current_span(false).with_span_list(true).finish())
        }
    };
    // Also routes the `log` facade's records into the subscriber.
    tracing_subscriber::util::SubscriberInitExt::try_init(subscriber).map_err(|e| e.to_string())
}

/// Counts a request refused by rate-limit policy `policy`.
pub fn rate_limited(policy: &str) {
    metrics::counter!(names::RATE_LIMIT_REJECTIONS, "policy" => policy.to_owned()).increment(1);
}
