#!/usr/bin/env bash
# count_cli.sh - instructions per job of every process of the command a
# user types (compare.py's W7, smaller): `dpool TYPE < N lines > file`,
# embedded pool, each process (client, broker, worker agent) under
# valgrind --tool=callgrind. The children are not counted: the agent
# spawns dpool-worker-cpu/-io from its own binary's directory
# (/proc/self/exe), not the wrapper's. Unlike wall times, these counts repeat
# from run to run whatever else the machine runs, so two builds can be
# compared on a loaded machine.
#   tests/bench/count_cli.sh [BIN_DIR] [N] [TYPE]   (defaults: build/bin,
#   200000, isprime)
# Prints instructions per job for each process and the sum; the profiles
# stay in the printed directory for callgrind_annotate.
set -euo pipefail
bin=$(cd "${1:-$(dirname "$0")/../../build/bin}" && pwd)
n=${2:-200000}
type=${3:-isprime}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
d=$(mktemp -d /tmp/dp-count-cli.XXXXXX)
mkdir "$d/bin"
# the embedded pool finds dpool-broker and dpool-worker through
# DPOOL_BIN_DIR: wrappers there run the real ones under callgrind
for prog in dpool-broker dpool-worker; do
    cat >"$d/bin/$prog" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="$d/cg.$prog.%p" \
    "$bin/$prog" "\$@" 2>/dev/null
EOF
    chmod +x "$d/bin/$prog"
done
seq 1 "$n" >"$d/in"
DPOOL_BIN_DIR="$d/bin" valgrind --tool=callgrind \
    --callgrind-out-file="$d/cg.dpool.%p" "$bin/dpool" "$type" \
    <"$d/in" >"$d/out" 2>/dev/null
lines=$(wc -l <"$d/out")
[ "$lines" -eq "$n" ] || { echo "got $lines lines for $n inputs" >&2; exit 1; }
echo "dpool $type < $n lines, $bin; profiles in $d"
total=0
for f in "$d"/cg.*; do
    ir=$(awk '/^summary:/ {print $2}' "$f")
    total=$((total + ir))
    printf '  %-28s %14s instr %8.0f per job\n' "$(basename "$f")" "$ir" \
        "$(echo "$ir / $n" | bc -l)"
done
printf '  %-28s %14s instr %8.0f per job\n' total "$total" \
    "$(echo "$total / $n" | bc -l)"
