-- Back to v1's tables (empty: v2 kept no token rows to put back). Sessions keep working for their
-- access tokens' lifetime; their v2 refresh tokens are gone with the columns.
CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    scope TEXT NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_reason TEXT
);
CREATE INDEX access_tokens_session_id_idx ON access_tokens (session_id);
CREATE INDEX access_tokens_expires_at_idx ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    access_token_jti TEXT REFERENCES access_tokens (jti) ON DELETE SET NULL,
    parent_id TEXT REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoked_reason TEXT
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_access_token_jti_idx ON refresh_tokens (access_token_jti);
CREATE INDEX refresh_tokens_parent_id_idx ON refresh_tokens (parent_id);

ALTER TABLE sessions DROP COLUMN access_expires_at;
ALTER TABLE sessions DROP COLUMN refresh_expires_at;
ALTER TABLE sessions DROP COLUMN rotated_at;
ALTER TABLE sessions DROP COLUMN refresh_secret;
ALTER TABLE sessions DROP COLUMN refresh_generation;
