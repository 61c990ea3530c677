//! The service's telemetry setup: the Prometheus exporter (`exporter`), log
//! lines and trace export (`logging`). Requests are observed by
//! `streaming_http::observe`, whose spans these carry.

mod exporter;
mod logging;

pub use exporter::{__path_scrape, prometheus, scrape};
pub use logging::{check_settings, install_logging, Telemetry, TelemetryError};
