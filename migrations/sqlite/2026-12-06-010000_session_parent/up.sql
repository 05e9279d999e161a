-- The session that created this one (a personal access token's creator). When a session ends
-- for theft (refresh_reuse, code_reuse), the sessions it created end with it (SECURITY.md 31).
-- No foreign key: purge deletes an ended parent before or after its children, and an id that
-- names no row is simply no parent (SQLite could not drop a column a foreign key uses, either).
ALTER TABLE sessions ADD COLUMN parent_session_id TEXT;
CREATE INDEX sessions_parent_session_id_idx ON sessions (parent_session_id)
    WHERE parent_session_id IS NOT NULL;
