-- The media listing pages through ids in byte order (their canonical
-- spellings), whatever the database's collation.
CREATE INDEX media_id_bytes_idx ON media (id COLLATE "C");
