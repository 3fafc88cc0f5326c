#!/usr/bin/env bash
# The console benchmark (BENCHMARKS.md, "Console"): every search and page of the event log on
# 10 M events and 25 M deliveries, timed through a running outboxd, with the plans of every
# query it ran (EXPLAIN ANALYZE, BUFFERS) written to docs/explain/console/.
#
#   cargo build --release --bin outboxd
#   tools/console-bench/run.sh [--events N] [--requests N] [--rebuild] [--no-explain] [--build-only]
#
# The dataset (tools/console-bench/dataset.sql) takes a while to build (about 25 minutes on 2
# busy cores), so it is kept: a PostgreSQL 15 cluster in $OUTBOXD_CONSOLE_BENCH_DIR (default
# /tmp/outboxd-console-bench, port 55610) stays up with the database after the run, and the
# next run reuses it when it holds the same number of events (--rebuild builds it again).
# Stop it with: pg_ctl -D "$OUTBOXD_CONSOLE_BENCH_DIR/data" stop (as the postgres user when
# root). Server settings: shared_buffers 1GB, work_mem 16MB, fsync off (read-mostly here).
set -euo pipefail
cd "$(dirname "$0")/../.."

EVENTS=10000000
REQUESTS=40
REBUILD=0
EXPLAIN=1
BUILD_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    --no-explain) EXPLAIN=0; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

DIR=${OUTBOXD_CONSOLE_BENCH_DIR:-/tmp/outboxd-console-bench}
PORT=${OUTBOXD_CONSOLE_BENCH_PORT:-55610}
BIN=${OUTBOXD_BIN:-$PWD/target/release/outboxd}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
DB=outboxd_console_bench
URL="postgres://postgres@127.0.0.1:$PORT/$DB"
TOKEN=console-bench-admin-token-0123456789
[ -x "$BIN" ] || { echo "build it first: cargo build --release --bin outboxd ($BIN)" >&2; exit 2; }

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$URL" "$@"; }

if [ ! -d "$DIR/data" ]; then
  echo "== a cluster in $DIR (kept after the run)"
  mkdir -p "$DIR"; [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
  as_pg "$PGBIN/initdb" -D "$DIR/data" -U postgres --auth=trust -N -E UTF8 --locale=C >/dev/null
  cat >> "$DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
shared_buffers = 1GB
work_mem = 16MB
maintenance_work_mem = 1GB
effective_cache_size = 8GB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 16GB
checkpoint_timeout = 30min
max_connections = 100
logging_collector = off
EOF
fi
if ! as_pg "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
fi

have=$(psql -X -tA -d "postgres://postgres@127.0.0.1:$PORT/postgres" \
  -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")
if [ "$have" = 1 ] && [ "$REBUILD" = 0 ]; then
  count=$(sql -tA -c "SELECT coalesce(max(id), 0) FROM outbox.events" 2>/dev/null || echo 0)
  [ "$count" = "$EVENTS" ] || REBUILD=1
else
  REBUILD=1
fi

if [ "$REBUILD" = 1 ]; then
  echo "== building the dataset: $EVENTS events (this takes a while)"
  psql -X -q -d "postgres://postgres@127.0.0.1:$PORT/postgres" -c "DROP DATABASE IF EXISTS $DB" \
    -c "CREATE DATABASE $DB"
  DATABASE_URL=$URL "$BIN" migrate
  # Secondary indexes go, and come back after the load (timed: what each costs to build).
  sql -c "CREATE TABLE public.bench_indexes AS
            SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
              FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
             WHERE t.relnamespace = 'outbox'::regnamespace
               AND t.relname IN ('events', 'deliveries', 'attempts') AND NOT i.indisprimary"
  sql -tA -c "SELECT 'DROP INDEX ' || name || ';' FROM public.bench_indexes" | sql
  time sql -v events="$EVENTS" -f tools/console-bench/dataset.sql
  echo "== building the indexes"
  sql -tA -c "SELECT name || E'\t' || def FROM public.bench_indexes ORDER BY name" |
    while IFS=$'\t' read -r name def; do
      t0=$(date +%s%N)
      sql -c "SET maintenance_work_mem = '1GB'; $def"
      printf '  %-40s %8d ms\n' "$name" $(( ($(date +%s%N) - t0) / 1000000 ))
    done | tee "$DIR/index-build-times.txt"
  echo "== VACUUM ANALYZE"
  time sql -c "VACUUM (ANALYZE) outbox.events" -c "VACUUM (ANALYZE) outbox.deliveries" \
    -c "VACUUM (ANALYZE) outbox.attempts" -c "VACUUM (ANALYZE) outbox.lanes" \
    -c "VACUUM (ANALYZE) outbox.event_types" -c "VACUUM (ANALYZE) outbox.endpoints"
fi
sql -tA -c "SELECT format('dataset: %s events, %s deliveries, %s attempts, %s endpoints; database %s',
                   (SELECT count(*) FROM outbox.events), (SELECT count(*) FROM outbox.deliveries),
                   (SELECT count(*) FROM outbox.attempts), (SELECT count(*) FROM outbox.endpoints),
                   pg_size_pretty(pg_database_size(current_database())))"

[ "$BUILD_ONLY" = 1 ] && exit 0

LISTEN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_outboxd() {
  DATABASE_URL=$URL OUTBOXD_ADMIN_TOKEN=$TOKEN OUTBOXD_LISTEN=127.0.0.1:$LISTEN_PORT \
    OUTBOXD_RETENTION_SUCCEEDED=3650d OUTBOXD_RETENTION_DEAD=3650d OUTBOXD_LOG=warn \
    "$BIN" run >"$DIR/outboxd.log" 2>&1 &
  OUTBOXD_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$LISTEN_PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "outboxd did not become ready; see $DIR/outboxd.log" >&2; exit 1
}
stop_outboxd() { kill "$OUTBOXD_PID"; wait "$OUTBOXD_PID" || true; }
trap 'kill "${OUTBOXD_PID:-0}" 2>/dev/null || true' EXIT

if [ "$EXPLAIN" = 1 ]; then
  echo "== plans (auto_explain on every statement of one request each) → docs/explain/console/"
  sql -c "ALTER DATABASE $DB SET session_preload_libraries = 'auto_explain'" \
      -c "ALTER DATABASE $DB SET auto_explain.log_min_duration = 0" \
      -c "ALTER DATABASE $DB SET auto_explain.log_analyze = on" \
      -c "ALTER DATABASE $DB SET auto_explain.log_buffers = on" \
      -c "ALTER DATABASE $DB SET auto_explain.log_timing = on"
  start_outboxd
  python3 tools/console-bench/timings.py --base "http://127.0.0.1:$LISTEN_PORT" --token "$TOKEN" \
    --db "$URL" --explain-log "$DIR/server.log" --explain-out docs/explain/console
  stop_outboxd
  sql -c "ALTER DATABASE $DB RESET ALL"
fi

echo "== timings: $REQUESTS requests per page, one at a time"
start_outboxd
python3 tools/console-bench/timings.py --base "http://127.0.0.1:$LISTEN_PORT" --token "$TOKEN" \
  --db "$URL" --requests "$REQUESTS" | tee "$DIR/timings.md"
stop_outboxd
