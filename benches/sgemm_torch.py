#!/usr/bin/env python3
"""The sgemm ceiling as PyTorch (MKL) reaches it: C = A·B, A and B n×n float32 uniform in [-1, 1),
3 warm-up products, then max(20, enough to fill --min-time) timed ones; one JSON line with the
fields of `attend bench gemm --json` (bench "sgemm", impl "torch").

  /opt/peers/bin/python benches/sgemm_torch.py --size 2048 --threads 2 --min-time 1.0
"""
import argparse
import json
import math
import os
import statistics
import time

import torch


def cpu_snapshot():
    """(monotonic time, machine busy jiffies, this process's jiffies), as ../shared/peers does."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    with open("/proc/self/stat") as f:
        s = f.read().rsplit(")", 1)[1].split()
    return time.monotonic(), busy, int(s[11]) + int(s[12])


def foreign_cpu(a, b):
    dt = b[0] - a[0]
    if dt <= 0:
        return 0.0
    other = (b[1] - a[1]) - (b[2] - a[2])
    return round(max(0.0, other / (dt * os.sysconf("SC_CLK_TCK") * os.cpu_count())), 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    n = args.size
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=g) * 2 - 1
    b = torch.rand(n, n, generator=g) * 2 - 1
    c = torch.empty(n, n)
    last = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        last = time.perf_counter() - t0
    reps = min(100_000, max(20, math.ceil(args.min_time / max(last, 1e-6))))
    snap0 = cpu_snapshot()
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        ms.append((time.perf_counter() - t0) * 1e3)
    snap1 = cpu_snapshot()
    ms.sort()
    flops = 2.0 * n ** 3
    med = statistics.median(ms)
    print(json.dumps({
        "bench": "sgemm", "impl": "torch", "torch": torch.__version__, "size": n,
        "threads": torch.get_num_threads(), "min_ms": ms[0], "median_ms": med, "max_ms": ms[-1],
        "reps": reps, "gflops_median": flops / (med * 1e-3) / 1e9,
        "gflops_best": flops / (ms[0] * 1e-3) / 1e9, "foreign_cpu": foreign_cpu(snap0, snap1),
    }), flush=True)


if __name__ == "__main__":
    main()
