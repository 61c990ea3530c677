use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{assert_problem, spawn, token_for, TestApp, MOVIE};

const START: &str = "/api/v1/stream/5eed0000-0000-4000-8000-000000000001";
const PROGRESS: &str = "/api/v1/stream/5eed0000-0000-4000-8000-000000000001/progress";
const STOP: &str = "/api/v1/stream/5eed0000-0000-4000-8000-000000000001/stop";

async fn start(app: &TestApp, body: Option<Value>) -> Value {
    let response = app.send(Method::POST, START, None, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn ok_json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn start_returns_the_contract_fields_and_the_additive_ones() {
    let app = spawn(|_| {}).await;
    let body = start(&app, Some(json!({ "manifest_type": "hls" }))).await;
    assert_eq!(body["manifest_type"], "hls");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["refresh_after_seconds"], 2880);
    assert_eq!(body["resume_position_seconds"], 0);
    assert!(body["session_id"].as_str().unwrap().parse::<uuid_like::Id>().is_ok());
    assert!(body["expires_at"].as_str().is_some());
    let url = body["manifest_url"].as_str().unwrap();
    assert!(url.contains(&format!("/api/v1/stream/{MOVIE}/manifest/index.m3u8?grant=")), "{url}");
    let manifest = app.client.get(url).send().await.unwrap();
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.headers()["content-type"], "application/vnd.apple.mpegurl");
    let text = manifest.text().await.unwrap();
    assert!(text.starts_with("#EXTM3U"));
    assert_eq!(text.matches(&format!("/objects/movies/{MOVIE}/segment-")).count(), 3, "segments signed: {text}");

    let dash = start(&app, Some(json!({ "manifest_type": "dash" }))).await;
    let url = dash["manifest_url"].as_str().unwrap();
    assert!(url.contains(&format!("/api/v1/stream/{MOVIE}/manifest/index.mpd?grant=")), "{url}");
    let mpd = app.client.get(url).send().await.unwrap();
    assert_eq!(mpd.status(), 200);
    assert_eq!(mpd.headers()["content-type"], "application/dash+xml");
    let text = mpd.text().await.unwrap();
    assert!(!text.contains("SegmentTemplate"), "templates expanded: {text}");
    assert_eq!(text.matches(&format!("/objects/movies/{MOVIE}/")).count(), 8, "2 inits + 6 segments signed: {text}");
    // The demo plan allows two streams at once: end the first.
    let stop = json!({ "position_seconds": 1, "session_id": body["session_id"] });
    ok_json(app.send(Method::POST, STOP, None, Some(stop)).await).await;
    let default = ok_json(app.client.post(app.url(START)).bearer_auth(&app.demo.token).send().await.unwrap()).await;
    assert_eq!(default["manifest_type"], "hls", "no body means hls");
}

mod uuid_like {
    pub struct Id;
    impl std::str::FromStr for Id {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let ok = s.len() == 36
                && s.chars().enumerate().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                });
            ok.then_some(Id).ok_or(())
        }
    }
}

#[tokio::test]
async fn start_problems() {
    let app = spawn(|_| {}).await;
    let unknown_kind = app.send(Method::POST, START, None, Some(json!({ "manifest_type": "smooth" }))).await;
    let body = assert_problem(unknown_kind, 422, "validation-error").await;
    assert_eq!(body["errors"][0]["field"], "manifest_type");
    let wrong_type = app.send(Method::POST, START, None, Some(json!({ "manifest_type": 7 }))).await;
    assert_problem(wrong_type, 422, "validation-error").await;

    let bad_id = app.send(Method::POST, "/api/v1/stream/not-a-uuid", None, None).await;
    assert_problem(bad_id, 400, "invalid-movie-id").await;
    let missing = app.send(Method::POST, "/api/v1/stream/00000000-0000-4000-8000-000000000000", None, None).await;
    assert_problem(missing, 404, "movie-not-found").await;
    let no_subscription = app.send(Method::POST, START, Some(&token_for("no-subscription")), None).await;
    assert_problem(no_subscription, 403, "subscription-required").await;
    let anonymous = app.client.post(app.url(START)).send().await.unwrap();
    assert_problem(anonymous, 401, "unauthorized").await;

    std::fs::remove_file(app.dir.path().join("objects/movies").join(MOVIE).join("index.mpd")).unwrap();
    let no_manifest = app.send(Method::POST, START, None, Some(json!({ "manifest_type": "dash" }))).await;
    assert_problem(no_manifest, 404, "manifest-not-found").await;
}

