//! The HTTP load harness behind `cargo xtask bench` and `cargo xtask load`.
//!
//! It builds the release binary and the `ceiling` example, then drives each
//! path with `wrk` (one thread, loopback, bounded time): first on the
//! embedded defaults, then on the real infrastructure of `infra up`
//! (PostgreSQL, Redis, the S3 server, the Kafka-protocol broker). In the same
//! run it measures the ceilings (the bare framework, `redis-benchmark`,
//! `pgbench`), the memory, the scaling with workers, and what 10 000 viewers
//! reporting every 10 s cost Redis and PostgreSQL. The report is printed,
//! written to `target/load/report.md`, and put into `docs/benchmarks.md`
//! between its generated-section markers.

mod ceilings;
mod cpu;
mod http;
mod report;
mod server;
mod wrk;

pub use server::GLIBC_TUNABLES;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{infra, tools};
use server::Server;
use wrk::{Figures, Requests};

/// A public movie of two hours, inserted on PostgreSQL (its manifests are
/// the demo movie's), so any viewer may start it and report progress.
const BENCH_MOVIE: &str = "b0000000-0000-4000-8000-00000000000b";
const DEMO_MOVIE: &str = "5eed0000-0000-4000-8000-000000000001";
const DEMO_TRAILER: &str = "5eed0000-0000-4000-8000-000000000002";
const DEMO_USER: &str = "01JG0DEM0VSER00000000000A1";
const DEMO_TRACK: &str = "01JG0DEM0TRACK000000000001";
/// Public tracks inserted on PostgreSQL for the cache-miss path.
const BENCH_TRACKS: u32 = 200;
/// Viewers of the cache-miss path: with `BENCH_TRACKS`, 200 000 distinct
/// (viewer, track) pairs, more than a run sends, so every request misses.
const MISS_VIEWERS: u32 = 1_000;

/// What the harness was asked to do.
pub struct Options {
    pub duration: Duration,
    pub connections: u32,
    pub viewers: u32,
    /// Run the criterion benchmarks first (`cargo xtask bench`).
    pub criterion: bool,
    /// Only this setup (`embedded` or `real`); the report is then printed
    /// and saved under `target/load/` but not written into the docs.
    pub setup: Option<String>,
}

