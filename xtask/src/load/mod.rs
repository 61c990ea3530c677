//! `cargo xtask load`: the HTTP load harness. It builds the release binary,
//! starts it on loopback on a given setup (embedded defaults, or PostgreSQL
//! from `infra up`), prepares viewers (tokens minted by `streaming-api
//! token`, sessions started over HTTP), drives it with `wrk` for a bounded
//! time, and reports throughput, latency percentiles, memory and — with
//! PostgreSQL — the rows the database actually wrote.

mod http;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{infra, tools};

const SECRET: &str = "load-harness-secret-0123456789abcdef";
/// A public movie of two hours (its manifests are the demo movie's), so any
/// authenticated viewer may start it and report progress.
const BENCH_MOVIE: &str = "b0000000-0000-4000-8000-00000000000b";
const DEMO_MOVIE: &str = "5eed0000-0000-4000-8000-000000000001";
const DEMO_USER: &str = "01JG0DEM0VSER00000000000A1";

/// What the harness was asked to do.
pub struct Options {
    pub duration: Duration,
    pub connections: u32,
    pub viewers: u32,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self { duration: Duration::from_secs(10), connections: 64, viewers: 10_000 };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> Result<u64, String> {
                let value = args.next().ok_or(format!("{name} needs a number"))?;
                value.parse().map_err(|_| format!("{name}: {value:?} is not a number"))
            };
            match arg.as_str() {
                "--duration" => options.duration = Duration::from_secs(value("--duration")?.max(1)),
                "--connections" => options.connections = u32::try_from(value("--connections")?.max(1)).unwrap_or(64),
                "--viewers" => options.viewers = u32::try_from(value("--viewers")?.max(1)).unwrap_or(10_000),
                other => return Err(format!("load: unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

/// One measured run.
pub struct Measurement {
    pub scenario: String,
    pub requests_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub errors: u64,
    pub idle_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub notes: Vec<String>,
}

/// Runs every scenario and prints the report (also written to `target/load/report.md`).
pub fn run(root: &Path, options: &Options) -> Result<(), String> {
    tools::ensure_debian_packages(&[("wrk", "wrk"), ("psql", "postgresql-client")])?;
    crate::step("release build", &mut crate::cargo(root, &["build", "--release", "-p", "streaming-api"]))?;
    let dir = root.join("target").join("load");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let mut results = vec![progress_embedded(root, &dir, options)?];
    println!("==> infrastructure");
    let env = infra::up(root)?;
    let on_postgres = progress_postgres(root, &dir, options, &env);
    infra::down(root)?;
    results.extend(on_postgres?);

    let report = report(options, &results);
    print!("{report}");
    fs::write(dir.join("report.md"), &report).map_err(|e| e.to_string())?;
    Ok(())
}

fn report(options: &Options, results: &[Measurement]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nwrk: 1 thread, {} connections, {} s per scenario, on the same machine as the server\n",
        options.connections,
        options.duration.as_secs()
    );
    let _ = writeln!(out, "| scenario | req/s | p50 | p99 | p99.9 | errors | RSS idle → peak |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for m in results {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} | {} | {:.1} → {:.1} MB |",
            m.scenario,
            m.requests_per_second,
            micros(m.p50_us),
            micros(m.p99_us),
            micros(m.p999_us),
            m.errors,
            m.idle_rss_kib as f64 / 1024.0,
            m.peak_rss_kib as f64 / 1024.0,
        );
    }
    for m in results {
        for note in &m.notes {
            let _ = writeln!(out, "- {}: {note}", m.scenario);
        }
    }
    out
}

fn micros(us: u64) -> String {
    if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Progress reports of the demo user on the embedded defaults (memory stores).
fn progress_embedded(root: &Path, dir: &Path, options: &Options) -> Result<Measurement, String> {
    let server = Server::start(root, dir, "embedded", &BTreeMap::new())?;
    let tokens = server.mint_tokens(&[DEMO_USER.to_owned()])?;
    let tokens_file = write_lines(dir, "embedded-tokens", &tokens)?;
    // The demo movie is 6 s long: the script's positions stay inside its slack
    // only with a short modulus, so report a fixed position through a tiny script.
    let script = dir.join("progress-fixed.lua");
    fs::write(&script, include_str!("progress.lua").replace("sequence % 3000", "3")).map_err(|e| e.to_string())?;
    let idle = server.rss_kib();
    let mut m = wrk(&server, &script, &[&tokens_file.display().to_string(), DEMO_MOVIE], options)?;
    m.scenario = "progress update, embedded (memory stores), one viewer".into();
    m.idle_rss_kib = idle;
    m.peak_rss_kib = server.peak_rss_kib();
    server.stop()?;
    Ok(m)
}

/// Progress reports of many viewers with sessions, on PostgreSQL with the
/// write-behind flusher; counts the rows PostgreSQL wrote during the load.
fn progress_postgres(
    root: &Path,
    dir: &Path,
    options: &Options,
    env: &BTreeMap<String, String>,
) -> Result<Vec<Measurement>, String> {
    let admin_url = env.get("STREAMGATE_POSTGRES_URL").ok_or("infra up gave no PostgreSQL URL")?;
    let url = admin_url.rsplit_once('/').map(|(base, _)| format!("{base}/streamgate_load")).ok_or("bad URL")?;
    psql(admin_url, "DROP DATABASE IF EXISTS streamgate_load")?;
    psql(admin_url, "CREATE DATABASE streamgate_load")?;
    let settings = BTreeMap::from([
        ("STREAMING__POSTGRES__URL".to_owned(), url.clone()),
        ("STREAMING__POSTGRES__MIGRATE_ON_START".to_owned(), "true".to_owned()),
    ]);
    let server = Server::start(root, dir, "postgres", &settings)?;
    psql(
        &url,
        &format!(
            "INSERT INTO media (id, kind, status, object_key, content_type, size_bytes, duration_seconds, visibility) \
             VALUES ('{BENCH_MOVIE}', 'movie', 'ready', 'movies/{DEMO_MOVIE}', 'application/vnd.apple.mpegurl', 0, \
             7200, 'public')"
        ),
    )?;
    let viewers: Vec<String> = (0..options.viewers).map(|i| format!("load-viewer-{i:06}")).collect();
    let tokens = server.mint_tokens(&viewers)?;
    println!("==> starting {} sessions", tokens.len());
    let mut sessions = Vec::with_capacity(tokens.len());
    for token in &tokens {
        let (status, body) = http::post(server.port, &format!("/api/v1/stream/{BENCH_MOVIE}"), token, "{}")?;
        if status != 200 {
            return Err(format!("starting a session answered {status}: {body}"));
        }
        sessions.push(json_string(&body, "session_id").ok_or("no session_id in the start answer")?);
    }
    let tokens_file = write_lines(dir, "postgres-tokens", &tokens)?;
    let sessions_file = write_lines(dir, "postgres-sessions", &sessions)?;
    let script = dir.join("progress.lua");
    fs::write(&script, include_str!("progress.lua")).map_err(|e| e.to_string())?;

    let before = table_writes(&url)?;
    let idle = server.rss_kib();
    let started = Instant::now();
    let args = [tokens_file.display().to_string(), BENCH_MOVIE.to_owned(), sessions_file.display().to_string()];
    let mut m = wrk(&server, &script, &args.iter().map(String::as_str).collect::<Vec<_>>(), options)?;
    let peak = server.peak_rss_kib();
    // Stopping drains the write-behind queue, and the server's backends
    // exit, which flushes their statistics.
    server.stop()?;
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let after = table_writes(&url)?;
    m.scenario = format!("progress update with session, PostgreSQL write-behind, {} viewers", options.viewers);
    m.idle_rss_kib = idle;
    m.peak_rss_kib = peak;
    let flushes = elapsed.as_secs_f64().ceil();
    for (table, rows_before) in &before {
        let written = after.get(table).copied().unwrap_or(0).saturating_sub(*rows_before);
        m.notes.push(format!(
            "`{table}`: {written} rows written during {:.1} s of load and the drain = {:.2} per viewer per second",
            elapsed.as_secs_f64(),
            written as f64 / f64::from(options.viewers) / flushes
        ));
    }
    Ok(vec![m])
}

/// Rows inserted plus updated per table, from PostgreSQL's statistics.
fn table_writes(url: &str) -> Result<BTreeMap<String, u64>, String> {
    let text = psql(
        url,
        "SELECT relname, n_tup_ins + n_tup_upd FROM pg_stat_user_tables \
         WHERE relname IN ('watch_progress', 'stream_sessions', 'outbox') ORDER BY relname",
    )?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (table, count) = line.split_once('|')?;
            Some((table.to_owned(), count.trim().parse().ok()?))
        })
        .collect())
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("psql failed: {}", String::from_utf8_lossy(&output.stderr)))
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

