-- Purge finds its work by these columns, one small batch at a time.
CREATE INDEX access_tokens_expires_at_idx ON access_tokens (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
