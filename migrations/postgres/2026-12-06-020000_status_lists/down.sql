DROP TABLE status_list_blocks;
DROP INDEX sessions_revoked_at_idx;
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at);
ALTER TABLE sessions DROP COLUMN status_idx;
ALTER TABLE sessions DROP COLUMN status_list;
