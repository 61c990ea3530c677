//! The Prometheus exporter: histogram buckets, the process gauges, `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::header::{self};
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use streaming_core::telemetry as names;

use crate::routes::BinaryState;
use streaming_http::ApiError;

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
            names::zero_known_series();
            process_metrics().describe();
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

/// The standard `process_*` metrics (CPU seconds, resident and virtual
/// memory, open and maximum file descriptors, threads, start time), as
/// Prometheus's own clients name them, read afresh at each scrape.
fn process_metrics() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Every metric of the process.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "`metrics.enabled = false`, or the embedding program installed its own recorder.",
            body = streaming_http::openapi::Problem, content_type = "application/problem+json"),
        (status = 500, response = streaming_http::openapi::InternalError),
    ),
)]
pub async fn scrape(state: web::Data<BinaryState>) -> Result<HttpResponse, ApiError> {
    let handle = state.metrics.ok_or(ApiError::RouteNotFound)?;
    process_metrics().collect();
    handle.run_upkeep();
    let mut body = Vec::with_capacity(16 * 1024);
    handle.render_to_write(&mut body).map_err(|_| ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
