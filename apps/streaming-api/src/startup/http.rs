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
use crate::routes::{self, BinaryState};
use crate::settings::Settings;
use streaming_http::{enrich_problems, AdminState, ApiState, PagesState, ProblemTypeBase};
use streaming_users::UserCredentials;

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
    api: web::Data<ApiState>,
    problem_base: web::Data<ProblemTypeBase>,
    metrics: Option<web::Data<BinaryState>>,
) -> Result<(u16, Server), StartupError> {
    let admin = &settings.admin;
    let credentials = admin_credentials(settings)?;
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
    let admin = CatalogAdmin::new(AdminPorts { changes, catalog: catalog.fresh(), audit, clock: api.clock.clone() });
    let state = web::Data::new(AdminState { credentials, admin, api });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(problem_base.clone())
            .wrap(from_fn(enrich_problems))
            .wrap(nosniff())
            .wrap(from_fn(streaming_http::observe))
            .configure(|cfg| streaming_http::admin::configure(cfg, state.clone()))
            .configure(|cfg| {
                // `metrics.listener = "admin"`: scraped here, without a key.
                if let Some(metrics) = &metrics {
                    routes::configure_metrics(cfg, metrics.clone());
                }
            })
            .default_service(web::to(streaming_http::not_found))
    })
    .workers(1)
    .shutdown_timeout(settings.server.shutdown_timeout_seconds)
    .listen(listener)
    .map_err(|source| StartupError::Bind { address: format!("port {port}"), source })?
    .run();
    tracing::info!(port, "admin API listening");
    Ok((port, server))
}

/// The public API's server on `listener` (bound to `port`).
pub(super) fn public_server(
    settings: &Settings,
    state: web::Data<ApiState>,
    pages: web::Data<PagesState>,
    binary: web::Data<BinaryState>,
    problem_base: web::Data<ProblemTypeBase>,
    listener: TcpListener,
    port: u16,
) -> Result<Server, StartupError> {
    let forward_caller_token = settings.users.url.is_some() && settings.users.credentials == UserCredentials::Caller;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(problem_base.clone())
            .wrap(actix_web::middleware::Condition::new(forward_caller_token, from_fn(caller_token_scope)))
            .wrap(from_fn(enrich_problems))
            .wrap(nosniff())
            .wrap(from_fn(streaming_http::observe))
            .configure(|cfg| streaming_http::configure(cfg, state.clone()))
            .configure(|cfg| streaming_http::configure_pages(cfg, pages.clone()))
            .configure(|cfg| routes::configure(cfg, binary.clone()))
            .default_service(web::to(streaming_http::not_found))
    })
    .client_request_timeout(Duration::from_millis(settings.server.client_request_timeout_ms))
    .keep_alive(match settings.server.keep_alive_seconds {
        0 => actix_web::http::KeepAlive::Disabled,
        seconds => actix_web::http::KeepAlive::Timeout(Duration::from_secs(seconds)),
    })
    .shutdown_timeout(settings.server.shutdown_timeout_seconds);
    if let Some(workers) = settings.server.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener).map_err(|source| StartupError::Bind { address: format!("port {port}"), source })?.run())
}

/// The admin API's service credentials (`admin.keys`).
///
/// # Errors
/// [`StartupError::Config`] when they are missing or malformed.
pub(super) fn admin_credentials(settings: &Settings) -> Result<streaming_auth::ServiceCredentials, StartupError> {
    let keys = settings
        .admin
        .keys
        .as_ref()
        .ok_or_else(|| StartupError::Config("admin.keys is required when admin.enabled is true".into()))?;
    keys.expose_secret().parse().map_err(|e| StartupError::Config(format!("admin.keys: {e}")))
}

/// `metrics.listener = "admin"` needs the admin listener.
///
/// # Errors
/// [`StartupError::Config`] when the admin API is off.
pub(super) fn metrics_listener(settings: &Settings) -> Result<(), StartupError> {
    if settings.metrics.listener == crate::settings::MetricsListener::Admin && !settings.admin.enabled {
        return Err(StartupError::Config(
            "metrics.listener = \"admin\" serves /metrics on the admin listener: it needs admin.enabled".into(),
        ));
    }
    Ok(())
}
