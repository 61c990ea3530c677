//! The command line as an operator meets it: help, version, and
//! `config check`, run as the built binary.

use std::process::{Command, Output};

/// Runs the binary with `args` and only the `STREAMING__*` variables of
/// `env` (and none of the test process's own settings).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streaming-api"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("STREAMING") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied()).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_and_version_answer_and_exit_zero() {
    for flag in ["--help", "-h", "help"] {
        let output = run(&[flag], &[]);
        assert_eq!(output.status.code(), Some(0), "{flag}: {}", stderr(&output));
        let help = stdout(&output);
        assert!(help.contains("Usage: streaming-api"), "{flag}: {help}");
        for command in ["serve", "migrate", "seed-demo", "healthcheck", "token", "config"] {
            assert!(help.contains(command), "{flag} names {command}: {help}");
        }
    }
    let version = run(&["--version"], &[]);
    assert_eq!(version.status.code(), Some(0), "{}", stderr(&version));
    assert_eq!(stdout(&version).trim(), format!("streaming-api {}", env!("CARGO_PKG_VERSION")));

    let token = run(&["token", "--help"], &[]);
    assert_eq!(token.status.code(), Some(0));
    assert!(stdout(&token).contains("--ttl-seconds"), "{}", stdout(&token));
    let check = run(&["config", "check", "--help"], &[]);
    assert_eq!(check.status.code(), Some(0));
    assert!(stdout(&check).contains("redacted"), "{}", stdout(&check));

    // A mistake is a usage error (exit 2) naming what was not understood.
    let unknown = run(&["--verbose"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("--verbose"), "{}", stderr(&unknown));
    let bad_ttl = run(&["token", "--ttl-seconds", "soon", "someone"], &[]);
    assert_eq!(bad_ttl.status.code(), Some(2));
    assert!(stderr(&bad_ttl).contains("soon"), "{}", stderr(&bad_ttl));
    let no_subject = run(&["token"], &[]);
    assert_eq!(no_subject.status.code(), Some(2));
    assert!(stderr(&no_subject).contains("SUBJECT"), "{}", stderr(&no_subject));
}

#[test]
fn config_check_lists_every_problem_at_once() {
    // Values that cannot be read, in two sections and twice in one.
    let unreadable = run(
        &["config", "check"],
        &[
            ("STREAMING__SERVER__PORT", "eighty"),
            ("STREAMING__SERVER__WORKERS", "many"),
            ("STREAMING__LOG__FORMAT", "xml"),
        ],
    );
    assert_eq!(unreadable.status.code(), Some(1));
    let problems = stderr(&unreadable);
    for key in ["server.port", "server.workers", "log.format"] {
        assert!(problems.contains(key), "{key} is named: {problems}");
    }

    // Values that are read but do not fit together, in different sections.
    let inconsistent = run(
        &["config", "check"],
        &[
            ("STREAMING__STREAMING__PRESIGN_EXPIRY_SECONDS", "0"),
            ("STREAMING__AUTH__SECRET", "too-short"),
            ("STREAMING__ADMIN__ENABLED", "true"),
            ("STREAMING__METRICS__LISTENER", "admin"),
            ("STREAMING__CACHE__ENCRYPTION_KEYS", "1:not-base64!"),
            ("STREAMING__KAFKA__ENABLED", "true"),
            ("STREAMING__KAFKA__BROKERS", ""),
            ("STREAMING__OTLP__ENDPOINT", "collector:4318"),
        ],
    );
    assert_eq!(inconsistent.status.code(), Some(1));
    let problems = stderr(&inconsistent);
    for key in [
        "streaming.presign_expiry_seconds",
        "auth.secret",
        "admin.keys",
        "cache.encryption_keys",
        "kafka",
        "otlp.endpoint",
    ] {
        assert!(problems.contains(key), "{key} is named: {problems}");
    }
    assert!(!problems.contains("too-short") && !problems.contains("not-base64"), "no secret echoed: {problems}");
}

#[test]
fn config_check_prints_the_effective_settings_with_every_secret_redacted() {
    let secrets = [
        ("STREAMING__AUTH__SECRET", "auth-secret-0123456789abcdef0123456789"),
        ("STREAMING__PLAYBACK__GRANT_SECRET", "grant-secret-0123456789abcdef012345"),
        ("STREAMING__CACHE__ENCRYPTION_KEYS", "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ("STREAMING__STORAGE__SIGNING_KEY", "signing-key-0123456789abcdef01234567"),
        ("STREAMING__STORAGE__S3__SECRET_KEY", "s3-secret-key-0123456789"),
        ("STREAMING__STORAGE__S3__ACCESS_KEY", "s3-access"),
        ("STREAMING__POSTGRES__URL", "postgres://app:pg-password-0123@db:5432/app"),
        ("STREAMING__REDIS__URL", "redis://:redis-password-0123@cache:6379"),
        ("STREAMING__USERS__URL", "http://svc:users-url-password-0123@users:8002/v1?x=1"),
        ("STREAMING__AUTH__JWKS_URL", "https://jwks-url-token-0123@issuer.example/keys"),
        ("STREAMING__USERS__CREDENTIALS", "service"),
        ("STREAMING__USERS__SERVICE_TOKEN", "users-service-token-0123"),
        ("STREAMING__ADMIN__ENABLED", "true"),
        ("STREAMING__ADMIN__KEYS", "ops:admin-key-0123456789abcdef0123456789ab"),
    ];
    let mut env = secrets.to_vec();
    env.push(("STREAMING__SERVER__PORT", "9123"));
    let output = run(&["config", "check"], &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = stdout(&output);
    // The URLs' passwords are checked below; the access key id and the
    // users URL are not secrets, and are shown.
    let secret = |key: &str| ["SECRET", "_KEYS", "SIGNING_KEY", "TOKEN"].iter().any(|part| key.contains(part));
    for (key, value) in secrets.iter().filter(|(key, _)| secret(key)) {
        let word = value.rsplit([':', '@']).find(|part| part.len() > 8).unwrap_or(value);
        assert!(!printed.contains(word), "{key} is redacted: {printed}");
    }
    for password in [
        "pg-password-0123",
        "redis-password-0123",
        "users-service-token-0123",
        "users-url-password-0123",
        "jwks-url-token-0123",
    ] {
        assert!(!printed.contains(password), "{password} is redacted: {printed}");
    }
    // The printed settings are TOML with every section, the defaults included.
    let effective: toml::Table = printed.parse().unwrap();
    assert_eq!(effective["server"]["port"].as_integer(), Some(9123));
    assert_eq!(effective["streaming"]["presign_expiry_seconds"].as_integer(), Some(120), "a default");
    assert_eq!(effective["auth"]["secret"].as_str(), Some("<redacted>"));
    assert_eq!(effective["postgres"]["url"].as_str(), Some("<redacted>"));
    assert_eq!(effective["storage"]["s3"]["access_key"].as_str(), Some("s3-access"));
    // A URL that is no secret keeps all but the credentials it carries.
    assert_eq!(effective["users"]["url"].as_str(), Some("http://svc:<redacted>@users:8002/v1?x=1"));
    assert_eq!(effective["auth"]["jwks_url"].as_str(), Some("https://<redacted>@issuer.example/keys"));
    assert!(stderr(&output).contains("no problems"), "{}", stderr(&output));
}
