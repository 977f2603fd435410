#!/usr/bin/env bash
# Gateway benchmark: builds Cairn and the load generator in release mode, then measures the
# latency Cairn adds at 100/500/1000 req/s, its maximum throughput and its memory.
# Extra arguments go to `cairn-bench gateway` (e.g. --seconds 5 --rates 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
exec "$BIN"/cairn-bench gateway --cairn "$BIN"/cairn "$@"
