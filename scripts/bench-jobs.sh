#!/usr/bin/env bash
# Job queue benchmark: no-op jobs enqueued and completed per second (durably, default worker
# settings) and enqueue-to-start latency at light load, on SQLite and on a local PostgreSQL
# (started by scripts/postgres.sh). Extra arguments go to `cairn-bench jobs`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn -p cairn-bench
PG="$(scripts/postgres.sh start)"
DB="cairn_bench_jobs_$$"
scripts/postgres.sh psql -c "CREATE DATABASE $DB" >/dev/null
trap 'scripts/postgres.sh psql -c "DROP DATABASE IF EXISTS $DB" >/dev/null' EXIT
"$BIN"/cairn-bench jobs --postgres "${PG%/*}/$DB" "$@"
