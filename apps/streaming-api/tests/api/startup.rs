use reqwest::Method;
use secrecy::SecretString;
use streaming_api::demo::DEMO_USER;
use streaming_api::{Application, Settings, StartupError};

use crate::harness::{spawn, MOVIE, SECRET};

async fn build(configure: impl FnOnce(&mut Settings)) -> Result<Application, StartupError> {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.storage.root = dir.path().join("objects");
    settings.demo.enabled = Some(false);
    settings.events.path = dir.path().join("events.jsonl");
    configure(&mut settings);
    Application::build(settings).await
}

fn config_error(result: Result<Application, StartupError>) -> String {
    match result {
        Err(StartupError::Config(message)) => message,
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error, the app started"),
    }
}

#[tokio::test]
async fn inconsistent_settings_are_refused_at_startup() {
    let message = config_error(build(|s| s.streaming.presign_expiry_seconds = 0).await);
    assert!(message.contains("presign_expiry_seconds"), "{message}");
    let message = config_error(build(|s| s.streaming.presign_expiry_seconds = 8 * 24 * 3600).await);
    assert!(message.contains("presign_expiry_seconds"), "{message}");
    let message = config_error(build(|s| s.streaming.cache_buffer_seconds = 120).await);
    assert!(message.contains("cache_buffer_seconds"), "{message}");
    let message = config_error(build(|s| s.auth.secret = Some(SecretString::from("short"))).await);
    assert!(message.contains("auth.secret"), "{message}");
    let message = config_error(build(|s| s.storage.signing_key = Some(SecretString::from("short"))).await);
    assert!(message.contains("storage.signing_key"), "{message}");
    let message = config_error(
        build(|s| {
            s.playback.session_idle_timeout_seconds = 90;
            s.playback.session_close_after_seconds = 60;
        })
        .await,
    );
    assert!(message.contains("session_close_after_seconds"), "{message}");
}

#[tokio::test]
async fn the_cinema_hot_copy_keys_need_a_standalone_redis() {
    let cluster = streaming_core::contract::infra_var("STREAMGATE_REDIS_CLUSTER_URL");
    let message = config_error(
        build(|s| {
            s.redis.url = Some(SecretString::from(cluster));
            s.redis.hot_copy_keys = streaming_redis::HotCopyLayout::Cinema;
            s.auth.secret = Some(SecretString::from(SECRET));
        })
        .await,
    );
    assert!(message.contains("hot_copy_keys") && message.contains("standalone"), "{message}");
}

#[tokio::test]
async fn encryption_keys_are_validated_and_rotation_is_accepted() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // 32 bytes
    for bad in ["nonsense", "1:not-base64!", "1:AAEC", "x:AAEC", &format!("1:{key},1:{key}")] {
        let message = config_error(build(|s| s.cache.encryption_keys = Some(SecretString::from(bad.to_owned()))).await);
        assert!(message.contains("cache.encryption_keys"), "{bad}: {message}");
        assert!(!message.contains(key), "the key itself is never echoed");
    }
    let missing_current = build(|s| {
        s.cache.encryption_keys = Some(SecretString::from(format!("1:{key}")));
        s.cache.current_key_version = Some(2);
    });
    config_error(missing_current.await);
    assert!(build(|s| s.cache.encryption_keys = Some(SecretString::from(format!("1:{key}, 2:{key}")))).await.is_ok());
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let first = build(|_| {}).await.unwrap();
    let port = first.port();
    match build(|s| s.server.port = port).await {
        Err(StartupError::Bind { address, .. }) => assert!(address.ends_with(&port.to_string())),
        other => panic!("expected a bind error, got {:?}", other.map(|a| a.port())),
    }
}

#[tokio::test]
async fn the_token_command_mints_tokens_the_service_accepts() {
    let app = spawn(|_| {}).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"))
            .args(args)
            .env("STREAMING__AUTH__SECRET", SECRET)
            .env("STREAMING__LOG__FILTER", "warn")
            .output()
            .unwrap()
    };
    let output = run(&["token", "--ttl-seconds", "600", DEMO_USER, "someone-else"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let tokens: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(tokens.len(), 2, "one line per subject");
    let response = app.send(Method::GET, &format!("/api/v1/stream/{MOVIE}/progress"), Some(&tokens[0]), None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], DEMO_USER, "the token names its subject");
    // Its mistakes are usage errors: cli.rs.
}

