//! Tokens on the binary's side: minting the demo's, and putting the
//! caller's in scope for the user service client.

use std::time::Duration;

use actix_web::http::header;
use secrecy::SecretString;
use streaming_auth::{AuthError, TokenClaims, TokenSigner};
use time::OffsetDateTime;

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
