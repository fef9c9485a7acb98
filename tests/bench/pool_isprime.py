#!/usr/bin/python3
"""pool_isprime.py - the classic multiprocessing lesson as a whole program,
the Python side of compare.py's W7: read one integer per line from stdin,
multiprocessing.Pool(N).map(is_prime, xs), write "x: prime" / "x: not
prime" lines (dpool isprime's text output) to stdout.

    seq 1 1000000 | /usr/bin/python3 tests/bench/pool_isprime.py [N]
"""
import multiprocessing
import os
import sys


def is_prime(n):
    """Deterministic trial division (exact for these sizes)."""
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0:
        return False
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def main():
    procs = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()
    xs = [int(line) for line in sys.stdin]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        flags = pool.map(is_prime, xs)
    out = sys.stdout
    out.writelines("%d: %s\n" % (x, "prime" if f else "not prime")
                   for x, f in zip(xs, flags))
    out.flush()


if __name__ == "__main__":
    main()
