#!/usr/bin/env bash
# test-containers.sh - build the dpool image (deploy/Dockerfile) with podman
# and run a small cluster of containers: a broker and two workers on a
# podman network with CURVE keys (made by `dpool keygen` in the image), a
# batch from a client container, results checked (named by worker key),
# a keyless broker, a keyless client and an unlisted key refused, workers
# drained with SIGTERM. Everything it makes is removed at exit.
#
# Needs root and the Debian mirror only (no container registry): the base
# image is Debian 12 made with debootstrap and `podman import`ed, then
# `podman build --isolation=chroot --build-arg BASE_IMAGE=...`.
#
# Environment:
#   DP_MIRROR=URL          Debian mirror (default: the one apt uses)
#   DP_BASE_TAR=FILE       reuse this debootstrap tarball (made there when
#                          missing): skips debootstrap on later runs
#   DP_KEEP=1              keep the temp dir (logs) on exit
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
step() { printf '== [%3ds] %s\n' $((SECONDS - T0)) "$*"; }
die() { printf 'test-containers.sh: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, podman)"

need=()
for p in podman debootstrap runc; do
    command -v "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    step "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 -q update >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 -y -q install --no-install-recommends \
        podman debootstrap runc >/dev/null
fi

# the mirror apt is configured with (deb822 or one-line sources)
mirror=${DP_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '$1 == "URIs:" && $2 ~ /\/debian\/?$/ {print $2; exit}')
fi
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        2>/dev/null | awk '$1 == "deb" && $0 ~ /bookworm/ {
            for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}')
