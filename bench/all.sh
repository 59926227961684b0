#!/usr/bin/env bash
# Runs every benchmark in bench/ once, one after another, each with its own
# defaults, then rewrites the generated section at the end of BENCHMARKS.md
# (bench/lib/all.py): the date, machine and commit, each script's own
# tables and figures, and every figure more than 10% worse than in the
# previous full run. Each script measures Nimbus against its baseline in the
# same run, so the ratios mean something on a shared machine; run it on an
# otherwise idle one all the same. Outputs land in target/bench-all/.
#
#   bench/all.sh                          # everything (about 40 minutes here)
#   ONLY="queue latency" bench/all.sh     # some of them
#   BENCHMARKS=/tmp/B.md bench/all.sh     # rewrite another file
#
# The names are the scripts' (`bench/NAME.sh`); `queue-64` is bench/queue.sh
# with CLIENTS=64. A script that fails is reported as failed in the section;
# the others still run, and all.sh then exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

ALL="run queue queue-64 latency stream-latency http-store bucket deploy templates cluster console aws sqs"
BENCHES=${ONLY:-$ALL}
OUT=target/bench-all
rm -rf "$OUT"
mkdir -p "$OUT"
python3 bench/lib/all.py --self-test >/dev/null || exit 1

failed=0
for bench in $BENCHES; do
  case $bench in
    queue-64) command=(env CLIENTS=64 bench/queue.sh) ;;
    *)
      if [ ! -x "bench/$bench.sh" ]; then
        echo "no bench/$bench.sh (names: $ALL)" >&2
        exit 2
      fi
      command=("bench/$bench.sh")
      ;;
  esac
  echo "== bench/all.sh: ${command[*]}" >&2
  started=$(date +%s)
  if "${command[@]}" >"$OUT/$bench.txt" 2>"$OUT/$bench.err"; then
    echo ok >"$OUT/$bench.status"
  else
    echo "exit $?" >"$OUT/$bench.status"
    failed=1
    echo "   failed: see $OUT/$bench.err" >&2
  fi
  echo "   $(( $(date +%s) - started )) s" >&2
done

python3 bench/lib/all.py "${BENCHMARKS:-BENCHMARKS.md}" "$OUT" "${ONLY:+ONLY=\"$ONLY\" }bench/all.sh" $BENCHES
exit $failed
