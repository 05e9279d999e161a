#!/usr/bin/env bash
# Runs every shell example of README.md and docs/*.md against a fresh tokend (one server and one
# empty SQLite database per document) and compares what each prints with the output the document
# shows; scripts/docs_examples.py says how, and which markers a document may carry.
# Usage: scripts/docs-examples.sh [--release] [--keep] [-v] [DOC…]
# Builds the debug binary (or the release one with --release) first. Exit 0 when every example
# ran as documented; 1 otherwise, naming the document, the block's line and what differed.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
args=()
for arg in "$@"; do
    case "$arg" in
        --release) profile=release ;;
        *) args+=("$arg") ;;
    esac
done

for tool in curl jq openssl sqlite3 python3; do
    command -v "$tool" >/dev/null || { echo "docs-examples: $tool is needed (the docs use it)" >&2; exit 1; }
done

if [ "$profile" = release ]; then
    cargo build --release --quiet --bin tokend
else
    cargo build --quiet --bin tokend
fi
exec python3 scripts/docs_examples.py --bin "target/$profile/tokend" ${args[@]+"${args[@]}"}