/// path, content type, body, expected status, expected problem slug
type BodyCase = (&'static str, Option<&'static str>, Vec<u8>, u16, &'static str);

#[tokio::test]
async fn malformed_bodies_are_4xx_never_5xx() {
    let app = spawn(|s| s.server.max_body_bytes = 1024).await;
    let cases: Vec<BodyCase> = vec![
        (PROGRESS, Some("application/json"), b"{not json".to_vec(), 400, "bad-request"),
        (PROGRESS, Some("application/json"), b"[1,2]".to_vec(), 422, "validation-error"),
        (PROGRESS, Some("application/json"), b"{}".to_vec(), 422, "validation-error"),
        (PROGRESS, Some("application/json"), br#"{"position_seconds":"ten"}"#.to_vec(), 422, "validation-error"),
        (PROGRESS, Some("application/json"), br#"{"position_seconds":-1}"#.to_vec(), 422, "validation-error"),
        (PROGRESS, Some("application/json"), br#"{"position_seconds":1e308}"#.to_vec(), 422, "validation-error"),
        (
            PROGRESS,
            Some("application/json"),
            br#"{"position_seconds":5,"session_id":"nope"}"#.to_vec(),
            422,
            "validation-error",
        ),
        (
            PROGRESS,
            Some("application/json"),
            br#"{"position_seconds":5,"sequence":-3}"#.to_vec(),
            422,
            "validation-error",
        ),
        (PROGRESS, Some("text/plain"), br#"{"position_seconds":5}"#.to_vec(), 415, "unsupported-media-type"),
        (PROGRESS, None, br#"{"position_seconds":5}"#.to_vec(), 415, "unsupported-media-type"),
        (PROGRESS, Some("application/json"), Vec::new(), 422, "validation-error"),
        (STOP, Some("application/json"), b"null".to_vec(), 422, "validation-error"),
        (START, Some("application/json"), vec![b' '; 4096], 413, "payload-too-large"),
        (
            START,
            Some("application/json"),
            format!("{}{}", "[".repeat(300), "]".repeat(300)).into_bytes(),
            400,
            "bad-request",
        ),
    ];
    for (path, content_type, body, status, slug) in cases {
        let mut request = app.client.post(app.url(path)).bearer_auth(&app.demo.token).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        assert_eq!(response.status(), status, "{path} {content_type:?} {shown}");
        assert_problem(response, status, slug).await;
    }
}

#[tokio::test]
async fn progress_round_trip_and_resume() {
    let app = spawn(|_| {}).await;
    let empty = ok_json(app.send(Method::GET, PROGRESS, None, None).await).await;
    assert_eq!(
        empty,
        json!({ "user_id": app.demo.user.as_str(), "movie_id": MOVIE, "position_seconds": 0, "last_watched_at": null, "watched": false })
    );

    let session = start(&app, None).await["session_id"].as_str().unwrap().to_owned();
    let ack = ok_json(
        app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 3, "session_id": session }))).await,
    )
    .await;
    assert_eq!(ack["success"], true);
    assert_eq!(ack["position_seconds"], 3);
    assert_eq!(ack["message"], "Progress updated successfully");

    let stored = ok_json(app.send(Method::GET, PROGRESS, None, None).await).await;
    assert_eq!(stored["position_seconds"], 3);
    assert!(stored["last_watched_at"].as_str().is_some());
    assert_eq!(start(&app, None).await["resume_position_seconds"], 3, "a new start resumes");
}

#[tokio::test]
async fn reordered_progress_never_overwrites_a_newer_report() {
    let app = spawn(|_| {}).await;
    let session = start(&app, None).await["session_id"].as_str().unwrap().to_owned();
    for (position, sequence) in [(4, 2), (2, 1)] {
        let body = json!({ "position_seconds": position, "session_id": session, "sequence": sequence });
        app.send(Method::POST, PROGRESS, None, Some(body)).await;
    }
    let stored = ok_json(app.send(Method::GET, PROGRESS, None, None).await).await;
    assert_eq!(stored["position_seconds"], 4);
    let late = json!({ "position_seconds": 1, "session_id": session, "sequence": 1 });
    let ack = ok_json(app.send(Method::POST, PROGRESS, None, Some(late)).await).await;
    assert_eq!((ack["applied"].as_bool(), ack["position_seconds"].as_u64()), (Some(false), Some(4)));
}

#[tokio::test]
async fn finishing_the_movie_resets_resume() {
    let app = spawn(|_| {}).await;
    let ack = ok_json(app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 5.9 }))).await).await;
    assert_eq!((ack["watched"].as_bool(), ack["position_seconds"].as_u64()), (Some(true), Some(0)));
    let stored = ok_json(app.send(Method::GET, PROGRESS, None, None).await).await;
    assert_eq!((stored["watched"].as_bool(), stored["position_seconds"].as_u64()), (Some(true), Some(0)));
    let beyond = app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 17 }))).await;
    let body = assert_problem(beyond, 422, "validation-error").await;
    assert_eq!(body["errors"][0]["field"], "position_seconds");
}

