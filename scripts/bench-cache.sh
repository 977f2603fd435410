#!/usr/bin/env bash
# Response cache benchmark: builds Cairn and the benchmark in release mode, then measures an
# exact-cache hit at 1000 req/s beside the upstream direct and Cairn uncached, then a
# semantic-cache hit (MiniLM pulled for it) beside an exact one, in one run.
# Extra arguments go to `cairn-bench cache` (e.g. --seconds 5 --rate 500).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
"$BIN"/cairn models pull minilm
exec "$BIN"/cairn-bench cache --cairn "$BIN"/cairn "$@"
