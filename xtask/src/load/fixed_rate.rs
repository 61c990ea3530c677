//! Latency at a fixed rate, measured without coordinated omission.
//!
//! `wrk` sends the next request on a connection when the previous answer
//! arrives, so a stall of the server holds back the requests that would
//! have been sent meanwhile and is counted once, not for every request it
//! delayed. Here request `i` is due at `start + i / rate`, whatever
//! happened before, and its latency runs from that due time to its answer
//! (wrk2's method). A connection that is busy when a request falls due
//! delays it, and the delay is counted.
//!
//! The requests vary per viewer (tokens, sessions, tracks), which ready-made
//! fixed-rate generators do not do, so the harness sends them itself: one
//! thread per connection, blocking sockets, keep-alive HTTP/1.1, with the
//! same requests as the `wrk` scripts. A sleeping thread wakes within about
//! 0.1 ms of its due time; that slack is part of every latency measured.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::wrk::{Figures, Requests};
use super::Options;

/// The requests of one run, built in memory from the files the `wrk`
/// scripts read, request `i` being the one the script would send `i`-th.
pub struct Source {
    kind: Kind,
    host: String,
    /// Added to every request's number: a run continues where an earlier
    /// one over the same pairs stopped, so no pair repeats.
    offset: u64,
}

enum Kind {
    Fixed { method: String, path: String, token: Option<String>, body: Option<String> },
    Pairs { tokens: Vec<String>, paths: Vec<String>, body: String },
    Progress { tokens: Vec<String>, path: String, sessions: Vec<String>, sequence: u64 },
}

impl Source {
    pub fn new(port: u16, requests: &Requests<'_>, offset: u64) -> Result<Self, String> {
        let lines = |file: &Path| -> Result<Vec<String>, String> {
            let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
        };
        let kind = match requests {
            Requests::Fixed { method, path, token, body } => Kind::Fixed {
                method: (*method).to_owned(),
                path: (*path).to_owned(),
                token: token.map(str::to_owned),
                body: body.map(str::to_owned),
            },
            Requests::Pairs { tokens, paths, body } => {
                Kind::Pairs { tokens: lines(tokens)?, paths: lines(paths)?, body: (*body).to_owned() }
            }
            Requests::Progress { tokens, movie, sessions, fixed_position: _ } => {
                // Like the script: sequences above any an earlier run sent.
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?;
                Kind::Progress {
                    tokens: lines(tokens)?,
                    path: format!("/api/v1/stream/{movie}/progress"),
                    sessions: sessions.map(lines).transpose()?.unwrap_or_default(),
                    sequence: now.as_secs() * 100_000,
                }
            }
        };
        let empty = match &kind {
            Kind::Fixed { .. } => false,
            Kind::Pairs { tokens, paths, .. } => tokens.is_empty() || paths.is_empty(),
            Kind::Progress { tokens, .. } => tokens.is_empty(),
        };
        if empty {
            return Err("the request files are empty".into());
        }
        Ok(Self { kind, host: format!("127.0.0.1:{port}"), offset })
    }