#[tokio::test]
async fn stop_closes_once_and_events_are_written() {
    let app = spawn(|_| {}).await;
    let session = start(&app, None).await["session_id"].as_str().unwrap().to_owned();
    app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 2, "session_id": session }))).await;
    app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 3, "session_id": session }))).await;
    let stopped = ok_json(
        app.send(Method::POST, STOP, None, Some(json!({ "position_seconds": 4, "session_id": session }))).await,
    )
    .await;
    assert_eq!(stopped["success"], true);
    assert_eq!(stopped["session_id"], session.as_str());
    let again = ok_json(
        app.send(Method::POST, STOP, None, Some(json!({ "position_seconds": 5, "session_id": session }))).await,
    )
    .await;
    assert_eq!(again["message"], "Streaming session was already stopped");
    assert_eq!(
        ok_json(app.send(Method::GET, PROGRESS, None, None).await).await["position_seconds"],
        4,
        "the second stop changed nothing"
    );
    let closed =
        app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 5, "session_id": session }))).await;
    assert_problem(closed, 409, "session-closed").await;

    let events = app.events();
    let actions: Vec<_> =
        events.iter().map(|e| (e["action"].as_str().unwrap(), e["position_seconds"].as_u64())).collect();
    assert_eq!(
        actions,
        [("stream_start", Some(0)), ("stream_progress", Some(2)), ("stream_stop", Some(4))],
        "the second progress is coalesced"
    );
    for event in &events {
        assert_eq!(event["user_id"], app.demo.user.as_str());
        assert_eq!(event["movie_id"], MOVIE);
        assert_eq!(event["session_id"], session.as_str());
        assert!(event["event_id"].as_str().is_some() && event["timestamp"].as_str().is_some());
    }
}

