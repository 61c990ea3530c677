//! The S3 adapter against a real S3-compatible server that checks SigV4
//! signatures (`cargo xtask test` starts it; see `xtask/src/infra`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use streaming_core::circuit_breaker::BreakerState;
use streaming_core::domain::ObjectKey;
use streaming_core::ports::{ObjectStore, ObjectStoreError};
use streaming_s3::{ResponseOverrides, S3Config, S3Credentials, S3ObjectStore};
use time::OffsetDateTime;

use streaming_core::contract::infra_var as infra;

fn config(endpoint: &str) -> S3Config {
    S3Config {
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".into(),
        bucket: infra("STREAMGATE_S3_BUCKET"),
        credentials: S3Credentials::Static {
            access_key: infra("STREAMGATE_S3_ACCESS_KEY"),
            secret_key: infra("STREAMGATE_S3_SECRET_KEY").into(),
        },
        request_timeout: Duration::from_secs(5),
        breaker_cool_down: Duration::from_secs(30),
    }
}

fn store() -> S3ObjectStore {
    S3ObjectStore::new(config(&infra("STREAMGATE_S3_ENDPOINT"))).unwrap()
}

fn unique_key(name: &str) -> ObjectKey {
    ObjectKey::try_from(format!("tests/{}/{name}", uuid_v4()).as_str()).unwrap()
}

fn uuid_v4() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn audio(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn keeps_the_object_store_contract() {
    let store = store();
    let key = unique_key("track.wav");
    let bytes = audio(4096);
    store.put(&key, bytes.clone(), "audio/wav").await.unwrap();
    streaming_core::contract::object_store(&store, &key, &bytes, &unique_key("missing.wav")).await;
    assert_eq!(store.head(&key).await.unwrap().content_type.as_deref(), Some("audio/wav"));
}

#[tokio::test]
async fn a_presigned_url_serves_the_object_and_its_ranges() {
    let store = store();
    let key = unique_key("with space & ünïcode.mp3");
    let bytes = audio(10_000);
    store.put(&key, bytes.clone(), "audio/mpeg").await.unwrap();
    let url = store.presign_get(&key, OffsetDateTime::now_utc(), Duration::from_secs(120)).await.unwrap().url;
    let client = reqwest::Client::new();

    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(&whole.bytes().await.unwrap()[..], &bytes[..]);

    let range = client.get(&url).header("Range", "bytes=0-99").send().await.unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.headers()["content-range"], format!("bytes 0-99/{}", bytes.len()));
    assert_eq!(&range.bytes().await.unwrap()[..], &bytes[..100]);
}

