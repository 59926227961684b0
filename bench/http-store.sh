#!/usr/bin/env bash
# HTTP requests/s of a function that touches no store (the `hello`
# component), with Nimbus's state in SQLite and in a private PostgreSQL,
# interleaved in one run: the store choice should not change it (each
# invocation's history record still goes to the store, in batches). Server on
# core 0, wrk on core 1, as in bench/run.sh.
#
#   bench/http-store.sh                    # 2 rounds of 10 s per store
#   DURATION=20 ROUNDS=3 bench/http-store.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-16}

command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cargo build --release --locked -p nimbus-cli
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example hello)
HELLO=$PWD/tests/programs/target/wasm32-wasip2/release/examples/hello.wasm
WORK=$(mktemp -d)
. bench/lib/postgres.sh
start_private_postgres "$WORK/pg"
trap 'kill $(jobs -p) 2>/dev/null || true; $PG_STOP >/dev/null 2>&1; rm -rf "$WORK"' EXIT
cat > "$WORK/nimbus.toml" <<TOML
[app]
name = "httpstore"

[function.hello]
component = "$HELLO"
max_concurrency = 1000

[[trigger.http]]
route = "/..."
function = "hello"
auth = "public"
TOML
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

run() { # STORE ROUND: serves, loads, prints requests/s
  local store=$1 round=$2 args=()
  if [ "$store" = postgres ]; then
    as_pg psql -q -h "$SOCK" -d postgres -c "CREATE DATABASE h$round"
    args=(--store "postgres:///h$round?host=$SOCK&user=postgres")
  fi
  taskset -c 0 ./target/release/nimbus up "$WORK/nimbus.toml" --listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --data-dir "$WORK/data-$store-$round" "${args[@]}" \
    >"$WORK/out" 2>"$WORK/log" &
  local pid=$!
  until grep -q "gateway listening" "$WORK/out"; do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
    sleep 0.05
  done
  local url
  url=$(awk '/gateway listening on/ {print $4}' "$WORK/out")
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "$url/bench" >/dev/null   # warm-up
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url/bench" >"$WORK/wrk"
  kill -TERM "$pid"; wait "$pid" || true
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk"
}

declare -A results
for round in $(seq 1 "$ROUNDS"); do
  for store in sqlite postgres; do
    rps=$(run "$store" "$round")
    echo "round $round $store: $rps requests/s"
    results[$store]+="$rps "
  done
done
python3 - "${results[sqlite]}" "${results[postgres]}" "$CONNECTIONS" "$DURATION" <<'PY'
import sys, statistics
sqlite = [float(x) for x in sys.argv[1].split()]
pg = [float(x) for x in sys.argv[2].split()]
c, d = sys.argv[3], sys.argv[4]
s, p = statistics.median(sqlite), statistics.median(pg)
print()
print(f"| hello over HTTP (wrk -c{c}, {d} s, median of {len(sqlite)}) | requests/s | x SQLite |")
print("| --- | ---: | ---: |")
print(f"| state in SQLite | {s:.0f} | 1.00 |")
print(f"| state in PostgreSQL | {p:.0f} | {p/s:.2f} |")
PY
