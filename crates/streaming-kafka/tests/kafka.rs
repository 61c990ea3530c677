//! The producer and the buffered publisher against a real Kafka-protocol
//! broker (`cargo xtask infra up` starts tansu). Each test uses topics of
//! its own prefix; the restart test runs a broker of its own.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use streaming_core::contract::infra_var;
use streaming_core::domain::{PlaybackAction, PlaybackEvent, PositionSeconds};
use streaming_core::ports::EventPublisher;
use streaming_kafka::{partition_for, playback_record, BufferedKafkaPublisher, KafkaConfig, KafkaError, KafkaProducer};
use time::OffsetDateTime;

const TOPICS: [&str; 3] = ["stream.start", "stream.progress", "stream.stop"];

fn unique_prefix() -> String {
    format!("t{}.", uuid::Uuid::new_v4().simple())
}

async fn create_topics(brokers: &str, prefix: &str) {
    let client = ClientBuilder::new(vec![brokers.to_owned()]).build().await.unwrap();
    let controller = client.controller_client().unwrap();
    for topic in TOPICS {
        controller.create_topic(format!("{prefix}{topic}"), 3, 1, 5_000).await.unwrap();
    }
}

fn config(brokers: &str, prefix: &str) -> KafkaConfig {
    KafkaConfig {
        topic_prefix: prefix.to_owned(),
        timeout: Duration::from_secs(3),
        ..KafkaConfig::new(vec![brokers.to_owned()])
    }
}

/// One record read back: partition, key, event JSON and the `event_id` header.
#[derive(Debug, Clone)]
struct Received {
    partition: i32,
    key: String,
    json: serde_json::Value,
    event_id: String,
}

/// Every record of `topic`, partition by partition, in offset order.
async fn read_all(brokers: &str, topic: &str) -> Vec<Received> {
    let client = ClientBuilder::new(vec![brokers.to_owned()]).build().await.unwrap();
    let mut out = Vec::new();
    for partition in 0..3 {
        let pc = client.partition_client(topic, partition, UnknownTopicHandling::Retry).await.unwrap();
        let high = pc.get_offset(OffsetAt::Latest).await.unwrap();
        let mut offset = 0;
        while offset < high {
            let (records, _) = pc.fetch_records(offset, 1..1_000_000, 1_000).await.unwrap();
            assert!(!records.is_empty(), "no progress reading {topic}/{partition} at {offset}");
            for r in records {
                offset = r.offset + 1;
                out.push(Received {
                    partition,
                    key: String::from_utf8(r.record.key.unwrap()).unwrap(),
                    json: serde_json::from_slice(&r.record.value.unwrap()).unwrap(),
                    event_id: String::from_utf8(r.record.headers["event_id"].clone()).unwrap(),
                });
            }
        }
    }
    out
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
    received.iter().filter(|r| r.key == user).map(|r| r.json["position_seconds"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_users_events_land_in_one_partition_in_order_with_their_ids() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix).await;
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
    assert_eq!(first.json["user_id"], "alice");
    assert_eq!(first.json["action"], "stream_progress");
    assert_eq!(first.event_id, sent[0].event_id.to_string(), "the header carries the event id");
    assert_eq!(first.json["event_id"], sent[0].event_id.to_string());
    let starts = read_all(&brokers, &format!("{prefix}stream.start")).await;
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].json["action"], "stream_start");
}

#[tokio::test]
async fn a_missing_topic_and_an_unreachable_broker_are_errors_not_hangs() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let producer = KafkaProducer::new(config(&brokers, &unique_prefix()));
    let missing = producer.send(vec![playback_record(&event("alice", PlaybackAction::Start, 0.0))]).await;
    assert!(matches!(missing, Err(KafkaError::UnknownTopic(_))), "{missing:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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
    create_topics(&brokers, &prefix).await;
    let publisher = BufferedKafkaPublisher::start(Arc::new(KafkaProducer::new(config(&brokers, &prefix))), 1_000);
    for second in 0..50 {
        publisher.publish(event("alice", PlaybackAction::Progress, f64::from(second))).await.unwrap();
    }
    publisher.flush(Duration::from_secs(10)).await.unwrap();
    let progress = read_all(&brokers, &format!("{prefix}stream.progress")).await;
    assert_eq!(positions_of(&progress, "alice"), (0..50).collect::<Vec<u64>>());

    // Nowhere to send: the buffer fills and the rest is dropped, counted.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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

/// A broker of the test's own, on the shared S3 server's `tansu` bucket
/// under its own cluster id, so it keeps its log across a restart.
struct OwnBroker {
    port: u16,
    cluster: String,
    child: Option<Child>,
}

impl OwnBroker {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut broker = Self { port, cluster: format!("test-{}", uuid::Uuid::new_v4().simple()), child: None };
        broker.resume();
        broker
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let env = BTreeMap::from([
            ("AWS_ACCESS_KEY_ID", infra_var("STREAMGATE_S3_ACCESS_KEY")),
            ("AWS_SECRET_ACCESS_KEY", infra_var("STREAMGATE_S3_SECRET_KEY")),
            ("AWS_ENDPOINT", infra_var("STREAMGATE_S3_ENDPOINT")),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ]);
        let child = Command::new(infra_var("STREAMGATE_TANSU_BIN"))
            .args(["broker", "--cluster-id", &self.cluster, "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .arg("--storage-engine")
            .arg(format!("s3://{}/", infra_var("STREAMGATE_TANSU_BUCKET")))
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn events_published_while_the_broker_is_down_arrive_after_it_returns_in_order() {
    let mut broker = OwnBroker::start();
    create_topics(&broker.address(), "").await;
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