impl Options {
    pub fn parse(args: &[String], criterion: bool) -> Result<Self, String> {
        let mut options =
            Self { duration: Duration::from_secs(10), connections: 64, viewers: 10_000, criterion, setup: None };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> Result<u64, String> {
                let value = args.next().ok_or(format!("{name} needs a number"))?;
                value.parse().map_err(|_| format!("{name}: {value:?} is not a number"))
            };
            if arg == "--setup" {
                match args.next().map(String::as_str) {
                    Some(setup @ ("embedded" | "real")) => options.setup = Some(setup.to_owned()),
                    other => return Err(format!("--setup needs embedded or real, not {other:?}")),
                }
                continue;
            }
            match arg.as_str() {
                "--duration" => options.duration = Duration::from_secs(value("--duration")?.max(1)),
                "--connections" => options.connections = u32::try_from(value("--connections")?.max(1)).unwrap_or(64),
                "--viewers" => options.viewers = u32::try_from(value("--viewers")?.max(1)).unwrap_or(10_000),
                "--no-criterion" => options.criterion = false,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

/// One path measured on one setup.
pub struct Measured {
    pub setup: &'static str,
    pub path: &'static str,
    pub figures: Figures,
    /// Which ceiling it is compared with, and that ceiling's throughput.
    pub ceiling: Option<(&'static str, f64)>,
    /// The throughput target and p99 bound, where it sets one.
    pub target: Option<(f64, Option<u64>)>,
    pub note: String,
}

/// Memory of one server: idle after start, and the most under load.
pub struct Memory {
    pub setup: &'static str,
    pub idle_kib: u64,
    pub peak_kib: u64,
}

/// Everything one run measured.
#[derive(Default)]
pub struct Results {
    pub paths: Vec<Measured>,
    pub memory: Vec<Memory>,
    pub framework: Option<(usize, Figures)>,
    pub redis: Vec<(String, f64)>,
    pub pgbench_tps: Option<f64>,
    pub workers: Vec<(usize, Figures)>,
    /// Embedded cache hit and bare framework, req/s, measured in turns.
    pub alternated: Vec<(f64, f64)>,
    pub viewers: Vec<String>,
}

/// Runs every measurement and writes the report.
pub fn run(root: &Path, options: &Options, command_line: &str) -> Result<(), String> {
    tools::ensure_debian_packages(&[
        ("wrk", "wrk"),
        ("psql", "postgresql-client"),
        ("redis-benchmark", "redis-tools"),
    ])?;
    crate::steps::run(
        "release build",
        &mut crate::cargo(
            root,
            &["build", "--release", "-p", "streaming-api", "--bin", "streaming-api", "--example", "ceiling"],
        ),
    )?;
    let dir = root.join("target").join("load");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let mut results = Results::default();
    let wants = |setup: &str| options.setup.as_deref().is_none_or(|only| only == setup);
    if wants("embedded") {
        embedded(root, &dir, options, &mut results)?;
    }
    if wants("real") {
        println!("==> infrastructure");
        let env = infra::up(root)?;
        let real = real_infrastructure(root, &dir, options, &env, &mut results);
        infra::down(root)?;
        real?;
    }

    let text = report::render(options, command_line, &results);
    print!("{text}");
    fs::write(dir.join("report.md"), &text).map_err(|e| e.to_string())?;
    if options.setup.is_some() {
        println!("==> one setup only: docs/benchmarks.md left as it is");
        return Ok(());
    }
    report::into_docs(&root.join("docs").join("benchmarks.md"), &text)
}

/// The release binary's settings shared by every setup: rate limiting stays
/// on (every request is checked) with a limit no run reaches.
fn base_settings() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("STREAMING__RATE_LIMIT__STREAM_URL_PER_MINUTE".to_owned(), "1000000000".to_owned()),
        ("STREAMING__RATE_LIMIT__STREAM_START_PER_MINUTE".to_owned(), "0".to_owned()),
        ("STREAMING__RATE_LIMIT__MANIFEST_PER_MINUTE".to_owned(), "0".to_owned()),
    ])
}

/// The embedded servers: demo mode asked for (a token secret is set, which
/// alone would keep it off).
fn embedded_settings() -> BTreeMap<String, String> {
    with(base_settings(), &[("STREAMING__DEMO__ENABLED", "true")])
}

fn with(mut settings: BTreeMap<String, String>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    settings
}

fn embedded(root: &Path, dir: &Path, options: &Options, results: &mut Results) -> Result<(), String> {
    const SETUP: &str = "embedded";
    let server = Server::start(root, dir, "embedded", &embedded_settings())?;
    let idle = server.rss_kib();
    let token = server.mint_tokens(&[DEMO_USER.to_owned()])?.remove(0);
    let track = format!("/tracks/{DEMO_TRACK}/stream");
    let body_bytes = server.post_ok(&track, &token, "")?.len();

    let hit = cache_path(&server, dir, options, &track, &token)?;
    let bare = ceilings::Framework::start(root, body_bytes)?;
    results.framework = Some((body_bytes, bare.measure(dir, options, options.duration)?));
    results.alternated = alternated(&bare, &server, dir, options, (&track, &token))?;
    drop(bare); // stopped before the next paths run
    let framework = results.framework.as_ref().map(|(_, f)| ("bare actix-web", f.requests_per_second));
    results.paths.push(Measured {
        setup: SETUP,
        path: "track URL, cache hit",
        ceiling: framework,
        target: Some((30_000.0, Some(5_000))),
        note: hit.1,
        figures: hit.0,
    });

    let (figures, _, _) = video_starts(&server, dir, options, "embedded")?;
    results.paths.push(Measured {
        setup: SETUP,
        path: "video start",
        figures,
        ceiling: framework,
        target: None,
        note: format!("public trailer, {} viewers round-robin, a new session each", options.viewers),
    });

    let single = write_lines(dir, "embedded-demo-token", std::slice::from_ref(&token))?;
    let figures = measure(
        &server,
        dir,
        options,
        &Requests::Progress { tokens: &single, movie: DEMO_MOVIE, sessions: None, fixed_position: true },
    )?;
    results.paths.push(Measured {
        setup: SETUP,
        path: "progress update",
        figures,
        ceiling: framework,
        target: Some((20_000.0, None)),
        note: "the demo user, memory stores".into(),
    });

    let figures = manifest(&server, dir, options, DEMO_MOVIE, &token)?;
    results.paths.push(Measured {
        setup: SETUP,
        path: "manifest (HLS playlist, signed segment URLs)",
        figures,
        ceiling: framework,
        target: None,
        note: "the demo movie's playlist through its grant".into(),
    });
    results.memory.push(Memory { setup: "embedded", idle_kib: idle, peak_kib: server.peak_rss_kib() });
    server.stop()?;

    // Every request a miss: no URL cache, so each one presigns and seals.
    let server = Server::start(
        root,
        dir,
        "embedded-uncached",
        &with(embedded_settings(), &[("STREAMING__CACHE__KIND", "off")]),
    )?;
    let figures = measure(
        &server,
        dir,
        options,
        &Requests::Fixed { method: "POST", path: &track, token: Some(&token), body: None },
    )?;
    results.paths.push(Measured {
        setup: SETUP,
        path: "track URL, cache miss (sign each time)",
        figures,
        ceiling: framework,
        target: Some((10_000.0, None)),
        note: "`cache.kind = \"off\"`: every request signs a new URL (localfs HMAC) and seals the entry".into(),
    });
    server.stop()?;

    // Scaling with workers: the cache-hit path on one worker.
    let server = Server::start(
        root,
        dir,
        "embedded-one-worker",
        &with(embedded_settings(), &[("STREAMING__SERVER__WORKERS", "1")]),
    )?;
    let (one, _) = cache_path(&server, dir, options, &track, &token)?;
    server.stop()?;
    results.workers = vec![(1, one), (2, results.paths[0].figures.clone())];
    Ok(())
}

/// Rounds of the alternated comparison.
const ALTERNATED_ROUNDS: usize = 3;

/// The cache-hit path and the bare framework in turns, half the run time
/// each, [`ALTERNATED_ROUNDS`] times: this VM's throughput drifts by more
/// than the difference being measured between two runs minutes apart,
/// while two runs seconds apart share most of the drift.
fn alternated(
    framework: &ceilings::Framework,
    server: &Server,
    dir: &Path,
    options: &Options,
    (path, token): (&str, &str),
) -> Result<Vec<(f64, f64)>, String> {
    let half = (options.duration / 2).max(Duration::from_secs(1));
    let requests = Requests::Fixed { method: "POST", path, token: Some(token), body: None };
    let mut rounds = Vec::with_capacity(ALTERNATED_ROUNDS);
    for round in 1..=ALTERNATED_ROUNDS {
        let ours = wrk::run(dir, server.port, &requests, options.connections, half, None)?;
        if ours.errors > 0 {
            return Err(format!("{} of {} cache-hit requests failed in round {round}", ours.errors, ours.requests));
        }
        let bare = framework.measure(dir, options, half)?;
        println!(
            "==> alternated round {round}: cache hit {:.0} req/s, bare framework {:.0} req/s",
            ours.requests_per_second, bare.requests_per_second
        );
        rounds.push((ours.requests_per_second, bare.requests_per_second));
    }
    Ok(rounds)
}

/// The cache-hit path: warm the entry, run, and check from the server's
/// own counters that the run was served from the cache.
fn cache_path(
    server: &Server,
    dir: &Path,
    options: &Options,
    path: &str,
    token: &str,
) -> Result<(Figures, String), String> {
    server.post_ok(path, token, "")?;
    let hits_before = server.counter("stream_url_cache_hits_total")?;
    let misses_before = server.counter("stream_url_cache_misses_total")?;
    let figures =
        measure(server, dir, options, &Requests::Fixed { method: "POST", path, token: Some(token), body: None })?;
    let hits = server.counter("stream_url_cache_hits_total")? - hits_before;
    let misses = server.counter("stream_url_cache_misses_total")? - misses_before;
    let share = if hits + misses > 0.0 { 100.0 * hits / (hits + misses) } else { 0.0 };
    Ok((figures, format!("one user, one track; {share:.2} % of {:.0} answers were cache hits", hits + misses)))
}

/// A run with `wrk` whose result counts only without errors.
fn measure(server: &Server, dir: &Path, options: &Options, requests: &Requests<'_>) -> Result<Figures, String> {
    println!("==> wrk {} s, {} connections", options.duration.as_secs(), options.connections);
    let figures = wrk::run(dir, server.port, requests, options.connections, options.duration, None)?;
    println!(
        "    {:.0} req/s, p99 {} µs; CPU cores: {}; resident {:.1} MB (peak so far {:.1} MB)",
        figures.requests_per_second,
        figures.p99_us,
        cpu::describe(&figures.cpu),
        server.rss_kib() as f64 / 1024.0,
        server.peak_rss_kib() as f64 / 1024.0,
    );
    if figures.errors > 0 {
        return Err(format!(
            "{} of {} requests failed; a run with errors is not a result",
            figures.errors, figures.requests
        ));
    }
    Ok(figures)
}

/// `movie`'s playlist, fetched through the grant of a session the holder of
/// `token` starts first.
fn manifest(server: &Server, dir: &Path, options: &Options, movie: &str, token: &str) -> Result<Figures, String> {
    let started = server.post_ok(&format!("/api/v1/stream/{movie}"), token, "{}")?;
    let url = json_string(&started, "manifest_url").ok_or("no manifest_url in the start answer")?;
    let path = &url[url.find("/api/").ok_or("the manifest URL has no /api/ path")?..];
    measure(server, dir, options, &Requests::Fixed { method: "GET", path, token: None, body: None })
}

/// `--viewers` viewers starting the public trailer round-robin, each start a
/// new session; the viewers' tokens and the file that holds them.
fn video_starts(
    server: &Server,
    dir: &Path,
    options: &Options,
    name: &str,
) -> Result<(Figures, Vec<String>, PathBuf), String> {
    let viewers: Vec<String> = (0..options.viewers).map(|i| format!("load-viewer-{i:06}")).collect();
    let tokens = server.mint_tokens(&viewers)?;
    let tokens_file = write_lines(dir, &format!("{name}-tokens"), &tokens)?;
    let starts = write_lines(dir, &format!("{name}-start-paths"), &[format!("/api/v1/stream/{DEMO_TRAILER}")])?;
    let figures = measure(server, dir, options, &Requests::Pairs { tokens: &tokens_file, paths: &starts, body: "{}" })?;
    Ok((figures, tokens, tokens_file))
}

/// Past sessions of the viewer of "video start, one viewer with history".
const PAST_SESSIONS: u32 = 100_000;

/// One viewer starting the public trailer on every connection: first a new
/// viewer, then one with [`PAST_SESSIONS`] sessions nobody stopped, once the
/// server's sweeper has closed them.
fn one_viewer_starts(server: &Server, dir: &Path, options: &Options, pg_url: &str) -> Result<[Figures; 2], String> {
    let viewers = ["solo-viewer-new".to_owned(), "solo-viewer-history".to_owned()];
    let tokens = server.mint_tokens(&viewers)?;
    let path = format!("/api/v1/stream/{DEMO_TRAILER}");
    let starts = |token: &str| {
        measure(
            server,
            dir,
            options,
            &Requests::Fixed { method: "POST", path: &path, token: Some(token), body: Some("{}") },
        )
    };
    let new = starts(&tokens[0])?;
    let veteran = &viewers[1];
    psql(
        pg_url,
        &format!(
            "INSERT INTO stream_sessions (id, user_id, movie_id, manifest_type, started_at, last_heartbeat_at) \
             SELECT gen_random_uuid(), '{veteran}', '{DEMO_TRAILER}', 'hls', t, t \
             FROM (SELECT now() - interval '100 days' + n * interval '1 minute' AS t \
                   FROM generate_series(1, {PAST_SESSIONS}) AS n) AS past"
        ),
    )?;
    println!("==> waiting for the sweeper to close {PAST_SESSIONS} past sessions");
    let open = format!("SELECT count(*) FROM stream_sessions WHERE user_id = '{veteran}' AND ended_at IS NULL");
    let waited = Instant::now();
    while psql(pg_url, &open)?.trim() != "0" {
        if waited.elapsed() > Duration::from_secs(120) {
            return Err("the sweeper did not close the past sessions within 2 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("    closed after {:.1} s", waited.elapsed().as_secs_f64());
    // Their stop events go to the broker first: the run measures starts, not the relay.
    let relayed = Instant::now();
    while psql(pg_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL")?.trim() != "0" {
        if relayed.elapsed() > Duration::from_secs(120) {
            return Err("the relay did not publish the stop events within 2 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("    their stop events relayed after {:.1} s more", relayed.elapsed().as_secs_f64());
    Ok([new, starts(&tokens[1])?])
}

fn real_infrastructure(
    root: &Path,
    dir: &Path,
    options: &Options,
    env: &BTreeMap<String, String>,
    results: &mut Results,
) -> Result<(), String> {
    const SETUP: &str = "real infrastructure";
    let get = |key: &str| env.get(key).cloned().ok_or(format!("infra up gave no {key}"));
    let admin_url = get("STREAMGATE_POSTGRES_URL")?;
    let url = admin_url.rsplit_once('/').map(|(base, _)| format!("{base}/streamgate_load")).ok_or("bad URL")?;
    psql(&admin_url, "DROP DATABASE IF EXISTS streamgate_load")?;
    psql(&admin_url, "CREATE DATABASE streamgate_load")?;
    let redis_url = get("STREAMGATE_REDIS_URL")?;
    let settings = with(
        base_settings(),
        &[
            ("STREAMING__POSTGRES__URL", &url),
            ("STREAMING__POSTGRES__MIGRATE_ON_START", "true"),
            ("STREAMING__REDIS__URL", &redis_url),
            ("STREAMING__CACHE__KIND", "redis"),
            ("STREAMING__STORAGE__KIND", "s3"),
            ("STREAMING__STORAGE__S3__ENDPOINT", &get("STREAMGATE_S3_ENDPOINT")?),
            ("STREAMING__STORAGE__S3__ACCESS_KEY", &get("STREAMGATE_S3_ACCESS_KEY")?),
            ("STREAMING__STORAGE__S3__SECRET_KEY", &get("STREAMGATE_S3_SECRET_KEY")?),
            ("STREAMING__STORAGE__S3__BUCKET", &get("STREAMGATE_S3_BUCKET")?),
            ("STREAMING__KAFKA__ENABLED", "true"),
            ("STREAMING__KAFKA__BROKERS", &get("STREAMGATE_KAFKA_BROKERS")?),
            ("STREAMING__KAFKA__CONSUME_FROM", "latest"),
        ],
    );
    // Demo mode stays off beside real stores; the demo media are written first.
    Server::seed_demo(root, dir, "real", &settings)?;
    let server = Server::start(root, dir, "real", &settings)?;
    let idle = server.rss_kib();
    psql(
        &url,
        &format!(
            "INSERT INTO media (id, kind, status, object_key, content_type, size_bytes, duration_seconds, visibility) \
             VALUES ('{BENCH_MOVIE}', 'movie', 'ready', 'movies/{DEMO_MOVIE}', 'application/vnd.apple.mpegurl', 0, \
             7200, 'public'); \
             INSERT INTO media (id, kind, status, object_key, content_type, size_bytes, duration_seconds, visibility) \
             SELECT '01JG0BENCHTRACK' || lpad(n::text, 11, '0'), 'track', 'ready', 'tracks/{DEMO_TRACK}.wav', \
             'audio/wav', 220544, 5, 'public' FROM generate_series(1, {BENCH_TRACKS}) AS n"
        ),
    )?;
    let token = server.mint_tokens(&[DEMO_USER.to_owned()])?.remove(0);
    let track = format!("/tracks/{DEMO_TRACK}/stream");
    let (hit, note) = cache_path(&server, dir, options, &track, &token)?;
    let framework = results.framework.as_ref().map(|(_, f)| ("bare actix-web", f.requests_per_second));
    results.paths.push(Measured {
        setup: SETUP,
        path: "track URL, cache hit",
        figures: hit,
        ceiling: framework,
        target: Some((30_000.0, Some(5_000))),
        note: format!("{note}; Redis behind the in-process level, rate limit in Redis"),
    });

    let miss_viewers: Vec<String> = (0..MISS_VIEWERS).map(|i| format!("miss-viewer-{i:05}")).collect();
    let miss_tokens = write_lines(dir, "miss-tokens", &server.mint_tokens(&miss_viewers)?)?;
    let track_paths: Vec<String> =
        (1..=BENCH_TRACKS).map(|n| format!("/tracks/01JG0BENCHTRACK{n:011}/stream")).collect();
    let miss_paths = write_lines(dir, "miss-paths", &track_paths)?;
    let hits_before = server.counter("stream_url_cache_hits_total")?;
    let figures =
        measure(&server, dir, options, &Requests::Pairs { tokens: &miss_tokens, paths: &miss_paths, body: "" })?;
    let hits = server.counter("stream_url_cache_hits_total")? - hits_before;
    results.paths.push(Measured {
        setup: SETUP,
        path: "track URL, cache miss (sign each time)",
        figures,
        ceiling: framework,
        target: Some((10_000.0, None)),
        note: format!(
            "{MISS_VIEWERS} viewers × {BENCH_TRACKS} public tracks in order, no pair twice ({hits:.0} cache hits): \
             Redis read, SigV4 presign, seal, Redis write"
        ),
    });

    let (figures, tokens, tokens_file) = video_starts(&server, dir, options, "real")?;
    results.paths.push(Measured {
        setup: SETUP,
        path: "video start",
        figures,
        ceiling: framework,
        target: None,
        note: format!(
            "public trailer, {} viewers round-robin: S3 HEAD of the manifest, session row and outbox event \
             committed in PostgreSQL before the answer",
            options.viewers
        ),
    });

    println!("==> starting {} sessions", tokens.len());
    let mut sessions = Vec::with_capacity(tokens.len());
    for token in &tokens {
        let body = server.post_ok(&format!("/api/v1/stream/{BENCH_MOVIE}"), token, "{}")?;
        sessions.push(json_string(&body, "session_id").ok_or("no session_id in the start answer")?);
    }
    let sessions_file = write_lines(dir, "real-sessions", &sessions)?;
    results.pgbench_tps =
        Some(ceilings::postgres(&get("STREAMGATE_POSTGRES_BIN")?, &url, dir, options.duration, BENCH_MOVIE)?);
    let progress = Requests::Progress {
        tokens: &tokens_file,
        movie: BENCH_MOVIE,
        sessions: Some(&sessions_file),
        fixed_position: false,
    };
    let before = table_writes(&url)?;
    let started = Instant::now();
    let figures = measure(&server, dir, options, &progress)?;
    let elapsed = started.elapsed();
    // The write-behind queue drains within a flush interval or two.
    std::thread::sleep(Duration::from_secs(2));
    let after = table_writes(&url)?;
    let written: Vec<String> = rows_written(&before, &after)
        .into_iter()
        .map(|(table, rows)| {
            format!(
                "`{table}` {rows} rows ({:.2} per viewer per second)",
                rows as f64 / f64::from(options.viewers) / (elapsed.as_secs_f64() + 2.0)
            )
        })
        .collect();
    results.paths.push(Measured {
        setup: SETUP,
        path: "progress update",
        figures,
        ceiling: results.pgbench_tps.map(|tps| ("pgbench single-row upsert", tps)),
        target: Some((20_000.0, None)),
        note: format!(
            "{} viewers with sessions round-robin, Redis hot copy, PostgreSQL write-behind; written during the run: {}",
            options.viewers,
            written.join(", ")
        ),
    });

    let figures = manifest(&server, dir, options, BENCH_MOVIE, &token)?;
    results.paths.push(Measured {
        setup: SETUP,
        path: "manifest (HLS playlist, signed segment URLs)",
        figures,
        ceiling: framework,
        target: None,
        note: "the public bench movie (the demo movie's files) from S3 through its grant, segment URLs presigned"
            .into(),
    });

    results.viewers = paced_viewers(&server, dir, options, &progress, &url, &redis_url)?;
    // Last: the sweep of the history and the relay of its stop events must not
    // fall into the other paths' runs.
    let [new, history] = one_viewer_starts(&server, dir, options, &url)?;
    for (path, figures, note) in [
        ("video start, one viewer", new, "one new viewer starting the public trailer on every connection".to_owned()),
        (
            "video start, one viewer with history",
            history,
            format!(
                "one viewer with {PAST_SESSIONS} past sessions (never stopped, as the cinema service leaves them; \
                 closed by the sweeper before the run) starting the public trailer"
            ),
        ),
    ] {
        results.paths.push(Measured { setup: SETUP, path, figures, ceiling: framework, target: None, note });
    }
    results.memory.push(Memory { setup: "real infrastructure", idle_kib: idle, peak_kib: server.peak_rss_kib() });
    server.stop()?;
    results.redis = ceilings::redis(&redis_url, 200_000)?;
    Ok(())
}

/// 10 000 viewers (or `--viewers`) reporting once every 10 s: what Redis and
/// PostgreSQL carry, counted on their side.
fn paced_viewers(
    server: &Server,
    dir: &Path,
    options: &Options,
    progress: &Requests<'_>,
    pg_url: &str,
    redis_url: &str,
) -> Result<Vec<String>, String> {
    let rate = f64::from(options.viewers) / 10.0;
    let pace = Duration::from_secs_f64(f64::from(options.connections) / rate);
    let duration = options.duration.max(Duration::from_secs(20));
    println!("==> {} viewers at one report per 10 s ({rate:.0}/s) for {} s", options.viewers, duration.as_secs());
    let redis_before = redis_commands(redis_url)?;
    let pg_before = pg_activity(pg_url)?;
    let rows_before = table_writes(pg_url)?;
    let scans_before = table_scans(pg_url)?;
    let started = Instant::now();
    let figures = wrk::run(dir, server.port, progress, options.connections, duration, Some(pace))?;
    let seconds = started.elapsed().as_secs_f64();
    let redis: Vec<(String, u64)> = redis_commands(redis_url)?
        .into_iter()
        .map(|(command, calls)| {
            let before = redis_before.get(&command).copied().unwrap_or(0);
            (command, calls.saturating_sub(before))
        })
        .filter(|(command, calls)| *calls > 0 && command != "info")
        .collect();
    let redis_total: u64 = redis.iter().map(|(_, calls)| calls).sum();
    let mut by_command = redis.clone();
    by_command.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let by_command: Vec<String> =
        by_command.iter().map(|(command, calls)| format!("`{command}` {:.0}", *calls as f64 / seconds)).collect();
    let (commits, writes) = pg_activity(pg_url)?;
    let rows_after = table_writes(pg_url)?;
    let mut scans: Vec<(String, u64)> =
        rows_written(&scans_before, &table_scans(pg_url)?).into_iter().filter(|(_, n)| *n > 0).collect();
    scans.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let scans: Vec<String> = scans.iter().map(|(table, n)| format!("`{table}` {:.0}", *n as f64 / seconds)).collect();
    let mut lines = vec![
        format!(
            "sent {:.0} reports/s for {seconds:.0} s (p50 {}, p99 {}, {} errors)",
            figures.requests_per_second,
            report::micros(figures.p50_us),
            report::micros(figures.p99_us),
            figures.errors
        ),
        format!("Redis: {:.0} commands/s ({})", redis_total as f64 / seconds, by_command.join(", ")),
        format!(
            "PostgreSQL: {:.1} transactions/s, {:.1} rows written/s over all tables",
            (commits - pg_before.0) as f64 / seconds,
            (writes - pg_before.1) as f64 / seconds
        ),
    ];
    for (table, rows) in rows_written(&rows_before, &rows_after) {
        lines.push(format!("PostgreSQL `{table}`: {:.0} rows written/s", rows as f64 / seconds));
    }
    lines.push(format!(
        "PostgreSQL index and sequential scans/s (reads, and the row lookups of updates): {}",
        scans.join(", ")
    ));
    Ok(lines)
}

/// Calls so far per command, from Redis's `INFO commandstats`.
fn redis_commands(url: &str) -> Result<BTreeMap<String, u64>, String> {
    let (host, port) = redis_address(url)?;
    let text = captured(Command::new("redis-cli").args(["-h", host, "-p", port, "INFO", "commandstats"]), "redis-cli")?;
    // cmdstat_get:calls=12,usec=34,...
    Ok(text
        .lines()
        .filter_map(|line| {
            let (command, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|field| field.strip_prefix("calls="))?.trim().parse().ok()?;
            Some((command.to_owned(), calls))
        })
        .collect())
}

/// Committed transactions of the database and rows it wrote (inserted,
/// updated, deleted), from its statistics.
fn pg_activity(url: &str) -> Result<(u64, u64), String> {
    let text = psql(
        url,
        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database \
         WHERE datname = current_database()",
    )?;
    let (commits, writes) = text.trim().split_once('|').ok_or("no pg_stat_database row")?;
    Ok((commits.parse().map_err(|_| "xact_commit")?, writes.parse().map_err(|_| "tuples")?))
}

/// `(table, rows)` written between two [`table_writes`] readings.
fn rows_written(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    before
        .iter()
        .map(|(table, rows)| (table.clone(), after.get(table).copied().unwrap_or(0).saturating_sub(*rows)))
        .collect()
}

/// `host` and `port` of a plain `redis://host:port` URL.
fn redis_address(url: &str) -> Result<(&str, &str), String> {
    let address = url.strip_prefix("redis://").ok_or(format!("not a plain redis:// URL: {url}"))?;
    address.trim_end_matches('/').rsplit_once(':').ok_or("no port in the Redis URL".into())
}

/// Rows inserted plus updated per table, from PostgreSQL's statistics.
fn table_writes(url: &str) -> Result<BTreeMap<String, u64>, String> {
    // The server's backends report their statistics at most every second.
    std::thread::sleep(Duration::from_millis(1_100));
    table_counts(
        url,
        "SELECT relname, n_tup_ins + n_tup_upd FROM pg_stat_user_tables \
         WHERE relname IN ('watch_progress', 'stream_sessions', 'outbox') ORDER BY relname",
    )
}

/// Index plus sequential scans per table so far, from PostgreSQL's statistics.
fn table_scans(url: &str) -> Result<BTreeMap<String, u64>, String> {
    table_counts(
        url,
        "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables ORDER BY relname",
    )
}

/// `(table, count)` rows of a statistics query.
fn table_counts(url: &str, sql: &str) -> Result<BTreeMap<String, u64>, String> {
    Ok(psql(url, sql)?
        .lines()
        .filter_map(|line| {
            let (table, count) = line.split_once('|')?;
            Some((table.to_owned(), count.trim().parse().ok()?))
        })
        .collect())
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    captured(Command::new("psql").args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]), "psql")
}

/// What `command` printed, if it succeeded; otherwise what it said on stderr.
fn captured(command: &mut Command, name: &str) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{name}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("{name} failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> Result<PathBuf, String> {
    let path = dir.join(name);
    fs::write(&path, lines.join("\n") + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The string value of `"key":"…"` in a flat JSON answer.
fn json_string(body: &str, key: &str) -> Option<String> {
    let start = body.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}
