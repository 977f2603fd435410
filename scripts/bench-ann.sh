#!/usr/bin/env bash
# The embedded ANN benchmark (issue 14): cairn-ann's HNSW index against FAISS's IndexHNSWFlat
# and hnswlib (PyPI, pinned) on the same generated vectors, same M / ef_construction /
# ef_search, one thread each: recall@10 against exact search, queries per second, build time,
# memory. `VECTORS=100000 scripts/bench-ann.sh` for a quicker run (default 1,000,000);
# `KEEP_INDEX=1` keeps cairn-ann's index and reuses it on the next run (build not measured).
set -euo pipefail
cd "$(dirname "$0")/.."
FAISS_PIN="1.15.1"
HNSWLIB_PIN="0.8.0"
NUMPY_PIN="2.4.6"
VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-ann-faiss-$FAISS_PIN-hnswlib-$HNSWLIB_PIN"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import faiss, hnswlib" 2>/dev/null; then
  echo "[bench-ann.sh] installing faiss-cpu, hnswlib and numpy into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "faiss-cpu==$FAISS_PIN" "hnswlib==$HNSWLIB_PIN" "numpy==$NUMPY_PIN"
fi
M="${M:-16}"
EFC="${EF_CONSTRUCTION:-100}"
EFS="${EF_SEARCH:-16,32,64,128}"
OUT="${CARGO_TARGET_DIR:-target}/ann-bench"
cargo build --release -p cairn -p cairn-bench
"${CARGO_TARGET_DIR:-target}/release/cairn-bench" ann --out "$OUT" --vectors "${VECTORS:-1000000}" \
  --m "$M" --ef-construction "$EFC" --ef-search "$EFS" ${KEEP_INDEX:+--keep-index}
"$VENV/bin/python" scripts/bench_ann_peers.py "$OUT" "$M" "$EFC" "$EFS"
[ -n "${KEEP_INDEX:-}" ] || rm -f "$OUT"/base.f32
