DROP INDEX stream_sessions_open_idx;
CREATE INDEX stream_sessions_open_idx ON stream_sessions (user_id, last_heartbeat_at) WHERE ended_at IS NULL;

DO $migration$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'watch_progress' AND column_name = 'user_id') = 'text' THEN
        CREATE INDEX IF NOT EXISTS watch_progress_last_watched_idx ON watch_progress (last_watched_at);
    END IF;
END
$migration$;

ALTER TABLE stream_sessions RESET (fillfactor);
ALTER TABLE watch_progress RESET (fillfactor);
