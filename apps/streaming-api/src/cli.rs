//! The command line: `streaming-api [serve | migrate | seed-demo | healthcheck | token SUBJECT…] [--config FILE]`.

use std::path::PathBuf;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::demo::DemoInfo;
use crate::log_writer::BatchedWriter;
use crate::{Application, Settings};

const USAGE: &str =
    "usage: streaming-api [serve | migrate | seed-demo | healthcheck | token [--ttl-seconds N] SUBJECT...] [--config FILE]\n\n\
serve (the default) runs the service; migrate applies pending database migrations and exits;\n\
seed-demo writes the demo media into the configured stores (catalog and objects) and exits;\n\
healthcheck asks the service on server.host:server.port for /healthz and exits 0 if it answers 200;\n\
token prints one token per SUBJECT (a user id) signed with auth.secret, valid N seconds (default 3600).\n\
Settings come from built-in defaults, then FILE (or $STREAMING_CONFIG), then\n\
STREAMING__SECTION__KEY environment variables.";

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments are not understood (or help was asked for): the usage text.
    #[error("{0}")]
    Usage(String),
    /// The settings cannot be loaded.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The service could not start.
    #[error(transparent)]
    Startup(#[from] crate::StartupError),
    /// The service stopped abnormally.
    #[error("the service stopped: {0}")]
    Stopped(std::io::Error),
    /// A one-shot command failed.
    #[error("{command}: {problem}")]
    Failed {
        /// The command (`migrate`, `healthcheck`, …).
        command: &'static str,
        /// What went wrong.
        problem: String,
    },
}

fn failed(command: &'static str) -> impl FnOnce(String) -> CliError {
    move |problem| CliError::Failed { command, problem }
}

fn usage(problem: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("{problem}\n\n{USAGE}"))
}

enum Command {
    Serve,
    Migrate,
    SeedDemo,
    Healthcheck,
    Token(Vec<String>),
}

/// Runs the command line.
///
/// # Errors
/// [`CliError`]: why the service could not start or stopped abnormally, or
/// the command failed.
pub async fn run(args: impl IntoIterator<Item = String>) -> Result<(), CliError> {
    let mut config: Option<PathBuf> = std::env::var_os("STREAMING_CONFIG").map(PathBuf::from);
    let mut args = args.into_iter().skip(1);
    let mut command = Command::Serve;
    let mut ttl_seconds: u64 = 3600;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "serve" => {}
            "migrate" => command = Command::Migrate,
            "seed-demo" => command = Command::SeedDemo,
            "healthcheck" => command = Command::Healthcheck,
            "token" => command = Command::Token(Vec::new()),
            "--config" => config = Some(args.next().ok_or_else(|| usage("--config needs a file"))?.into()),
            "--ttl-seconds" => {
                let value = args.next().ok_or_else(|| usage("--ttl-seconds needs a number"))?;
                ttl_seconds = value.parse().map_err(|_| usage(format!("--ttl-seconds: {value:?} is not a number")))?;
            }
            "-h" | "--help" => return Err(CliError::Usage(USAGE.into())),
            subject if !subject.starts_with('-') && matches!(command, Command::Token(_)) => {
                if let Command::Token(subjects) = &mut command {
                    subjects.push(subject.to_owned());
                }
            }
            other => return Err(usage(format!("unknown argument {other:?}"))),
        }
    }
    let settings = Settings::load(config.as_deref(), std::env::vars())?;
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&settings.log.filter)).map_err(|e| {
            crate::telemetry::TelemetryError::Setting(crate::settings::InvalidSetting {
                key: "log.filter",
                problem: e.to_string(),
            })
        })?;
    // Lines go to stdout in batches, at least every 50 ms.
    let lines = BatchedWriter::start(std::io::stdout(), Duration::from_millis(50))
        .map_err(|e| CliError::Failed { command: "serve", problem: format!("log writer thread: {e}") })?;
    let telemetry = crate::telemetry::install_logging(&settings.log, &settings.otlp, filter, lines.clone())?;
    let outcome = run_command(command, settings, ttl_seconds, &lines).await;
    // Buffered spans go out before the process ends (the exporter blocks).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    lines.flush();
    outcome
}

async fn run_command(
    command: Command,
    settings: Settings,
    ttl_seconds: u64,
    lines: &BatchedWriter<std::io::Stdout>,
) -> Result<(), CliError> {
    match command {
        Command::Serve => {}
        Command::Migrate => return run_migrations(&settings).await,
        Command::SeedDemo => return seed_demo(settings).await,
        Command::Healthcheck => return healthcheck(&settings).await,
        Command::Token(subjects) => return print_tokens(&settings, &subjects, Duration::from_secs(ttl_seconds)),
    }

    let app = Application::build(settings).await?;
    app.log_summary();
    if let Some(demo) = app.demo() {
        // The log lines so far come first.
        lines.flush();
        print_demo_banner(app.base_url(), demo);
    }
    app.run_until_stopped().await.map_err(CliError::Stopped)
}

