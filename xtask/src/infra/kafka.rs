//! A Kafka-protocol broker: `tansu`, built with `cargo install` into the tool cache
//! with its object-store engine (`dynostore`; a long build, once). It keeps
//! its log in the S3 server started before it (bucket `tansu`), so it
//! survives a restart, which the no-lost-events tests need.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::s3;
use crate::tools;

/// The broker, built once into the tool cache.
pub const BROKER: tools::CargoTool = tools::CargoTool {
    krate: "tansu",
    version: "0.6.0",
    features: &["dynostore"],
    binary: "tansu",
    first_build: "about 9 min",
    quick_build: false,
};
pub const BUCKET: &str = "tansu";
/// The topics of the default prefix (empty): what the service produces and consumes.
pub const TOPICS: &[&str] = &[
    "stream.start",
    "stream.progress",
    "stream.stop",
    "media.upserted",
    "media.status_changed",
    "media.deleted",
    "user.suspended",
    "user.logout_all",
    "subscription.changed",
];

/// The environment `tansu` needs to reach the S3 server at `endpoint`.
pub fn object_store_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY.to_owned()),
        ("AWS_ENDPOINT", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
    ]
}

pub fn start(dir: &Path, s3_env: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let binary = BROKER.ensure()?;
    let endpoint = s3_env.get("STREAMGATE_S3_ENDPOINT").ok_or("the S3 server must start before the broker")?;
    fs::create_dir_all(dir.join("s3").join(BUCKET)).map_err(|e| format!("the {BUCKET} bucket: {e}"))?;
    let port = super::free_port()?;
    let listener = format!("tcp://127.0.0.1:{port}");
    let storage = format!("s3://{BUCKET}/");
    super::spawn(
        dir,
        "tansu",
        Command::new(&binary)
            .args(["broker", "--cluster-id", "streamgate", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener, "--storage-engine", &storage])
            .envs(object_store_env(endpoint)),
    )?;
    super::wait_for_port("tansu", port, Duration::from_secs(15))?;
    for topic in TOPICS {
        let output = Command::new(&binary)
            .args(["topic", "create", "--broker", &listener, "--partitions", "3", topic])
            .output()
            .map_err(|e| format!("tansu topic create: {e}"))?;
        if !output.status.success() {
            return Err(format!("creating topic {topic}: {}", String::from_utf8_lossy(&output.stderr)));
        }
    }
    println!("==> tansu (Kafka protocol) on 127.0.0.1:{port}, {} topics", TOPICS.len());
    Ok(BTreeMap::from([
        ("STREAMGATE_KAFKA_BROKERS".to_owned(), format!("127.0.0.1:{port}")),
        ("STREAMGATE_TANSU_BIN".to_owned(), binary.display().to_string()),
        ("STREAMGATE_TANSU_BUCKET".to_owned(), BUCKET.to_owned()),
    ]))
}
