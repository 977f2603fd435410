#!/usr/bin/env bash
# Prepares (once) a Python virtual environment with the official OpenAI SDK (used by the
# SDK-compatibility test) and the official MCP SDK (the tests' MCP servers are written with
# it), and prints its interpreter path.
set -euo pipefail
OPENAI_PIN="3.54.0"
MCP_PIN="1.26.0"
VENV="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}/venv-sdk-$OPENAI_PIN-mcp-$MCP_PIN"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import openai, mcp.server.fastmcp" 2>/dev/null; then
  echo "[python-env.sh] installing openai==$OPENAI_PIN and mcp==$MCP_PIN into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_PIN" "mcp==$MCP_PIN"
fi
echo "$VENV/bin/python"
