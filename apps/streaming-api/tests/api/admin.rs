//! The internal admin API over HTTP, on its own listener: on the embedded
//! defaults and on the real PostgreSQL and Redis.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use streaming_api::demo::DEMO_USER;
use streaming_api::settings::CacheKind;
use streaming_api::Settings;
use streaming_core::contract::infra_var;

use crate::harness::{assert_problem, psql, spawn, token_for, TestApp, READY};

const ADMIN_KEY: &str = "operator-key-for-the-admin-api-0123456789";

pub(crate) fn with_admin(settings: &mut Settings) {
    settings.admin.enabled = true;
    settings.admin.port = 0;
    settings.admin.keys =
        Some(SecretString::from(format!("ops:{ADMIN_KEY}, deploy-bot:another-key-for-the-admin-api-0123456789")));
    settings.admin.audit_path = settings.storage.root.with_file_name("admin-audit.jsonl");
}

/// A fresh track id (a ULID) of this run.
fn fresh_track() -> String {
    ulid::Ulid::new().to_string()
}

impl TestApp {
    /// A request to the admin API with `key` (the operator's by default).
    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let base = self.admin.as_ref().expect("the admin API is served");
        let mut request = self.client.request(method, format!("{base}{path}")).bearer_auth(ADMIN_KEY);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn admin_ok(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let response = self.admin(method.clone(), path, body, &[]).await;
        assert!(response.status().is_success(), "{method} {path}: {}", response.status());
        response
    }
}

fn track_body(owner: &str, status: &str, visibility: &str) -> Value {
    json!({
        "kind": "track",
        "owner_id": owner,
        "status": status,
        "object_key": format!("tracks/{READY}.wav"),
        "content_type": "audio/wav",
        "size_bytes": 1_000,
        "duration_seconds": 12.5,
        "visibility": visibility,
    })
}