fi
mirror=${mirror:-http://deb.debian.org/debian}

run_id=dpt$$
T=$(mktemp -d /tmp/dpool-containers.XXXXXX)
NET=$run_id-net
BASE=localhost/$run_id-base:bookworm
IMG=localhost/$run_id:latest
export CONTAINERS_CONF=$T/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
# private storage: nothing lands in the machine's image store
PODMAN=(podman --root "$T/storage" --runroot "$T/run")

cleanup() {
    local rc=$?
    set +e
    trap - INT TERM
    printf '== [%3ds] %s\n' $((SECONDS - T0)) "cleanup"
    if [ "$rc" -ne 0 ]; then
        echo "---- container logs (failure) ----" >&2
        for c in $("${PODMAN[@]}" ps -a --format '{{.Names}}' 2>/dev/null |
                   grep "^$run_id-"); do
            echo "-- $c" >&2
            "${PODMAN[@]}" logs "$c" 2>&1 | tail -20 >&2
        done
    fi
    "${PODMAN[@]}" ps -a --format '{{.Names}}' 2>/dev/null |
        grep "^$run_id-" | xargs -r "${PODMAN[@]}" rm -f -t 0 >/dev/null 2>&1
    "${PODMAN[@]}" network rm -f "$NET" >/dev/null 2>&1
    "${PODMAN[@]}" rmi -f "$IMG" "$BASE" >/dev/null 2>&1
    "${PODMAN[@]}" rmi -a -f >/dev/null 2>&1 # build stages
    # storage mounts under $T (overlay), innermost first, then the files
    awk -v t="$T/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo |
        sort -r | xargs -r -n1 umount -l 2>/dev/null
    if [ "${DP_KEEP:-0}" = 1 ]; then
        echo "test-containers.sh: kept $T" >&2
    else
        rm -rf "$T"
    fi
    printf '== [%3ds] %s\n' $((SECONDS - T0)) \
        "$([ "$rc" -eq 0 ] && echo PASS || echo "FAIL (exit $rc)")"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- base image ----
tarball=${DP_BASE_TAR:-$T/base.tar}
if [ ! -s "$tarball" ]; then
    step "debootstrap --variant=minbase bookworm ($mirror)"
    debootstrap --variant=minbase bookworm "$T/rootfs" "$mirror" \
        >"$T/debootstrap.log" 2>&1 ||
        { tail -20 "$T/debootstrap.log"; die "debootstrap failed"; }
    # what apt-get update remakes anyway: smaller image layers
    find "$T/rootfs/var/cache/apt" "$T/rootfs/var/lib/apt/lists" -type f \
        -delete
    tar -C "$T/rootfs" -cf "$tarball" .
    rm -rf "$T/rootfs"
fi
step "podman import -> $BASE"
"${PODMAN[@]}" import -q "$tarball" "$BASE" >/dev/null

# ---- image: a clean context (no build trees) ----
mkdir -p "$T/ctx/deploy"
cp -a CMakeLists.txt include common broker worker client "$T/ctx/"
cp -a deploy/Dockerfile deploy/install-deps.sh "$T/ctx/deploy/"
step "podman build --isolation=chroot -f deploy/Dockerfile"
"${PODMAN[@]}" build -q --isolation=chroot --build-arg BASE_IMAGE="$BASE" \
    -f "$T/ctx/deploy/Dockerfile" -t "$IMG" "$T/ctx" >"$T/build.log" 2>&1 ||
    { tail -40 "$T/build.log"; die "podman build failed"; }
size=$("${PODMAN[@]}" image inspect -f '{{.Size}}' "$IMG")
step "image built: $((size / 1000000)) MB"

user=$("${PODMAN[@]}" run --rm --network none "$IMG" id -un)
[ "$user" = dpool ] || die "image runs as '$user', not dpool"
for p in dpool dpool-broker dpool-worker dpool-worker-cpu dpool-worker-io; do
    "${PODMAN[@]}" run --rm --network none "$IMG" "$p" --version \
        >/dev/null ||
        die "$p --version failed in the image"
done

# ---- keys (issue 10) ----
# made inside the image as user dpool (uid 10001), so the 0600 secret key
# files belong to the user the containers run as
K=/var/lib/dpool/keys
mkdir -p "$T/keys"
chown 10001:10001 "$T/keys"
chmod 700 "$T/keys"
step "dpool keygen: broker, client, worker1, worker2 (and an unlisted rogue)"
"${PODMAN[@]}" run --rm --network none -v "$T/keys:$K" -w "$K" "$IMG" sh -c \
    'dpool keygen broker && dpool keygen --out clients client &&
     dpool keygen --out workers worker1 worker2 &&
     dpool keygen --out rogue rogue' >/dev/null
KEYS=(-v "$T/keys:$K:ro")

# ---- cluster ----
step "podman network $NET; keyless broker refused; broker and two workers"
"${PODMAN[@]}" network create "$NET" >/dev/null
rc=0
"${PODMAN[@]}" run --rm --network "$NET" "$IMG" dpool-broker \
    >/dev/null 2>"$T/keyless.err" || rc=$?
[ "$rc" = 2 ] || die "a keyless broker on 0.0.0.0 exited $rc, not 2"
grep -q "dpool keygen" "$T/keyless.err" ||
    die "the keyless broker did not say how to make keys"
"${PODMAN[@]}" run -d --name "$run_id-broker" --network "$NET" "${KEYS[@]}" \
    -e DPOOL_HEARTBEAT_MS=500 -e DPOOL_CURVE_KEY=$K/broker.key \
    -e DPOOL_CLIENT_KEYS=$K/clients -e DPOOL_WORKER_KEYS=$K/workers \
    "$IMG" dpool-broker >/dev/null
bip=$("${PODMAN[@]}" inspect -f \
    '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \
    "$run_id-broker")
[ -n "$bip" ] || die "broker has no address on $NET"
HOSTS=(--network "$NET" --add-host "broker:$bip")
for w in 1 2; do
    # the default command is the worker; configured from the environment
    # named by its key (worker$w); the name it claims is not trusted
    "${PODMAN[@]}" run -d --name "$run_id-worker$w" "${HOSTS[@]}" \
        "${KEYS[@]}" -e DPOOL_CURVE_KEY=$K/workers/worker$w.key \
        -e DPOOL_BROKER_KEY=$K/broker.pub \
        -e DPOOL_BROKER=tcp://broker:5555 -e DPOOL_NAME="claims$w" \
        -e DPOOL_PROCESSES=2 -e DPOOL_GRACE=5 "$IMG" >/dev/null
done

bstatus() {
    "${PODMAN[@]}" exec -e DPOOL_CURVE_KEY=$K/clients/client.key \
        -e DPOOL_BROKER_KEY=$K/broker.pub "$run_id-broker" \
        dpool --broker tcp://127.0.0.1:5555 --connect-timeout 2 \
        --format json status 2>/dev/null
}
deadline=$((SECONDS + 30))
until bstatus | grep -q '"workers":2,'; do
    [ $SECONDS -lt $deadline ] || die "workers did not join: $(bstatus)"
    sleep 0.2
done
step "broker sees 2 workers: $(bstatus)"

client() {
    "${PODMAN[@]}" run --rm "${HOSTS[@]}" "${KEYS[@]}" \
        -e DPOOL_CURVE_KEY=$K/clients/client.key \
        -e DPOOL_BROKER_KEY=$K/broker.pub \
        -e DPOOL_BROKER=tcp://broker:5555 "$IMG" dpool "$@"
}

# a client without keys, and one with a key the broker does not list, are
# refused at the handshake (exit 3: unreachable)
step "keyless and unlisted clients refused"
rogue=(-e DPOOL_CURVE_KEY=$K/rogue/rogue.key -e DPOOL_BROKER_KEY=$K/broker.pub)
for extra in "" "${rogue[*]}"; do
    rc=0
    # shellcheck disable=SC2086
    "${PODMAN[@]}" run --rm "${HOSTS[@]}" "${KEYS[@]}" $extra \
        -e DPOOL_BROKER=tcp://broker:5555 \
        "$IMG" dpool --connect-timeout 2 factor 12 >/dev/null 2>&1 || rc=$?
    [ "$rc" = 3 ] || die "a client with '${extra:-no key}' exited $rc, not 3"
done
bstatus | grep -q '"denied_keys":[1-9]' ||
    die "the broker counted no refused handshake: $(bstatus)"

# factor: the same text as coreutils factor
nums=(12 2047 1000000007 600851475143 18446744073709551615
      340282366920938463463374607431768211455 9999999967 1234567890123)
step "client: dpool factor ${#nums[*]} numbers"
client factor "${nums[@]}" >"$T/factor.out"
# one number per call: coreutils 9.1 prints numbers above 2^64 out of order
for n in "${nums[@]}"; do factor "$n"; done >"$T/factor.want"
cat "$T/factor.out"
diff -u "$T/factor.want" "$T/factor.out" || die "factor output differs"

# a batch spread over both workers, one ok result per job
step "client: dpool --unordered --format json map sleep 300 x 16"
mapfile -t jobs < <(printf '300\n%.0s' {1..16})
client --unordered --format json map sleep "${jobs[@]}" >"$T/map.out"
python3 - "$T/map.out" <<'EOF' || die "bad batch results"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
idx = sorted(r["index"] for r in rows)
assert idx == list(range(16)), f"indexes {idx}"
assert all(r["ok"] for r in rows), "a job failed"
by = {}
for r in rows:
    by[r["worker"]] = by.get(r["worker"], 0) + 1
print("   results per worker:", dict(sorted(by.items())))
assert set(by) == {"worker1", "worker2"}, f"workers {by}"
EOF

# SIGTERM drains a worker: a running job finishes, the worker exits 0
step "drain: podman stop worker1 during a 2 s job"
client map sleep 2000 2000 2000 2000 >"$T/drain.out" &
cpid=$!
deadline=$((SECONDS + 15))
until bstatus | grep -q '"running":4,'; do
    [ $SECONDS -lt $deadline ] || die "jobs did not start: $(bstatus)"
    sleep 0.1
done
"${PODMAN[@]}" stop -t 20 "$run_id-worker1" >/dev/null
wrc=$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$run_id-worker1")
wait "$cpid" || die "client exit $? during the drain"
[ "$wrc" = 0 ] || die "worker1 exit $wrc after SIGTERM"
[ "$(grep -c '^2000: 2000$' "$T/drain.out")" = 4 ] ||
    die "drain batch: $(cat "$T/drain.out")"
"${PODMAN[@]}" logs "$run_id-worker1" 2>&1 | grep -q "stopped cleanly" ||
    die "worker1 did not report a clean stop"
step "worker1 drained (exit 0), all 4 jobs ok: $(bstatus)"
