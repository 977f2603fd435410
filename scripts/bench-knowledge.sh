#!/usr/bin/env bash
# Knowledge layer benchmarks: `cairn eval retrieval` on SciFact (the corpus ingested through the
# real pipeline: nDCG@10, recall@100, MRR@10 per mode, query latency, and ingestion throughput
# beside embedding the same chunks alone), then search latency at 100,000 chunks with a
# metadata filter (`cairn-bench search`). Extra arguments go to `cairn eval retrieval`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
DATA="${CAIRN_SCIFACT:-../shared/data/scifact}"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
"$BIN"/cairn models pull minilm
"$BIN"/cairn eval retrieval --dataset "$DATA" "$@"
"$BIN"/cairn-bench search --dataset "$DATA" --chunks 100000