#[tokio::test]
async fn tampered_expired_and_unsigned_requests_are_refused() {
    let store = store();
    let key = unique_key("private.mp3");
    store.put(&key, audio(100), "audio/mpeg").await.unwrap();
    let client = reqwest::Client::new();

    let url = store.presign_get(&key, OffsetDateTime::now_utc(), Duration::from_secs(120)).await.unwrap().url;
    let signature = url.split("X-Amz-Signature=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let flipped: String = signature.chars().rev().collect();
    let tampered = url.replace(&signature, &flipped);
    assert_eq!(client.get(&tampered).send().await.unwrap().status(), 403, "changed signature");
    let longer = url.replace("X-Amz-Expires=120", "X-Amz-Expires=604800");
    assert_eq!(client.get(&longer).send().await.unwrap().status(), 403, "changed expiry");

    let long_ago = OffsetDateTime::now_utc() - Duration::from_secs(600);
    let expired = store.presign_get(&key, long_ago, Duration::from_secs(60)).await.unwrap().url;
    assert_eq!(client.get(&expired).send().await.unwrap().status(), 403, "expired");

    let unsigned = url.split('?').next().unwrap();
    assert_eq!(client.get(unsigned).send().await.unwrap().status(), 403, "the bucket is private");
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    let store = store();
    let missing = unique_key("nothing.mp3");
    assert_eq!(store.head(&missing).await, Err(ObjectStoreError::NotFound));
    assert_eq!(store.read_small(&missing, 1024).await, Err(ObjectStoreError::NotFound));
    assert_eq!(store.breaker_state(), BreakerState::Closed, "not found is an answer, not a failure");
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_and_opens_the_breaker() {
    // A server of our own, so stopping it disturbs no other test.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    std::fs::create_dir_all(data.join(infra("STREAMGATE_S3_BUCKET"))).unwrap();
    let port = streaming_core::contract::free_port();
    let mut server = tokio::process::Command::new(infra("STREAMGATE_S3S_FS_BIN"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", &infra("STREAMGATE_S3_ACCESS_KEY"), "--secret-key", &infra("STREAMGATE_S3_SECRET_KEY")])
        .arg(&data)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the test server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = S3ObjectStore::new(S3Config { request_timeout: Duration::from_secs(1), ..config(&endpoint) }).unwrap();
    let key = unique_key("a.mp3");
    store.put(&key, audio(10), "audio/mpeg").await.unwrap();
    assert!(store.head(&key).await.is_ok());

    server.kill().await.unwrap();
    let started = Instant::now();
    for attempt in 0..5 {
        let result = store.head(&key).await;
        assert!(matches!(result, Err(ObjectStoreError::Unavailable(_))), "attempt {attempt}: {result:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "each failure is bounded by the timeout");
    assert_eq!(store.breaker_state(), BreakerState::Open);
    let fast = Instant::now();
    assert_eq!(store.head(&key).await, Err(ObjectStoreError::Unavailable("circuit breaker open".into())));
    assert!(fast.elapsed() < Duration::from_millis(50), "an open breaker fails fast");
    // Presigning needs no server and still works.
    assert!(store.presign_get(&key, OffsetDateTime::now_utc(), Duration::from_secs(60)).await.is_ok());
}

#[tokio::test]
async fn response_overrides_are_signed_and_honoured() {
    let store = store();
    let key = unique_key("override.bin");
    store.put(&key, audio(64), "application/octet-stream").await.unwrap();
    let overrides = ResponseOverrides {
        content_type: Some("audio/mpeg"),
        content_disposition: Some("inline; filename=\"a b.mp3\""),
    };
    let url =
        store.presign_get_with(&key, OffsetDateTime::now_utc(), Duration::from_secs(60), overrides).await.unwrap().url;
    let client = reqwest::Client::new();
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(response.headers()["content-disposition"], "inline; filename=\"a b.mp3\"");
    let swapped = url.replace("audio%2Fmpeg", "text%2Fhtml");
    assert_eq!(client.get(&swapped).send().await.unwrap().status(), 403, "overrides are covered by the signature");
}

/// The standard credential chain, fed through its first link: the environment.
#[tokio::test]
async fn credentials_from_the_standard_chain_sign_and_authenticate() {
    // nextest runs each test in its own process, so this environment is ours alone.
    std::env::set_var("AWS_ACCESS_KEY_ID", infra("STREAMGATE_S3_ACCESS_KEY"));
    std::env::set_var("AWS_SECRET_ACCESS_KEY", infra("STREAMGATE_S3_SECRET_KEY"));
    let store = S3ObjectStore::new(S3Config {
        credentials: S3Credentials::Default,
        ..config(&infra("STREAMGATE_S3_ENDPOINT"))
    })
    .unwrap();
    let key = unique_key("chain.mp3");
    store.put(&key, audio(32), "audio/mpeg").await.unwrap();
    assert_eq!(store.head(&key).await.unwrap().size_bytes, 32);
    let url = store.presign_get(&key, OffsetDateTime::now_utc(), Duration::from_secs(60)).await.unwrap().url;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
}

/// A loopback stand-in of STS: answers AssumeRoleWithWebIdentity with the
/// S3 server's keys as the role's temporary credentials (with a session
/// token), valid `lifetime` from the answer, and keeps each request's form.
struct StandInSts {
    endpoint: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StandInSts {
    async fn start(lifetime: Duration) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                // The head, then as much body as it announces.
                let body_at = loop {
                    let read = socket.read(&mut buffer).await.unwrap_or(0);
                    request.extend_from_slice(&buffer[..read]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(end + 4);
                    }
                    if read == 0 {
                        break None;
                    }
                };
                // A connection opened and closed without a request.
                let Some(body_at) = body_at else { continue };
                let head = String::from_utf8_lossy(&request[..body_at]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().unwrap());
                while request.len() < body_at + length {
                    let read = socket.read(&mut buffer).await.unwrap_or(0);
                    assert!(read > 0, "the request ended before its body: {}", String::from_utf8_lossy(&request));
                    request.extend_from_slice(&buffer[..read]);
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&request[body_at..]).into_owned());
                let expiration = OffsetDateTime::now_utc() + lifetime;
                let expiration = expiration.format(&time::format_description::well_known::Rfc3339).unwrap();
                let body = format!(
                    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                     <AssumeRoleWithWebIdentityResult><Credentials>\
                     <SessionToken>stand-in-session-token</SessionToken>\
                     <SecretAccessKey>{}</SecretAccessKey><Expiration>{expiration}</Expiration>\
                     <AccessKeyId>{}</AccessKeyId></Credentials>\
                     <SubjectFromWebIdentityToken>system:serviceaccount:media:streamgate</SubjectFromWebIdentityToken>\
                     </AssumeRoleWithWebIdentityResult>\
                     <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>\
                     </AssumeRoleWithWebIdentityResponse>",
                    infra("STREAMGATE_S3_SECRET_KEY"),
                    infra("STREAMGATE_S3_ACCESS_KEY"),
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            }
        });
        Self { endpoint, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// A store on the standard chain with no keys in the environment, a
    /// web identity token in `token_file`, and this STS to exchange it at,
    /// as EKS IRSA configures a pod (nextest runs each test in its own
    /// process, so this environment is the test's alone).
    fn store(&self, token_file: &std::path::Path) -> S3ObjectStore {
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
            std::env::remove_var(name);
        }
        std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", token_file);
        std::env::set_var("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/streamgate");
        std::env::set_var("AWS_ENDPOINT_URL_STS", &self.endpoint);
        let config = S3Config { credentials: S3Credentials::Default, ..config(&infra("STREAMGATE_S3_ENDPOINT")) };
        S3ObjectStore::new(config).unwrap()
    }
}

/// The chain's web identity link, as EKS IRSA configures it: a token file
/// and a role in the environment, no keys. The token is exchanged at STS
/// (a loopback stand-in) and the role's credentials, with their session
/// token, sign requests and URLs the real S3 server accepts; the exchange
/// is cached, and renewed with the token file read again.
#[tokio::test]
async fn a_web_identity_token_is_exchanged_at_sts_for_credentials_that_sign() {
    // Renewed half-way through their life: a second here.
    let sts = StandInSts::start(Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-projected-token\n").unwrap();
    std::env::set_var("AWS_ROLE_SESSION_NAME", "streamgate-pod-1");
    let store = sts.store(&token_file);
    let key = unique_key("irsa.mp3");
    store.put(&key, audio(48), "audio/mpeg").await.unwrap();
    let url = store.presign_get(&key, OffsetDateTime::now_utc(), Duration::from_secs(60)).await.unwrap().url;
    assert!(url.contains("X-Amz-Security-Token=stand-in-session-token"), "the session token is signed in");
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200, "the server checked the signature");
    assert_eq!(fetched.bytes().await.unwrap().len(), 48);

    let requests = sts.requests();
    let first = requests.first().expect("STS was asked");
    for part in [
        "Action=AssumeRoleWithWebIdentity",
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fstreamgate",
        "RoleSessionName=streamgate-pod-1",
        "WebIdentityToken=first-projected-token&",
    ] {
        assert!(format!("{first}&").contains(part), "{part} in {first}");
    }
    // The kubelet rotates the token; the next renewal sends the new one.
    std::fs::write(&token_file, "second-projected-token").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.presign_get(&key, OffsetDateTime::now_utc(), Duration::from_secs(60)).await.unwrap();
    let requests = sts.requests();
    assert_eq!(requests.len(), 2, "one exchange for the put and the first URL, one renewal");
    assert!(requests[1].contains("WebIdentityToken=second-projected-token"), "{}", requests[1]);
}

/// Credentials with a normal lifetime are asked for once, not per URL.
#[tokio::test]
async fn web_identity_credentials_are_cached_until_half_their_life() {
    let sts = StandInSts::start(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "projected-token").unwrap();
    let store = sts.store(&token_file);
    let key = unique_key("cached.mp3");
    store.put(&key, audio(16), "audio/mpeg").await.unwrap();
    for _ in 0..5 {
        let url = store.presign_get(&key, OffsetDateTime::now_utc(), Duration::from_secs(60)).await.unwrap().url;
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    }
    assert_eq!(sts.requests().len(), 1, "one exchange for a put and five URLs");
}
