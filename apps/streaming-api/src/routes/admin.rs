//! The internal admin API, `/internal/v1/`, served on a listener of its own
//! (`admin.*` settings). Every change goes through [`CatalogChanges`] — the
//! same code that applies upstream events — and is written to the audit
//! trail. Callers authenticate with a service credential (`admin.keys`),
//! never with a user token.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Route};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use streaming_core::domain::{
    CatalogChange, IdFormat, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, UserStatus,
};
use streaming_core::ports::{AuditLog, AuditRecord, MediaCatalog};
use streaming_core::telemetry::InvalidationReason;
use streaming_core::Dependency;
use time::format_description::well_known::Rfc3339;

use crate::auth::bearer;
use crate::body::json_object;
use crate::catalog::Catalog;
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;
use streaming_core::changes::CatalogChanges;
use streaming_core::ports::ApplyError;

/// Records the audit endpoint returns when `limit` is not given, and at most.
const DEFAULT_AUDIT_PAGE: usize = 100;
const MAX_AUDIT_PAGE: usize = 1_000;

/// Named service credentials. Keys are kept as SHA-256 digests and compared
/// in constant time, so neither a key nor its length leaks through timing.
#[derive(Clone)]
pub struct Credentials(Vec<(String, [u8; 32])>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl Credentials {
    /// The shortest accepted key, in bytes.
    pub const MIN_KEY_LEN: usize = 32;

    /// Parses `name:key, name:key`.
    ///
    /// # Errors
    /// What is wrong, never a key.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut credentials: Vec<(String, [u8; 32])> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, key)) = entry.split_once(':') else {
                return Err("each entry must be name:key".into());
            };
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid_name {
                return Err("a credential name must be 1 to 64 letters, digits, '.', '_' or '-'".into());
            }
            if key.trim().len() < Self::MIN_KEY_LEN {
                return Err(format!("the key of {name:?} is shorter than {} bytes", Self::MIN_KEY_LEN));
            }
            if credentials.iter().any(|(known, _)| known == name) {
                return Err(format!("{name:?} is named twice"));
            }
            credentials.push((name.to_owned(), Sha256::digest(key.trim().as_bytes()).into()));
        }
        if credentials.is_empty() {
            return Err("at least one name:key is required".into());
        }
        Ok(Self(credentials))
    }

    /// The name of the credential `presented` is, if any. Every configured
    /// key is compared, whichever matches.
    fn holder(&self, presented: &str) -> Option<&str> {
        use subtle::ConstantTimeEq as _;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, key) in &self.0 {
            if bool::from(key.ct_eq(&digest)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// What the admin handlers reach.
pub struct AdminState {
    /// The service credentials.
    pub credentials: Credentials,
    /// Where changes are applied.
    pub changes: std::sync::Arc<CatalogChanges>,
    /// The catalog, read uncached (the state before a change).
    pub catalog: Catalog,
    /// The trail of changes.
    pub audit: std::sync::Arc<dyn AuditLog>,
    /// The public API's state: token verification, clock, body limit.
    pub app: web::Data<AppState>,
    /// One change at a time in this process: an `If-Match` check and the
    /// write it guards are not interleaved with another operator's.
    pub writes: tokio::sync::Mutex<()>,
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

/// Registers the admin routes; other methods on a known path are 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
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
    if state.app.verifier.verify(token, state.app.clock.now()).is_ok() {
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

fn unavailable(error: ApplyError) -> ApiError {
    tracing::warn!(dependency = error.dependency.as_str(), "an admin change could not be applied in full");
    ApiError::Unavailable(error.dependency)
}

/// The catalog's current item (deleted ones included).
async fn current(state: &AdminState, id: &MediaId) -> Result<Option<Media>, ApiError> {
    state.catalog.fresh().media(id).await.map_err(|_| ApiError::Unavailable(Dependency::Catalog))
}

/// The item as the API shows it.
fn media_json(media: &Media) -> Value {
    json!({
        "id": media.id.as_str(),
        "kind": media.kind.as_str(),
        "owner_id": media.owner.as_ref().map(UserId::as_str),
        "status": media.status.as_str(),
        "object_key": media.object_key.as_str(),
        "content_type": media.content_type,
        "size_bytes": media.size_bytes,
        "duration_seconds": media.duration_seconds,
        "visibility": media.visibility.as_str(),
        "requires_hd": media.required_features.hd,
        "requires_4k": media.required_features.uhd_4k,
    })
}

/// The item as the audit trail keeps it: the object key as a fingerprint.
fn media_audit_state(media: &Media) -> Value {
    let mut state = media_json(media);
    state["object_key"] = json!(format!("sha256:{}", hex(&Sha256::digest(media.object_key.as_str().as_bytes())[..8])));
    state
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The strong entity tag of an item's current representation.
fn etag(media: &Media) -> String {
    let digest = Sha256::digest(media_json(media).to_string().as_bytes());
    format!("\"{}\"", hex(&digest[..16]))
}

/// Whether `If-Match`/`If-None-Match` let a change of `current` go ahead.
fn preconditions(req: &HttpRequest, current: Option<&Media>) -> Result<(), ApiError> {
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
    let current_tag = current.map(etag);
    if let Some(wanted) = tags(header::IF_MATCH) {
        // Strong comparison: a weak tag never matches.
        let matches = current_tag.as_ref().is_some_and(|tag| wanted.iter().any(|w| w == "*" || w == tag));
        if !matches {
            return Err(ApiError::PreconditionFailed);
        }
    }
    if let Some(unwanted) = tags(header::IF_NONE_MATCH) {
        let matches = current_tag
            .as_ref()
            .is_some_and(|tag| unwanted.iter().any(|w| w == "*" || w.trim_start_matches("W/") == tag.as_str()));
        if matches {
            return Err(ApiError::PreconditionFailed);
        }
    }
    Ok(())
}

async fn write_audit(
    state: &AdminState,
    actor: String,
    action: &str,
    target: String,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    let record = AuditRecord { at: state.app.clock.now(), actor, action: action.to_owned(), target, before, after };
    // Written before the change is applied: no change goes unrecorded.
    state.audit.record(&record).await.map_err(|error| {
        tracing::error!(%error, action, "an admin change was refused: its audit record could not be written");
        ApiError::Unavailable(Dependency::Audit)
    })
}

fn with_etag(mut response: HttpResponse, media: &Media) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(&etag(media)) {
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
    let id = media_id(&path)?;
    let media = current(&state, &id).await?.ok_or(ApiError::MediaNotFound)?;
    Ok(with_etag(HttpResponse::Ok().json(media_json(&media)), &media))
}

/// The fields of a media body, all validated; every wrong field is named.
fn media_from_body(id: &MediaId, body: &Map<String, Value>) -> Result<Media, ApiError> {
    const FIELDS: [&str; 10] = [
        "kind",
        "owner_id",
        "status",
        "object_key",
        "content_type",
        "size_bytes",
        "duration_seconds",
        "visibility",
        "requires_hd",
        "requires_4k",
    ];
    let mut errors: Vec<FieldError> = Vec::new();
    let mut fail = |field: &'static str, message: &str| errors.push(FieldError { field, message: message.into() });
    if body.keys().any(|key| key != "id" && !FIELDS.contains(&key.as_str())) {
        fail("body", "has a field the media does not have");
    }
    if body.get("id").is_some_and(|given| given.as_str() != Some(id.as_str())) {
        fail("id", "must be the id of the path, or left out");
    }
    let text = |field: &str| body.get(field).and_then(Value::as_str);

    let kind = text("kind").and_then(|k| k.parse::<MediaKind>().ok());
    if kind.is_none() {
        fail("kind", "is required: track or movie");
    }
    match kind {
        Some(MediaKind::Track) if id.format() != IdFormat::Ulid => fail("kind", "a track's id must be a ULID"),
        Some(MediaKind::Movie) if id.format() != IdFormat::Uuid => fail("kind", "a movie's id must be a UUID"),
        _ => {}
    }
    let owner = match body.get("owner_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(owner)) => UserId::try_from(owner.as_str()).ok().or_else(|| {
            fail("owner_id", "is not a user id");
            None
        }),
        Some(_) => {
            fail("owner_id", "must be a string or null");
            None
        }
    };
    let status = text("status").and_then(|s| s.parse::<MediaStatus>().ok());
    if status.is_none() {
        fail("status", "is required: processing, ready, failed or deleted");
    }
    let object_key = text("object_key").and_then(|k| ObjectKey::try_from(k).ok());
    if object_key.is_none() {
        fail("object_key", "is required: a relative object key without '..' segments");
    }
    let content_type = text("content_type").filter(|t| !t.is_empty() && t.len() <= 255 && t.is_ascii());
    if content_type.is_none() {
        fail("content_type", "is required: 1 to 255 ASCII characters");
    }
    let size_bytes = match body.get("size_bytes") {
        None | Some(Value::Null) => Some(0),
        Some(value) => value.as_u64(),
    };
    if size_bytes.is_none() {
        fail("size_bytes", "must be a non-negative integer");
    }
    let duration_seconds = match body.get("duration_seconds") {
        None | Some(Value::Null) => Some(None),
        Some(value) => value.as_f64().filter(|d| d.is_finite() && *d >= 0.0).map(Some),
    };
    if duration_seconds.is_none() {
        fail("duration_seconds", "must be a non-negative number or null");
    }
    let visibility = text("visibility").and_then(|v| v.parse().ok());
    if visibility.is_none() {
        fail("visibility", "is required: private, subscribers or public");
    }
    let mut flag = |field: &'static str| match body.get(field) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            fail(field, "must be true or false");
            false
        }
    };
    let required_features = PlanFeatures { hd: flag("requires_hd"), uhd_4k: flag("requires_4k") };
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
            id: id.clone(),
            kind,
            owner,
            status,
            object_key,
            content_type: content_type.to_owned(),
            size_bytes,
            duration_seconds,
            visibility,
            required_features,
        }),
        _ => Err(ApiError::Validation(errors)),
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
    let body = json_object(&req, payload, state.app.max_body_bytes, false).await?;
    let media = media_from_body(&id, &body)?;
    let _one_change_at_a_time = state.writes.lock().await;
    let before = current(&state, &id).await?;
    preconditions(&req, before.as_ref())?;
    if before.as_ref() != Some(&media) {
        let after = Some(media_audit_state(&media));
        write_audit(
            &state,
            actor,
            "media.upsert",
            format!("media/{id}"),
            before.as_ref().map(media_audit_state),
            after,
        )
        .await?;
        let applied = state
            .changes
            .apply(&CatalogChange::MediaUpserted(media.clone()), state.app.clock.now())
            .await
            .map_err(unavailable)?;
        if !applied {
            return Err(ApiError::NewerChangeApplied);
        }
    }
    let response = if before.is_some() {
        HttpResponse::Ok().json(media_json(&media))
    } else {
        HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/internal/v1/media/{id}")))
            .json(media_json(&media))
    };
    Ok(with_etag(response, &media))
}

