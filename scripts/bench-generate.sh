#!/usr/bin/env bash
# Generation benchmark: prompt tokens/s, time to first token and output tokens/s of Cairn's
# in-process chat model (SmolLM2-135M Q4_1), and, side by side in the same run, a bare
# llama.cpp generation loop on the same GGUF file, thread count and number of tokens, linked
# against the same llama.cpp build (the llama-cpp-sys-2 crate ships llama.cpp's library but not
# its `llama-bench` tool). Extra arguments go to `cairn-bench generate`.
# THREADS (default "1,2") picks the thread counts.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
THREADS="${THREADS:-1,2}"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
"$BIN"/cairn models pull smollm2
MODEL="$("$BIN"/cairn models path smollm2)/model.gguf"

"$BIN"/cairn-bench generate --model "$MODEL" --threads "$THREADS" "$@"
