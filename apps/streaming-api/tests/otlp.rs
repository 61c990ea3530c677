//! Trace export (the `otlp` feature): a request's spans reach an OTLP/HTTP
//! endpoint in the caller's trace, port calls included, and the export
//! carries no token, URL or signature.
//!
//! The collector is a loopback HTTP listener that keeps each posted body;
//! the protobuf is searched for the ids (raw bytes) and span names (UTF-8)
//! rather than decoded. Its own test binary: the subscriber is process-wide.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::{Arc, Mutex};

use harness::{spawn, READY};
use streaming_api::settings::{LogSettings, OtlpSettings};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

type Bodies = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Accepts OTLP/HTTP posts on loopback; keeps (request line, body) of each.
async fn collector() -> (String, Bodies) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let bodies: Bodies = Arc::default();
    let kept = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        stream.read_line(&mut header).await.unwrap();
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    kept.lock().unwrap().push((request_line.trim().to_owned(), body));
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    stream.get_mut().write_all(reply).await.unwrap();
                }
            });
        }
    });
    (address, bodies)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_in_the_callers_trace() {
    let (endpoint, bodies) = collector().await;
    let otlp = OtlpSettings { endpoint: Some(endpoint), ..OtlpSettings::default() };
    let log = LogSettings { filter: "warn".into(), ..LogSettings::default() };
    let telemetry = streaming_api::telemetry::install_logging(
        &log,
        &otlp,
        tracing_subscriber::EnvFilter::new("warn"),
        std::io::sink,
    )
    .unwrap();

    let app = spawn(|_| {}).await;
    // A request in the caller's trace…
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = app
        .client
        .post(app.url(&format!("/tracks/{READY}/stream")))
        .bearer_auth(&app.demo.token)
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["trace-id"], trace);
    let returned = response.headers()["traceparent"].to_str().unwrap().to_owned();
    let span = returned.split('-').nth(2).unwrap().to_owned();
    assert!(returned.starts_with(&format!("00-{trace}-")) && span != parent, "{returned}");
    let url = response.json::<serde_json::Value>().await.unwrap()["streamUrl"].as_str().unwrap().to_owned();
    // …and one that starts a trace: the id it reports is the exported one.
    let fresh = app.stream(READY, Some(&app.demo.token)).await;
    let fresh_trace = fresh.headers()["trace-id"].to_str().unwrap().to_owned();

    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.unwrap();
    let bodies = bodies.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "nothing was exported");
    assert!(bodies.iter().all(|(line, _)| line == "POST /v1/traces HTTP/1.1"), "{:?}", bodies[0].0);
    let export: Vec<u8> = bodies.into_iter().flat_map(|(_, body)| body).collect();

    for id in [trace, parent, &span, &fresh_trace] {
        assert!(contains(&export, &hex_bytes(id)), "id {id} not exported");
    }
    let names = ["http.request", "auth.verify", "ratelimit.check", "stream.get_url", "catalog.media", "cache.get"];
    for name in names.into_iter().chain(["storage.presign", "cache.set", "streaming-api"]) {
        assert!(contains(&export, name.as_bytes()), "{name} not exported");
    }
    let signature = url.split("sig=").nth(1).unwrap();
    for secret in [app.demo.token.as_str(), url.as_str(), signature] {
        assert!(!contains(&export, secret.as_bytes()), "exported a secret");
    }
}
