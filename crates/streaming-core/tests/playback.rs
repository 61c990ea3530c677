//! The cinema operations on the memory adapters, time moved by hand.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::adapters::{
    ManualClock, MemoryCatalog, MemoryEventGate, MemoryEventPublisher, MemoryObjectStore, MemoryProgressStore,
    MemorySessionStore, MemorySubscriptions,
};
use streaming_core::domain::{
    ManifestKind, Media, MediaId, MediaKind, MediaStatus, ObjectKey, Plan, PlanFeatures, PlaybackAction, SessionId,
    Subscription, SubscriptionStatus, UserId, Visibility, WatchProgress,
};
use streaming_core::policy::Denial;
use streaming_core::ports::{
    EventGate, EventGateError, MockEventGate, ProgressError, ProgressStore, RecordOutcome, SessionStore,
    SubscriptionDirectory, SubscriptionError,
};
use streaming_core::{
    Dependency, PlaybackError, PlaybackPorts, PlaybackService, PlaybackSettings, ProgressReport, StartPlayback,
    StopOutcome,
};
use time::macros::datetime;

const MOVIE: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

struct World {
    clock: Arc<ManualClock>,
    catalog: Arc<MemoryCatalog>,
    objects: Arc<MemoryObjectStore>,
    subscriptions: Arc<MemorySubscriptions>,
    sessions: Arc<MemorySessionStore>,
    events: Arc<MemoryEventPublisher>,
    service: PlaybackService,
}

fn movie_id() -> MediaId {
    MOVIE.parse().unwrap()
}

fn user(id: &str) -> UserId {
    id.parse().unwrap()
}

fn movie(status: MediaStatus) -> Media {
    Media {
        id: movie_id(),
        kind: MediaKind::Movie,
        owner: None,
        status,
        object_key: ObjectKey::try_from(format!("movies/{MOVIE}").as_str()).unwrap(),
        content_type: "application/vnd.apple.mpegurl".into(),
        size_bytes: 0,
        duration_seconds: Some(100.0),
        visibility: Visibility::Subscribers,
        required_features: PlanFeatures::default(),
    }
}

fn active() -> Subscription {
    Subscription {
        status: SubscriptionStatus::Active,
        end_date: None,
        plan: Plan { max_devices: Some(2), supports_hd: true, supports_4k: false },
    }
}

fn world_with(subscriptions_port: Option<Arc<dyn SubscriptionDirectory>>) -> World {
    world_on(subscriptions_port, Arc::new(MemoryProgressStore::new()))
}

fn world_on(subscriptions_port: Option<Arc<dyn SubscriptionDirectory>>, progress: Arc<dyn ProgressStore>) -> World {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 20:00 UTC)));
    let catalog = Arc::new(MemoryCatalog::new());
    catalog.upsert(movie(MediaStatus::Ready));
    let objects = Arc::new(MemoryObjectStore::new());
    objects.put(
        ObjectKey::try_from(format!("movies/{MOVIE}/index.m3u8").as_str()).unwrap(),
        b"#EXTM3U\n".to_vec(),
        None,
    );
    let subscriptions = Arc::new(MemorySubscriptions::new());
    subscriptions.set(&user("viewer"), Some(active()));
    subscriptions.set(&user("other"), Some(active()));
    let sessions = Arc::new(MemorySessionStore::new());
    let events = Arc::new(MemoryEventPublisher::new());
    let service = PlaybackService::new(
        PlaybackPorts {
            catalog: catalog.clone(),
            objects: objects.clone(),
            subscriptions: subscriptions_port.unwrap_or_else(|| subscriptions.clone()),
            progress,
            sessions: sessions.clone(),
            events: events.clone(),
            clock: clock.clone(),
        },
        PlaybackSettings::default(),
    );
    World { clock, catalog, objects, subscriptions, sessions, events, service }
}

fn world() -> World {
    world_with(None)
}

fn report(position: f64, session: Option<SessionId>, sequence: Option<u64>) -> ProgressReport {
    ProgressReport { position_seconds: position, session, sequence }
}