#[tokio::test]
async fn another_users_session_is_not_found_and_never_written() {
    let app = spawn(|_| {}).await;
    let mine = start(&app, None).await["session_id"].as_str().unwrap().to_owned();
    // A second subscriber would need a subscription; the demo user's session id
    // used by a stranger is refused before any access to the session.
    let stranger = token_for("stranger");
    let attempt = app
        .send(Method::POST, PROGRESS, Some(&stranger), Some(json!({ "position_seconds": 1, "session_id": mine })))
        .await;
    assert_problem(attempt, 403, "subscription-required").await;
    let stop =
        app.send(Method::POST, STOP, Some(&stranger), Some(json!({ "position_seconds": 1, "session_id": mine }))).await;
    assert_problem(stop, 404, "session-not-found").await;
    let progress = ok_json(app.send(Method::GET, PROGRESS, None, None).await).await;
    assert_eq!(progress["position_seconds"], 0, "nothing was written for the demo user");
    let own =
        ok_json(app.send(Method::POST, STOP, None, Some(json!({ "position_seconds": 1, "session_id": mine }))).await)
            .await;
    assert_eq!(own["message"], "Streaming stopped", "the session was still open");
    let theirs = app.send(Method::GET, PROGRESS, Some(&stranger), None).await;
    assert_problem(theirs, 403, "subscription-required").await;
}

/// The demo renditions are real media: ffmpeg decodes every segment of both.
#[tokio::test]
async fn the_demo_movie_decodes_end_to_end_with_ffmpeg() {
    let app = spawn(|_| {}).await;
    let root = app.dir.path().join("objects/movies").join(MOVIE);
    for manifest in ["index.m3u8", "index.mpd"] {
        let output = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(root.join(manifest))
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg is required (cargo xtask test installs it)");
        assert!(output.status.success(), "{manifest}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stderr.is_empty(), "{manifest}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// Two subscribers: neither can touch the other's session or progress.
#[tokio::test]
async fn subscribers_cannot_read_or_write_each_others_sessions() {
    let overrides = crate::harness::subscribers(&[streaming_api::demo::DEMO_USER, "second-subscriber"]);
    let app = crate::harness::spawn_with(|_| {}, overrides).await;
    let second = token_for("second-subscriber");

    let theirs = start(&app, None).await["session_id"].as_str().unwrap().to_owned();
    app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 2, "session_id": theirs }))).await;

    let write = app
        .send(Method::POST, PROGRESS, Some(&second), Some(json!({ "position_seconds": 5, "session_id": theirs })))
        .await;
    assert_problem(write, 404, "session-not-found").await;
    let stop =
        app.send(Method::POST, STOP, Some(&second), Some(json!({ "position_seconds": 5, "session_id": theirs }))).await;
    assert_problem(stop, 404, "session-not-found").await;

    let own = ok_json(app.send(Method::GET, PROGRESS, Some(&second), None).await).await;
    assert_eq!((own["user_id"].as_str(), own["position_seconds"].as_u64()), (Some("second-subscriber"), Some(0)));
    let demo = ok_json(app.send(Method::GET, PROGRESS, None, None).await).await;
    assert_eq!(demo["position_seconds"], 2, "the owner's progress is untouched");
    let closing =
        ok_json(app.send(Method::POST, STOP, None, Some(json!({ "position_seconds": 3, "session_id": theirs }))).await)
            .await;
    assert_eq!(closing["message"], "Streaming stopped", "the owner's session was still open");
}

struct DownDirectory;

