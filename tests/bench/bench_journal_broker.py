#!/usr/bin/env python3
"""bench_journal_broker.py - what `dpool-broker --journal DIR` costs a
running broker, on compare.py's seed workloads.

For each mode (no journal; --journal with the default --fsync-ms 50;
--journal --fsync-ms 0) it starts a broker on ipc:// in a temp dir and a
worker (2 processes, 8 io slots, loopback allowed for the downloads), runs
the dpool side of these workloads with `--broker`, and stops both:

  tiny   dpool bench --type isprime -n 20000 --rounds 1 (W1): per job
         (chunksize 1) and auto-chunked, jobs/s
  rtt    dpool bench --rounds 2000 -n 1 (W2): round trip p50 / p99, us
  hash   dpool hash, PBKDF2-SHA512 x 200000 over 8 x 100 KiB (W3), wall s
  factor dpool factor of 20,000 numbers in [2^62, 2^64) (W4), wall s
  dl     dpool download of 64 x 1 MiB from a local nginx, bodies back to
         the client (W5), wall s
  cli    dpool isprime < 1,000,000 lines > file (W7), wall s

Beside each figure: the broker's CPU time (user + system, /proc/PID/stat)
and the bytes it wrote (wchar, /proc/PID/io: the journal, as it sends over
ipc with send(), not write()) during that workload: counts that depend far
less on the machine's load than the wall times.

Modes run interleaved (none, 50, 0, none, 50, 0 ...) so load drift hits
all three; medians are printed. The journal lives under --dir (default:
the build dir), which must be on a disk, not a tmpfs.

    python3 tests/bench/bench_journal_broker.py [--bin build/bin]
        [--reps 3] [--dir DIR] [--only tiny,rtt]
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_download  # noqa: E402  (nginx helpers)

MODES = (("none", None), ("journal, fsync 50 ms", "50"),
         ("journal, fsync 0", "0"))
ALL = ("tiny", "rtt", "hash", "factor", "dl", "cli")


def run(cmd, stdin=None, stdout=subprocess.PIPE, timeout=600):
    t0 = time.perf_counter()
    cp = subprocess.run(cmd, stdin=stdin, stdout=stdout,
                        stderr=subprocess.PIPE, timeout=timeout)
    dt = time.perf_counter() - t0
    if cp.returncode != 0:
        sys.exit("%s exited %d: %s" % (" ".join(cmd[:4]), cp.returncode,
                                        cp.stderr.decode()[-400:]))
    return dt, cp.stdout


def wait_ready(dp, ep, deadline_s=20):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        cp = subprocess.run([dp, "--broker", ep, "status", "--format",
                             "json"], capture_output=True, timeout=10)
        if cp.returncode == 0:
            try:
                j = json.loads(cp.stdout)
            except ValueError:
                j = {}
            if j.get("workers", 0) >= 1 and j.get("slots", j.get(
                    "cpu_slots", 1)):
                return
        time.sleep(0.1)
    sys.exit("broker/worker not ready")


def proc_cost(pid):
    """CPU seconds (user + system) and bytes written so far by pid."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    wchar = 0
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("wchar:"):
                wchar = int(line.split()[1])
    return cpu, wchar