fn actions(world: &World) -> Vec<(PlaybackAction, Option<u64>)> {
    world.events.events().iter().map(|e| (e.action, e.position.map(|p| p.get() as u64))).collect()
}

#[tokio::test]
async fn start_opens_a_session_and_signs_the_manifest() {
    let w = world();
    let request = StartPlayback {
        manifest: ManifestKind::Hls,
        user_agent: Some("x".repeat(600)),
        client_ip: Some("10.1.2.3".parse().unwrap()),
    };
    let started = w.service.start(&movie_id(), &user("viewer"), request).await.unwrap();
    assert!(started.manifest_url.starts_with(&format!("memory://movies/{MOVIE}/index.m3u8")));
    assert_eq!(started.expires_in, Duration::from_secs(3600));
    assert_eq!(started.resume_position.get(), 0.0);

    let session = w.sessions.get(&started.session).await.unwrap().unwrap();
    assert_eq!(session.user, user("viewer"));
    assert_eq!(session.manifest, ManifestKind::Hls);
    assert_eq!(session.user_agent.as_deref().map(str::len), Some(500), "user agent truncated to the column size");
    assert_eq!(session.client_ip, Some("10.1.2.3".parse().unwrap()));
    assert_eq!(actions(&w), vec![(PlaybackAction::Start, Some(0))]);
}

#[tokio::test]
async fn start_refusals() {
    let w = world();
    let dash = StartPlayback { manifest: ManifestKind::Dash, ..StartPlayback::default() };
    assert_eq!(w.service.start(&movie_id(), &user("viewer"), dash).await, Err(PlaybackError::ManifestNotFound));
    assert_eq!(
        w.service.start(&movie_id(), &user("nobody"), StartPlayback::default()).await,
        Err(PlaybackError::Forbidden(Denial::SubscriptionRequired))
    );
    let unknown: MediaId = "00000000-0000-4000-8000-000000000000".parse().unwrap();
    assert_eq!(
        w.service.start(&unknown, &user("viewer"), StartPlayback::default()).await,
        Err(PlaybackError::NotFound)
    );
    w.catalog.upsert(movie(MediaStatus::Processing));
    assert_eq!(
        w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await,
        Err(PlaybackError::NotReady { status: MediaStatus::Processing })
    );
    w.catalog.upsert(movie(MediaStatus::Deleted));
    assert_eq!(
        w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await,
        Err(PlaybackError::NotFound)
    );
    assert!(w.events.events().is_empty(), "refused starts publish nothing");
    let _ = (&w.objects, &w.subscriptions);
}

struct DownDirectory;

#[async_trait]
impl SubscriptionDirectory for DownDirectory {
    async fn current(&self, _: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
        Err(SubscriptionError::Unavailable("timeout".into()))
    }
}

#[tokio::test]
async fn a_directory_outage_is_unavailable_not_forbidden() {
    let w = world_with(Some(Arc::new(DownDirectory)));
    assert_eq!(
        w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await,
        Err(PlaybackError::Unavailable { dependency: Dependency::Subscriptions })
    );
}

#[tokio::test]
async fn progress_is_monotonic_per_session_by_sequence() {
    let w = world();
    let session = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    let ack =
        w.service.record_progress(&movie_id(), &user("viewer"), report(30.0, Some(session), Some(3))).await.unwrap();
    assert!(ack.applied);
    let late =
        w.service.record_progress(&movie_id(), &user("viewer"), report(20.0, Some(session), Some(2))).await.unwrap();
    assert!(!late.applied, "a reordered, older report is ignored");
    assert_eq!(late.position.get(), 30.0, "and the answer carries the stored position");
    let stored = w.service.progress(&movie_id(), &user("viewer")).await.unwrap().unwrap();
    assert_eq!(stored.position.get(), 30.0);
}

#[tokio::test]
async fn without_sequence_arrival_order_decides_and_seeking_back_works() {
    let w = world();
    let session = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    w.service.record_progress(&movie_id(), &user("viewer"), report(50.0, Some(session), None)).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    let back =
        w.service.record_progress(&movie_id(), &user("viewer"), report(10.0, Some(session), None)).await.unwrap();
    assert!(back.applied, "a later report wins even if it seeks backwards");
    assert_eq!(w.service.progress(&movie_id(), &user("viewer")).await.unwrap().unwrap().position.get(), 10.0);
}

