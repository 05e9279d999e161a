#!/usr/bin/env bash
# What PostgreSQL on this machine allows for a refresh, without tokend: pgbench runs the same
# statements a refresh sends (refresh.sql), the rotation transaction alone (derived from it), and
# ten empty round trips (select1.sql), over TCP (TLS, as libpq negotiates by default) and over the
# Unix socket. docs/benchmarks.md reads tokend's refresh figure against these.
#
#   bash benches/pgbench/run.sh [clients=16] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")"
CLIENTS=${1:-16}
SECONDS_EACH=${2:-10}
DB=tokend_pgbench
export PGOPTIONS="-c client_min_messages=warning"
ADMIN=(psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1)
"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
TX=$(mktemp)
trap '"${ADMIN[@]}" -c "DROP DATABASE IF EXISTS $DB"; rm -f "$TX"' EXIT
# The rotation alone: refresh.sql without the pool checks, the client lookup and the session read.
grep -v -e '^SELECT 1;' -e 'FROM clients' -e '^SELECT s.id' refresh.sql >"$TX"
for up in ../../migrations/postgres/*/up.sql; do "${ADMIN[@]}" -d $DB -f "$up"; done
"${ADMIN[@]}" -d $DB <<'SQL'
CREATE EXTENSION IF NOT EXISTS pgcrypto;
INSERT INTO users VALUES ('u1', 'alice', 'x', false, NULL, now(), now(), now());
INSERT INTO clients (id, name, secret_hash, is_public, grant_types, redirect_uris, scopes,
                     allowed_origins, audiences, created_at)
VALUES ('pgbench', 'pgbench', NULL, true, 'refresh_token', '', 'profile', '', '', now());
INSERT INTO sessions (id, user_id, client_id, kind, scope, device_name, user_agent, ip, created_at,
                      last_used_at, expires_at, refresh_generation, refresh_secret,
                      refresh_expires_at, access_expires_at)
SELECT 's' || i, 'u1', 'pgbench', 'password', 'profile', NULL, 'pgbench', '127.0.0.1', now(), now(),
       now() + interval '30 days', 0, 'secret', now() + interval '30 days', now()
  FROM generate_series(0, 255) i;
SQL
reset() {
    "${ADMIN[@]}" -d $DB -c "UPDATE sessions SET refresh_generation = 0" -c "VACUUM ANALYZE"
}
run() { # label host script
    reset
    local out tps
    out=$(pgbench -h "$2" -U postgres -n -M prepared -D k=0 -c "$CLIENTS" -j 1 -T "$SECONDS_EACH" \
        -f "$3" $DB 2>&1) || { echo "$out" >&2; exit 1; }
    if grep -qiE 'error|aborted' <<<"$out"; then echo "$out" >&2; exit 1; fi
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
    printf '%-44s %8.0f/s\n' "$1" "$tps"
}
echo "pgbench, $CLIENTS clients, ${SECONDS_EACH}s each, $(nproc) cores, $(psql -h 127.0.0.1 -U postgres -XAtc 'SHOW server_version')"
run "refresh as tokend sends it, TCP+TLS" 127.0.0.1 refresh.sql
run "refresh as tokend sends it, Unix socket" /var/run/postgresql refresh.sql
run "rotation UPDATE alone, TCP+TLS" 127.0.0.1 "$TX"
run "rotation UPDATE alone, Unix socket" /var/run/postgresql "$TX"
run "10 x SELECT 1, TCP+TLS" 127.0.0.1 select1.sql
run "10 x SELECT 1, Unix socket" /var/run/postgresql select1.sql
