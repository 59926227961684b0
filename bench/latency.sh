#!/usr/bin/env bash
# Latency from an acknowledged queue send to the consuming function running:
# `queue-send` sends COUNT messages at RATE/s through the admin API and notes
# when each send was acknowledged; the `events` test component, triggered by
# the queue, prints each message as it starts handling it, and the server's
# log line carries the time. p50/p99 of the difference are printed, and
# below them the disk's own fdatasync latency over the same seconds
# (bench/lib/fsync_probe.py): a stall in both is the disk's.
#
#   bench/latency.sh                   # 5000 messages at 1000/s (issue 17's figure)
#   COUNT=2000 RATE=200 bench/latency.sh
#   NIMBUS_BASELINE=/path/to/old/nimbus ROUNDS=2 bench/latency.sh
#       # the baseline build too, in alternating rounds (baseline, this build, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5000}
RATE=${RATE:-1000}
ROUNDS=${ROUNDS:-1}
NIMBUS=${NIMBUS:-./target/release/nimbus}

cargo build --release --locked -p nimbus-cli -p nimbus-bench
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example events)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/nimbus.toml" <<TOML
[app]
name = "latency"

[function.worker]
component = "$PWD/tests/programs/target/wasm32-wasip2/release/examples/events.wasm"
timeout_ms = 5000

[queue.jobs]

[[trigger.queue]]
queue = "jobs"
function = "worker"
batch_size = 1
max_concurrency = 4
TOML
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

# One measurement of the build $1, labelled $2: a fresh data directory, the
# server on core 0, the sender on core 1, as in bench/run.sh.
measure() {
  local bin=$1 label=$2 run="$WORK/$2.$3"
  mkdir -p "$run"
  : >"$run/out"
  NIMBUS_LOG=info taskset -c 0 "$bin" up "$WORK/nimbus.toml" --listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --data-dir "$run/data" >"$run/out" 2>"$run/log" &
  local server=$!
  until grep -q "admin listening" "$run/out"; do sleep 0.05; done
  local admin
  admin=$(awk '/admin listening on/ {print $4}' "$run/out")
  # The disk's own sync latency over the same seconds, on the same disk.
  taskset -c 1 python3 bench/lib/fsync_probe.py "$run" >"$run/disk" &
  local probe=$!
  taskset -c 1 ./target/release/queue-send "$admin" jobs "$COUNT" "$RATE" >"$run/acks"
  until [ "$(grep -c 'handled data=lat-' "$run/log")" -ge "$(wc -l <"$run/acks")" ]; do sleep 0.1; done
  kill "$probe"; wait "$probe" 2>/dev/null || true
  kill "$server"; wait "$server" 2>/dev/null || true
  # The baseline's lines say so; this build's are as they always were.
  if [ "$label" = baseline ]; then printf 'baseline '; fi
  python3 - "$run/acks" "$run/log" "$RATE" <<'PY'
import sys, re, datetime
acks = dict(line.split() for line in open(sys.argv[1]))
started = {}
for line in open(sys.argv[2]):
    m = re.match(r"(\S+Z) .*handled data=(lat-\d+) ", line)
    if m and m.group(2) not in started:
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        started[m.group(2)] = t.timestamp() * 1e6
lat = sorted((started[k] - int(v)) / 1000 for k, v in acks.items() if k in started)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"messages={len(lat)} rate={sys.argv[3]}/s p50_ms={pick(0.50):.2f} p99_ms={pick(0.99):.2f} max_ms={lat[-1]:.2f}")
PY
  if [ "$label" = baseline ]; then printf 'baseline '; fi
  cat "$run/disk"
}

for round in $(seq "$ROUNDS"); do
  if [ -n "${NIMBUS_BASELINE:-}" ]; then measure "$NIMBUS_BASELINE" baseline "$round"; fi
  measure "$NIMBUS" nimbus "$round"
done
