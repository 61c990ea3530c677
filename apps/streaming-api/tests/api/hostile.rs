//! Hostile input: forged and mangled tokens, arbitrary ids, bodies, content
//! types and positions on every route, traversal in object keys and manifest
//! paths. Every answer is a 2xx or a 4xx problem document: never a 5xx, never
//! a panic, never another user's data.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use proptest::prelude::*;
use reqwest::Method;
use ring::hmac;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::harness::{spawn, TestApp, MOVIE, READY, SECRET};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "streaming";

/// An app that requires `iss`, `aud` and `type = access`, as production would.
async fn strict_app() -> TestApp {
    spawn(|s| {
        s.auth.issuer = Some(ISSUER.into());
        s.auth.audience = Some(AUDIENCE.into());
        s.auth.token_type = Some("access".into());
    })
    .await
}

/// A JWS with this header and payload, signed with HMAC `algorithm` under `key`
/// (`None`: no signature at all).
pub fn jws(header: &Value, payload: &Value, signing: Option<(hmac::Algorithm, &[u8])>) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
    let signature = signing.map_or_else(String::new, |(algorithm, key)| {
        B64.encode(hmac::sign(&hmac::Key::new(algorithm, key), input.as_bytes()).as_ref())
    });
    format!("{input}.{signature}")
}

fn claims(adjust: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "sub": streaming_api::demo::DEMO_USER,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "type": "access",
        "iat": now,
        "exp": now + 600,
    });
    adjust(claims.as_object_mut().unwrap());
    claims
}

fn hs256(payload: &Value) -> String {
    jws(&json!({ "alg": "HS256", "typ": "JWT" }), payload, Some((hmac::HMAC_SHA256, SECRET.as_bytes())))
}

/// Every user route, as (method, path, body).
fn user_routes() -> Vec<(Method, String, Option<Value>)> {
    let progress = json!({ "position_seconds": 3 });
    vec![
        (Method::POST, format!("/tracks/{READY}/stream"), None),
        (Method::POST, format!("/api/v1/stream/{MOVIE}"), Some(json!({}))),
        (Method::POST, format!("/api/v1/stream/{MOVIE}/progress"), Some(progress.clone())),
        (Method::GET, format!("/api/v1/stream/{MOVIE}/progress"), None),
        (Method::POST, format!("/api/v1/stream/{MOVIE}/stop"), Some(progress)),
        (Method::GET, "/api/v1/media".to_owned(), None),
    ]
}

async fn call(app: &TestApp, method: &Method, path: &str, authorization: Option<&str>, body: Option<&Value>) -> u16 {
    let mut request = app.client.request(method.clone(), app.url(path));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status >= 400 {
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{method} {path}: {status}");
    }
    status
}