// The banner is the embedded mode's user interface, written straight to the
// terminal (never through the log pipeline, which must not carry tokens).
#[allow(clippy::print_stdout)]
fn print_demo_banner(base_url: &str, demo: &DemoInfo) {
    println!("\nDemo user: {}", demo.user);
    for track in &demo.tracks {
        println!("  track {}  {:<18} {}", track.id, track.title, track.status);
    }
    println!("\nDemo player: {base_url}/");
    if demo.token.is_empty() {
        println!("\nNo demo token: auth.algorithms does not include HS256; use a token of your issuer.\n");
    } else {
        println!("\nDemo token (valid 12 hours):\n  export TOKEN={}\n", demo.token);
    }
    if let Some(first) = demo.tracks.first() {
        println!("Get a stream URL, then fetch the first 100 bytes from it:");
        println!("  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" {base_url}/tracks/{}/stream", first.id);
        println!(
            "  curl -s -H 'Range: bytes=0-99' \"$(curl -s -X POST -H \"Authorization: Bearer $TOKEN\" \
             {base_url}/tracks/{}/stream | sed -E 's/.*\"streamUrl\":\"([^\"]+)\".*/\\1/')\" | xxd | head\n",
            first.id
        );
    }
}

/// `streaming-api seed-demo`: the demo media (tracks of the demo user, the
/// demo movie and its trailer) written into the configured catalog and
/// object store, for trying a real setup. Only those two stores are opened
/// (no listener, cache or broker); no token is printed (`streaming-api
/// token` makes one).
#[allow(clippy::print_stdout)] // the command's answer
async fn seed_demo(settings: Settings) -> Result<(), CliError> {
    let seeded = crate::startup::seed_demo_media(&settings).await?;
    println!("demo media written: user {}, movie {}, {} tracks", seeded.user, seeded.movie, seeded.tracks.len());
    Ok(())
}

/// `streaming-api migrate`: applies the pending migrations to `postgres.url`.
#[allow(clippy::print_stdout)] // the command's answer
async fn run_migrations(settings: &Settings) -> Result<(), CliError> {
    use secrecy::ExposeSecret;
    let url = settings
        .postgres
        .url
        .as_ref()
        .ok_or_else(|| failed("migrate")("needs postgres.url (STREAMING__POSTGRES__URL)".into()))?;
    let db = streaming_postgres::PgDatabase::connect(&streaming_postgres::PgConfig::new(url.expose_secret()))
        .await
        .map_err(|e| failed("migrate")(e.to_string()))?;
    let applied = db.migrate().await.map_err(|e| failed("migrate")(e.to_string()))?;
    println!("{applied} migration(s) applied; the schema is current");
    Ok(())
}

/// `streaming-api healthcheck`: `GET /healthz` on the configured address
/// (the loopback address when the service binds every interface), 3 s at
/// most. For container health checks in images without a shell or curl.
#[allow(clippy::print_stdout)] // the command's answer
async fn healthcheck(settings: &Settings) -> Result<(), CliError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other.trim_start_matches('[').trim_end_matches(']'),
    };
    let address = (host, settings.server.port);
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
        let mut head = Vec::with_capacity(64);
        let mut buffer = [0_u8; 64];
        while !head.contains(&b'\n') && head.len() < 1024 {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..read]);
        }
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(Duration::from_secs(3), ask)
        .await
        .map_err(|_| failed("healthcheck")(format!("no answer from {host}:{} within 3 s", settings.server.port)))?
        .map_err(|e| failed("healthcheck")(format!("{host}:{}: {e}", settings.server.port)))?;
    let status_line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default());
    if status_line.split_whitespace().nth(1) == Some("200") {
        println!("healthy");
        Ok(())
    } else {
        Err(failed("healthcheck")(format!("/healthz answered {:?}", status_line.trim())))
    }
}

/// `streaming-api token SUBJECT...`: one token per line, for load tests,
/// scripts and local development against a service with the same settings.
#[allow(clippy::print_stdout)] // the command's answer
fn print_tokens(settings: &Settings, subjects: &[String], ttl: Duration) -> Result<(), CliError> {
    let secret = settings
        .auth
        .secret
        .as_ref()
        .ok_or_else(|| failed("token")("needs auth.secret (STREAMING__AUTH__SECRET)".into()))?;
    if subjects.is_empty() {
        return Err(usage("token needs at least one SUBJECT"));
    }
    for subject in subjects {
        streaming_core::domain::UserId::try_from(subject.as_str())
            .map_err(|e| failed("token")(format!("subject {subject:?} is not a user id: {e}")))?;
    }
    let now = time::OffsetDateTime::now_utc();
    let mut out = String::with_capacity(subjects.len() * 256);
    for subject in subjects {
        out.push_str(
            &crate::auth::mint_token(&settings.auth, secret, subject, ttl, now)
                .map_err(|e| failed("token")(format!("token for {subject:?}: {e}")))?,
        );
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
