-- Upstream events the consumer gave up on after its attempts: kept with
-- why, so an operator can see them, fix the cause and replay them; the
-- partition moved on past each.
CREATE TABLE dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL CHECK (partition >= 0),
    "offset"    BIGINT NOT NULL CHECK ("offset" >= 0),
    event_id    UUID,
    payload     BYTEA NOT NULL,
    error       TEXT NOT NULL,
    attempts    INTEGER NOT NULL CHECK (attempts > 0),
    failed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);