#[tokio::test]
async fn forged_expired_and_mangled_tokens_are_401_on_every_user_route() {
    let app = strict_app().await;
    let valid = hs256(&claims(|_| {}));
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let [header, payload, signature]: [&str; 3] = valid.split('.').collect::<Vec<_>>().try_into().unwrap();
    let victim_payload =
        B64.encode(claims(|c| drop(c.insert("sub".into(), json!("01JG0STRANGER0000000000000")))).to_string());

    let corpus: Vec<(&str, String)> = vec![
        ("alg none, unsigned", jws(&json!({ "alg": "none" }), &claims(|_| {}), None)),
        ("alg None, unsigned", jws(&json!({ "alg": "None", "typ": "JWT" }), &claims(|_| {}), None)),
        ("alg none, with a signature", format!("{}.{payload}.{signature}", B64.encode(r#"{"alg":"none"}"#))),
        (
            "HS512 with the right secret",
            jws(&json!({ "alg": "HS512" }), &claims(|_| {}), Some((hmac::HMAC_SHA512, SECRET.as_bytes()))),
        ),
        (
            "RS256 header, HMAC signature",
            jws(&json!({ "alg": "RS256" }), &claims(|_| {}), Some((hmac::HMAC_SHA256, SECRET.as_bytes()))),
        ),
        (
            "ES256 header, HMAC signature",
            jws(&json!({ "alg": "ES256" }), &claims(|_| {}), Some((hmac::HMAC_SHA256, SECRET.as_bytes()))),
        ),
        (
            "signed with another key",
            jws(
                &json!({ "alg": "HS256" }),
                &claims(|_| {}),
                Some((hmac::HMAC_SHA256, b"another-secret-of-32-bytes-or-more!!")),
            ),
        ),
        ("payload swapped under a valid signature", format!("{header}.{victim_payload}.{signature}")),
        ("expired an hour ago", hs256(&claims(|c| drop(c.insert("exp".into(), json!(now - 3600)))))),
        ("not valid for another hour", hs256(&claims(|c| drop(c.insert("nbf".into(), json!(now + 3600)))))),
        ("no exp", hs256(&claims(|c| drop(c.remove("exp"))))),
        ("exp as a string", hs256(&claims(|c| drop(c.insert("exp".into(), json!("tomorrow")))))),
        ("wrong issuer", hs256(&claims(|c| drop(c.insert("iss".into(), json!("https://evil.example")))))),
        ("no issuer", hs256(&claims(|c| drop(c.remove("iss"))))),
        ("wrong audience", hs256(&claims(|c| drop(c.insert("aud".into(), json!("another-service")))))),
        ("a refresh token", hs256(&claims(|c| drop(c.insert("type".into(), json!("refresh")))))),
        ("no subject", hs256(&claims(|c| drop(c.remove("sub"))))),
        ("an empty subject", hs256(&claims(|c| drop(c.insert("sub".into(), json!("")))))),
        ("a numeric subject", hs256(&claims(|c| drop(c.insert("sub".into(), json!(12345)))))),
        ("payload not JSON", format!("{header}.{}.{signature}", B64.encode("not json"))),
        ("header not JSON", format!("{}.{payload}.{signature}", B64.encode("{"))),
        ("two parts", format!("{header}.{payload}")),
        ("signature cut short", format!("{header}.{payload}.{}", &signature[..signature.len() / 2])),
        ("four parts", format!("{valid}.{signature}")),
        ("not base64", "!!!.???.***".into()),
        ("empty", String::new()),
        ("a megabyte-free but long token", format!("{header}.{}.{signature}", "A".repeat(8_000))),
    ];

    // The corpus is close to valid: the untouched token plays.
    for (method, path, body) in user_routes() {
        let status = call(&app, &method, &path, Some(&format!("Bearer {valid}")), body.as_ref()).await;
        assert!(status < 400, "the valid token was refused on {method} {path}: {status}");
    }
    for (what, token) in &corpus {
        for (method, path, body) in user_routes() {
            let status = call(&app, &method, &path, Some(&format!("Bearer {token}")), body.as_ref()).await;
            assert_eq!(status, 401, "{what}: {method} {path}");
        }
    }
    // Malformed Authorization headers.
    for authorization in ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b c"] {
        for (method, path, body) in user_routes() {
            let status = call(&app, &method, &path, Some(authorization), body.as_ref()).await;
            assert_eq!(status, 401, "{authorization:?}: {method} {path}");
        }
    }
    // A token too large for the header limit is still a 4xx.
    let huge = format!("Bearer {}", "A".repeat(64 * 1024));
    let response = app.client.post(app.url(&format!("/tracks/{READY}/stream"))).header("authorization", huge).send();
    let status = response.await.unwrap().status().as_u16();
    assert!((400..500).contains(&status), "a 64 KiB token: {status}");
}

#[tokio::test]
async fn traversal_in_object_keys_and_manifest_paths_reaches_nothing() {
    let app = spawn(|_| {}).await;
    let far = (OffsetDateTime::now_utc() + Duration::from_secs(600)).unix_timestamp();
    for key in [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "tracks/..%2F..%2Fevents.jsonl",
        "tracks/%2e%2e%2f%2e%2e%2fevents.jsonl",
        "%252e%252e%252fevents.jsonl",
        "tracks%5C..%5C..%5Cevents.jsonl",
        "tracks/%00",
        "/etc/passwd",
    ] {
        for query in [String::new(), format!("?exp={far}&sig=AAAA"), format!("?exp={far}&sig=")] {
            let status = app.raw_status("GET", &format!("/objects/{key}{query}"), &[]).await;
            assert!(matches!(status, 400 | 403 | 404), "/objects/{key}{query}: {status}");
        }
    }
    let started = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, Some(json!({}))).await;
    let started: Value = started.json().await.unwrap();
    let grant = started["manifest_url"].as_str().unwrap().split_once("grant=").unwrap().1.to_owned();
    for path in [
        "..%2F..%2Fevents.jsonl",
        "..%2F6eed0000-0000-4000-8000-0000000000ff%2Fmaster.m3u8",
        "%2e%2e/%2e%2e/tracks/x.m3u8",
        "master.m3u8%00.mpd",
        "..\\..\\master.m3u8",
        "/etc/passwd.m3u8",
        "segment-000.ts",
    ] {
        let status = app.raw_status("GET", &format!("/api/v1/stream/{MOVIE}/manifest/{path}?grant={grant}"), &[]).await;
        assert!(matches!(status, 400 | 403 | 404), "manifest {path}: {status}");
    }
}

#[tokio::test]
async fn huge_deep_and_odd_bodies_are_4xx() {
    let app = spawn(|_| {}).await;
    let deep_array = "[".repeat(100_000);
    let deep_field = format!(r#"{{"position_seconds": {}1{}}}"#, "[".repeat(5_000), "]".repeat(5_000));
    let bodies: Vec<String> = vec![
        deep_array,
        deep_field,
        r#"{"position_seconds": NaN}"#.into(),
        r#"{"position_seconds": Infinity}"#.into(),
        r#"{"position_seconds": 1e999}"#.into(),
        r#"{"position_seconds": -1e999}"#.into(),
        r#"{"position_seconds": -0.5}"#.into(),
        r#"{"position_seconds": 1e308}"#.into(),
        r#"{"position_seconds": "12"}"#.into(),
        r#"{"position_seconds": null}"#.into(),
        r#"{"position_seconds": 3, "position_seconds": -3}"#.into(),
        r#"{"position_seconds": 3, "session_id": "not-a-uuid"}"#.into(),
        r#"{"position_seconds": 3, "sequence": -1}"#.into(),
        r#"{"position_seconds": 3, "sequence": 1e30}"#.into(),
        "\u{feff}{\"position_seconds\": 3}".into(),
        "{\"position_seconds\": 3}\u{0}".into(),
        "null".into(),
        "\"text\"".into(),
        String::new(),
    ];
    for path in [format!("/api/v1/stream/{MOVIE}/progress"), format!("/api/v1/stream/{MOVIE}/stop")] {
        for body in &bodies {
            for content_type in [
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "application/x-www-form-urlencoded",
            ] {
                let response = app
                    .client
                    .post(app.url(&path))
                    .bearer_auth(&app.demo.token)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let shown: String = body.chars().take(60).collect();
                assert!((400..500).contains(&status), "{path} {content_type} {shown:?}: {status}");
                assert_eq!(response.headers()["content-type"], "application/problem+json");
            }
        }
    }
}

/// A JSON value of bounded depth and size.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("position_seconds".to_owned()),
                    Just("session_id".to_owned()),
                    Just("sequence".to_owned()),
                    Just("manifest_type".to_owned()),
                    "\\PC{0,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `text` with every byte but ASCII alphanumerics and `keep` percent-encoded.
pub fn percent_encoded(text: &str, keep: &[u8]) -> String {
    text.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() || keep.contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}

/// Any character, percent-encoded where a path needs it.
pub fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}".prop_map(|s| percent_encoded(&s, b"-._~")),
        Just(READY.to_owned()),
        Just(MOVIE.to_owned()),
        Just("01JG0DEM0TRACK00000000000Z".to_owned()),
        Just("5EED0000-0000-4000-8000-000000000001".to_owned()),
        Just("%2e%2e".to_owned()),
    ]
}

