//! Playback events reach a real Kafka-protocol broker: through the
//! PostgreSQL outbox and its relay, or through the buffer without
//! PostgreSQL; and none is lost while the broker is down.

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use streaming_api::demo::DEMO_USER;
use streaming_api::Settings;
use streaming_core::contract::infra_var;
use streaming_core::ports::OffsetStore as _;
use streaming_kafka::testing::{create_topics, read_all, unique_prefix, BrokerEnv, OwnBroker, PLAYBACK_TOPICS};
use streaming_kafka::{KafkaConfig, KafkaProducer, OutgoingRecord, UpstreamTopic};
use streaming_postgres::testing::fresh_database_url;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::harness::{spawn, TestApp, MOVIE, READY};

fn with_kafka(settings: &mut Settings, brokers: &str, prefix: &str) {
    settings.kafka.enabled = true;
    settings.kafka.brokers = brokers.to_owned();
    settings.kafka.topic_prefix = prefix.to_owned();
    settings.kafka.relay_poll_interval_ms = 50;
}

/// Kafka as [`with_kafka`], with a 1 s broker timeout so the rounds of an
/// outage fail and back off quickly.
fn with_kafka_outage(settings: &mut Settings, brokers: &str) {
    with_kafka(settings, brokers, "");
    settings.kafka.timeout_ms = 1_000;
}

async fn with_postgres(settings: &mut Settings) {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    settings.postgres.url = Some(SecretString::from(url));
    settings.postgres.migrate_on_start = true;
    settings.postgres.progress_flush_interval_ms = 100;
}

/// The app on PostgreSQL `postgres` (a section with a fresh database) with Kafka.
async fn spawn_with_kafka(postgres: &streaming_postgres::PgSettings, brokers: &str, prefix: &str) -> TestApp {
    spawn(|s| {
        s.postgres = postgres.clone();
        with_kafka(s, brokers, prefix);
    })
    .await
}

/// The demo user's events of `{prefix}stream.{action}` (see [`events_of`]).
async fn events(brokers: &str, prefix: &str, action: &str, count: usize) -> Vec<Value> {
    events_of(brokers, prefix, action, count, DEMO_USER).await
}

