"""What claiming a stream name across workers costs (:mod:`fms.cluster.claims`).

A claim is a record lock on one byte of a file, taken inside a publish decision on the worker's
reactor thread, so its cost is a pause of that worker. The kernel keeps a file's locks in a
list, so the cost grows with the names claimed elsewhere: this benchmark has another process
hold ``--held`` claims, then times ``--rounds`` rounds of a claim of a free name, a refused
claim of a held one and a release, and prints the median, 99th percentile and maximum of each.

Run:  .venv/bin/python -m benchmarks.claims --held 100 --rounds 20000
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time

from fms.cluster.claims import NameLocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.claims")
    parser.add_argument("--held", type=int, default=100, help="names another worker holds")
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--folder", default=None, help="where the claims file goes (a temp dir)")
    args = parser.parse_args(argv)
    if args.held < 1:
        parser.error("--held must be at least 1")
    folder = tempfile.mkdtemp(prefix="pyfms-claims-", dir=args.folder)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # the other worker: hold the names until told to end
        other = NameLocks(folder)
        for n in range(args.held):
            assert other.claim("live", f"held{n}")
        os.write(ready_w, b"x")
        os.read(done_r, 1)
        os._exit(0)
    os.read(ready_r, 1)
    here = NameLocks(folder)
    timings: dict[str, list[float]] = {"claim": [], "refused claim": [], "release": []}
    for n in range(args.rounds):
        t0 = time.perf_counter()
        assert here.claim("live", f"free{n}")
        t1 = time.perf_counter()
        assert not here.claim("live", f"held{n % args.held}")
        t2 = time.perf_counter()
        here.release("live", f"free{n}")
        t3 = time.perf_counter()
        timings["claim"].append(t1 - t0)
        timings["refused claim"].append(t2 - t1)
        timings["release"].append(t3 - t2)
    os.write(done_w, b"x")
    os.waitpid(child, 0)
    here.close()
    shutil.rmtree(folder)
    print(f"claims files in {os.path.dirname(folder)}, {args.held} names held by another process")
    for what, values in timings.items():
        values.sort()
        median = values[len(values) // 2] * 1e6
        p99 = values[int(len(values) * 0.99)] * 1e6
        top = values[-1] * 1e6
        print(f"{what:>14}: median {median:7.1f} us  p99 {p99:8.1f} us  max {top:8.0f} us")
    print(
        "reproduce: "
        + shlex.join(
            [sys.executable, "-m", "benchmarks.claims", *(sys.argv[1:] if argv is None else argv)]
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
