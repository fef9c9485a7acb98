#!/bin/sh
# test_layering.sh - the layering the build promises, checked on the built
# programs and on the sources (a ctest, tests/CMakeLists.txt):
#  * dpool-broker, dpool and libdpool link no job kernel: nm shows none of
#    the kernels' symbols (dp_job_*, dp_num_*, ...). dpool-worker-cpu,
#    which must have them, is the control that the check sees symbols at
#    all.
#  * dpool-broker and libdpool load neither libcrypto nor libcurl (ldd);
#    dpool does not load libcurl; libdpool and dpool do not load libzmq at
#    start, nor dpool libcrypto (for `hash --list` and the sha256 fallback
#    of --output-dir file names it loads it when first called: both load
#    on first use, client/dp_lazy.c and client/cli/cli_lazy.c).
#  * dpool-worker (the agent) and dpool-worker-cpu (the cpu child) do not
#    load libcurl; dpool-worker-io, the io child, is the one program that
#    does (and is the control that the check sees libcurl at all).
#  * neither child program (dpool-worker-cpu, dpool-worker-io) loads or
#    names libzmq: they speak to the agent over a socketpair only, and its
#    library tree would cost every child start. dpool-worker, the agent,
#    is the control.
#  * common/ and include/ include nothing from client/, broker/ or worker/.
# usage: test_layering.sh SOURCE_DIR BROKER CLI LIBDPOOL WORKER WORKER_CPU
#        WORKER_IO
set -u
src=$1 broker=$2 cli=$3 lib=$4 worker=$5 worker_cpu=$6 worker_io=$7
fails=0

fail() {
    printf 'test_layering: FAIL: %s\n' "$*" >&2
    fails=$((fails + 1))
}

# kernel code: the kernels, their arithmetic, the download engine and its
# address guard (dl_name's file-name helpers are not kernel code)
kernel='^(dp_job_|dp_num_|dp_factors_|dp_guard_|dp_cidr_|dp_dl_(new|add|poll|cancel|destroy|active|opts_default)$)'

# defined: the defined symbol names of $1, one a line
defined() {
    nm "$1" 2>/dev/null | awk 'NF == 3 && $2 !~ /^[Uuvw]$/ { print $3 }'
}

# undefined: the symbols $1 takes from shared libraries
undefined() {
    nm -D "$1" 2>/dev/null | awk '$1 == "U" || $1 == "w" { print $2 }' |
        sed 's/@.*//'
}

check_no_kernel() {
    bin=$1
    syms=$(defined "$bin")
    if ! printf '%s\n' "$syms" | grep -qx 'dp_jobtab_find'; then
        fail "$bin: nm shows no dp_jobtab_find (stripped? not built?)"
        return
    fi
    found=$(printf '%s\n' "$syms" | grep -E "$kernel" | tr '\n' ' ')
    [ -z "$found" ] || fail "$bin links kernel code: $found"
}

check_no_libs() {
    bin=$1 libs=$2
    out=$(ldd "$bin" 2>&1) || {
        fail "ldd $bin: $out"
        return
    }
    found=$(printf '%s\n' "$out" | grep -E "$libs" | tr -s ' \t\n' ' ')
    [ -z "$found" ] || fail "$bin loads $found"
}

for bin in "$broker" "$cli" "$lib"; do
    check_no_kernel "$bin"
done
# control: the cpu child does have kernels, so the pattern finds symbols
defined "$worker_cpu" | grep -qx 'dp_job_factor' ||
    fail "$worker_cpu: no dp_job_factor; the kernel check sees nothing"

check_no_libs "$broker" 'libcrypto\.so|libcurl'
# libdpool and dpool load libzmq (client/dp_lazy.c) and dpool libcrypto
# (client/cli/cli_lazy.c) on first use, not at start: a local pool needs
# neither, and each library tree costs every start milliseconds
check_no_libs "$lib" 'libcrypto\.so|libcurl|libzmq'
check_no_libs "$cli" 'libcrypto\.so|libcurl|libzmq'
for bin in "$lib" "$cli"; do
    found=$(readelf -d "$bin" 2>&1 | grep -E 'NEEDED.*(libzmq|libcrypto)')
    [ -z "$found" ] || fail "$bin names $found"
done
# ...and libdpool's forwarders are its own: a program linking libdpool
# and libzmq gets libzmq's functions, not these
found=$(nm -D --defined-only "$lib" 2>/dev/null | awk '{ print $3 }' |
    grep -E '^(zmq_|EVP_)' | tr '\n' ' ')
[ -z "$found" ] || fail "$lib exports $found"
nm "$lib" 2>/dev/null | grep -q ' zmq_socket$' ||
    fail "$lib defines no zmq_socket: the export check sees nothing"
check_no_libs "$cli" 'libcurl'
check_no_libs "$worker" 'libcurl'
check_no_libs "$worker_cpu" 'libcurl|libzmq'
check_no_libs "$worker_io" 'libzmq'
ldd "$worker_io" 2>&1 | grep -q 'libcurl' ||
    fail "$worker_io does not load libcurl: the libcurl check sees nothing"
ldd "$worker" 2>&1 | grep -q 'libzmq' ||
    fail "$worker does not load libzmq: the libzmq check sees nothing"
# DT_NEEDED too: ldd would hide a libzmq named but found elsewhere first
for bin in "$worker_cpu" "$worker_io"; do
    found=$(readelf -d "$bin" 2>&1 | grep -E 'NEEDED.*libzmq')
    [ -z "$found" ] || fail "$bin names libzmq: $found"
done
for bin in "$broker" "$lib"; do
    found=$(undefined "$bin" | grep -E '^(EVP_|BN_|SSL_|OPENSSL_|curl_)' |
        tr '\n' ' ')
    [ -z "$found" ] || fail "$bin calls OpenSSL or libcurl: $found"
done

# sources: no header of client/, broker/ or worker/ is included by common/
# or include/, by name or by path
hdrs=$(cd "$src" && find client broker worker -name '*.h' -exec basename {} \; |
    sort -u)
[ -n "$hdrs" ] || fail "no headers found under $src"
for dir in common include; do
    for f in "$src/$dir"/*.c "$src/$dir"/*.h; do
        [ -e "$f" ] || continue
        incs=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]\([^">]*\)[">].*/\1/p' "$f")
        for inc in $incs; do
            case $inc in
            */client/* | client/* | */broker/* | broker/* | */worker/* | \
                worker/* | ../*)
                fail "$f includes $inc"
                continue
                ;;
            esac
            base=${inc##*/}
            if printf '%s\n' "$hdrs" | grep -qxF "$base" &&
                [ ! -e "$src/common/$base" ] && [ ! -e "$src/include/$base" ]; then
                fail "$f includes $inc, a header of client/, broker/ or worker/"
            fi
        done
    done
done
pub=dpool.h # the one public header, in include/ and nowhere else
[ -f "$src/include/$pub" ] || fail "include/$pub is missing"
for dir in client common broker worker; do
    [ ! -e "$src/$dir/$pub" ] || fail "$dir/$pub: the public header is in include/"
done

if [ "$fails" -ne 0 ]; then
    echo "test_layering: $fails failure(s)" >&2
    exit 1
fi
echo "test_layering: ok"
