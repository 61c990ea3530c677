//! The composition root: settings in, a bound server out.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use streaming_auth::{Algorithm, KeySource, KeyStore, TokenVerifier, VerifierOptions};
use streaming_core::adapters::{
    CachedCatalog, CachedSubscriptions, MemoryCatalog, MemoryOffsetStore, MemoryProgressStore, MemoryRateLimiter,
    MemorySessionStore, MemorySubscriptions, MemoryUrlCache, MokaUrlCache, NoUrlCache, StoredMovies, SystemClock,
};
use streaming_core::admin::{AdminPorts, CatalogAdmin};
use streaming_core::changes::{CatalogChanges, ChangePorts, InvalidationStats};
use streaming_core::ports::{
    check_presign_expiry, AuditLog, Clock, EventPublisher, MediaCatalog, OffsetStore, ProgressStore, RateLimiter,
    SessionStore, SubscriptionDirectory, UrlCache,
};
use streaming_core::rate_limit::UserLimit;
use streaming_core::url_signing::UrlSigner;
use streaming_core::{
    BrowsePorts, CacheKeyring, ManifestGrants, MediaBrowser, PlaybackLimits, PlaybackPorts, PlaybackService,
    PlaybackSettings, StreamUrlService, StreamingPorts, StreamingService, StreamingSettings,
};
use streaming_kafka::{BufferedKafkaPublisher, KafkaConfig, KafkaProducer, StartFrom, UpstreamConsumer, UpstreamTopic};
use streaming_localfs::{JsonLinesAuditLog, JsonLinesEventPublisher};
use streaming_postgres::{
    OutboxRelay, PgAuditLog, PgCatalog, PgConfig, PgConsumerOffsets, PgDatabase, PgOutbox, PgProgressStore,
    PgSessionStore, RelaySettings, WriteBehindOutbox, WriteBehindProgress, WriteBehindSessions,
};
use streaming_redis::{
    HotCopyLayout, LocalLevel, RedisConfig, RedisConnection, RedisEventGate, RedisProgressCache, RedisRateLimiter,
    RedisSubscriptionCache, RedisUrlCache, TwoLevelUrlCache,
};

use crate::auth::caller_token_scope;
use crate::catalog::Catalog;
use crate::demo::{self, DemoInfo};
use crate::problem::{enrich_problems, ApiError, ProblemTypeBase};
use crate::routes;
use crate::settings::{CacheKind, ConsumeFrom, HotCopyKeys, Settings, StorageKind, UserCredentials};
use crate::state::AppState;
use crate::storage::Storage;
use crate::subscriptions::{default_plan, user_service, SubscriptionCache};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The settings are inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The object store could not be opened or seeded.
    #[error("object store: {0}")]
    Storage(String),
    /// The database is unreachable or its schema is not current.
    #[error("database: {0}")]
    Database(String),
    /// The demo media could not be written (demo mode).
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
}

/// Ports an embedder (or a test) supplies instead of the configured ones.
#[derive(Default, Clone)]
pub struct PortOverrides {
    /// Replaces the memory catalog (demo media are then not registered).
    pub catalog: Option<Arc<dyn MediaCatalog>>,
    /// Replaces the memory subscription directory.
    pub subscriptions: Option<Arc<dyn SubscriptionDirectory>>,
    /// Seeds the demo media and subscription into whatever stores are
    /// configured, and makes the demo token, as demo mode does: for tests
    /// and demonstrations assembled in code. No setting reaches it, so a
    /// configuration can never write demo media into production stores.
    pub demo: bool,
}

impl std::fmt::Debug for PortOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortOverrides")
            .field("catalog", &self.catalog.is_some())
            .field("subscriptions", &self.subscriptions.is_some())
            .field("demo", &self.demo)
            .finish()
    }
}

