use streaming_core::url_signing::UrlSigner;

use crate::harness::{assert_problem, spawn, READY, SIGNING_KEY};

fn with_query(url: &str, exp: &str, sig: &str) -> String {
    let base = url.split_once('?').unwrap().0;
    format!("{base}?exp={exp}&sig={sig}")
}

fn query_param<'a>(url: &'a str, name: &str) -> &'a str {
    let query = url.split_once('?').unwrap().1;
    query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap()
}

#[tokio::test]
async fn a_tampered_signature_is_forbidden() {
    let app = spawn(|_| {}).await;
    let url = app.stream_url(READY).await["streamUrl"].as_str().unwrap().to_owned();
    let sig = query_param(&url, "sig");
    let replacement = if sig.starts_with('A') { "B" } else { "A" };
    let flipped = format!("{replacement}{}", &sig[1..]);
    let exp = query_param(&url, "exp");

    for bad in [
        with_query(&url, exp, &flipped),
        with_query(&url, &(exp.parse::<i64>().unwrap() + 3600).to_string(), sig),
        url.split_once('?').unwrap().0.to_owned(),
        url.replace(READY, "01JG0DEM0TRACK000000000002"),
    ] {
        let response = app.client.get(&bad).send().await.unwrap();
        assert_problem(response, 403, "invalid-signature").await;
    }
}

#[tokio::test]
async fn an_expired_signature_is_forbidden() {
    let app = spawn(|_| {}).await;
    let url = app.stream_url(READY).await["streamUrl"].as_str().unwrap().to_owned();
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
    let key = format!("tracks/{READY}.wav");
    let sig = UrlSigner::new(SIGNING_KEY.as_bytes()).unwrap().sign("GET", &key, past);
    let response = app.client.get(with_query(&url, &past.to_string(), &sig)).send().await.unwrap();
    assert_problem(response, 403, "expired-signature").await;
}

#[tokio::test]
async fn traversal_through_the_object_route_is_refused() {
    let app = spawn(|_| {}).await;
    let signer = UrlSigner::new(SIGNING_KEY.as_bytes()).unwrap();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
    std::fs::write(app.dir.path().join("secret"), b"outside the store").unwrap();
    for (path, signed_as) in [
        ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
        ("%2E%2E/secret", "../secret"),
        ("../secret", "../secret"),
        ("tracks/../../secret", "tracks/../../secret"),
        ("%2Fetc%2Fpasswd", "/etc/passwd"),
    ] {
        let sig = signer.sign("GET", signed_as, exp);
        let status = app.raw_status("GET", &format!("/objects/{path}?exp={exp}&sig={sig}"), &[]).await;
        assert!(status == 403 || status == 404, "{path}: {status}");
        assert_ne!(status, 200);
    }
}

#[tokio::test]
async fn a_signed_url_for_a_missing_object_is_not_found() {
    let app = spawn(|_| {}).await;
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
    let sig = UrlSigner::new(SIGNING_KEY.as_bytes()).unwrap().sign("GET", "tracks/none.wav", exp);
    let response =
        app.client.get(app.url(&format!("/objects/tracks/none.wav?exp={exp}&sig={sig}"))).send().await.unwrap();
    assert_problem(response, 404, "object-not-found").await;
}

#[tokio::test]
async fn head_and_unsatisfiable_ranges() {
    let app = spawn(|_| {}).await;
    let url = app.stream_url(READY).await["streamUrl"].as_str().unwrap().to_owned();
    let size = app.object_bytes(READY).len();

    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], size.to_string());
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    assert!(head.bytes().await.unwrap().is_empty());

    let beyond = app.client.get(&url).header("Range", format!("bytes={size}-")).send().await.unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(beyond.headers()["content-range"], format!("bytes */{size}"));
}
