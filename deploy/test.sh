#!/usr/bin/env bash
# test.sh - install what dpool needs, build it, and run the whole test suite
# twice: a normal build, then one with AddressSanitizer and UBSan. Then the
# packager's view: a Release build with warnings as errors, installed under
# a temporary prefix, and client/examples/squares.c built against that
# install with pkg-config and run.
# The build dirs (build-ci, build-asan, build-release) are not demo.sh's
# build/, so running one script after the other rebuilds nothing it need not.
# Options (environment): DP_SKIP_ASAN=1 runs only the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
jobs=$(nproc)

run_suite() {
    local dir=$1
    shift
    cmake -S . -B "$dir" -DDP_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    ctest --test-dir "$dir" --output-on-failure
}

echo "== build and test (RelWithDebInfo)"
run_suite build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${DP_SKIP_ASAN:-0}" != 1 ]; then
    echo "== build and test under address,undefined sanitizers"
    # the random hostile-peer test runs a full minute under the sanitizers
    DP_HOSTILE_SECONDS=${DP_HOSTILE_SECONDS:-60} \
        run_suite build-asan -DCMAKE_BUILD_TYPE=Debug \
        -DDP_SANITIZE=address,undefined
fi

echo "== Release build (-Werror), install, squares.c against the install"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DDP_WERROR=ON \
    -DDP_TESTS=OFF >/dev/null
cmake --build build-release -j"$jobs"
# the installed libdpool must find the installed dpool-broker/dpool-worker
# by itself: no DPOOL_BIN_DIR, run from /
prefix=$(mktemp -d /tmp/dpool-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install build-release --prefix "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name dpool.pc | head -1)")
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir dpool)
for page in dpool dpool-broker dpool-worker; do
    test -f "$prefix/share/man/man1/$page.1"
done
# the worker's child programs are installed beside it
test -x "$prefix/bin/dpool-worker-cpu"
test -x "$prefix/bin/dpool-worker-io"
test -f "$(find "$prefix" -name dpoolConfig.cmake | head -1)"
# shellcheck disable=SC2046
cc -o "$prefix/squares" client/examples/squares.c \
    $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs dpool)
(cd / && env -u DPOOL_BIN_DIR -u DPOOL_BROKER LD_LIBRARY_PATH="$libdir" \
    timeout 60 "$prefix/squares")
echo "== squares.c built with pkg-config against the install, and ran"