#[test]
fn arbitrary_requests_are_answered_with_2xx_or_4xx_problems() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = runtime.block_on(spawn(|s| s.rate_limit.stream_url_per_minute = 1_000_000));
    let routes = [
        (Method::POST, "/tracks/{}/stream"),
        (Method::POST, "/api/v1/stream/{}"),
        (Method::POST, "/api/v1/stream/{}/progress"),
        (Method::GET, "/api/v1/stream/{}/progress"),
        (Method::POST, "/api/v1/stream/{}/stop"),
        (Method::GET, "/api/v1/stream/{}/manifest/master.m3u8"),
        (Method::GET, "/objects/{}"),
        (Method::GET, "/api/v1/media?after={}&limit=3"),
    ];
    let content_types =
        ["application/json", "text/plain", "application/json; charset=latin1", "multipart/form-data", ""];
    let config = ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(
        route in 0..routes.len(),
        id in path_segment(),
        body in prop::option::of(json_value()),
        content_type in 0..content_types.len(),
        authorized in any::<bool>(),
        query in prop::option::of("[a-z]{1,5}=\\PC{0,10}"),
    )| {
        let (method, template) = &routes[route];
        let mut path = template.replace("{}", &id);
        if let Some(query) = &query {
            path = format!("{path}?{}", percent_encoded(query, b"="));
        }
        let (status, content) = runtime.block_on(async {
            let mut request = app.client.request(method.clone(), app.url(&path));
            if authorized {
                request = request.bearer_auth(&app.demo.token);
            }
            if let Some(body) = &body {
                request = request.body(body.to_string());
                if !content_types[content_type].is_empty() {
                    request = request.header("content-type", content_types[content_type]);
                }
            }
            answer(request).await
        });
        no_5xx_and_problems(status, content.as_deref(), &format!("{method} {path} {body:?}"))?;
    });
}