class Bench:
    def __init__(self, a, tmp, urls):
        self.a, self.tmp, self.urls = a, tmp, urls
        b = os.path.abspath(a.bin)
        self.dp = os.path.join(b, "dpool")
        self.broker = os.path.join(b, "dpool-broker")
        self.worker = os.path.join(b, "dpool-worker")
        rng = random.Random(42)
        self.nums = [str(rng.randrange(2 ** 62, 2 ** 64))
                     for _ in range(20000)]
        self.files = []
        for k in range(8):
            p = os.path.join(tmp, "h%d.bin" % k)
            with open(p, "wb") as f:
                f.write(random.Random(k).randbytes(100 * 1024))
            self.files.append(p)
        self.lines = os.path.join(tmp, "w7.in")
        with open(self.lines, "w") as f:
            f.writelines("%d\n" % i for i in range(1, 1000001))

    def one(self, what, ep):
        d = [self.dp, "--broker", ep]
        if what == "tiny":
            _, out = run(d + ["bench", "--type", "isprime", "-n", "20000",
                              "--rounds", "1", "--format", "json"])
            tp = {t["name"]: t for t in json.loads(out)["throughput"]}
            return {"per job jobs/s": tp["per job (chunksize 1)"][
                "jobs_per_s"], "auto jobs/s": tp["auto-chunked"][
                "jobs_per_s"]}
        if what == "rtt":
            _, out = run(d + ["bench", "--rounds", "2000", "-n", "1",
                              "--format", "json"])
            lat = json.loads(out)["latency_us"]
            return {"rtt p50 us": lat["p50"], "rtt p99 us": lat["p99"]}
        if what == "hash":
            dt, _ = run(d + ["hash", "--algo", "sha512", "--pbkdf2",
                             "200000", "--salt", "salt"] + self.files)
            return {"hash wall s": dt}
        if what == "factor":
            dt, _ = run(d + ["factor"] + self.nums)
            return {"factor wall s": dt}
        if what == "dl":
            out = tempfile.mkdtemp(dir=self.tmp)
            dt, _ = run(d + ["download", "-o", out] + self.urls)
            shutil.rmtree(out)
            return {"download wall s": dt}
        if what == "cli":
            with open(self.lines, "rb") as fi:
                dt, _ = run(d + ["isprime"], stdin=fi,
                            stdout=subprocess.DEVNULL)
            return {"1M-line CLI wall s": dt}
        raise ValueError(what)

    def mode(self, fsync, only):
        d = tempfile.mkdtemp(dir=self.tmp)
        ep = "ipc://%s/b" % d
        bargs = [self.broker, "--bind", ep, "--log-level", "warn"]
        if fsync is not None:
            bargs += ["--journal", os.path.join(self.a.dir_run, os.path
                                                .basename(d)),
                      "--fsync-ms", fsync]
        procs = []
        try:
            procs.append(subprocess.Popen(bargs))
            procs.append(subprocess.Popen(
                [self.worker, "--connect", ep, "--processes", "2",
                 "--io-slots", "8", "--allow-net", "127.0.0.0/8",
                 "--log-level", "warn"]))
            wait_ready(self.dp, ep)
            res = {}
            for what in only:
                c0, w0 = proc_cost(procs[0].pid)
                res.update(self.one(what, ep))
                c1, w1 = proc_cost(procs[0].pid)
                res["%s: broker cpu s" % what] = c1 - c0
                res["%s: broker MB written" % what] = (w1 - w0) / 1e6
            return res
        finally:
            for p in reversed(procs):
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if fsync is not None:
                shutil.rmtree(os.path.join(self.a.dir_run,
                                           os.path.basename(d)),
                              ignore_errors=True)
            shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "..", "build",
                                                  "bin"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join(HERE, "..", "..",
                                                  "build"))
    ap.add_argument("--only", default=",".join(ALL))
    a = ap.parse_args()
    only = a.only.split(",")
    for w in only:
        if w not in ALL:
            sys.exit("unknown workload %s (%s)" % (w, ",".join(ALL)))
    tmp = tempfile.mkdtemp(prefix="dp-bench-jrn-")
    os.chmod(tmp, 0o755)
    a.dir_run = tempfile.mkdtemp(prefix="dp-jrn-", dir=a.dir)
    ng = None
    figs = {m: {} for m, _ in MODES}
    print("load before: %s" % open("/proc/loadavg").read().strip(),
          flush=True)
    try:
        urls = []
        if "dl" in only:
            root = os.path.join(tmp, "www")
            os.mkdir(root)
            os.chmod(root, 0o755)
            for k in range(64):
                p = os.path.join(root, "f%02d.bin" % k)
                with open(p, "wb") as f:
                    f.write(random.Random(5000 + k).randbytes(1 << 20))
                os.chmod(p, 0o644)
            ng, port = bench_download.start_nginx(tmp, root)
            urls = ["http://127.0.0.1:%d/f%02d.bin" % (port, k)
                    for k in range(64)]
        b = Bench(a, tmp, urls)
        for rep in range(a.reps):
            for name, fsync in MODES:
                res = b.mode(fsync, only)
                print("run %d %-22s %s" % (rep, name, "  ".join(
                    "%s %.4g" % kv for kv in res.items())), flush=True)
                for k, v in res.items():
                    figs[name].setdefault(k, []).append(v)
    finally:
        if ng:
            os.killpg(ng.pid, signal.SIGTERM)
            ng.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(a.dir_run, ignore_errors=True)
    print("load after: %s" % open("/proc/loadavg").read().strip())
    keys = list(figs[MODES[0][0]])
    print("\nmedian of %d | " % a.reps + " | ".join(m for m, _ in MODES))
    for k in keys:
        base = statistics.median(figs[MODES[0][0]][k])
        cells = []
        for m, _ in MODES:
            v = statistics.median(figs[m][k])
            cells.append("%.4g" % v if m == MODES[0][0] else
                         "%.4g (%+.0f%%)" % (v, 100.0 * (v - base) / base))
        print("%s | %s" % (k, " | ".join(cells)))


if __name__ == "__main__":
    main()
