DROP TABLE outbox;
DROP TABLE stream_sessions;
DROP TABLE watch_progress;
DROP TABLE media_grants;
DROP TABLE media;
DROP TABLE users;
