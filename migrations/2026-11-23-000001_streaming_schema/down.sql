DROP TABLE outbox;
DROP INDEX stream_sessions_open_idx;
-- Tables the cinema streaming service created (uuid user ids) stay with their
-- rows; only the columns this service added go.
DO $migration$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'stream_sessions' AND column_name = 'user_id') = 'uuid'
    THEN
        ALTER TABLE stream_sessions DROP COLUMN manifest_type, DROP COLUMN last_heartbeat_at;
    ELSE
        DROP TABLE stream_sessions;
    END IF;
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'watch_progress' AND column_name = 'user_id') = 'uuid'
    THEN
        ALTER TABLE watch_progress DROP COLUMN watched, DROP COLUMN session_id, DROP COLUMN sequence;
    ELSE
        DROP TABLE watch_progress;
    END IF;
END
$migration$;
DROP TABLE media_grants;
DROP TABLE media;
DROP TABLE users;
