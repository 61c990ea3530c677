//! Reading the bearer token of a request.

use std::time::Duration;

use actix_web::http::header;
use actix_web::HttpRequest;
use secrecy::SecretString;
use streaming_auth::{AuthError, Principal, TokenClaims, TokenSigner, TokenVerifier};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::problem::ApiError;
use crate::settings::AuthSettings;

/// An HS256 token for `subject` that a service with `auth` and `secret`
/// accepts until `now + ttl` (the demo banner and `streaming-api token`).
///
/// # Errors
/// [`AuthError`] if the claims cannot be encoded.
pub fn mint_token(
    auth: &AuthSettings,
    secret: &SecretString,
    subject: &str,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<String, AuthError> {
    TokenSigner::hs256(secret).sign(&TokenClaims {
        subject: subject.to_owned(),
        expires_at: Some(now + ttl),
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
        token_type: auth.token_type.clone(),
        ..TokenClaims::default()
    })
}

/// The verified caller of `req`.
///
/// # Errors
/// [`ApiError::Unauthorized`] for a missing, repeated, malformed or refused token.
pub async fn authenticate(
    req: &HttpRequest,
    verifier: &TokenVerifier,
    now: OffsetDateTime,
) -> Result<Principal, ApiError> {
    let token = bearer(req)?;
    verifier
        .verify_refreshing(token, now)
        .instrument(tracing::debug_span!("auth.verify"))
        .await
        .map_err(|error| ApiError::Unauthorized { reason: Some(describe(&error)) })
}

/// The bearer credential of `req`: exactly one `Authorization: Bearer …` header.
///
/// # Errors
/// [`ApiError::Unauthorized`] for a missing, repeated or malformed header.
pub fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(ApiError::Unauthorized { reason: None });
    };
    if values.next().is_some() {
        return Err(ApiError::Unauthorized { reason: Some("more than one Authorization header") });
    }
    let value =
        value.to_str().map_err(|_| ApiError::Unauthorized { reason: Some("malformed Authorization header") })?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(ApiError::Unauthorized { reason: Some("the Authorization scheme must be Bearer") }),
    }
}

fn describe(error: &AuthError) -> &'static str {
    match error {
        AuthError::Malformed => "malformed token",
        AuthError::BadSignature => "invalid signature",
        AuthError::WrongAlgorithm => "algorithm not accepted",
        AuthError::MissingClaim => "a required claim is missing",
        AuthError::Expired => "token expired",
        AuthError::NotYetValid => "token not valid yet",
        AuthError::WrongIssuer => "issuer not accepted",
        AuthError::WrongAudience => "audience not accepted",
        AuthError::WrongTokenType => "token type not accepted",
        AuthError::BadSubject => "invalid subject",
        AuthError::UnknownKey => "signed by an unknown key",
    }
}

/// Middleware body: puts the request's bearer token in scope for the user
/// service client (`users.credentials = "caller"` forwards it).
pub async fn caller_token_scope<B: actix_web::body::MessageBody + 'static>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<B>, actix_web::Error> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| SecretString::from(token.trim().to_owned()));
    match token {
        Some(token) => streaming_users::with_caller_token(token, next.call(req)).await,
        None => next.call(req).await,
    }
}
