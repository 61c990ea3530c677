//! Presigning one GET URL: our SigV4 query signer against rusoto's presigner.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rusoto_core::Region;
use rusoto_credential::AwsCredentials;
use rusoto_s3::util::{PreSignedRequest, PreSignedRequestOption};
use rusoto_s3::GetObjectRequest;
use streaming_core::domain::ObjectKey;
use streaming_core::ports::ObjectStore;
use streaming_s3::{QuerySigner, ResponseOverrides, S3Config, S3Credentials, S3ObjectStore, SigningCredentials};
use time::OffsetDateTime;

const KEY: &str = "tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E-a1b2c3.mp3";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn presign(c: &mut Criterion) {
    let signer = QuerySigner::new("http", "127.0.0.1:9000", "us-east-1");
    let credentials = SigningCredentials { access_key: "AKIDEXAMPLE", secret_key: SECRET, session_token: None };
    let now = OffsetDateTime::now_utc();
    c.bench_function("presign/query_signer", |b| {
        b.iter(|| {
            signer.presign_get(credentials, "audio", std::hint::black_box(KEY), now, 120, ResponseOverrides::default())
        });
    });

    let store = match S3ObjectStore::new(S3Config {
        endpoint: Some("http://127.0.0.1:9000".into()),
        region: "us-east-1".into(),
        bucket: "audio".into(),
        credentials: S3Credentials::Static { access_key: "AKIDEXAMPLE".into(), secret_key: SECRET.into() },
        request_timeout: Duration::from_secs(5),
        breaker_cool_down: Duration::from_secs(30),
    }) {
        Ok(store) => store,
        Err(e) => panic!("{e}"),
    };
    let key = match ObjectKey::try_from(KEY) {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => panic!("{e}"),
    };
    c.bench_function("presign/s3_object_store_port", |b| {
        b.iter(|| runtime.block_on(store.presign_get(&key, now, Duration::from_secs(120))));
    });

    let region = Region::Custom { name: "us-east-1".into(), endpoint: "http://127.0.0.1:9000".into() };
    let credentials = AwsCredentials::new("AKIDEXAMPLE", SECRET, None, None);
    let option = PreSignedRequestOption { expires_in: Duration::from_secs(120) };
    c.bench_function("presign/rusoto_get_presigned_url", |b| {
        b.iter(|| {
            let request = GetObjectRequest { bucket: "audio".into(), key: KEY.into(), ..Default::default() };
            request.get_presigned_url(&region, &credentials, &option)
        });
    });
}

criterion_group!(benches, presign);
criterion_main!(benches);
