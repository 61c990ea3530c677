//! The HTTP servers: the admin listener, the headers every answer carries,
//! and how malformed bodies and queries become problems.

use super::StartupError;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use secrecy::ExposeSecret;
use streaming_core::admin::{AdminPorts, CatalogAdmin};
use streaming_core::changes::CatalogChanges;
use streaming_core::ports::AuditLog;
use streaming_localfs::JsonLinesAuditLog;
use streaming_postgres::{PgAuditLog, PgDatabase};

use crate::auth::caller_token_scope;
use crate::catalog::Catalog;
use crate::problem::{enrich_problems, ApiError, ProblemTypeBase};
use crate::routes;
use crate::settings::{Settings, UserCredentials};
use crate::state::AppState;

/// `X-Content-Type-Options: nosniff` on every answer: no browser guesses
/// a type other than the one sent.
fn nosniff() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// The admin API on its own listener: its bound port and its server.
pub(super) async fn admin_server(
    settings: &Settings,
    changes: Arc<CatalogChanges>,
    catalog: Catalog,
    postgres: Option<PgDatabase>,
    app: web::Data<AppState>,
    problem_base: web::Data<ProblemTypeBase>,
) -> Result<(u16, Server), StartupError> {
    let admin = &settings.admin;
    let keys = admin
        .keys
        .as_ref()
        .ok_or_else(|| StartupError::Config("admin.keys is required when admin.enabled is true".into()))?;
    let credentials: streaming_auth::ServiceCredentials =
        keys.expose_secret().parse().map_err(|e| StartupError::Config(format!("admin.keys: {e}")))?;
    let audit: Arc<dyn AuditLog> = match postgres {
        Some(db) => Arc::new(PgAuditLog::new(db)),
        None => Arc::new(
            JsonLinesAuditLog::open(&admin.audit_path)
                .await
                .map_err(|e| StartupError::Storage(format!("admin audit file {}: {e}", admin.audit_path.display())))?,
        ),
    };
    let address = format!("{}:{}", admin.host, admin.port);
    let listener =
        TcpListener::bind(&address).map_err(|source| StartupError::Bind { address: address.clone(), source })?;
    let port = listener.local_addr().map_err(|source| StartupError::Bind { address, source })?.port();
    let max_body = app.max_body_bytes;
    let admin = CatalogAdmin::new(AdminPorts { changes, catalog: catalog.fresh(), audit, clock: app.clock.clone() });
    let state = web::Data::new(crate::routes::admin::AdminState { credentials, admin, app });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(problem_base.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .wrap(from_fn(enrich_problems))
            .wrap(nosniff())
            .wrap(from_fn(crate::telemetry::observe))
            .configure(crate::routes::admin::configure)
            .default_service(web::to(routes::not_found))
    })
    .workers(1)
    .shutdown_timeout(settings.server.shutdown_timeout_seconds)
    .listen(listener)
    .map_err(|source| StartupError::Bind { address: format!("port {port}"), source })?
    .run();
    tracing::info!(port, "admin API listening");
    Ok((port, server))
}

fn json_error(error: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match error {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge,
        E::ContentType => ApiError::UnsupportedMediaType,
        other => ApiError::BadRequest(format!("The request body is not valid JSON: {other}")),
    };
    api.into()
}

fn query_error(error: actix_web::error::QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    // Names the missing or malformed parameter, never its value.
    let detail = match error {
        actix_web::error::QueryPayloadError::Deserialize(error) => error.to_string(),
        other => other.to_string(),
    };
    ApiError::BadRequest(format!("The query string is not valid: {detail}.")).into()
}

/// The public API's server on `listener` (bound to `port`).
pub(super) fn public_server(
    settings: &Settings,
    state: web::Data<AppState>,
    problem_base: web::Data<ProblemTypeBase>,
    listener: TcpListener,
    port: u16,
) -> Result<Server, StartupError> {
    let max_body = state.max_body_bytes;
    let forward_caller_token = settings.users.url.is_some() && settings.users.credentials == UserCredentials::Caller;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(problem_base.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .wrap(actix_web::middleware::Condition::new(forward_caller_token, from_fn(caller_token_scope)))
            .wrap(from_fn(enrich_problems))
            .wrap(nosniff())
            .wrap(from_fn(crate::telemetry::observe))
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .client_request_timeout(Duration::from_millis(settings.server.client_request_timeout_ms))
    .shutdown_timeout(settings.server.shutdown_timeout_seconds);
    if let Some(workers) = settings.server.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener).map_err(|source| StartupError::Bind { address: format!("port {port}"), source })?.run())
}
