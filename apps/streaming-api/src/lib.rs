//! # streaming-api
//!
//! The actix-web service around `streaming-core`. [`Application::build`]
//! wires adapters from [`Settings`] and binds the listener; tests and
//! embedders start the real server with it (port 0 for a free port).

mod auth;
mod catalog;
pub mod cinema_env;
pub mod cli;
pub mod demo;
pub mod log_writer;
#[cfg(feature = "otlp")]
pub mod otlp;
mod routes;
mod secrets;
pub mod settings;
mod startup;
mod storage;
mod subscriptions;
pub mod telemetry;

pub use routes::openapi::{document as openapi_document, openapi};
pub use routes::served_routes;
pub use settings::Settings;
pub use startup::{Application, PortOverrides, StartupError};
