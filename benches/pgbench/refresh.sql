-- One refresh as tokend runs it on PostgreSQL (storage v2), statement for statement, without
-- tokend: r2d2's check on each of the two pool checkouts, the client lookup, the session read
-- (one primary-key lookup joined to its user), then the rotation: one autocommit UPDATE. Each
-- client rotates its own session's chain: session 's<client_id>', generation :k.
SELECT 1;
SELECT id, is_public, grant_types, scopes, audiences FROM clients WHERE id = 'pgbench';
SELECT 1;
SELECT s.id, s.refresh_generation, s.refresh_secret, s.rotated_at, s.refresh_expires_at, u.username, u.is_admin, u.disabled_at FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.id = 's' || :client_id;
UPDATE sessions SET refresh_generation = refresh_generation + 1, rotated_at = now(), last_used_at = now(), refresh_expires_at = now() + interval '30 days', access_expires_at = CASE WHEN access_expires_at > now() + interval '5 minutes' THEN access_expires_at ELSE now() + interval '5 minutes' END WHERE id = 's' || :client_id AND refresh_generation = :k AND revoked_at IS NULL AND expires_at > now() AND refresh_expires_at > now();
\set k :k + 1
