#!/usr/bin/env python3
"""bench_download.py - compare.py's W5 on its own, with counts.

Serves FILES bodies of SIZE bytes from a private nginx on 127.0.0.1 and
fetches them, PARALLEL at a time, with `dpool download` (embedded pool,
bodies saved on the client) and with `curl --parallel`, interleaved
(dpool, curl, dpool, curl ...). For every run it prints the wall time and,
from wait4(2), the CPU time and minor page faults of the whole process tree
(the embedded broker and worker are reaped by `dpool`, so theirs count):
these depend far less than the wall time on what else the machine runs
(page faults still vary with how results happen to batch up).

    python3 tests/bench/bench_download.py [--bin build/bin]... [--reps 5]
        [--files 64] [--size 1048576] [--parallel 8] [--no-curl]

Give --bin twice (an old build and a new one) to compare two builds side
by side: runs go old, new, curl, old, new, curl ...

Needs /usr/sbin/nginx (compare.py installs nginx-light). Standard library
only; every process it starts is stopped by pid in a finally.
"""
import argparse
import hashlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(d, root):
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    temps = "".join("    %s_temp_path %s;\n" % (x, os.path.join(d, x))
                    for x in ("client_body", "proxy", "fastcgi", "uwsgi",
                              "scgi"))
    with open(conf, "w") as f:
        f.write("daemon off;\nworker_processes 1;\npid %s;\n"
                "error_log %s warn;\nevents { worker_connections 256; }\n"
                "http {\n    access_log off;\n    sendfile on;\n"
                "    default_type application/octet-stream;\n%s"
                "    server { listen 127.0.0.1:%d; root %s; }\n}\n"
                % (os.path.join(d, "nginx.pid"), os.path.join(d, "err.log"),
                   temps, port, root))
    p = subprocess.Popen(["/usr/sbin/nginx", "-p", d, "-c", conf, "-e",
                          os.path.join(d, "err.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return p, port
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGTERM)
                sys.exit("nginx did not start")
            time.sleep(0.05)


def timed(cmd, cwd, timeout):
    """wall s, cpu s, minor faults of cmd and the children it reaped."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            sys.exit("timed out: %s" % cmd[0])
        time.sleep(0.002)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        sys.exit("%s exited %d: %s" % (cmd[0], p.returncode, err[-400:]))
    return dt, ru.ru_utime + ru.ru_stime, ru.ru_minflt


def check(out, served):
    for name, h in served.items():
        with open(os.path.join(out, name), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != h:
                sys.exit("%s differs from the served file" % name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--files", type=int, default=64)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--no-curl", action="store_true")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    bins = a.bin or [os.path.join(HERE, "..", "..", "build", "bin")]
    d = tempfile.mkdtemp(prefix="dp-bench-dl-")
    os.chmod(d, 0o755)
    root = os.path.join(d, "www")
    os.mkdir(root)
    served = {}
    for k in range(a.files):
        name = "f%02d.bin" % k
        b = random.Random(5000 + k).randbytes(a.size)
        with open(os.path.join(root, name), "wb") as f:
            f.write(b)
        os.chmod(os.path.join(root, name), 0o644)
        served[name] = hashlib.sha256(b).hexdigest()
    os.chmod(root, 0o755)
    names = sorted(served)
    ng = None
    figs = {}
    print("load before: %s" % open("/proc/loadavg").read().strip())
    try:
        ng, port = start_nginx(d, root)
        urls = ["http://127.0.0.1:%d/%s" % (port, x) for x in names]
        runners = []
        for k, b in enumerate(bins):
            runners.append(("dpool%s" % (k if len(bins) > 1 else ""),
                            [os.path.join(os.path.abspath(b), "dpool"),
                             "--io-slots", str(a.parallel), "download",
                             "-o", "."] + urls))
        if not a.no_curl:
            cu = ["curl", "--parallel", "--parallel-max", str(a.parallel),
                  "-sS", "--fail", "--noproxy", "*"]
            for name, u in zip(names, urls):
                cu += ["-o", name, u]
            runners.append(("curl", cu))
        for k, b in enumerate(bins):
            print("dpool%s = %s" % (k if len(bins) > 1 else "", b))
        for rep in range(a.reps):
            for who, cmd in runners:
                out = os.path.join(d, "%s.%d" % (who, rep))
                os.mkdir(out)
                fig = timed(cmd, out, a.timeout)
                check(out, served)
                shutil.rmtree(out)
                figs.setdefault(who, []).append(fig)
                print("%-6s run %d: wall %.3f s  cpu %.3f s  minflt %d"
                      % ((who, rep) + fig), flush=True)
    finally:
        if ng:
            os.killpg(ng.pid, signal.SIGTERM)
            ng.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    print("load after: %s" % open("/proc/loadavg").read().strip())
    med = {}
    for who, runs in figs.items():
        med[who] = [statistics.median(x) for x in zip(*runs)]
        print("%-6s median of %d: wall %.3f s  cpu %.3f s  minflt %d"
              % (who, len(runs), med[who][0], med[who][1], med[who][2]))
    for who in med:
        if who != "curl" and "curl" in med:
            print("%s/curl: wall %.2fx  cpu %.2fx"
                  % (who, med[who][0] / med["curl"][0],
                     med[who][1] / med["curl"][1]))

if __name__ == "__main__":
    main()
