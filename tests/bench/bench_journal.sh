#!/bin/sh
# bench_journal.sh - build tests/bench/bench_journal.c against the build's
# static libraries (no CMake target: the tests' CMake file belongs to
# another change in flight) and run it.
#   tests/bench/bench_journal.sh [DIR] [SECONDS]
# DIR: where the journal goes (default: the build dir; it must be on the
# disk to measure, not a tmpfs). Needs a configured and built ./build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${DP_BUILD_DIR:-$src/build}
out="$build/bin/bench_journal"
cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra \
   -I"$src/broker" -I"$src/common" -I"$src/client" \
   "$here/bench_journal.c" -o "$out" \
   "$build/lib/libdpbroker.a" "$build/lib/libdpcommon.a" -lpthread
exec "$out" "${1:-$build}" "${2:-2}"
