#!/usr/bin/env bash
# Latency from an acknowledged table write to the start of the stream
# function, with the queue path (send to function start) measured in the same
# run as the baseline: `table-put` writes COUNT items at RATE/s through the
# admin API and notes when each write was acknowledged; the `tables` test
# component, triggered by the table's change stream, prints each record as
# it starts handling it, and the server's log line carries the time. Then
# `queue-send` does the same through a queue trigger running `events`.
# p50/p99 of both, and their ratio, are printed.
#
#   bench/stream-latency.sh                   # 2000 writes at 200/s
#   COUNT=5000 RATE=1000 bench/stream-latency.sh
#   STORE=postgres bench/stream-latency.sh    # state in a private PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-2000}
RATE=${RATE:-200}

cargo build --release --locked -p nimbus-cli -p nimbus-bench
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example tables --example events)
WORK=$(mktemp -d)
STORE_ARGS=()
if [ "${STORE:-sqlite}" = postgres ]; then
  . bench/lib/postgres.sh
  start_private_postgres "$WORK/pg"
  as_pg psql -q -h "$SOCK" -d postgres -c "CREATE DATABASE nimbus"
  STORE_ARGS=(--store "postgres:///nimbus?host=$SOCK&user=postgres")
fi
trap 'kill $(jobs -p) 2>/dev/null || true; ${PG_STOP:-true} >/dev/null 2>&1; rm -rf "$WORK"' EXIT
PROGRAMS="$PWD/tests/programs/target/wasm32-wasip2/release/examples"
cat > "$WORK/nimbus.toml" <<TOML
[app]
name = "streamlatency"

[function.consumer]
component = "$PROGRAMS/tables.wasm"
timeout_ms = 5000

[function.worker]
component = "$PROGRAMS/events.wasm"
timeout_ms = 5000

[table.orders]
partition_key = "customer"
stream = "new_image"

[queue.jobs]

[[trigger.stream]]
table = "orders"
function = "consumer"
batch_size = 1
max_concurrency = 4

[[trigger.queue]]
queue = "jobs"
function = "worker"
batch_size = 1
max_concurrency = 4
TOML
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# Server on core 0, writer on core 1, as in bench/run.sh.
NIMBUS_LOG=info taskset -c 0 ./target/release/nimbus up "$WORK/nimbus.toml" --listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 --data-dir "$WORK/data" "${STORE_ARGS[@]}" >"$WORK/out" 2>"$WORK/log" &
until grep -q "admin listening" "$WORK/out"; do sleep 0.05; done
ADMIN=$(awk '/admin listening on/ {print $4}' "$WORK/out")
taskset -c 1 ./target/release/table-put "$ADMIN" orders "$COUNT" "$RATE" >"$WORK/table-acks"
until [ "$(grep -c 'stream seq=.* key=lat-' "$WORK/log")" -ge "$(wc -l <"$WORK/table-acks")" ]; do sleep 0.1; done
taskset -c 1 ./target/release/queue-send "$ADMIN" jobs "$COUNT" "$RATE" >"$WORK/queue-acks"
until [ "$(grep -c 'handled data=lat-' "$WORK/log")" -ge "$(wc -l <"$WORK/queue-acks")" ]; do sleep 0.1; done
python3 - "$WORK/table-acks" "$WORK/queue-acks" "$WORK/log" "$RATE" <<'PY'
import sys, re, datetime
def stamp(text):
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() * 1e6
stream_started, queue_started = {}, {}
for line in open(sys.argv[3]):
    m = re.match(r"(\S+Z) .*stream seq=\d+ kind=\S+ key=(lat-\d+)/", line)
    if m and m.group(2) not in stream_started:
        stream_started[m.group(2)] = stamp(m.group(1))
    m = re.match(r"(\S+Z) .*handled data=(lat-\d+) ", line)
    if m and m.group(2) not in queue_started:
        queue_started[m.group(2)] = stamp(m.group(1))
def summary(acks_file, started):
    acks = dict(line.split() for line in open(acks_file))
    lat = sorted((started[k] - int(v)) / 1000 for k, v in acks.items() if k in started)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    return len(lat), pick(0.50), pick(0.99), lat[-1]
rate = sys.argv[4]
t = summary(sys.argv[1], stream_started)
q = summary(sys.argv[2], queue_started)
print(f"table write -> stream function: n={t[0]} rate={rate}/s p50_ms={t[1]:.2f} p99_ms={t[2]:.2f} max_ms={t[3]:.2f}")
print(f"queue send  -> queue function:  n={q[0]} rate={rate}/s p50_ms={q[1]:.2f} p99_ms={q[2]:.2f} max_ms={q[3]:.2f}")
print(f"stream/queue ratio: p50 {t[1]/q[1]:.2f}x p99 {t[2]/q[2]:.2f}x")
PY
