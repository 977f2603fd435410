#!/usr/bin/env bash
# Agent benchmark: builds Cairn and the benchmark in release mode, then runs 200 concurrent
# agent runs of 10 steps against a stand-in model with 200 ms latency on SQLite, and reports
# the runtime overhead per step and the journal's size per step. Then the same workload runs
# on LangGraph with its SQLite checkpointer (installed from PyPI into a cached virtual
# environment), and the two are printed side by side; CAIRN_BENCH_PEER=0 skips the peer.
# Extra arguments go to `cairn-bench agents` (e.g. --runs 20 --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
PEER=()
if [ "${CAIRN_BENCH_PEER:-1}" != "0" ]; then
  LANGGRAPH_PIN="1.2.24"
  VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-langgraph-$LANGGRAPH_PIN"
  if ! "$VENV/bin/python" -c "import langgraph, httpx; from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver" 2>/dev/null; then
    echo "[bench-agents.sh] installing langgraph==$LANGGRAPH_PIN into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "langgraph==$LANGGRAPH_PIN" \
      "langgraph-checkpoint-sqlite==3.1.2" "httpx==0.28.1"
  fi
  PEER=(--peer "$VENV/bin/python")
fi
exec "$BIN"/cairn-bench agents --cairn "$BIN"/cairn "${PEER[@]}" "$@"
