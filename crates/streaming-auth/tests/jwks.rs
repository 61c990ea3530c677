//! RS256 and ES256 tokens verified with keys from a JWKS file and a JWKS
//! URL (a real HTTP server on loopback), and every way a token must fail.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use secrecy::SecretString;
use serde_json::{json, Value};
use streaming_auth::{Algorithm, AuthError, KeySource, KeyStore, TokenVerifier, VerifierOptions};
use time::OffsetDateTime;

const RSA_DER: &[u8] = include_bytes!("fixtures/test_rsa_private_key.der");

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa() -> RsaKeyPair {
    RsaKeyPair::from_der(RSA_DER).unwrap()
}

fn new_ec_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = key.public().into();
    json!({ "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(&public.n), "e": b64(&public.e) })
}

fn ec_jwk(key: &EcdsaKeyPair, kid: &str) -> Value {
    let point = key.public_key().as_ref();
    json!({ "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn claims() -> Value {
    json!({ "sub": "viewer-1", "exp": now().unix_timestamp() + 600, "iss": "https://id.example", "aud": "streaming" })
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
}

fn rs256(key: &RsaKeyPair, kid: Option<&str>, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
    let input = signing_input(&header, claims);
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).unwrap();
    format!("{input}.{}", b64(&signature))
}

fn es256(key: &EcdsaKeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let input = signing_input(&header, claims);
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature.as_ref()))
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn options() -> VerifierOptions {
    VerifierOptions {
        issuer: Some("https://id.example".into()),
        audience: Some("streaming".into()),
        ..VerifierOptions::default()
    }
}

async fn file_store(jwks: &Value) -> (tempfile::TempDir, Arc<KeyStore>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let store = KeyStore::load(KeySource::File(path), Duration::ZERO).await.unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_their_keys() {
    let (rsa, ec) = (rsa(), new_ec_key());
    let (_dir, keys) = file_store(&json!({ "keys": [rsa_jwk(&rsa, "r1"), ec_jwk(&ec, "e1")] })).await;
    let verifier = TokenVerifier::new(&[Algorithm::Rs256, Algorithm::Es256], None, Some(keys), options()).unwrap();
    assert_eq!(verifier.verify(&rs256(&rsa, Some("r1"), &claims()), now()).unwrap().user.as_str(), "viewer-1");
    assert_eq!(verifier.verify(&es256(&ec, "e1", &claims()), now()).unwrap().user.as_str(), "viewer-1");
}

#[tokio::test]
async fn every_forgery_and_misfit_is_refused() {
    let (rsa, ec) = (rsa(), new_ec_key());
    let jwks = json!({ "keys": [rsa_jwk(&rsa, "r1"), ec_jwk(&ec, "e1"), { "kty": "oct", "kid": "o1", "k": b64(b"a-symmetric-key-that-must-never-be-used-0123") }] });
    let (_dir, keys) = file_store(&jwks).await;
    let verifier = TokenVerifier::new(&[Algorithm::Rs256, Algorithm::Es256], None, Some(keys), options()).unwrap();
    let check = |token: String| verifier.verify(&token, now());

    // Algorithm confusion: the RSA public key (as its JWK `n` bytes or DER) used as an HS256 secret.
    let public_der = rsa.public().as_ref().to_vec();
    let confused = hs256(&public_der, &json!({ "alg": "HS256", "kid": "r1" }), &claims());
    assert_eq!(check(confused), Err(AuthError::WrongAlgorithm));
    // The symmetric key in the set is never used.
    let oct =
        hs256(b"a-symmetric-key-that-must-never-be-used-0123", &json!({ "alg": "HS256", "kid": "o1" }), &claims());
    assert_eq!(check(oct), Err(AuthError::WrongAlgorithm));
    // alg none.
    let none = format!("{}.", signing_input(&json!({ "alg": "none", "kid": "r1" }), &claims()));
    assert!(matches!(check(none), Err(AuthError::WrongAlgorithm | AuthError::Malformed)));
    // An ES256 header on an RSA key id, and the other way round.
    let swapped = es256(&ec, "r1", &claims());
    assert_eq!(check(swapped), Err(AuthError::UnknownKey));
    // Missing exp, wrong aud, wrong iss.
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(rs256(&rsa, Some("r1"), &no_exp)), Err(AuthError::MissingClaim));
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("billing");
    assert_eq!(check(rs256(&rsa, Some("r1"), &wrong_aud)), Err(AuthError::WrongAudience));
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.example");
    assert_eq!(check(rs256(&rsa, Some("r1"), &wrong_iss)), Err(AuthError::WrongIssuer));
    // Signed by a key the set does not have, under a known and an unknown id.
    let stranger = new_ec_key();
    assert_eq!(check(es256(&stranger, "e1", &claims())), Err(AuthError::BadSignature));
    assert_eq!(check(es256(&stranger, "e9", &claims())), Err(AuthError::UnknownKey));
    // A tampered payload.
    let token = rs256(&rsa, Some("r1"), &claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut changed = claims();
    changed["sub"] = json!("someone-else");
    parts[1] = b64(changed.to_string().as_bytes());
    assert_eq!(check(parts.join(".")), Err(AuthError::BadSignature));
}

#[tokio::test]
async fn only_the_pinned_algorithms_are_accepted() {
    let (rsa, ec) = (rsa(), new_ec_key());
    let (_dir, keys) = file_store(&json!({ "keys": [rsa_jwk(&rsa, "r1"), ec_jwk(&ec, "e1")] })).await;
    let rs_only = TokenVerifier::new(&[Algorithm::Rs256], None, Some(keys.clone()), options()).unwrap();
    assert_eq!(rs_only.verify(&es256(&ec, "e1", &claims()), now()), Err(AuthError::WrongAlgorithm));
    let secret = SecretString::from("a-shared-secret-of-at-least-32-bytes!!");
    let hs_only = TokenVerifier::new(&[Algorithm::Hs256], Some(&secret), Some(keys), options()).unwrap();
    assert_eq!(hs_only.verify(&rs256(&rsa, Some("r1"), &claims()), now()), Err(AuthError::WrongAlgorithm));
    let hs = hs256(b"a-shared-secret-of-at-least-32-bytes!!", &json!({ "alg": "HS256" }), &claims());
    assert!(hs_only.verify(&hs, now()).is_ok());

    assert!(TokenVerifier::new(&[Algorithm::Rs256], None, None, options()).is_err(), "RS256 needs keys");
    assert!(TokenVerifier::new(&[Algorithm::Hs256], None, None, options()).is_err(), "HS256 needs a secret");
    assert!(TokenVerifier::new(&[], None, None, options()).is_err());
    assert_eq!(Algorithm::parse_list("RS256, es256").unwrap(), vec![Algorithm::Rs256, Algorithm::Es256]);
    assert!(Algorithm::parse_list("RS256,none").is_err());
}

#[tokio::test]
async fn a_key_id_without_kid_is_used_only_when_it_is_the_only_key_of_its_algorithm() {
    let rsa = rsa();
    let (_dir, keys) = file_store(&json!({ "keys": [rsa_jwk(&rsa, "r1")] })).await;
    let verifier = TokenVerifier::new(&[Algorithm::Rs256], None, Some(keys), options()).unwrap();
    assert!(verifier.verify(&rs256(&rsa, None, &claims()), now()).is_ok(), "one RSA key: no kid needed");
}

/// A JWKS endpoint whose document the test can change.
async fn jwks_server(document: Arc<Mutex<Value>>, fetches: Arc<AtomicUsize>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let (document, fetches) = (document.clone(), fetches.clone());
        App::new().route(
            "/.well-known/jwks.json",
            web::get().to(move || {
                let (document, fetches) = (document.clone(), fetches.clone());
                async move {
                    fetches.fetch_add(1, Ordering::Relaxed);
                    HttpResponse::Ok().json(document.lock().unwrap().clone())
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/.well-known/jwks.json")
}

#[actix_web::test]
async fn a_rotated_key_is_fetched_on_its_first_token_and_unknown_ids_cannot_hammer_the_issuer() {
    let (old, new) = (new_ec_key(), new_ec_key());
    let document = Arc::new(Mutex::new(json!({ "keys": [ec_jwk(&old, "2026-01")] })));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(document.clone(), fetches.clone()).await;
    let keys = Arc::new(KeyStore::load(KeySource::Url(url), Duration::from_millis(300)).await.unwrap());
    let verifier = TokenVerifier::new(&[Algorithm::Es256], None, Some(keys), options()).unwrap();
    assert!(verifier.verify_refreshing(&es256(&old, "2026-01", &claims()), now()).await.is_ok());
    assert_eq!(fetches.load(Ordering::Relaxed), 1);

    // The issuer rotates; the first token of the new key triggers one fetch.
    *document.lock().unwrap() = json!({ "keys": [ec_jwk(&old, "2026-01"), ec_jwk(&new, "2026-02")] });
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(verifier.verify_refreshing(&es256(&new, "2026-02", &claims()), now()).await.is_ok());
    assert_eq!(fetches.load(Ordering::Relaxed), 2);

    // Tokens naming keys that do not exist refresh at most once per interval.
    let stranger = new_ec_key();
    for i in 0..20 {
        let token = es256(&stranger, &format!("bogus-{i}"), &claims());
        assert_eq!(verifier.verify_refreshing(&token, now()).await, Err(AuthError::UnknownKey));
    }
    assert!(fetches.load(Ordering::Relaxed) <= 3, "{} fetches", fetches.load(Ordering::Relaxed));
}

#[tokio::test]
async fn the_token_use_claim_counts_as_the_token_type() {
    let rsa = rsa();
    let (_dir, keys) = file_store(&json!({ "keys": [rsa_jwk(&rsa, "r1")] })).await;
    let options = VerifierOptions { token_type: Some("access".into()), ..options() };
    let verifier = TokenVerifier::new(&[Algorithm::Rs256], None, Some(keys), options).unwrap();
    let with = |claim: &str, value: &str| {
        let mut claims = claims();
        claims[claim] = json!(value);
        rs256(&rsa, Some("r1"), &claims)
    };
    assert!(verifier.verify(&with("token_use", "access"), now()).is_ok());
    assert!(verifier.verify(&with("type", "access"), now()).is_ok());
    assert_eq!(verifier.verify(&with("token_use", "id"), now()), Err(AuthError::WrongTokenType));
    assert_eq!(verifier.verify(&rs256(&rsa, Some("r1"), &claims()), now()), Err(AuthError::WrongTokenType));
}

/// An HTTP server on loopback answering every request with `answer(path)`.
async fn server(answer: fn(&str, u16) -> HttpResponse) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().default_service(web::to(move |request: actix_web::HttpRequest| async move {
            answer(request.path(), port)
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    port
}

fn a_key_set(_: &str, _: u16) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "keys": [ec_jwk(&new_ec_key(), "k1")] }))
}

#[actix_web::test]
async fn a_jwks_url_is_https_or_loopback_and_its_redirects_stay_on_its_origin() {
    for url in ["http://issuer.example/.well-known/jwks.json", "ftp://127.0.0.1/jwks", "not a url"] {
        let refused = KeyStore::load(KeySource::Url(url.into()), Duration::from_secs(30)).await.unwrap_err();
        assert!(refused.to_string().contains("https") || refused.to_string().contains("not a URL"), "{url}: {refused}");
    }

    let keys = server(a_key_set).await;
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    assert!(KeyStore::load(KeySource::Url(url(keys, "/jwks")), Duration::from_secs(30)).await.is_ok(), "loopback http");
    let localhost = format!("http://localhost:{keys}/jwks");
    assert!(KeyStore::load(KeySource::Url(localhost), Duration::from_secs(30)).await.is_ok());

    // A redirect within the origin is followed; one to another origin is not.
    let same = server(|path, port| match path {
        "/moved" => HttpResponse::Found().insert_header(("Location", format!("http://127.0.0.1:{port}/jwks"))).finish(),
        _ => a_key_set(path, port),
    })
    .await;
    assert!(KeyStore::load(KeySource::Url(url(same, "/moved")), Duration::from_secs(30)).await.is_ok());
    static ELSEWHERE: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    ELSEWHERE.set(keys).unwrap();
    let away = server(|_, _| {
        let target = format!("http://127.0.0.1:{}/jwks", ELSEWHERE.get().unwrap());
        HttpResponse::Found().insert_header(("Location", target)).finish()
    })
    .await;
    let refused = KeyStore::load(KeySource::Url(url(away, "/jwks")), Duration::from_secs(30)).await.unwrap_err();
    assert!(refused.to_string().contains("302"), "{refused}");
}

#[actix_web::test]
async fn an_oversized_jwks_document_is_refused() {
    let huge = server(|_, _| {
        let padding = "x".repeat(streaming_auth::MAX_JWKS_BYTES);
        HttpResponse::Ok().json(json!({ "keys": [ec_jwk(&new_ec_key(), "k1")], "padding": padding }))
    })
    .await;
    let url = format!("http://127.0.0.1:{huge}/jwks");
    let refused = KeyStore::load(KeySource::Url(url), Duration::from_secs(30)).await.unwrap_err();
    assert!(refused.to_string().contains("larger than"), "{refused}");
}

#[tokio::test]
async fn keys_not_for_signatures_are_not_used() {
    let (signing, encrypting) = (new_ec_key(), new_ec_key());
    let mut enc = ec_jwk(&encrypting, "enc-1");
    enc["use"] = json!("enc");
    let (_dir, keys) = file_store(&json!({ "keys": [ec_jwk(&signing, "sig-1"), enc] })).await;
    let verifier = TokenVerifier::new(&[Algorithm::Es256], None, Some(keys), options()).unwrap();
    assert!(verifier.verify(&es256(&signing, "sig-1", &claims()), now()).is_ok());
    assert_eq!(verifier.verify(&es256(&encrypting, "enc-1", &claims()), now()), Err(AuthError::UnknownKey));
    let mut only_enc = ec_jwk(&encrypting, "enc-1");
    only_enc["use"] = json!("enc");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), json!({ "keys": [only_enc] }).to_string()).unwrap();
    assert!(KeyStore::load(KeySource::File(dir.path().join("jwks.json")), Duration::ZERO).await.is_err());
}
