//! The internal admin API, `/internal/v1/`, served on a listener of its own
//! (`admin.*` settings): HTTP mapped onto the core's admin use cases
//! ([`CatalogAdmin`]: audit first, then the same rules as upstream events).
//! Callers authenticate with a service credential (`admin.keys`), never
//! with a user token.

use std::collections::BTreeMap;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Route};
use serde::Deserialize;
use serde_json::{json, Value};
use streaming_auth::ServiceCredentials;
use streaming_core::admin::{entity_tag, media_record, AdminError, CatalogAdmin, Preconditions, Upserted};
use streaming_core::domain::{
    IdFormat, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, UserStatus, Visibility,
};
use time::format_description::well_known::Rfc3339;

use crate::auth::bearer;
use crate::body::{json_object, Field};
use crate::problem::{ApiError, FieldError};
use crate::state::ApiState;

/// Records the audit endpoint returns when `limit` is not given, and at most.
const DEFAULT_AUDIT_PAGE: usize = 100;
const MAX_AUDIT_PAGE: usize = 1_000;

/// What the admin handlers reach.
pub struct AdminState {
    /// The service credentials.
    pub credentials: ServiceCredentials,
    /// The use cases.
    pub admin: CatalogAdmin,
    /// The public API's state: token verification, clock, body limit.
    pub api: web::Data<ApiState>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").field("credentials", &self.credentials).finish_non_exhaustive()
    }
}

/// The admin routes: path (actix syntax) and method handlers.
pub(super) fn table() -> Vec<(&'static str, Vec<(Method, Route)>)> {
    let to = |method: Method, route: Route| (method.clone(), route.method(method));
    vec![
        (
            "/internal/v1/media/{media_id}",
            vec![
                to(Method::GET, web::to(get_media)),
                to(Method::PUT, web::to(put_media)),
                to(Method::DELETE, web::to(delete_media)),
            ],
        ),
        (
            "/internal/v1/media/{media_id}/grants/{user_id}",
            vec![to(Method::PUT, web::to(put_grant)), to(Method::DELETE, web::to(delete_grant))],
        ),
        ("/internal/v1/media/{media_id}/stream-cache/{user_id}", vec![to(Method::DELETE, web::to(drop_media_url))]),
        ("/internal/v1/users/{user_id}/status", vec![to(Method::PUT, web::to(put_user_status))]),
        ("/internal/v1/users/{user_id}/logout-all", vec![to(Method::POST, web::to(logout_all))]),
        ("/internal/v1/users/{user_id}/stream-cache", vec![to(Method::DELETE, web::to(drop_user_urls))]),
        ("/internal/v1/audit", vec![to(Method::GET, web::to(audit_trail))]),
    ]
}

/// Mounts the admin API on an application (best its own listener): its
/// routes (other methods on them are 405), `state`, and the body limit and
/// query error answers.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AdminState>) {
    let max_body = state.api.max_body_bytes;
    cfg.app_data(state)
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(web::QueryConfig::default().error_handler(super::query_error));
    super::register(cfg, table());
}

/// The operator behind the request: the name of its service credential.
/// A valid user token is 403 (it is not a service credential), anything
/// else 401.
fn operator(req: &HttpRequest, state: &AdminState) -> Result<String, ApiError> {
    let token = bearer(req)?;
    if let Some(name) = state.credentials.holder(token) {
        return Ok(name.to_owned());
    }
    if state.api.verifier.verify(token, state.api.clock.now()).is_ok() {
        return Err(ApiError::ServiceCredentialRequired);
    }
    Err(ApiError::Unauthorized { reason: Some("not a service credential") })
}

fn media_id(raw: &str) -> Result<MediaId, ApiError> {
    MediaId::try_from(raw).map_err(|_| ApiError::InvalidMediaId)
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::try_from(raw).map_err(|_| ApiError::InvalidUserId)
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::MediaNotFound => Self::MediaNotFound,
            AdminError::PreconditionFailed => Self::PreconditionFailed,
            AdminError::UserSuspended => Self::UserSuspended,
            AdminError::NewerChangeApplied => Self::NewerChangeApplied,
            AdminError::Unavailable(dependency) => Self::Unavailable(dependency),
        }
    }
}

/// `If-Match` and `If-None-Match` of `req`.
fn preconditions(req: &HttpRequest) -> Preconditions {
    let tags = |name: header::HeaderName| -> Option<Vec<String>> {
        let values: Vec<&HeaderValue> = req.headers().get_all(name).collect();
        (!values.is_empty()).then(|| {
            values
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        })
    };
    Preconditions { if_match: tags(header::IF_MATCH), if_none_match: tags(header::IF_NONE_MATCH) }
}