#[tokio::test]
async fn positions_are_validated() {
    let w = world();
    for bad in [f64::NAN, f64::INFINITY, -1.0, 110.5, 1e9] {
        let result = w.service.record_progress(&movie_id(), &user("viewer"), report(bad, None, None)).await;
        assert!(matches!(result, Err(PlaybackError::InvalidPosition(_))), "{bad}: {result:?}");
    }
    assert!(
        w.service.record_progress(&movie_id(), &user("viewer"), report(109.0, None, None)).await.is_ok(),
        "within the slack"
    );
}

#[tokio::test]
async fn sessions_of_others_are_not_found_and_never_written() {
    let w = world();
    let theirs = w.service.start(&movie_id(), &user("other"), StartPlayback::default()).await.unwrap().session;
    let result = w.service.record_progress(&movie_id(), &user("viewer"), report(42.0, Some(theirs), None)).await;
    assert_eq!(result, Err(PlaybackError::SessionNotFound));
    assert_eq!(w.service.progress(&movie_id(), &user("viewer")).await.unwrap(), None);
    assert_eq!(
        w.service.stop(&movie_id(), &user("viewer"), report(42.0, Some(theirs), None)).await,
        Err(PlaybackError::SessionNotFound)
    );
    assert!(w.sessions.get(&theirs).await.unwrap().unwrap().ended_at.is_none(), "their session stays open");
    let random = SessionId::random();
    assert_eq!(
        w.service.record_progress(&movie_id(), &user("viewer"), report(1.0, Some(random), None)).await,
        Err(PlaybackError::SessionNotFound)
    );
}

#[tokio::test]
async fn progress_needs_access_to_the_movie() {
    let w = world();
    assert_eq!(
        w.service.record_progress(&movie_id(), &user("nobody"), report(1.0, None, None)).await,
        Err(PlaybackError::Forbidden(Denial::SubscriptionRequired))
    );
}

#[tokio::test]
async fn finishing_a_movie_resets_the_resume_position_and_marks_it_watched() {
    let w = world();
    let ack = w.service.record_progress(&movie_id(), &user("viewer"), report(96.0, None, None)).await.unwrap();
    assert!(ack.watched);
    assert_eq!(ack.position.get(), 0.0);
    let stored = w.service.progress(&movie_id(), &user("viewer")).await.unwrap().unwrap();
    assert!(stored.watched);
    let started = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap();
    assert_eq!(started.resume_position.get(), 0.0);
}

#[tokio::test]
async fn start_resumes_where_the_user_stopped() {
    let w = world();
    let first = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap();
    w.service.stop(&movie_id(), &user("viewer"), report(42.0, Some(first.session), None)).await.unwrap();
    let second = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap();
    assert_eq!(second.resume_position.get(), 42.0);
}

#[tokio::test]
async fn progress_events_are_coalesced_and_stop_carries_the_final_position() {
    let w = world();
    let session = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    for (position, after) in [(10.0, 0), (12.0, 3), (14.0, 3), (20.0, 5), (22.0, 1)] {
        w.clock.advance(Duration::from_secs(after));
        w.service.record_progress(&movie_id(), &user("viewer"), report(position, Some(session), None)).await.unwrap();
    }
    w.clock.advance(Duration::from_secs(2));
    w.service.stop(&movie_id(), &user("viewer"), report(23.0, Some(session), None)).await.unwrap();
    assert_eq!(
        actions(&w),
        vec![
            (PlaybackAction::Start, Some(0)),
            (PlaybackAction::Progress, Some(10)),
            (PlaybackAction::Progress, Some(20)),
            (PlaybackAction::Stop, Some(23)),
        ]
    );
    let events = w.events.events();
    assert!(events.iter().all(|e| e.session == Some(session) && e.user == user("viewer")));
    assert_eq!(w.service.stats().progress_events_coalesced.load(std::sync::atomic::Ordering::Relaxed), 3);
}