/// A bound, not yet running service.
pub struct Application {
    port: u16,
    base_url: String,
    server: Server,
    /// The admin API's bound port, when it is served.
    admin_port: Option<u16>,
    admin_server: Option<Server>,
    demo: Option<DemoInfo>,
    ephemeral_secret: bool,
    write_behind: Option<Arc<WriteBehindProgress<PgProgressStore>>>,
    session_cache: Option<Arc<WriteBehindSessions<PgSessionStore>>>,
    outbox_queue: Option<Arc<WriteBehindOutbox>>,
    relay: Option<OutboxRelay>,
    kafka_buffer: Option<BufferedKafkaPublisher>,
    consumer: Option<UpstreamConsumer>,
    invalidations: Option<Arc<InvalidationStats>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Builds every adapter the settings ask for and binds the listener
    /// (port 0 picks a free port; see [`Application::port`]).
    ///
    /// # Errors
    /// [`StartupError`] for bad settings, a busy port, or an unusable store.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, PortOverrides::default()).await
    }

    /// [`Application::build`] with some ports supplied by the caller.
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with(mut settings: Settings, overrides: PortOverrides) -> Result<Self, StartupError> {
        let demo_mode = overrides.demo || demo_mode(&settings)?;
        let derived = crate::secrets::complete(&mut settings)?;
        if !derived.is_empty() {
            tracing::info!(secrets = derived.join(", "), "derived from auth.secret");
        }
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener =
            TcpListener::bind(&address).map_err(|source| StartupError::Bind { address: address.clone(), source })?;
        let port = listener.local_addr().map_err(|source| StartupError::Bind { address, source })?.port();
        let base_url = settings.server.public_url.clone().unwrap_or_else(|| {
            let host = match settings.server.host.as_str() {
                "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
                host => host,
            };
            format!("http://{host}:{port}")
        });

        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let streaming_settings = streaming_settings(&settings)?;

        let (verifier, ephemeral_secret, auth_secret) = verifier(&settings).await?;

        let storage = Storage::open(&settings, &base_url, random_secret).await?;

        let postgres = postgres_database(&settings).await?;
        let owned_catalog = match &postgres {
            Some(db) => {
                let db = Arc::new(PgCatalog::new(db.clone()));
                let ttl = settings.postgres.catalog_cache_ttl_ms;
                let cache = (ttl > 0).then(|| {
                    let max = settings.postgres.catalog_cache_max_entries;
                    Arc::new(CachedCatalog::new(db.clone(), Duration::from_millis(ttl), max))
                });
                Catalog::Postgres { db, cache }
            }
            None => Catalog::Memory(Arc::new(MemoryCatalog::new())),
        };
        let catalog: Arc<dyn MediaCatalog> = overrides.catalog.unwrap_or_else(|| owned_catalog.port());
        let catalog: Arc<dyn MediaCatalog> = if settings.playback.stored_movies {
            Arc::new(StoredMovies::new(catalog, storage.port()))
        } else {
            catalog
        };
        // With PostgreSQL, progress is written behind: batched, drained on shutdown.
        let write_behind = postgres.as_ref().map(|db| {
            WriteBehindProgress::start(
                PgProgressStore::new(db.clone()),
                settings.postgres.progress_queue_capacity,
                Duration::from_millis(settings.postgres.progress_flush_interval_ms.max(10)),
            )
        });
        // And sessions are read from memory, their heartbeats written behind.
        let session_cache = postgres.as_ref().filter(|_| settings.postgres.session_cache_ttl_ms > 0).map(|db| {
            WriteBehindSessions::start(
                PgSessionStore::new(db.clone()),
                settings.postgres.progress_queue_capacity,
                Duration::from_millis(settings.postgres.session_cache_ttl_ms),
                Duration::from_millis(settings.postgres.progress_flush_interval_ms.max(10)),
            )
        });
        let (durable_progress, sessions): (Arc<dyn ProgressStore>, Arc<dyn SessionStore>) =
            match (&postgres, &write_behind, &session_cache) {
                (_, Some(queue), Some(cache)) => (queue.clone(), cache.clone()),
                (Some(db), Some(queue), None) => (queue.clone(), Arc::new(PgSessionStore::new(db.clone()))),
                _ => (Arc::new(MemoryProgressStore::new()), Arc::new(MemorySessionStore::new())),
            };
        let redis = redis_connection(&settings)?;
        let cache: Arc<dyn UrlCache> = match (settings.cache.kind, &redis) {
            (CacheKind::Moka, _) => Arc::new(MokaUrlCache::new(settings.cache.max_bytes)),
            (CacheKind::Memory, _) => Arc::new(MemoryUrlCache::new(clock.clone())),
            (CacheKind::Off, _) => Arc::new(NoUrlCache),
            (CacheKind::Redis, Some(redis)) if settings.cache.local_ttl_ms == 0 => {
                Arc::new(RedisUrlCache::new(redis.clone()))
            }
            (CacheKind::Redis, Some(redis)) => {
                let level = LocalLevel {
                    ttl: Duration::from_millis(settings.cache.local_ttl_ms),
                    max_bytes: settings.cache.local_max_bytes,
                };
                TwoLevelUrlCache::start(redis.clone(), level)
                    .map_err(|_| StartupError::Config("redis.url: cannot build the subscriber client".into()))?
            }
            (CacheKind::Redis, None) => {
                return Err(StartupError::Config("cache.kind = \"redis\" needs redis.url".into()))
            }
        };
        let memory_subscriptions = Arc::new(MemorySubscriptions::new());
        let user_service = user_service(&settings)?;
        let remote = user_service.is_some();
        let source: Arc<dyn SubscriptionDirectory> = match (overrides.subscriptions, user_service) {
            (Some(source), _) => source,
            (None, Some(users)) => users,
            (None, None) => memory_subscriptions.clone(),
        };
        let hot_copy_layout = hot_copy_layout(&settings, redis.as_ref())?;
        // With Redis: the seed's hot copies in front of the progress store and
        // the directory; without it, a remote directory gets a cache of its own.
        let subscription_cache = match &redis {
            Some(redis) => {
                let cache = RedisSubscriptionCache::new(
                    redis.clone(),
                    source.clone(),
                    Duration::from_secs(settings.redis.subscription_ttl_seconds),
                );
                Some(SubscriptionCache::Redis(Arc::new(match hot_copy_layout {
                    HotCopyLayout::Cinema => cache.with_cinema_layout(default_plan(&settings.users)),
                    HotCopyLayout::Tagged => cache,
                })))
            }
            None if remote => Some(SubscriptionCache::Local(Arc::new(CachedSubscriptions::new(
                source.clone(),
                Duration::from_secs(settings.users.cache_ttl_seconds),
                settings.cache.max_entries,
            )))),
            None => None,
        };
        let (subscriptions, progress): (Arc<dyn SubscriptionDirectory>, Arc<dyn ProgressStore>) =
            match (&redis, &subscription_cache) {
                (Some(redis), Some(cache)) => (
                    cache.port(),
                    Arc::new(RedisProgressCache::with_layout(
                        redis.clone(),
                        durable_progress,
                        Duration::from_secs(settings.redis.progress_ttl_seconds),
                        hot_copy_layout,
                    )),
                ),
                (None, Some(cache)) => (cache.port(), durable_progress),
                _ => (source, durable_progress),
            };
        let limiter: Arc<dyn RateLimiter> = match &redis {
            Some(redis) => Arc::new(RedisRateLimiter::new(redis.clone()).with_max_lease(settings.rate_limit.max_lease)),
            None => Arc::new(MemoryRateLimiter::new(clock.clone())),
        };
        let keyring = keyring(&settings)?;
        let streaming: Arc<dyn StreamingService> = Arc::new(StreamUrlService::new(
            StreamingPorts {
                catalog: catalog.clone(),
                objects: storage.port(),
                cache,
                subscriptions: subscriptions.clone(),
                clock: clock.clone(),
            },
            keyring,
            streaming_settings,
        ));

        // With PostgreSQL every event goes to the outbox (start and stop in
        // the session's own transaction), and with Kafka a relay publishes
        // it; with Kafka alone events go through a bounded buffer; with
        // neither, to the JSON-lines file.
        let producer = kafka_producer(&settings)?;
        let mut relay = None;
        let mut kafka_buffer = None;
        let mut outbox_queue = None;
        let events: Arc<dyn EventPublisher> =
            match (&postgres, &producer) {
                (Some(db), producer) => {
                    let outbox = PgOutbox::new(db.clone());
                    if let Some(producer) = producer {
                        relay = Some(OutboxRelay::start(outbox.clone(), producer.clone(), relay_settings(&settings)));
                    }
                    // Progress events are written behind, batched like the progress itself.
                    let queue = WriteBehindOutbox::start(
                        outbox,
                        settings.postgres.progress_queue_capacity,
                        Duration::from_millis(settings.postgres.progress_flush_interval_ms.max(10)),
                    );
                    outbox_queue = Some(queue.clone());
                    queue
                }
                (None, Some(producer)) => {
                    let buffer = BufferedKafkaPublisher::start(producer.clone(), settings.kafka.buffer_capacity);
                    kafka_buffer = Some(buffer.clone());
                    Arc::new(buffer)
                }
                (None, None) => Arc::new(JsonLinesEventPublisher::open(&settings.events.path).await.map_err(|e| {
                    StartupError::Storage(format!("events file {}: {e}", settings.events.path.display()))
                })?),
            };
        let browser = Arc::new(MediaBrowser::new(BrowsePorts {
            listing: owned_catalog.listing(),
            catalog: catalog.clone(),
            subscriptions: subscriptions.clone(),
            clock: clock.clone(),
        }));
        let mut playback = PlaybackService::new(
            PlaybackPorts {
                catalog,
                objects: storage.port(),
                subscriptions,
                progress,
                sessions,
                events,
                clock: clock.clone(),
            },
            playback_settings(&settings)?,
        )
        .with_manifest_grants(manifest_grants(&settings, &base_url)?)
        .with_limits(PlaybackLimits {
            start: UserLimit::per_minute(limiter.clone(), "stream-start", settings.rate_limit.stream_start_per_minute),
            manifest: UserLimit::per_minute(
                limiter.clone(),
                "stream-manifest",
                settings.rate_limit.manifest_per_minute,
            ),
        });
        // With Redis, progress events are thinned out across every instance.
        if let Some(redis) = &redis {
            playback = playback.with_shared_event_gate(Arc::new(RedisEventGate::new(redis.clone())));
        }
        let playback = Arc::new(playback);
        sweep_idle_sessions(&playback);

        let demo = if demo_mode {
            let (user, tracks) = demo::seed(&owned_catalog, &storage).await?;
            let movie = demo::seed_movie(&owned_catalog, &storage).await?;
            memory_subscriptions.set(&user, Some(demo::demo_subscription()));
            // Only an HS256 token can be minted here; with RS256/ES256 the issuer mints them.
            let token = match &auth_secret {
                Some(secret) => crate::auth::mint_token(
                    &settings.auth,
                    secret,
                    user.as_str(),
                    Duration::from_secs(12 * 3600),
                    clock.now(),
                )
                .map_err(|e| StartupError::Config(format!("demo token: {e}")))?,
                None => String::new(),
            };
            Some(DemoInfo { user, token, tracks, movie })
        } else {
            None
        };

        // Upstream catalog events: every instance reads them all (its
        // in-process caches need them); offsets in PostgreSQL when there is one.
        // One applier of catalog changes for the consumer and the admin API.
        let consume = producer.is_some() && settings.kafka.consume;
        let changes = (consume || settings.admin.enabled).then(|| {
            Arc::new(CatalogChanges::new(ChangePorts {
                writer: owned_catalog.writer(),
                catalog: owned_catalog.fresh(),
                catalog_cache: owned_catalog.cache(),
                subscription_cache: subscription_cache.as_ref().map(SubscriptionCache::control),
                streaming: streaming.clone(),
                playback: playback.clone(),
            }))
        });
        let invalidations = changes.as_ref().map(|changes| changes.stats());
        let consumer = match (&producer, &changes) {
            (Some(producer), Some(handler)) if consume => {
                let offsets: Arc<dyn OffsetStore> = match &postgres {
                    Some(db) => Arc::new(PgConsumerOffsets::new(db.clone(), settings.kafka.consumer_id.clone())),
                    None => Arc::new(MemoryOffsetStore::default()),
                };
                Some(UpstreamConsumer::start(
                    producer.clone(),
                    upstream_topics(&settings)?,
                    offsets,
                    handler.clone(),
                    start_from(&settings),
                ))
            }
            _ => None,
        };

        let stream_url_limit = UserLimit::per_minute(limiter, "stream-url", settings.rate_limit.stream_url_per_minute);
        let max_body = settings.server.max_body_bytes;
        let state = web::Data::new(AppState {
            streaming,
            playback,
            browser,
            demo_token: demo.as_ref().map(|demo| demo.token.clone()),
            max_body_bytes: max_body,
            verifier,
            stream_url_limit,
            clock,
            local_objects: storage.local(),
            storage,
            database: postgres.clone(),
            metrics: if settings.metrics.enabled { crate::telemetry::prometheus() } else { None },
        });
        let problem_base = web::Data::new(ProblemTypeBase(settings.problems.type_base.clone()));

        let admin = match changes {
            Some(changes) if settings.admin.enabled => Some(
                admin_server(
                    &settings,
                    changes,
                    owned_catalog.clone(),
                    postgres.clone(),
                    state.clone(),
                    problem_base.clone(),
                )
                .await?,
            ),
            _ => None,
        };

        let forward_caller_token =
            settings.users.url.is_some() && settings.users.credentials == UserCredentials::Caller;
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
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind { address: format!("port {port}"), source })?
            .run();

        let (admin_port, admin_server) = admin.unzip();
        Ok(Self {
            port,
            base_url,
            server,
            admin_port,
            admin_server,
            demo,
            ephemeral_secret,
            write_behind,
            session_cache,
            outbox_queue,
            relay,
            kafka_buffer,
            consumer,
            invalidations,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin API's bound port, when `admin.enabled`.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// The base URL players reach the service at.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `stream_cache_invalidations_total{reason}`, when upstream events are
    /// consumed or the admin API is served.
    pub fn cache_invalidations(&self) -> Option<Arc<InvalidationStats>> {
        self.invalidations.clone()
    }

    /// The demo user, tracks and token, when demo mode is on.
    pub fn demo(&self) -> Option<&DemoInfo> {
        self.demo.as_ref()
    }

    /// Whether the token secret was generated at start (embedded mode).
    pub fn has_ephemeral_secret(&self) -> bool {
        self.ephemeral_secret
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM drain in-flight requests).
    ///
    /// # Errors
    /// The I/O error that stopped the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let admin = self.admin_server.map(|server| (server.handle(), tokio::spawn(server)));
        let served = self.server.await;
        if let Some((handle, running)) = admin {
            handle.stop(true).await;
            if let Ok(Err(error)) = running.await {
                tracing::error!(%error, "the admin listener failed");
            }
        }
        drop(self.consumer);
        // In-flight requests have drained; now the progress they queued.
        if let Some(queue) = &self.write_behind {
            match queue.drain(Duration::from_secs(10)).await {
                Ok(()) => tracing::info!("pending progress written"),
                Err(error) => tracing::error!(%error, "pending progress could not be written before exit"),
            }
        }
        if let Some(cache) = &self.session_cache {
            if let Err(error) = cache.drain(Duration::from_secs(5)).await {
                tracing::error!(%error, "pending session heartbeats could not be written before exit");
            }
        }
        if let Some(queue) = &self.outbox_queue {
            if let Err(error) = queue.drain(Duration::from_secs(5)).await {
                tracing::error!(%error, "queued progress events could not be written before exit");
            }
        }
        if let Some(relay) = self.relay {
            relay.finish(Duration::from_secs(5)).await;
        }
        if let Some(buffer) = &self.kafka_buffer {
            if let Err(error) = buffer.flush(Duration::from_secs(5)).await {
                tracing::error!(%error, "buffered events could not be sent to kafka before exit");
            }
        }
        served
    }
}

