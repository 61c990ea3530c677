//! The producer and the buffered publisher against a real Kafka-protocol
//! broker (`cargo xtask infra up` starts tansu). Each test uses topics of
//! its own prefix; the restart test runs a broker of its own.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use streaming_core::contract::infra_var;
use streaming_core::domain::{PlaybackAction, PlaybackEvent, PositionSeconds};
use streaming_core::ports::EventPublisher;
use streaming_kafka::testing::{
    create_topics, read_all, unique_prefix, BrokerEnv, OwnBroker, Received, PLAYBACK_TOPICS,
};
use streaming_kafka::{partition_for, playback_record, BufferedKafkaPublisher, KafkaConfig, KafkaError, KafkaProducer};
use time::OffsetDateTime;

fn config(brokers: &str, prefix: &str) -> KafkaConfig {
    KafkaConfig {
        topic_prefix: prefix.to_owned(),
        timeout: Duration::from_secs(3),
        ..KafkaConfig::new(vec![brokers.to_owned()])
    }
}

fn json(record: &Received) -> serde_json::Value {
    serde_json::from_slice(&record.value).unwrap()
}

fn event(user: &str, action: PlaybackAction, position: f64) -> PlaybackEvent {
    PlaybackEvent {
        event_id: uuid::Uuid::new_v4(),
        user: user.parse().unwrap(),
        media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
        session: None,
        action,
        position: Some(PositionSeconds::new(position).unwrap()),
        timestamp: OffsetDateTime::now_utc(),
    }
}

/// Positions of `user`'s progress events, in the order the topic holds them.
fn positions_of(received: &[Received], user: &str) -> Vec<u64> {
    received.iter().filter(|r| r.key == user).map(|r| json(r)["position_seconds"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_users_events_land_in_one_partition_in_order_with_their_ids() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &PLAYBACK_TOPICS).await;
    let producer = KafkaProducer::new(config(&brokers, &prefix));
    let users = ["alice", "bob", "carol", "dave"];
    let mut sent = Vec::new();
    for second in 0..15 {
        for user in users {
            sent.push(event(user, PlaybackAction::Progress, f64::from(second)));
        }
    }
    let start = event("alice", PlaybackAction::Start, 0.0);
    let mut records: Vec<_> = sent.iter().map(playback_record).collect();
    records.push(playback_record(&start));
    producer.send(records).await.unwrap();

    let progress = read_all(&brokers, &format!("{prefix}stream.progress")).await;
    assert_eq!(progress.len(), 60);
    for user in users {
        assert_eq!(positions_of(&progress, user), (0..15).collect::<Vec<u64>>(), "{user}'s events in order");
        let expected = i32::try_from(partition_for(user.as_bytes(), 3)).unwrap();
        assert!(progress.iter().filter(|r| r.key == user).all(|r| r.partition == expected), "one partition per user");
    }
    let first = progress.iter().find(|r| r.key == "alice").unwrap();
    assert_eq!(json(first)["user_id"], "alice");
    assert_eq!(json(first)["action"], "stream_progress");
    assert_eq!(first.event_id, sent[0].event_id.to_string(), "the header carries the event id");
    assert_eq!(json(first)["event_id"], sent[0].event_id.to_string());
    let starts = read_all(&brokers, &format!("{prefix}stream.start")).await;
    assert_eq!(starts.len(), 1);
    assert_eq!(json(&starts[0])["action"], "stream_start");
}

#[tokio::test]
async fn a_missing_topic_and_an_unreachable_broker_are_errors_not_hangs() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let producer = KafkaProducer::new(config(&brokers, &unique_prefix()));
    let missing = producer.send(vec![playback_record(&event("alice", PlaybackAction::Start, 0.0))]).await;
    assert!(matches!(missing, Err(KafkaError::UnknownTopic(_))), "{missing:?}");

    let port = streaming_core::contract::free_port();
    let nowhere = KafkaProducer::new(KafkaConfig {
        timeout: Duration::from_millis(500),
        ..KafkaConfig::new(vec![format!("127.0.0.1:{port}")])
    });
    let started = std::time::Instant::now();
    let down = nowhere.send(vec![playback_record(&event("alice", PlaybackAction::Start, 0.0))]).await;
    assert!(matches!(down, Err(KafkaError::Unavailable(_))), "{down:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the timeout: {:?}", started.elapsed());
}

#[tokio::test]
async fn the_buffered_publisher_delivers_in_order_and_counts_what_it_drops() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &PLAYBACK_TOPICS).await;
    let publisher = BufferedKafkaPublisher::start(Arc::new(KafkaProducer::new(config(&brokers, &prefix))), 1_000);
    for second in 0..50 {
        publisher.publish(event("alice", PlaybackAction::Progress, f64::from(second))).await.unwrap();
    }
    publisher.flush(Duration::from_secs(10)).await.unwrap();
    let progress = read_all(&brokers, &format!("{prefix}stream.progress")).await;
    assert_eq!(positions_of(&progress, "alice"), (0..50).collect::<Vec<u64>>());

    // Nowhere to send: the buffer fills and the rest is dropped, counted.
    let port = streaming_core::contract::free_port();
    let stuck = BufferedKafkaPublisher::start(
        Arc::new(KafkaProducer::new(KafkaConfig {
            timeout: Duration::from_millis(200),
            ..KafkaConfig::new(vec![format!("127.0.0.1:{port}")])
        })),
        2,
    );
    let mut refused = 0;
    for second in 0..10 {
        if stuck.publish(event("bob", PlaybackAction::Progress, f64::from(second))).await.is_err() {
            refused += 1;
        }
    }
    let stats = stuck.stats();
    assert!(refused >= 7, "at most the buffer and the batch in flight are kept, {refused} refused");
    assert_eq!(stats.dropped.load(Ordering::Relaxed), refused);
    assert!(stuck.flush(Duration::from_millis(300)).await.is_err(), "what was kept is still pending");
}

#[tokio::test]
async fn events_published_while_the_broker_is_down_arrive_after_it_returns_in_order() {
    let mut broker = OwnBroker::start(BrokerEnv::from_infra());
    create_topics(&broker.address(), "", &PLAYBACK_TOPICS).await;
    // A short timeout, so the outage outlasts rskafka's own retries and ours take over.
    let producer =
        KafkaProducer::new(KafkaConfig { timeout: Duration::from_millis(500), ..config(&broker.address(), "") });
    let publisher = BufferedKafkaPublisher::start(Arc::new(producer), 10_000);
    let users = ["alice", "bob", "carol"];
    for second in 0..10 {
        for user in users {
            publisher.publish(event(user, PlaybackAction::Progress, f64::from(second))).await.unwrap();
        }
    }
    publisher.flush(Duration::from_secs(10)).await.unwrap();

    broker.stop();
    for second in 10..30 {
        for user in users {
            publisher.publish(event(user, PlaybackAction::Progress, f64::from(second))).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(publisher.pending() > 0, "nothing can be sent while the broker is down");
    broker.resume();
    publisher.flush(Duration::from_secs(30)).await.unwrap();

    let progress = read_all(&broker.address(), "stream.progress").await;
    for user in users {
        assert_eq!(positions_of(&progress, user), (0..30).collect::<Vec<u64>>(), "{user}: none lost, none reordered");
    }
    assert!(publisher.stats().failed_sends.load(Ordering::Relaxed) > 0, "the sends failed and were retried");
}
