-- Storage v2 (SQLite): the session row is the whole token state (docs/revocation.md).
-- A refresh token is computed from its session (id, generation, a per-session secret) under a
-- server key, and an access token is a JWT naming its session: neither has a row of its own.
ALTER TABLE sessions ADD COLUMN refresh_generation BIGINT NOT NULL DEFAULT 0;
-- 256 random bits in base64url; NULL for a session without a refresh chain (personal access
-- tokens, client credentials).
ALTER TABLE sessions ADD COLUMN refresh_secret TEXT;
ALTER TABLE sessions ADD COLUMN rotated_at TIMESTAMP;
ALTER TABLE sessions ADD COLUMN refresh_expires_at TIMESTAMP;
ALTER TABLE sessions ADD COLUMN access_expires_at TIMESTAMP;

-- Access tokens already issued keep working until they expire, and revocations count them.
UPDATE sessions SET access_expires_at = (
    SELECT MAX(a.expires_at) FROM access_tokens a WHERE a.session_id = sessions.id
);

-- A v1 refresh token was a random value kept as a hash; v2 cannot compute it, so a session that
-- holds one cannot go on. It ends, with reason storage_upgrade and one audit event each: its user
-- signs in again. Users, clients, keys, personal tokens, audit events and throttling state stay.
INSERT INTO audit_events (id, at, kind, reason, user_id, session_id, client_id)
SELECT -- a random (version 4) UUID
       lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
             || '-' || hex(randomblob(6))),
       strftime('%Y-%m-%d %H:%M:%f', 'now'), 'session_ended', 'storage_upgrade', s.user_id, s.id, s.client_id
  FROM sessions s
 WHERE s.revoked_at IS NULL
   AND s.expires_at > strftime('%Y-%m-%d %H:%M:%f', 'now')
   AND EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id);
UPDATE sessions SET revoked_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), revoked_reason = 'storage_upgrade'
 WHERE revoked_at IS NULL
   AND expires_at > strftime('%Y-%m-%d %H:%M:%f', 'now')
   AND EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = sessions.id);

DROP TABLE refresh_tokens;
DROP TABLE access_tokens;
-- v1 derived refresh successors from this key; v2 has a refresh key of its own (refresh_key) and
-- the sign-in form a CSRF key of its own (csrf_key), both made on the next start.
DELETE FROM server_secrets WHERE name = 'refresh_successor_key';
