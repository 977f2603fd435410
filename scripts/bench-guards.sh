#!/usr/bin/env bash
# Guard benchmark: builds Cairn and the benchmark in release mode, pulls MiniLM (whose word
# vectors the injection classifier reads), then measures the classifier and PII redaction in
# process and a guarded alias beside an unguarded one through the gateway, in one run.
# Extra arguments go to `cairn-bench guards` (e.g. --seconds 5 --rate 500).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
"$BIN"/cairn models pull minilm
MODELS="${CAIRN_MODELS_DIR:-$HOME/.cache/cairn/models}"
exec "$BIN"/cairn-bench guards --cairn "$BIN"/cairn --model "$MODELS/minilm" "$@"
