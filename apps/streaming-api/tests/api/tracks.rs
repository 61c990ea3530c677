use crate::harness::{spawn, READY};

#[tokio::test]
async fn a_stream_url_serves_exactly_the_requested_range() {
    let app = spawn(|_| {}).await;
    let body = app.stream_url(READY).await;
    assert_eq!(body["contentType"], "audio/wav");
    assert_eq!(body["supportsRangeRequests"], true);
    let expected = app.object_bytes(READY);
    assert_eq!(body["fileSizeBytes"], expected.len());
    let expires_at = time::OffsetDateTime::parse(
        body["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = expires_at - time::OffsetDateTime::now_utc();
    assert!(lifetime > time::Duration::seconds(110) && lifetime <= time::Duration::seconds(121), "{lifetime}");

    let url = body["streamUrl"].as_str().unwrap();
    let response = app.client.get(url).header("Range", "bytes=0-99").send().await.unwrap();
    assert_eq!(response.status(), 206);
    let headers = response.headers().clone();
    assert_eq!(headers["content-range"], format!("bytes 0-99/{}", expected.len()));
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["content-type"], "audio/wav");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(&bytes[..], &expected[..100]);

    let tail = app.client.get(url).header("Range", "bytes=1000-").send().await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(&tail.bytes().await.unwrap()[..], &expected[1000..]);

    let whole = app.client.get(url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(&whole.bytes().await.unwrap()[..], &expected[..]);
}

#[tokio::test]
async fn a_second_request_returns_the_cached_url() {
    let app = spawn(|_| {}).await;
    let first = app.stream_url(READY).await;
    let second = app.stream_url(READY).await;
    assert_eq!(first["streamUrl"], second["streamUrl"]);
    assert_eq!(first["expiresAt"], second["expiresAt"]);
}

#[tokio::test]
async fn track_ids_are_case_insensitive_ulids() {
    let app = spawn(|_| {}).await;
    let upper = app.stream_url(READY).await;
    let lower = app.stream_url(&READY.to_lowercase()).await;
    assert_eq!(upper["streamUrl"], lower["streamUrl"], "one track, one cache entry");
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn(|_| {}).await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}
