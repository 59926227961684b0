#!/usr/bin/env bash
# SQS send/receive/delete per second through the SQS endpoint (boto3, and a
# plain client signing with botocore) against /v1 in the same run
# (bench/sqs.py). Release build, SQLite store.
#
#   bench/sqs.sh             # 1000 cycles per figure
#   N=5000 bench/sqs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}

cargo build --release --locked -p nimbus-cli
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
NIMBUS=$TARGET/release/nimbus
# On the project's disk: a tmpfs would make fsync free.
WORK=$(mktemp -d -p "$TARGET")
export NIMBUS_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export XDG_CONFIG_HOME=$WORK/config AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
cat >"$WORK/nimbus.toml" <<TOML
[app]
name = "bench"

[queue.bench]
TOML
"$NIMBUS" up "$WORK/nimbus.toml" --data-dir "$WORK/data" --listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:3921 --sqs-listen 127.0.0.1:3923 >"$WORK/out" 2>"$WORK/err" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
until grep -q '^sqs listening' "$WORK/out" 2>/dev/null; do sleep 0.01; done
export NIMBUS_ADMIN=http://127.0.0.1:3921
KEY=$("$NIMBUS" access-key create bench --allow queue:bench:send --allow queue:bench:receive)
KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$KEY")
SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])' <<<"$KEY")
python3 bench/sqs.py "$NIMBUS_ADMIN" http://127.0.0.1:3923 "$KEY_ID" "$SECRET" "$N"
