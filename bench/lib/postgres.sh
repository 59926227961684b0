# Sourced by benchmarks: starts a private PostgreSQL (fsync=on,
# synchronous_commit=on, a unix socket only) in $1, stopped when the script
# exits. Sets PGBIN, SOCK and as_pg (runs a command as the postgres user).
start_private_postgres() {
  local dir=$1
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    apt-get install -y -qq postgresql >/dev/null
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  local data=$dir/pgdata
  SOCK=$dir/pgsock
  mkdir -p "$data" "$SOCK"
  chown -R postgres:postgres "$dir"
  # The postgres user must reach it (mktemp makes 0700 directories).
  chmod o+x "$(dirname "$dir")"
  as_pg() { runuser -u postgres -- "$@"; }
  as_pg "$PGBIN/initdb" -D "$data" -A trust >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$data" -l "$dir/pg.log" -w start \
    -o "-c listen_addresses='' -c unix_socket_directories='$SOCK' -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_preload_libraries=pg_stat_statements,auto_explain -c auto_explain.log_min_duration=4" >/dev/null
  PG_STOP="as_pg $PGBIN/pg_ctl -D $data -m fast stop"
}