fn etag(response: &reqwest::Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

/// The stream URL of `track` for the demo user, or the status refusing it.
async fn stream(app: &TestApp, track: &str) -> Result<String, StatusCode> {
    let response = app.stream(track, Some(&app.demo.token)).await;
    if response.status() != 200 {
        return Err(response.status());
    }
    let body: Value = response.json().await.unwrap();
    Ok(body["streamUrl"].as_str().unwrap().to_owned())
}

/// Upsert → stream → change → delete → 404 with the cached URL gone → revive;
/// every step audited, with no URL or object key in the trail.
async fn media_lifecycle(app: &TestApp) {
    let track = fresh_track();
    let path = format!("/internal/v1/media/{track}");
    let body = track_body(DEMO_USER, "ready", "private");

    let created = app.admin(Method::PUT, &path, Some(body.clone()), &[]).await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], path.as_str());
    let first_tag = etag(&created);
    let shown: Value = created.json().await.unwrap();
    assert_eq!(shown["id"], track.as_str());
    assert_eq!(shown["owner_id"], DEMO_USER);
    let again = app.admin(Method::PUT, &path, Some(body.clone()), &[]).await;
    assert_eq!(again.status(), 200, "a repeated PUT changes nothing");
    assert_eq!(etag(&again), first_tag);
    let read = app.admin_ok(Method::GET, &path, None).await;
    assert_eq!(etag(&read), first_tag);

    let first = stream(app, &track).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(stream(app, &track).await.unwrap(), first, "cached");

    // A lost update is refused; the current tag lets the change through.
    let processing = track_body(DEMO_USER, "processing", "private");
    let stale = app.admin(Method::PUT, &path, Some(processing.clone()), &[("if-match", "\"0000\"")]).await;
    assert_problem(stale, 412, "precondition-failed").await;
    let status_changes = app.invalidations.as_ref().unwrap().status_change.load(Ordering::Relaxed);
    let changed = app.admin(Method::PUT, &path, Some(processing), &[("if-match", &first_tag)]).await;
    assert_eq!(changed.status(), 200);
    let counted = app.invalidations.as_ref().unwrap().status_change.load(Ordering::Relaxed);
    assert_eq!(counted, status_changes + 1, "stream_cache_invalidations_total{{reason=\"status_change\"}}");
    let second_tag = etag(&changed);
    assert_ne!(second_tag, first_tag);
    assert_eq!(stream(app, &track).await, Err(StatusCode::CONFLICT), "not ready");
    let ready = app.admin(Method::PUT, &path, Some(body.clone()), &[("if-match", &second_tag)]).await;
    assert_eq!(ready.status(), 200);
    let third_tag = etag(&ready);
    let second = stream(app, &track).await.unwrap();
    assert_ne!(second, first, "the status change dropped the cached URL");

    // (The first tag matches again: the item is as it was then. Tags name content.)
    assert_eq!(third_tag, first_tag);
    let stale = app.admin(Method::DELETE, &path, None, &[("if-match", &second_tag)]).await;
    assert_problem(stale, 412, "precondition-failed").await;
    let deletions = app.invalidations.as_ref().unwrap().deletion.load(Ordering::Relaxed);
    let deleted = app.admin(Method::DELETE, &path, None, &[("if-match", &third_tag)]).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.invalidations.as_ref().unwrap().deletion.load(Ordering::Relaxed), deletions + 1);
    assert_eq!(stream(app, &track).await, Err(StatusCode::NOT_FOUND));
    assert_eq!(app.admin(Method::DELETE, &path, None, &[]).await.status(), 204, "deleting twice is harmless");
    let gone: Value = app.admin_ok(Method::GET, &path, None).await.json().await.unwrap();
    assert_eq!(gone["status"], "Deleted", "deleted items are kept, marked (statuses spelled as the public API does)");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.admin_ok(Method::PUT, &path, Some(body)).await;
    let revived = stream(app, &track).await.unwrap();
    assert_ne!(revived, second, "the deletion removed the cached URL");

    let trail: Value = app.admin_ok(Method::GET, "/internal/v1/audit?limit=5", None).await.json().await.unwrap();
    let records = trail["records"].as_array().unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["media.upsert", "media.delete", "media.upsert", "media.upsert", "media.upsert"]);
    assert!(records.iter().all(|r| r["actor"] == "ops" && r["target"] == path.trim_start_matches("/internal/v1/")));
    assert_eq!(records[1]["before"]["status"], "Ready");
    assert_eq!(records[1]["after"]["status"], "Deleted");
    assert_eq!(records[4]["before"], Value::Null, "created");
    let text = trail.to_string();
    assert!(!text.contains("tracks/") && !text.contains("http"), "no object key or URL in the trail: {text}");
}

/// Suspension: 403 at once, the cached URL gone, no new grants; reinstated: back.
async fn suspension(app: &TestApp) {
    let status = format!("/internal/v1/users/{DEMO_USER}/status");
    let before = stream(app, READY).await.unwrap();
    let suspended: Value =
        app.admin_ok(Method::PUT, &status, Some(json!({ "status": "suspended" }))).await.json().await.unwrap();
    assert_eq!(suspended, json!({ "user_id": DEMO_USER, "status": "suspended" }));
    let refused = app.stream(READY, Some(&app.demo.token)).await;
    assert_problem(refused, 403, "forbidden").await;
    let grant = app.admin(Method::PUT, &format!("/internal/v1/media/{READY}/grants/{DEMO_USER}"), None, &[]).await;
    assert_problem(grant, 409, "user-suspended").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.admin_ok(Method::PUT, &status, Some(json!({ "status": "active" }))).await;
    assert_ne!(stream(app, READY).await.unwrap(), before, "the suspension dropped the cached URL");
}