/// The least `auth.jwks_min_refresh_seconds` accepted.
const MIN_JWKS_REFRESH_SECONDS: u64 = 5;

/// `X-Content-Type-Options: nosniff` on every answer: no browser guesses
/// a type other than the one sent.
fn nosniff() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// The admin API on its own listener: its bound port and its server.
async fn admin_server(
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

/// The token verifier the settings ask for; whether its HS256 secret was
/// generated for this process; the HS256 secret, if HS256 is accepted.
async fn verifier(settings: &Settings) -> Result<(TokenVerifier, bool, Option<SecretString>), StartupError> {
    let auth = &settings.auth;
    let config = |message: String| StartupError::Config(message);
    let algorithms = &auth.algorithms.0;
    if algorithms.is_empty() {
        return Err(config("auth.algorithms: name at least one of HS256, RS256, ES256".into()));
    }
    let hs256 = algorithms.contains(&Algorithm::Hs256);
    let asymmetric = algorithms.iter().any(|a| *a != Algorithm::Hs256);
    let keys = if asymmetric {
        // Tokens from an identity provider: say whose and for whom.
        if auth.issuer.is_none() || auth.audience.is_none() {
            return Err(config("auth.issuer and auth.audience are required with RS256/ES256".into()));
        }
        let source = match (&auth.jwks_file, &auth.jwks_url) {
            (Some(file), None) => KeySource::File(file.clone()),
            (None, Some(url)) => KeySource::Url(url.clone()),
            _ => return Err(config("RS256/ES256 need exactly one of auth.jwks_file and auth.jwks_url".into())),
        };
        // An unknown key id makes the set be read again: not more often than this.
        if auth.jwks_min_refresh_seconds < MIN_JWKS_REFRESH_SECONDS {
            return Err(config(format!(
                "auth.jwks_min_refresh_seconds must be at least {MIN_JWKS_REFRESH_SECONDS}: every token naming an \
                 unknown key would otherwise fetch the issuer's key set"
            )));
        }
        let min_refresh = Duration::from_secs(auth.jwks_min_refresh_seconds);
        let keys = Arc::new(KeyStore::load(source, min_refresh).await.map_err(|e| config(format!("auth: {e}")))?);
        // Keys the issuer withdrew disappear within 15 minutes.
        let weak = Arc::downgrade(&keys);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15 * 60)).await;
                let Some(keys) = weak.upgrade() else { break };
                if let Err(error) = keys.refresh().await {
                    tracing::warn!(%error, "refreshing the JWKS failed; the current keys stay");
                }
            }
        });
        Some(keys)
    } else {
        None
    };
    let ephemeral = hs256 && auth.secret.is_none();
    let secret = hs256.then(|| auth.secret.clone().unwrap_or_else(random_secret));
    let options = VerifierOptions {
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
        token_type: auth.token_type.clone(),
        leeway: Duration::from_secs(auth.leeway_seconds),
        remembered_tokens: auth.remembered_tokens,
        uuid_subjects: auth.uuid_subjects,
    };
    let verifier = TokenVerifier::new(algorithms, secret.as_ref(), keys, options).map_err(|e| match e {
        streaming_auth::ConfigError::WeakSecret => config(format!("auth.secret: {e}")),
        other => config(format!("auth: {other}")),
    })?;
    Ok((verifier, ephemeral, secret))
}

