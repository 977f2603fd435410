#!/usr/bin/env bash
# The API contract check: installs schemathesis (PyPI) once into a virtual environment, then runs
# it against a live Cairn with every check on every route (crates/cairn-api/tests/api/contract.rs).
#   scripts/contract.sh                                        # report new findings
#   CAIRN_SCHEMATHESIS_UPDATE_BASELINE=1 scripts/contract.sh   # record the current ones
set -euo pipefail
cd "$(dirname "$0")/.."
ST_PIN="4.32.5"
VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-schemathesis-$ST_PIN"
if [ ! -x "$VENV/bin/st" ]; then
  echo "[contract.sh] installing schemathesis==$ST_PIN into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_PIN"
fi
export CAIRN_TEST_SCHEMATHESIS="$VENV/bin/st"
if [ -z "${CAIRN_TEST_POSTGRES_URL:-}" ]; then
  CAIRN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
  export CAIRN_TEST_POSTGRES_URL
fi
cargo nextest run -p cairn-api --run-ignored only contract
echo "report: ${TMPDIR:-/tmp}/cairn-schemathesis-report.txt" >&2