/// The status and content type `request` is answered with.
pub async fn answer(request: reqwest::RequestBuilder) -> (u16, Option<String>) {
    let response = request.send().await.unwrap();
    let content = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
    (response.status().as_u16(), content)
}

/// A 2xx, or a 4xx problem document; never a 5xx.
pub fn no_5xx_and_problems(status: u16, content: Option<&str>, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{}: {}", what, status);
    if status >= 400 {
        prop_assert_eq!(content, Some("application/problem+json"), "{}: {}", what, status);
    }
    Ok(())
}

/// Every answer tells browsers not to guess its type; manifests and
/// objects, which carry what the store holds, are also forbidden to load
/// anything or run as a page of this origin.
#[tokio::test]
async fn every_answer_is_nosniff_and_stored_content_is_sandboxed() {
    let app = crate::harness::spawn(|_| {}).await;
    let object_url = app.stream_url(crate::harness::READY).await["streamUrl"].as_str().unwrap().to_owned();
    let started: serde_json::Value = app
        .send(reqwest::Method::POST, &format!("/api/v1/stream/{}", crate::harness::MOVIE), None, None)
        .await
        .json()
        .await
        .unwrap();
    let manifest_url = started["manifest_url"].as_str().unwrap().to_owned();
    for url in [object_url, manifest_url] {
        let response = app.client.get(&url).send().await.unwrap();
        assert!(response.status().is_success(), "{url}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(response.headers()["content-security-policy"], "default-src 'none'; sandbox", "{url}");
    }
    for path in ["/", "/healthz", "/openapi.json", "/metrics", "/docs", "/player/player.js", "/no/such/route"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
    }
    let problem = app.stream("01JG0NQNE00000000000000000", Some(&app.demo.token)).await;
    assert_eq!(problem.headers()["x-content-type-options"], "nosniff", "a problem document");
}

/// A manifest path is decoded once, normalised, and only then judged by its
/// name: a segment dressed up as a playlist, or a path encoded twice to
/// climb out, is no manifest of the movie (404), never a 502 or another file.
#[tokio::test]
async fn manifest_paths_are_decoded_once_and_judged_after_normalising() {
    let app = spawn(|_| {}).await;
    let started: Value =
        app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, None).await.json().await.unwrap();
    let url = started["manifest_url"].as_str().unwrap();
    let grant = url.split("grant=").nth(1).unwrap();
    let base = format!("/api/v1/stream/{MOVIE}/manifest");
    assert_eq!(app.raw_status("GET", &format!("{base}/index.m3u8?grant={grant}"), &[]).await, 200);
    for path in [
        "segment-000.ts%3F.m3u8",
        "segment-000.ts%23.m3u8",
        "x%252f..%252findex.m3u8",
        "x%2f..%2findex.m3u8%3Fa",
        "segment-000.ts",
        "..%2f..%2fother%2findex.m3u8",
    ] {
        let status = app.raw_status("GET", &format!("{base}/{path}?grant={grant}"), &[]).await;
        assert_eq!(status, 404, "{path}");
    }
}