fn manifest_grants(settings: &Settings, base_url: &str) -> Result<ManifestGrants, StartupError> {
    let p = &settings.playback;
    let secret = p.grant_secret.clone().unwrap_or_else(random_secret);
    let signer = UrlSigner::new(secret.expose_secret().as_bytes())
        .map_err(|_| StartupError::Config("playback.grant_secret must be at least 32 bytes".into()))?;
    check_presign_expiry(Duration::from_secs(p.object_url_expiry_seconds))
        .map_err(|_| StartupError::Config("playback.object_url_expiry_seconds must be between 1 and 604800".into()))?;
    if p.url_window_seconds == 0 || p.url_window_seconds >= p.object_url_expiry_seconds {
        return Err(StartupError::Config(
            "playback.url_window_seconds must be positive and shorter than playback.object_url_expiry_seconds".into(),
        ));
    }
    Ok(ManifestGrants {
        signer,
        endpoint: format!("{}/api/v1/stream", base_url.trim_end_matches('/')),
        url_window: Duration::from_secs(p.url_window_seconds),
        object_url_expiry: Duration::from_secs(p.object_url_expiry_seconds),
    })
}

fn kafka_producer(settings: &Settings) -> Result<Option<Arc<KafkaProducer>>, StartupError> {
    let kafka = &settings.kafka;
    if !kafka.enabled {
        return Ok(None);
    }
    let brokers = kafka.broker_list();
    if brokers.is_empty() {
        return Err(StartupError::Config("kafka.enabled needs kafka.brokers (host:port, comma-separated)".into()));
    }
    if kafka.timeout_ms == 0 || kafka.relay_batch_size == 0 {
        return Err(StartupError::Config("kafka.timeout_ms and kafka.relay_batch_size must be positive".into()));
    }
    Ok(Some(Arc::new(KafkaProducer::new(KafkaConfig {
        brokers,
        topic_prefix: kafka.topic_prefix.clone(),
        client_id: kafka.client_id.clone(),
        timeout: Duration::from_millis(kafka.timeout_ms),
    }))))
}

