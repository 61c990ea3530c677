-- Where each consumer of upstream topics stands: the next offset to read per
-- partition. Stored by the consumer after it applied the records before it.
CREATE TABLE consumer_offsets (
    consumer     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL CHECK (partition >= 0),
    next_offset  BIGINT NOT NULL CHECK (next_offset >= 0),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