#[async_trait::async_trait]
impl streaming_core::ports::SubscriptionDirectory for DownDirectory {
    async fn current(
        &self,
        _: &streaming_core::domain::UserId,
    ) -> Result<Option<streaming_core::domain::Subscription>, streaming_core::ports::SubscriptionError> {
        Err(streaming_core::ports::SubscriptionError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn a_user_service_outage_is_503_never_403() {
    let overrides = streaming_api::PortOverrides {
        subscriptions: Some(std::sync::Arc::new(DownDirectory)),
        ..streaming_api::PortOverrides::default()
    };
    let app = crate::harness::spawn_with(|_| {}, overrides).await;
    let response = app.send(Method::POST, START, None, None).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "service-unavailable").await;
    let progress = app.send(Method::POST, PROGRESS, None, Some(json!({ "position_seconds": 1 }))).await;
    assert_problem(progress, 503, "service-unavailable").await;
}

#[tokio::test]
async fn a_movie_still_processing_is_409_with_its_status() {
    use streaming_core::adapters::MemoryCatalog;
    use streaming_core::domain::{Media, MediaKind, MediaStatus, ObjectKey, PlanFeatures, Visibility};

    let catalog = std::sync::Arc::new(MemoryCatalog::new());
    catalog.upsert(Media {
        id: MOVIE.parse().unwrap(),
        kind: MediaKind::Movie,
        owner: None,
        status: MediaStatus::Processing,
        object_key: ObjectKey::try_from(format!("movies/{MOVIE}").as_str()).unwrap(),
        content_type: "application/vnd.apple.mpegurl".into(),
        size_bytes: 0,
        duration_seconds: Some(6.0),
        visibility: Visibility::Public,
        required_features: PlanFeatures::default(),
    });
    let overrides = streaming_api::PortOverrides { catalog: Some(catalog), ..streaming_api::PortOverrides::default() };
    let app = crate::harness::spawn_with(|_| {}, overrides).await;
    let body = assert_problem(app.send(Method::POST, START, None, None).await, 409, "movie-not-ready").await;
    assert_eq!(body["movieId"], MOVIE);
    assert_eq!(body["currentStatus"], "Processing");
}

#[tokio::test]
async fn starting_more_streams_than_the_plan_allows_is_409_naming_the_open_sessions() {
    let app = spawn(|_| {}).await;
    let first = start(&app, None).await["session_id"].as_str().unwrap().to_owned();
    let second = start(&app, None).await["session_id"].as_str().unwrap().to_owned();
    let refused = assert_problem(app.send(Method::POST, START, None, None).await, 409, "too-many-streams").await;
    assert_eq!(refused["limit"], 2);
    assert_eq!(refused["activeSessions"], json!([first, second]), "oldest first");
    assert!(refused["detail"].as_str().unwrap().contains("2 stream(s)"));

    let stop = json!({ "position_seconds": 1, "session_id": first });
    ok_json(app.send(Method::POST, STOP, None, Some(stop)).await).await;
    start(&app, None).await;
}

/// Video frames in the demo movie: 6 s at 24 frames per second.
pub const DEMO_FRAMES: u64 = 144;

/// ffmpeg plays `url` to the end without an error; the video frames it decoded.
pub async fn ffmpeg_plays(url: &str) -> Result<u64, String> {
    let url = url.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i", &url, "-progress", "pipe:1", "-f", "null", "-"])
            .output()
            .expect("ffmpeg is required (cargo xtask test installs it)")
    })
    .await
    .unwrap();
    if !output.status.success() || !output.stderr.is_empty() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let progress = String::from_utf8_lossy(&output.stdout);
    let frames = progress.lines().rev().find_map(|line| line.strip_prefix("frame="));
    frames.and_then(|n| n.trim().parse().ok()).ok_or_else(|| format!("no frame count in {progress}"))
}

#[tokio::test]
async fn a_player_plays_both_renditions_through_the_signed_manifests() {
    let app = spawn(|_| {}).await;
    for kind in ["hls", "dash"] {
        let started = start(&app, Some(json!({ "manifest_type": kind }))).await;
        let url = started["manifest_url"].as_str().unwrap();
        assert_eq!(ffmpeg_plays(url).await, Ok(DEMO_FRAMES), "{kind}: every segment fetched and decoded");
        let stop = json!({ "position_seconds": 6, "session_id": started["session_id"] });
        ok_json(app.send(Method::POST, STOP, None, Some(stop)).await).await;
        assert!(ffmpeg_plays(url).await.is_err(), "{kind}: a stopped session's manifest no longer plays");
    }
}