fn with_etag(mut response: HttpResponse, media: &Media) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(&entity_tag(media)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn get_media(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    operator(&req, &state)?;
    let media = state.admin.media(&media_id(&path)?).await?;
    Ok(with_etag(HttpResponse::Ok().json(media_record(&media)), &media))
}

/// The body of `PUT /internal/v1/media/{media_id}`: the item's fields as
/// [`media_record`] shows them (`id` may be left out).
#[derive(Debug, Deserialize)]
pub struct MediaBody {
    #[serde(default)]
    id: Field<String>,
    #[serde(default)]
    kind: Field<String>,
    #[serde(default)]
    owner_id: Field<String>,
    #[serde(default)]
    status: Field<String>,
    #[serde(default)]
    object_key: Field<String>,
    #[serde(default)]
    content_type: Field<String>,
    #[serde(default)]
    size_bytes: Field<u64>,
    #[serde(default)]
    duration_seconds: Field<f64>,
    #[serde(default)]
    visibility: Field<String>,
    #[serde(default)]
    requires_hd: Field<bool>,
    #[serde(default)]
    requires_4k: Field<bool>,
    /// Fields the media does not have.
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// A media body for the item of a path.
#[derive(Debug)]
pub struct MediaPut {
    /// The path's id.
    pub id: MediaId,
    /// The body.
    pub body: MediaBody,
}

impl TryFrom<MediaPut> for Media {
    type Error = Vec<FieldError>;

    /// The item, every field validated; every wrong field is named.
    fn try_from(MediaPut { id, body }: MediaPut) -> Result<Self, Self::Error> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut fail = |field: &'static str, message: &str| errors.push(FieldError { field, message: message.into() });
        if !body.unknown.is_empty() {
            fail("body", "has a field the media does not have");
        }
        if !matches!(&body.id, Field::Absent) && !matches!(&body.id, Field::Valid(given) if *given == id.as_str()) {
            fail("id", "must be the id of the path, or left out");
        }
        let text = |field: Field<String>| match field {
            Field::Valid(text) => Some(text),
            _ => None,
        };
        let kind = text(body.kind).and_then(|k| k.parse::<MediaKind>().ok());
        match kind {
            None => fail("kind", "is required: track or movie"),
            Some(MediaKind::Track) if id.format() != IdFormat::Ulid => fail("kind", "a track's id must be a ULID"),
            Some(MediaKind::Movie) if id.format() != IdFormat::Uuid => fail("kind", "a movie's id must be a UUID"),
            Some(_) => {}
        }
        let owner = match body.owner_id {
            Field::Absent | Field::Null => None,
            Field::Valid(owner) => UserId::try_from(owner.as_str()).ok().or_else(|| {
                fail("owner_id", "is not a user id");
                None
            }),
            Field::Invalid => {
                fail("owner_id", "must be a string or null");
                None
            }
        };
        let status = text(body.status).and_then(|s| s.parse::<MediaStatus>().ok());
        if status.is_none() {
            fail("status", "is required: processing, ready, failed or deleted");
        }
        let object_key = text(body.object_key).and_then(|k| ObjectKey::try_from(k.as_str()).ok());
        if object_key.is_none() {
            fail("object_key", "is required: a relative object key without '..' segments");
        }
        let content_type = text(body.content_type).filter(|t| !t.is_empty() && t.len() <= 255 && t.is_ascii());
        if content_type.is_none() {
            fail("content_type", "is required: 1 to 255 ASCII characters");
        }
        let size_bytes = match body.size_bytes {
            Field::Absent | Field::Null => Some(0),
            Field::Valid(size) => Some(size),
            Field::Invalid => None,
        };
        if size_bytes.is_none() {
            fail("size_bytes", "must be a non-negative integer");
        }
        let duration_seconds = match body.duration_seconds {
            Field::Absent | Field::Null => Some(None),
            Field::Valid(seconds) if seconds.is_finite() && seconds >= 0.0 => Some(Some(seconds)),
            Field::Valid(_) | Field::Invalid => None,
        };
        if duration_seconds.is_none() {
            fail("duration_seconds", "must be a non-negative number or null");
        }
        let visibility = text(body.visibility).and_then(|v| v.parse::<Visibility>().ok());
        if visibility.is_none() {
            fail("visibility", "is required: private, subscribers or public");
        }
        let mut flag = |field: &'static str, value: Field<bool>| match value {
            Field::Absent | Field::Null => false,
            Field::Valid(flag) => flag,
            Field::Invalid => {
                fail(field, "must be true or false");
                false
            }
        };
        let required_features =
            PlanFeatures { hd: flag("requires_hd", body.requires_hd), uhd_4k: flag("requires_4k", body.requires_4k) };
        match (kind, status, object_key, content_type, size_bytes, duration_seconds, visibility) {
            (
                Some(kind),
                Some(status),
                Some(object_key),
                Some(content_type),
                Some(size_bytes),
                Some(duration_seconds),
                Some(visibility),
            ) if errors.is_empty() => Ok(Media {
                id,
                kind,
                owner,
                status,
                object_key,
                content_type,
                size_bytes,
                duration_seconds,
                visibility,
                required_features,
            }),
            _ => Err(errors),
        }
    }
}

