//! Reading JSON request bodies with errors that name the problem: 413 for a
//! body over the limit, 415 for a non-JSON content type, 400 for malformed
//! JSON, 422 naming the field for a wrong or missing field.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt as _;
use serde_json::{Map, Value};
use streaming_core::domain::SessionId;

use crate::problem::ApiError;

/// The request body as a JSON object; an empty body, or JSON `null`, is an
/// empty object when `empty_ok`. Stops reading at `limit` bytes.
pub async fn json_object(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    empty_ok: bool,
) -> Result<Map<String, Value>, ApiError> {
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("The request body could not be read.".into()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok { Ok(Map::new()) } else { Err(ApiError::field("body", "a JSON object is required")) };
    }
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not valid JSON: {e}.")))?;
    match value {
        Value::Object(object) => Ok(object),
        Value::Null if empty_ok => Ok(Map::new()),
        _ => Err(ApiError::field("body", "must be a JSON object")),
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(content_type) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A required finite number.
pub fn required_number(body: &Map<String, Value>, field: &'static str) -> Result<f64, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(ApiError::field(field, "is required")),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| ApiError::field(field, "must be a finite number")),
        Some(_) => Err(ApiError::field(field, "must be a number")),
    }
}

/// An optional session id (a UUID string).
pub fn optional_session(body: &Map<String, Value>, field: &'static str) -> Result<Option<SessionId>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| ApiError::field(field, "must be a UUID")),
        Some(_) => Err(ApiError::field(field, "must be a UUID string")),
    }
}

/// The largest integer a JSON number carries exactly everywhere (a
/// JavaScript player's `Number.MAX_SAFE_INTEGER`, 2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// An optional whole number from 0 to [`MAX_SAFE_INTEGER`]. As in JSON
/// Schema, a number with a zero fraction (`7.0`) is an integer.
pub fn optional_count(body: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, ApiError> {
    let refused = || ApiError::field(field, format!("must be a whole number from 0 to {MAX_SAFE_INTEGER}"));
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let whole = n.as_u64().or_else(|| {
                n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(f)).map(|f| f as u64)
            });
            whole.filter(|n| *n <= MAX_SAFE_INTEGER).map(Some).ok_or_else(refused)
        }
        Some(_) => Err(refused()),
    }
}

/// An optional string.
pub fn optional_str<'a>(body: &'a Map<String, Value>, field: &'static str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::field(field, "must be a string")),
    }
}
