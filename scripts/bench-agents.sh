#!/usr/bin/env bash
# Agent benchmark: builds Cairn and the benchmark in release mode, then runs 200 concurrent
# agent runs of 10 steps against a stand-in model with 200 ms latency on SQLite, and reports
# the runtime overhead per step and the journal's size per step.
# Extra arguments go to `cairn-bench agents` (e.g. --runs 20 --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
exec "$BIN"/cairn-bench agents --cairn "$BIN"/cairn "$@"
