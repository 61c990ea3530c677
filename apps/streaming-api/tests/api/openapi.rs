//! `/openapi.json`: a valid OpenAPI 3.1 document (checked by
//! `openapi-spec-validator`), naming exactly the routes the app serves, with
//! every problem status a route answers and the body shapes it sends.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};
use streaming_core::contract::infra_var as infra;

use crate::harness::{spawn, TestApp, MOVIE, PROCESSING, READY};

async fn document(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// `(METHOD, path)` of every documented operation.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

/// The documented statuses of an operation.
fn statuses(doc: &Value, method: &str, path: &str) -> BTreeSet<u16> {
    let responses = doc["paths"][path][method.to_lowercase()]["responses"].as_object();
    responses.unwrap_or_else(|| panic!("{method} {path} undocumented")).keys().map(|s| s.parse().unwrap()).collect()
}

/// A request path for a documented path template.
fn concrete(path: &str) -> String {
    path.replace("{track_id}", READY)
        .replace("{movie_id}", MOVIE)
        .replace("{key}", "tracks/nothing-here")
        .replace("{path}", "master.m3u8")
}

#[tokio::test]
async fn the_document_validates() {
    let app = spawn(|_| {}).await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    // -S: only the pinned validator `cargo xtask infra up` installed, not whatever else is around.
    let output = std::process::Command::new("python3")
        .args(["-S", "-m", "openapi_spec_validator"])
        .arg(&file)
        .env("PYTHONPATH", infra("STREAMGATE_OPENAPI_VALIDATOR"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the validator refused the document:\n{said}");
    assert!(said.contains("OK"), "{said}");
}

#[tokio::test]
async fn documented_operations_are_exactly_the_served_routes() {
    let app = spawn(|_| {}).await;
    let doc = document(&app).await;
    let documented = operations(&doc);
    let served: BTreeSet<(String, String)> = streaming_api::served_routes().into_iter().collect();
    assert_eq!(documented, served, "document and router disagree");
    // And over HTTP: each documented operation is routed (neither the
    // unknown-route 404 nor 405), other methods on its path are 405.
    for (method, path) in &documented {
        let response =
            app.client.request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(&concrete(path))).send().await;
        let response = response.unwrap();
        assert_ne!(response.status(), 405, "{method} {path}");
        if response.status() == 404 {
            let body: Value = response.json().await.unwrap();
            assert_ne!(body["type"], "https://streamgate.dev/problems/not-found", "{method} {path} is not routed");
        }
        let patch = app.client.patch(app.url(&concrete(path))).send().await.unwrap();
        assert_eq!(patch.status(), 405, "PATCH {path}");
        // RFC 9110 §15.5.6: a 405 names the methods the resource has.
        let allow = patch.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let allowed: BTreeSet<&str> = allow.as_deref().unwrap_or_default().split(", ").collect();
        let documented_here: BTreeSet<&str> =
            documented.iter().filter(|(_, p)| p == path).map(|(m, _)| m.as_str()).collect();
        assert_eq!(allowed, documented_here, "Allow of {path}: {allow:?}");
    }
}

/// Sends hostile and unlucky requests to every operation and checks each
/// problem's status is documented for it, as `application/problem+json`
/// with the documented fields; and each success body has the documented shape.
/// (method, documented path, request path, token, content type, body).
type Probe<'a> = (&'a str, &'a str, String, Option<&'a str>, Option<&'a str>, Option<String>);

#[tokio::test]
async fn every_status_a_route_answers_is_documented() {
    let app = spawn(|_| {}).await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let problem_fields: BTreeSet<String> =
        schemas["Problem"]["properties"].as_object().unwrap().keys().cloned().collect();
    let problem_required: Vec<String> = serde_json::from_value(schemas["Problem"]["required"].clone()).unwrap();
    let token = app.demo.token.clone();
    let t = token.as_str();
    let started = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, Some(json!({}))).await;
    let started: Value = started.json().await.unwrap();
    let session = started["session_id"].as_str().unwrap().to_owned();
    let manifest = started["manifest_url"].as_str().unwrap().to_owned();
    let stopped = json!({ "position_seconds": 1, "session_id": session });
    let stop = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}/stop"), None, Some(stopped.clone())).await;
    assert_eq!(stop.status(), 200);

    let movie = format!("/api/v1/stream/{MOVIE}");
    let unknown_movie = "/api/v1/stream/6eed0000-0000-4000-8000-0000000000ff";
    let grant_free = manifest.split_once('?').unwrap().0.to_owned();
    let huge = json!({ "position_seconds": 1, "pad": "x".repeat(2 << 20) });
    let probes: Vec<Probe> = vec![
        ("POST", "/tracks/{track_id}/stream", format!("/tracks/{READY}/stream"), None, None, None),
        ("POST", "/tracks/{track_id}/stream", "/tracks/not-a-ulid/stream".into(), Some(t), None, None),
        ("POST", "/tracks/{track_id}/stream", "/tracks/01JG0DEM0TRACK0000000000ZZ/stream".into(), Some(t), None, None),
        ("POST", "/tracks/{track_id}/stream", format!("/tracks/{PROCESSING}/stream"), Some(t), None, None),
        ("POST", "/tracks/{track_id}/stream", format!("/tracks/{READY}/stream"), Some(t), None, None),
        ("POST", "/api/v1/stream/{movie_id}", movie.clone(), None, None, None),
        ("POST", "/api/v1/stream/{movie_id}", "/api/v1/stream/12".into(), Some(t), None, None),
        ("POST", "/api/v1/stream/{movie_id}", unknown_movie.into(), Some(t), None, None),
        ("POST", "/api/v1/stream/{movie_id}", movie.clone(), Some(t), Some("text/plain"), Some("{}".into())),
        ("POST", "/api/v1/stream/{movie_id}", movie.clone(), Some(t), Some("application/json"), Some("{".into())),
        (
            "POST",
            "/api/v1/stream/{movie_id}",
            movie.clone(),
            Some(t),
            Some("application/json"),
            Some(r#"{"manifest_type":"flv"}"#.into()),
        ),
        ("POST", "/api/v1/stream/{movie_id}", movie.clone(), Some(t), Some("application/json"), Some(huge.to_string())),
        ("POST", "/api/v1/stream/{movie_id}", movie.clone(), Some(t), None, None),
        ("GET", "/api/v1/stream/{movie_id}/progress", format!("{movie}/progress"), None, None, None),
        ("GET", "/api/v1/stream/{movie_id}/progress", format!("{unknown_movie}/progress"), Some(t), None, None),
        ("GET", "/api/v1/stream/{movie_id}/progress", "/api/v1/stream/x/progress".into(), Some(t), None, None),
        ("GET", "/api/v1/stream/{movie_id}/progress", format!("{movie}/progress"), Some(t), None, None),
    ];
    let mut probes = probes;
    for operation in ["/api/v1/stream/{movie_id}/progress", "/api/v1/stream/{movie_id}/stop"] {
        let path = operation.replace("{movie_id}", MOVIE);
        let bodies = [
            r#"{"position_seconds":-1}"#.to_owned(),
            r#"{"position_seconds":"ten"}"#.to_owned(),
            r#"[1,2]"#.to_owned(),
            "{".to_owned(),
            r#"{"position_seconds":5,"session_id":"6eed0000-0000-4000-8000-0000000000ff"}"#.to_owned(),
            stopped.to_string(),
            huge.to_string(),
            r#"{"position_seconds":5}"#.to_owned(),
        ];
        probes.push(("POST", operation, path.clone(), None, Some("application/json"), Some(bodies[7].clone())));
        probes.push(("POST", operation, path.clone(), Some(t), Some("text/plain"), Some(bodies[7].clone())));
        for body in bodies {
            probes.push(("POST", operation, path.clone(), Some(t), Some("application/json"), Some(body)));
        }
    }
    let manifest_op = "/api/v1/stream/{movie_id}/manifest/{path}";
    let live = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, Some(json!({}))).await;
    let live: Value = live.json().await.unwrap();
    let live = live["manifest_url"].as_str().unwrap().replace(&app.address, "");
    probes.push(("GET", manifest_op, live, None, None, None));
    probes.push(("GET", manifest_op, manifest.replace(&app.address, ""), None, None, None));
    probes.push(("GET", manifest_op, grant_free.replace(&app.address, ""), None, None, None));
    probes.push((
        "GET",
        manifest_op,
        format!("{}?grant=forged", grant_free.replace(&app.address, "")),
        None,
        None,
        None,
    ));
    let objects = "/objects/{key}";
    probes.push(("GET", objects, "/objects/tracks/x?exp=1&sig=AAAA".into(), None, None, None));
    probes.push(("HEAD", objects, "/objects/tracks/x".into(), None, None, None));
    for (method, operation, path, token, content_type, body) in [
        ("GET", "/healthz", "/healthz", None, None, None),
        ("GET", "/readyz", "/readyz", None, None, None),
        ("GET", "/metrics", "/metrics", None, None, None),
    ] {
        probes.push((method, operation, path.into(), token, content_type, body));
    }

    let mut seen: BTreeMap<(&str, &str), BTreeSet<u16>> = BTreeMap::new();
    for (method, operation, path, token, content_type, body) in &probes {
        let mut request = app.client.request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", *content_type);
        }
        if let Some(body) = body {
            request = request.body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        seen.entry((*method, *operation)).or_default().insert(status);
        let documented = statuses(&doc, method, operation);
        assert!(documented.contains(&status), "{method} {path} answered {status}, not documented for {operation}");
        assert!(status < 500, "{method} {path} answered {status}");
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        if status >= 400 && *method != "HEAD" {
            assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{method} {path}");
            let problem: Value = response.json().await.unwrap();
            let fields: BTreeSet<String> = problem.as_object().unwrap().keys().cloned().collect();
            assert!(fields.is_subset(&problem_fields), "{method} {path}: undocumented fields in {problem}");
            for field in &problem_required {
                assert!(fields.contains(field), "{method} {path}: {field} missing from {problem}");
            }
        } else if content_type.as_deref() == Some("application/json") {
            // A success body: the documented schema's properties, all required ones present.
            let body: Value = response.json().await.unwrap();
            let reference = &doc["paths"][operation][method.to_lowercase()]["responses"][status.to_string()]["content"]
                ["application/json"]["schema"]["$ref"];
            let name = reference.as_str().unwrap().rsplit('/').next().unwrap();
            let schema = &schemas[name];
            let properties: BTreeSet<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
            let fields: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
            assert_eq!(fields, properties, "{method} {path}: body and {name} disagree");
        }
    }
    // The probes reached the statuses they aim at.
    let reached = |method: &'static str, operation: &'static str| seen[&(method, operation)].clone();
    assert_eq!(reached("POST", "/tracks/{track_id}/stream"), BTreeSet::from([200, 400, 401, 404, 409]));
    assert_eq!(reached("POST", "/api/v1/stream/{movie_id}"), BTreeSet::from([200, 400, 401, 404, 413, 415, 422]));
    let progress = BTreeSet::from([200, 400, 401, 404, 409, 413, 415, 422]);
    assert_eq!(reached("POST", "/api/v1/stream/{movie_id}/progress"), progress);
    // Stop is idempotent: a stopped session answers 200 again.
    let stop = BTreeSet::from([200, 400, 401, 404, 413, 415, 422]);
    assert_eq!(reached("POST", "/api/v1/stream/{movie_id}/stop"), stop);
    assert_eq!(reached("GET", manifest_op), BTreeSet::from([200, 400, 403]));
    assert_eq!(reached("GET", objects), BTreeSet::from([403]));
}

/// Schemathesis (pinned, installed by `cargo xtask infra up`) fuzzes every
/// operation of the served document with a valid token, every check and
/// every phase (examples, coverage, fuzzing, stateful), and finds nothing:
/// every request the document allows is accepted, every one it forbids is
/// refused, every answer has a documented status and shape, and every
/// other method is a 405 with `Allow`.
#[tokio::test]
async fn schemathesis_finds_no_failure() {
    let app = spawn(|s| s.rate_limit.stream_url_per_minute = 0).await;
    let output = tokio::process::Command::new("python3")
        .args(["-S", "-m", "schemathesis.cli", "run"])
        .arg(app.url("/openapi.json"))
        .args(["--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "50", "--seed", "1", "--no-color"])
        .args(["--header", &format!("Authorization: Bearer {}", app.demo.token)])
        .env("PYTHONPATH", infra("STREAMGATE_SCHEMATHESIS"))
        // Its example database and any configuration file are looked up here.
        .current_dir(app.dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis found failures:\n{said}");
    assert!(said.contains("Tested: 17"), "every operation was tested:\n{said}");
}
