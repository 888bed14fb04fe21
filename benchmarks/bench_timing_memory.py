"""Time and memory of the timing model: per fold (``simulate(..., events=True)``, the path
that keeps arrays over every fold, which ``simulate`` took for every GEMM before) against
grouped (``hbfpsim.array.grouped``: at most 3 x 3 fold kinds and a recurrence that jumps over
repeating stretches), on the array32 preset (32 x 32 WS, HBFP4, 64 KiB buffers, 32 B/cycle
of DRAM with 100 cycles of latency).

    (a) square GEMMs from 4 Ki folds up to 2^22 folds (the most the per-fold path takes),
        both engines, each in a fresh interpreter: wall time (best of --repeats after a
        warm-up) and peak resident set (ru_maxrss), and whether their cycles agree
    (b) a 400000^3 GEMM (1.56e8 folds): grouped only
    (c) the 161 GEMMs of one ResNet-50 training step (hbfpsim.trace.models, batch 32), both
        engines in this process, and the ratio of their wall times

    python benchmarks/bench_timing_memory.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from timing import best_time, machine

from hbfpsim.array import grouped, load, simulate
from hbfpsim.numerics import Numerics
from hbfpsim.trace.models import resnet50_training_step

CHILD = r"""
import json, resource, sys, time
from hbfpsim.array import grouped, load, simulate
from hbfpsim.numerics import Numerics
engine, m, n, k, repeats = json.loads(sys.argv[1])
config = load("array32")
simulate(config, 64, 64, 64), simulate(config, 64, 64, 64, events=True)   # numba caches
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run = {"per-fold": lambda *gemm: simulate(*gemm, events=True),
       "grouped": lambda c, *gemm: grouped.grouped_report(c, Numerics.of(c), *gemm)}[engine]
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    report = run(config, m, n, k)
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"seconds": best, "baseline_kib": baseline, "cycles": report.total_cycles}))
"""

# ru_maxrss survives fork and exec on Linux: a child of this process would report this
# process's peak. A small launcher (~12 MB) runs the measured interpreter and reads its
# children's ru_maxrss instead.
LAUNCHER = r"""
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], check=True,
                      capture_output=True, text=True)
result = json.loads(done.stdout.splitlines()[-1])
result["peak_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(result))
"""


def measure(engine: str, m: int, n: int, k: int, repeats: int) -> dict:
    """Best wall time (s), peak RSS and its baseline after imports (KiB), total cycles."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, CHILD,
                           json.dumps([engine, m, n, k, repeats])],
                          check=False, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{engine} {m}x{n}x{k} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def row(label: str, r: dict) -> str:
    peak, extra = r["peak_kib"] / 1024, (r["peak_kib"] - r["baseline_kib"]) / 1024
    return (f"  {label:9} {r['seconds'] * 1e3:10.2f} ms  peak {peak:7.0f} MiB "
            f"({extra:+6.0f} MiB over the imports and warm-up)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    print(f"array32 (32 x 32 WS); best of {args.repeats} (1 above 2^20 folds), after a warm-up\n")

    print("(a) per fold vs grouped, each in a fresh interpreter")
    for side in (2048, 8192, 32768, 65536):          # (side / 32)^2 folds: 4 Ki .. 4 Mi
        folds = (side // 32) ** 2
        repeats = args.repeats if folds < 2**20 else 1
        per_fold = measure("per-fold", side, side, side, repeats)
        fast = measure("grouped", side, side, side, repeats)
        agree = "agree" if per_fold["cycles"] == fast["cycles"] else "DISAGREE"
        print(f" {side}^3 GEMM, {folds:,} folds: cycles {agree} ({fast['cycles']:,}); "
              f"time ratio {per_fold['seconds'] / fast['seconds']:,.0f}x")
        print(row("per-fold", per_fold))
        print(row("grouped", fast))

    huge = 400_000
    print(f"\n(b) {huge}^3 GEMM, {(huge // 32) ** 2:,} folds: grouped only")
    fast = measure("grouped", huge, huge, huge, args.repeats)
    print(f"  {fast['cycles']:,} cycles")
    print(row("grouped", fast))

    config = load("array32")
    numerics = Numerics.of(config)
    gemms = [(m, n, k) for _, _, m, n, k, _ in resnet50_training_step()]

    def per_fold() -> list[int]:
        return [simulate(config, *g, events=True).total_cycles for g in gemms]

    def fast() -> list[int]:
        return [grouped.grouped_report(config, numerics, *g).total_cycles for g in gemms]

    agree = "agree" if per_fold() == fast() else "DISAGREE"          # also the warm-up
    slow_s, fast_s = best_time(per_fold, args.repeats), best_time(fast, args.repeats)
    folds = sum(simulate(config, *g).folds for g in gemms)
    print(f"\n(c) ResNet-50 training step, {len(gemms)} GEMMs, {folds:,} folds: cycles {agree}")
    print(f"  per-fold {slow_s * 1e3:8.1f} ms\n  grouped  {fast_s * 1e3:8.1f} ms\n"
          f"  per-fold / grouped = {slow_s / fast_s:.2f}")


if __name__ == "__main__":
    main()
