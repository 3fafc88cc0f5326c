#!/usr/bin/env bash
# Inbound webhooks benchmark (issue 12): a release `outboxd` on a throwaway PostgreSQL with
# fsync ON and synchronous_commit ON, its inbound listener on loopback, source `gh` (GitHub
# scheme: every request's HMAC-SHA256 is verified), 1 KiB JSON bodies. Steps, each printing one
# line of figures (`name: key=value …`) for BENCHMARKS.md:
#
#   saturate  wrk, CONNS connections as fast as answered, SECS seconds: accepted/s, p50/p99
#             of the acknowledgement, CPU µs (outboxd, PostgreSQL) and WAL bytes per request.
#   rate      the same at about RATE requests/s (RATE_CONNS connections, each pausing between
#             its requests: wrk's delay(), calibrated by a 3-second run so the pause plus the
#             answer time make the pace): the acknowledgement latency at that load rather than
#             at saturation.
#   floor     the same requests to /in/unknown at saturation (404: HTTP parsing and the answer,
#             no verification, no database): what the listener and wrk cost alone.
#   burst     BURST requests with unique bodies and delivery ids from BURST_CONNS connections
#             at once (tools/bench/inbound_burst.py), relayed to a worker endpoint: every answer
#             2xx or a deliberate 429/503, every 2xx stored, relayed byte for byte and in order
#             per ordering key; relay throughput to the worker.
#
#   cargo build --release --bin outboxd
#   tools/bench/inbound.sh [--bin target/release/outboxd] [STEP…]     (default: all four)
#
# Settings (environment): SECS=15 CONNS=64 RATE=1000 RATE_CONNS=16 BURST=50000
# BURST_CONNS=200 BURST_KEYS=1000, and any OUTBOXD_INBOUND_* for outboxd (e.g.
# OUTBOXD_INBOUND_WRITERS); SETUP_SQL runs after the migration (experiments, e.g. a disabled
# trigger); PGSS=1 loads pg_stat_statements and prints the top statements at the end. Each
# step also prints what outboxd's PostgreSQL backends waited for (pg_stat_activity sampled every
# 10 ms: IO:WALSync is the fsync, LWLock:WALWrite waiting for another backend's flush, CPU is
# running). Exits 1 when a check fails (fewer stored than acknowledged, a burst
# failure). Needs wrk, initdb/pg_ctl, psql, openssl, python3.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUTBOXD=target/release/outboxd
if [[ ${1:-} == --bin ]]; then OUTBOXD=$2; shift 2; fi
STEPS=("$@")
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=(saturate rate floor burst)
SECS=${SECS:-15}
CONNS=${CONNS:-64}
RATE=${RATE:-1000}
RATE_CONNS=${RATE_CONNS:-16}
BURST=${BURST:-50000}
BURST_CONNS=${BURST_CONNS:-200}
BURST_KEYS=${BURST_KEYS:-1000}
TICK=$(getconf CLK_TCK)

# shellcheck source=tools/bench/throwaway_pg.sh
source "$HERE/throwaway_pg.sh"
cleanup() {
  [[ -n "${OPID:-}" ]] && kill "$OPID" 2>/dev/null && wait "$OPID" 2>/dev/null || true
  throwaway_pg_stop
}
trap cleanup EXIT
PG_CTL_EXTRA=(${PGSS:+-o "-c shared_preload_libraries=pg_stat_statements"})
throwaway_pg_start -c fsync=on -c synchronous_commit=on -c max_wal_size=4GB -c track_wal_io_timing=on
ADMIN=$(( PGPORT + 1 )); INBOUND=$(( PGPORT + 2 ))
SECRET=bench-github-secret
q() { psql -qAtX "$URL" -c "$1"; }
[[ -z ${SETUP_SQL:-} ]] || q "$SETUP_SQL" >/dev/null
q "SELECT outbox.add_source('gh', 'github', '$SECRET', ordering_key => '/customer')" >/dev/null
echo "# $(date -u '+%F %T') UTC, $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?'), $OUTBOXD"
echo "# PostgreSQL $(q 'SHOW server_version'): fsync=$(q 'SHOW fsync') synchronous_commit=$(q 'SHOW synchronous_commit') commit_delay=$(q 'SHOW commit_delay'); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# outboxd: $(env | grep -E '^OUTBOXD_INBOUND_' | tr '\n' ' ')"
DATABASE_URL="$URL" OUTBOXD_LISTEN=127.0.0.1:$ADMIN OUTBOXD_INBOUND_LISTEN=127.0.0.1:$INBOUND \
  OUTBOXD_ALLOW_NETWORKS=127.0.0.0/8 OUTBOXD_LOG=warn "$OUTBOXD" run >"$DIR/outboxd.log" 2>&1 &
OPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
PGPID=$(head -1 "$DIR/pg/postmaster.pid")

BODY="{\"customer\":\"c1\",\"p\":\"$(head -c 996 /dev/zero | tr '\0' 'a')\"}"
SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')
cat > "$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-github-event"] = "push"
wrk.headers["x-hub-signature-256"] = "sha256=$SIG"
LUA

# CPU ticks of a process and its reaped children (PostgreSQL: the postmaster, its live
# backends and auxiliary processes).
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local sum; sum=$(ticks "$PGPID")
  for p in $(pgrep -P "$PGPID"); do sum=$(( sum + $(ticks "$p") )); done
  echo "$sum"
}
# outboxd's own histograms: time of one batch's statement (commit included), and its size.
metric() { curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print 0}'; }
snapshot() { echo "$(ticks "$OPID") $(pg_ticks) $(q 'SELECT pg_current_wal_lsn()') $(q 'SELECT count(*) FROM outbox.inbound_requests') $(metric outboxd_inbound_commit_seconds_sum) $(metric outboxd_inbound_commit_seconds_count) $(q "SELECT wal_sync || ' ' || wal_sync_time FROM pg_stat_wal")"; }

# wrk, then one line of figures. $1 step name, $2 URL path, $3 connections, $4 lua script.
measure() {
  local name=$1 path=$2 conns=$3 script=$4
  read -r o0 p0 w0 s0 c0 b0 f0 ft0 <<<"$(snapshot)"
  # What outboxd's active backends wait for, sampled every 10 ms during the step.
  psql -qAtX "$URL" -c "CREATE TEMP TABLE w (t text); DO \$\$ BEGIN FOR i IN 1..$(( SECS * 100 )) LOOP
    PERFORM pg_stat_clear_snapshot();
    INSERT INTO w SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
     WHERE application_name = 'outboxd' AND state = 'active' AND pid <> pg_backend_pid();
    PERFORM pg_sleep(0.01); END LOOP; END \$\$;
    SELECT string_agg(t || '=' || n, ' ' ORDER BY n DESC) FROM (SELECT t, count(*) n FROM w GROUP BY t ORDER BY 2 DESC LIMIT 6) x" >"$DIR/$name.waits" &
  local sampler=$!
  wrk -t2 -c"$conns" -d"${SECS}s" --latency -s "$script" "http://127.0.0.1:$INBOUND$path" >"$DIR/$name.txt"
  wait "$sampler" || true
  read -r o1 p1 w1 s1 c1 b1 f1 ft1 <<<"$(snapshot)"
  local total non2xx ok secs p50 p99 wal stored
  total=$(awk '/requests in/ {print $1}' "$DIR/$name.txt")
  secs=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$DIR/$name.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$DIR/$name.txt"); non2xx=${non2xx:-0}
  ok=$(( total - non2xx ))
  p50=$(awk '$1 == "50%" {print $2}' "$DIR/$name.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$DIR/$name.txt")
  stored=$(( s1 - s0 ))
  wal=$(q "SELECT pg_wal_lsn_diff('$w1', '$w0')")
  local per=$(( total > 0 ? total : 1 ))
  echo "$name: connections=$conns seconds=$secs answered=$total 2xx=$ok non2xx=$non2xx per_second=$(awk -v n="$total" -v s="$secs" 'BEGIN {printf "%.0f", n / s}') p50=$p50 p99=$p99 stored=$stored outboxd_cpu_us_per_request=$(( (o1 - o0) * 1000000 / TICK / per )) postgres_cpu_us_per_request=$(( (p1 - p0) * 1000000 / TICK / per )) wal_bytes_per_request=$(( ${wal%.*} / per ))$(awk -v c="$c1" -v c0="$c0" -v b="$b1" -v b0="$b0" -v s="$stored" 'BEGIN {if (b > b0) printf " batches=%d mean_batch=%.1f mean_commit_ms=%.2f", b - b0, s / (b - b0), 1000 * (c - c0) / (b - b0)}')$(awk -v f="$f1" -v f0="$f0" -v t="$ft1" -v t0="$ft0" 'BEGIN {if (f > f0) printf " wal_fsyncs=%d mean_fsync_ms=%.2f", f - f0, (t - t0) / (f - f0)}')"
  echo "$name: outboxd backends waiting (samples every 10 ms): $(cat "$DIR/$name.waits")"
  grep -E 'Socket errors' "$DIR/$name.txt" | sed "s/^/$name: /" || true
  if [[ $path == /in/gh ]] && (( stored < ok )); then
    echo "FAIL $name: $ok acknowledged, $stored stored"; exit 1
  fi
}