#[tokio::test]
async fn urls_are_stable_within_a_window_and_a_grant_dies_with_its_session() {
    let app = spawn(|_| {}).await;
    let started = start(&app, None).await;
    let url = started["manifest_url"].as_str().unwrap();
    let first = app.client.get(url).send().await.unwrap();
    let max_age: u64 =
        first.headers()["cache-control"].to_str().unwrap().trim_start_matches("private, max-age=").parse().unwrap();
    assert!(max_age <= 60);
    assert!(first.headers().contains_key("x-urls-expire-at"));
    let first = first.text().await.unwrap();
    let second = app.client.get(url).send().await.unwrap().text().await.unwrap();
    if max_age > 1 {
        assert_eq!(first, second, "byte-identical within the window");
    }

    // Tampered and foreign grants.
    let tampered = url.replace("grant=", "grant=x");
    assert_problem(app.client.get(&tampered).send().await.unwrap(), 403, "manifest-grant-refused").await;
    let other_movie = url.replace(MOVIE, "5eed0000-0000-4000-8000-000000000002");
    assert_problem(app.client.get(&other_movie).send().await.unwrap(), 403, "manifest-grant-refused").await;
    let escape = url.replace("/manifest/index.m3u8", "/manifest/..%2F..%2Fetc%2Fpasswd.m3u8");
    assert_eq!(app.client.get(&escape).send().await.unwrap().status(), 404);

    // Stopping the session revokes the grant.
    let stop = json!({ "position_seconds": 1, "session_id": started["session_id"] });
    ok_json(app.send(Method::POST, STOP, None, Some(stop)).await).await;
    assert_problem(app.client.get(url).send().await.unwrap(), 403, "manifest-grant-refused").await;
    assert!(ffmpeg_plays(url).await.is_err(), "a player fails too");
}

