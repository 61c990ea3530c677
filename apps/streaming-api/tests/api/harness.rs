use std::sync::Arc;

use secrecy::SecretString;
use streaming_api::demo::DemoInfo;
use streaming_api::{Application, PortOverrides, Settings};
use streaming_auth::{TokenClaims, TokenSigner};
use time::OffsetDateTime;

pub const SECRET: &str = "test-secret-for-hs256-tokens-0123456789";
pub const SIGNING_KEY: &str = "test-signing-key-for-object-urls-0123456789";
pub const READY: &str = "01JG0DEM0TRACK000000000001";
pub const PROCESSING: &str = "01JG0DEM0TRACK000000000003";
pub const MOVIE: &str = "5eed0000-0000-4000-8000-000000000001";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub demo: DemoInfo,
    pub dir: tempfile::TempDir,
    /// `stream_cache_invalidations_total{reason}`, when the app consumes upstream events
    /// or serves the admin API.
    pub invalidations: Option<Arc<streaming_core::changes::InvalidationStats>>,
    /// The admin API's base URL, when it is served.
    pub admin: Option<String>,
}

pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_with(configure, PortOverrides::default()).await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Settings), overrides: PortOverrides) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = Some(1);
    settings.auth.secret = Some(SecretString::from(SECRET));
    settings.storage.root = dir.path().join("objects");
    settings.storage.signing_key = Some(SecretString::from(SIGNING_KEY));
    settings.events.path = dir.path().join("events.jsonl");
    // The load and fault tests start many sessions and fetch many
    // manifests per user; the limits' own tests set them.
    settings.rate_limit.stream_start_per_minute = 0;
    settings.rate_limit.manifest_per_minute = 0;
    configure(&mut settings);
    // The demo media and token are the tests' fixtures, on whatever stores
    // a test configures (no setting may put them there), unless it turns
    // demo mode off.
    let overrides = PortOverrides { demo: settings.demo.enabled != Some(false), ..overrides };
    // A first connection to the shared PostgreSQL slower than the pool's 2 s
    // (the suite runs on two cores) is waited out by the start itself
    // (`postgres.start_wait_seconds`).
    let app = Application::build_with(settings, overrides).await.expect("the app starts");
    let address = app.base_url().to_owned();
    // Without demo mode there is no printed token; mint one for the demo user.
    let demo = app.demo().cloned().unwrap_or_else(|| DemoInfo {
        user: streaming_api::demo::DEMO_USER.parse().unwrap(),
        token: token_for(streaming_api::demo::DEMO_USER),
        tracks: Vec::new(),
        movie: MOVIE.parse().unwrap(),
    });
    let invalidations = app.cache_invalidations();
    let admin = app.admin_port().map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run_until_stopped());
    // Idle connections are given up before the server's keep-alive
    // (server.keep_alive_seconds, 75 s) closes them: no request races a close.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp { address, client, demo, dir, invalidations, admin }
}

/// Waits (10 s at most) until a server the test started, `what`, accepts connections on `port`.
pub async fn until_listening(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Switches `settings` to the S3 server of `cargo xtask infra up`.
pub fn use_s3(settings: &mut Settings) {
    use streaming_core::contract::infra_var as infra;
    settings.storage.kind = streaming_api::settings::StorageKind::S3;
    settings.storage.s3.endpoint = Some(infra("STREAMGATE_S3_ENDPOINT"));
    settings.storage.s3.bucket = infra("STREAMGATE_S3_BUCKET");
    settings.storage.s3.access_key = infra("STREAMGATE_S3_ACCESS_KEY");
    settings.storage.s3.secret_key = Some(SecretString::from(infra("STREAMGATE_S3_SECRET_KEY")));
}

pub fn token_for(subject: &str) -> String {
    token(TokenClaims {
        subject: subject.into(),
        expires_at: Some(OffsetDateTime::now_utc() + std::time::Duration::from_secs(600)),
        ..TokenClaims::default()
    })
}

pub fn token(claims: TokenClaims) -> String {
    TokenSigner::hs256(&SecretString::from(SECRET)).sign(&claims).unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn stream(&self, track: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url(&format!("/tracks/{track}/stream")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn stream_url(&self, track: &str) -> serde_json::Value {
        let response = self.stream(track, Some(&self.demo.token)).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Sends `request_line` verbatim (no client-side path normalisation) and
    /// returns the status code.
    pub async fn raw_status(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
        use tokio::io::AsyncWriteExt;
        let host = self.address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        status_of(&mut stream).await
    }

    /// A JSON request to `path` with the demo token (or `token`).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token.unwrap_or(&self.demo.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// The events written so far, one JSON object each.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("events.jsonl")).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    pub fn object_bytes(&self, track: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("objects").join("tracks").join(format!("{track}.wav"))).unwrap()
    }
}

/// Ports in which each of `users` has the demo subscription (the demo user
/// alone has one otherwise).
pub fn subscribers<S: AsRef<str>>(users: &[S]) -> PortOverrides {
    let subscriptions = Arc::new(streaming_core::adapters::MemorySubscriptions::new());
    for user in users {
        subscriptions.set(&user.as_ref().parse().unwrap(), Some(streaming_api::demo::demo_subscription()));
    }
    PortOverrides { subscriptions: Some(subscriptions), ..PortOverrides::default() }
}

/// Asserts the answer of an outage: 503 with `Retry-After: 5` and a
/// `service-unavailable` problem document; returns the document.
pub async fn assert_unavailable(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    assert_problem(response, 503, "service-unavailable").await
}

/// `psql -At -c sql` against `database`: the rows, one per line.
pub fn psql(database: &str, sql: &str) -> String {
    let output = std::process::Command::new("psql").args([database, "-At", "-c", sql]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Reads a raw HTTP/1.1 response to its end; its status code.
pub async fn status_of(stream: &mut tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// Asserts a problem document and returns it.
pub async fn assert_problem(response: reqwest::Response, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(response.status(), status, "status");
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "content type"
    );
    let trace_header = response.headers().get("trace-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("https://streamgate.dev/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["instance"].as_str().is_some_and(|t| t.starts_with('/')));
    assert_eq!(body["traceId"].as_str(), trace_header.as_deref(), "traceId matches the trace-id header");
    body
}

pub fn arc<T>(value: T) -> Arc<T> {
    Arc::new(value)
}