/// Two instances over the same stores, each holding `gate`.
fn two_instances(w: &World, gate: Arc<dyn EventGate>) -> (PlaybackService, PlaybackService) {
    let ports = PlaybackPorts {
        catalog: w.catalog.clone(),
        objects: w.objects.clone(),
        subscriptions: w.subscriptions.clone(),
        progress: Arc::new(MemoryProgressStore::new()),
        sessions: w.sessions.clone(),
        events: w.events.clone(),
        clock: w.clock.clone(),
    };
    let instance =
        |ports| PlaybackService::new(ports, PlaybackSettings::default()).with_shared_event_gate(gate.clone());
    (instance(ports.clone()), instance(ports))
}

fn progress_events(w: &World) -> Vec<Option<u64>> {
    actions(w).into_iter().filter(|(action, _)| *action == PlaybackAction::Progress).map(|(_, at)| at).collect()
}

#[tokio::test]
async fn instances_sharing_an_event_gate_thin_progress_events_out_between_them() {
    let w = world();
    let (a, b) = two_instances(&w, Arc::new(MemoryEventGate::new(w.clock.clone())));
    let session = a.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    for (i, instance) in [&a, &b, &a, &b].into_iter().enumerate() {
        w.clock.advance(Duration::from_secs(1));
        instance
            .record_progress(&movie_id(), &user("viewer"), report(10.0 + i as f64, Some(session), None))
            .await
            .unwrap();
    }
    assert_eq!(progress_events(&w), [Some(10)], "one event in all, not one per instance");
    // 80 % of the 10 s interval after that event: the next report gets one.
    w.clock.advance(Duration::from_secs(5));
    b.record_progress(&movie_id(), &user("viewer"), report(20.0, Some(session), None)).await.unwrap();
    assert_eq!(progress_events(&w), [Some(10), Some(20)]);
}