#[tokio::test]
async fn the_healthcheck_command_asks_the_running_service() {
    let app = spawn(|_| {}).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    // The service runs on this test's runtime: the command must not block it.
    let healthcheck = |host: &str, port: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"))
            .arg("healthcheck")
            .env("STREAMING__SERVER__HOST", host)
            .env("STREAMING__SERVER__PORT", port)
            .env("STREAMING__LOG__FILTER", "warn")
            .output()
    };
    // The container's setting: bound to every interface, asked on loopback.
    let healthy = healthcheck("0.0.0.0", &port).await.unwrap();
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
    assert_eq!(String::from_utf8_lossy(&healthy.stdout).trim(), "healthy");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = healthcheck("127.0.0.1", &closed.to_string()).await.unwrap();
    assert!(!down.status.success(), "nothing listens there");
    assert!(String::from_utf8_lossy(&down.stderr).contains("healthcheck: 127.0.0.1:"), "{down:?}");
}

#[tokio::test]
async fn kafka_settings_are_checked_at_startup() {
    let kafka = |s: &mut Settings| {
        s.kafka.enabled = true;
        s.kafka.brokers = "127.0.0.1:1".into();
    };
    let message = config_error(
        build(|s| {
            kafka(s);
            s.kafka.brokers = " , ".into();
        })
        .await,
    );
    assert!(message.contains("kafka.brokers"), "{message}");
    // A choice outside its set cannot be built; loaded, it is refused naming the key.
    let refused = Settings::load(None, [("STREAMING__KAFKA__CONSUME_FROM".to_owned(), "yesterday".to_owned())]);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("kafka.consume_from") && message.contains("yesterday"), "{message}");
    let message = config_error(
        build(|s| {
            kafka(s);
            s.kafka.upstream_topics.insert("media.renamed".into(), "x".into());
        })
        .await,
    );
    assert!(message.contains("kafka.upstream_topics") && message.contains("media.renamed"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streaming.toml");
    std::fs::write(
        &file,
        "[kafka]\nenabled = true\n[kafka.upstream_topics]\n\"media.deleted\" = \"catalog.media-deleted\"\n",
    )
    .unwrap();
    let settings = Settings::load(Some(&file), std::iter::empty()).unwrap();
    assert_eq!(settings.kafka.upstream_topics["media.deleted"], "catalog.media-deleted");
    // A broker that is down does not stop the start: events wait, the consumer retries.
    assert!(build(kafka).await.is_ok());
}

/// An ES256 key, its JWKS document, and tokens signed with it.
struct Issuer {
    key: ring::signature::EcdsaKeyPair,
}

impl Issuer {
    fn new() -> Self {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self { key: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap() }
    }

    fn jwks(&self) -> String {
        use ring::signature::KeyPair;
        let point = self.key.public_key().as_ref();
        let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        serde_json::json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]) }] })
        .to_string()
    }

    fn token(&self, subject: &str) -> String {
        let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        let header = serde_json::json!({ "alg": "ES256", "kid": "k1", "typ": "JWT" });
        let claims = serde_json::json!({ "sub": subject, "iss": "https://id.example", "aud": "streaming",
            "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 600 });
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature = self.key.sign(&ring::rand::SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(signature.as_ref()))
    }
}

#[tokio::test]
async fn tokens_of_an_identity_provider_are_verified_with_its_jwks() {
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();

    let message = config_error(build(|s| s.auth.algorithms = "ES256".parse().unwrap()).await);
    assert!(message.contains("auth.issuer and auth.audience"), "{message}");
    let message = config_error(
        build(|s| {
            s.auth.algorithms = "ES256".parse().unwrap();
            s.auth.issuer = Some("https://id.example".into());
            s.auth.audience = Some("streaming".into());
        })
        .await,
    );
    assert!(message.contains("auth.jwks_file"), "{message}");
    let refused = Settings::load(None, [("STREAMING__AUTH__ALGORITHMS".to_owned(), "RS256,PS512".to_owned())]);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("auth.algorithms") && message.contains("PS512"), "{message}");
    let eager = jwks.clone();
    let message = config_error(
        build(move |s| {
            s.auth.algorithms = "ES256".parse().unwrap();
            s.auth.issuer = Some("https://id.example".into());
            s.auth.audience = Some("streaming".into());
            s.auth.jwks_file = Some(eager);
            s.auth.jwks_min_refresh_seconds = 0;
        })
        .await,
    );
    assert!(message.contains("auth.jwks_min_refresh_seconds"), "{message}");

    let jwks_file = jwks.clone();
    let app = spawn(move |s| {
        s.auth.algorithms = "ES256".parse().unwrap();
        s.auth.issuer = Some("https://id.example".into());
        s.auth.audience = Some("streaming".into());
        s.auth.jwks_file = Some(jwks_file);
    })
    .await;
    let progress = format!("/api/v1/stream/{MOVIE}/progress");
    let ok = app.send(Method::GET, &progress, Some(&issuer.token(DEMO_USER)), None).await;
    assert_eq!(ok.status(), 200);
    let hs256 = crate::harness::token_for(DEMO_USER);
    let refused = app.send(Method::GET, &progress, Some(&hs256), None).await;
    assert_eq!(refused.status(), 401, "HS256 is not accepted when only ES256 is");
    let stranger = Issuer::new().token(DEMO_USER);
    assert_eq!(app.send(Method::GET, &progress, Some(&stranger), None).await.status(), 401);
}

