"""Replay throughput (hbfpsim.replay.run) against NumPy float32 matmul of the same GEMMs.

  1. the shipped operand traces (traces/cnn_digits, traces/mlp_digits) on array32, every
     output evaluated: exact MAC/s (sum of sampled * k over rows) and records/s per variant
  2. four 1024^3 GEMMs with Gaussian operands (a temporary trace), every output evaluated:
     HBFP4 with fixed13 block accumulation (BLAS fast path) and FP8 E4M3 into FP16 (sequential
     kernel). Targets: HBFP4 within 10x of float32 BLAS time; non-BLAS paths at least
     400 M MAC/s per core
  3. traces/resnet50_step (shape only) with synthetic Gaussian operands, default sampling
     budget, hbfp4 and fp32: wall time per variant. Target: under 30 s per variant

A replay is timed end to end (trace opening, array model, quantization, MAC engine, float64
reference, metrics); each run costs its shapes afresh (a run's ``Costing`` lives as long as the run),
numba is warmed up once beforehand (compilation excluded). BLAS runs on one thread, numba on
--threads (default: all), so "per core" divides MAC/s by the numba threads.

    python benchmarks/bench_replay.py [--repeats 3] [--quick] [--threads N]
"""

from __future__ import annotations

import os

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - environment variables, read when BLAS loads
    threadpool_limits = None
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # not OMP_: numba may use it
        os.environ[_var] = "1"

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from timing import best_time, machine

from hbfpsim import trace as traces
from hbfpsim.replay.run import run
from hbfpsim.replay.runfile import parse

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "hbfp4": {"input": "hbfp4", "block_accumulator": "fixed13"},
    "fp8>fp16": {"input": "fp8_e4m3", "accumulator": "fp16", "output": "fp32"},
    "fp32": {"input": "fp32"},
}
EVERY_OUTPUT = {"max_outputs": 2**26, "max_macs": 2**40}   # the run file's maxima
HBFP4_MAX_RATIO, NON_BLAS_MAC_PER_CORE, RESNET_MAX_SECONDS = 10.0, 400e6, 30.0


def spec(trace: Path, variants: list[str], **run_keys):
    table = {"traces": [str(trace)], "arrays": ["array32"], "out": "runs/bench", **run_keys}
    return parse({"run": table, "variant": [{"name": v.replace(">", "-"), **VARIANTS[v]}
                                            for v in variants]},
                 source="bench", base=ROOT)


def replay_times(run_spec, repeats: int):
    """Wall times of ``repeats`` replays and the last report (each replay costs its shapes
    afresh: a run's ``Costing`` lives as long as the run)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = run(run_spec, progress=False)
        times.append(time.perf_counter() - t0)
    return times, report


def blas_time(trace: Path, repeats: int) -> float:
    """float32 matmul of every record's operands (loaded first), best of ``repeats``."""
    ops = [(np.array(g.a), np.array(g.b)) for g in traces.open(trace)]
    return best_time(lambda: [a @ b for a, b in ops], max(repeats, 5))


def subset(src: Path, records: int, dst: Path) -> Path:
    """The first ``records`` shape-only records of ``src`` as a trace in ``dst``."""
    opened = traces.open(src)
    with traces.TraceWriter(dst, opened.model, "subset", opened.capture) as writer:
        for r in opened.records[:records]:
            writer.add(r.layer, r.phase, r.m, r.n, r.k, step=r.step, epoch=r.epoch,
                       count=r.count)
    return dst


def gaussian_trace(size: int, dst: Path) -> Path:
    rng = np.random.default_rng(0)
    with traces.TraceWriter(dst, "synthetic", f"four {size}^3 GEMMs") as writer:
        for layer, phase in (("fc1", "fwd"), ("fc2", "fwd"), ("fc2", "bwd_data"),
                             ("fc1", "bwd_weight")):
            writer.add(layer, phase, size, size, size,
                       a=rng.standard_normal((size, size), dtype=np.float32),
                       b=rng.standard_normal((size, size), dtype=np.float32))
    return dst


def macs_of(report) -> int:
    return sum((r.sampled or 0) * r.k for r in report.rows)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case")
    parser.add_argument("--quick", action="store_true", help="a smaller subset (smoke run)")
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS,
                        help="numba threads (default: all)")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        bench(args, Path(tmp))


