#!/usr/bin/env bash
# Builds Cairn (release), fetches its in-process models if missing, and runs it on its
# embedded default: one process, SQLite in ./cairn-data, listening on 127.0.0.1:8080. Extra arguments go to `cairn serve`
# (e.g. `--config cairn.toml`). The first start prints an admin key once.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn
# The in-process models, fetched once and verified (a no-op when already present).
"$BIN"/cairn models pull
exec "$BIN"/cairn serve "$@"
