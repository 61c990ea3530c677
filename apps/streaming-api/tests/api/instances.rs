//! Promises that hold across instances: two real instances on one Redis and
//! one PostgreSQL, with the same secrets, a request on one and its effect
//! seen through the other.

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;
use streaming_api::demo::DEMO_USER;
use streaming_core::contract::infra_var;
use streaming_postgres::testing::fresh_database_url;

use crate::harness::{spawn, TestApp, MOVIE};

const ADMIN_KEY: &str = "operator-key-for-the-admin-api-0123456789";

/// Two instances on a fresh database and a fresh Redis key prefix, the
/// admin API served by the first.
async fn pair() -> (TestApp, TestApp) {
    let database = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let redis = infra_var("STREAMGATE_REDIS_URL");
    let prefix = format!("pair-{}:", ulid::Ulid::new());
    let instance = |admin: bool| {
        let (database, redis, prefix) = (database.clone(), redis.clone(), prefix.clone());
        spawn(move |s| {
            s.postgres.url = Some(SecretString::from(database));
            s.postgres.migrate_on_start = true;
            s.redis.url = Some(SecretString::from(redis));
            s.redis.key_prefix = prefix;
            s.users.default_max_devices = 0;
            if admin {
                s.admin.enabled = true;
                s.admin.port = 0;
                s.admin.keys = Some(SecretString::from(format!("ops:{ADMIN_KEY}")));
            }
        })
    };
    let first = instance(true).await;
    let second = instance(false).await;
    (first, second)
}

/// A movie started on `on`: its session id and its manifest URL.
async fn start(on: &TestApp) -> (String, String) {
    let started = on.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, Some(json!({}))).await;
    assert_eq!(started.status(), 200);
    let body: serde_json::Value = started.json().await.unwrap();
    (body["session_id"].as_str().unwrap().to_owned(), body["manifest_url"].as_str().unwrap().to_owned())
}

/// `manifest` (issued by `from`) fetched through `through`.
async fn fetch_through(through: &TestApp, from: &TestApp, manifest: &str) -> u16 {
    let url = manifest.replacen(&from.address, &through.address, 1);
    through.client.get(url).send().await.unwrap().status().as_u16()
}

/// How long until the fetch through `through` is refused (403); panics
/// after `bound`.
async fn refused_within(through: &TestApp, from: &TestApp, manifest: &str, bound: Duration) -> Duration {
    let began = Instant::now();
    loop {
        let status = fetch_through(through, from, manifest).await;
        if status == 403 {
            return began.elapsed();
        }
        assert_eq!(status, 200, "an accepted fetch or a refusal, nothing else");
        assert!(began.elapsed() < bound, "still served {bound:?} after the revocation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin(app: &TestApp, method: Method, path: &str, body: serde_json::Value) {
    let base = app.admin.as_ref().unwrap();
    let response =
        app.client.request(method, format!("{base}{path}")).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
}

#[tokio::test]
async fn a_stop_on_one_instance_refuses_the_grant_on_the_other_within_a_second() {
    let (a, b) = pair().await;
    let (session, manifest) = start(&a).await;
    assert_eq!(fetch_through(&b, &a, &manifest).await, 200, "the other instance serves the grant");
    let stop = json!({ "position_seconds": 1, "session_id": session });
    let stopped = a.send(Method::POST, &format!("/api/v1/stream/{MOVIE}/stop"), None, Some(stop)).await;
    assert_eq!(stopped.status(), 200);
    let after = refused_within(&b, &a, &manifest, Duration::from_secs(1)).await;
    eprintln!("refused through the other instance after {after:?}");
}

#[tokio::test]
async fn a_logout_everywhere_on_one_instance_refuses_the_grant_on_the_other_within_a_second() {
    let (a, b) = pair().await;
    let (_, manifest) = start(&a).await;
    assert_eq!(fetch_through(&b, &a, &manifest).await, 200);
    admin(&a, Method::POST, &format!("/internal/v1/users/{DEMO_USER}/logout-all"), json!({})).await;
    let after = refused_within(&b, &a, &manifest, Duration::from_secs(1)).await;
    eprintln!("refused through the other instance after {after:?}");
}

#[tokio::test]
async fn a_suspension_on_one_instance_refuses_the_grant_on_the_other_within_a_second() {
    let (a, b) = pair().await;
    let (_, manifest) = start(&a).await;
    assert_eq!(fetch_through(&b, &a, &manifest).await, 200);
    admin(&a, Method::PUT, &format!("/internal/v1/users/{DEMO_USER}/status"), json!({ "status": "suspended" })).await;
    let after = refused_within(&b, &a, &manifest, Duration::from_secs(1)).await;
    eprintln!("refused through the other instance after {after:?}");
}

/// Each instance remembers which manifests exist; a catalog change of the
/// movie on one instance makes the other ask the store again.
#[tokio::test]
async fn a_movie_changed_on_one_instance_has_its_manifest_looked_for_again_on_the_other() {
    let (a, b) = pair().await;
    // Each session is stopped again, so the plan's stream limit stays clear.
    let start_and_stop = || async {
        let (session, _) = start(&b).await;
        let stop = json!({ "position_seconds": 1, "session_id": session });
        b.send(Method::POST, &format!("/api/v1/stream/{MOVIE}/stop"), None, Some(stop)).await;
    };
    start_and_stop().await;
    // The manifest goes away behind the catalog's back; the other still remembers it.
    std::fs::remove_file(b.dir.path().join("objects").join("movies").join(MOVIE).join("index.m3u8")).unwrap();
    start_and_stop().await;

    let path = format!("/internal/v1/media/{MOVIE}");
    let base = a.admin.as_ref().unwrap();
    let read = a.client.get(format!("{base}{path}")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    let mut movie: serde_json::Value = read.json().await.unwrap();
    movie["status"] = json!("processing");
    admin(&a, Method::PUT, &path, movie.clone()).await;
    movie["status"] = json!("ready");
    admin(&a, Method::PUT, &path, movie).await;
    let changed = Instant::now();
    let movie_path = format!("/api/v1/stream/{MOVIE}");
    loop {
        let status = b.send(Method::POST, &movie_path, None, Some(json!({}))).await.status().as_u16();
        if status == 404 {
            break;
        }
        assert!(changed.elapsed() < Duration::from_secs(1), "still {status} a second after the change");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("the other instance looked for the manifest again after {:?}", changed.elapsed());
}
