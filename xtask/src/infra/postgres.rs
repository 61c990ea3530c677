//! PostgreSQL from Debian's `postgresql`: `initdb` and `pg_ctl` run as the
//! `postgres` user (initdb refuses root) in a directory it owns, on a free
//! loopback port, with `fsync=off`. Tests create a database each.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::tools;

pub const USER: &str = "streamgate";
pub const PASSWORD: &str = "streamgate-test-password";

/// The server binary of the version Debian's `postgresql` package installs.
pub const SERVER_BINARY: &str = "/usr/lib/postgresql/15/bin/postgres";

/// The newest installed server's `bin` directory.
fn bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|v| v.parse().ok()))
        .collect();
    versions.sort_unstable();
    let version = versions.last().ok_or("no PostgreSQL server installed")?;
    Ok(PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")))
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn run(what: &str, command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The data directory of the checkout whose infrastructure lives in `dir`.
pub fn data_dir(dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    std::env::temp_dir().join(format!("streamgate-postgres-{:016x}", hasher.finish()))
}

pub fn start(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    if bin_dir().is_err() {
        tools::ensure_debian_packages(&[(SERVER_BINARY, "postgresql")])?;
    }
    let bin = bin_dir()?;
    // The postgres user must reach its data directory, and a checkout may live
    // under a directory it cannot enter (/root): keep the data in the system's
    // temporary directory, one per checkout.
    let data = data_dir(dir);
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    run("chown", Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data))?;
    let password_file = data.join("password");
    fs::write(&password_file, PASSWORD).map_err(|e| e.to_string())?;
    run("chown", Command::new("chown").arg("postgres:postgres").arg(&password_file))?;
    run(
        "initdb",
        as_postgres(&bin.join("initdb"))
            .args(["-D"])
            .arg(data.join("cluster"))
            .args(["-U", USER, "--auth=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
            .arg(format!("--pwfile={}", password_file.display())),
    )?;
    let port = super::free_port()?;
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
         -c shared_preload_libraries=pg_stat_statements",
        data.display()
    );
    run(
        "pg_ctl start",
        as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(data.join("cluster"))
            .args(["-o", &options, "-l"])
            // Inside its own directory: the postgres user cannot write the root-owned logs/.
            .arg(data.join("postgres.log"))
            .args(["-w", "-t", "30", "start"]),
    )?;
    // pg_ctl daemonises; its pid file names the postmaster.
    let pid = fs::read_to_string(data.join("cluster").join("postmaster.pid"))
        .map_err(|e| format!("postmaster.pid: {e}"))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    fs::write(dir.join("postgres.pid"), pid).map_err(|e| e.to_string())?;
    super::wait_for_port("postgres", port, Duration::from_secs(10))?;
    println!("==> postgres on 127.0.0.1:{port}");
    Ok(BTreeMap::from([
        ("STREAMGATE_POSTGRES_URL".to_owned(), format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres")),
        // For tests that run a server of their own (to stop and start it).
        ("STREAMGATE_POSTGRES_BIN".to_owned(), bin.display().to_string()),
    ]))
}
