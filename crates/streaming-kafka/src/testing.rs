//! Test support: topics of a test's own, reading a topic back, and a broker
//! of a test's own that can be stopped and restarted (`tansu`, as
//! `cargo xtask infra up` installs it, keeping its log on the S3 server).
// Test support: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;

/// The topics the service produces, without a prefix.
pub const PLAYBACK_TOPICS: [&str; 3] = ["stream.start", "stream.progress", "stream.stop"];

/// A prefix no other test uses (`t{uuid}.`).
pub fn unique_prefix() -> String {
    format!("t{}.", uuid::Uuid::from_u128(rand_u128()).simple())
}

fn rand_u128() -> u128 {
    streaming_core::domain::SessionId::random().as_uuid().as_u128()
}

/// Creates `{prefix}{topic}` with 3 partitions for each topic, and waits
/// until the broker answers a metadata request for each (a producer asking
/// sooner may be told the topic is unknown).
pub async fn create_topics(brokers: &str, prefix: &str, topics: &[&str]) {
    let client = ClientBuilder::new(vec![brokers.to_owned()]).build().await.unwrap();
    let controller = client.controller_client().unwrap();
    for topic in topics {
        let name = format!("{prefix}{topic}");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        // The broker may lose a creation made while it handles another
        // (seen with tests creating topics at the same moment): asked again
        // until it knows the topic ("already exists" is then fine).
        'created: loop {
            if let Err(error) = controller.create_topic(name.clone(), 3, 1, 5_000).await {
                assert!(error.to_string().contains("TopicAlreadyExists"), "creating {name}: {error}");
            }
            let asked = std::time::Instant::now();
            while asked.elapsed() < Duration::from_secs(2) {
                if client.partition_client(name.clone(), 2, UnknownTopicHandling::Error).await.is_ok() {
                    break 'created;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(std::time::Instant::now() < deadline, "the broker does not know {name}");
        }
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its partition.
    pub partition: i32,
    /// Its key, as text.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
    /// Its `event_id` header, as text (empty if absent).
    pub event_id: String,
}

/// Every record of `topic` (3 partitions), partition by partition, in offset order.
pub async fn read_all(brokers: &str, topic: &str) -> Vec<Received> {
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
                    key: String::from_utf8(r.record.key.unwrap_or_default()).unwrap(),
                    value: r.record.value.unwrap_or_default(),
                    event_id: String::from_utf8(r.record.headers.get("event_id").cloned().unwrap_or_default()).unwrap(),
                });
            }
        }
    }
    out
}

/// Where the shared infrastructure is: the broker binary and the S3 server
/// its log lives on (from `cargo xtask infra up`'s variables).
#[derive(Debug, Clone)]
pub struct BrokerEnv {
    /// The `tansu` binary.
    pub binary: String,
    /// The bucket of its log.
    pub bucket: String,
    /// S3 endpoint, access key and secret key.
    pub s3: (String, String, String),
}

impl BrokerEnv {
    /// From `cargo xtask infra up`'s variables.
    pub fn from_infra() -> Self {
        use streaming_core::contract::infra_var;
        Self {
            binary: infra_var("STREAMGATE_TANSU_BIN"),
            bucket: infra_var("STREAMGATE_TANSU_BUCKET"),
            s3: (
                infra_var("STREAMGATE_S3_ENDPOINT"),
                infra_var("STREAMGATE_S3_ACCESS_KEY"),
                infra_var("STREAMGATE_S3_SECRET_KEY"),
            ),
        }
    }
}

/// A broker of a test's own, under its own cluster id.
#[derive(Debug)]
pub struct OwnBroker {
    port: u16,
    cluster: String,
    env: BrokerEnv,
    child: Option<Child>,
}

impl OwnBroker {
    /// Starts it on a free loopback port.
    pub fn start(env: BrokerEnv) -> Self {
        let port = streaming_core::contract::free_port();
        let cluster = format!("test-{:032x}", rand_u128());
        let mut broker = Self { port, cluster, env, child: None };
        broker.resume();
        broker
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port, with the log it had.
    pub fn resume(&mut self) {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let (endpoint, access, secret) = &self.env.s3;
        let child = Command::new(&self.env.binary)
            .args(["broker", "--cluster-id", &self.cluster, "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .arg("--storage-engine")
            .arg(format!("s3://{}/", self.env.bucket))
            .env("AWS_ACCESS_KEY_ID", access)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_ENDPOINT", endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_DEFAULT_REGION", "us-east-1")
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

    /// Kills it (its log stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