fn upstream_topics(settings: &Settings) -> Result<Vec<(UpstreamTopic, String)>, StartupError> {
    let names = &settings.kafka.upstream_topics;
    if let Some(unknown) = names.keys().find(|k| UpstreamTopic::ALL.iter().all(|t| t.default_name() != k.as_str())) {
        return Err(StartupError::Config(format!("kafka.upstream_topics: unknown event {unknown:?}")));
    }
    Ok(UpstreamTopic::ALL
        .iter()
        .map(|topic| {
            let name = names.get(topic.default_name()).map_or(topic.default_name(), String::as_str);
            (*topic, format!("{}{name}", settings.kafka.topic_prefix))
        })
        .collect())
}

fn start_from(settings: &Settings) -> StartFrom {
    match settings.kafka.consume_from {
        ConsumeFrom::Earliest => StartFrom::Earliest,
        ConsumeFrom::Latest => StartFrom::Latest,
    }
}

fn relay_settings(settings: &Settings) -> RelaySettings {
    RelaySettings {
        batch: settings.kafka.relay_batch_size,
        poll_interval: Duration::from_millis(settings.kafka.relay_poll_interval_ms.max(10)),
        retention: Duration::from_secs(settings.kafka.outbox_retention_hours * 3600),
    }
}

fn streaming_settings(settings: &Settings) -> Result<StreamingSettings, StartupError> {
    let s = &settings.streaming;
    check_presign_expiry(Duration::from_secs(s.presign_expiry_seconds))
        .map_err(|_| StartupError::Config("streaming.presign_expiry_seconds must be between 1 and 604800".into()))?;
    if s.cache_buffer_seconds >= s.presign_expiry_seconds {
        return Err(StartupError::Config(
            "streaming.cache_buffer_seconds must be shorter than streaming.presign_expiry_seconds".into(),
        ));
    }
    Ok(StreamingSettings {
        presign_expiry: Duration::from_secs(s.presign_expiry_seconds),
        cache_buffer: Duration::from_secs(s.cache_buffer_seconds),
        cache_key_prefix: s.cache_key_prefix.clone(),
        log_user_ids: settings.log.user_ids,
    })
}

