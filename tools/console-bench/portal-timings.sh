#!/usr/bin/env bash
# The tenant portal's pages over HTTP, 20 requests each (p50, p95), through an outboxd started
# on the console benchmark's dataset (tools/console-bench/run.sh --build-only), for tenants t001
# (1/150 of the events) and t000 (a third). OUTBOXD_BIN=… picks the binary.
set -euo pipefail
URL=${URL:-postgres://postgres@127.0.0.1:${OUTBOXD_CONSOLE_BENCH_PORT:-55610}/outboxd_console_bench}
PORT=59377
TOKEN=portal-bench-admin-token-0123456789
DATABASE_URL=$URL OUTBOXD_LISTEN=127.0.0.1:$PORT OUTBOXD_ADMIN_TOKEN=$TOKEN \
  OUTBOXD_PORTAL_KEY=portal-bench-key-0123456789abcdef0123 ${OUTBOXD_BIN:-target/release/outboxd} run > /tmp/portal-http-outboxd.log 2>&1 &
PID=$!
trap 'kill $PID' EXIT
for i in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.2; done
for t in t001 t000; do
  link=$(curl -sf -X POST http://127.0.0.1:$PORT/v1/portal-links -H "authorization: Bearer $TOKEN" \
         -H 'content-type: application/json' -d "{\"tenant_id\": \"$t\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
  jar=/tmp/portal-jar-$t; rm -f $jar
  curl -s -c $jar -o /dev/null "$link"
  ep=$(psql -X -At -d $URL -c "SELECT min(id) FROM outbox.endpoints WHERE tenant_id = '$t'")
  for page in "/ui/events" "/ui/events?status=dead" "/ui/events?status=retrying" "/ui/events?q=type%3Aorder.*" "/ui/events?q=type%3Aorder.paid" "/ui/endpoints" "/ui/endpoints/$ep" "/ui/events?endpoint=$ep&status=dead"; do
    times=$(for i in $(seq 1 20); do curl -s -b $jar -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$PORT$page"; done)
    codes=$(echo "$times" | awk '{print $1}' | sort -u | tr '\n' ' ')
    p95=$(echo "$times" | awk '{print $2*1000}' | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.95)]}')
    p50=$(echo "$times" | awk '{print $2*1000}' | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.5)]}')
    printf '%-5s %-45s status %s p50 %6.1f ms  p95 %6.1f ms\n' "$t" "$page" "$codes" "$p50" "$p95"
  done
done