fn wrk(server: &Server, script: &Path, args: &[&str], options: &Options) -> Result<Measurement, String> {
    println!("==> wrk {} s, {} connections", options.duration.as_secs(), options.connections);
    let output = Command::new("wrk")
        .args(["-t1", "-c", &options.connections.to_string(), "-d", &format!("{}s", options.duration.as_secs())])
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", server.port))
        .arg("--")
        .args(args)
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    let field = |line_start: &str, key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(line_start))?;
        let value = line.split_whitespace().find_map(|w| w.strip_prefix(key))?;
        value.parse().ok()
    };
    let requests_per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no throughput in wrk's output:\n{text}"))?;
    let errors = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
        + text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("Socket errors:"))
            .map_or(0, |v| v.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum());
    Ok(Measurement {
        scenario: String::new(),
        requests_per_second,
        p50_us: field("streamgate-latency-us", "p50=").unwrap_or(0),
        p99_us: field("streamgate-latency-us", "p99=").unwrap_or(0),
        p999_us: field("streamgate-latency-us", "p999=").unwrap_or(0),
        errors,
        idle_rss_kib: 0,
        peak_rss_kib: 0,
        notes: Vec::new(),
    })
}

/// The release binary, running on loopback for one setup.
struct Server {
    child: Child,
    port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl Server {
    fn start(root: &Path, dir: &Path, name: &str, settings: &BTreeMap<String, String>) -> Result<Self, String> {
        let binary = root.join("target").join("release").join("streaming-api");
        let port = infra::free_port()?;
        let data = dir.join(name);
        let mut env = vec![
            ("STREAMING__SERVER__PORT".to_owned(), port.to_string()),
            ("STREAMING__AUTH__SECRET".to_owned(), SECRET.to_owned()),
            ("STREAMING__STORAGE__ROOT".to_owned(), data.join("objects").display().to_string()),
            ("STREAMING__EVENTS__PATH".to_owned(), data.join("events.jsonl").display().to_string()),
        ];
        env.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        let log = fs::File::create(dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let server = Self { child, port, binary, env };
        infra::wait_for_port("streaming-api", port, Duration::from_secs(30))
            .map_err(|e| format!("{e} (see target/load/{name}.log)"))?;
        Ok(server)
    }

    /// Tokens for `subjects`, minted by the binary itself with the same settings.
    fn mint_tokens(&self, subjects: &[String]) -> Result<Vec<String>, String> {
        let mut tokens = Vec::with_capacity(subjects.len());
        for chunk in subjects.chunks(2_000) {
            let output = Command::new(&self.binary)
                .arg("token")
                .args(chunk)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .env("STREAMING__LOG__FILTER", "warn")
                .output()
                .map_err(|e| format!("streaming-api token: {e}"))?;
            if !output.status.success() {
                return Err(format!("streaming-api token: {}", String::from_utf8_lossy(&output.stderr)));
            }
            tokens.extend(String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned));
        }
        Ok(tokens)
    }

    fn status_field(&self, field: &str) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with(field))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    /// SIGTERM, then waits for the graceful shutdown (the write-behind drain).
    fn stop(mut self) -> Result<(), String> {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() { Ok(()) } else { Err(format!("streaming-api exited with {status}")) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        Err("streaming-api did not stop within 40 s".into())
    }
}
