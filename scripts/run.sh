#!/usr/bin/env bash
# Builds Cairn (release), fetches its in-process models if missing, and runs it on its
# embedded default: one process, SQLite in ./cairn-data, listening on 127.0.0.1:8080. Then it
# shows the main job end to end: the sample handbook in examples/handbook is ingested
# (`cairn ingest`), a question is answered with citations by the local chat model
# (`cairn ask`), and an agent answers it again by searching the handbook with a tool call
# that a person approves (`cairn agents create`, `cairn run`). Cairn keeps serving until Ctrl-C. Extra arguments go to `cairn serve`
# (e.g. `--config cairn.toml`); set CAIRN_DEMO=0 to skip the demonstration.
# The first start prints an owner key once.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release"
scripts/system-deps.sh
cargo build --release -p cairn
# The in-process models, fetched once and verified (a no-op when already present).
"$BIN"/cairn models pull
if [ "${CAIRN_DEMO:-1}" = "0" ]; then
    exec "$BIN"/cairn serve "$@"
fi

"$BIN"/cairn serve "$@" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
URL="http://${CAIRN_SERVER__BIND:-127.0.0.1:8080}"
for _ in $(seq 1 600); do
    curl -sf "$URL/readyz" >/dev/null && break
    kill -0 $SERVER 2>/dev/null || { echo "cairn serve exited" >&2; exit 1; }
    sleep 0.1
done

# A member key for the demonstration, created once and kept beside the database.
DATA="${CAIRN_DATA_DIR:-cairn-data}"
if [ ! -s "$DATA/demo.key" ]; then
    (umask 077; "$BIN"/cairn "$@" keys create --tenant default --role member --name demo > "$DATA/demo.key")
fi
export CAIRN_URL="$URL" CAIRN_API_KEY="$(cat "$DATA/demo.key")"

echo
echo "== cairn ingest examples/handbook --collection handbook"
"$BIN"/cairn ingest examples/handbook --collection handbook
QUESTION="What is the daily meal allowance within Europe?"
echo
echo "== cairn ask --collection handbook \"$QUESTION\""
"$BIN"/cairn ask --collection handbook "$QUESTION"

# An agent that answers from the same collection with a tool call a person approves
# (examples/agents/handbook.json; the definition names the collection by id).
COLLECTION="$(curl -sf "$URL/v1/collections" -H "Authorization: Bearer $CAIRN_API_KEY" | python3 -c \
    'import json, sys; print(next(c["id"] for c in json.load(sys.stdin)["data"] if c["name"] == "handbook"))')"
echo
echo "== cairn agents create examples/agents/handbook.json"
sed "s/COLLECTION_ID/$COLLECTION/" examples/agents/handbook.json | "$BIN"/cairn agents create -
echo
echo "== cairn run handbook \"$QUESTION\"    (the search waits for a person: 'a' approves it)"
echo a | "$BIN"/cairn run handbook "$QUESTION"
echo
echo "Cairn is serving on $URL (Ctrl-C to stop). The demo key is in $DATA/demo.key; try:"
echo "  CAIRN_API_KEY=\$(cat $DATA/demo.key) $BIN/cairn ask --collection handbook \"How soon must I submit an expense claim?\""
echo "  CAIRN_API_KEY=\$(cat $DATA/demo.key) $BIN/cairn run handbook \"What does the travel policy say about flights?\""
wait $SERVER
