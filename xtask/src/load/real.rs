//! The real infrastructure's part of the run: the paths on PostgreSQL,
//! Redis, the S3 server and the broker, and what paced viewers cost them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::process::Command;

use super::fixed_rate::at_shares;
use super::server::Server;
use super::wrk::Requests;
use super::{
    base_settings, cache_path, captured, ceilings, json_string, manifest, measure, one_viewer_starts, psql, report,
    video_starts, viewer_tokens, with, write_lines, wrk, Measured, Memory, Options, Results, BENCH_MOVIE, BENCH_TRACKS,
    DEMO_MOVIE, DEMO_TRACK, DEMO_USER, MISS_VIEWERS, PAST_SESSIONS,
};

/// The setup's name in the report.
const SETUP: &str = "real infrastructure";

pub(super) fn real_infrastructure(
    root: &Path,
    dir: &Path,
    options: &Options,
    env: &BTreeMap<String, String>,
    results: &mut Results,
) -> Result<(), String> {
    let get = |key: &str| env.get(key).cloned().ok_or(format!("infra up gave no {key}"));
    let admin_url = get("STREAMGATE_POSTGRES_URL")?;
    let url = admin_url.rsplit_once('/').map(|(base, _)| format!("{base}/streamgate_load")).ok_or("bad URL")?;
    psql(&admin_url, "DROP DATABASE IF EXISTS streamgate_load")?;
    psql(&admin_url, "CREATE DATABASE streamgate_load")?;
    // Statement counts for the start and paced-viewer notes (the module is preloaded by `infra up`).
    psql(&url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
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
    let framework = results.framework.as_ref().map(|(_, f)| ("bare actix-web", f.requests_per_second));
    if options.wants("hit") {
        let (hit, note) = cache_path(&server, dir, options, &track, &token)?;
        let requests = Requests::Fixed { method: "POST", path: &track, token: Some(&token), body: None };
        let fixed = at_shares(
            dir,
            server.port,
            ("track URL, cache hit", &requests, 0),
            hit.requests_per_second,
            options,
            5_000,
        )?;
        results.fixed_rate.extend(fixed);
        results.paths.push(Measured {
            setup: SETUP,
            path: "track URL, cache hit",
            figures: hit,
            ceiling: framework,
            target: Some((30_000.0, Some(5_000))),
            note: format!("{note}; Redis behind the in-process level, rate limit in Redis"),
        });
    }
    if options.wants("miss") {
        cache_misses(&server, dir, options, framework, results)?;
    }
    let (tokens, tokens_file) = if options.wants("start") {
        starts(&server, dir, options, &url, framework, results)?
    } else {
        viewer_tokens(&server, dir, options, "real")?
    };

    let wants_sessions = options.wants("progress") || options.wants("paced");
    println!("==> starting {} sessions", if wants_sessions { tokens.len() } else { 0 });
    let mut sessions = Vec::with_capacity(tokens.len());
    for token in tokens.iter().filter(|_| wants_sessions) {
        let body = server.post_ok(&format!("/api/v1/stream/{BENCH_MOVIE}"), token, "{}")?;
        sessions.push(json_string(&body, "session_id").ok_or("no session_id in the start answer")?);
    }
    let sessions_file = write_lines(dir, "real-sessions", &sessions)?;
    let progress = Requests::Progress {
        tokens: &tokens_file,
        movie: BENCH_MOVIE,
        sessions: Some(&sessions_file),
        fixed_position: false,
    };
    if options.wants("progress") {
        results.pgbench_tps =
            Some(ceilings::postgres(&get("STREAMGATE_POSTGRES_BIN")?, &url, dir, options.duration, BENCH_MOVIE)?);
        progress_updates(&server, dir, options, &progress, &url, results)?;
    }
    if options.wants("manifest") {
        let (figures, path) = manifest(&server, dir, options, BENCH_MOVIE, &token)?;
        let requests = Requests::Fixed { method: "GET", path: &path, token: None, body: None };
        let maximum = figures.requests_per_second;
        results.fixed_rate.extend(at_shares(dir, server.port, ("manifest", &requests, 0), maximum, options, 5_000)?);
        results.paths.push(Measured {
            setup: SETUP,
            path: "manifest (HLS playlist, signed segment URLs)",
            figures,
            ceiling: framework,
            target: None,
            note: "the public bench movie (the demo movie's files) from S3 through its grant, segment URLs presigned"
                .into(),
        });
    }
    if options.wants("paced") {
        results.viewers = paced_viewers(&server, dir, options, &progress, &url, &redis_url)?;
    }
    // Last: the sweep of the history and the relay of its stop events must not
    // fall into the other paths' runs.
    if options.wants("solo") {
        solo_starts(&server, dir, options, &url, framework, results)?;
    }
    results.memory.push(Memory { setup: SETUP, idle_kib: idle, peak_kib: server.peak_rss_kib() });
    server.stop()?;
    results.redis = ceilings::redis(&redis_url, 200_000)?;
    Ok(())
}

/// The progress path: every viewer's session reporting round-robin.
fn progress_updates(
    server: &Server,
    dir: &Path,
    options: &Options,
    progress: &Requests<'_>,
    url: &str,
    results: &mut Results,
) -> Result<(), String> {
    let before = table_writes(url)?;
    let started = Instant::now();
    let figures = measure(server, dir, options, progress)?;
    let elapsed = started.elapsed();
    let maximum = figures.requests_per_second;
    // The write-behind queue drains within a flush interval or two.
    std::thread::sleep(Duration::from_secs(2));
    let after = table_writes(url)?;
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
    results.fixed_rate.extend(at_shares(dir, server.port, ("progress update", progress, 0), maximum, options, 10_000)?);
    // The service's own counters (queue overflows, held writes, flushes)
    // after the progress runs, to read beside their latencies.
    let (_, metrics) = super::http::get(server.port, "/metrics")?;
    let file = dir.join("metrics-after-progress.prom");
    fs::write(&file, metrics).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(())
}

/// Video starts by one viewer on every connection: first a new viewer,
/// then one with a long history.
fn solo_starts(
    server: &Server,
    dir: &Path,
    options: &Options,
    url: &str,
    framework: Option<(&'static str, f64)>,
    results: &mut Results,
) -> Result<(), String> {
    let [new, history] = one_viewer_starts(server, dir, options, url)?;
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
    Ok(())
}

/// Track URLs never asked before: every request misses the cache.
fn cache_misses(
    server: &Server,
    dir: &Path,
    options: &Options,
    framework: Option<(&'static str, f64)>,
    results: &mut Results,
) -> Result<(), String> {
    let miss_viewers: Vec<String> = (0..MISS_VIEWERS).map(|i| format!("miss-viewer-{i:05}")).collect();
    let miss_tokens = write_lines(dir, "miss-tokens", &server.mint_tokens(&miss_viewers)?)?;
    let track_paths: Vec<String> =
        (1..=BENCH_TRACKS).map(|n| format!("/tracks/01JG0BENCHTRACK{n:011}/stream")).collect();
    let miss_paths = write_lines(dir, "miss-paths", &track_paths)?;
    let hits_before = server.counter("stream_url_cache_hits_total")?;
    let requests = Requests::Pairs { tokens: &miss_tokens, paths: &miss_paths, body: "" };
    let figures = measure(server, dir, options, &requests)?;
    let fixed = at_shares(
        dir,
        server.port,
        ("track URL, cache miss", &requests, figures.requests),
        figures.requests_per_second,
        options,
        5_000,
    )?;
    let hits = server.counter("stream_url_cache_hits_total")? - hits_before;
    results.paths.push(Measured {
        setup: SETUP,
        path: "track URL, cache miss (sign each time)",
        figures,
        ceiling: framework,
        target: Some((10_000.0, None)),
        note: format!(
            "{MISS_VIEWERS} viewers × {BENCH_TRACKS} public tracks in order, no pair twice ({hits:.0} cache hits \
             here and in the fixed-rate runs after it): Redis read, SigV4 presign, seal, Redis write"
        ),
    });
    results.fixed_rate.extend(fixed);
    Ok(())
}

/// Video starts of `--viewers` viewers round-robin, with what PostgreSQL
/// spent on them; the viewers' tokens and their file.
fn starts(
    server: &Server,
    dir: &Path,
    options: &Options,
    url: &str,
    framework: Option<(&'static str, f64)>,
    results: &mut Results,
) -> Result<(Vec<String>, PathBuf), String> {
    let statements_before = statement_calls(url)?;
    let before = pg_activity(url)?;
    let (figures, tokens, [tokens_file, paths_file]) = video_starts(server, dir, options, "real")?;
    // The server's statistics reach the view within a second.
    std::thread::sleep(Duration::from_millis(1_100));
    let after = pg_activity(url)?;
    let statements = statements_since(url, &statements_before)?;
    let starts = figures.requests as f64;
    let per_thousand = |n: u64| n as f64 * 1_000.0 / starts.max(1.0);
    let pg_cores = figures.cpu.iter().find(|(name, _)| name == "postgres").map_or(0.0, |(_, cores)| *cores);
    // Cores are CPU-seconds per second: per start, cores / starts per second.
    let maximum = figures.requests_per_second;
    let pg_cpu_ms = pg_cores * 1_000.0 * 1_000.0 / maximum.max(1.0);
    results.paths.push(Measured {
        setup: SETUP,
        path: "video start",
        figures,
        ceiling: framework,
        target: Some((10_000.0, None)),
        note: format!(
            "public trailer, {} viewers round-robin: the manifest known to exist (an S3 HEAD a minute per instance), \
             session row and outbox event committed in PostgreSQL before the answer, starts committed in groups; \
             per 1 000 starts PostgreSQL committed {:.0} transactions and used {pg_cpu_ms:.0} ms of CPU; \
             statements per 1 000 starts: {}",
            options.viewers,
            per_thousand(after.0.saturating_sub(before.0)),
            statements
                .iter()
                .take(6)
                .map(|(statement, calls)| format!("{:.0} × `{statement}`", per_thousand(*calls)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    });
    let requests = Requests::Pairs { tokens: &tokens_file, paths: &paths_file, body: "{}" };
    results.fixed_rate.extend(at_shares(dir, server.port, ("video start", &requests, 0), maximum, options, 10_000)?);
    Ok((tokens, tokens_file))
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
    let statements_before = statement_calls(pg_url)?;
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
        format!(
            "PostgreSQL statements/s, most called first: {}",
            statements_since(pg_url, &statements_before)?
                .iter()
                .take(8)
                .map(|(statement, calls)| format!("{:.0} × `{statement}`", *calls as f64 / seconds))
                .collect::<Vec<_>>()
                .join(", ")
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

/// Calls so far per statement of the database (its first 60 characters),
/// from `pg_stat_statements`.
fn statement_calls(url: &str) -> Result<BTreeMap<String, u64>, String> {
    let text = psql(
        url,
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60), sum(calls) FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY 1",
    )?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (statement, calls) = line.rsplit_once('|')?;
            Some((statement.replace('|', "/"), calls.trim().parse().ok()?))
        })
        .collect())
}

/// The statements called since `before` (a [`statement_calls`] reading)
/// and how often, most called first.
fn statements_since(url: &str, before: &BTreeMap<String, u64>) -> Result<Vec<(String, u64)>, String> {
    let mut statements: Vec<(String, u64)> = statement_calls(url)?
        .into_iter()
        .map(|(statement, calls)| {
            let earlier = before.get(&statement).copied().unwrap_or(0);
            (statement, calls.saturating_sub(earlier))
        })
        .filter(|(_, calls)| *calls > 0)
        .collect();
    statements.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(statements)
}

/// `(table, rows)` written between two [`table_writes`] readings.
fn rows_written(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    before
        .iter()
        .map(|(table, rows)| (table.clone(), after.get(table).copied().unwrap_or(0).saturating_sub(*rows)))
        .collect()
}

/// `host` and `port` of a plain `redis://host:port` URL.
pub(super) fn redis_address(url: &str) -> Result<(&str, &str), String> {
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
