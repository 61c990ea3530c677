use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use biscuit::jwa::SignatureAlgorithm;
use biscuit::jws::Secret;
use secrecy::SecretString;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

const NOW: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);
const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

fn secret() -> SecretString {
    SecretString::from(SECRET)
}

fn verifier(options: VerifierOptions) -> TokenVerifier {
    TokenVerifier::hs256(&secret(), options).unwrap()
}

fn claims() -> TokenClaims {
    TokenClaims {
        subject: "01HXKZ3Y8Q4N7W2M5V6B9C0AAA".into(),
        expires_at: Some(NOW + Duration::from_secs(3600)),
        ..TokenClaims::default()
    }
}

fn sign(claims: &TokenClaims) -> String {
    TokenSigner::hs256(&secret()).sign(claims).unwrap()
}

/// A token with any header, signed by `algorithm` over exactly those bytes.
fn forge(header_json: &str, payload_json: &str, algorithm: Option<SignatureAlgorithm>) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(payload_json));
    let signature = match algorithm {
        Some(alg) => alg.sign(signing_input.as_bytes(), &Secret::Bytes(SECRET.as_bytes().to_vec())).unwrap(),
        None => Vec::new(),
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn payload() -> String {
    format!(r#"{{"sub":"alice","exp":{}}}"#, NOW.unix_timestamp() + 3600)
}

#[test]
fn a_valid_token_names_its_subject() {
    let principal = verifier(VerifierOptions::default()).verify(&sign(&claims()), NOW).unwrap();
    assert_eq!(principal.user.as_str(), "01HXKZ3Y8Q4N7W2M5V6B9C0AAA");
    assert_eq!(principal.expires_at, NOW + Duration::from_secs(3600));
}

#[test]
fn expiry_is_required_and_checked_with_leeway() {
    let v = verifier(VerifierOptions::default());
    let at = |offset: i64| TokenClaims { expires_at: Some(NOW + time::Duration::seconds(offset)), ..claims() };
    assert!(v.verify(&sign(&at(-20)), NOW).is_ok(), "20 s past exp is within the 30 s leeway");
    assert_eq!(v.verify(&sign(&at(-31)), NOW), Err(AuthError::Expired));
    assert_eq!(v.verify(&sign(&TokenClaims { expires_at: None, ..claims() }), NOW), Err(AuthError::MissingClaim));
}

#[test]
fn not_before_is_checked_with_leeway() {
    let v = verifier(VerifierOptions::default());
    let nbf = |offset: i64| TokenClaims { not_before: Some(NOW + time::Duration::seconds(offset)), ..claims() };
    assert!(v.verify(&sign(&nbf(20)), NOW).is_ok());
    assert_eq!(v.verify(&sign(&nbf(120)), NOW), Err(AuthError::NotYetValid));
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let v = verifier(VerifierOptions {
        issuer: Some("https://auth.test".into()),
        audience: Some("streaming".into()),
        ..VerifierOptions::default()
    });
    let good = TokenClaims { issuer: Some("https://auth.test".into()), audience: Some("streaming".into()), ..claims() };
    assert!(v.verify(&sign(&good), NOW).is_ok());
    assert_eq!(
        v.verify(&sign(&TokenClaims { issuer: Some("https://evil.test".into()), ..good.clone() }), NOW),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        v.verify(&sign(&TokenClaims { audience: Some("billing".into()), ..good.clone() }), NOW),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(v.verify(&sign(&TokenClaims { issuer: None, ..good.clone() }), NOW), Err(AuthError::MissingClaim));
    assert_eq!(v.verify(&sign(&TokenClaims { audience: None, ..good }), NOW), Err(AuthError::MissingClaim));
}

#[test]
fn the_token_type_is_checked_when_configured() {
    let v = verifier(VerifierOptions { token_type: Some("access".into()), ..VerifierOptions::default() });
    assert!(v.verify(&sign(&TokenClaims { token_type: Some("access".into()), ..claims() }), NOW).is_ok());
    assert_eq!(
        v.verify(&sign(&TokenClaims { token_type: Some("refresh".into()), ..claims() }), NOW),
        Err(AuthError::WrongTokenType)
    );
    assert_eq!(v.verify(&sign(&claims()), NOW), Err(AuthError::WrongTokenType));
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let other =
        TokenSigner::hs256(&SecretString::from("another-secret-that-is-also-long-enough")).sign(&claims()).unwrap();
    assert_eq!(verifier(VerifierOptions::default()).verify(&other, NOW), Err(AuthError::BadSignature));
}

#[test]
fn alg_none_is_refused() {
    let v = verifier(VerifierOptions::default());
    let unsigned = forge(r#"{"alg":"none","typ":"JWT"}"#, &payload(), None);
    assert!(v.verify(&unsigned, NOW).is_err());
    let unsigned_lower = forge(r#"{"alg":"None"}"#, &payload(), None);
    assert!(v.verify(&unsigned_lower, NOW).is_err());
}

#[test]
fn other_algorithms_are_refused_even_with_the_right_secret() {
    let v = verifier(VerifierOptions::default());
    let hs384 = forge(r#"{"alg":"HS384"}"#, &payload(), Some(SignatureAlgorithm::HS384));
    assert!(v.verify(&hs384, NOW).is_err());
    // Algorithm confusion: the header claims RS256, the bytes are an HS256 MAC with our secret.
    let confused = forge(r#"{"alg":"RS256"}"#, &payload(), Some(SignatureAlgorithm::HS256));
    assert_eq!(v.verify(&confused, NOW), Err(AuthError::WrongAlgorithm));
    // The same forgery with the honest header is accepted, so the header check is what refused it.
    let honest = forge(r#"{"alg":"HS256"}"#, &payload(), Some(SignatureAlgorithm::HS256));
    assert!(v.verify(&honest, NOW).is_ok());
}

#[test]
fn subjects_must_be_user_ids() {
    let v = verifier(VerifierOptions::default());
    for bad in ["", "a:b", "a b", "{tag}"] {
        let token = sign(&TokenClaims { subject: bad.into(), ..claims() });
        assert_eq!(v.verify(&token, NOW), Err(AuthError::BadSubject), "{bad:?}");
    }
    let no_sub = forge(
        r#"{"alg":"HS256"}"#,
        &format!(r#"{{"exp":{}}}"#, NOW.unix_timestamp() + 60),
        Some(SignatureAlgorithm::HS256),
    );
    assert_eq!(v.verify(&no_sub, NOW), Err(AuthError::MissingClaim));
}

#[test]
fn uuid_subjects_are_required_when_configured() {
    let v = verifier(VerifierOptions { uuid_subjects: true, ..VerifierOptions::default() });
    let token = |subject: &str| sign(&TokenClaims { subject: subject.into(), ..claims() });
    let user = v.verify(&token("3F8C2B1E-9d4a-4c7b-8e2f-1a2b3c4d5e6f"), NOW).unwrap();
    assert_eq!(user.user.as_str(), "3f8c2b1e-9d4a-4c7b-8e2f-1a2b3c4d5e6f", "one spelling");
    for bad in [
        "01HXKZ3Y8Q4N7W2M5V6B9C0AAA",
        "3f8c2b1e9d4a4c7b8e2f1a2b3c4d5e6f",
        "3f8c2b1e-9d4a-4c7b-8e2f-1a2b3c4d5e6g",
        "3f8c2b1e-9d4a-4c7b-8e2f1-a2b3c4d5e6f",
        "auth0|alice",
    ] {
        assert_eq!(v.verify(&token(bad), NOW), Err(AuthError::BadSubject), "{bad:?}");
    }
    let any = verifier(VerifierOptions::default());
    assert!(any.verify(&token("auth0|alice"), NOW).is_ok(), "off by default");
}

#[test]
fn times_beyond_what_a_date_can_hold_are_malformed_not_a_panic() {
    let v = verifier(VerifierOptions::default());
    for claim in ["exp", "nbf", "iat"] {
        for seconds in ["17673000300000", "-17673000300000", "9223372036854775807"] {
            let mut payload: serde_json::Value = serde_json::from_str(&payload()).unwrap();
            payload[claim] = serde_json::Value::Number(seconds.parse().unwrap());
            let token = forge(r#"{"alg":"HS256"}"#, &payload.to_string(), Some(SignatureAlgorithm::HS256));
            assert_eq!(v.verify(&token, NOW), Err(AuthError::Malformed), "{claim} = {seconds}");
        }
    }
}

#[test]
fn garbage_is_malformed() {
    let v = verifier(VerifierOptions::default());
    let long = "a".repeat(MAX_TOKEN_LEN + 1);
    for bad in ["", "abc", "a.b", "a.b.c.d", "....", "!!.!!.!!", long.as_str()] {
        assert!(v.verify(bad, NOW).is_err(), "{bad:?}");
    }
    let truncated = sign(&claims());
    assert!(v.verify(&truncated[..truncated.len() - 5], NOW).is_err());
    let json_garbage = forge(r#"{"alg":"HS256"}"#, "not json", Some(SignatureAlgorithm::HS256));
    assert_eq!(v.verify(&json_garbage, NOW), Err(AuthError::Malformed));
}

#[test]
fn short_secrets_are_refused() {
    assert_eq!(
        TokenVerifier::hs256(&SecretString::from("short"), VerifierOptions::default()).unwrap_err(),
        ConfigError::WeakSecret
    );
    assert!(!format!("{:?}", verifier(VerifierOptions::default())).contains(SECRET));
}

#[test]
fn a_remembered_token_still_expires_and_waits_for_not_before() {
    let v = verifier(VerifierOptions::default());
    let token = sign(&TokenClaims { not_before: Some(NOW), ..claims() });
    let later = |seconds: i64| NOW + time::Duration::seconds(seconds);
    assert!(v.verify(&token, later(60)).is_ok());
    assert!(v.verify(&token, later(61)).is_ok(), "remembered");
    // Expiry at +3600 with 30 s of leeway: each edge is decided in full.
    assert!(v.verify(&token, later(3628)).is_ok());
    assert_eq!(v.verify(&token, later(3631)), Err(AuthError::Expired));
    assert_eq!(v.verify(&token, later(-31)), Err(AuthError::NotYetValid), "a clock moved back");
    assert!(v.verify(&token, later(-29)).is_ok());
}

#[test]
fn remembering_changes_no_answer() {
    let remembering = verifier(VerifierOptions::default());
    let checking = verifier(VerifierOptions { remembered_tokens: 0, ..VerifierOptions::default() });
    let good = sign(&claims());
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    let refresh = sign(&TokenClaims { token_type: Some("refresh".into()), ..claims() });
    let strict = |remembered_tokens| {
        verifier(VerifierOptions { token_type: Some("access".into()), remembered_tokens, ..VerifierOptions::default() })
    };
    let (strict_remembering, strict_checking) = (strict(10), strict(0));
    let access = sign(&TokenClaims { token_type: Some("access".into()), ..claims() });
    for _ in 0..3 {
        for token in [&good, &tampered, &"x.y.z".to_owned(), &"a".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(remembering.verify(token, NOW), checking.verify(token, NOW), "{token:.20}");
        }
        assert_eq!(strict_remembering.verify(&refresh, NOW), Err(AuthError::WrongTokenType));
        assert_eq!(strict_checking.verify(&refresh, NOW), Err(AuthError::WrongTokenType));
        assert!(strict_remembering.verify(&access, NOW).is_ok());
    }
    assert_eq!(remembering.verify(&tampered, NOW), Err(AuthError::BadSignature));
}
