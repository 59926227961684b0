#!/usr/bin/env bash
# Deploys into a running server, against restarting it (the baseline: what
# changing a function cost before deployments), in one run:
#   1. deploy to serving, cached component (the same component, a changed
#      manifest): wall time of `nimbus deploy` and the server's own figure;
#   2. deploy to serving, uncompiled component (new bytes each time: the
#      hello component with a custom section appended);
#   3. restart to first response with a cached artifact (SIGTERM, `nimbus up`,
#      first 200), the baseline;
#   4. requests failed while 20 deploys swap versions under load (wrk), and
#      while the server restarts once under the same load.
#
#   bench/deploy.sh                 # defaults below
#   DEPLOYS=40 bench/deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEPLOYS=${DEPLOYS:-20} COLD=${COLD:-5} RESTARTS=${RESTARTS:-5}

command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cargo build --release --locked -p nimbus-cli
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example hello)
HELLO=$PWD/tests/programs/target/wasm32-wasip2/release/examples/hello.wasm
NIMBUS=$PWD/target/release/nimbus
WORK=$(mktemp -d)
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export XDG_CONFIG_HOME=$WORK/config

manifest() { # NAME GREETING COMPONENT
  cat >"$WORK/$1.toml" <<EOF
[app]
name = "bench"

[function.web]
component = "$3"
env = { GREETING = "$2" }

[[trigger.http]]
route = "/greet"
function = "web"
auth = "public"
EOF
}
manifest v1 one "$HELLO"
manifest v2 two "$HELLO"

PID=
start() { # MANIFEST -> waits for the admin line
  "$NIMBUS" up "$1" --data-dir "$WORK/data" --listen 127.0.0.1:3900 \
    --admin-listen 127.0.0.1:3901 >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  until grep -q '^admin listening' "$WORK/out" 2>/dev/null; do sleep 0.005; done
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }
export NIMBUS_ADMIN=http://127.0.0.1:3901
now_ms() { date +%s%3N; }
deploy() { # MANIFEST -> "wall_ms server_ms"
  local t0 out
  t0=$(now_ms)
  out=$("$NIMBUS" deploy "$1" | tail -1)
  echo "$(($(now_ms) - t0)) $(sed -E 's/.* live in ([0-9]+) ms.*/\1/' <<<"$out")"
}

start "$WORK/v1.toml"
: >"$WORK/cached"
for i in $(seq "$DEPLOYS"); do
  if ((i % 2)); then deploy "$WORK/v2.toml"; else deploy "$WORK/v1.toml"; fi >>"$WORK/cached"
done
: >"$WORK/cold"
for i in $(seq "$COLD"); do
  python3 - "$HELLO" "$WORK/cold$i.wasm" "$i" <<'EOF'
import sys
src, dst, i = sys.argv[1], sys.argv[2], sys.argv[3]
name = f"nimbus-bench-{i}".encode()
payload = bytes([len(name)]) + name
# A custom section (id 0) appended: new bytes, so a new compilation.
open(dst, "wb").write(open(src, "rb").read() + bytes([0, len(payload)]) + payload)
EOF
  manifest "cold$i" "cold$i" "$WORK/cold$i.wasm"
  deploy "$WORK/cold$i.toml" >>"$WORK/cold"
done

# Under load: wrk while the deploys swap versions.
wrk -t1 -c8 -d30s --latency http://127.0.0.1:3900/greet >"$WORK/wrk-deploys" &
WRK=$!
sleep 1
for i in $(seq "$DEPLOYS"); do
  if ((i % 2)); then deploy "$WORK/v1.toml"; else deploy "$WORK/v2.toml"; fi >/dev/null
done
wait "$WRK"

# Baseline: restarts, cached artifact, to the first 200.
: >"$WORK/restarts"
for i in $(seq "$RESTARTS"); do
  stop
  t0=$(now_ms)
  start "$WORK/v1.toml"
  until curl -fs -o /dev/null http://127.0.0.1:3900/greet; do sleep 0.001; done
  echo "$(($(now_ms) - t0))" >>"$WORK/restarts"
done
# One restart under the same load.
wrk -t1 -c8 -d10s http://127.0.0.1:3900/greet >"$WORK/wrk-restart" &
WRK=$!
sleep 2
stop
start "$WORK/v1.toml"
wait "$WRK"
stop

python3 - "$WORK" <<'EOF'
import re, statistics, sys
work = sys.argv[1]
def pairs(name):
    return [tuple(map(int, l.split())) for l in open(f"{work}/{name}") if l.strip()]
def p50(xs):
    return statistics.median(xs)
cached, cold = pairs("cached"), pairs("cold")
restarts = [int(l) for l in open(f"{work}/restarts") if l.strip()]
def failures(name):
    text = open(f"{work}/{name}").read()
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", text) or [0, 0])[1])
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    return total, non2xx + errors
print(f"deploy, cached component:     p50 {p50([w for w, _ in cached])} ms wall "
      f"(server {p50([s for _, s in cached])} ms), {len(cached)} deploys")
print(f"deploy, uncompiled component: p50 {p50([w for w, _ in cold])} ms wall "
      f"(server {p50([s for _, s in cold])} ms), {len(cold)} deploys")
print(f"restart to first response (baseline): p50 {p50(restarts)} ms, {len(restarts)} restarts")
print(f"ratio restart / cached deploy: {p50(restarts) / p50([w for w, _ in cached]):.2f}x")
total, failed = failures("wrk-deploys")
print(f"under load, {len(cached)} deploys: {failed} failed of {total} requests")
total, failed = failures("wrk-restart")
print(f"under load, one restart: {failed} failed of {total} requests")
EOF
