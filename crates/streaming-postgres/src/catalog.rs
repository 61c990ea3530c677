use async_trait::async_trait;
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use streaming_core::domain::{
    CatalogChange, Media, MediaId, MediaStatus, ObjectKey, PlanFeatures, UserId, UserStatus, Viewer,
};
use streaming_core::group_commit::GroupCommit;
use streaming_core::ports::{CatalogError, CatalogWriter, MediaCandidate, MediaCatalog, MediaListing};
use time::OffsetDateTime;

use crate::database::{retry_once, DbError, PgDatabase};
use crate::grouped::grouped_reads;
use crate::schema::{media, media_grants, users};
use crate::status_reads::StatusReads;

/// [`MediaCatalog`] on PostgreSQL, plus the writes that keep the read model
/// current. A viewer's status alone (no grant asked) is read in groups (see
/// `status_reads.rs`).
#[derive(Debug, Clone)]
pub struct PgCatalog {
    db: PgDatabase,
    statuses: GroupCommit<StatusReads>,
}

#[derive(Queryable, QueryableByName, Insertable, AsChangeset)]
#[diesel(table_name = media)]
struct MediaRow {
    id: String,
    kind: String,
    owner_id: Option<String>,
    status: String,
    object_key: String,
    content_type: String,
    size_bytes: i64,
    duration_seconds: Option<f64>,
    visibility: String,
    requires_hd: bool,
    requires_4k: bool,
}

impl From<&Media> for MediaRow {
    fn from(media: &Media) -> Self {
        Self {
            id: media.id.to_string(),
            kind: media.kind.as_str().into(),
            owner_id: media.owner.as_ref().map(ToString::to_string),
            status: media.status.as_str().to_ascii_lowercase(),
            object_key: media.object_key.as_str().into(),
            content_type: media.content_type.clone(),
            size_bytes: i64::try_from(media.size_bytes).unwrap_or(i64::MAX),
            duration_seconds: media.duration_seconds,
            visibility: media.visibility.as_str().into(),
            requires_hd: media.required_features.hd,
            requires_4k: media.required_features.uhd_4k,
        }
    }
}

impl TryFrom<MediaRow> for Media {
    type Error = CatalogError;

    fn try_from(row: MediaRow) -> Result<Self, Self::Error> {
        let invalid = |what: &str| CatalogError::Invalid(format!("media {}: bad {what}", row.id));
        Ok(Media {
            id: MediaId::try_from(row.id.as_str()).map_err(|_| invalid("id"))?,
            kind: row.kind.parse().map_err(|_| invalid("kind"))?,
            owner: row.owner_id.as_deref().map(UserId::try_from).transpose().map_err(|_| invalid("owner"))?,
            status: row.status.parse().map_err(|_| invalid("status"))?,
            object_key: ObjectKey::try_from(row.object_key.as_str()).map_err(|_| invalid("object key"))?,
            content_type: row.content_type.clone(),
            size_bytes: u64::try_from(row.size_bytes).map_err(|_| invalid("size"))?,
            duration_seconds: row.duration_seconds,
            visibility: row.visibility.parse().map_err(|_| invalid("visibility"))?,
            required_features: PlanFeatures { hd: row.requires_hd, uhd_4k: row.requires_4k },
        })
    }
}

/// A row of the listing: the item and whether the user holds a grant on it.
#[derive(QueryableByName)]
struct CandidateRow {
    #[diesel(embed)]
    media: MediaRow,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    granted: bool,
}

/// The listing's query. Ids compare byte by byte (`COLLATE "C"`, the order
/// of their canonical spellings, whatever the database's collation), served
/// by the `media_id_bytes_idx` index.
const CANDIDATES: &str = r#"
SELECT m.id, m.kind, m.owner_id, m.status, m.object_key, m.content_type, m.size_bytes,
       m.duration_seconds, m.visibility, m.requires_hd, m.requires_4k,
       (g.user_id IS NOT NULL) AS granted
FROM media m
LEFT JOIN media_grants g ON g.media_id = m.id AND g.user_id = $1
WHERE m.status <> 'deleted'
  AND (m.owner_id = $1 OR m.visibility <> 'private' OR g.user_id IS NOT NULL)
  AND ($2::text IS NULL OR m.id COLLATE "C" > $2::text COLLATE "C")
ORDER BY m.id COLLATE "C"
LIMIT $3
"#;

fn unavailable(error: DbError) -> CatalogError {
    CatalogError::Unavailable(error.to_string())
}

