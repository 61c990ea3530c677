//! The release binary, running on loopback for one setup.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http;
use crate::infra;

/// The HS256 secret every harness server signs and checks tokens with.
const SECRET: &str = "load-harness-secret-0123456789abcdef";

pub struct Server {
    child: Child,
    pub port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
}

/// The allocator settings the deployment files give the service
/// (deploy/Dockerfile; docs/operations.md, "Memory").
pub const GLIBC_TUNABLES: &str = "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072";

impl Server {
    /// Starts the binary with the embedded defaults plus `settings`
    /// (`STREAMING__…` variables) and waits until it accepts connections.
    pub fn start(root: &Path, dir: &Path, name: &str, settings: &BTreeMap<String, String>) -> Result<Self, String> {
        let binary = binary(root);
        let port = infra::free_port()?;
        let env = environment(dir, name, port, settings);
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
        // Settle: the idle footprint is read after the start-up work.
        std::thread::sleep(Duration::from_millis(500));
        Ok(server)
    }

    /// `streaming-api seed-demo` with the settings `start` would run `name`
    /// with: the demo media written into the setup's stores.
    pub fn seed_demo(root: &Path, dir: &Path, name: &str, settings: &BTreeMap<String, String>) -> Result<(), String> {
        let env = environment(dir, name, 0, settings);
        let output = Command::new(binary(root))
            .arg("seed-demo")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("STREAMING__LOG__FILTER", "warn")
            .output()
            .map_err(|e| format!("streaming-api seed-demo: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("streaming-api seed-demo: {}", String::from_utf8_lossy(&output.stderr)))
        }
    }

    /// Tokens for `subjects`, minted by the binary itself with the same settings.
    pub fn mint_tokens(&self, subjects: &[String]) -> Result<Vec<String>, String> {
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

    /// `POST path` answered 200; its body.
    pub fn post_ok(&self, path: &str, token: &str, body: &str) -> Result<String, String> {
        let (status, answer) = http::post(self.port, path, token, body)?;
        if status == 200 {
            Ok(answer)
        } else {
            Err(format!("POST {path} answered {status}: {answer}"))
        }
    }

    /// The sum of every series of the Prometheus counter `name`.
    pub fn counter(&self, name: &str) -> Result<f64, String> {
        let (status, text) = http::get(self.port, "/metrics")?;
        if status != 200 {
            return Err(format!("/metrics answered {status}"));
        }
        Ok(text
            .lines()
            .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
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

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// The most resident memory so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    /// SIGTERM, then waits for the graceful shutdown (the write-behind drain).
    pub fn stop(mut self) -> Result<(), String> {
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

impl Drop for Server {
    fn drop(&mut self) {
        // A harness that failed half-way leaves no server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn binary(root: &Path) -> PathBuf {
    root.join("target").join("release").join("streaming-api")
}

/// The variables the binary runs `name` with on `port`: the harness's own,
/// then `settings`.
fn environment(dir: &Path, name: &str, port: u16, settings: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let data = dir.join(name);
    let mut env = vec![
        ("STREAMING__SERVER__PORT".to_owned(), port.to_string()),
        ("STREAMING__AUTH__SECRET".to_owned(), SECRET.to_owned()),
        ("STREAMING__STORAGE__ROOT".to_owned(), data.join("objects").display().to_string()),
        ("STREAMING__EVENTS__PATH".to_owned(), data.join("events.jsonl").display().to_string()),
        // As the image, the compose stack and the Kubernetes ConfigMap run it.
        ("GLIBC_TUNABLES".to_owned(), GLIBC_TUNABLES.to_owned()),
    ];
    env.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}
