//! Dependency faults under load: a dependency of the app's own (a private
//! server process on loopback, so stopping it disturbs no other test) is
//! stopped in the middle of a bounded load loop and started again.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use streaming_api::settings::CacheKind;
use tokio::task::JoinHandle;

use crate::harness::{spawn, TestApp, READY};

/// A server process of the test's own, killed when dropped.
struct Server {
    child: Option<Child>,
    command: Vec<String>,
    port: u16,
}

impl Server {
    async fn start(command: &[&str], port: u16) -> Self {
        let mut server = Self { child: None, command: command.iter().map(|s| (*s).to_owned()).collect(), port };
        server.restart().await;
        server
    }

    async fn restart(&mut self) {
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.command[0]));
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} did not listen on {}", self.command[0], self.port);
    }

    /// SIGKILL: no goodbye to its clients.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Counts of a load loop.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

/// `workers` clients asking for stream URLs of the demo track until `stop`.
fn track_load(app: &Arc<TestApp>, workers: usize, stop: &Arc<AtomicBool>) -> (Arc<Tally>, Vec<JoinHandle<()>>) {
    let tally = Arc::new(Tally::default());
    let handles = (0..workers)
        .map(|_| {
            let (app, tally, stop) = (Arc::clone(app), Arc::clone(&tally), Arc::clone(stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let status = app.stream(READY, Some(&app.demo.token)).await.status().as_u16();
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    let counter = if status == 200 { &tally.ok } else { &tally.failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    (tally, handles)
}

/// Redis down: the URL cache and the rate limiter go with it; requests keep
/// being answered (cache misses, limits failing open), none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_load_fails_no_request() {
    let port = free_port();
    let port_text = port.to_string();
    let mut redis = Server::start(
        &["redis-server", "--port", &port_text, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        port,
    )
    .await;
    let app = Arc::new(
        spawn(|s| {
            s.cache.kind = CacheKind::Redis;
            s.redis.url = Some(SecretString::from(format!("redis://127.0.0.1:{port}")));
            s.redis.command_timeout_ms = 200;
            s.rate_limit.stream_url_per_minute = 1_000_000;
        })
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, workers) = track_load(&app, 4, &stop);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_outage = tally.ok.load(Ordering::Relaxed);
    let keys = Command::new("redis-cli").args(["-p", &port_text, "dbsize"]).output().unwrap();
    let keys: u64 = String::from_utf8_lossy(&keys.stdout).trim().parse().unwrap();
    assert!(keys > 0, "the app keeps its cache and limits in this Redis");
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let during_outage = tally.ok.load(Ordering::Relaxed) - before_outage;
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let (sent, ok, failed) =
        (tally.sent.load(Ordering::Relaxed), tally.ok.load(Ordering::Relaxed), tally.failed.load(Ordering::Relaxed));
    println!("redis outage: {sent} requests, {ok} ok, {failed} failed; {during_outage} ok while Redis was down");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    assert!(
        before_outage > 0 && during_outage > 0,
        "the load ran before ({before_outage}) and during ({during_outage})"
    );
    // Back to caching after the restart: the same URL twice in a row.
    let first = app.stream_url(READY).await;
    let second = app.stream_url(READY).await;
    assert_eq!(first["streamUrl"], second["streamUrl"], "Redis caches again after it returns");
}
