//! The tables of `migrations/`, for diesel's query builder. `watch_progress`
//! and `stream_sessions` are not here: they come in two layouts (see
//! `layout.rs`), and their adapters write SQL for the one a database has.

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

diesel::allow_tables_to_appear_in_same_query!(users, media, media_grants, outbox);
