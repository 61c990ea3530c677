-- The trail of operators' changes made through the internal admin API: who,
-- what, on what, when, and the state before and after (never URLs, object
-- keys or secrets). Rows are only ever appended.
CREATE TABLE admin_audit (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    before  JSONB,
    after   JSONB
);
CREATE INDEX admin_audit_target_idx ON admin_audit (target);
