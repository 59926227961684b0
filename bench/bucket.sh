#!/usr/bin/env bash
# Bucket benchmarks, each with its baseline in the same run:
#  1. throughput of 4 KiB puts and gets: `bucket-bench throughput` (blob I/O
#     through object_store alone, then Nimbus's Buckets with the metadata and
#     event commit), on the disk under target/ (never a tmpfs);
#  2. latency from an acknowledged upload to the object function starting,
#     against the latency from an acknowledged queue send to the queue
#     function starting, on the same server: `bucket-bench put` and
#     `queue-send` through the admin API, the `events` test component
#     printing each event as it starts, the server log stamping it.
#
#   bench/bucket.sh                          # release build
#   PROFILE=debug DURATION=5 bench/bucket.sh # quicker, unoptimised Nimbus
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-16}
COUNT=${COUNT:-1000}
RATE=${RATE:-100}
FLAG=$([ "$PROFILE" = release ] && echo --release || true)

cargo build $FLAG -p nimbus-cli -p nimbus-bench
(cd tests/programs && cargo build --release --target wasm32-wasip2 --example events)
BIN=target/$PROFILE
echo "== throughput (4 KiB, $CLIENTS clients, ${DURATION}s each)"
$BIN/bucket-bench throughput target/bench-bucket "$DURATION" "$CLIENTS"

WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/nimbus.toml" <<TOML
[app]
name = "bucket-latency"

[function.worker]
component = "$PWD/tests/programs/target/wasm32-wasip2/release/examples/events.wasm"
timeout_ms = 5000

[queue.jobs]
[bucket.photos]

[[trigger.queue]]
queue = "jobs"
function = "worker"
batch_size = 1
max_concurrency = 4

[[trigger.object]]
bucket = "photos"
function = "worker"
events = ["created"]
batch_size = 1
max_concurrency = 4
TOML
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
NIMBUS_LOG=info taskset -c 0 $BIN/nimbus up "$WORK/nimbus.toml" --listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/out" 2>"$WORK/log" &
until grep -q "admin listening" "$WORK/out"; do sleep 0.05; done
ADMIN=$(awk '/admin listening on/ {print $4}' "$WORK/out")
taskset -c 1 $BIN/queue-send "$ADMIN" jobs "$COUNT" "$RATE" >"$WORK/queue-acks"
taskset -c 1 $BIN/bucket-bench put "$ADMIN" photos "$COUNT" "$RATE" >"$WORK/object-acks"
until [ "$(grep -c 'handled data=lat-' "$WORK/log")" -ge "$(wc -l <"$WORK/queue-acks")" ] &&
      [ "$(grep -c 'subject=lat-' "$WORK/log")" -ge "$(wc -l <"$WORK/object-acks")" ]; do sleep 0.1; done
echo "== latency, acknowledged to function start ($COUNT at $RATE/s each)"
python3 - "$WORK/queue-acks" "$WORK/object-acks" "$WORK/log" <<'PY'
import sys, re, datetime
def stamp(s):
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() * 1e6
queue_start, object_start = {}, {}
for line in open(sys.argv[3]):
    m = re.match(r"(\S+Z) .*handled data=(lat-\d+) ", line)
    if m: queue_start.setdefault(m.group(2), stamp(m.group(1)))
    m = re.match(r"(\S+Z) .*subject=(lat-\d+) ", line)
    if m: object_start.setdefault(m.group(2), stamp(m.group(1)))
def report(name, acks_file, started):
    acks = dict(line.split() for line in open(acks_file))
    lat = sorted((started[k] - int(v)) / 1000 for k, v in acks.items() if k in started)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{name}: events={len(lat)} p50_ms={pick(0.5):.2f} p99_ms={pick(0.99):.2f} max_ms={lat[-1]:.2f}")
    return pick(0.5), pick(0.99)
q = report("queue send (baseline)", sys.argv[1], queue_start)
o = report("object upload", sys.argv[2], object_start)
print(f"ratio object/queue: p50={o[0]/q[0]:.2f} p99={o[1]/q[1]:.2f}")
PY
