#!/usr/bin/env bash
# Prepares (once) a Python virtual environment with Arize Phoenix (PyPI), the OTLP receiver of
# the trace export test (crates/cairn-api/tests/api/otlp.rs), and prints the path of its Python.
# Phoenix stores what it receives in SQLite and answers queries over HTTP; nothing else to run.
set -euo pipefail
PHOENIX_PIN="20.26.1"
VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-phoenix-$PHOENIX_PIN"
if [ ! -x "$VENV/bin/phoenix" ]; then
  echo "[phoenix-env.sh] installing arize-phoenix==$PHOENIX_PIN into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "arize-phoenix==$PHOENIX_PIN"
fi
echo "$VENV/bin/python"
