#!/usr/bin/env bash
# Sidecar memory with many endpoints (issue 16: RSS < 100 MB with 100 000 endpoints): a release
# `outboxd run` on a throwaway PostgreSQL holding ENDPOINTS endpoints, one per tenant, each
# subscribed to `*` (the bench's "100 000 endpoints (tenants)" shape). Every endpoint points at
# 127.0.0.1:9 (allowed loopback, nothing listening), so each delivery fails fast and is
# recorded and retried: routing, claiming, workers, recording and the circuit breakers all
# run. EVENTS events (tenants t1..tEVENTS) are published evenly over the first half of SECS.
# The catalog is reloaded by its 30-s timer and by the configuration changes the script makes
# at CHANGES (seconds after start; each bumps outbox.config_version like an admin's edit).
# VmRSS and VmHWM are printed every SAMPLE seconds, then a summary line:
#
#   rss: start=<MB after the first catalog load> steady=<max VmRSS in the last third>
#        end=<last VmRSS> hwm=<VmHWM> (MB)
#
#   cargo build --release --bin outboxd
#   tools/bench/rss.sh [--bin target/release/outboxd]
#
# Settings (environment): ENDPOINTS=100000 EVENTS=20000 SECS=120 SAMPLE=5 CHANGES="45 80",
# and any OUTBOXD_* / MALLOC_* for outboxd. Needs initdb/pg_ctl, psql, curl.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUTBOXD=target/release/outboxd
if [[ ${1:-} == --bin ]]; then OUTBOXD=$2; shift 2; fi
ENDPOINTS=${ENDPOINTS:-100000}
EVENTS=${EVENTS:-20000}
SECS=${SECS:-120}
SAMPLE=${SAMPLE:-5}
CHANGES=${CHANGES:-45 80}

# shellcheck source=tools/bench/throwaway_pg.sh
source "$HERE/throwaway_pg.sh"
cleanup() {
  [[ -n "${PUBPID:-}" ]] && kill "$PUBPID" 2>/dev/null || true
  [[ -n "${OPID:-}" ]] && kill "$OPID" 2>/dev/null && wait "$OPID" 2>/dev/null || true
  throwaway_pg_stop
}
trap cleanup EXIT
throwaway_pg_start -c fsync=off -c synchronous_commit=off
ADMIN=$(( PGPORT + 1 ))
q() { psql -qAtX "$URL" -c "$1"; }
# Two set-based statements, not add_endpoint per row: faster. (Before migration V18 each
# statement bumped outbox.config_version, and 200 000 add_endpoint calls in one transaction
# took minutes; now one bump per transaction, linear.)
q "INSERT INTO outbox.endpoints (url, tenant_id, secrets)
   SELECT 'http://127.0.0.1:9/hook', 't' || i, ARRAY[outbox.new_secret()]
     FROM generate_series(1, $ENDPOINTS) AS i" >/dev/null
q "INSERT INTO outbox.subscriptions (endpoint_id, event_types)
   SELECT id, '{*}' FROM outbox.endpoints" >/dev/null
echo "# $(date -u '+%F %T') UTC, $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?'), $OUTBOXD"
echo "# $ENDPOINTS endpoints (one per tenant, '*'), $EVENTS events, ${SECS}s, config changes at ${CHANGES}s; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# env: $(env | grep -E '^(OUTBOXD_|MALLOC_)' | tr '\n' ' ')"
DATABASE_URL="$URL" OUTBOXD_LISTEN=127.0.0.1:$ADMIN OUTBOXD_ALLOW_NETWORKS=127.0.0.0/8 \
  OUTBOXD_LOG=${OUTBOXD_LOG:-warn} "$OUTBOXD" run >"$DIR/outboxd.log" 2>&1 &
OPID=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
START=$(date +%s)

# Publisher: EVENTS events over the first half of the run, one transaction per second.
(
  ticks=$(( SECS / 2 )); per=$(( (EVENTS + ticks - 1) / ticks )); done=0
  while (( done < EVENTS )); do
    n=$(( EVENTS - done < per ? EVENTS - done : per ))
    q "SELECT count(outbox.publish('order.paid', jsonb_build_object('n', i), 'k' || i, 't' || i))
         FROM generate_series($done + 1, $done + $n) AS i" >/dev/null
    done=$(( done + n )); sleep 1
  done
) &
PUBPID=$!

kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$OPID/status"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "t_s  rss_mb  hwm_mb"
samples=()
changes=($CHANGES)
while :; do
  t=$(( $(date +%s) - START ))
  (( t > SECS )) && break
  if [[ ${#changes[@]} -gt 0 && $t -ge ${changes[0]} ]]; then
    q "UPDATE outbox.endpoints SET max_in_flight = max_in_flight WHERE id = 1" >/dev/null
    echo "# ${t}s: configuration changed (one endpoint updated)"
    changes=("${changes[@]:1}")
  fi
  rss=$(kb VmRSS); hwm=$(kb VmHWM)
  samples+=("$rss")
  printf '%-4s %-7s %s\n' "$t" "$(mb "$rss")" "$(mb "$hwm")"
  sleep "$SAMPLE"
done
n=${#samples[@]}; third=$(( n / 3 )); steady=0
for s in "${samples[@]:$(( n - third ))}"; do (( s > steady )) && steady=$s; done
delivered=$(q "SELECT count(*) FROM outbox.attempts")
echo "# attempts recorded: $delivered; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rss: start=$(mb "${samples[0]}") steady=$(mb "$steady") end=$(mb "${samples[$(( n - 1 ))]}") hwm=$(mb "$(kb VmHWM)") (MB)"