/// Demo mode never reaches production: with a real store or a token secret
/// configured and nothing said about demo mode, no demo media are written
/// and no token is made; asking for it beside a real store stops the start.
#[tokio::test]
async fn demo_mode_stays_off_beside_real_stores_and_secrets() {
    let url = streaming_postgres::testing::fresh_database_url(&streaming_core::contract::infra_var(
        "STREAMGATE_POSTGRES_URL",
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = |url: &str| {
        let mut settings = Settings::default();
        settings.server.port = 0;
        settings.storage.root = dir.path().join("objects");
        settings.events.path = dir.path().join("events.jsonl");
        settings.postgres.url = Some(SecretString::from(url.to_owned()));
        settings.postgres.migrate_on_start = true;
        settings.auth.secret = Some(SecretString::from(SECRET));
        settings
    };
    let app = Application::build(settings(&url)).await.unwrap();
    assert!(app.demo().is_none(), "no demo token");
    assert_eq!(crate::harness::psql(&url, "SELECT count(*) FROM media").trim(), "0", "no demo media");
    drop(app);

    let mut asked = settings(&url);
    asked.demo.enabled = Some(true);
    let message = config_error(Application::build(asked).await);
    assert!(message.contains("demo.enabled") && message.contains("postgres.url"), "{message}");

    let secret_only = build(|s| {
        s.demo.enabled = None;
        s.auth.secret = Some(SecretString::from(SECRET));
    })
    .await
    .unwrap();
    assert!(secret_only.demo().is_none(), "a configured token secret: not a demo");
    let nothing = build(|s| s.demo.enabled = None).await.unwrap();
    assert!(nothing.demo().is_some(), "nothing configured: the embedded demo");
    let asked = build(|s| {
        s.demo.enabled = Some(true);
        s.auth.secret = Some(SecretString::from(SECRET));
    })
    .await
    .unwrap();
    assert!(asked.demo().is_some(), "asked for, with a secret but no real store");
}

/// Demo media on a real setup are an explicit, separate step.
#[tokio::test]
async fn the_seed_demo_command_writes_the_demo_media_into_the_configured_stores() {
    let url = streaming_postgres::testing::fresh_database_url(&streaming_core::contract::infra_var(
        "STREAMGATE_POSTGRES_URL",
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"))
        .arg("seed-demo")
        .env("STREAMING__POSTGRES__URL", &url)
        .env("STREAMING__POSTGRES__MIGRATE_ON_START", "true")
        .env("STREAMING__STORAGE__ROOT", dir.path().join("objects"))
        .env("STREAMING__EVENTS__PATH", dir.path().join("events.jsonl"))
        .env("STREAMING__AUTH__SECRET", SECRET)
        .env("STREAMING__LOG__FILTER", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.starts_with("demo media written: user 01JG0DEM0VSER00000000000A1"), "{said}");
    assert!(!said.contains("eyJ"), "no token is printed: {said}");
    let media = crate::harness::psql(&url, "SELECT kind, count(*) FROM media GROUP BY kind ORDER BY kind");
    assert_eq!(media.trim(), "movie|2\ntrack|3", "the demo movie, its trailer and three tracks");
    assert!(dir.path().join("objects").join("movies").is_dir(), "their files in the object store");
}

/// Instances on a shared store must share their secrets: unset and not
/// derivable, the start stops naming each, instead of generating keys that
/// break grants and cached entries between instances.
#[tokio::test]
async fn a_shared_store_without_shared_secrets_stops_the_start() {
    let message = config_error(
        build(|s| {
            s.postgres.url = Some(SecretString::from("postgres://127.0.0.1:1/none"));
            s.auth.secret = None;
        })
        .await,
    );
    for name in ["postgres.url", "auth.secret", "playback.grant_secret", "storage.signing_key"] {
        assert!(message.contains(name), "{name}: {message}");
    }
}

/// With only `auth.secret` shared (as the cinema's `JWT_SECRET_KEY` gives),
/// a manifest grant issued by one instance is honoured by another.
#[tokio::test]
async fn a_grant_from_one_instance_works_on_another_with_only_the_root_secret_shared() {
    let url = streaming_postgres::testing::fresh_database_url(&streaming_core::contract::infra_var(
        "STREAMGATE_POSTGRES_URL",
    ))
    .await;
    let instance = || {
        let url = url.clone();
        spawn(move |s| {
            s.postgres.url = Some(SecretString::from(url));
            s.postgres.migrate_on_start = true;
            s.storage.signing_key = None;
        })
    };
    let (a, b) = (instance().await, instance().await);
    let started: serde_json::Value =
        a.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, None).await.json().await.unwrap();
    let manifest = started["manifest_url"].as_str().unwrap();
    let path = &manifest[manifest.find("/api/").unwrap()..];
    let through_b = b.client.get(b.url(path)).send().await.unwrap();
    assert_eq!(through_b.status(), 200, "{}", through_b.text().await.unwrap());
}

/// An operator reads from the first lines what runs: one line with the
/// version, the adapters, the token algorithms and the listeners, and one
/// warning per secret made up at random (lost with the process).
#[tokio::test]
async fn the_start_is_summed_up_in_one_line_and_each_random_secret_is_warned_of() {
    use std::time::Duration;

    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let port = streaming_core::contract::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"))
        .env("STREAMING__SERVER__PORT", port.to_string())
        .env("STREAMING__STORAGE__ROOT", dir.path().join("objects"))
        .env("STREAMING__EVENTS__PATH", dir.path().join("events.jsonl"))
        .env("STREAMING__LOG__FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut summary, mut warnings) = (None, Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while summary.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line()).await.unwrap().unwrap().unwrap();
        let Ok(line) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if line["level"] == "WARN" {
            warnings.push(line["message"].as_str().unwrap_or_default().to_owned());
        }
        if line["message"] == "streaming service started" {
            summary = Some(line);
        }
    }
    // The warnings come with the summary, before anything else.
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
        let Ok(line) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if line["level"] == "WARN" {
            warnings.push(line["message"].as_str().unwrap_or_default().to_owned());
        }
    }
    let summary = summary.unwrap();
    assert_eq!(summary["version"], env!("CARGO_PKG_VERSION"));
    for (field, value) in [
        ("storage", "localfs"),
        ("cache", "memory"),
        ("database", "memory"),
        ("events", "file"),
        ("users", "memory"),
        ("token_algorithms", "HS256"),
        ("metrics", "public"),
    ] {
        assert_eq!(summary[field], value, "{field} in {summary}");
    }
    assert_eq!(summary["listening"], format!("http://127.0.0.1:{port}"), "{summary}");
    for secret in ["auth.secret", "playback.grant_secret", "cache.encryption_keys", "storage.signing_key"] {
        assert_eq!(
            warnings.iter().filter(|w| w.contains(secret) && w.contains("random")).count(),
            1,
            "one warning for {secret}: {warnings:#?}"
        );
    }
}

/// An idle connection stays open `server.keep_alive_seconds` (default 75 s,
/// longer than a load balancer's usual 60 s idle timeout: a server that
/// closes first races the balancer's next request on that connection, which
/// then fails as a 502), and is closed after it.
#[tokio::test]
async fn idle_connections_are_kept_open_as_long_as_the_setting_says() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert!(Settings::default().server.keep_alive_seconds > 60, "the default outlasts a balancer's idle timeout");
    let app = spawn(|s| s.server.keep_alive_seconds = 2).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let ask = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // Answers are small: one read each, up to the end of the body.
    async fn answer(stream: &mut tokio::net::TcpStream) -> String {
        let mut buffer = vec![0_u8; 4096];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer or a close within 5 s")
            .unwrap_or(0);
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    }
    stream.write_all(ask).await.unwrap();
    assert!(answer(&mut stream).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    stream.write_all(ask).await.unwrap();
    assert!(answer(&mut stream).await.starts_with("HTTP/1.1 200"), "open after 1.2 s of 2");
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    assert_eq!(answer(&mut stream).await, "", "closed by the server after 2 s idle");
}
