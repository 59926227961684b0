#!/usr/bin/env bash
# Console pages with 100,000 invocation records stored: the server time of
# each page's requests (bench/console.py), release build, SQLite store on
# the project's disk. The records are written straight into the store
# first (crates/bench history-seed), over the last hour, across 10
# functions; the server keeps them all (--history-max-records 100000).
#
#   bench/console.sh             # 100,000 records, 50 draws per page
#   RECORDS=200000 REPS=100 bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-100000} REPS=${REPS:-50}

cargo build --release --locked -p nimbus-cli
cargo build --release --locked -p nimbus-bench --bin history-seed
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example hello)
HELLO=$PWD/tests/programs/target/wasm32-wasip2/release/examples/hello.wasm
WORK=$(mktemp -d -p "$PWD/target")
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export XDG_CONFIG_HOME=$WORK/config

{
  printf '[app]\nname = "console-bench"\n\n[queue.jobs]\n\n[bucket.files]\n'
  for i in $(seq 0 9); do
    printf '\n[function.f%s]\ncomponent = "%s"\n\n[[trigger.http]]\nroute = "/f%s"\nfunction = "f%s"\nauth = "public"\n' \
      "$i" "$HELLO" "$i" "$i"
  done
} >"$WORK/nimbus.toml"
mkdir -p "$WORK/data"
./target/release/history-seed "$WORK/data/nimbus.db" "$RECORDS"
./target/release/nimbus up "$WORK/nimbus.toml" --data-dir "$WORK/data" --admin-token "$TOKEN" \
  --listen 127.0.0.1:3920 --admin-listen 127.0.0.1:3921 --history-max-records "$RECORDS" \
  >"$WORK/out" 2>"$WORK/err" &
until grep -q '^admin listening' "$WORK/out" 2>/dev/null; do sleep 0.01; done
echo "== console pages, $RECORDS invocation records stored, $REPS draws each"
python3 bench/console.py http://127.0.0.1:3921 "$TOKEN" "$REPS"
