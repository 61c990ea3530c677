//! Request observation: the middleware that gives every request a trace id,
//! a span and its HTTP metrics (labelled by route template, never by raw
//! path). Where spans go (logs, an OTLP exporter) is the program's telemetry
//! setup; [`set_trace_export`] lets an exporter join request spans to the
//! caller's trace.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpMessage;
use streaming_core::telemetry as names;
use tracing::Instrument;

use crate::TraceId;

/// A valid incoming `traceparent`: trace id, parent span id, flags.
pub type Traceparent<'a> = (&'a str, &'a str, &'a str);

/// Joins a request's span to the caller's trace or a new one: the exported
/// trace and span ids, or `None` when the span is not exported.
pub type TraceJoin = fn(&tracing::Span, Option<Traceparent<'_>>) -> Option<(String, String)>;

/// How request spans reach a trace exporter.
#[derive(Debug, Clone, Copy)]
pub struct TraceExport {
    /// Whether spans are being exported now.
    pub exporting: fn() -> bool,
    /// Joins a request's span to its trace.
    pub join: TraceJoin,
}

static TRACE_EXPORT: OnceLock<TraceExport> = OnceLock::new();

/// Installs the trace exporter's hooks, once per process (tracing is
/// process-wide too); `false` if they were installed already.
pub fn set_trace_export(export: TraceExport) -> bool {
    TRACE_EXPORT.set(export).is_ok()
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

    let route = res.request().match_name().and_then(crate::template).unwrap_or("unmatched");
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
    if let Some(export) = TRACE_EXPORT.get().filter(|export| (export.exporting)()) {
        let span = tracing::info_span!("http.request", trace_id = Empty, method, route = Empty, status = Empty);
        if let Some((trace, span_id)) = (export.join)(&span, incoming) {
            span.record("trace_id", trace.as_str());
            return (span, TraceId(trace), span_id, true);
        }
    }
    let trace = incoming.map_or_else(TraceId::random, |(trace, _, _)| TraceId(trace.to_owned()));
    let span = tracing::info_span!("http.request", trace_id = trace.0.as_str(), method, route = Empty, status = Empty);
    (span, trace, streaming_core::encoding::hex(&rand::random::<u64>().max(1).to_be_bytes()), false)
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
