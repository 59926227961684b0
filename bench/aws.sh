#!/usr/bin/env bash
# The S3 and SQS endpoints against /v1 in one run (bench/aws.py), then
# `aws s3 cp` of a 100 MiB file against writing it to the same disk with
# fsync (dd conv=fsync), with the server's peak resident memory (VmHWM)
# before and after the copy. Release build, SQLite store, local blobs.
# NIMBUS=PATH runs that binary instead of building one.
#
#   bench/aws.sh             # 500 operations per figure
#   N=2000 bench/aws.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}

[ -n "${NIMBUS:-}" ] || cargo build --release --locked -p nimbus-cli
(cd tests/programs && cargo build --release --locked --target wasm32-wasip2 --example hello)
HELLO=${CARGO_TARGET_DIR:-$PWD/tests/programs/target}/wasm32-wasip2/release/examples/hello.wasm
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
NIMBUS=${NIMBUS:-$TARGET/release/nimbus}
# On the project's disk: a tmpfs would make fsync free.
WORK=$(mktemp -d -p "$TARGET")
SERVER=
trap '[ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export XDG_CONFIG_HOME=$WORK/config AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

cat >"$WORK/nimbus.toml" <<TOML
[app]
name = "bench"

[function.web]
component = "$HELLO"

[bucket.bench]
max_object_bytes = 134217728

[queue.bench]
TOML
"$NIMBUS" up "$WORK/nimbus.toml" --data-dir "$WORK/data" --listen 127.0.0.1:3910 \
  --admin-listen 127.0.0.1:3911 --s3-listen 127.0.0.1:3912 --sqs-listen 127.0.0.1:3913 \
  >"$WORK/out" 2>"$WORK/err" &
SERVER=$!
until grep -q '^sqs listening' "$WORK/out" 2>/dev/null; do sleep 0.01; done
export NIMBUS_ADMIN=http://127.0.0.1:3911
KEY=$("$NIMBUS" access-key create bench --allow bucket:bench:read --allow bucket:bench:write \
  --allow queue:bench:send --allow queue:bench:receive)
KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$KEY")
SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])' <<<"$KEY")

python3 bench/aws.py "$NIMBUS_ADMIN" http://127.0.0.1:3912 http://127.0.0.1:3913 \
  "$KEY_ID" "$SECRET" "$N"

echo "== 100 MiB: aws s3 cp (multipart) against dd with fsync on the same disk"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$WORK/big"
peak() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER/status"; }
PEAK_BEFORE=$(peak)
t0=$(date +%s%N)
dd if="$WORK/big" of="$WORK/big.copy" bs=8M conv=fsync status=none
t1=$(date +%s%N)
AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET AWS_DEFAULT_REGION=us-east-1 \
  aws --endpoint-url http://127.0.0.1:3912 s3 cp "$WORK/big" s3://bench/big --only-show-errors
t2=$(date +%s%N)
PEAK_AFTER=$(peak)
python3 - "$t0" "$t1" "$t2" "$PEAK_BEFORE" "$PEAK_AFTER" <<'PY'
import sys
t0, t1, t2, before, after = map(int, sys.argv[1:])
disk, cp = (t1 - t0) / 1e9, (t2 - t1) / 1e9
print(f"dd conv=fsync  {disk:6.2f} s  {100 / disk:7.1f} MiB/s")
print(f"aws s3 cp      {cp:6.2f} s  {100 / cp:7.1f} MiB/s  ({cp / disk:.2f}x the disk's time)")
print(f"server peak resident memory {before / 1024:.0f} MiB before the copy, {after / 1024:.0f} MiB after")
PY
