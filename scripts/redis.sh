#!/usr/bin/env bash
# Installs (once, Debian's `redis-server`) and starts a local Redis for Cairn's tests and for
# trying `gateway.shared_limits = "redis"`. It listens on 127.0.0.1 only, with a password
# (generated once, kept in the data folder, readable by its owner only) so that the tests
# exercise authentication, and keeps nothing on disk: rate buckets refill by themselves.
#
#   scripts/redis.sh start   # install if needed, start, print the URL (default)
#   scripts/redis.sh stop
#   scripts/redis.sh url
set -euo pipefail

PORT="${CAIRN_REDIS_PORT:-63790}"
DATA="${CAIRN_REDIS_DATA:-/var/tmp/cairn-redis-$PORT}"

log() { echo "[redis.sh] $*" >&2; }

install() {
  # openssl: the TLS test makes its certificates with it.
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v openssl >/dev/null && return
  log "installing redis-server and openssl (Debian packages)"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server openssl >/dev/null
}

password() {
  if [ ! -s "$DATA/password" ]; then
    mkdir -p "$DATA"; chmod 700 "$DATA"
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA/password")
  fi
  cat "$DATA/password"
}

url() { echo "redis://:$(password)@127.0.0.1:$PORT/0"; }

answers() { REDISCLI_AUTH="$(password)" redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

start() {
  install
  if answers; then log "already running on port $PORT"; url; return; fi
  local pass; pass="$(password)"
  # The password goes in through a config file on stdin, never on a command line.
  printf 'port %s\nbind 127.0.0.1\nrequirepass %s\ndir %s\nsave ""\nappendonly no\ndaemonize yes\npidfile %s/redis.pid\nlogfile %s/redis.log\n' \
    "$PORT" "$pass" "$DATA" "$DATA" "$DATA" | redis-server - >/dev/null
  for _ in $(seq 100); do
    answers && { log "running on port $PORT"; url; return; }
    sleep 0.1
  done
  log "Redis did not answer on port $PORT; see $DATA/redis.log"; exit 1
}

stop() {
  if answers; then REDISCLI_AUTH="$(password)" redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true; fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 [start|stop|url]" >&2; exit 2 ;;
esac