#[tokio::test]
async fn an_expired_grant_is_refused() {
    let app = spawn(|s| s.playback.manifest_expiry_seconds = 1).await;
    let hls = start(&app, None).await["manifest_url"].as_str().unwrap().to_owned();
    let dash = start(&app, Some(json!({ "manifest_type": "dash" }))).await["manifest_url"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    for url in [hls, dash] {
        let refused = assert_problem(app.client.get(&url).send().await.unwrap(), 403, "manifest-grant-refused").await;
        assert!(refused["detail"].as_str().unwrap().contains("expired"));
        assert!(ffmpeg_plays(&url).await.is_err(), "{url}");
    }
}

/// Reading progress is checked like playing: whether a subscriber-only or
/// private movie exists is not told to someone who may not play it.
#[tokio::test]
async fn reading_progress_needs_access_to_the_movie() {
    let app = spawn(|_| {}).await;
    let stranger = token_for("no-subscription");
    let refused = app.send(Method::GET, PROGRESS, Some(&stranger), None).await;
    assert_problem(refused, 403, "subscription-required").await;
    let missing =
        app.send(Method::GET, "/api/v1/stream/00000000-0000-4000-8000-000000000000/progress", None, None).await;
    assert_problem(missing, 404, "movie-not-found").await;
    assert_eq!(app.send(Method::GET, PROGRESS, None, None).await.status(), 200, "the subscriber reads it");
}

/// Each start is a session row: a user cannot open them as fast as the
/// server answers (policy `stream-start`, 429 with `Retry-After`).
#[tokio::test]
async fn starts_are_rate_limited_per_user() {
    let app = spawn(|s| {
        s.rate_limit.stream_start_per_minute = 2;
        s.users.default_max_devices = 0;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(app.send(Method::POST, START, None, None).await.status(), 200);
    }
    let limited = app.send(Method::POST, START, None, None).await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429, "rate-limit-exceeded").await;
    let other = app
        .send(
            Method::POST,
            "/api/v1/stream/5eed0000-0000-4000-8000-000000000002",
            Some(&token_for("someone-else")),
            None,
        )
        .await;
    assert_eq!(other.status(), 200, "per user");
}

/// A grant holder cannot fetch manifests as fast as the server answers
/// (each fetch reads the session and renders): policy `stream-manifest`,
/// counted against the grant's user, and only once the grant is genuine.
#[tokio::test]
async fn manifest_fetches_are_rate_limited_per_user() {
    let app = spawn(|s| s.rate_limit.manifest_per_minute = 3).await;
    let url = start(&app, None).await["manifest_url"].as_str().unwrap().to_owned();
    let forged = format!("{url}AAAA");
    for _ in 0..5 {
        assert_eq!(app.client.get(&forged).send().await.unwrap().status(), 403, "a forged grant is refused");
    }
    for _ in 0..3 {
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200, "forged grants spent nothing");
    }
    let limited = app.client.get(&url).send().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429, "rate-limit-exceeded").await;
    let other = app
        .client
        .post(app.url("/api/v1/stream/5eed0000-0000-4000-8000-000000000002"))
        .bearer_auth(token_for("someone-else"))
        .send()
        .await
        .unwrap();
    let other: Value = other.json().await.unwrap();
    let other = app.client.get(other["manifest_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(other.status(), 200, "per user");
}

/// What the document allows is accepted, exactly: an optional body may be
/// JSON `null`; a `sequence` is an integer as JSON Schema counts them (`7.0`
/// is one) up to 2^53 - 1, the largest every JSON reader keeps exact.
#[tokio::test]
async fn bodies_are_read_as_the_document_describes_them() {
    let app = spawn(|_| {}).await;
    let started = start(&app, Some(Value::Null)).await;
    assert_eq!(started["manifest_type"], "hls", "a null body is no body");
    let session = started["session_id"].clone();
    for (sequence, status) in [
        (json!(7.0), 200),
        (json!(9_007_199_254_740_991_u64), 200),
        (json!(9_007_199_254_740_992_u64), 422),
        (json!(7.5), 422),
    ] {
        let body = json!({ "position_seconds": 1, "session_id": session, "sequence": sequence });
        let response = app.send(Method::POST, PROGRESS, None, Some(body)).await;
        assert_eq!(response.status(), status, "sequence {sequence}");
    }
    let refused = app.send(Method::POST, PROGRESS, None, Some(Value::Null)).await;
    assert_problem(refused, 422, "validation-error").await;
}

/// A player that never reports progress cannot walk around its plan's
/// stream limit through old grants: a manifest fetch is a heartbeat, and a
/// fetch through a session that has gone idle counts it again, refused
/// only while the plan's other streams fill it (the demo plan: 2).
#[tokio::test]
async fn the_stream_limit_cannot_be_walked_around_through_old_grants() {
    let app = spawn(|s| {
        s.playback.session_idle_timeout_seconds = 1;
        s.playback.session_close_after_seconds = 0;
    })
    .await;
    let fetch = |url: String| {
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    let first = start(&app, None).await;
    let second = start(&app, None).await;
    let (one, two) = (first["manifest_url"].as_str().unwrap(), second["manifest_url"].as_str().unwrap());
    // Playing without a progress report: the fetches keep both streams counted.
    for _ in 0..6 {
        assert_eq!((fetch(one.into()).await, fetch(two.into()).await), (200, 200));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_problem(app.send(Method::POST, START, None, None).await, 409, "too-many-streams").await;
    // Both idle: two new streams fill the plan.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let third = start(&app, None).await;
    start(&app, None).await;
    let refused = app.client.get(one).send().await.unwrap();
    assert_problem(refused, 409, "too-many-streams").await;
    // One stopped: the paused viewer resumes without noticing.
    let stop = json!({ "position_seconds": 1, "session_id": third["session_id"] });
    ok_json(app.send(Method::POST, STOP, None, Some(stop)).await).await;
    assert_eq!(fetch(one.into()).await, 200);
    assert_problem(app.send(Method::POST, START, None, None).await, 409, "too-many-streams").await;
}
