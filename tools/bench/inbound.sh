#!/usr/bin/env bash
# Inbound webhooks, accept path (issue 12): wrk posts GitHub-signed 1 KiB bodies to
# `POST /in/gh` of a release `outboxd` on a throwaway PostgreSQL with fsync ON, then the floor
# of the same run: the same listener answering 404 for an unknown source (HTTP parsing and
# the answer, no verification, no database). Prints accepted requests/s, wrk's latency
# percentiles, the non-2xx count, and checks that every 2xx is stored.
#
#   cargo build --release --bin outboxd
#   tools/bench/inbound.sh [target/release/outboxd] [seconds] [connections] [rate]
#
# With `rate` (requests/s), each connection waits connections/rate seconds between its
# requests (wrk's delay(): an approximate pace, minus the answers' own time), for the
# acknowledgement latency at that load rather than at saturation.
#
# Needs wrk, initdb/pg_ctl/postgres, psql, openssl. Not part of `outboxd-bench` yet (its
# figures and the burst and latency-at-rate bars are not measured by it).
set -euo pipefail
OUTBOXD=${1:-target/release/outboxd}
SECS=${2:-15}
CONNS=${3:-64}
RATE=${4:-}
DIR=$(mktemp -d)
# initdb refuses root: then PostgreSQL runs as the `postgres` OS user (as embedded_pg does).
AS=()
if [[ $(id -u) == 0 ]]; then AS=(runuser -u postgres --); chown postgres "$DIR"; fi
PGPORT=$(( 20000 + RANDOM % 10000 ))
ADMIN=$(( PGPORT + 1 )); INBOUND=$(( PGPORT + 2 ))
cleanup() {
  [[ -n "${OPID:-}" ]] && kill "$OPID" 2>/dev/null && wait "$OPID" 2>/dev/null || true
  "${AS[@]}" pg_ctl -D "$DIR/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
"${AS[@]}" initdb -D "$DIR/pg" -U postgres -A trust >/dev/null
"${AS[@]}" pg_ctl -D "$DIR/pg" -l "$DIR/pg.log" -w \
  -o "-p $PGPORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" start >/dev/null
URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
"$OUTBOXD" migrate --database-url "$URL" >/dev/null
SECRET=bench-github-secret
psql -qAt "$URL" -c "SELECT outbox.add_source('gh', 'github', '$SECRET')" >/dev/null
psql -qAt "$URL" -c "SHOW fsync" | sed 's/^/fsync: /'
DATABASE_URL="$URL" OUTBOXD_LISTEN=127.0.0.1:$ADMIN OUTBOXD_INBOUND_LISTEN=127.0.0.1:$INBOUND \
  OUTBOXD_LOG=warn "$OUTBOXD" run >"$DIR/outboxd.log" 2>&1 &
OPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
BODY="{\"p\":\"$(head -c 1016 /dev/zero | tr '\0' 'a')\"}"
SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')
cat > "$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-hub-signature-256"] = "sha256=$SIG"
LUA
if [[ -n "$RATE" ]]; then
  echo "function delay() return $(( 1000 * CONNS / RATE )) end" >> "$DIR/post.lua"
fi
echo "== accept: POST /in/gh, ${#BODY}-byte body, signature verified, $CONNS connections, ${SECS}s${RATE:+, paced to about $RATE/s}"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$DIR/post.lua" "http://127.0.0.1:$INBOUND/in/gh" | tee "$DIR/accept.txt"
echo "== floor: the same requests to /in/unknown (404: no verification, no database)"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$DIR/post.lua" "http://127.0.0.1:$INBOUND/in/unknown" | tee "$DIR/floor.txt"
TOTAL=$(grep -E '^ +[0-9]+ requests in' "$DIR/accept.txt" | awk '{print $1}')
NON2XX=$(grep -E 'Non-2xx' "$DIR/accept.txt" | awk '{print $NF}' || true)
STORED=$(psql -qAt "$URL" -c "SELECT count(*) FROM outbox.inbound_requests")
echo "requests answered: $TOTAL, non-2xx: ${NON2XX:-0}, stored: $STORED"
if (( STORED < TOTAL - ${NON2XX:-0} )); then echo "FAIL: fewer stored than acknowledged"; exit 1; fi
echo "every acknowledged request is stored"
