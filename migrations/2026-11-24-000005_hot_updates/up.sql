-- Progress and heartbeats rewrite the same rows many times a minute. With
-- room left in each page and no index on a column they change, PostgreSQL
-- updates a row in place (a heap-only tuple): no new entry in every index,
-- less for vacuum.
ALTER TABLE watch_progress SET (fillfactor = 70);
ALTER TABLE stream_sessions SET (fillfactor = 70);

-- Nothing reads this service's progress by time alone. (A table made by the
-- cinema service keeps its own index of that column, under its own name.)
DROP INDEX IF EXISTS watch_progress_last_watched_idx;

-- Open sessions by user; the heartbeat is compared on the few rows found,
-- so a heartbeat no longer changes an indexed column.
DROP INDEX stream_sessions_open_idx;
CREATE INDEX stream_sessions_open_idx ON stream_sessions (user_id) WHERE ended_at IS NULL;
