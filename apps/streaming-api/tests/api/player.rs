//! The demo player: the page and its files as served, and the whole page in
//! headless Chromium (Debian's, driven by playwright-core from the npm
//! registry; both from `cargo xtask infra up`).

use std::path::PathBuf;

use streaming_core::contract::infra_var;

use crate::harness::{spawn, MOVIE, READY};

#[tokio::test]
async fn the_page_carries_the_demo_token_and_a_strict_policy() {
    let app = spawn(|_| {}).await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(page.headers()["cache-control"], "no-store", "the page carries a token");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("data-demo-token=\"{}\"", app.demo.token)));
    assert!(!html.contains("<script>"), "no inline script");

    for (file, kind) in
        [("player.js", "text/javascript"), ("player.css", "text/css"), ("hls.light.min.js", "text/javascript")]
    {
        let response = app.client.get(app.url(&format!("/player/{file}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{file}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind), "{file}");
    }
    let missing = app.client.get(app.url("/player/..%2Fsecret")).send().await.unwrap();
    crate::harness::assert_problem(missing, 404, "player-not-found").await;
}

/// `GET /` answered with `host` as the `Host` header: its body.
async fn root_as(app: &crate::harness::TestApp, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// A page reached through DNS rebinding (any name pointed at 127.0.0.1)
/// arrives from a loopback client with a foreign `Host`: it never gets the
/// demo token.
#[tokio::test]
async fn the_page_with_the_demo_token_answers_only_a_loopback_host() {
    let app = spawn(|_| {}).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "localhost".into(), "[::1]".into()] {
        let page = root_as(&app, &host).await;
        assert!(page.contains(&app.demo.token), "{host}: the page with the token");
    }
    for host in ["rebind.attacker.example", "rebind.attacker.example:8080", "127.0.0.1.nip.io", "localhost.evil", ""] {
        let page = root_as(&app, host).await;
        assert!(!page.contains(&app.demo.token), "{host:?} got the demo token");
        assert!(page.contains("\"service\":\"streamgate\""), "{host:?}: the description instead: {page}");
    }
}

#[tokio::test]
async fn without_demo_mode_there_is_no_page() {
    let app = spawn(|s| s.demo.enabled = Some(false)).await;
    let response = app.client.get(app.url("/player/player.js")).send().await.unwrap();
    crate::harness::assert_problem(response, 404, "player-not-found").await;
    // `/` describes the service instead (the cinema service's root route).
    let root: serde_json::Value = app.client.get(app.url("/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(root["service"], "streamgate");
    assert_eq!(root["status"], "running");
}

/// The vendored files are byte for byte those of the versions
/// `web/package.json` names (installed from the npm registry by `infra up`).
#[test]
fn the_vendored_files_are_the_published_ones() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crates/streaming-http/web");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(web.join("package.json")).unwrap()).unwrap();
    for (package, variable, files) in [
        ("hls.js", "STREAMGATE_HLS_JS", &[("vendor/hls.light.min.js", "dist/hls.light.min.js")][..]),
        (
            "swagger-ui-dist",
            "STREAMGATE_SWAGGER_UI",
            &[("vendor/swagger-ui-bundle.js", "swagger-ui-bundle.js"), ("vendor/swagger-ui.css", "swagger-ui.css")][..],
        ),
    ] {
        let version = manifest["dependencies"][package].as_str().unwrap();
        let published = PathBuf::from(infra_var(variable));
        let published_manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(published.join("package.json")).unwrap()).unwrap();
        assert_eq!(published_manifest["version"], version, "infra up installs the {package} web/package.json names");
        for (ours, theirs) in files {
            let vendored = std::fs::read(web.join(ours)).unwrap();
            let original = std::fs::read(published.join(theirs)).unwrap();
            assert!(vendored == original, "web/{ours} differs from {package} {version}'s {theirs}");
        }
    }
}

#[tokio::test]
async fn the_player_plays_seeks_resumes_and_explains_errors_in_chromium() {
    let app = spawn(|_| {}).await;
    let screenshot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/player.png");
    let _ = std::fs::remove_file(&screenshot);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/player.cjs");
    // The service runs on this test's runtime: the browser must not block it.
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .env("BASE", &app.address)
        .env("PLAYWRIGHT_CORE", infra_var("STREAMGATE_PLAYWRIGHT_CORE"))
        .env("CHROMIUM", infra_var("STREAMGATE_CHROMIUM"))
        .env("READY", READY)
        .env("MOVIE", MOVIE)
        .env("SCREENSHOT", &screenshot)
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(std::time::Duration::from_secs(120), run).await.expect("the browser test ends").unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the browser test failed:\n{said}");
    assert!(said.contains("ok: track played and seeked"), "{said}");
    // The first session was stopped when the page was reloaded.
    let events = app.events();
    let sessions = |action: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["action"] == action && e["movie_id"] == MOVIE)
            .map(|e| e["session_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let started = sessions("stream_start");
    assert_eq!(started.len(), 2, "played, then resumed after the reload: {events:?}");
    assert!(sessions("stream_stop").contains(&started[0]), "the reload stopped the first session: {events:?}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot was taken");
}
