#!/usr/bin/env bash
# The API contract check alone (it is also part of scripts/test.sh): schemathesis (PyPI)
# against a live Cairn, every route, all checks (crates/cairn-api/tests/api/contract.rs).
# The report is saved in ${TMPDIR:-/tmp}/cairn-schemathesis-report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN_TEST_SCHEMATHESIS="$(scripts/schemathesis-env.sh)"
export CAIRN_TEST_SCHEMATHESIS
if [ -z "${CAIRN_TEST_POSTGRES_URL:-}" ]; then
  CAIRN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
  export CAIRN_TEST_POSTGRES_URL
fi
cargo nextest run -p cairn-api contract
echo "report: ${TMPDIR:-/tmp}/cairn-schemathesis-report.txt" >&2