impl PgCatalog {
    /// A catalog on `db`.
    pub fn new(db: PgDatabase) -> Self {
        let statuses = grouped_reads(StatusReads { db: db.clone() });
        Self { db, statuses }
    }

    /// Inserts or replaces a media item.
    ///
    /// # Errors
    /// [`DbError`] if the write fails.
    pub async fn upsert_media(&self, item: &Media) -> Result<(), DbError> {
        let row = MediaRow::from(item);
        let mut connection = self.db.connection().await?;
        diesel::insert_into(media::table)
            .values(&row)
            .on_conflict(media::id)
            .do_update()
            .set((&row, media::updated_at.eq(diesel::dsl::now)))
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    /// Sets a user's status.
    ///
    /// # Errors
    /// [`DbError`] if the write fails.
    pub async fn set_user_status(&self, user: &UserId, status: UserStatus) -> Result<(), DbError> {
        let status = match status {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
        };
        let mut connection = self.db.connection().await?;
        diesel::insert_into(users::table)
            .values((users::id.eq(user.as_str()), users::status.eq(status)))
            .on_conflict(users::id)
            .do_update()
            .set((users::status.eq(excluded(users::status)), users::updated_at.eq(diesel::dsl::now)))
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    /// Grants (or revokes) `user` access to `media`.
    ///
    /// # Errors
    /// [`DbError`] if the write fails (a grant on unknown media is refused by the foreign key).
    pub async fn set_grant(&self, item: &MediaId, user: &UserId, granted: bool) -> Result<(), DbError> {
        let mut connection = self.db.connection().await?;
        if granted {
            diesel::insert_into(media_grants::table)
                .values((media_grants::media_id.eq(item.as_str()), media_grants::user_id.eq(user.as_str())))
                .on_conflict_do_nothing()
                .execute(&mut connection)
                .await?;
        } else {
            diesel::delete(
                media_grants::table
                    .filter(media_grants::media_id.eq(item.as_str()))
                    .filter(media_grants::user_id.eq(user.as_str())),
            )
            .execute(&mut connection)
            .await?;
        }
        Ok(())
    }

    /// Grants or revokes in one statement; whether the item exists.
    async fn apply_grant(&self, item: &MediaId, user: &UserId, granted: bool) -> Result<bool, DbError> {
        #[derive(QueryableByName)]
        struct Known {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            known: bool,
        }
        let sql = if granted {
            "WITH granted AS (INSERT INTO media_grants (media_id, user_id) \
             SELECT id, $2 FROM media WHERE id = $1 ON CONFLICT DO NOTHING) \
             SELECT EXISTS (SELECT 1 FROM media WHERE id = $1) AS known"
        } else {
            "WITH revoked AS (DELETE FROM media_grants WHERE media_id = $1 AND user_id = $2) \
             SELECT EXISTS (SELECT 1 FROM media WHERE id = $1) AS known"
        };
        let mut connection = self.db.connection().await?;
        let rows: Vec<Known> = diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(item.as_str())
            .bind::<diesel::sql_types::Text, _>(user.as_str())
            .load(&mut connection)
            .await?;
        Ok(rows.iter().any(|row| row.known))
    }

    /// Upserts `item` as of `at`, unless the row holds a newer change.
    async fn apply_media(&self, item: &Media, at: OffsetDateTime) -> Result<bool, DbError> {
        let row = MediaRow::from(item);
        let mut connection = self.db.connection().await?;
        let upsert = diesel::insert_into(media::table)
            .values((&row, media::updated_at.eq(at)))
            .on_conflict(media::id)
            .do_update()
            .set((&row, media::updated_at.eq(excluded(media::updated_at))));
        // ON CONFLICT … DO UPDATE … WHERE: an older change does not overwrite a newer one.
        let written =
            diesel::query_dsl::methods::FilterDsl::filter(upsert, media::updated_at.le(excluded(media::updated_at)))
                .execute(&mut connection)
                .await?;
        Ok(written == 1)
    }

    /// Sets the status of an existing item as of `at`, unless it holds a newer change.
    async fn apply_media_status(
        &self,
        item: &MediaId,
        status: MediaStatus,
        at: OffsetDateTime,
    ) -> Result<bool, DbError> {
        let mut connection = self.db.connection().await?;
        let written = diesel::update(media::table.filter(media::id.eq(item.as_str())).filter(media::updated_at.le(at)))
            .set((media::status.eq(status.as_str().to_ascii_lowercase()), media::updated_at.eq(at)))
            .execute(&mut connection)
            .await?;
        Ok(written == 1)
    }

    /// Sets a user's status as of `at`, unless the row holds a newer change.
    async fn apply_user_status(&self, user: &UserId, status: UserStatus, at: OffsetDateTime) -> Result<bool, DbError> {
        let status = match status {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
        };
        let mut connection = self.db.connection().await?;
        let upsert = diesel::insert_into(users::table)
            .values((users::id.eq(user.as_str()), users::status.eq(status), users::updated_at.eq(at)))
            .on_conflict(users::id)
            .do_update()
            .set((users::status.eq(excluded(users::status)), users::updated_at.eq(excluded(users::updated_at))));
        let written =
            diesel::query_dsl::methods::FilterDsl::filter(upsert, users::updated_at.le(excluded(users::updated_at)))
                .execute(&mut connection)
                .await?;
        Ok(written == 1)
    }

    async fn load_media(&self, id: &MediaId) -> Result<Option<MediaRow>, DbError> {
        let mut connection = self.db.connection().await?;
        Ok(media::table
            .filter(media::id.eq(id.as_str()))
            .select((
                media::id,
                media::kind,
                media::owner_id,
                media::status,
                media::object_key,
                media::content_type,
                media::size_bytes,
                media::duration_seconds,
                media::visibility,
                media::requires_hd,
                media::requires_4k,
            ))
            .first::<MediaRow>(&mut connection)
            .await
            .optional()?)
    }

    /// The user's status and whether a grant on `id` exists, in one round trip.
    async fn load_viewer_with_grant(&self, user: &UserId, id: &MediaId) -> Result<(Option<String>, bool), DbError> {
        let mut connection = self.db.connection().await?;
        Ok(diesel::select((
            users::table.filter(users::id.eq(user.as_str())).select(users::status).single_value(),
            exists(
                media_grants::table
                    .filter(media_grants::media_id.eq(id.as_str()))
                    .filter(media_grants::user_id.eq(user.as_str())),
            ),
        ))
        .get_result::<(Option<String>, bool)>(&mut connection)
        .await?)
    }
}

#[async_trait]
impl MediaCatalog for PgCatalog {
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        let row = retry_once(|| self.load_media(id)).await.map_err(unavailable)?;
        row.map(Media::try_from).transpose()
    }

    async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        let (status, granted) = match grant_on {
            Some(id) => retry_once(|| self.load_viewer_with_grant(user, id)).await,
            None => self.statuses.submit(user.clone()).await.map(|status| (status, false)),
        }
        .map_err(unavailable)?;
        let status = match status.as_deref() {
            Some("suspended") => UserStatus::Suspended,
            _ => UserStatus::Active,
        };
        Ok(Viewer { status, granted })
    }
}

