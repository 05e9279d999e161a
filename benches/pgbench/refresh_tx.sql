-- The rotation transaction alone (no pool checks, no client lookup): the floor of a refresh.
-- Each client rotates its own chain: token hashes are client_id * 10^7 + step.
\set cur :client_id * 10000000 + :k
\set k :k + 1
\set next :client_id * 10000000 + :k
BEGIN;
SELECT r.id AS rid, s.id AS sid, s.scope FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = :cur::text \gset
UPDATE refresh_tokens SET used_at = now() WHERE id = :rid AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() AND session_id IN (SELECT id FROM sessions WHERE id = :sid AND revoked_at IS NULL AND expires_at > now());
INSERT INTO access_tokens VALUES (gen_random_uuid()::text, :sid, 'profile', now(), now() + interval '5 minutes', NULL, NULL);
INSERT INTO refresh_tokens (id, token_hash, session_id, access_token_jti, parent_id, issued_at, expires_at) VALUES (gen_random_uuid()::text, :next::text, :sid, NULL, :rid, now(), now() + interval '30 days');
UPDATE sessions SET last_used_at = now() WHERE id = :sid;
COMMIT;