/// A stored MPD is the store's content, served from this service's origin:
/// what a browser would run or fetch from it (stylesheet instructions,
/// XHTML, SVG, MathML, XSLT, XInclude) is dropped; extensions players need
/// (a DRM scheme's `cenc:pssh`) are kept.
#[tokio::test]
async fn mpds_lose_active_content_and_keep_player_extensions() {
    let app = spawn(|_| {}).await;
    let file = app.dir.path().join("objects/movies").join(MOVIE).join("index.mpd");
    let stored = std::fs::read_to_string(&file).unwrap();
    let hostile = stored
        .replacen(
            "?>",
            "?>\n<?xml-stylesheet type=\"text/xsl\" href=\"https://evil.example/x.xsl\"?>",
            1,
        )
        .replacen(
            "<ProgramInformation>",
            "<ProgramInformation><html:script xmlns:html=\"http://www.w3.org/1999/xhtml\">alert(document.domain)</html:script>\
             <Title>Demo</Title><xi:include xmlns:xi=\"http://www.w3.org/2001/XInclude\" href=\"file:///etc/passwd\"/>",
            1,
        )
        .replacen(
            "<ServiceDescription id=\"0\">",
            "<ServiceDescription id=\"0\"><svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"><script>alert(2)</script></svg>\
             <m:math xmlns:m=\"http://www.w3.org/1998/Math/MathML\"/><t:stylesheet xmlns:t=\"http://www.w3.org/1999/XSL/Transform\"/>",
            1,
        )
        .replacen(
            "<Representation id=\"0\"",
            "<ContentProtection schemeIdUri=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\">\
             <cenc:pssh xmlns:cenc=\"urn:mpeg:cenc:2013\">AAAAAA==</cenc:pssh></ContentProtection>\n<Representation id=\"0\"",
            1,
        );
    std::fs::write(&file, hostile).unwrap();
    let started: Value = app
        .send(
            Method::POST,
            &format!("/api/v1/stream/{MOVIE}"),
            None,
            Some(serde_json::json!({"manifest_type": "dash"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let mpd = app.client.get(started["manifest_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(mpd.status(), 200);
    let text = mpd.text().await.unwrap();
    for gone in ["xml-stylesheet", "script>", "alert(", "<svg", "MathML", "XSL/Transform", "XInclude", "passwd"] {
        assert!(!text.contains(gone), "{gone} is still served: {text}");
    }
    for kept in
        ["<Title>Demo</Title>", "<cenc:pssh xmlns:cenc=\"urn:mpeg:cenc:2013\">AAAAAA==</cenc:pssh>", "SegmentList"]
    {
        assert!(text.contains(kept), "{kept} was dropped: {text}");
    }
}
