//! Reading the bearer token of a request.

use actix_web::http::header;
use actix_web::HttpRequest;
use streaming_auth::{AuthError, Principal, TokenVerifier};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::problem::ApiError;

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
