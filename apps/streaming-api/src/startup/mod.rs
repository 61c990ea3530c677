//! The composition root: settings in, a bound server out.

mod auth;
mod check;
mod database;
mod events;
mod http;
mod redis;
mod services;
mod summary;

use auth::{random_secret, verifier};
use database::{catalogs, durable_stores, postgres_database, prune_ended_sessions, DurableStores};
use events::{event_pipeline, kafka_producer, upstream_consumer, EventPipeline};
use http::{admin_server, public_server};
use redis::{
    hold_pending_writes, hot_copies, keyring, peers, rate_limiter, redis_connection, url_cache, HotCopies, Queues,
};
use services::{config, demo_media, demo_mode, playback_service};

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;
use streaming_core::adapters::{MemorySubscriptions, SystemClock};
use streaming_core::changes::{CatalogChanges, ChangePorts, InvalidationStats};
use streaming_core::ports::{Clock, MediaCatalog, ReadinessCheck, SubscriptionDirectory};
use streaming_core::rate_limit::UserLimit;
use streaming_core::{BrowsePorts, MediaBrowser, PlaybackPorts, StreamUrlService, StreamingPorts, StreamingService};
use streaming_http::{ApiState, PagesState, ProblemTypeBase};
use streaming_kafka::{BufferedKafkaPublisher, UpstreamConsumer};
use streaming_postgres::{
    OutboxRelay, PgProgressStore, PgSessionStore, WriteBehindOutbox, WriteBehindProgress, WriteBehindSessions,
};

use crate::demo::{self, DemoInfo};
use crate::routes::BinaryState;
use crate::settings::{MetricsListener, Settings};
use crate::storage::Storage;
use crate::subscriptions::{user_service, SubscriptionCache};

/// Writes the demo media into the stores `settings` configure (the
/// catalog, PostgreSQL's or memory's, and the object store), opening only
/// those: `streaming-api seed-demo`.
///
/// # Errors
/// [`StartupError`] when a store cannot be opened or written.
pub async fn seed_demo_media(settings: &Settings) -> Result<DemoInfo, StartupError> {
    let postgres = postgres_database(settings).await?;
    let base_url = settings.server.public_url.clone().unwrap_or_else(|| "http://127.0.0.1".into());
    let storage = Storage::open(settings, &base_url, random_secret).await?;
    let (catalog, _) = catalogs(settings, postgres.as_ref(), None, &storage);
    let (user, tracks) = demo::seed(&catalog, &storage).await?;
    let movie = demo::seed_movie(&catalog, &storage).await?;
    Ok(DemoInfo { user, token: String::new(), tracks, movie })
}

