#!/usr/bin/env bash
# Component size, build time, first compile and cached load per template:
# `nimbus new` writes each template's project, `nimbus build` builds it, then
# `nimbus up` is timed from its start to "admin listening" twice on one data
# directory: first with no compiled artifact (it compiles the component),
# then with the artifact the first run cached (it only loads it).
#
#   bench/templates.sh
#   NIMBUS=target/debug/nimbus TEMPLATES="python-http js-http" bench/templates.sh
#
# Needs what the templates build with: Rust's wasm32-wasip2 target,
# componentize-py==0.25.1 and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPLATES=${TEMPLATES:-rust-http rust-event python-http python-event js-http}
if [ -z "${NIMBUS:-}" ]; then
  cargo build --release --locked -p nimbus-cli
  NIMBUS=target/release/nimbus
fi
NIMBUS=$(realpath "$NIMBUS")
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Starts `nimbus up` on the project, prints the milliseconds until it serves
# and how it got its component ("compiled" or "loaded cached artifact").
start() {
  local t0 pid
  t0=$(now_ms)
  "$NIMBUS" up "$WORK/$1/nimbus.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --data-dir "$WORK/$1.data" >"$WORK/out" 2>"$WORK/log" &
  pid=$!
  until grep -q "admin listening" "$WORK/out"; do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
    sleep 0.01
  done
  echo "$(($(now_ms) - t0)) ms ($(grep -m1 '^function' "$WORK/out" | sed 's/.*: //'))"
  kill "$pid"
  wait "$pid" || true
}

echo "| template | component | nimbus build | first nimbus up | cached nimbus up |"
echo "| --- | ---: | ---: | ---: | ---: |"
for t in $TEMPLATES; do
  "$NIMBUS" new "bench-$t" --template "$t" --dir "$WORK/$t" >/dev/null
  t0=$(now_ms)
  (cd "$WORK/$t" && "$NIMBUS" build >/dev/null 2>"$WORK/build.log") ||
    { cat "$WORK/build.log" >&2; exit 1; }
  build_ms=$(($(now_ms) - t0))
  wasm=$(ls "$WORK/$t"/*.wasm)
  size=$(python3 -c "import os, sys; print(f'{os.path.getsize(sys.argv[1]) / 1e6:.2f} MB')" "$wasm")
  cold=$(start "$t")
  cached=$(start "$t")
  echo "| $t | $size | $((build_ms / 1000)) s | $cold | $cached |"
done
