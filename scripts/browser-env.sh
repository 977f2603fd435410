#!/usr/bin/env bash
# Prepares (once) what the dashboard's browser test (crates/cairn-api/tests/api/dashboard.rs)
# needs: headless Chromium from Debian's packages, and a Python virtual environment with
# Playwright's library (PyPI), which drives that browser; Playwright's own browser download is
# never used. Prints the path of the environment's Python.
set -euo pipefail
PLAYWRIGHT_PIN="1.65.2"
VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-playwright-$PLAYWRIGHT_PIN"
if ! command -v chromium >/dev/null; then
  echo "[browser-env.sh] installing chromium (Debian package)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x "$VENV/bin/playwright" ]; then
  echo "[browser-env.sh] installing playwright==$PLAYWRIGHT_PIN into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/pip" install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_PIN"
fi
echo "$VENV/bin/python"
