//! `GET /api/v1/media`: what the caller may play, page by page.

use reqwest::Method;
use serde_json::Value;
use streaming_api::demo::{DEMO_MOVIE, DEMO_TRAILER};

use crate::harness::{assert_problem, spawn, token_for, TestApp, PROCESSING, READY};

async fn page(app: &TestApp, query: &str, token: Option<&str>) -> (u16, Value) {
    let response = app.send(Method::GET, &format!("/api/v1/media{query}"), token, None).await;
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_demo_user_sees_their_tracks_and_the_movies_their_plan_covers() {
    let app = spawn(|_| {}).await;
    let (status, body) = page(&app, "", None).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{body}");
    assert_eq!(body["next"], Value::Null);
    let find = |id: &str| items.iter().find(|item| item["id"] == id).unwrap_or_else(|| panic!("{id} listed"));
    let track = find(READY);
    assert_eq!(track["kind"], "track");
    assert_eq!(track["status"], "Ready");
    assert_eq!(track["owned"], true);
    assert_eq!(track["visibility"], "private");
    assert_eq!(track["play"], format!("/tracks/{READY}/stream"));
    assert_eq!(find(PROCESSING)["status"], "Processing", "a processing upload is listed with its status");
    let movie = find(DEMO_MOVIE);
    assert_eq!(movie["kind"], "movie");
    assert_eq!(movie["visibility"], "subscribers");
    assert_eq!(movie["owned"], false);
    assert_eq!(movie["play"], format!("/api/v1/stream/{DEMO_MOVIE}"));
    assert_eq!(find(DEMO_TRAILER)["visibility"], "public");
    let listed = ids(&body);
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted, "in id order");
}

#[tokio::test]
async fn another_user_sees_only_what_they_may_play() {
    let app = spawn(|_| {}).await;
    let stranger = token_for("01JG0STRANGER0000000000001");
    let (status, body) = page(&app, "", Some(&stranger)).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), vec![DEMO_TRAILER], "no subscription, no private tracks of others: the public trailer");
}

#[tokio::test]
async fn pages_follow_next_to_the_end() {
    let app = spawn(|_| {}).await;
    let (_, all) = page(&app, "", None).await;
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let (status, body) = page(&app, &query, None).await;
        assert_eq!(status, 200);
        assert!(body["items"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&body).into_iter().map(str::to_owned));
        match body["next"].as_str() {
            Some(next) => query = format!("?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));
}

#[tokio::test]
async fn bad_queries_are_problems() {
    let app = spawn(|_| {}).await;
    for query in ["?limit=0", "?limit=101", "?limit=ten", "?limit=-1"] {
        let response = app.send(Method::GET, &format!("/api/v1/media{query}"), None, None).await;
        let problem = assert_problem(response, 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], "limit", "{query}");
    }
    for query in ["?after=nope", "?after=..%2F..%2Fetc", "?after=01JG0DEM0TRACK00000000000000000000001"] {
        let response = app.send(Method::GET, &format!("/api/v1/media{query}"), None, None).await;
        let problem = assert_problem(response, 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], "after", "{query}");
    }
    let response = app.client.get(app.url("/api/v1/media")).send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;
}
