#!/usr/bin/env bash
# Scale-out benchmarks (issue 14): retrieval quality on SciFact of the embedded retrievers and
# of search inside PostgreSQL side by side (`cairn-bench retrieval --postgres`), then search
# latency at 100,000 chunks with a 30% metadata filter, embedded and inside PostgreSQL, and
# the start-up time and memory of `cairn serve` over that corpus in both retrieval modes
# (`cairn-bench search --postgres --cairn`). Starts the local PostgreSQL (scripts/postgres.sh); each run
# writes into a fresh database of its own. `CHUNKS=1000000 scripts/bench-scaleout.sh` for more.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
DATA="${CAIRN_SCIFACT:-../shared/data/scifact}"
scripts/system-deps.sh
URL="$(scripts/postgres.sh start)"
cargo build --release -p cairn -p cairn-bench
"$BIN"/cairn models pull minilm
"$BIN"/cairn-bench retrieval --dataset "$DATA" --model "${CAIRN_MODELS_DIR:-$HOME/.cache/cairn/models}/minilm" \
  --cache "${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/eval-cache" --postgres "$URL"
"$BIN"/cairn-bench search --dataset "$DATA" --chunks "${CHUNKS:-100000}" --postgres "$URL" --cairn "$BIN"/cairn