def bench(args: argparse.Namespace, tmp: Path) -> None:
    reps, threads = args.repeats, args.threads
    print(machine())
    print(f"numba threads {threads}, BLAS 1 thread; times: min / median of {reps} "
          f"({'quick subset' if args.quick else 'full'}); numba warmed up first (compilation "
          "excluded)")
    resnet = subset(ROOT / "traces/resnet50_step", 16 if args.quick else 161, tmp / "resnet")
    warm = subset(ROOT / "traces/resnet50_step", 4, tmp / "warm")
    run(spec(ROOT / "traces/mlp_digits", list(VARIANTS), **EVERY_OUTPUT), progress=False)
    run(spec(warm, ["hbfp4", "fp32"], synthetic="gaussian"), progress=False)
    if threadpool_limits is not None:   # now: every BLAS (scipy's too) has been loaded
        threadpool_limits(1, user_api="blas")

    print(f"\n1. shipped operand traces on array32, every output evaluated\n"
          f"{'trace':11} {'variant':9} {'records':>7} {'exact MACs':>11} {'time min/med':>17} "
          f"{'M MAC/s':>8} {'rec/s':>7} {'vs f32 BLAS':>12}")
    for name in ("mlp_digits",) if args.quick else ("cnn_digits", "mlp_digits"):
        path = ROOT / "traces" / name
        t_blas = blas_time(path, reps)
        print(f"{name:11} {'f32 BLAS':9} {len(traces.open(path)):7d} {'-':>11} "
              f"{t_blas * 1e3:10.2f} ms {'-':>14} {'-':>7} {1:11.1f}x")
        for v in VARIANTS:
            times, report = replay_times(spec(path, [v], **EVERY_OUTPUT), reps)
            best, med, macs = min(times), statistics.median(times), macs_of(report)
            print(f"{name:11} {v:9} {len(report.rows):7d} {macs:11d} {best:7.3f} / "
                  f"{med:6.3f} s {macs / best / 1e6:8.1f} {len(report.rows) / best:7.1f} "
                  f"{best / t_blas:11.0f}x")

    size = 256 if args.quick else 1024
    path = gaussian_trace(size, tmp / "gauss")
    t_blas = blas_time(path, reps)
    macs = 4 * size**3
    print(f"\n2. four {size}^3 GEMMs, Gaussian operands, every output evaluated "
          f"({macs / 1e9:.2f} G MACs)\n{'variant':9} {'path':10} {'time min/med':>17} "
          f"{'M MAC/s':>8} {'per core':>8} {'vs f32 BLAS':>12}  target")
    print(f"{'f32 BLAS':9} {'BLAS':10} {t_blas * 1e3:10.2f} ms {macs / t_blas / 1e6:17.0f} "
          f"{'':8} {1:11.1f}x")
    budget = {"max_outputs": 2**20, "max_macs": 2**30}
    for v, kind in (("hbfp4", "BLAS"), ("fp8>fp16", "sequential")):
        times, report = replay_times(spec(path, [v], **budget), reps)
        best, med = min(times), statistics.median(times)
        assert macs_of(report) == macs, "the budget must cover every output"
        rate, ratio = macs / best, best / t_blas
        target = (f"within {HBFP4_MAX_RATIO:.0f}x of BLAS: {verdict(ratio <= HBFP4_MAX_RATIO)}"
                  if kind == "BLAS" else f">= {NON_BLAS_MAC_PER_CORE / 1e6:.0f} M MAC/s/core: "
                  f"{verdict(rate / threads >= NON_BLAS_MAC_PER_CORE)}")
        print(f"{v:9} {kind:10} {best:7.3f} / {med:6.3f} s {rate / 1e6:8.0f} "
              f"{rate / threads / 1e6:8.0f} {ratio:11.1f}x  {target}")

    count = len(traces.open(resnet))
    print(f"\n3. resnet50_step ({count} shape-only records), synthetic Gaussian operands, "
          f"default sampling budget, array32, {threads} numba threads\n"
          f"{'variant':9} {'time min/med':>17} {'rec/s':>7} {'M MAC/s':>8}  target")
    for v in ("hbfp4", "fp32"):
        times, report = replay_times(spec(resnet, [v], synthetic="gaussian"), reps)
        best, med = min(times), statistics.median(times)
        print(f"{v:9} {best:7.2f} / {med:6.2f} s {count / best:7.1f} "
              f"{macs_of(report) / best / 1e6:8.1f}  < {RESNET_MAX_SECONDS:.0f} s: "
              f"{'(subset)' if args.quick else verdict(best < RESNET_MAX_SECONDS)}")


if __name__ == "__main__":
    main()
