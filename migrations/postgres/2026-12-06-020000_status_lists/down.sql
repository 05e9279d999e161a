DROP TABLE status_list_blocks;
DROP INDEX sessions_status_revoked_idx;
DROP INDEX sessions_status_entry_idx;
ALTER TABLE sessions DROP COLUMN status_idx;
ALTER TABLE sessions DROP COLUMN status_list;
