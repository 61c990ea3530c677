-- The streaming service's schema: catalog read model, grants, users,
-- watch progress, stream sessions, and the event outbox.

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