#[tokio::test]
async fn a_gate_that_cannot_answer_lets_the_progress_event_through() {
    let w = world();
    let mut gate = MockEventGate::new();
    gate.expect_pass().returning(|_, _| Err(EventGateError::Unavailable("down".into())));
    let (a, _) = two_instances(&w, Arc::new(gate));
    let session = a.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    a.record_progress(&movie_id(), &user("viewer"), report(10.0, Some(session), None)).await.unwrap();
    assert_eq!(progress_events(&w), [Some(10)]);
    assert_eq!(a.stats().event_gate_unavailable.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn stop_closes_the_session_once() {
    let w = world();
    let session = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    w.clock.advance(Duration::from_secs(90));
    let stopped = match w.service.stop(&movie_id(), &user("viewer"), report(60.0, Some(session), None)).await.unwrap() {
        StopOutcome::Stopped(session) => session,
        other => panic!("expected a stop, got {other:?}"),
    };
    assert_eq!(stopped.duration_seconds, Some(90.0));

    w.clock.advance(Duration::from_secs(30));
    let again = w.service.stop(&movie_id(), &user("viewer"), report(99.0, Some(session), None)).await.unwrap();
    assert_eq!(again, StopOutcome::AlreadyStopped(stopped));
    assert_eq!(
        w.service.progress(&movie_id(), &user("viewer")).await.unwrap().unwrap().position.get(),
        60.0,
        "a second stop changes nothing"
    );
    assert_eq!(actions(&w).iter().filter(|(a, _)| *a == PlaybackAction::Stop).count(), 1);
    assert_eq!(
        w.service.record_progress(&movie_id(), &user("viewer"), report(70.0, Some(session), None)).await,
        Err(PlaybackError::SessionClosed)
    );
}

/// A progress store that tells write-behind records from durable ones.
#[derive(Default)]
struct Durabilities {
    inner: MemoryProgressStore,
    calls: std::sync::Mutex<Vec<(&'static str, u64)>>,
}

#[async_trait]
impl ProgressStore for Durabilities {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        self.inner.get(user, media).await
    }
    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        self.calls.lock().unwrap().push(("behind", progress.position.get() as u64));
        self.inner.record(progress).await
    }
    async fn record_durably(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        self.calls.lock().unwrap().push(("durably", progress.position.get() as u64));
        self.inner.record_durably(progress).await
    }
}

#[tokio::test]
async fn reports_may_be_written_behind_but_a_stop_is_written_before_it_is_acknowledged() {
    let progress = Arc::new(Durabilities::default());
    let w = world_on(None, progress.clone());
    let session = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    w.service.record_progress(&movie_id(), &user("viewer"), report(10.0, Some(session), Some(1))).await.unwrap();
    w.service.stop(&movie_id(), &user("viewer"), report(12.0, Some(session), None)).await.unwrap();
    assert_eq!(*progress.calls.lock().unwrap(), [("behind", 10), ("durably", 12)]);
}

#[tokio::test]
async fn stop_without_a_session_id_closes_the_latest_open_session() {
    let w = world();
    let older = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    w.clock.advance(Duration::from_secs(5));
    let newer = w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap().session;
    match w.service.stop(&movie_id(), &user("viewer"), report(12.0, None, None)).await.unwrap() {
        StopOutcome::Stopped(session) => assert_eq!(session.id, newer),
        other => panic!("{other:?}"),
    }
    assert!(w.sessions.get(&older).await.unwrap().unwrap().ended_at.is_none());
    w.service.stop(&movie_id(), &user("viewer"), report(12.0, None, None)).await.unwrap();
    assert_eq!(
        w.service.stop(&movie_id(), &user("viewer"), report(12.0, None, None)).await.unwrap(),
        StopOutcome::NoOpenSession
    );
}

#[tokio::test]
async fn a_plan_allows_max_devices_open_streams() {
    let w = world();
    let (movie, viewer) = (movie_id(), user("viewer"));
    let start = || w.service.start(&movie, &viewer, StartPlayback::default());
    let first = start().await.unwrap().session;
    w.clock.advance(Duration::from_secs(5));
    let second = start().await.unwrap().session;
    assert_eq!(
        start().await,
        Err(PlaybackError::TooManyStreams { limit: 2, open: vec![first, second] }),
        "oldest first"
    );
    assert!(w.service.start(&movie_id(), &user("other"), StartPlayback::default()).await.is_ok(), "per user");

    // Stopping one makes room.
    w.service.stop(&movie_id(), &user("viewer"), report(10.0, Some(first), None)).await.unwrap();
    let third = start().await.unwrap().session;
    assert!(matches!(start().await, Err(PlaybackError::TooManyStreams { .. })));

    // A session without a heartbeat for the idle timeout no longer counts; progress keeps one alive.
    w.clock.advance(Duration::from_secs(60));
    w.service.record_progress(&movie_id(), &user("viewer"), report(20.0, Some(third), Some(1))).await.unwrap();
    w.clock.advance(Duration::from_secs(40));
    let fourth = start().await.unwrap().session;
    assert_eq!(start().await, Err(PlaybackError::TooManyStreams { limit: 2, open: vec![third, fourth] }));
}

#[tokio::test]
async fn the_stream_limit_fails_open_when_the_directory_is_down_for_public_movies() {
    struct Down;
    #[async_trait]
    impl SubscriptionDirectory for Down {
        async fn current(&self, _: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
            Err(SubscriptionError::Unavailable("down".into()))
        }
    }
    let w = world_with(Some(Arc::new(Down)));
    w.catalog.upsert(Media { visibility: Visibility::Public, ..movie(MediaStatus::Ready) });
    for _ in 0..3 {
        assert!(w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.is_ok());
    }
    assert_eq!(w.service.stats().stream_limit_skipped.load(std::sync::atomic::Ordering::Relaxed), 3);
}

/// Counts presignatures, otherwise the memory store.
#[derive(Debug)]
struct CountingObjects {
    inner: Arc<MemoryObjectStore>,
    presigned: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl streaming_core::ports::ObjectStore for CountingObjects {
    async fn head(
        &self,
        key: &ObjectKey,
    ) -> Result<streaming_core::ports::ObjectInfo, streaming_core::ports::ObjectStoreError> {
        self.inner.head(key).await
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        signed_at: time::OffsetDateTime,
        expires_in: Duration,
    ) -> Result<streaming_core::ports::PresignedUrl, streaming_core::ports::ObjectStoreError> {
        self.presigned.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.presign_get(key, signed_at, expires_in).await
    }

    async fn read_small(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
    ) -> Result<Vec<u8>, streaming_core::ports::ObjectStoreError> {
        self.inner.read_small(key, max_bytes).await
    }
}

#[tokio::test]
async fn an_mpd_is_expanded_signed_once_per_window_and_refused_once_its_session_stops() {
    use std::sync::atomic::Ordering;
    let w = world();
    let mpd = include_bytes!("../../../apps/streaming-api/demo/movie/index.mpd");
    w.objects.put(ObjectKey::try_from(format!("movies/{MOVIE}/index.mpd").as_str()).unwrap(), mpd.to_vec(), None);
    let objects = Arc::new(CountingObjects { inner: w.objects.clone(), presigned: Default::default() });
    let service = PlaybackService::new(
        PlaybackPorts {
            catalog: w.catalog.clone(),
            objects: objects.clone(),
            subscriptions: w.subscriptions.clone(),
            progress: Arc::new(MemoryProgressStore::new()),
            sessions: w.sessions.clone(),
            events: w.events.clone(),
            clock: w.clock.clone(),
        },
        PlaybackSettings::default(),
    )
    .with_manifest_grants(streaming_core::ManifestGrants {
        signer: streaming_core::url_signing::UrlSigner::new(&[7; 32]).unwrap(),
        endpoint: "https://svc.example/api/v1/stream".into(),
        url_window: Duration::from_secs(60),
        object_url_expiry: Duration::from_secs(600),
    });
    let dash = StartPlayback { manifest: ManifestKind::Dash, ..StartPlayback::default() };
    let started = service.start(&movie_id(), &user("viewer"), dash).await.unwrap();
    let prefix = format!("https://svc.example/api/v1/stream/{MOVIE}/manifest/index.mpd?grant=");
    let grant = started.manifest_url.strip_prefix(&prefix).unwrap().to_owned();

    let first = service.manifest(&movie_id(), "index.mpd", &grant).await.unwrap();
    assert_eq!(first.content_type, "application/dash+xml");
    let text = std::str::from_utf8(&first.body).unwrap();
    assert_eq!(text.matches(&format!("memory://movies/{MOVIE}/")).count(), 8, "{text}");
    assert_eq!(objects.presigned.load(Ordering::SeqCst), 8);

    w.clock.advance(Duration::from_secs(20));
    let again = service.manifest(&movie_id(), "index.mpd", &grant).await.unwrap();
    assert_eq!(again.body, first.body, "byte-identical within the window");
    assert!(again.fresh_for < first.fresh_for || first.fresh_for.is_zero());
    assert_eq!(objects.presigned.load(Ordering::SeqCst), 8, "rendered once per window");

    w.clock.advance(Duration::from_secs(60));
    let next = service.manifest(&movie_id(), "index.mpd", &grant).await.unwrap();
    assert_ne!(next.body, first.body, "the next window signs afresh");
    assert_eq!(objects.presigned.load(Ordering::SeqCst), 16);

    service.stop(&movie_id(), &user("viewer"), report(6.0, Some(started.session), None)).await.unwrap();
    let refused = service.manifest(&movie_id(), "index.mpd", &grant).await;
    assert_eq!(refused.map(|_| ()), Err(PlaybackError::GrantRevoked), "even with the rendering cached");
    let other = service.manifest(&movie_id(), "index.m4s", &grant).await;
    assert!(other.is_err());
}

#[tokio::test]
async fn starts_ask_the_store_for_a_manifest_once_until_a_catalog_change() {
    let w = world();
    for _ in 0..2 {
        w.service.start(&movie_id(), &user("viewer"), StartPlayback::default()).await.unwrap();
    }
    let checks = || w.service.stats().manifest_checks.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(checks(), 1, "the second start remembered the manifest");
    w.service.forget_manifests();
    w.service.start(&movie_id(), &user("other"), StartPlayback::default()).await.unwrap();
    assert_eq!(checks(), 2, "after a catalog change the store is asked again");
}
