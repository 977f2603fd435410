#!/usr/bin/env bash
# Embedding benchmark: sentences/s of Cairn's in-process MiniLM at batch 1 and 32 (all cores),
# and, side by side on the same sentences and threads, the PyTorch sentence-transformers
# reference (installed once into a virtual environment: several GB, CPU use only).
# Set CAIRN_BENCH_NO_REFERENCE=1 to skip the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
THREADS="${THREADS:-$(nproc)}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CORPUS="${CORPUS:-../shared/data/scifact/corpus.jsonl}"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
"$BIN"/cairn models pull minilm
MODEL="$("$BIN"/cairn models path minilm)"
"$BIN"/cairn-bench embed --model "$MODEL" --corpus "$CORPUS" --threads "$THREADS" --seconds "$SECONDS_PER_RUN"
if [ -z "${CAIRN_BENCH_NO_REFERENCE:-}" ]; then
  VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-st"
  if ! "$VENV/bin/python" -c "import sentence_transformers" 2>/dev/null; then
    echo "[bench-embed.sh] installing sentence-transformers (PyTorch) into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check sentence-transformers
  fi
  echo
  "$VENV/bin/python" crates/cairn-bench/python/st_embed.py "$MODEL" "$CORPUS" "$THREADS" "$SECONDS_PER_RUN" 2>/dev/null
fi
