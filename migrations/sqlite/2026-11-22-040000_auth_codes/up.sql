-- The authorization code flow (RFC 6749 §4.1 with PKCE, RFC 7636). A code is stored only as its
-- SHA-256 hash, lives 60 s and is used once; `session_id` is the session its first use opened, so
-- that a second use can end it (RFC 6749 §4.1.2).
CREATE TABLE auth_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    code_challenge TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    session_id TEXT REFERENCES sessions (id) ON DELETE SET NULL
);
CREATE INDEX auth_codes_expires_at_idx ON auth_codes (expires_at);
CREATE INDEX auth_codes_session_id_idx ON auth_codes (session_id);
CREATE INDEX auth_codes_user_id_idx ON auth_codes (user_id);
CREATE INDEX auth_codes_client_id_idx ON auth_codes (client_id);

-- Clients that choose it receive their refresh token in an HttpOnly cookie instead of the body.
ALTER TABLE clients ADD COLUMN refresh_token_cookie BOOLEAN NOT NULL DEFAULT FALSE;