async fn delete_media(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    let id = media_id(&path)?;
    let _one_change_at_a_time = state.writes.lock().await;
    let before = current(&state, &id).await?.ok_or(ApiError::MediaNotFound)?;
    preconditions(&req, Some(&before))?;
    if before.status != MediaStatus::Deleted {
        let after = Media { status: MediaStatus::Deleted, ..before.clone() };
        write_audit(
            &state,
            actor,
            "media.delete",
            format!("media/{id}"),
            Some(media_audit_state(&before)),
            Some(media_audit_state(&after)),
        )
        .await?;
        let applied = state
            .changes
            .apply(&CatalogChange::MediaDeleted { media: id.clone() }, state.app.clock.now())
            .await
            .map_err(unavailable)?;
        if !applied {
            return Err(ApiError::NewerChangeApplied);
        }
    }
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
    let _one_change_at_a_time = state.writes.lock().await;
    let item = current(&state, &media).await?.ok_or(ApiError::MediaNotFound)?;
    let fresh = state.catalog.fresh();
    let viewer = fresh.viewer(&user, Some(&media)).await.map_err(|_| ApiError::Unavailable(Dependency::Catalog))?;
    if granted && item.status == MediaStatus::Deleted {
        return Err(ApiError::MediaNotFound);
    }
    if granted && viewer.status == UserStatus::Suspended {
        return Err(ApiError::UserSuspended);
    }
    if viewer.granted != granted {
        write_audit(
            &state,
            actor,
            if granted { "grant.put" } else { "grant.delete" },
            format!("media/{media}/grants/{user}"),
            Some(json!({ "granted": viewer.granted })),
            Some(json!({ "granted": granted })),
        )
        .await?;
        let change = CatalogChange::GrantChanged { media: media.clone(), user: user.clone(), granted };
        state.changes.apply(&change, state.app.clock.now()).await.map_err(unavailable)?;
    }
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
    let body = json_object(&req, payload, state.app.max_body_bytes, false).await?;
    if body.keys().any(|key| key != "status") {
        return Err(ApiError::field("body", "has a field other than status"));
    }
    let status = match body.get("status").and_then(Value::as_str) {
        Some("active") => UserStatus::Active,
        Some("suspended") => UserStatus::Suspended,
        _ => return Err(ApiError::field("status", "is required: active or suspended")),
    };
    let _one_change_at_a_time = state.writes.lock().await;
    let before =
        state.catalog.fresh().viewer(&user, None).await.map_err(|_| ApiError::Unavailable(Dependency::Catalog))?.status;
    if before != status {
        write_audit(
            &state,
            actor,
            "user.status",
            format!("users/{user}"),
            Some(json!({ "status": user_status(before) })),
            Some(json!({ "status": user_status(status) })),
        )
        .await?;
    }
    let change = CatalogChange::UserStatusChanged { user: user.clone(), status };
    // Applied even when unchanged: the user's cached URLs go either way.
    let applied = state.changes.apply(&change, state.app.clock.now()).await.map_err(unavailable)?;
    if !applied {
        return Err(ApiError::NewerChangeApplied);
    }
    Ok(no_store_json(StatusCode::OK, &json!({ "user_id": user.as_str(), "status": user_status(status) })))
}

