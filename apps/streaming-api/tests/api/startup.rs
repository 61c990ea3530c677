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
    settings.demo.enabled = false;
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

    let refused = run(&["token", "--ttl-seconds", "soon", DEMO_USER]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--ttl-seconds: \"soon\" is not a number"));
    let refused = run(&["token"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("token needs at least one SUBJECT"));
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
    let message = config_error(
        build(|s| {
            kafka(s);
            s.kafka.consume_from = "yesterday".into();
        })
        .await,
    );
    assert!(message.contains("kafka.consume_from"), "{message}");
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
