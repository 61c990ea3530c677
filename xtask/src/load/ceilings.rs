//! What the machine can do without us: the bare framework, Redis and
//! PostgreSQL on their own, measured with their own tools in the same run.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::real::redis_address;
use super::wrk::{self, Figures, Requests};
use super::{captured, Options};

/// The running `ceiling` example (actix-web, no middleware, a fixed JSON
/// body of `body_bytes`), measured under the same `wrk` load as our routes;
/// stopped when dropped.
pub struct Framework {
    child: Child,
    port: u16,
}

impl Framework {
    pub fn start(root: &Path, body_bytes: usize) -> Result<Self, String> {
        let binary = root.join("target").join("release").join("examples").join("ceiling");
        let mut child = Command::new(&binary)
            .args(["0", &body_bytes.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        match listening_port(&mut child) {
            Ok(port) => Ok(Self { child, port }),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(error)
            }
        }
    }

    /// One `wrk` run of `duration`.
    pub fn measure(&self, dir: &Path, options: &Options, duration: Duration) -> Result<Figures, String> {
        // A POST without a body, like the track route's: a body the handler
        // left unread would cost the connection its keep-alive.
        let request = Requests::Fixed { method: "POST", path: "/", token: None, body: None };
        wrk::run(dir, self.port, &request, options.connections, duration, None)
    }
}

impl Drop for Framework {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port from the example's `ceiling listening on 127.0.0.1:PORT` line.
fn listening_port(child: &mut Child) -> Result<u16, String> {
    let stdout = child.stdout.take().ok_or("the ceiling server has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("reading the ceiling's address: {e}"))?;
    line.trim().rsplit(':').next().and_then(|port| port.parse().ok()).ok_or(format!("no port in {line:?}"))
}

/// `redis-benchmark`'s requests per second for the cache's round trip: GET
/// of a value the size of a sealed S3 URL entry, and the rate limiter's
/// shape (one Lua script call per request), 64 connections, no pipelining.
pub fn redis(url: &str, requests: u32) -> Result<Vec<(String, f64)>, String> {
    let (host, port) = redis_address(url)?;
    let base = |command: &mut Command| {
        command.args(["-h", host, "-p", port, "-c", "64", "-n", &requests.to_string(), "-d", "600", "--csv"]);
    };
    let mut get = Command::new("redis-benchmark");
    base(&mut get);
    get.args(["-t", "set,get"]);
    let mut script = Command::new("redis-benchmark");
    base(&mut script);
    script.args(["-r", "10000", "EVAL", "return redis.call('INCR', KEYS[1])", "1", "bench:rate:__rand_int__"]);
    let mut rows = parse_redis_csv(&captured(&mut get, "redis-benchmark")?);
    rows.extend(
        parse_redis_csv(&captured(&mut script, "redis-benchmark")?)
            .into_iter()
            .map(|(_, rps)| ("EVAL (one INCR in Lua, the rate limiter's shape)".to_owned(), rps)),
    );
    Ok(rows)
}

/// `"test","rps",…` lines of `redis-benchmark --csv`.
fn parse_redis_csv(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            // Fields are quoted; a command's name may hold commas itself.
            let mut fields = line.trim().trim_matches('"').split("\",\"");
            let test = fields.next()?;
            let rps = fields.next()?.parse().ok()?;
            Some((test.to_owned(), rps))
        })
        .collect()
}

/// `pgbench`'s transactions per second for one single-row progress upsert
/// per transaction (the statement of a write-through report), 8 clients.
pub fn postgres(bin: &str, url: &str, dir: &Path, duration: Duration, movie: &str) -> Result<f64, String> {
    let script = dir.join("pgbench-upsert.sql");
    fs::write(
        &script,
        format!(
            "\\set viewer random(1, 10000)\n\
             INSERT INTO watch_progress (user_id, movie_id, position_seconds, last_watched_at, watched) \
             VALUES ('pgbench-' || :viewer, '{movie}', random() * 7000, now(), false) \
             ON CONFLICT (user_id, movie_id) DO UPDATE SET position_seconds = EXCLUDED.position_seconds, \
             last_watched_at = EXCLUDED.last_watched_at, updated_at = now();\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let text = captured(
        Command::new(Path::new(bin).join("pgbench"))
            .args(["-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", &duration.as_secs().to_string(), "-f"])
            .arg(&script)
            .arg(url),
        "pgbench",
    )?;
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench's output:\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::parse_redis_csv;

    #[test]
    fn reads_redis_benchmark_csv() {
        let text = concat!(
            "\"test\",\"rps\",\"avg_latency_ms\"\n",
            "\"SET\",\"81234.56\",\"0.700\"\n",
            "\"GET\",\"90000.00\",\"0.6\"\n",
            "\"EVAL return redis.call('INCR', KEYS[1]) 1 k\",\"65000.50\",\"0.9\"\n",
        );
        let rows = parse_redis_csv(text);
        assert_eq!(rows[..2], [("SET".to_owned(), 81_234.56), ("GET".to_owned(), 90_000.0)]);
        assert_eq!(rows[2], ("EVAL return redis.call('INCR', KEYS[1]) 1 k".to_owned(), 65_000.5));
        assert_eq!(rows.len(), 3);
    }
}
