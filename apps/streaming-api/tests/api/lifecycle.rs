//! The service binary as a child process on PostgreSQL, configured through
//! the environment, killed with SIGKILL in the middle of playback (nothing
//! acknowledged as a start or a stop is lost) and stopped with SIGTERM under
//! load (in-flight requests finish, queued progress is written).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streaming_core::contract::infra_var;
use streaming_postgres::testing::fresh_database_url;
use tokio::io::AsyncWriteExt;

use crate::harness::{psql, token_for, MOVIE, SECRET, SIGNING_KEY};

const MOVIE_PATH: &str = "/api/v1/stream/5eed0000-0000-4000-8000-000000000001";

/// `streaming-api serve` as a child process.
struct Service {
    child: tokio::process::Child,
    address: String,
    log: std::path::PathBuf,
}

impl Service {
    /// Starts the binary on a free port with the database at `database`,
    /// subscriptions from the user service at `users`, progress flushed every
    /// `flush_ms`, and waits until it answers `/healthz`.
    async fn start(dir: &std::path::Path, database: &str, users: &str, flush_ms: u64) -> Self {
        Self::start_with(dir, database, users, flush_ms, &[]).await
    }

    /// [`Service::start`] with `extra` settings in the environment.
    async fn start_with(
        dir: &std::path::Path,
        database: &str,
        users: &str,
        flush_ms: u64,
        extra: &[(&str, String)],
    ) -> Self {
        let port = streaming_core::contract::free_port();
        let log = dir.join(format!("service-{port}.log"));
        let command = || {
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"));
            command
                .env("STREAMING__SERVER__PORT", port.to_string())
                .env("STREAMING__SERVER__WORKERS", "2")
                .env("STREAMING__AUTH__SECRET", SECRET)
                .env("STREAMING__STORAGE__ROOT", dir.join("objects"))
                .env("STREAMING__STORAGE__SIGNING_KEY", SIGNING_KEY)
                .env("STREAMING__POSTGRES__URL", database)
                .env("STREAMING__POSTGRES__MIGRATE_ON_START", "true")
                .env("STREAMING__POSTGRES__PROGRESS_FLUSH_INTERVAL_MS", flush_ms.to_string())
                .env("STREAMING__USERS__URL", users)
                .env("STREAMING__LOG__FORMAT", "text")
                .envs(extra.iter().map(|(name, value)| (*name, value.as_str())));
            command
        };
        // The demo movie, written by the explicit step (demo mode stays off beside real stores).
        let seeded = command().arg("seed-demo").env("STREAMING__LOG__FILTER", "warn").output().await.unwrap();
        assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
        let child = command()
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let service = Self { child, address: format!("http://127.0.0.1:{port}"), log };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{}/healthz", service.address)).send().await.is_err() {
            assert!(Instant::now() < deadline, "the service did not start:\n{}", service.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        service
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    /// Waits for the process to end (at most `within`); its exit status.
    async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait()).await.expect("the service did not exit").unwrap()
    }
}

/// One viewer's requests to a service: JSON in and out, `None` when the
/// service could not be reached (it is gone).
struct Viewer {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Viewer {
    fn new(base: &str, user: &str) -> Self {
        Self::with_client(reqwest::Client::new(), base, user)
    }

    fn with_client(client: reqwest::Client, base: &str, user: &str) -> Self {
        Self { client, base: base.to_owned(), token: token_for(user) }
    }

    async fn post(&self, path: &str, body: Value) -> Option<(u16, Value)> {
        let request = self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body);
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }
}

/// What one viewer had acknowledged.
#[derive(Debug, Default, Clone)]
struct Acknowledged {
    /// Sessions whose start was answered 200.
    started: Vec<String>,
    /// Sessions whose stop was answered "stopped", with its position.
    stopped: Vec<(String, u64)>,
    /// Progress reports answered 200 and applied.
    reports: u64,
}

