#!/usr/bin/env bash
# test.sh - install what dpool needs, build it, and run the whole test suite
# twice: a normal build, then one with AddressSanitizer and UBSan.
# Options (environment): DP_SKIP_ASAN=1 runs only the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
jobs=$(nproc)

run_suite() {
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    ctest --test-dir "$dir" --output-on-failure
}

echo "== build and test (RelWithDebInfo)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${DP_SKIP_ASAN:-0}" != 1 ]; then
    echo "== build and test under address,undefined sanitizers"
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug \
        -DDP_SANITIZE=address,undefined
fi
