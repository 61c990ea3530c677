//! The real infrastructure for tests, on loopback, under `target/infra/`:
//! each service is installed if missing (into the tool cache outside the
//! clone), started with a pid file, and stopped by that pid only.
//!
//! `infra up` writes `target/infra/env` (`KEY=value` lines); `cargo xtask test`
//! passes the same variables to the tests, which also read the file when run
//! on their own after `cargo xtask infra up`.

pub mod kafka;
pub mod postgres;
mod redis;
pub mod s3;

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hls.js version the demo player vendors (`crates/streaming-http/web/package.json`).
const HLS_JS_VERSION: &str = "1.7.4";

/// The Swagger UI version `/docs` vendors (the same file names it).
const SWAGGER_UI_VERSION: &str = "5.35.0";

/// Where the infrastructure keeps its data, logs and pid files.
pub fn dir(root: &Path) -> PathBuf {
    root.join("target").join("infra")
}

/// Starts every service (stopping leftovers first) and returns the
/// variables that tell tests where they are.
pub fn up(root: &Path) -> Result<BTreeMap<String, String>, String> {
    down(root)?;
    let dir = dir(root);
    fs::create_dir_all(dir.join("logs")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut env = BTreeMap::new();
    env.extend(s3::start(&dir)?);
    let broker = kafka::start(&dir, &env)?;
    env.extend(broker);
    env.extend(redis::start(&dir)?);
    env.extend(postgres::start(&dir)?);
    env.extend(checkers()?);
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    fs::write(dir.join("env"), text).map_err(|e| format!("writing the env file: {e}"))?;
    for (key, value) in &env {
        println!("  {key}={value}");
    }
    Ok(env)
}

/// The Debian packages the servers and the browser test need, as
/// `(command, package)` pairs (each start installs its own if missing; the
/// background installer installs them all in one go).
pub fn debian_packages() -> Vec<(&'static str, &'static str)> {
    let mut packages = redis::PACKAGES.to_vec();
    packages.extend([(postgres::SERVER_BINARY, "postgresql"), ("chromium", "chromium")]);
    packages
}

/// Installs the checkers the tests run, without starting anything.
pub fn install_checkers() -> Result<(), String> {
    checkers().map(drop)
}

/// The checkers the tests run, installed if missing, and the variables
/// that tell the tests where they are.
fn checkers() -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    // The OpenAPI validator (a Python package)…
    let validator = crate::tools::ensure_python_package("openapi-spec-validator==0.8.5", "openapi_spec_validator")?;
    env.insert("STREAMGATE_OPENAPI_VALIDATOR".into(), validator.display().to_string());
    // …and schemathesis, which fuzzes the served API against that document
    // (every dependency pinned, so a seed replays the same requests).
    let schemathesis =
        crate::tools::ensure_pinned_python_packages("schemathesis-4.32.5", SCHEMATHESIS, "schemathesis")?;
    env.insert("STREAMGATE_SCHEMATHESIS".into(), schemathesis.display().to_string());
    // …and promtool, for the alert rules and their unit tests in deploy/.
    let promtool = crate::tools::ensure_debian_binary("prometheus", "usr/bin/promtool")?;
    env.insert("STREAMGATE_PROMTOOL".into(), promtool.display().to_string());
    // …and a real browser for the demo player's end-to-end test: Debian's
    // Chromium driven by playwright-core (never a browser download).
    crate::tools::ensure_debian_packages(&[("chromium", "chromium")])?;
    env.insert("STREAMGATE_CHROMIUM".into(), "/usr/bin/chromium".into());
    let playwright = crate::tools::ensure_npm_package("playwright-core", "1.64.1")?;
    env.insert("STREAMGATE_PLAYWRIGHT_CORE".into(), playwright.display().to_string());
    // The published hls.js the player's vendored copy must equal.
    let hls = crate::tools::ensure_npm_package("hls.js", HLS_JS_VERSION)?;
    env.insert("STREAMGATE_HLS_JS".into(), hls.display().to_string());
    let swagger = crate::tools::ensure_npm_package("swagger-ui-dist", SWAGGER_UI_VERSION)?;
    env.insert("STREAMGATE_SWAGGER_UI".into(), swagger.display().to_string());
    Ok(env)
}

/// Schemathesis and everything it imports, each at one version.
const SCHEMATHESIS: &[&str] = &[
    "schemathesis==4.32.5",
    "anyio==4.16.0",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "click==8.5.1",
    "graphql-core==3.3.2",
    "harfile==0.6.0",
    "hypothesis==6.170.17",
    "hypothesis-graphql==0.13.5",
    "idna==3.20",
    "iniconfig==2.3.1",
    "jsonschema-rs==0.60.3",
    "markdown-it-py==4.3.0",
    "markupsafe==3.0.4",
    "mdurl==0.1.2",
    "packaging==26.4",
    "pluggy==1.7.0",
    "pygments==2.21.0",
    "pyrate-limiter==4.5.1",
    "pytest==9.2.0",
    "pyyaml==6.0.4",
    "requests==2.34.2",
    "rich==15.0.0",
    "sortedcontainers==2.4.0",
    "typing-extensions==4.16.0",
    "urllib3==2.8.0",
    "werkzeug==3.1.9",
];

/// Stops every service this tool started (by pid file) and nothing else.
pub fn down(root: &Path) -> Result<(), String> {
    let dir = dir(root);
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pid") {
            stop_pid_file(&path);
        }
    }
    let _ = fs::remove_file(dir.join("env"));
    let _ = fs::remove_dir_all(postgres::data_dir(&dir));
    Ok(())
}

fn stop_pid_file(path: &Path) {
    if let Some(pid) = fs::read_to_string(path).ok().and_then(|p| p.trim().parse::<u32>().ok()) {
        let _ = Command::new("kill").arg(pid.to_string()).stderr(Stdio::null()).status();
        // Give it a moment to exit, then make sure.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && running(pid) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
    }
    let _ = fs::remove_file(path);
}

/// Whether `pid` is alive. A process that exited but was not reaped yet (a
/// zombie: our own child during `cargo xtask test`) counts as stopped.
fn running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A free loopback port (the tiny race until the server binds is acceptable for tests).
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Spawns `command` detached, logging to `logs/{name}.log`, and records its pid.
fn spawn(dir: &Path, name: &str, command: &mut Command) -> Result<u32, String> {
    let log = fs::File::create(dir.join("logs").join(format!("{name}.log"))).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child =
        command.stdin(Stdio::null()).stdout(log).stderr(err).spawn().map_err(|e| format!("starting {name}: {e}"))?;
    fs::write(dir.join(format!("{name}.pid")), child.id().to_string()).map_err(|e| e.to_string())?;
    Ok(child.id())
}

/// Waits until `port` accepts connections.
pub(crate) fn wait_for_port(name: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{name} did not accept connections on port {port} within {timeout:?} (see target/infra/logs/{name}.log)"
    ))
}