#[async_trait]
impl MediaListing for PgCatalog {
    async fn candidates<'a>(
        &self,
        user: &UserId,
        after: Option<&'a MediaId>,
        limit: usize,
    ) -> Result<Vec<MediaCandidate>, CatalogError> {
        use diesel::sql_types::{BigInt, Nullable, Text};
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = retry_once(|| async {
            let mut connection = self.db.connection().await?;
            Ok::<_, DbError>(
                diesel::sql_query(CANDIDATES)
                    .bind::<Text, _>(user.as_str())
                    .bind::<Nullable<Text>, _>(after.map(MediaId::as_str))
                    .bind::<BigInt, _>(limit)
                    .load::<CandidateRow>(&mut connection)
                    .await?,
            )
        })
        .await
        .map_err(unavailable)?;
        rows.into_iter()
            .map(|row| Ok(MediaCandidate { media: Media::try_from(row.media)?, granted: row.granted }))
            .collect()
    }
}

#[async_trait]
impl CatalogWriter for PgCatalog {
    async fn apply(&self, change: &CatalogChange, at: OffsetDateTime) -> Result<bool, CatalogError> {
        let applied = match change {
            CatalogChange::MediaUpserted(item) => self.apply_media(item, at).await,
            CatalogChange::MediaStatusChanged { media, status } => self.apply_media_status(media, *status, at).await,
            CatalogChange::MediaDeleted { media } => self.apply_media_status(media, MediaStatus::Deleted, at).await,
            CatalogChange::UserStatusChanged { user, status } => self.apply_user_status(user, *status, at).await,
            CatalogChange::UserLoggedOutEverywhere { .. } | CatalogChange::SubscriptionChanged { .. } => Ok(true),
            CatalogChange::GrantChanged { media, user, granted } => self.apply_grant(media, user, *granted).await,
        };
        applied.map_err(unavailable)
    }
}
