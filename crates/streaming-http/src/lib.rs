//! # streaming-http
//!
//! The HTTP edge of the streaming-access service for actix-web, to mount in
//! any actix-web application: the public routes (the track and cinema
//! contracts, health, readiness, `/openapi.json`), the admin routes, the
//! problem documents every error becomes, and the OpenAPI document.
//!
//! ```no_run
//! # fn app(state: actix_web::web::Data<streaming_http::ApiState>) {
//! use actix_web::{middleware::from_fn, web, App};
//!
//! let app = App::new()
//!     .wrap(from_fn(streaming_http::enrich_problems))
//!     .configure(|cfg| streaming_http::configure(cfg, state.clone()))
//!     .route("/", web::get().to(|| async { "your own routes beside ours" }))
//!     .default_service(web::to(streaming_http::not_found));
//! # let _ = app;
//! # }
//! ```
//!
//! The handlers parse, call the core's driving ports ([`ApiState`]) and map
//! errors; nothing else. Building the state (adapters, settings, telemetry)
//! is the program's.

mod auth;
mod body;
mod observe;
pub mod problem;
mod routes;
mod state;

pub use observe::{observe, set_trace_export, TraceExport, TraceJoin, Traceparent};
pub use problem::{enrich_problems, ApiError, ProblemTypeBase, TraceId};
pub use routes::admin::{self, AdminState};
pub use routes::openapi::{self, document, ApiDoc, PagesDoc};
pub use routes::{
    configure, configure_pages, not_found, register, served, served_page_routes, served_routes, template, to,
    PagesState, RouteTable, STORED_CONTENT_POLICY,
};
pub use state::ApiState;
