-- The streaming service's schema: catalog read model, grants, users,
-- watch progress, stream sessions, and the event outbox.
--
-- `watch_progress` and `stream_sessions` may already exist, created by the
-- cinema streaming service (its 001_create_tables.sql: UUID user and movie
-- ids, INTEGER seconds, TIMESTAMP without time zone in UTC, VARCHAR
-- addresses). Those tables keep their columns, types and rows, so the cinema
-- service can go on reading and writing them while both run; this migration
-- only adds the columns this service needs, with defaults that the cinema
-- service's inserts satisfy. The adapters read which layout a database has
-- from the type of `watch_progress.user_id` (text here, uuid there).

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE media (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('track', 'movie')),
    owner_id          TEXT,
    status            TEXT NOT NULL CHECK (status IN ('processing', 'ready', 'failed', 'deleted')),
    -- The object of a track, or the manifest root (movies/{id}) of a movie.
    object_key        TEXT NOT NULL CHECK (object_key <> '' AND length(object_key) <= 1024),
    content_type      TEXT NOT NULL,
    size_bytes        BIGINT NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    duration_seconds  DOUBLE PRECISION CHECK (duration_seconds IS NULL OR duration_seconds >= 0),
    visibility        TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'subscribers', 'public')),
    requires_hd       BOOLEAN NOT NULL DEFAULT false,
    requires_4k       BOOLEAN NOT NULL DEFAULT false,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX media_owner_idx ON media (owner_id);

CREATE TABLE media_grants (
    media_id    TEXT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    granted_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, user_id)
);
CREATE INDEX media_grants_user_idx ON media_grants (user_id);

DO $migration$
BEGIN
    IF to_regclass('watch_progress') IS NULL THEN
        CREATE TABLE watch_progress (
            id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id           TEXT NOT NULL,
            movie_id          TEXT NOT NULL,
            position_seconds  DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (position_seconds >= 0),
            created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            last_watched_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            watched           BOOLEAN NOT NULL DEFAULT false,
            -- The session and arrival sequence of the stored update: a later write of
            -- the same session with a lower or equal sequence is refused.
            session_id        UUID,
            sequence          BIGINT NOT NULL DEFAULT 0,
            UNIQUE (user_id, movie_id)
        );
        CREATE INDEX watch_progress_movie_idx ON watch_progress (movie_id);
        CREATE INDEX watch_progress_last_watched_idx ON watch_progress (last_watched_at);
    ELSIF (SELECT data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = 'watch_progress' AND column_name = 'user_id') = 'uuid'
    THEN
        -- The cinema service's table: its rows stay, its columns keep their meaning.
        ALTER TABLE watch_progress
            ADD COLUMN watched BOOLEAN NOT NULL DEFAULT false,
            ADD COLUMN session_id UUID,
            ADD COLUMN sequence BIGINT NOT NULL DEFAULT 0;
    ELSE
        RAISE EXCEPTION 'a table watch_progress exists that is neither this service''s nor the cinema service''s';
    END IF;

    IF to_regclass('stream_sessions') IS NULL THEN
        CREATE TABLE stream_sessions (
            id                 UUID PRIMARY KEY,
            user_id            TEXT NOT NULL,
            movie_id           TEXT NOT NULL,
            manifest_type      TEXT NOT NULL CHECK (manifest_type IN ('hls', 'dash')),
            started_at         TIMESTAMPTZ NOT NULL,
            ended_at           TIMESTAMPTZ,
            duration_seconds   DOUBLE PRECISION,
            user_agent         VARCHAR(500),
            ip_address         INET,
            last_heartbeat_at  TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX stream_sessions_user_idx ON stream_sessions (user_id);
        CREATE INDEX stream_sessions_movie_idx ON stream_sessions (movie_id);
        CREATE INDEX stream_sessions_started_idx ON stream_sessions (started_at);
    ELSIF (SELECT data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = 'stream_sessions' AND column_name = 'user_id') = 'uuid'
    THEN
        -- The cinema service's table. Its sessions were never heartbeated:
        -- the last sign of life is the end, or else the start.
        ALTER TABLE stream_sessions
            ADD COLUMN manifest_type TEXT NOT NULL DEFAULT 'hls' CHECK (manifest_type IN ('hls', 'dash')),
            ADD COLUMN last_heartbeat_at TIMESTAMP;
        UPDATE stream_sessions SET last_heartbeat_at = coalesce(ended_at, started_at);
        ALTER TABLE stream_sessions
            ALTER COLUMN last_heartbeat_at SET DEFAULT (now() AT TIME ZONE 'UTC'),
            ALTER COLUMN last_heartbeat_at SET NOT NULL;
    ELSE
        RAISE EXCEPTION 'a table stream_sessions exists that is neither this service''s nor the cinema service''s';
    END IF;
END
$migration$;
-- Open sessions of a user, by heartbeat (concurrent-stream limits, stop without an id).
CREATE INDEX stream_sessions_open_idx ON stream_sessions (user_id, last_heartbeat_at) WHERE ended_at IS NULL;

CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    event_id      UUID NOT NULL UNIQUE,
    topic         TEXT NOT NULL,
    key           TEXT NOT NULL,
    payload       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);
-- The relay reads unpublished rows in order.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