/// The JSON events of `{prefix}stream.{action}`, each keyed by `user`, once
/// at least `count` distinct ones arrived (30 s at most). Delivery is at
/// least once: a send whose acknowledgement timed out is sent again, so a
/// consumer keeps the first record of each `event_id`, as this does.
pub(crate) async fn events_of(brokers: &str, prefix: &str, action: &str, count: usize, user: &str) -> Vec<Value> {
    let topic = format!("{prefix}stream.{action}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = std::collections::HashSet::new();
        let received: Vec<_> =
            read_all(brokers, &topic).await.into_iter().filter(|r| seen.insert(r.event_id.clone())).collect();
        if received.len() >= count {
            for record in &received {
                assert_eq!(record.key, user, "keyed by user id");
            }
            return received.iter().map(|r| serde_json::from_slice(&r.value).unwrap()).collect();
        }
        assert!(Instant::now() < deadline, "{topic}: {} of {count} events arrived", received.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Start, two progress reports and stop of one session; its id.
async fn watch(app: &TestApp, position: u64) -> String {
    let movie = format!("/api/v1/stream/{MOVIE}");
    let started: Value = app.send(Method::POST, &movie, None, None).await.json().await.unwrap();
    let session = started["session_id"].as_str().unwrap().to_owned();
    for (sequence, at) in [(1, position), (2, position + 1)] {
        let body = json!({ "position_seconds": at, "session_id": session, "sequence": sequence });
        assert_eq!(app.send(Method::POST, &format!("{movie}/progress"), None, Some(body)).await.status(), 200);
    }
    let stop = json!({ "position_seconds": position + 2, "session_id": session });
    assert_eq!(app.send(Method::POST, &format!("{movie}/stop"), None, Some(stop)).await.status(), 200);
    session
}

fn sessions_of(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["session_id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_playback_flow_reaches_kafka_through_the_outbox() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &PLAYBACK_TOPICS).await;
    let mut settings = Settings::default();
    with_postgres(&mut settings).await;
    let app = spawn_with_kafka(&settings.postgres, &brokers, &prefix).await;
    let session = watch(&app, 3).await;

    let start = events(&brokers, &prefix, "start", 1).await;
    let progress = events(&brokers, &prefix, "progress", 1).await;
    let stop = events(&brokers, &prefix, "stop", 1).await;
    assert_eq!(start[0]["action"], "stream_start");
    assert_eq!(progress[0]["action"], "stream_progress");
    assert_eq!(progress[0]["position_seconds"], 3, "one progress event per session per interval: the first");
    assert_eq!(stop[0]["action"], "stream_stop");
    assert_eq!(stop[0]["position_seconds"], 5);
    for event in [&start[0], &progress[0], &stop[0]] {
        assert_eq!(event["session_id"], session.as_str());
        assert_eq!(event["user_id"], DEMO_USER);
        assert_eq!(event["movie_id"], MOVIE);
    }
}

#[tokio::test]
async fn without_postgres_events_go_through_the_buffer() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &PLAYBACK_TOPICS).await;
    let app = spawn(|s| with_kafka(s, &brokers, &prefix)).await;
    let session = watch(&app, 1).await;
    assert_eq!(sessions_of(&events(&brokers, &prefix, "stop", 1).await), vec![session.as_str()]);
    assert!(app.events().is_empty(), "nothing in the JSON-lines file");
}

#[tokio::test]
async fn events_of_a_broker_outage_arrive_after_it_returns_none_lost_none_reordered() {
    let mut broker = OwnBroker::start(BrokerEnv::from_infra());
    let brokers = broker.address();
    create_topics(&brokers, "", &PLAYBACK_TOPICS).await;
    let mut settings = Settings::default();
    with_postgres(&mut settings).await;
    let app = spawn(|s| {
        s.postgres = settings.postgres.clone();
        with_kafka_outage(s, &brokers);
    })
    .await;
    let first = watch(&app, 1).await;
    assert_eq!(sessions_of(&events(&brokers, "", "stop", 1).await), vec![first.as_str()]);

    broker.stop();
    let mut sessions = vec![first];
    for position in [2, 3, 4] {
        sessions.push(watch(&app, position).await);
    }
    // Longer than the relay's timeout: its rounds fail and back off meanwhile.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    broker.resume();

    let expected: Vec<&str> = sessions.iter().map(String::as_str).collect();
    assert_eq!(sessions_of(&events(&brokers, "", "start", 4).await), expected, "every start, in order");
    assert_eq!(sessions_of(&events(&brokers, "", "progress", 4).await), expected, "every progress event, in order");
    assert_eq!(sessions_of(&events(&brokers, "", "stop", 4).await), expected, "every stop, in order");
}

#[tokio::test]
async fn rows_left_by_an_instance_without_kafka_are_relayed_later_once_by_several_relays() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &PLAYBACK_TOPICS).await;
    let mut settings = Settings::default();
    with_postgres(&mut settings).await;
    // An instance without Kafka: its events wait in the outbox.
    let before = spawn(|s| s.postgres = settings.postgres.clone()).await;
    let mut sessions = vec![watch(&before, 1).await];
    drop(before);

    // Two instances with relays on the same database.
    let one = spawn_with_kafka(&settings.postgres, &brokers, &prefix).await;
    let two = spawn_with_kafka(&settings.postgres, &brokers, &prefix).await;
    sessions.push(watch(&one, 2).await);
    sessions.push(watch(&two, 3).await);

    let mut expected: Vec<&str> = sessions.iter().map(String::as_str).collect();
    expected.sort_unstable();
    events(&brokers, &prefix, "stop", 3).await;
    // Give a duplicate time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for action in ["start", "progress", "stop"] {
        let arrived = events(&brokers, &prefix, action, 3).await;
        let mut got = sessions_of(&arrived);
        got.sort_unstable();
        assert_eq!(got, expected, "{action}: every event");
        let records = read_all(&brokers, &format!("{prefix}stream.{action}")).await.len();
        assert_eq!(records, 3, "{action}: each event sent once although two relays share the outbox");
    }
}

/// Sends one upstream event (`body` without its `event_id` and `occurred_at`).
async fn announce(producer: &KafkaProducer, topic: &str, key: &str, mut body: Value) {
    body["event_id"] = json!(streaming_core::domain::SessionId::random().to_string());
    body["occurred_at"] = json!(OffsetDateTime::now_utc().format(&Rfc3339).unwrap());
    send_raw(producer, topic, key, body.to_string().into_bytes()).await;
}

