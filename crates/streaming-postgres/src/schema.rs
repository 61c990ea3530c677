//! The tables of `migrations/`, for diesel's query builder.

diesel::table! {
    users (id) {
        id -> Text,
        status -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    media (id) {
        id -> Text,
        kind -> Text,
        owner_id -> Nullable<Text>,
        status -> Text,
        object_key -> Text,
        content_type -> Text,
        size_bytes -> Int8,
        duration_seconds -> Nullable<Float8>,
        visibility -> Text,
        requires_hd -> Bool,
        requires_4k -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    media_grants (media_id, user_id) {
        media_id -> Text,
        user_id -> Text,
        granted_at -> Timestamptz,
    }
}

diesel::table! {
    watch_progress (id) {
        id -> Uuid,
        user_id -> Text,
        movie_id -> Text,
        position_seconds -> Float8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_watched_at -> Timestamptz,
        watched -> Bool,
        session_id -> Nullable<Uuid>,
        sequence -> Int8,
    }
}

diesel::table! {
    stream_sessions (id) {
        id -> Uuid,
        user_id -> Text,
        movie_id -> Text,
        manifest_type -> Text,
        started_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
        duration_seconds -> Nullable<Float8>,
        user_agent -> Nullable<Varchar>,
        ip_address -> Nullable<Inet>,
        last_heartbeat_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        event_id -> Uuid,
        topic -> Text,
        key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, media, media_grants, watch_progress, stream_sessions, outbox);
