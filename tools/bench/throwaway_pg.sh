# Sourced by the bench's shell instruments (inbound.sh, rss.sh): a throwaway PostgreSQL cluster
# on a random loopback port, migrated by "$OUTBOXD".
#
#   throwaway_pg_start [-c setting=value ...]   # sets DIR, AS, PGPORT, URL; the caller's
#                                               # EXIT trap should call throwaway_pg_stop
#   throwaway_pg_stop
#
# initdb refuses root: then PostgreSQL runs as the `postgres` OS user (as embedded_pg does).
# Extra `pg_ctl -o` words (a second `-o "..."`) may follow in PG_CTL_EXTRA.

throwaway_pg_start() {
  DIR=$(mktemp -d)
  AS=()
  if [[ $(id -u) == 0 ]]; then AS=(runuser -u postgres --); chown postgres "$DIR"; fi
  PGPORT=$(( 20000 + RANDOM % 10000 ))
  "${AS[@]}" initdb -D "$DIR/pg" -U postgres -A trust >/dev/null
  "${AS[@]}" pg_ctl -D "$DIR/pg" -l "$DIR/pg.log" -w \
    -o "-p $PGPORT -k $DIR -c listen_addresses=127.0.0.1 $*" "${PG_CTL_EXTRA[@]}" start >/dev/null
  URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
  "$OUTBOXD" migrate --database-url "$URL" >/dev/null 2>&1
}

throwaway_pg_stop() {
  [[ -n "${DIR:-}" ]] || return 0
  "${AS[@]}" pg_ctl -D "$DIR/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