async fn put_media(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    let id = media_id(&path)?;
    let body = json_object(&req, payload, state.api.max_body_bytes, false).await?;
    let body: MediaBody = serde_json::from_value(Value::Object(body))
        .map_err(|_| ApiError::field("body", "must be a JSON object of the media's fields"))?;
    let media = Media::try_from(MediaPut { id: id.clone(), body }).map_err(ApiError::Validation)?;
    let upserted = state.admin.put_media(&actor, media.clone(), &preconditions(&req)).await?;
    let response = match upserted {
        Upserted::Replaced => HttpResponse::Ok().json(media_record(&media)),
        Upserted::Created => HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/internal/v1/media/{id}")))
            .json(media_record(&media)),
    };
    Ok(with_etag(response, &media))
}

async fn delete_media(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    state.admin.delete_media(&actor, &media_id(&path)?, &preconditions(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn grant(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
    granted: bool,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    let (media, user) = (media_id(&path.0)?, user_id(&path.1)?);
    state.admin.set_grant(&actor, &media, &user, granted).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn put_grant(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    grant(req, state, path, true).await
}

async fn delete_grant(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    grant(req, state, path, false).await
}

async fn put_user_status(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    let user = user_id(&path)?;
    let body = json_object(&req, payload, state.api.max_body_bytes, false).await?;
    if body.keys().any(|key| key != "status") {
        return Err(ApiError::field("body", "has a field other than status"));
    }
    let status: UserStatus = body
        .get("status")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::field("status", "is required: active or suspended"))?;
    state.admin.set_user_status(&actor, &user, status).await?;
    Ok(no_store_json(StatusCode::OK, &json!({ "user_id": user.as_str(), "status": status.as_str() })))
}

fn no_store_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::CACHE_CONTROL, "no-store")).json(body)
}

async fn logout_all(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    state.admin.logout_all(&actor, &user_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn drop_user_urls(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    state.admin.drop_user_urls(&actor, &user_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn drop_media_url(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    let (media, user) = (media_id(&path.0)?, user_id(&path.1)?);
    state.admin.drop_media_url(&actor, &media, &user).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit_trail(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    operator(&req, &state)?;
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_PAGE);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let records: Vec<Value> = state
        .admin
        .audit_trail(limit)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "at": r.at.format(&Rfc3339).unwrap_or_default(),
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "before": r.before,
                "after": r.after,
            })
        })
        .collect();
    Ok(no_store_json(StatusCode::OK, &json!({ "records": records })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media() -> Media {
        Media {
            id: "01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap(),
            kind: MediaKind::Track,
            owner: Some("artist-1".parse().unwrap()),
            status: MediaStatus::Ready,
            object_key: ObjectKey::try_from("tracks/a.mp3").unwrap(),
            content_type: "audio/mpeg".into(),
            size_bytes: 42,
            duration_seconds: Some(180.5),
            visibility: Visibility::Subscribers,
            required_features: PlanFeatures { hd: true, uhd_4k: false },
        }
    }

    fn put(id: &MediaId, body: Value) -> Result<Media, Vec<FieldError>> {
        Media::try_from(MediaPut { id: id.clone(), body: serde_json::from_value(body).unwrap() })
    }

    #[test]
    fn a_body_round_trips_and_every_wrong_field_is_named() {
        let item = media();
        assert_eq!(put(&item.id, media_record(&item)).unwrap(), item);

        let bad = json!({
            "kind": "movie", "owner_id": 7, "status": "gone", "object_key": "../x", "content_type": "",
            "size_bytes": -1, "duration_seconds": "long", "visibility": "everyone", "requires_hd": "yes", "extra": 1
        });
        let errors = put(&item.id, bad).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        for field in [
            "body",
            "kind",
            "owner_id",
            "status",
            "object_key",
            "content_type",
            "size_bytes",
            "duration_seconds",
            "visibility",
            "requires_hd",
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        let other_id = put(&item.id, json!({ "id": "01HXKZ3Y8Q4N7W2M5V6B9C0D1F" })).unwrap_err();
        assert!(other_id.iter().any(|e| e.field == "id"), "{other_id:?}");
        let negative = put(&item.id, json!({ "duration_seconds": -1.0 })).unwrap_err();
        assert!(negative.iter().any(|e| e.field == "duration_seconds"), "{negative:?}");
    }
}