/// Grants open and close a private track of someone else.
async fn grants(app: &TestApp) {
    let track = fresh_track();
    app.admin_ok(Method::PUT, &format!("/internal/v1/media/{track}"), Some(track_body("artist-1", "ready", "private")))
        .await;
    let grant = format!("/internal/v1/media/{track}/grants/{DEMO_USER}");
    assert_eq!(stream(app, &track).await, Err(StatusCode::FORBIDDEN));
    assert_eq!(app.admin(Method::PUT, &grant, None, &[]).await.status(), 204);
    assert_eq!(app.admin(Method::PUT, &grant, None, &[]).await.status(), 204, "idempotent");
    stream(app, &track).await.unwrap();
    assert_eq!(app.admin(Method::DELETE, &grant, None, &[]).await.status(), 204);
    assert_eq!(stream(app, &track).await, Err(StatusCode::FORBIDDEN), "revoked, the cached URL with it");

    let unknown = format!("/internal/v1/media/{}/grants/{DEMO_USER}", fresh_track());
    assert_problem(app.admin(Method::PUT, &unknown, None, &[]).await, 404, "media-not-found").await;
    let trail: Value = app.admin_ok(Method::GET, "/internal/v1/audit?limit=2", None).await.json().await.unwrap();
    assert_eq!(trail["records"][0]["action"], "grant.delete");
    assert_eq!(trail["records"][0]["before"], json!({ "granted": true }));
    assert_eq!(trail["records"][1]["action"], "grant.put", "the repeated grant changed nothing: not recorded");
}

/// Another viewer's cached URL of an item whose object changed is not served
/// (only the owner's entry is dropped; the others no longer match the item).
async fn object_change_for_another_viewer(app: &TestApp) {
    let track = fresh_track();
    let path = format!("/internal/v1/media/{track}");
    app.admin_ok(Method::PUT, &path, Some(track_body("artist-1", "ready", "public"))).await;
    let before = stream(app, &track).await.unwrap();
    assert!(before.contains(READY), "signed for the first object");
    let mut moved = track_body("artist-1", "ready", "public");
    moved["object_key"] = json!("tracks/01JG0DEM0TRACK000000000002.wav");
    app.admin_ok(Method::PUT, &path, Some(moved)).await;
    let after = stream(app, &track).await.unwrap();
    assert!(after.contains("01JG0DEM0TRACK000000000002"), "signed for the new object: {after}");
}

