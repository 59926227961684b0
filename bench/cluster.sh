#!/usr/bin/env bash
# Nimbus nodes sharing one private PostgreSQL, all on this machine:
#   1. queue-trigger throughput with 1, 2 and 3 nodes (a queue filled first,
#      then drained by every node's workers: messages handled per second,
#      from the moment the last node serves until the queue is empty);
#   2. HTTP requests/s with 1, 2 and 3 nodes (one wrk per node, at once);
#   3. lane failover: SIGKILL the node holding half a stream trigger's lanes
#      and time until the survivor handles the next record of those lanes;
#   4. a send through node A to the function starting on node B (queue
#      trigger on both; latency of the messages node B handled).
# Every node and PostgreSQL share this machine's cores: the figures show what
# the nodes cost each other here, not what separate machines would give.
#
#   bench/cluster.sh                      # defaults below
#   MESSAGES=40000 ROUNDS=8 bench/cluster.sh
#   PARTS=failover ROUNDS=10 bench/cluster.sh   # the failover measurement alone
set -euo pipefail
cd "$(dirname "$0")/.."
export MESSAGES=${MESSAGES:-40000} HTTP_S=${HTTP_S:-8}
export ROUNDS=${ROUNDS:-6} LEASE_MS=${LEASE_MS:-3000} COUNT=${COUNT:-2000} RATE=${RATE:-200}

command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cargo build --release --locked -p nimbus-cli -p nimbus-bench
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example events --example hello)
export EVENTS=$PWD/tests/programs/target/wasm32-wasip2/release/examples/events.wasm
export HELLO=$PWD/tests/programs/target/wasm32-wasip2/release/examples/hello.wasm
export NIMBUS=$PWD/target/release/nimbus QUEUE_SEND=$PWD/target/release/queue-send
WORK=$(mktemp -d)
export WORK
. bench/lib/postgres.sh
start_private_postgres "$WORK/pg"
export SOCK
trap 'pkill -f "$WORK" 2>/dev/null || true; $PG_STOP >/dev/null 2>&1; rm -rf "$WORK"' EXIT
createdb() { as_pg psql -q -h "$SOCK" -d postgres -c "CREATE DATABASE $1"; }
export -f createdb as_pg
export PGBIN
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
python3 bench/cluster.py