/// What `/readyz` reports on: the object store, and PostgreSQL when configured.
fn readiness(
    storage: &Storage,
    postgres: Option<&streaming_postgres::PgDatabase>,
) -> Vec<(&'static str, Arc<dyn ReadinessCheck>)> {
    let mut checks: Vec<(&'static str, Arc<dyn ReadinessCheck>)> = vec![("object_store", storage.readiness())];
    if let Some(db) = postgres {
        checks.push(("database", Arc::new(db.clone())));
    }
    checks
}

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
    summary: summary::Summary,
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
        // Installed before any adapter is built: what they export at
        // construction (breaker states, counters at 0) reaches it.
        let metrics = if settings.metrics.enabled { crate::telemetry::prometheus() } else { None };
        http::metrics_listener(&settings)?;
        let metrics_on_admin = settings.metrics.listener == MetricsListener::Admin;
        let demo_mode = overrides.demo || demo_mode(&settings)?;
        let derived = crate::secrets::complete(&mut settings)?;
        let summary = summary::Summary::of(&settings);
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
        let streaming_settings = settings.streaming.settings(settings.log.user_ids).map_err(config)?;

        let (verifier, ephemeral_secret, auth_secret) = verifier(&settings).await?;

        let storage = Storage::open(&settings, &base_url, random_secret).await?;

        let postgres = postgres_database(&settings).await?;
        let (owned_catalog, catalog) = catalogs(&settings, postgres.as_ref(), overrides.catalog, &storage);
        let DurableStores { write_behind, session_cache, progress: durable_progress, sessions } =
            durable_stores(&settings, postgres.as_ref());
        prune_ended_sessions(&settings, postgres.as_ref());
        let redis = redis_connection(&settings)?;
        let peers = peers(redis.as_ref())?;
        let cache = url_cache(&settings, redis.as_ref(), peers.as_ref(), &clock)?;
        let memory_subscriptions = Arc::new(MemorySubscriptions::new());
        let user_service = user_service(&settings)?;
        let remote = user_service.is_some();
        let source: Arc<dyn SubscriptionDirectory> = match (overrides.subscriptions, user_service) {
            (Some(source), _) => source,
            (None, Some(users)) => users,
            (None, None) => memory_subscriptions.clone(),
        };
        let HotCopies { subscription_cache, subscriptions, progress, hot_progress } =
            hot_copies(&settings, redis.as_ref(), source, remote, durable_progress)?;
        let limiter = rate_limiter(&settings, redis.as_ref(), &clock);
        let keyring = keyring(&settings)?;
        let streaming: Arc<dyn StreamingService> = Arc::new(
            StreamUrlService::new(
                StreamingPorts {
                    catalog: catalog.clone(),
                    objects: storage.port(),
                    cache,
                    subscriptions: subscriptions.clone(),
                    clock: clock.clone(),
                },
                keyring,
                streaming_settings,
            )
            .with_store_health(storage.readiness()),
        );

        // With PostgreSQL every event goes to the outbox (start and stop in
        // the session's own transaction), and with Kafka a relay publishes
        // it; with Kafka alone events go through a bounded buffer; with
        // neither, to the JSON-lines file.
        let producer = kafka_producer(&settings)?;
        let EventPipeline { events, relay, kafka_buffer, outbox_queue } =
            event_pipeline(&settings, postgres.as_ref(), producer.as_ref()).await?;
        let queues =
            Queues { progress: write_behind.as_ref(), sessions: session_cache.as_ref(), outbox: outbox_queue.as_ref() };
        hold_pending_writes(&settings, redis.as_ref(), queues, hot_progress.as_ref());
        let browser = Arc::new(MediaBrowser::new(BrowsePorts {
            listing: owned_catalog.listing(),
            catalog: catalog.clone(),
            subscriptions: subscriptions.clone(),
            clock: clock.clone(),
        }));
        let ports = PlaybackPorts {
            catalog,
            objects: storage.port(),
            subscriptions,
            progress,
            sessions,
            events,
            clock: clock.clone(),
        };
        let playback = playback_service(&settings, ports, &base_url, &limiter, redis.as_ref(), storage.readiness())?;

        let demo = if demo_mode {
            let now = clock.now();
            Some(
                demo_media(&settings, &owned_catalog, &storage, &memory_subscriptions, auth_secret.as_ref(), now)
                    .await?,
            )
        } else {
            None
        };

        // Upstream catalog events: every instance reads them all (its
        // in-process caches need them); offsets in PostgreSQL when there is one.
        // One applier of catalog changes for the consumer and the admin API;
        // with Redis it also hears what the other instances change, so every
        // instance has one (it costs nothing idle).
        if let (Some(peers), Some(sessions)) = (&peers, &session_cache) {
            sessions.share_closes(peers.clone());
        }
        let consume = producer.is_some() && settings.kafka.consume;
        let changes = (consume || settings.admin.enabled || peers.is_some()).then(|| {
            Arc::new(CatalogChanges::new(ChangePorts {
                writer: owned_catalog.writer(),
                catalog: owned_catalog.fresh(),
                catalog_cache: owned_catalog.cache(),
                subscription_cache: subscription_cache.as_ref().map(SubscriptionCache::control),
                streaming: streaming.clone(),
                playback: Some(playback.clone()),
                peers: peers.map(|peers| peers as Arc<dyn streaming_core::ports::Broadcast>),
            }))
        });
        let invalidations = changes.as_ref().map(|changes| changes.stats());
        let consumer = upstream_consumer(&settings, producer.as_ref(), changes.as_ref(), consume, postgres.as_ref())?;

        let stream_url_limit = UserLimit::per_minute(limiter, "stream-url", settings.rate_limit.stream_url_per_minute);
        let pages = web::Data::new(PagesState { demo_token: demo.as_ref().map(|demo| demo.token.clone()) });
        let public_metrics = metrics.filter(|_| !metrics_on_admin);
        let binary = web::Data::new(BinaryState {
            local_objects: storage.local(),
            metrics: public_metrics,
            clock: clock.clone(),
        });
        let admin_metrics = metrics_on_admin
            .then(|| web::Data::new(BinaryState { local_objects: None, metrics, clock: clock.clone() }));
        let state = web::Data::new(ApiState {
            streaming,
            playback,
            browser,
            max_body_bytes: settings.server.max_body_bytes,
            verifier,
            stream_url_limit,
            clock,
            readiness: readiness(&storage, postgres.as_ref()),
            openapi: crate::routes::openapi::document(),
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
                    admin_metrics,
                )
                .await?,
            ),
            _ => None,
        };

        let server = public_server(&settings, state, pages, binary, problem_base, listener, port)?;

        let (admin_port, admin_server) = admin.unzip();
        Ok(Self {
            port,
            base_url,
            server,
            admin_port,
            admin_server,
            demo,
            ephemeral_secret,
            summary,
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

    /// Logs what runs: one line with the version, the adapters, the token
    /// algorithms and the listeners, then a warning per shared secret made up
    /// at random for this process.
    pub fn log_summary(&self) {
        self.summary.log(&self.base_url, self.admin_port);
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