/// Cache-only operations: a user's URLs, one URL, logout everywhere.
async fn cache_operations(app: &TestApp) {
    let first = stream(app, READY).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let path = format!("/internal/v1/media/{READY}/stream-cache/{DEMO_USER}");
    assert_eq!(app.admin(Method::DELETE, &path, None, &[]).await.status(), 204);
    let second = stream(app, READY).await.unwrap();
    assert_ne!(second, first);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let path = format!("/internal/v1/users/{DEMO_USER}/stream-cache");
    assert_eq!(app.admin(Method::DELETE, &path, None, &[]).await.status(), 204);
    let third = stream(app, READY).await.unwrap();
    assert_ne!(third, second);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let path = format!("/internal/v1/users/{DEMO_USER}/logout-all");
    assert_eq!(app.admin(Method::POST, &path, None, &[]).await.status(), 204);
    assert_ne!(stream(app, READY).await.unwrap(), third);
    let stats = app.invalidations.as_ref().unwrap();
    assert!(stats.operator.load(Ordering::Relaxed) >= 2);
    assert!(stats.logout.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn the_admin_api_drives_the_catalog_on_the_embedded_defaults() {
    let app = spawn(with_admin).await;
    media_lifecycle(&app).await;
    suspension(&app).await;
    grants(&app).await;
    object_change_for_another_viewer(&app).await;
    cache_operations(&app).await;
    // The embedded trail is a JSON-lines file.
    let file = std::fs::read_to_string(app.dir.path().join("admin-audit.jsonl")).unwrap();
    assert!(file.lines().count() >= 8, "{file}");
}

#[tokio::test]
async fn the_admin_api_drives_the_catalog_on_postgres_and_redis() {
    let database = streaming_postgres::testing::fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let url = database.clone();
    let app = spawn(move |s| {
        s.postgres.url = Some(SecretString::from(url));
        s.postgres.migrate_on_start = true;
        s.cache.kind = CacheKind::Redis;
        s.redis.url = Some(SecretString::from(infra_var("STREAMGATE_REDIS_URL")));
        s.redis.key_prefix = format!("admin-{}:", ulid::Ulid::new());
        with_admin(s);
    })
    .await;
    media_lifecycle(&app).await;
    suspension(&app).await;
    grants(&app).await;
    object_change_for_another_viewer(&app).await;
    cache_operations(&app).await;
    let rows = psql(&database, "SELECT count(*) FROM admin_audit WHERE actor = 'ops'");
    assert!(rows.trim().parse::<u32>().unwrap() >= 8, "{rows}");
    assert!(!app.dir.path().join("admin-audit.jsonl").exists(), "the trail is in PostgreSQL");
}

#[tokio::test]
async fn only_a_service_credential_opens_the_admin_api_and_only_on_its_listener() {
    let app = spawn(with_admin).await;
    let admin = app.admin.clone().unwrap();
    let audit = format!("{admin}/internal/v1/audit");

    let user = app.client.get(&audit).bearer_auth(&app.demo.token).send().await.unwrap();
    assert_problem(user, 403, "service-credential-required").await;
    let other_user = app.client.get(&audit).bearer_auth(token_for("someone-else")).send().await.unwrap();
    assert_problem(other_user, 403, "service-credential-required").await;
    let none = app.client.get(&audit).send().await.unwrap();
    assert_eq!(none.headers()["www-authenticate"].to_str().unwrap().split(' ').next(), Some("Bearer"));
    assert_problem(none, 401, "unauthorized").await;
    let wrong = app.client.get(&audit).bearer_auth(&ADMIN_KEY[1..]).send().await.unwrap();
    assert_problem(wrong, 401, "unauthorized").await;
    let doubled = app
        .client
        .get(&audit)
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .send()
        .await
        .unwrap();
    assert_problem(doubled, 401, "unauthorized").await;
    let second_operator =
        app.client.get(&audit).bearer_auth("another-key-for-the-admin-api-0123456789").send().await.unwrap();
    assert_eq!(second_operator.status(), 200);

    // The public listener knows nothing of /internal, whatever the credential.
    let public = app.client.get(app.url("/internal/v1/audit")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_problem(public, 404, "not-found").await;
    let public = app.client.put(app.url(&format!("/internal/v1/users/{DEMO_USER}/status"))).bearer_auth(ADMIN_KEY);
    let public = public.json(&json!({ "status": "suspended" })).send().await.unwrap();
    assert_problem(public, 404, "not-found").await;
    stream(&app, READY).await.unwrap();

    // Off by default.
    assert!(spawn(|_| {}).await.admin.is_none());
}

#[tokio::test]
async fn bad_admin_requests_are_problem_documents() {
    let app = spawn(with_admin).await;
    let track = fresh_track();
    let path = format!("/internal/v1/media/{track}");
    let invalid = app.admin(Method::GET, "/internal/v1/media/not-an-id", None, &[]).await;
    assert_problem(invalid, 400, "invalid-media-id").await;
    let invalid =
        app.admin(Method::PUT, "/internal/v1/users/a:b/status", Some(json!({ "status": "active" })), &[]).await;
    assert_problem(invalid, 400, "invalid-user-id").await;
    assert_problem(app.admin(Method::GET, &path, None, &[]).await, 404, "media-not-found").await;
    assert_problem(app.admin(Method::DELETE, &path, None, &[]).await, 404, "media-not-found").await;

    let wrong = json!({ "kind": "movie", "status": "ready", "object_key": "/abs", "content_type": "audio/wav",
                        "visibility": "everyone", "size_bytes": -5, "requires_4k": "no", "colour": "red" });
    let refused = assert_problem(app.admin(Method::PUT, &path, Some(wrong), &[]).await, 422, "validation-error").await;
    let detail = refused["detail"].as_str().unwrap();
    for field in ["kind", "object_key", "visibility", "size_bytes", "requires_4k", "body"] {
        assert!(detail.contains(field), "{field} in {detail}");
    }
    let other_id = json!({ "id": fresh_track() });
    let mut body = track_body(DEMO_USER, "ready", "public");
    body["id"] = other_id["id"].clone();
    assert_problem(app.admin(Method::PUT, &path, Some(body), &[]).await, 422, "validation-error").await;
    let status = format!("/internal/v1/users/{DEMO_USER}/status");
    assert_problem(
        app.admin(Method::PUT, &status, Some(json!({ "status": "banned" })), &[]).await,
        422,
        "validation-error",
    )
    .await;

    let text = app
        .client
        .put(format!("{}{path}", app.admin.as_ref().unwrap()))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(text, 415, "unsupported-media-type").await;
    let huge = json!({ "kind": "x".repeat(64 * 1024) });
    assert_problem(app.admin(Method::PUT, &path, Some(huge), &[]).await, 413, "payload-too-large").await;
    let broken = app
        .client
        .put(format!("{}{path}", app.admin.as_ref().unwrap()))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"kind\":")
        .send()
        .await
        .unwrap();
    assert_problem(broken, 400, "bad-request").await;
    let method = app.admin(Method::PATCH, &path, None, &[]).await;
    assert_problem(method, 405, "method-not-allowed").await;
    let limit = app.admin(Method::GET, "/internal/v1/audit?limit=0", None, &[]).await;
    assert_problem(limit, 422, "validation-error").await;

    // Create-only: If-None-Match: * refuses an existing item.
    let body = track_body(DEMO_USER, "ready", "public");
    assert_eq!(app.admin(Method::PUT, &path, Some(body.clone()), &[("if-none-match", "*")]).await.status(), 201);
    let again = app.admin(Method::PUT, &path, Some(body), &[("if-none-match", "*")]).await;
    assert_problem(again, 412, "precondition-failed").await;
    // A movie with a ULID is refused; with a UUID it is created.
    let movie = json!({ "kind": "movie", "status": "ready", "object_key": "movies/x", "content_type": "application/vnd.apple.mpegurl",
                        "visibility": "subscribers" });
    assert_problem(app.admin(Method::PUT, &path, Some(movie.clone()), &[]).await, 422, "validation-error").await;
    let movie_path = format!("/internal/v1/media/{}", streaming_core::domain::SessionId::random());
    assert_eq!(app.admin(Method::PUT, &movie_path, Some(movie), &[]).await.status(), 201);
}

#[tokio::test]
async fn a_change_whose_audit_record_cannot_be_written_is_not_made() {
    let database = streaming_postgres::testing::fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let url = database.clone();
    let app = spawn(move |s| {
        s.postgres.url = Some(SecretString::from(url));
        s.postgres.migrate_on_start = true;
        with_admin(s);
    })
    .await;
    let path = format!("/internal/v1/media/{}", fresh_track());
    let body = track_body(DEMO_USER, "ready", "public");
    psql(&database, "ALTER TABLE admin_audit RENAME TO admin_audit_away");
    let refused = app.admin(Method::PUT, &path, Some(body.clone()), &[]).await;
    let problem = crate::harness::assert_unavailable(refused).await;
    assert!(problem["detail"].as_str().unwrap().contains("audit"), "{problem}");
    assert_problem(app.admin(Method::GET, &path, None, &[]).await, 404, "media-not-found").await;
    psql(&database, "ALTER TABLE admin_audit_away RENAME TO admin_audit");
    assert_eq!(app.admin(Method::PUT, &path, Some(body), &[]).await.status(), 201);
    let rows = psql(&database, "SELECT action FROM admin_audit");
    assert_eq!(rows.trim(), "media.upsert", "one record, of the change that was made");
}

/// A media body: the media's fields (and strangers) with any JSON values.
fn media_body() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let field = prop_oneof![
        Just("kind".to_owned()),
        Just("owner_id".to_owned()),
        Just("status".to_owned()),
        Just("object_key".to_owned()),
        Just("content_type".to_owned()),
        Just("size_bytes".to_owned()),
        Just("duration_seconds".to_owned()),
        Just("visibility".to_owned()),
        Just("requires_hd".to_owned()),
        Just("id".to_owned()),
        "\\PC{0,8}",
    ];
    let value = prop_oneof![
        crate::hostile::json_value(),
        prop_oneof![
            Just("track"),
            Just("movie"),
            Just("ready"),
            Just("Deleted"),
            Just("public"),
            Just("tracks/x.mp3"),
            Just("../etc/passwd"),
        ]
        .prop_map(Value::from),
    ];
    prop::collection::btree_map(field, value, 0..12).prop_map(|map| Value::Object(map.into_iter().collect()))
}

#[test]
fn arbitrary_admin_requests_are_answered_with_2xx_or_4xx_problems() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = runtime.block_on(spawn(with_admin));
    let base = app.admin.clone().unwrap();
    let routes = [
        (Method::GET, "/internal/v1/media/{a}"),
        (Method::PUT, "/internal/v1/media/{a}"),
        (Method::DELETE, "/internal/v1/media/{a}"),
        (Method::PUT, "/internal/v1/media/{a}/grants/{b}"),
        (Method::DELETE, "/internal/v1/media/{a}/grants/{b}"),
        (Method::DELETE, "/internal/v1/media/{a}/stream-cache/{b}"),
        (Method::PUT, "/internal/v1/users/{a}/status"),
        (Method::POST, "/internal/v1/users/{a}/logout-all"),
        (Method::DELETE, "/internal/v1/users/{a}/stream-cache"),
        (Method::GET, "/internal/v1/audit?limit={a}"),
    ];
    let credentials = [Some(ADMIN_KEY.to_owned()), None, Some(app.demo.token.clone()), Some("x".repeat(40))];
    let config = ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(
        route in 0..routes.len(),
        a in crate::hostile::path_segment(),
        b in prop_oneof![crate::hostile::path_segment(), Just(DEMO_USER.to_owned())],
        body in prop::option::of(prop_oneof![media_body(), crate::hostile::json_value()]),
        credential in 0..credentials.len(),
        if_match in prop::option::of(prop_oneof![Just("*".to_owned()), "\\PC{0,20}"]),
    )| {
        let (method, template) = &routes[route];
        let path = template.replace("{a}", &a).replace("{b}", &b);
        let (status, content) = runtime.block_on(async {
            let mut request = app.client.request(method.clone(), format!("{base}{path}"));
            if let Some(credential) = &credentials[credential] {
                request = request.bearer_auth(credential);
            }
            if let Some(tag) = if_match.as_ref().filter(|t| reqwest::header::HeaderValue::from_str(t).is_ok()) {
                request = request.header("if-match", tag);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            crate::hostile::answer(request).await
        });
        crate::hostile::no_5xx_and_problems(status, content.as_deref(), &format!("{method} {path} {body:?}"))?;
    });
}

