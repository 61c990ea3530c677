//! The command line: `streaming-api [--config FILE] [COMMAND]`, parsed by
//! clap (`--help` on each command, `--version`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::demo::DemoInfo;
use crate::log_writer::BatchedWriter;
use crate::{Application, Settings};

/// The streaming-access service: who may play which media, short-lived
/// signed URLs straight to the object store, playback progress, sessions
/// and events.
#[derive(Debug, Parser)]
#[command(
    name = "streaming-api",
    version,
    after_help = "Settings come from built-in defaults, then FILE, then the cinema service's variables \
                  (PORT, DATABASE_URL, …), then STREAMING__SECTION__KEY environment variables; \
                  docs/configuration.md lists every key."
)]
struct Cli {
    /// A TOML settings file.
    #[arg(long, global = true, value_name = "FILE", env = "STREAMING_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply the pending database migrations to postgres.url and exit.
    Migrate,
    /// Write the demo media into the configured catalog and object store and exit.
    SeedDemo,
    /// Ask the service on server.host:server.port for /healthz; exit 0 if it answers 200 within 3 s.
    Healthcheck,
    /// Print one token per SUBJECT, signed with auth.secret and carrying the configured iss/aud/type.
    Token {
        /// How long the tokens are valid, in seconds.
        #[arg(long, value_name = "N", default_value_t = 3600)]
        ttl_seconds: u64,
        /// A user id; one token per line for each.
        #[arg(value_name = "SUBJECT", required = true)]
        subjects: Vec<String>,
    },
    /// Work with the settings.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the settings without starting: print the effective ones as
    /// TOML on stdout (every secret redacted), then every problem on stderr;
    /// exit 1 if there is one.
    Check,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments are not understood, or help or the version was asked
    /// for: clap's answer, with its exit code (0 for help, 2 for a mistake).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// The settings cannot be loaded.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// The settings are read but cannot be used: every problem.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
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

/// Runs the command line.
///
/// # Errors
/// [`CliError`]: the usage (or help) text, why the service could not start
/// or stopped abnormally, or why the command failed.
pub async fn run(args: impl IntoIterator<Item = String>) -> Result<(), CliError> {
    let cli = Cli::try_parse_from(args)?;
    let command = cli.command.unwrap_or(Command::Serve);
    let env = std::env::vars();
    if let Command::Config(ConfigCommand::Check) = command {
        return check_config(Settings::load(cli.config.as_deref(), env));
    }
    let settings = Settings::load(cli.config.as_deref(), env)?;
    if let Command::Serve = command {
        // Every problem at once, rather than the first the start meets.
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(CliError::Invalid(problems));
        }
    }
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
    let outcome = run_command(command, settings, &lines).await;
    // Buffered spans go out before the process ends (the exporter blocks).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    lines.flush();
    outcome
}

/// `streaming-api config check`: the effective settings as TOML, secrets
/// redacted, on stdout; every problem on stderr, one a line.
#[allow(clippy::print_stdout, clippy::print_stderr)] // the command's answer
fn check_config(loaded: Result<Settings, crate::settings::SettingsError>) -> Result<(), CliError> {
    let settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            for problem in error.problems() {
                eprintln!("problem: {problem}");
            }
            return Err(failed("config check")(format!(
                "{} problem(s); nothing else was checked",
                error.problems().len()
            )));
        }
    };
    let mut effective =
        toml::Value::try_from(&settings).map_err(|e| failed("config check")(format!("printing the settings: {e}")))?;
    redact_url_passwords(&mut effective);
    let effective =
        toml::to_string(&effective).map_err(|e| failed("config check")(format!("printing the settings: {e}")))?;
    print!("{effective}");
    let problems = settings.problems();
    for problem in &problems {
        eprintln!("problem: {problem}");
    }
    if problems.is_empty() {
        eprintln!("config check: no problems");
        Ok(())
    } else {
        Err(failed("config check")(format!("{} problem(s)", problems.len())))
    }
}

/// The password (or the token alone) in the user part of every URL among
/// `value`'s strings, as `<redacted>`: settings that are not secrets
/// themselves (`users.url`, `auth.jwks_url`, `otlp.endpoint`, …) may still
/// carry credentials in their URL.
fn redact_url_passwords(value: &mut toml::Value) {
    match value {
        toml::Value::String(text) => {
            let Some((scheme, rest)) = text.split_once("://") else { return };
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let Some((user_info, host)) = authority.rsplit_once('@') else { return };
            let user_info = match user_info.split_once(':') {
                Some((user, _)) => format!("{user}:{}", streaming_core::config::REDACTED),
                None => streaming_core::config::REDACTED.to_owned(),
            };
            let path = &rest[authority.len()..];
            *text = format!("{scheme}://{user_info}@{host}{path}");
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact_url_passwords),
        toml::Value::Table(table) => table.iter_mut().for_each(|(_, value)| redact_url_passwords(value)),
        _ => {}
    }
}

async fn run_command(
    command: Command,
    settings: Settings,
    lines: &BatchedWriter<std::io::Stdout>,
) -> Result<(), CliError> {
    match command {
        // `config check` never gets here: it answers before logging is set up.
        Command::Serve | Command::Config(_) => {}
        Command::Migrate => return run_migrations(&settings).await,
        Command::SeedDemo => return seed_demo(settings).await,
        Command::Healthcheck => return healthcheck(&settings).await,
        Command::Token { ttl_seconds, subjects } => {
            return print_tokens(&settings, &subjects, Duration::from_secs(ttl_seconds))
        }
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

/// `streaming-api migrate`: applies the pending migrations to `postgres.url`,
/// once the database answers (`postgres.start_wait_seconds`).
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
    // A Job started beside its database waits for it, as the service does.
    settings.postgres.answered(&db).await.map_err(|e| failed("migrate")(e.to_string()))?;
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
