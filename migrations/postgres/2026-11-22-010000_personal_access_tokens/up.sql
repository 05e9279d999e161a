-- Personal access tokens (Sanctum's model for scripts). Each one is a session of kind
-- `personal_access_token`: its scope, expiry, last use and revocation live on the session row.
CREATE TABLE personal_access_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL UNIQUE REFERENCES sessions (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP
);
CREATE INDEX personal_access_tokens_user_name_idx ON personal_access_tokens (user_id, name);