async fn send_raw(producer: &KafkaProducer, topic: &str, key: &str, value: Vec<u8>) {
    let record = OutgoingRecord {
        topic: topic.to_owned(),
        key: key.to_owned(),
        value,
        headers: Vec::new(),
        timestamp: OffsetDateTime::now_utc(),
    };
    producer.send(vec![record]).await.unwrap();
}

/// Waits until `counter` reaches `at_least` (30 s at most).
async fn counted(counter: &std::sync::atomic::AtomicU64, at_least: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter.load(std::sync::atomic::Ordering::Relaxed) < at_least {
        assert!(Instant::now() < deadline, "{what}: the event was not handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stream_url(app: &TestApp) -> (u16, Value) {
    let response = app.send(Method::POST, &format!("/tracks/{READY}/stream"), None, None).await;
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Playback and upstream topics of a prefix of the test's own, a producer
/// of upstream events on them, and settings with a fresh database.
struct Upstream {
    brokers: String,
    prefix: String,
    producer: KafkaProducer,
    settings: Settings,
}

async fn upstream() -> Upstream {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &PLAYBACK_TOPICS).await;
    create_topics(&brokers, &prefix, &UpstreamTopic::ALL.map(UpstreamTopic::default_name)).await;
    let producer =
        KafkaProducer::new(KafkaConfig { topic_prefix: prefix.clone(), ..KafkaConfig::new(vec![brokers.clone()]) });
    let mut settings = Settings::default();
    with_postgres(&mut settings).await;
    Upstream { brokers, prefix, producer, settings }
}

#[tokio::test]
async fn upstream_events_change_what_the_api_answers_and_drop_cached_urls() {
    let Upstream { brokers, prefix, producer, settings } = upstream().await;
    let app = spawn_with_kafka(&settings.postgres, &brokers, &prefix).await;
    let stats = app.invalidations.clone().expect("the app consumes upstream events");

    // A cached URL is served again until something invalidates it.
    let (status, first) = stream_url(&app).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(stream_url(&app).await.1["streamUrl"], first["streamUrl"], "cached");

    // A movie playing before the logout.
    let movie = format!("/api/v1/stream/{MOVIE}");
    let started: Value = app.send(Method::POST, &movie, None, None).await.json().await.unwrap();
    let manifest = started["manifest_url"].as_str().unwrap_or_else(|| panic!("{started}")).to_owned();
    assert_eq!(app.client.get(&manifest).send().await.unwrap().status(), 200);

    // Logout everywhere: the next URL is a new one, and the movie's grant is dead.
    announce(&producer, "user.logout_all", DEMO_USER, json!({ "user_id": DEMO_USER })).await;
    counted(&stats.logout, 1, "logout").await;
    assert_eq!(app.client.get(&manifest).send().await.unwrap().status(), 403, "sessions ended by the logout");
    let (_, after_logout) = stream_url(&app).await;
    assert_ne!(after_logout["streamUrl"], first["streamUrl"], "the cached URL is gone");

    // A record that is not an event is skipped; the ones after it still apply.
    send_raw(&producer, "media.deleted", READY, b"{not json".to_vec()).await;
    // Deleted: 404, and the owner's cached URL is gone (not merely hidden).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    announce(&producer, "media.deleted", READY, json!({ "media_id": READY })).await;
    counted(&stats.deletion, 1, "deletion").await;
    assert_eq!(stream_url(&app).await.0, 404);
    announce(&producer, "media.status_changed", READY, json!({ "media_id": READY, "status": "ready" })).await;
    counted(&stats.status_change, 1, "status change").await;
    let (status, revived) = stream_url(&app).await;
    assert_eq!(status, 200, "ready again");
    assert_ne!(revived["streamUrl"], after_logout["streamUrl"], "a new URL: the deletion removed the cached one");

    // The same deletion again (a redelivery) leaves the same state.
    let deletion = json!({ "event_id": streaming_core::domain::SessionId::random().to_string(), "occurred_at": "2020-01-01T00:00:00Z", "media_id": READY });
    send_raw(&producer, "media.deleted", READY, deletion.to_string().into_bytes()).await;
    counted(&stats.deletion, 2, "old deletion").await;
    assert_eq!(stream_url(&app).await.0, 200, "a deletion older than the last change is not applied");

    // Suspended: refused.
    announce(&producer, "user.suspended", DEMO_USER, json!({ "user_id": DEMO_USER })).await;
    counted(&stats.status_change, 2, "suspension").await;
    assert_eq!(stream_url(&app).await.0, 403);

    // Subscription changed: counted under its own reason.
    announce(&producer, "subscription.changed", DEMO_USER, json!({ "user_id": DEMO_USER })).await;
    counted(&stats.subscription, 1, "subscription").await;

    // Where the consumer stands is kept in PostgreSQL, so a restart resumes there.
    use secrecy::ExposeSecret;
    let url = settings.postgres.url.as_ref().unwrap().expose_secret().to_owned();
    let db = streaming_postgres::PgDatabase::connect(&streaming_postgres::PgConfig::new(url)).await.unwrap();
    let offsets = streaming_postgres::PgConsumerOffsets::new(db, "streamgate");
    let topic = format!("{prefix}media.deleted");
    let mut stored = 0;
    for partition in 0..3 {
        stored += offsets.load(&topic, partition).await.unwrap().unwrap_or(0);
    }
    assert_eq!(stored, 3, "past the invalid record and both deletions");
}

/// The broker killed and started again while four viewers (each a user of
/// its own) watch the movie over and over: no request fails, and every
/// acknowledged start and stop arrives on the broker afterwards, each
/// viewer's in the order they happened.
async fn broker_outage_under_load(through_postgres: bool) {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};

    use crate::load::{Load, Phase};

    let mut broker = OwnBroker::start(BrokerEnv::from_infra());
    let brokers = broker.address();
    create_topics(&brokers, "", &PLAYBACK_TOPICS).await;
    let viewers: Vec<String> = (0..4).map(|i| format!("kafka-viewer-{i}")).collect();
    let mut settings = Settings::default();
    if through_postgres {
        with_postgres(&mut settings).await;
    }
    let overrides = crate::harness::subscribers(&viewers);
    let app = crate::harness::spawn_with(
        |s| {
            s.postgres = settings.postgres.clone();
            with_kafka_outage(s, &brokers);
        },
        overrides,
    )
    .await;

    // Per viewer, the sessions whose start and whose stop were acknowledged, in order.
    #[derive(Debug, Default, Clone)]
    struct Acks {
        started: Vec<String>,
        stopped: Vec<String>,
    }
    let acknowledged: Arc<Vec<Mutex<Acks>>> = Arc::new(viewers.iter().map(|_| Mutex::default()).collect());
    let tokens: Arc<Vec<String>> = Arc::new(viewers.iter().map(|v| crate::harness::token_for(v)).collect());
    let (client, acks) = (Arc::new(app), acknowledged.clone());
    let load = Load::start(viewers.len(), move |i, n| {
        let (app, tokens, acks) = (client.clone(), tokens.clone(), acks.clone());
        async move {
            let (token, movie) = (&tokens[i], format!("/api/v1/stream/{MOVIE}"));
            let response = app.send(Method::POST, &movie, Some(token), None).await;
            if response.status() != 200 {
                return response.status().as_u16();
            }
            let session = response.json::<Value>().await.unwrap()["session_id"].as_str().unwrap().to_owned();
            acks[i].lock().unwrap().started.push(session.clone());
            let position = (n % 10) as f64;
            let report = json!({ "position_seconds": position, "session_id": session, "sequence": 1 });
            let progress = app.send(Method::POST, &format!("{movie}/progress"), Some(token), Some(report)).await;
            if progress.status() != 200 {
                return progress.status().as_u16();
            }
            let stop = json!({ "position_seconds": position + 1.0, "session_id": session });
            let stopped = app.send(Method::POST, &format!("{movie}/stop"), Some(token), Some(stop)).await;
            if stopped.status() == 200 {
                acks[i].lock().unwrap().stopped.push(session);
            }
            stopped.status().as_u16()
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    load.enter(Phase::During);
    broker.stop();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    load.enter(Phase::After);
    broker.resume();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let outcomes = load.finish().await;
    let mode = if through_postgres { "outbox" } else { "buffer" };
    println!("broker outage ({mode}): {} rounds of start, progress, stop; {}", outcomes.total(), outcomes.summary());
    assert_eq!(outcomes.other_than(&[200]), 0, "no request fails: {}", outcomes.summary());
    assert!(outcomes.of(Phase::During, 200) > 0, "{}", outcomes.summary());

    // Every acknowledged start and stop arrives, each viewer's in order.
    let acknowledged: Vec<Acks> = acknowledged.iter().map(|a| a.lock().unwrap().clone()).collect();
    let expected = |pick: fn(&Acks) -> &Vec<String>| -> usize { acknowledged.iter().map(|a| pick(a).len()).sum() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events_lost = 0;
    for (action, wanted) in [("start", expected(|a| &a.started)), ("stop", expected(|a| &a.stopped))] {
        let received = loop {
            let received = read_all(&brokers, &format!("stream.{action}")).await;
            // Repeats (a resent batch) do not count towards what is awaited.
            let distinct = received.iter().map(|r| &r.event_id).collect::<HashSet<_>>().len();
            if distinct >= wanted || Instant::now() > deadline {
                break received;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // A batch resent after a lost acknowledgement arrives twice (same
        // `event_id`, for consumers to skip): first arrivals count.
        let distinct = received.iter().map(|r| &r.event_id).collect::<HashSet<_>>().len();
        events_lost += wanted.saturating_sub(distinct) as u64;
        let (mut arrived, mut seen) = (HashMap::<String, Vec<String>>::new(), HashSet::new());
        for record in &received {
            if seen.insert(record.event_id.clone()) {
                let event: Value = serde_json::from_slice(&record.value).unwrap();
                let session = event["session_id"].as_str().unwrap().to_owned();
                arrived.entry(record.key.clone()).or_default().push(session);
            }
        }
        for (viewer, acks) in viewers.iter().zip(&acknowledged) {
            let acked = if action == "start" { &acks.started } else { &acks.stopped };
            let got = arrived.get(viewer).cloned().unwrap_or_default();
            // Events of a round the test stopped before its answer may follow.
            assert_eq!(&got[..acked.len().min(got.len())], &acked[..], "{mode}: {viewer}'s {action} events");
            assert!(got.len() >= acked.len(), "{mode}: {viewer}: {} of {} {action} events", got.len(), acked.len());
        }
        println!(
            "broker outage ({mode}): {wanted} {action}s acknowledged, {} records on the broker, {} of them repeats",
            received.len(),
            received.len() - seen.len()
        );
    }
    outcomes.report(&format!("Kafka broker (SIGKILL), events through the {mode}"), None, Some(events_lost));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_under_load_through_the_outbox_loses_no_event() {
    broker_outage_under_load(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_under_load_through_the_buffer_loses_no_event() {
    broker_outage_under_load(false).await;
}

/// Two instances consume the upstream topics under one stored offset, so
/// each event is read by one of them only. Every instance's own caches must
/// still drop what the event changed: the one that applies it tells the
/// others (a deletion is 404 through both at once; so is a suspension 403).
#[tokio::test]
async fn every_instance_sees_every_catalog_change_though_they_share_one_offset() {
    let Upstream { brokers, prefix, producer, settings } = upstream().await;
    let redis = infra_var("STREAMGATE_REDIS_URL");
    let instance = || {
        let (postgres, brokers, prefix, redis) =
            (settings.postgres.clone(), brokers.clone(), prefix.clone(), redis.clone());
        spawn(move |s| {
            s.postgres = postgres;
            with_kafka(s, &brokers, &prefix);
            s.redis.url = Some(SecretString::from(redis));
            s.redis.key_prefix = prefix;
            // The polling below asks more often than the limit allows.
            s.rate_limit.stream_url_per_minute = 0;
        })
    };
    let (a, b) = (instance().await, instance().await);
    for app in [&a, &b] {
        assert_eq!(stream_url(app).await.0, 200, "both have the track in their caches");
    }
    announce(&producer, "media.deleted", READY, json!({ "media_id": READY })).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream_url(&a).await.0 != 404 || stream_url(&b).await.0 != 404 {
        assert!(Instant::now() < deadline, "an instance still serves the deleted track");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    announce(&producer, "media.status_changed", READY, json!({ "media_id": READY, "status": "ready" })).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses = (stream_url(&a).await.0, stream_url(&b).await.0);
        if statuses == (200, 200) {
            break;
        }
        assert!(Instant::now() < deadline, "an instance still refuses the restored track: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    announce(&producer, "user.suspended", DEMO_USER, json!({ "user_id": DEMO_USER })).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream_url(&a).await.0 != 403 || stream_url(&b).await.0 != 403 {
        assert!(Instant::now() < deadline, "an instance still serves a suspended user");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
