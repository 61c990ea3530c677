//! Reading the bearer token of a request.

use actix_web::http::header;
use actix_web::HttpRequest;
use streaming_auth::{AuthError, Principal, TokenVerifier};
use time::OffsetDateTime;

use crate::problem::ApiError;

/// The verified caller of `req`.
///
/// # Errors
/// [`ApiError::Unauthorized`] for a missing, repeated, malformed or refused token.
pub fn authenticate(req: &HttpRequest, verifier: &TokenVerifier, now: OffsetDateTime) -> Result<Principal, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(ApiError::Unauthorized { reason: None });
    };
    if values.next().is_some() {
        return Err(ApiError::Unauthorized { reason: Some("more than one Authorization header") });
    }
    let value =
        value.to_str().map_err(|_| ApiError::Unauthorized { reason: Some("malformed Authorization header") })?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(ApiError::Unauthorized { reason: Some("the Authorization scheme must be Bearer") }),
    };
    verifier.verify(token, now).map_err(|error| ApiError::Unauthorized { reason: Some(describe(&error)) })
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
    }
}
