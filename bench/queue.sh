#!/usr/bin/env bash
# Durable queue throughput, in one run on one disk: the raw fsync rate, the
# disk's group-commit ceiling for these clients (queue-bench's `ceiling`
# module: the same load with no database and clients that cost nothing), Nimbus's
# SQLite store (every answer after its commit is synced, group commit), a plain PostgreSQL queue
# (FOR UPDATE SKIP LOCKED, synchronous_commit=on) driven by pgbench, and
# Nimbus's PostgreSQL store on the same server. Each message is three durable
# steps in all: send, receive (lease), delete; 1 KiB bodies.
#
#   bench/queue.sh                       # 10 s per measurement, 16 clients
#   DURATION=30 CLIENTS=64 bench/queue.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The table below says every answer waits for its fsync: queue-bench's relaxed
# mode is for profiling the writer thread by hand, never for this comparison.
unset QUEUE_BENCH_DURABILITY
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-16}
# On the project's disk: a tmpfs would make fsync free and the figures meaningless.
DIR=${BENCH_DIR:-$PWD/target/bench-queue}
rm -rf "$DIR"
mkdir -p "$DIR"

cargo build --release --locked -p nimbus-bench --bin queue-bench
echo "== nimbus store ($CLIENTS clients, ${DURATION}s)"
./target/release/queue-bench "$DIR/nimbus" "$DURATION" "$CLIENTS" | tee "$DIR/nimbus.txt"

. bench/lib/postgres.sh
start_private_postgres "$DIR"
trap '$PG_STOP >/dev/null' EXIT
as_pg psql -q -h "$SOCK" -d postgres -c \
  "CREATE TABLE q (id bigserial PRIMARY KEY, body text NOT NULL, visible_at timestamptz NOT NULL DEFAULT now(), receipt uuid)"
cat > "$DIR/cycle.sql" <<'SQL'
INSERT INTO q (body) VALUES (repeat('x', 1024));
WITH picked AS (UPDATE q SET visible_at = now() + interval '30 seconds', receipt = gen_random_uuid() WHERE id = (SELECT id FROM q WHERE visible_at <= now() ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id) SELECT COALESCE((SELECT id FROM picked), 0) AS mid \gset
DELETE FROM q WHERE id = :mid;
SQL
chown postgres "$DIR/cycle.sql"
echo "== postgresql $("$PGBIN/postgres" --version | awk '{print $3}') ($CLIENTS clients, ${DURATION}s)"
# A cycle whose receive found every row locked by others deletes nothing, so
# count messages as rows inserted minus rows left over.
PG_OUT=$(as_pg "$PGBIN/pgbench" -n -h "$SOCK" -c "$CLIENTS" -j 2 -T "$DURATION" -f "$DIR/cycle.sql" postgres)
CYCLES=$(awk '/number of transactions actually processed/ {print $NF; exit}' <<<"$PG_OUT")
LEFT=$(as_pg psql -tA -h "$SOCK" -d postgres -c "SELECT count(*) FROM q")
PG_TPS=$(python3 -c "print(round(($CYCLES - $LEFT) / $DURATION))")
echo "cycles=$CYCLES left_in_queue=$LEFT messages_per_s=$PG_TPS"

echo "== nimbus postgresql store ($CLIENTS clients, ${DURATION}s)"
as_pg psql -q -h "$SOCK" -d postgres -c "CREATE DATABASE nimbus_bench"
./target/release/queue-bench "$DIR/nimbus-pg" "$DURATION" "$CLIENTS" \
  "postgres:///nimbus_bench?host=$SOCK&user=postgres" | tee "$DIR/nimbus-pg.txt"

NIMBUS=$(awk -F= '/^messages_per_s=/ {print $2}' "$DIR/nimbus.txt")
CEILING=$(awk -F= '/^ceiling_messages_per_s=/ {print $2}' "$DIR/nimbus.txt")
NIMBUS_PG=$(awk -F= '/^messages_per_s=/ {print $2}' "$DIR/nimbus-pg.txt")
FSYNC=$(awk -F= '/^fsync_per_s=/ {print $2}' "$DIR/nimbus.txt")
python3 - "$NIMBUS" "$PG_TPS" "$FSYNC" "$CLIENTS" "$DURATION" "$NIMBUS_PG" "$CEILING" <<'PY'
import sys
nimbus, pg, fsync, clients, duration, nimbus_pg, ceiling = map(float, sys.argv[1:])
print()
print(f"| queue ({int(clients)} clients, {int(duration)} s, 1 KiB, send+receive+delete) | messages/s | x fsync rate | x PostgreSQL |")
print("| --- | ---: | ---: | ---: |")
print(f"| raw fdatasync rate of the disk | {fsync:.0f} fsyncs/s | 1.00 | |")
print(f"| group-commit ceiling of the disk (no database, clients cost nothing) | {ceiling:.0f} | {ceiling/fsync:.2f} | {ceiling/pg:.2f} |")
print(f"| Nimbus SQLite store (answered after fsync, group commit) | {nimbus:.0f} | {nimbus/fsync:.2f} | {nimbus/pg:.2f} |")
print(f"| PostgreSQL SKIP LOCKED by pgbench (synchronous_commit=on) | {pg:.0f} | {pg/fsync:.2f} | 1.00 |")
print(f"| Nimbus PostgreSQL store (same server) | {nimbus_pg:.0f} | {nimbus_pg/fsync:.2f} | {nimbus_pg/pg:.2f} |")
PY
