#!/usr/bin/env bash
# Generation benchmark: prompt tokens/s, time to first token and output tokens/s of the
# in-process chat model (SmolLM2-135M Q4_1 by default) at 1 and 2 threads.
# Extra arguments go to `cairn-bench generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
target/release/cairn models pull smollm2
exec target/release/cairn-bench generate --model "$(target/release/cairn models path smollm2)/model.gguf" "$@"
