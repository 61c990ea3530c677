//! Driving `wrk` (one thread, loopback) and reading what it measured.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What `wrk` sends.
pub enum Requests<'a> {
    /// One fixed request (`token`: bearer token; `body`: a JSON body).
    Fixed { method: &'a str, path: &'a str, token: Option<&'a str>, body: Option<&'a str> },
    /// POSTs walking through every (viewer, path) pair of the two files in order.
    Pairs { tokens: &'a Path, paths: &'a Path, body: &'a str },
    /// Progress reports round-robin over viewers (`sessions`: line i is the
    /// session viewer i started); `fixed_position` for short movies.
    Progress { tokens: &'a Path, movie: &'a str, sessions: Option<&'a Path>, fixed_position: bool },
}

/// One `wrk` run's figures.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub requests: u64,
    pub requests_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// Non-2xx answers and socket errors.
    pub errors: u64,
    /// Cores each program used during the run.
    pub cpu: Vec<(String, f64)>,
}

/// Runs `wrk` against `port` for `duration` over `connections`; with
/// `pace`, every connection waits that long between its requests. The
/// figures include the CPU each program used meanwhile.
pub fn run(
    dir: &Path,
    port: u16,
    requests: &Requests<'_>,
    connections: u32,
    duration: Duration,
    pace: Option<Duration>,
) -> Result<Figures, String> {
    let (script, path, args): (String, &str, Vec<String>) = match requests {
        Requests::Fixed { method, path, token, body } => {
            let mut args = vec![(*method).to_owned(), token.unwrap_or("-").to_owned()];
            args.extend(body.map(str::to_owned));
            (include_str!("static.lua").to_owned(), path, args)
        }
        Requests::Pairs { tokens, paths, body } => (
            include_str!("rotate.lua").to_owned(),
            "/",
            vec![tokens.display().to_string(), paths.display().to_string(), (*body).to_owned()],
        ),
        Requests::Progress { tokens, movie, sessions, fixed_position } => {
            let mut script = include_str!("progress.lua").to_owned();
            if *fixed_position {
                script = script.replace("sequence % 3000", "3");
            }
            let mut args = vec![tokens.display().to_string(), (*movie).to_owned()];
            args.extend(sessions.map(|s| s.display().to_string()));
            (script, "/", args)
        }
    };
    let mut script = script + include_str!("report.lua");
    if let Some(pace) = pace {
        script += &format!("\nfunction delay()\n  return {}\nend\n", pace.as_millis());
    }
    let script_file = dir.join("wrk-script.lua");
    fs::write(&script_file, script).map_err(|e| format!("{}: {e}", script_file.display()))?;
    let before = super::cpu::snapshot();
    let output = Command::new("wrk")
        .args(["-t1", "-c", &connections.to_string(), "-d", &format!("{}s", duration.as_secs())])
        .arg("-s")
        .arg(&script_file)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .arg("--")
        .args(&args)
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let cpu = super::cpu::since(&before);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(Figures { cpu, ..parse(&text)? })
}

/// Reads wrk's summary and the percentiles line of `report.lua`.
fn parse(text: &str) -> Result<Figures, String> {
    let percentile = |key: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with("streamgate-latency-us"))
            .and_then(|line| line.split_whitespace().find_map(|w| w.strip_prefix(key))?.parse().ok())
            .unwrap_or(0)
    };
    let after = |prefix: &str| text.lines().find_map(|l| l.trim_start().strip_prefix(prefix)).map(str::trim);
    let requests_per_second = after("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no throughput in wrk's output:\n{text}"))?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let non_2xx: u64 = after("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let socket_errors: u64 = after("Socket errors:")
        .map_or(0, |v| v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum());
    Ok(Figures {
        requests,
        requests_per_second,
        p50_us: percentile("p50="),
        p99_us: percentile("p99="),
        p999_us: percentile("p999="),
        errors: non_2xx + socket_errors,
        cpu: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_wrk_summary() {
        let text = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\n\
                    \x20 312345 requests in 10.00s, 190.00MB read\n\
                    \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
                    \x20 Non-2xx or 3xx responses: 4\nRequests/sec:  31234.50\nTransfer/sec:     19.00MB\n\
                    streamgate-latency-us p50=1500 p99=4200 p999=9000 max=12000\n";
        let figures = parse(text).unwrap();
        assert_eq!(figures.requests, 312_345);
        assert!((figures.requests_per_second - 31_234.5).abs() < 0.01);
        assert_eq!((figures.p50_us, figures.p99_us, figures.p999_us), (1_500, 4_200, 9_000));
        assert_eq!(figures.errors, 7);
    }
}