fn user_status(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "active",
        UserStatus::Suspended => "suspended",
    }
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
    let user = user_id(&path)?;
    write_audit(&state, actor, "user.logout_all", format!("users/{user}"), None, None).await?;
    let change = CatalogChange::UserLoggedOutEverywhere { user: user.clone() };
    state.changes.apply(&change, state.app.clock.now()).await.map_err(unavailable)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn drop_user_urls(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    let user = user_id(&path)?;
    write_audit(&state, actor, "user.stream_cache.delete", format!("users/{user}/stream-cache"), None, None).await?;
    state.changes.forget_user(&user, InvalidationReason::Operator).await.map_err(unavailable)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn drop_media_url(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = operator(&req, &state)?;
    let (media, user) = (media_id(&path.0)?, user_id(&path.1)?);
    write_audit(&state, actor, "media.stream_cache.delete", format!("media/{media}/stream-cache/{user}"), None, None)
        .await?;
    state.changes.forget_url(&media, &user, InvalidationReason::Operator).await.map_err(unavailable)?;
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
    let records = state.audit.recent(limit).await.map_err(|_| ApiError::Unavailable(Dependency::Audit))?;
    let records: Vec<Value> = records
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

    #[test]
    fn credentials_name_their_holder_and_refuse_weak_or_malformed_keys() {
        let key = "k".repeat(32);
        let credentials = Credentials::parse(&format!("ops:{key}, deploy-bot:{}", "d".repeat(40))).unwrap();
        assert_eq!(credentials.holder(&key), Some("ops"));
        assert_eq!(credentials.holder(&"d".repeat(40)), Some("deploy-bot"));
        assert_eq!(credentials.holder(&"k".repeat(31)), None);
        assert_eq!(credentials.holder(""), None);
        assert!(!format!("{credentials:?}").contains(&key), "keys are not printed");
        for bad in ["", "ops", "ops:short", &format!(":{key}"), &format!("a b:{key}"), &format!("x:{key},x:{key}")] {
            let error = Credentials::parse(bad).unwrap_err();
            assert!(!error.contains(&key), "{error}");
        }
    }

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
            visibility: streaming_core::domain::Visibility::Subscribers,
            required_features: PlanFeatures { hd: true, uhd_4k: false },
        }
    }

    #[test]
    fn a_body_round_trips_and_every_wrong_field_is_named() {
        let item = media();
        let Value::Object(body) = media_json(&item) else { panic!("an object") };
        assert_eq!(media_from_body(&item.id, &body).unwrap(), item);

        let bad = json!({
            "kind": "movie", "owner_id": 7, "status": "gone", "object_key": "../x", "content_type": "",
            "size_bytes": -1, "duration_seconds": "long", "visibility": "everyone", "requires_hd": "yes", "extra": 1
        });
        let Value::Object(bad) = bad else { panic!("an object") };
        let Err(ApiError::Validation(errors)) = media_from_body(&item.id, &bad) else { panic!("refused") };
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
    }

    #[test]
    fn the_audit_state_keeps_a_fingerprint_of_the_object_key_only() {
        let item = media();
        let state = media_audit_state(&item).to_string();
        assert!(!state.contains("tracks/a.mp3"), "{state}");
        assert!(state.contains("sha256:"), "{state}");
        assert_ne!(
            media_audit_state(&item),
            media_audit_state(&Media { object_key: ObjectKey::try_from("tracks/b.mp3").unwrap(), ..item })
        );
    }

    #[test]
    fn entity_tags_change_with_the_item() {
        let item = media();
        assert_eq!(etag(&item), etag(&item.clone()));
        assert_ne!(etag(&item), etag(&Media { size_bytes: 43, ..item }));
    }
}