/// A start asks the store whether the movie's manifest exists once, then
/// remembers it (a premiere's starts cost one `HEAD` a minute, not one
/// each); a catalog change of the movie makes it ask again.
#[tokio::test]
async fn a_start_remembers_the_manifest_until_the_movie_changes() {
    use crate::harness::MOVIE;
    let app = spawn(with_admin).await;
    let movie_path = format!("/api/v1/stream/{MOVIE}");
    let start = || app.send(Method::POST, &movie_path, None, None);
    // Each session started is stopped, so the plan's stream limit stays clear.
    let start_and_stop = || async {
        let started = start().await;
        let status = started.status();
        let session: Value = started.json().await.unwrap();
        let stop = json!({ "position_seconds": 1, "session_id": session["session_id"] });
        app.send(Method::POST, &format!("{movie_path}/stop"), None, Some(stop)).await;
        status
    };
    assert_eq!(start_and_stop().await, 200);
    // The manifest goes away behind the catalog's back.
    let manifest = app.dir.path().join("objects").join("movies").join(MOVIE).join("index.m3u8");
    std::fs::remove_file(&manifest).unwrap();
    assert_eq!(start_and_stop().await, 200, "the manifest is remembered, not asked for again");

    // A change of the movie in the catalog: the next start asks the store.
    let path = format!("/internal/v1/media/{MOVIE}");
    let mut movie: Value = app.admin_ok(Method::GET, &path, None).await.json().await.unwrap();
    movie["status"] = json!("processing");
    app.admin_ok(Method::PUT, &path, Some(movie.clone())).await;
    movie["status"] = json!("ready");
    app.admin_ok(Method::PUT, &path, Some(movie)).await;
    assert_problem(start().await, 404, "manifest-not-found").await;
}
