#!/usr/bin/env bash
# Tracing benchmark: builds Cairn and the benchmark in release mode, then measures what tracing
# adds to a gateway call at 1000 req/s (tracing off vs metadata capture, interleaved in one
# run), span ingestion on SQLite, and trace reads with a million spans stored.
# Extra arguments go to `cairn-bench traces` (e.g. --seconds 5 --spans 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
exec "$BIN"/cairn-bench traces --cairn "$BIN"/cairn "$@"