/// The database, with its schema checked: migrated at start when configured
/// so, otherwise a schema that is behind stops the start with a clear error.
async fn postgres_database(settings: &Settings) -> Result<Option<PgDatabase>, StartupError> {
    let Some(url) = &settings.postgres.url else {
        return Ok(None);
    };
    let db = PgDatabase::connect(&PgConfig {
        url: url.expose_secret().to_owned(),
        pool_size: settings.postgres.pool_size,
        statement_timeout: Duration::from_millis(settings.postgres.statement_timeout_ms),
        acquire_timeout: Duration::from_secs(2),
        breaker_cool_down: Duration::from_millis(settings.postgres.breaker_cool_down_ms),
    })
    .await
    .map_err(|e| StartupError::Database(e.to_string()))?;
    if settings.postgres.migrate_on_start {
        let applied = db.migrate().await.map_err(|e| StartupError::Database(e.to_string()))?;
        tracing::info!(applied, "database migrations applied");
    } else {
        let pending = db.pending_migrations().await.map_err(|e| StartupError::Database(e.to_string()))?;
        if !pending.is_empty() {
            return Err(StartupError::Database(format!(
                "the schema is behind by {} migration(s) ({}); run `streaming-api migrate` or set postgres.migrate_on_start",
                pending.len(),
                pending.join(", ")
            )));
        }
    }
    let layouts = db.layouts().await.map_err(|e| StartupError::Database(e.to_string()))?;
    if layouts.any_cinema() && !settings.auth.uuid_subjects {
        return Err(StartupError::Database(
            "the database holds the cinema service's watch_progress/stream_sessions, whose user ids are UUIDs: \
             set auth.uuid_subjects = true (JWT_SECRET_KEY does)"
                .into(),
        ));
    }
    Ok(Some(db))
}