    /// The bytes of request `i`.
    fn request(&self, i: u64) -> Vec<u8> {
        let n = i + self.offset;
        let progress_body;
        let (method, path, token, body): (&str, &str, Option<&str>, &str) = match &self.kind {
            Kind::Fixed { method, path, token, body } => {
                (method, path, token.as_deref(), body.as_deref().unwrap_or(""))
            }
            Kind::Pairs { tokens, paths, body } => {
                let viewers = tokens.len() as u64;
                ("POST", pick(paths, n / viewers), Some(pick(tokens, n)), body)
            }
            Kind::Progress { tokens, path, sessions, sequence } => {
                let sequence = sequence + n;
                let viewer = usize::try_from(n % tokens.len() as u64).unwrap_or(0);
                progress_body = match sessions.get(viewer) {
                    Some(session) => format!(
                        r#"{{"position_seconds":{},"session_id":"{session}","sequence":{sequence}}}"#,
                        sequence % 3000
                    ),
                    None => format!(r#"{{"position_seconds":{}}}"#, sequence % 3000),
                };
                ("POST", path, Some(tokens[viewer].as_str()), &progress_body)
            }
        };
        // Writing into a Vec cannot fail.
        let mut bytes = Vec::with_capacity(256 + body.len());
        let _ = write!(bytes, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(token) = token {
            let _ = write!(bytes, "Authorization: Bearer {token}\r\n");
        }
        if method == "POST" {
            let _ = write!(bytes, "Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body.as_bytes());
        bytes
    }
}

/// Entry `k` of `list`, round-robin.
fn pick(list: &[String], k: u64) -> &str {
    &list[usize::try_from(k % list.len() as u64).unwrap_or(0)]
}

/// Sends `rate` requests a second for `duration` over `connections`
/// connections to `port`; the latencies run from each request's due time.
/// `requests_per_second` in the figures is the rate achieved. With the
/// figures, every request's number and latency (µs), in order.
pub fn run(
    port: u16,
    source: &Source,
    rate: f64,
    duration: Duration,
    connections: u32,
) -> Result<(Figures, Vec<(u64, u64)>), String> {
    if rate <= 0.0 || !rate.is_finite() {
        return Err(format!("a fixed rate must be positive, not {rate}"));
    }
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let next = AtomicU64::new(0);
    let before = super::cpu::snapshot();
    // Every connection is open before the first request falls due.
    let start = Instant::now() + Duration::from_millis(100);
    let outcomes: Vec<Result<Connection, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut connection = Connection::open(port)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return Ok(connection);
                        }
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        connection.exchange(port, &source.request(i), (i, due));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err("a connection thread panicked".into()))).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = super::cpu::since(&before);
    let mut samples = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut errors = 0;
    for outcome in outcomes {
        let connection = outcome?;
        samples.extend(connection.samples);
        errors += connection.errors;
    }
    samples.sort_unstable();
    let mut latencies: Vec<u64> = samples.iter().map(|(_, latency)| *latency).collect();
    latencies.sort_unstable();
    let percentile = |p: f64| -> u64 {
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies.get(rank.saturating_sub(1).min(latencies.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    let figures = Figures {
        requests: latencies.len() as u64,
        requests_per_second: latencies.len() as f64 / elapsed.max(f64::EPSILON),
        p50_us: percentile(50.0),
        p99_us: percentile(99.0),
        p999_us: percentile(99.9),
        errors,
        cpu,
    };
    Ok((figures, samples))
}

/// Shares of a path's measured maximum at which its latency is measured.
pub const SHARES: [f64; 2] = [0.5, 0.8];

/// One path's latency at one fixed rate.
#[derive(Debug)]
pub struct AtRate {
    pub path: &'static str,
    /// The share of the path's maximum asked for, and that maximum.
    pub share: f64,
    pub maximum: f64,
    pub figures: Figures,
    /// The 99th percentile the path is held to.
    pub p99_target_us: u64,
}

/// `requests` at each of [`SHARES`] of `maximum` req/s for `--duration`
/// each, over `--connections`; request numbers start at `offset` and go on from one
/// run to the next. Each run's latencies over time go to
/// `dir/fixed-rate-<path>-<share>.tsv` (milliseconds since the start at
/// which the request fell due, its latency in µs), to see when a tail
/// happened.
pub fn at_shares(
    dir: &Path,
    port: u16,
    (path, requests, offset): (&'static str, &Requests<'_>, u64),
    maximum: f64,
    options: &Options,
    p99_target_us: u64,
) -> Result<Vec<AtRate>, String> {
    let (duration, connections) = (options.duration, options.connections);
    let mut offset = offset;
    let mut measured = Vec::with_capacity(SHARES.len());
    for share in SHARES {
        let rate = (maximum * share).max(1.0);
        println!("==> {path}: {rate:.0} req/s for {} s ({:.0} % of its maximum)", duration.as_secs(), share * 100.0);
        let (figures, samples) = run(port, &Source::new(port, requests, offset)?, rate, duration, connections)?;
        let series: String =
            samples.iter().map(|(i, latency)| format!("{:.1}\t{latency}\n", *i as f64 * 1_000.0 / rate)).collect();
        let name: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let file = dir.join(format!("fixed-rate-{name}-{:.0}.tsv", share * 100.0));
        fs::write(&file, series).map_err(|e| format!("{}: {e}", file.display()))?;
        println!(
            "    sent {:.0} req/s; from their due times p50 {} µs, p99 {} µs, p99.9 {} µs; {} errors",
            figures.requests_per_second, figures.p50_us, figures.p99_us, figures.p999_us, figures.errors
        );
        if figures.errors > 0 {
            return Err(format!("{} of {} requests failed at {rate:.0} req/s", figures.errors, figures.requests));
        }
        offset += figures.requests;
        measured.push(AtRate { path, share, maximum, figures, p99_target_us });
    }
    Ok(measured)
}

/// One keep-alive connection and what it measured.
struct Connection {
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
    /// Each request's number and latency (µs).
    samples: Vec<(u64, u64)>,
    /// Answers other than 2xx, and requests that got no answer.
    errors: u64,
}

impl Connection {
    fn open(port: u16) -> Result<Self, String> {
        let mut connection = Self { stream: None, buffer: Vec::with_capacity(8192), samples: Vec::new(), errors: 0 };
        connection.stream = Some(connect(port)?);
        Ok(connection)
    }

    /// Sends `request` and waits for its answer; a broken connection is
    /// opened again for the next request.
    fn exchange(&mut self, port: u16, request: &[u8], (i, due): (u64, Instant)) {
        let answered = match self.stream.as_mut() {
            Some(stream) => answer(stream, &mut self.buffer, request),
            None => connect(port).and_then(|mut stream| {
                let status = answer(&mut stream, &mut self.buffer, request);
                self.stream = Some(stream);
                status
            }),
        };
        self.samples.push((i, u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX)));
        match answered {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(_) => self.errors += 1,
            Err(_) => {
                self.errors += 1;
                self.stream = None;
                self.buffer.clear();
            }
        }
    }
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connecting: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Writes `request` and reads one answer (its length from
/// `Content-Length`); the answer's status.
fn answer(stream: &mut TcpStream, buffer: &mut Vec<u8>, request: &[u8]) -> Result<u16, String> {
    stream.write_all(request).map_err(|e| format!("sending: {e}"))?;
    let mut chunk = [0_u8; 16 * 1024];
    loop {
        if let Some((status, length)) = complete(buffer)? {
            buffer.drain(..length);
            return Ok(status);
        }
        let read = stream.read(&mut chunk).map_err(|e| format!("reading: {e}"))?;
        if read == 0 {
            return Err("the server closed the connection".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The status and length of the answer at the start of `buffer`, once it
/// is all there.
fn complete(buffer: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| "an answer's head is not UTF-8")?;
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).ok_or("an answer without a status")?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    // 204 and 304 carry no body, and need not say so.
    let length = match (length, status) {
        (Some(length), _) => length,
        (None, 204 | 304) => 0,
        (None, _) => return Err("an answer without Content-Length".into()),
    };
    let total = end + 4 + length;
    Ok((buffer.len() >= total).then_some((status, total)))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{complete, run, Source};
    use crate::load::wrk::Requests;

    /// A server answering every request at once, except that after its
    /// 200th answer it stops answering everyone for `stall`.
    fn stalling_server(stall: Duration) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answered = Arc::new(Mutex::new(0_u32));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let answered = Arc::clone(&answered);
                std::thread::spawn(move || {
                    let mut buffer = [0_u8; 4096];
                    while stream.read(&mut buffer).is_ok_and(|n| n > 0) {
                        let mut count = answered.lock().unwrap();
                        *count += 1;
                        if *count == 200 {
                            std::thread::sleep(stall);
                        }
                        drop(count);
                        if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    #[test]
    fn a_stall_counts_for_every_request_it_delayed() {
        let port = stalling_server(Duration::from_millis(500));
        let requests = Requests::Fixed { method: "GET", path: "/", token: None, body: None };
        let source = Source::new(port, &requests, 0).unwrap();
        let (figures, samples) = run(port, &source, 1_000.0, Duration::from_secs(2), 4).unwrap();
        assert_eq!(samples.len(), 2_000);
        assert!(samples.windows(2).all(|w| w[0].0 + 1 == w[1].0), "every request once, in order");
        assert_eq!(figures.requests, 2_000);
        assert_eq!(figures.errors, 0);
        // About 500 of the 2 000 requests fell due during the stall: waiting
        // for a connection counts, so the 99th percentile sits near the
        // stall, where a closed loop would show four slow requests.
        assert!(figures.p99_us > 300_000, "p99 {} µs", figures.p99_us);
        assert!(figures.p50_us < 100_000, "p50 {} µs", figures.p50_us);
    }

    #[test]
    fn requests_continue_the_pairs_from_the_offset() {
        let dir = std::env::temp_dir().join(format!("fixed-rate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tokens"), "t0\nt1\n").unwrap();
        std::fs::write(dir.join("paths"), "/a\n/b\n").unwrap();
        let requests = Requests::Pairs { tokens: &dir.join("tokens"), paths: &dir.join("paths"), body: "{}" };
        let source = Source::new(1, &requests, 3).unwrap();
        let text = String::from_utf8(source.request(0)).unwrap();
        assert!(text.starts_with("POST /b HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("Authorization: Bearer t1\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_answer_is_complete_with_its_body() {
        let answer = b"HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\nabc";
        assert_eq!(complete(answer).unwrap(), Some((204, answer.len())));
        assert_eq!(complete(&answer[..answer.len() - 1]).unwrap(), None);
        assert_eq!(complete(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(), Some((204, 27)));
        assert!(complete(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
