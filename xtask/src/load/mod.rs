//! The HTTP load harness behind `cargo xtask bench` and `cargo xtask load`.
//!
//! It builds the release binary and the `ceiling` example, then drives each
//! path with `wrk` (one thread, loopback, bounded time) for its maximum,
//! and each real path again at fixed shares of it (`fixed_rate.rs`): first on
//! the embedded defaults, then on the real infrastructure of `infra up`
//! (PostgreSQL, Redis, the S3 server, the Kafka-protocol broker). In the same
//! run it measures the ceilings (the bare framework, `redis-benchmark`,
//! `pgbench`), the memory, the scaling with workers, and what 10 000 viewers
//! reporting every 10 s cost Redis and PostgreSQL. The report is printed,
//! written to `target/load/report.md`, and put into `docs/benchmarks.md`
//! between its generated-section markers.

mod ceilings;
mod cpu;
mod fixed_rate;
mod http;
mod real;
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
/// Viewers of the cache-miss path: with `BENCH_TRACKS`, a million distinct
/// (viewer, track) pairs, more than its runs at full and fixed rates send
/// together, so every request misses.
const MISS_VIEWERS: u32 = 5_000;

/// What the harness was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub connections: u32,
    pub viewers: u32,
    /// Run the criterion benchmarks first (`cargo xtask bench`).
    pub criterion: bool,
    /// Only this setup (`embedded` or `real`); the report is then printed
    /// and saved under `target/load/` but not written into the docs.
    pub setup: Option<String>,
    /// Only these paths of the real setup (`--paths start,progress`; see
    /// [`REAL_PATHS`]); the report is then not written into the docs either.
    pub paths: Option<Vec<String>>,
}

/// The parts of the real setup's run `--paths` can choose.
pub const REAL_PATHS: [&str; 7] = ["hit", "miss", "start", "progress", "manifest", "paced", "solo"];

impl Options {
    /// Whether the run measures `path` (one of [`REAL_PATHS`]).
    pub fn wants(&self, path: &str) -> bool {
        self.paths.as_ref().is_none_or(|paths| paths.iter().any(|p| p == path))
    }
}

impl Options {
    pub fn parse(args: &[String], criterion: bool) -> Result<Self, String> {
        let mut options = Self {
            duration: Duration::from_secs(10),
            connections: 64,
            viewers: 10_000,
            criterion,
            setup: None,
            paths: None,
        };
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
            if arg == "--paths" {
                let list = args.next().ok_or("--paths needs a list, e.g. start,progress")?;
                let paths: Vec<String> = list.split(',').map(str::to_owned).collect();
                if let Some(unknown) = paths.iter().find(|p| !REAL_PATHS.contains(&p.as_str())) {
                    return Err(format!("--paths: {unknown:?} is none of {}", REAL_PATHS.join(", ")));
                }
                options.paths = Some(paths);
                options.setup = Some("real".into());
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
    /// The real setup's paths at fixed shares of their maximum.
    pub fixed_rate: Vec<fixed_rate::AtRate>,
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
        let real = real::real_infrastructure(root, &dir, options, &env, &mut results);
        infra::down(root)?;
        real?;
    }

    let text = report::render(options, command_line, &results);
    print!("{text}");
    fs::write(dir.join("report.md"), &text).map_err(|e| e.to_string())?;
    if options.setup.is_some() {
        println!("==> one setup or some paths only: docs/benchmarks.md left as it is");
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

    // The memory store keeps every open session and refuses a start when
    // full of them (50 000, the embedded mode's bound): the starts run for
    // at most 3 s, on a store emptied first.
    server.stop()?;
    let server = Server::start(root, dir, "embedded", &embedded_settings())?;
    let starts = Options { duration: options.duration.min(Duration::from_secs(STARTS_SECONDS)), ..options.clone() };
    let (figures, _, _) = video_starts(&server, dir, &starts, "embedded")?;
    results.paths.push(Measured {
        setup: SETUP,
        path: "video start",
        figures,
        ceiling: framework,
        target: None,
        note: format!(
            "public trailer, {} viewers round-robin, a new session each, for {} s (the memory store refuses a \
             start when it holds 50 000 open sessions)",
            options.viewers,
            starts.duration.as_secs()
        ),
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

    let (figures, _) = manifest(&server, dir, options, DEMO_MOVIE, &token)?;
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

/// How long embedded starts run: the memory store's 50 000 open sessions
/// hold about four seconds of them.
const STARTS_SECONDS: u64 = 3;

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
/// `token` starts first; the figures and the playlist's path.
fn manifest(
    server: &Server,
    dir: &Path,
    options: &Options,
    movie: &str,
    token: &str,
) -> Result<(Figures, String), String> {
    let started = server.post_ok(&format!("/api/v1/stream/{movie}"), token, "{}")?;
    let url = json_string(&started, "manifest_url").ok_or("no manifest_url in the start answer")?;
    let path = &url[url.find("/api/").ok_or("the manifest URL has no /api/ path")?..];
    let figures = measure(server, dir, options, &Requests::Fixed { method: "GET", path, token: None, body: None })?;
    Ok((figures, path.to_owned()))
}

/// `--viewers` viewers starting the public trailer round-robin, each start a
/// new session; the viewers' tokens and the files of the viewers' tokens
/// and of the start path.
fn video_starts(
    server: &Server,
    dir: &Path,
    options: &Options,
    name: &str,
) -> Result<(Figures, Vec<String>, [PathBuf; 2]), String> {
    let (tokens, tokens_file) = viewer_tokens(server, dir, options, name)?;
    let starts = write_lines(dir, &format!("{name}-start-paths"), &[format!("/api/v1/stream/{DEMO_TRAILER}")])?;
    let figures = measure(server, dir, options, &Requests::Pairs { tokens: &tokens_file, paths: &starts, body: "{}" })?;
    Ok((figures, tokens, [tokens_file, starts]))
}

/// Tokens of `--viewers` viewers, and the file that holds them.
fn viewer_tokens(server: &Server, dir: &Path, options: &Options, name: &str) -> Result<(Vec<String>, PathBuf), String> {
    let viewers: Vec<String> = (0..options.viewers).map(|i| format!("load-viewer-{i:06}")).collect();
    let tokens = server.mint_tokens(&viewers)?;
    let tokens_file = write_lines(dir, &format!("{name}-tokens"), &tokens)?;
    Ok((tokens, tokens_file))
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
