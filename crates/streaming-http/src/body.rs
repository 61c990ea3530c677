//! Reading JSON request bodies with errors that name the problem: 413 for a
//! body over the limit, 415 for a non-JSON content type, 400 for malformed
//! JSON, 422 naming the field for a wrong or missing field.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

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

/// The request body as a `T` (a request type whose fields are [`Field`]s,
/// so that every field is read and judged on its own); an empty body or
/// JSON `null` is `{}` when `empty_ok`.
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    empty_ok: bool,
) -> Result<T, ApiError> {
    let object = json_object(req, payload, limit, empty_ok).await?;
    serde_json::from_value(Value::Object(object)).map_err(|_| ApiError::field("body", "has fields of the wrong shape"))
}

/// A field of a request body as sent: left out, `null`, a value of its
/// type, or anything else (which the request's conversion names).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// Not in the body.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value of the field's type.
    Valid(T),
    /// A value of another type.
    Invalid,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Self::Null,
            value => T::deserialize(value).map_or(Self::Invalid, Self::Valid),
        })
    }
}

impl<T> Field<T> {
    /// The value when one was sent; `None` when left out or `null`; `Err`
    /// otherwise.
    pub fn optional(self) -> Result<Option<T>, ()> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Valid(value) => Ok(Some(value)),
            Self::Invalid => Err(()),
        }
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(content_type) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The largest integer a JSON number carries exactly everywhere (a
/// JavaScript player's `Number.MAX_SAFE_INTEGER`, 2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `number` as a whole number from 0 to [`MAX_SAFE_INTEGER`]. As in JSON
/// Schema, a number with a zero fraction (`7.0`) is whole.
pub fn count(number: &serde_json::Number) -> Option<u64> {
    number
        .as_u64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(f))
                .map(|f| f as u64)
        })
        .filter(|n| *n <= MAX_SAFE_INTEGER)
}
