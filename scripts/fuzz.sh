#!/usr/bin/env bash
# Fuzzes the parsers an attacker reaches (cargo-fuzz / libFuzzer): OAuth bodies, Authorization
# headers, presented tokens and JWT validation.
#
#   scripts/fuzz.sh            # 300 s per target
#   SECONDS_PER_TARGET=30 scripts/fuzz.sh
#
# cargo-fuzz needs unstable compiler flags; the machine's one toolchain is stable, so the build
# runs with RUSTC_BOOTSTRAP=1 (for this build only). Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in oauth_params authorization_header tokens; do
    echo "==> fuzz $target for ${SECONDS_PER_TARGET}s"
    cargo fuzz run "$target" --sanitizer address -- -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -rss_limit_mb=2048
done
echo "fuzz: no crashes"
