#!/usr/bin/env bash
# Prepares (once) a Python virtual environment with schemathesis (PyPI), used by the API
# contract test (crates/cairn-api/tests/api/contract.rs), and prints the path of its `st`.
set -euo pipefail
ST_PIN="4.32.5"
VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-schemathesis-$ST_PIN"
if [ ! -x "$VENV/bin/st" ]; then
  echo "[schemathesis-env.sh] installing schemathesis==$ST_PIN into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_PIN"
fi
echo "$VENV/bin/st"
