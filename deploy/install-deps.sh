#!/usr/bin/env bash
# install-deps.sh: install exactly the Debian 12 packages dpool needs to build
# and test. Idempotent; run as root (or it uses sudo when present).
#   deploy/install-deps.sh            build + test dependencies
#   deploy/install-deps.sh --runtime  only the runtime libraries
set -euo pipefail

BUILD_PKGS=(
    build-essential cmake pkg-config
    libzmq3-dev libmsgpack-dev libssl-dev libcurl4-openssl-dev
    libcriterion-dev
    coreutils python3 openssl iproute2 procps
)
RUNTIME_PKGS=(libzmq5 libmsgpackc2 libssl3 libcurl4 ca-certificates)

pkgs=("${BUILD_PKGS[@]}")
if [ "${1:-}" = "--runtime" ]; then
    pkgs=("${RUNTIME_PKGS[@]}")
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps.sh: must run as root (or with sudo available)" >&2
        exit 1
    fi
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps.sh: all ${#pkgs[@]} packages already installed"
    exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
APT=(-o DPkg::Lock::Timeout=600 -y -q)
$SUDO apt-get "${APT[@]}" update
$SUDO apt-get "${APT[@]}" install --no-install-recommends "${missing[@]}"
