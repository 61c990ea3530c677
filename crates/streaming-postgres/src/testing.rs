//! Test support: a fresh, empty database per test on a shared server.
// Test support: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Creates an empty database named after a random id on the server of
/// `admin_url` (a URL to any database there) and returns its URL.
pub async fn fresh_database_url(admin_url: &str) -> String {
    let name = format!("test_{:032x}", streaming_core::domain::SessionId::random().as_uuid().as_u128());
    let mut admin = AsyncPgConnection::establish(admin_url).await.expect("connecting to the test server");
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("creating a test database");
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    format!("{base}/{name}")
}

/// The movie the tests' sessions play: a UUID, so both table layouts hold it.
pub const TEST_MOVIE: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// An open session of `user` on [`TEST_MOVIE`] started at `at`, without a
/// user agent or address.
pub fn open_session(user: &str, at: time::OffsetDateTime) -> streaming_core::domain::StreamSession {
    streaming_core::domain::StreamSession {
        id: streaming_core::domain::SessionId::random(),
        user: user.parse().expect("a valid user id"),
        media: TEST_MOVIE.parse().expect("a valid movie id"),
        manifest: streaming_core::domain::ManifestKind::Hls,
        started_at: at,
        ended_at: None,
        duration_seconds: None,
        user_agent: None,
        client_ip: None,
        last_heartbeat_at: at,
    }
}

/// A PostgreSQL server of a test's own, to stop and start again in the
/// middle of a run: `initdb` in a directory of the system's temporary
/// directory, run as the `postgres` user (initdb refuses root), on a free
/// loopback port, trusting local connections. Stopped and removed when dropped.
#[derive(Debug)]
pub struct OwnPostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    /// Server settings beyond the defaults, as `-c name=value` options.
    settings: String,
}

/// `program` of `bin`, to run as the `postgres` user.
fn as_postgres(bin: &std::path::Path, program: &str) -> std::process::Command {
    let mut command = std::process::Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(bin.join(program));
    command
}

/// Runs `command`; panics with its output if it fails.
fn run(what: &str, command: &mut std::process::Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl OwnPostgres {
    /// Creates and starts it with the server binaries in `bin`
    /// (`STREAMGATE_POSTGRES_BIN` of `cargo xtask infra up`).
    pub fn start(bin: &str) -> Self {
        Self::start_with(bin, &[])
    }

    /// Like [`OwnPostgres::start`], with server `settings` (`name=value`)
    /// beyond the defaults, kept across [`OwnPostgres::resume`].
    pub fn start_with(bin: &str, settings: &[&str]) -> Self {
        let id = streaming_core::domain::SessionId::random().as_uuid().simple().to_string();
        let dir = std::env::temp_dir().join(format!("streamgate-own-postgres-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let chown = std::process::Command::new("chown").arg("postgres:postgres").arg(&dir).status().unwrap();
        assert!(chown.success(), "chown of {}", dir.display());
        let port = streaming_core::contract::free_port();
        let settings = settings.iter().map(|setting| format!(" -c {setting}")).collect();
        let server = Self { bin: bin.into(), dir, port, settings };
        run(
            "initdb",
            as_postgres(&server.bin, "initdb").arg("-D").arg(server.dir.join("cluster")).args([
                "-U",
                "streamgate",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]),
        );
        server.resume();
        server
    }

    /// Its URL (database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://streamgate@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts it again on the same port and data; returns once it accepts
    /// connections. After [`OwnPostgres::kill`] the first tries may find the
    /// old server's processes still leaving: it tries again for up to 10 s.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off{}",
            self.port,
            self.dir.display(),
            self.settings
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let start = || {
            as_postgres(&self.bin, "pg_ctl")
                .arg("-D")
                .arg(self.dir.join("cluster"))
                .args(["-o", &options, "-l"])
                .arg(self.dir.join("postgres.log"))
                .args(["-w", "start"])
                .output()
                .unwrap()
        };
        let mut output = start();
        while !output.status.success() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            output = start();
        }
        assert!(
            output.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kills the server's main process with SIGKILL (its backends notice
    /// and leave; nothing is flushed; crash recovery at the next start).
    pub fn kill(&self) {
        let pid_file = std::fs::read_to_string(self.dir.join("cluster").join("postmaster.pid")).unwrap();
        let pid = pid_file.lines().next().unwrap().trim().to_owned();
        run("kill -9", std::process::Command::new("kill").args(["-9", &pid]));
    }

    /// Stops it the abrupt way (`pg_ctl stop -m immediate`: no checkpoint,
    /// connections cut, crash recovery at the next start).
    pub fn stop(&self) {
        run("pg_ctl stop", &mut self.stop_command());
    }

    fn stop_command(&self) -> std::process::Command {
        let mut command = as_postgres(&self.bin, "pg_ctl");
        command.arg("-D").arg(self.dir.join("cluster")).args(["-m", "immediate", "-w", "stop"]);
        command
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.stop_command().output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