for step in "${STEPS[@]}"; do
  case $step in
    saturate) measure saturate /in/gh "$CONNS" "$DIR/post.lua" ;;
    rate)
      # wrk's delay() is a pause between a connection's answer and its next request, so the
      # pace is RATE_CONNS / (delay + answer time). A 3-second calibration run at the naive
      # delay measures the answer time; the measured step then pauses that much less.
      naive=$(( 1000 * RATE_CONNS / RATE ))
      cp "$DIR/post.lua" "$DIR/rate.lua"
      echo "function delay() return $naive end" >>"$DIR/rate.lua"
      wrk -t2 -c"$RATE_CONNS" -d3s -s "$DIR/rate.lua" "http://127.0.0.1:$INBOUND/in/gh" >"$DIR/calibrate.txt"
      achieved=$(awk '/Requests\/sec/ {print $2}' "$DIR/calibrate.txt")
      pause=$(awk -v c="$RATE_CONNS" -v r="$RATE" -v a="$achieved" -v d="$naive" \
        'BEGIN {p = 1000 * c / r - (1000 * c / a - d); printf "%d", (p < 0 ? 0 : p + 0.5)}')
      cp "$DIR/post.lua" "$DIR/rate.lua"
      echo "function delay() return $pause end" >>"$DIR/rate.lua"
      echo "rate: pacing: naive pause ${naive} ms gave ${achieved}/s in 3 s; measured with ${pause} ms per connection"
      measure rate /in/gh "$RATE_CONNS" "$DIR/rate.lua" ;;
    floor) measure floor /in/unknown "$CONNS" "$DIR/post.lua" ;;
    burst)
      read -r o0 p0 w0 _ <<<"$(snapshot)"
      python3 "$HERE/inbound_burst.py" --url "http://127.0.0.1:$INBOUND/in/gh" --secret "$SECRET" \
        --database-url "$URL" --requests "$BURST" --connections "$BURST_CONNS" --keys "$BURST_KEYS"
      read -r o1 p1 w1 _ <<<"$(snapshot)"
      wal=$(q "SELECT pg_wal_lsn_diff('$w1', '$w0')")
      echo "burst: accept+relay outboxd_cpu_us_per_request=$(( (o1 - o0) * 1000000 / TICK / BURST )) postgres_cpu_us_per_request=$(( (p1 - p0) * 1000000 / TICK / BURST )) wal_bytes_per_request=$(( ${wal%.*} / BURST ))" ;;
    *) echo "unknown step $step (saturate, rate, floor, burst)" >&2; exit 64 ;;
  esac
done
if [[ -n ${PGSS:-} ]]; then
  q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  echo "# top statements by total time (pg_stat_statements, whole run):"
  psql -X "$URL" -c "SELECT calls, round(total_exec_time::numeric, 0) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12"
fi