fn redis_connection(settings: &Settings) -> Result<Option<RedisConnection>, StartupError> {
    let Some(url) = &settings.redis.url else {
        return Ok(None);
    };
    let tls_ca_certificate = match &settings.redis.tls_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| StartupError::Config(format!("redis.tls_ca_file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let config = RedisConfig {
        url: url.expose_secret().to_owned(),
        pool_size: settings.redis.pool_size,
        command_timeout: Duration::from_millis(settings.redis.command_timeout_ms),
        breaker_cool_down: Duration::from_millis(settings.redis.breaker_cool_down_ms),
        key_prefix: settings.redis.key_prefix.clone(),
        tls_ca_certificate,
    };
    // A URL may carry a password: report the error kind, never the URL.
    RedisConnection::connect(&config)
        .map(Some)
        .map_err(|_| StartupError::Config("redis.url is not a valid Redis URL".into()))
}

/// Whether demo mode is on: as asked, else only when nothing real is
/// configured. Asked for beside a real store, the start stops: the demo
/// media would be written into it.
fn demo_mode(settings: &Settings) -> Result<bool, StartupError> {
    let stores = [
        (settings.postgres.url.is_some(), "postgres.url"),
        (settings.redis.url.is_some(), "redis.url"),
        (settings.storage.kind == StorageKind::S3, "storage.kind = \"s3\""),
        (settings.kafka.enabled, "kafka.enabled"),
        (settings.users.url.is_some(), "users.url"),
    ];
    let store = stores.iter().find(|(configured, _)| *configured).map(|(_, name)| *name);
    let auth = &settings.auth;
    let identity = auth.secret.is_some() || auth.jwks_url.is_some() || auth.jwks_file.is_some();
    match (settings.demo.enabled, store) {
        (Some(true), Some(store)) => Err(StartupError::Config(format!(
            "demo.enabled = true with {store}: demo mode writes its media into the configured stores; \
             leave demo.enabled unset (or false) with real stores"
        ))),
        (Some(enabled), _) => Ok(enabled),
        (None, store) => Ok(store.is_none() && !identity),
    }
}

/// The layout of the Redis hot copies; the cinema's needs a standalone Redis.
fn hot_copy_layout(settings: &Settings, redis: Option<&RedisConnection>) -> Result<HotCopyLayout, StartupError> {
    match settings.redis.hot_copy_keys {
        HotCopyKeys::Tagged => Ok(HotCopyLayout::Tagged),
        HotCopyKeys::Cinema => {
            if redis.is_some_and(RedisConnection::is_clustered) {
                return Err(StartupError::Config(
                    "redis.hot_copy_keys = \"cinema\" needs a standalone Redis: on a cluster keep \"tagged\" \
                     (the cinema service's keys have no hash tags)"
                        .into(),
                ));
            }
            Ok(HotCopyLayout::Cinema)
        }
    }
}

/// Closes the sessions nobody stopped, every [`PlaybackService::sweep_interval`],
/// for as long as the service lives.
fn sweep_idle_sessions(playback: &Arc<PlaybackService>) {
    let Some(every) = playback.sweep_interval() else { return };
    let weak = Arc::downgrade(playback);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(playback) = weak.upgrade() else { break };
            match playback.close_idle_sessions().await {
                Ok(0) => {}
                Ok(closed) => tracing::debug!(closed, "idle sessions closed"),
                Err(error) => tracing::warn!(%error, "closing idle sessions failed; the next sweep tries again"),
            }
        }
    });
}

