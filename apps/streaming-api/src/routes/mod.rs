//! The routes the binary serves beside the library's: the embedded store's
//! objects and `/metrics`. They are the standalone service's (its store,
//! its telemetry), not the contract's: a team mounting `streaming-http` in
//! its own application does not get them.

mod objects;
pub mod openapi;

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::web;
use streaming_core::ports::Clock;
use streaming_http::{to, RouteTable};
use streaming_localfs::LocalObjectStore;

/// What these routes reach.
pub struct BinaryState {
    /// The embedded object store, when it is the configured store (serves `/objects`).
    pub local_objects: Option<Arc<LocalObjectStore>>,
    /// The Prometheus recorder, when `/metrics` is served.
    pub metrics: Option<&'static metrics_exporter_prometheus::PrometheusHandle>,
    /// Time (presigned object URLs expire).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BinaryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryState").field("local_objects", &self.local_objects.is_some()).finish_non_exhaustive()
    }
}

fn table() -> RouteTable {
    vec![
        ("/objects/{key:.+}", vec![to(Method::GET, web::to(objects::serve)), to(Method::HEAD, web::to(objects::head))]),
        metrics_route(),
    ]
}

fn metrics_route() -> (&'static str, Vec<(Method, actix_web::Route)>) {
    ("/metrics", vec![to(Method::GET, web::to(crate::telemetry::scrape))])
}

/// Registers these routes and `state`; other methods on them are 405.
/// `/metrics` answers 404 where `state` holds no recorder.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<BinaryState>) {
    cfg.app_data(state);
    streaming_http::register(cfg, table());
}

/// Registers `/metrics` alone (the admin listener's, with `metrics.listener = "admin"`).
pub fn configure_metrics(cfg: &mut web::ServiceConfig, state: web::Data<BinaryState>) {
    cfg.app_data(state);
    streaming_http::register(cfg, vec![metrics_route()]);
}

/// `(method, path)` of every route the public listener serves, paths in
/// OpenAPI form.
pub fn served_routes() -> Vec<(String, String)> {
    let mut routes = streaming_http::served_routes();
    routes.extend(streaming_http::served_page_routes());
    routes.extend(streaming_http::served(table()));
    routes
}
