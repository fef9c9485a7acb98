#!/usr/bin/env bash
# demo.sh - the quick start: install what dpool needs, build it, and run the
# classic Pool demo on an embedded local pool (no broker to start by hand):
# factor 64 random integers between 40,000,000 and 80,000,000, then check
# which of five large numbers are prime. It builds in build/ (the programs
# land in build/bin/); deploy/test.sh uses build dirs of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
echo "== dpool factor: 64 random integers in [40000000, 80000000]"
# shellcheck disable=SC2046
build/bin/dpool factor $(shuf -i 40000000-80000000 -n 64)
echo "== dpool isprime"
build/bin/dpool isprime 112272535095293 112582705942171 115280095190773 \
    115797848077099 1099726899285419