fn playback_settings(settings: &Settings) -> Result<PlaybackSettings, StartupError> {
    let p = &settings.playback;
    check_presign_expiry(Duration::from_secs(p.manifest_expiry_seconds))
        .map_err(|_| StartupError::Config("playback.manifest_expiry_seconds must be between 1 and 604800".into()))?;
    if !(p.position_slack_seconds.is_finite() && p.position_slack_seconds >= 0.0) {
        return Err(StartupError::Config("playback.position_slack_seconds must be a number >= 0".into()));
    }
    if !(p.watched_fraction > 0.0 && p.watched_fraction <= 1.0) {
        return Err(StartupError::Config("playback.watched_fraction must be in (0, 1]".into()));
    }
    let idle_timeout = p.session_idle_timeout_seconds.max(1);
    if p.session_close_after_seconds != 0 && p.session_close_after_seconds < idle_timeout {
        return Err(StartupError::Config(format!(
            "playback.session_close_after_seconds must be 0 (never) or at least \
             playback.session_idle_timeout_seconds ({idle_timeout})"
        )));
    }
    Ok(PlaybackSettings {
        manifest_expiry: Duration::from_secs(p.manifest_expiry_seconds),
        position_slack_seconds: p.position_slack_seconds,
        watched_fraction: p.watched_fraction,
        progress_event_interval: Duration::from_secs(p.progress_event_interval_seconds),
        session_idle_timeout: Duration::from_secs(idle_timeout),
        session_close_after: (p.session_close_after_seconds > 0)
            .then(|| Duration::from_secs(p.session_close_after_seconds)),
        ..PlaybackSettings::default()
    })
}

/// Parses `version:base64key,…`; without keys, one random key for this process.
fn keyring(settings: &Settings) -> Result<CacheKeyring, StartupError> {
    let Some(spec) = &settings.cache.encryption_keys else {
        return Ok(CacheKeyring::random());
    };
    let bad = |e: streaming_core::KeyringError| StartupError::Config(format!("cache.encryption_keys: {e}"));
    let keyring: CacheKeyring = spec.expose_secret().parse().map_err(bad)?;
    match settings.cache.current_key_version {
        Some(version) => keyring.sealing_with(version).map_err(bad),
        None => Ok(keyring),
    }
}

fn random_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(STANDARD.encode(bytes))
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
