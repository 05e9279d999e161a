#!/usr/bin/env bash
# The browser test (docs/spa.md): builds tokend (debug), starts it on a free port with a temporary
# SQLite database and a 5 s access-token lifetime, registers a user and two SPA clients with the
# CLI (refresh token in a cookie, and in the body), serves examples/spa with python3's static
# server, and runs spa.test.mjs in headless Chromium through playwright-core.
#
# Needs /usr/bin/chromium (apt-get install -y chromium) and `npm ci` in tests/browser.
# TOKEND_BIN=path skips the build; CHROMIUM=path picks another Chromium.
# The last line is "browser: N passed, N failed". Screenshots of a failed test: target/browser-test/.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

fail() {
    echo "browser test: FAIL: $*" >&2
    exit 1
}

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is missing (apt-get install -y chromium)"
command -v node >/dev/null || fail "node is missing"
[ -f tests/browser/node_modules/playwright-core/package.json ] ||
    fail "playwright-core is not installed: run (cd tests/browser && npm ci)"

TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in
/*) ;;
*) TARGET_DIR=$ROOT/$TARGET_DIR ;;
esac

if [ -n "${TOKEND_BIN:-}" ]; then
    BIN=$TOKEND_BIN
else
    cargo build --quiet --bin tokend
    BIN=$TARGET_DIR/debug/tokend
fi
[ -x "$BIN" ] || fail "no tokend binary at $BIN"

WORK=$(mktemp -d)
ARTIFACTS_DIR=$TARGET_DIR/browser-test
rm -rf "$ARTIFACTS_DIR"
PIDS=()

cleanup() {
    local status=$?
    # Only the processes this script started, by their ids.
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$status" -ne 0 ] && [ -s "$WORK/tokend.log" ]; then
        echo "--- tokend log (last 40 lines)" >&2
        tail -n 40 "$WORK/tokend.log" >&2
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Same host for the SPA and tokend: different ports are the same site, so the SameSite=Strict
# refresh cookie is sent with the SPA's requests.
TOKEND_PORT=$(free_port)
SPA_PORT=$(free_port)
ISSUER=http://127.0.0.1:$TOKEND_PORT
SPA_URL=http://127.0.0.1:$SPA_PORT
TTL_SECONDS=5

# Nothing from the caller's environment or a tokend.toml: run from the temporary directory.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^TOKEND_' || true)
export TOKEND_DATABASE_URL=sqlite://$WORK/tokend.db
export TOKEND_BIND=127.0.0.1:$TOKEND_PORT
export TOKEND_ACCESS_TOKEN_TTL=${TTL_SECONDS}s
export TOKEND_LOG=warn
TOKEND_BOOTSTRAP_ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
export TOKEND_BOOTSTRAP_ADMIN_PASSWORD
SPA_USERNAME=alice
SPA_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
cd "$WORK"

"$BIN" migrate >/dev/null
printf '%s\n' "$SPA_PASSWORD" | "$BIN" user create "$SPA_USERNAME" --password-stdin >/dev/null

# Registered before `serve` starts, so its CORS origin list has them from the first request.
spa_client() {
    local name=$1
    shift
    "$BIN" client create "$name" --public \
        --grant authorization_code --grant refresh_token \
        --redirect-uri "$SPA_URL/" --origin "$SPA_URL" --scope account "$@" --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])'
}
COOKIE_CLIENT_ID=$(spa_client spa-cookie --refresh-cookie)
BODY_CLIENT_ID=$(spa_client spa-body)

"$BIN" serve >"$WORK/tokend.log" 2>&1 &
PIDS+=("$!")
python3 -m http.server "$SPA_PORT" --bind 127.0.0.1 --directory "$ROOT/examples/spa" \
    >"$WORK/static.log" 2>&1 &
PIDS+=("$!")

wait_for() {
    local url=$1
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "$url" && return 0
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || fail "a server exited before $url answered"
        done
        sleep 0.2
    done
    fail "$url did not answer within 20 s"
}
wait_for "$ISSUER/readyz"
wait_for "$SPA_URL/"

echo "tokend $ISSUER, SPA $SPA_URL, clients $COOKIE_CLIENT_ID (cookie) and $BODY_CLIENT_ID (body)"

set +e
ISSUER=$ISSUER SPA_URL=$SPA_URL SPA_USERNAME=$SPA_USERNAME SPA_PASSWORD=$SPA_PASSWORD \
    COOKIE_CLIENT_ID=$COOKIE_CLIENT_ID BODY_CLIENT_ID=$BODY_CLIENT_ID \
    ACCESS_TOKEN_TTL_SECONDS=$TTL_SECONDS CHROMIUM=$CHROMIUM ARTIFACTS_DIR=$ARTIFACTS_DIR \
    node --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$WORK/tap" \
    "$ROOT/tests/browser/spa.test.mjs"
status=$?
set -e

passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$WORK/tap" | tail -n 1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$WORK/tap" | tail -n 1)
if [ -z "$passed" ] || [ -z "$failed" ]; then
    fail "the test runner printed no totals (exit $status)"
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
echo "browser: $passed passed, $failed failed"
exit "$status"
