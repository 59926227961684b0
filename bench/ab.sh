#!/usr/bin/env bash
# Compares two `nimbus` binaries on the `hello` component, interleaved in one
# run (A, B, B, A, A, B, ...), so a change is judged against the build before
# it on the same noisy machine. Server on core 0, wrk on core 1, as in
# bench/run.sh. Prints each round's requests/s and the median ratio B/A, and
# (with LATENCY=1) p50/p99 at a fixed rate.
#
#   bench/ab.sh BASELINE_NIMBUS CANDIDATE_NIMBUS
#   ROUNDS=6 DURATION=5 NIMBUS_LOG=warn bench/ab.sh old new
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "$1")
B=$(realpath "$2")
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
RATE=${RATE:-1000}
LATENCY=${LATENCY:-0}
HELLO=$PWD/tests/programs/target/wasm32-wasip2/release/examples/hello.wasm
[ -f "$HELLO" ] || (cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example hello)

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

one() { # BINARY: prints "req/s p50 p99" for one server start
  local port pid url
  port=$(free_port)
  url="http://127.0.0.1:$port/bench"
  taskset -c 0 "$1" up "$WORK/nimbus.toml" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 \
    --data-dir "$WORK/data-$(basename "$1")-$port" >/dev/null 2>"$WORK/err" &
  pid=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/err" >&2; exit 1; }
    sleep 0.01
  done
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "$url" >/dev/null
  local rps p50=- p99=-
  rps=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$url" | awk '/Requests\/sec/ {print $2}')
  if [ "$LATENCY" = 1 ]; then
    local out; out=$(taskset -c 1 hey -z "${DURATION}s" -c 10 -q $((RATE / 10)) "$url")
    p50=$(awk '/ 50% in/ {printf "%.2f", $3 * 1000}' <<<"$out")
    p99=$(awk '/ 99% in/ {printf "%.2f", $3 * 1000}' <<<"$out")
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rps $p50 $p99"
}

RATIOS=()
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then a=$(one "$A"); b=$(one "$B"); else b=$(one "$B"); a=$(one "$A"); fi
  read -r ra pa50 pa99 <<<"$a"
  read -r rb pb50 pb99 <<<"$b"
  r=$(python3 -c "print(f'{$rb / $ra:.3f}')")
  RATIOS+=("$r")
  echo "round $round: A $ra req/s (p50 $pa50, p99 $pa99 ms), B $rb req/s (p50 $pb50, p99 $pb99 ms), B/A $r"
done
python3 -c "import statistics, sys; print(f'median B/A over $ROUNDS rounds: {statistics.median(map(float, sys.argv[1:])):.3f}')" "${RATIOS[@]}"
