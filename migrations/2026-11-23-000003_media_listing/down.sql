DROP INDEX media_id_bytes_idx;
