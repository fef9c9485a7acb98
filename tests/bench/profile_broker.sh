#!/usr/bin/env bash
# profile_broker.sh - the broker's instruction count (valgrind callgrind)
# for one fixed workload: a worker with 2 children and
# `dpool bench -n 20000 --rounds 1000` (20,000 echo jobs per job, 20,000
# auto-chunked, 1,000 sequential round trips). Instruction counts repeat
# from run to run whatever else the machine does; wall times do not.
#   tests/bench/profile_broker.sh [BIN_DIR] [OUT_FILE]
# Prints the total; `callgrind_annotate OUT_FILE` shows where it goes.
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../../build/bin" && pwd)}
out=${2:-/tmp/dpool-broker.callgrind}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ep=tcp://127.0.0.1:$port
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin/dpool-broker" --bind "$ep" --log-level warn 2>/dev/null &
pids+=($!)
"$bin/dpool-worker" --connect "$ep" -p 2 --io-slots 0 --log-level warn &
pids+=($!)
for _ in $(seq 100); do   # up to 20 s for the broker under valgrind
    "$bin/dpool" --broker "$ep" --connect-timeout 1 --format json status \
        2>/dev/null | grep -q '"workers":1' && break
    sleep 0.2
done
"$bin/dpool" --broker "$ep" bench -n 20000 --rounds 1000 >/dev/null
kill "${pids[1]}"; wait "${pids[1]}" || true
kill "${pids[0]}"; wait "${pids[0]}" || true
pids=()
echo "broker instructions: $(grep '^summary' "$out" | cut -d' ' -f2)"