/// Position `n` in seconds as thousandths.
fn thousandths(n: u64) -> f64 {
    n as f64 / 1000.0
}

/// Position `n` in seconds: hundredths, so thousands of requests stay
/// within the 16 s demo movie (near its end it counts as watched).
fn at(n: u64) -> f64 {
    n as f64 / 100.0
}

/// Watches the movie over and over (start, two progress reports, stop) until
/// the service is gone; positions grow with every request.
async fn watch_until_gone(viewer: Viewer, acknowledged: Arc<Mutex<Acknowledged>>) {
    let mut position = 0;
    loop {
        let Some((200, started)) = viewer.post(MOVIE_PATH, json!({})).await else { return };
        let session = started["session_id"].as_str().unwrap().to_owned();
        acknowledged.lock().unwrap().started.push(session.clone());
        for sequence in 1..=2 {
            position += 1;
            let body = json!({ "position_seconds": at(position), "session_id": session, "sequence": sequence });
            let Some((200, _)) = viewer.post(&format!("{MOVIE_PATH}/progress"), body).await else { return };
            acknowledged.lock().unwrap().reports += 1;
        }
        position += 1;
        let body = json!({ "position_seconds": at(position), "session_id": session });
        let Some((200, stopped)) = viewer.post(&format!("{MOVIE_PATH}/stop"), body).await else { return };
        assert_eq!(stopped["message"], "Streaming stopped");
        acknowledged.lock().unwrap().stopped.push((session, position));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_loses_no_acknowledged_start_or_stop() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let (users, _stand) = crate::users::stand_in(200).await;
    // Reports wait a minute in the write-behind queue: only starts and stops
    // are written before they are acknowledged.
    let mut service = Service::start(dir.path(), &database, &users, 60_000).await;

    let viewers: Vec<String> = (0..4).map(|i| format!("killed-viewer-{i}")).collect();
    let acknowledged: Vec<Arc<Mutex<Acknowledged>>> = viewers.iter().map(|_| Arc::default()).collect();
    let workers: Vec<_> = viewers
        .iter()
        .zip(&acknowledged)
        .map(|(user, acks)| tokio::spawn(watch_until_gone(Viewer::new(&service.address, user), acks.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    service.signal("-KILL");
    assert!(!service.exit(Duration::from_secs(10)).await.success());
    for worker in workers {
        worker.await.unwrap();
    }

    // In the database: every acknowledged start and stop, with its event in the outbox for the relay.
    let acknowledged: Vec<Acknowledged> = acknowledged.iter().map(|a| a.lock().unwrap().clone()).collect();
    let count = |sql: String| -> usize { psql(&database, &sql).trim().parse().unwrap() };
    let quoted =
        |sessions: &mut dyn Iterator<Item = &String>| sessions.map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",");
    for (user, acks) in viewers.iter().zip(&acknowledged) {
        assert!(!acks.stopped.is_empty(), "{user} finished a round before the kill");
        let started = quoted(&mut acks.started.iter());
        let stopped = quoted(&mut acks.stopped.iter().map(|(s, _)| s));
        let sessions = count(format!("SELECT count(*) FROM stream_sessions WHERE id::text IN ({started})"));
        assert_eq!(sessions, acks.started.len(), "{user}: sessions acknowledged as started");
        let closed = count(format!(
            "SELECT count(*) FROM stream_sessions WHERE ended_at IS NOT NULL AND id::text IN ({stopped})"
        ));
        assert_eq!(closed, acks.stopped.len(), "{user}: sessions acknowledged as stopped");
        let outbox = |topic: &str, sessions: &str| {
            count(format!(
                "SELECT count(*) FROM outbox WHERE topic = '{topic}' AND payload->>'session_id' IN ({sessions})"
            ))
        };
        assert_eq!(outbox("stream.start", &started), acks.started.len(), "{user}: start events");
        assert_eq!(outbox("stream.stop", &stopped), acks.stopped.len(), "{user}: stop events");
        // The last acknowledged stop's position, or a later one whose answer the kill cut off.
        let (_, last_stop) = acks.stopped.last().unwrap();
        let sql = format!("SELECT round(position_seconds * 100)::bigint FROM watch_progress WHERE user_id = '{user}'");
        let stored: u64 = psql(&database, &sql).trim().parse().unwrap_or_else(|_| panic!("{user}: no progress stored"));
        assert!(stored >= *last_stop, "{user}: position {stored} stored, {last_stop} acknowledged");
    }

    // Restarted on the same database, the service resumes each viewer there
    // (the cinema contract answers whole seconds).
    let restarted = Service::start(dir.path(), &database, &users, 100).await;
    for (user, acks) in viewers.iter().zip(&acknowledged) {
        let (_, last_stop) = acks.stopped.last().unwrap();
        let resumed: Value = Viewer::new(&restarted.address, user).post(MOVIE_PATH, json!({})).await.unwrap().1;
        let position = resumed["resume_position_seconds"].as_f64().unwrap();
        assert!(position >= at(*last_stop).floor(), "{user}: resumed at {position}, {last_stop} acknowledged");
    }
    let total = |f: fn(&Acknowledged) -> u64| acknowledged.iter().map(f).sum::<u64>();
    println!(
        "service killed: {} starts, {} stops and {} progress reports acknowledged by 4 viewers; \
         every start and stop found in the database and its outbox",
        total(|a| a.started.len() as u64),
        total(|a| a.stopped.len() as u64),
        total(|a| a.reports),
    );
}

/// Sends the head and half the body of a progress report, waits for
/// `release`, sends the rest; the status answered.
async fn slow_report(address: &str, token: &str, body: String, release: tokio::sync::oneshot::Receiver<()>) -> u16 {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {MOVIE_PATH}/progress HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(format!("{head}{first}").as_bytes()).await.unwrap();
    release.await.unwrap();
    stream.write_all(rest.as_bytes()).await.unwrap();
    crate::harness::status_of(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_writes_queued_progress() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let (users, _stand) = crate::users::stand_in(200).await;
    // Nothing is flushed by the timer: what reaches the database, the drain wrote.
    let mut service = Service::start(dir.path(), &database, &users, 3_600_000).await;

    // Viewers reporting progress as fast as they can until the service is gone.
    let mut workers = Vec::new();
    for i in 0..4 {
        let viewer = Viewer::new(&service.address, &format!("draining-viewer-{i}"));
        let (200, started) = viewer.post(MOVIE_PATH, json!({})).await.unwrap() else { panic!("start refused") };
        let session = started["session_id"].as_str().unwrap().to_owned();
        workers.push(tokio::spawn(async move {
            let (mut acknowledged, mut sent) = (0u64, 0u64);
            for position in 1.. {
                let body =
                    json!({ "position_seconds": at(position) / 100.0, "session_id": session, "sequence": position });
                sent = position;
                match viewer.post(&format!("{MOVIE_PATH}/progress"), body).await {
                    Some((200, ack)) if ack["applied"] == true => acknowledged = position,
                    Some((status, answer)) => panic!("{status}: {answer}"),
                    None => break,
                }
            }
            (viewer.token, acknowledged, sent)
        }));
    }
    // And one report whose body is still on its way when SIGTERM arrives.
    let slow_viewer = Viewer::new(&service.address, "draining-slow-viewer");
    let (_, started) = slow_viewer.post(MOVIE_PATH, json!({})).await.unwrap();
    let body = json!({ "position_seconds": 4.2, "session_id": started["session_id"], "sequence": 1 }).to_string();
    let (release, released) = tokio::sync::oneshot::channel();
    let slow = tokio::spawn({
        let (address, token) = (service.address.clone(), slow_viewer.token.clone());
        async move { slow_report(&address, &token, body, released).await }
    });

    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(psql(&database, "SELECT count(*) FROM watch_progress").trim(), "0", "all of it still queued");
    service.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send(()).unwrap();
    assert_eq!(slow.await.unwrap(), 200, "the in-flight request was answered");
    let status = service.exit(Duration::from_secs(40)).await;
    assert!(status.success(), "{status}\n{}", service.log());
    assert!(service.log().contains("pending progress written"), "{}", service.log());

    let mut total = 0;
    for (i, worker) in workers.into_iter().enumerate() {
        let (_, acknowledged, sent) = worker.await.unwrap();
        let stored: u64 = psql(
            &database,
            &format!(
                "SELECT round(position_seconds * 10000)::bigint FROM watch_progress \
                 WHERE user_id = 'draining-viewer-{i}' \
                 AND movie_id = '{MOVIE}'"
            ),
        )
        .trim()
        .parse()
        .unwrap();
        assert!(acknowledged > 0 && (acknowledged..=sent).contains(&stored), "{i}: {stored} for {acknowledged}");
        total += acknowledged;
    }
    let slow_stored =
        psql(&database, "SELECT position_seconds FROM watch_progress WHERE user_id = 'draining-slow-viewer'");
    assert_eq!(slow_stored.trim(), "4.2", "the in-flight report was written too");
    println!("SIGTERM under load: {total} progress reports acknowledged by 4 viewers, each viewer's last one written");
}

/// A directory, a fresh database and a user-service stand-in for instances of the binary.
async fn instances_setup() -> (tempfile::TempDir, String, String, streaming_users::testing::UserServiceStandIn) {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let (users, stand) = crate::users::stand_in(200).await;
    (dir, database, users, stand)
}

/// The settings of instances sharing the test Redis under a prefix of
/// their own, with no per-user rate limits (each viewer asks often).
fn shared_redis(name: &str) -> [(&'static str, String); 4] {
    [
        ("STREAMING__REDIS__URL", infra_var("STREAMGATE_REDIS_URL")),
        ("STREAMING__REDIS__KEY_PREFIX", format!("{name}-{}:", streaming_core::domain::SessionId::random())),
        ("STREAMING__RATE_LIMIT__STREAM_URL_PER_MINUTE", "0".to_owned()),
        ("STREAMING__RATE_LIMIT__STREAM_START_PER_MINUTE", "0".to_owned()),
    ]
}

/// Three instances on one Redis and PostgreSQL; one acknowledges a progress
/// report (with a heartbeat and an event) from each of 300 viewers and is
/// killed with SIGKILL at once, its queues never flushed. The other two
/// write everything it acknowledged, within `redis.rescue_after_ms` (5 s) and
/// a rescue round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_instance_acknowledged_is_written_by_the_others() {
    const VIEWERS: usize = 300;
    let (dir, database, users, _stand) = instances_setup().await;
    let shared = shared_redis("kill");
    // The one to be killed never flushes on its own.
    let mut killed = Service::start_with(dir.path(), &database, &users, 3_600_000, &shared).await;
    let _survivors = [
        Service::start_with(dir.path(), &database, &users, 1_000, &shared).await,
        Service::start_with(dir.path(), &database, &users, 1_000, &shared).await,
    ];

    let client = reqwest::Client::new();
    let viewers: Vec<Viewer> =
        (0..VIEWERS).map(|i| Viewer::with_client(client.clone(), &killed.address, &format!("kill9-{i}"))).collect();
    // 16 at a time: the rest of the suite shares the machine and the database.
    use futures_util::StreamExt as _;
    let starts: Vec<_> =
        futures_util::stream::iter(viewers.iter().map(|v| v.post(MOVIE_PATH, json!({})))).buffered(16).collect().await;
    let sessions: Vec<String> = starts
        .into_iter()
        .map(|answer| match answer {
            Some((200, started)) => started["session_id"].as_str().unwrap().to_owned(),
            other => panic!("start refused: {other:?}"),
        })
        .collect();
    // Past the heartbeat step (5 s), so each report's heartbeat is queued, not only kept in memory.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let progress_path = format!("{MOVIE_PATH}/progress");
    let reports = viewers.iter().zip(&sessions).enumerate().map(|(i, (viewer, session))| {
        let body = json!({ "position_seconds": at(100 + i as u64), "session_id": session, "sequence": 1 });
        viewer.post(&progress_path, body)
    });
    for answer in futures_util::stream::iter(reports).buffer_unordered(32).collect::<Vec<_>>().await {
        assert!(matches!(&answer, Some((200, ack)) if ack["applied"] == true), "{answer:?}");
    }
    killed.signal("-KILL");
    let killed_at = Instant::now();
    assert!(!killed.exit(Duration::from_secs(10)).await.success());

    let users_in = (0..VIEWERS).map(|i| format!("'kill9-{i}'")).collect::<Vec<_>>().join(",");
    let sessions_in = sessions.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",");
    let count = |sql: String| -> usize { psql(&database, &sql).trim().parse().unwrap() };
    let written = || {
        let progress = count(format!(
            "SELECT count(*) FROM watch_progress WHERE user_id IN ({users_in}) \
             AND round(position_seconds * 100)::bigint = 100 + substr(user_id, 7)::bigint"
        ));
        let heartbeats = count(format!(
            "SELECT count(*) FROM stream_sessions WHERE id::text IN ({sessions_in}) \
             AND last_heartbeat_at >= started_at + interval '5 seconds'"
        ));
        let events = count(format!(
            "SELECT count(*) FROM outbox WHERE topic = 'stream.progress' AND payload->>'session_id' IN ({sessions_in})"
        ));
        (progress, heartbeats, events)
    };
    let deadline = killed_at + Duration::from_secs(15);
    let mut last = written();
    while last != (VIEWERS, VIEWERS, VIEWERS) {
        assert!(
            Instant::now() < deadline,
            "after {:?}: (progress, heartbeats, events) written {last:?} of {VIEWERS} each",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = written();
    }
    println!(
        "SIGKILL of one of three instances: {VIEWERS} progress reports, heartbeats and events it acknowledged \
         all written by the others {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
}

/// Two instances behind a client that spreads requests over both (and
/// sends a request the refused connection of a dead instance could not
/// carry to the other, as a load balancer does); one is killed with SIGKILL
/// in the middle of playback and started again. Requests in flight on it
/// go unanswered; nothing it acknowledged is lost: every acknowledged
/// start and stop is in the database with its event, and each viewer's
/// newest acknowledged position is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_instances_killed_under_load_loses_nothing_it_acknowledged() {
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::load::{Load, Phase};

    let (dir, database, users, _stand) = instances_setup().await;
    let shared = shared_redis("instance-fault");
    let survivor = Service::start_with(dir.path(), &database, &users, 1_000, &shared).await;
    let mut victim = Service::start_with(dir.path(), &database, &users, 1_000, &shared).await;
    let addresses = Arc::new([survivor.address.clone(), victim.address.clone()]);

    let viewers: Vec<String> = (0..4).map(|i| format!("instance-fault-{i}")).collect();
    let acknowledged: Arc<Vec<Mutex<Acknowledged>>> = Arc::new(viewers.iter().map(|_| Mutex::default()).collect());
    // The newest position each viewer had acknowledged (thousandths: far
    // from the end of the 16 s demo movie, where it would count as watched).
    let newest: Arc<Vec<AtomicU64>> = Arc::new(viewers.iter().map(|_| AtomicU64::new(0)).collect());
    let tokens: Arc<Vec<String>> = Arc::new(viewers.iter().map(|v| token_for(v)).collect());
    let client = reqwest::Client::new();
    let turn = Arc::new(AtomicU64::new(0));
    let (acks, positions) = (acknowledged.clone(), newest.clone());
    let load = Load::start(viewers.len(), move |i, n| {
        let (client, addresses, tokens, turn) = (client.clone(), addresses.clone(), tokens.clone(), turn.clone());
        let (acks, positions) = (acks.clone(), positions.clone());
        async move {
            // One request: to the next instance, or the other if this one refuses the connection.
            let send = |path: String, body: Value| {
                let (client, addresses, token) = (client.clone(), addresses.clone(), tokens[i].clone());
                let first = turn.fetch_add(1, Ordering::Relaxed) as usize % 2;
                async move {
                    for attempt in [first, 1 - first] {
                        let request = client.post(format!("{}{path}", addresses[attempt])).bearer_auth(&token);
                        match request.json(&body).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                return (status, response.json::<Value>().await.unwrap_or(Value::Null));
                            }
                            Err(error) if error.is_connect() => continue,
                            Err(_) => return (0, Value::Null),
                        }
                    }
                    (0, Value::Null)
                }
            };
            // Rounds of start, two reports, stop; positions grow with every request.
            let position = n * 4;
            let (status, started) = send(MOVIE_PATH.to_owned(), json!({})).await;
            if status != 200 {
                return status;
            }
            let session = started["session_id"].as_str().unwrap().to_owned();
            acks[i].lock().unwrap().started.push(session.clone());
            for sequence in 1..=2 {
                let body = json!({ "position_seconds": thousandths(position + sequence), "session_id": session, "sequence": sequence });
                let (status, _) = send(format!("{MOVIE_PATH}/progress"), body).await;
                if status != 200 {
                    return status;
                }
                positions[i].fetch_max(position + sequence, Ordering::Relaxed);
            }
            let body = json!({ "position_seconds": thousandths(position + 3), "session_id": session });
            let (status, _) = send(format!("{MOVIE_PATH}/stop"), body).await;
            if status == 200 {
                acks[i].lock().unwrap().stopped.push((session, position + 3));
                positions[i].fetch_max(position + 3, Ordering::Relaxed);
            }
            status
        }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    load.enter(Phase::During);
    victim.signal("-KILL");
    assert!(!victim.exit(Duration::from_secs(10)).await.success());
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let restarted = Instant::now();
    let _victim = Service::start_with(dir.path(), &database, &users, 1_000, &shared).await;
    let recovery = restarted.elapsed();
    load.enter(Phase::After);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let outcomes = load.finish().await;

    // What was acknowledged, looked for once the held writes of the killed
    // instance had time to be written (`redis.rescue_after_ms`, 5 s).
    let acknowledged: Vec<Acknowledged> = acknowledged.iter().map(|a| a.lock().unwrap().clone()).collect();
    let count = |sql: String| -> u64 { psql(&database, &sql).trim().parse().unwrap() };
    let quoted = |sessions: Vec<&String>| sessions.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",");
    let started = quoted(acknowledged.iter().flat_map(|a| &a.started).collect());
    let stopped = quoted(acknowledged.iter().flat_map(|a| a.stopped.iter().map(|(s, _)| s)).collect());
    let (starts, stops) = (
        acknowledged.iter().map(|a| a.started.len() as u64).sum::<u64>(),
        acknowledged.iter().map(|a| a.stopped.len() as u64).sum::<u64>(),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let (writes_lost, events_lost) = loop {
        let sessions = count(format!("SELECT count(*) FROM stream_sessions WHERE id::text IN ({started})"));
        let closed = count(format!(
            "SELECT count(*) FROM stream_sessions WHERE ended_at IS NOT NULL AND id::text IN ({stopped})"
        ));
        let mut positions_lost = 0;
        for (viewer, newest) in viewers.iter().zip(newest.iter()) {
            let sql =
                format!("SELECT round(position_seconds * 1000)::bigint FROM watch_progress WHERE user_id = '{viewer}'");
            let stored: u64 = psql(&database, &sql).trim().parse().unwrap_or(0);
            positions_lost += u64::from(stored < newest.load(Ordering::Relaxed));
        }
        let events = |topic: &str, sessions: &str| {
            count(format!(
                "SELECT count(*) FROM outbox WHERE topic = '{topic}' AND payload->>'session_id' IN ({sessions})"
            ))
        };
        let writes_lost = (starts - sessions) + (stops - closed) + positions_lost;
        let events_lost = (starts - events("stream.start", &started)) + (stops - events("stream.stop", &stopped));
        if writes_lost + events_lost == 0 || Instant::now() > deadline {
            break (writes_lost, events_lost);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "one of two instances killed: {} rounds; {}; {starts} starts and {stops} stops acknowledged",
        outcomes.total(),
        outcomes.summary()
    );
    outcomes.report_recovered_in(
        "one of two service instances (SIGKILL)",
        Some(writes_lost),
        Some(events_lost),
        recovery,
    );
    assert_eq!((writes_lost, events_lost), (0, 0), "acknowledged writes and events lost");
    assert_eq!(outcomes.server_errors(), 0, "{}", outcomes.summary());
    assert!(outcomes.of(Phase::During, 200) > 0 && outcomes.of(Phase::After, 200) > 0, "{}", outcomes.summary());
}

/// PostgreSQL killed; one of two instances acknowledges a progress report
/// from each of 50 viewers while it is down (they wait in its queues and
/// are held in Redis) and is killed too; PostgreSQL comes back: the other
/// instance writes every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_acknowledged_during_a_database_outage_survive_the_instance() {
    const VIEWERS: usize = 50;
    let server = streaming_postgres::testing::OwnPostgres::start(&infra_var("STREAMGATE_POSTGRES_BIN"));
    let (dir, _, users, _stand) = instances_setup().await;
    let database = server.url();
    let mut settings = shared_redis("outage-kill").to_vec();
    settings.push(("STREAMING__POSTGRES__BREAKER_COOL_DOWN_MS", "500".to_owned()));
    let mut killed = Service::start_with(dir.path(), &database, &users, 1_000, &settings).await;
    let _survivor = Service::start_with(dir.path(), &database, &users, 1_000, &settings).await;

    let client = reqwest::Client::new();
    let viewers: Vec<Viewer> =
        (0..VIEWERS).map(|i| Viewer::with_client(client.clone(), &killed.address, &format!("outage-{i}"))).collect();
    let mut sessions = Vec::new();
    for viewer in &viewers {
        let Some((200, started)) = viewer.post(MOVIE_PATH, json!({})).await else { panic!("start refused") };
        sessions.push(started["session_id"].as_str().unwrap().to_owned());
    }
    server.kill();
    let progress_path = format!("{MOVIE_PATH}/progress");
    for (i, (viewer, session)) in viewers.iter().zip(&sessions).enumerate() {
        let body = json!({ "position_seconds": at(100 + i as u64), "session_id": session, "sequence": 1 });
        let answer = viewer.post(&progress_path, body).await;
        assert!(matches!(&answer, Some((200, ack)) if ack["applied"] == true), "with the database down: {answer:?}");
    }
    killed.signal("-KILL");
    assert!(!killed.exit(Duration::from_secs(10)).await.success());
    server.resume();
    let back = Instant::now();

    let written = || -> usize {
        let sql = "SELECT count(*) FROM watch_progress WHERE user_id LIKE 'outage-%' \
             AND round(position_seconds * 100)::bigint = 100 + substr(user_id, 8)::bigint";
        psql(&database, sql).trim().parse().unwrap_or(0)
    };
    let deadline = back + Duration::from_secs(20);
    let mut stored = written();
    while stored < VIEWERS {
        assert!(
            Instant::now() < deadline,
            "{stored} of {VIEWERS} reports written {:?} after the database came back",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        stored = written();
    }
    println!(
        "{VIEWERS} reports acknowledged while the database was down, by an instance then killed: all written {:.1} s after the database came back",
        back.elapsed().as_secs_f64()
    );
}
