"""Sweep throughput: 10,080 timing + cost runs over the ResNet-50 training step.

The sweep (written to a temporary spec): array rows and columns in {16, ..., 256} (not both
256), three dataflows, four numerics variants (FP32, BF16, HBFP8, HBFP4 with block
accumulation), DRAM at 4 to 256 bytes/cycle and latencies of 0 to 400 cycles: 10,080 runs,
each replaying the trace's 161 GEMMs. ``hbfpsim.sweep.driver.run`` executes it into a fresh
temporary store three times, side by side in one invocation: on ``--workers`` worker
processes (default 2) storing each run's totals (the default for a timing sweep), on one
worker process the same way, and on ``--workers`` processes with every run's per-GEMM rows
too (``--gemm-rows``). Printed: each wall time and runs per second, the speed-up of the
workers over one, and the cost of the GEMM rows; and, for scale, the same runs one by one in
this process (``batch.run_one`` per run with the caches cleared before each, as separate
replays of each configuration would be), timed on an evenly spread sample of ``--sample``
runs and scaled to all of them; it runs first, which leaves numba's cache warm for the
sweeps.
Targets on 2 cores: the sweep in at most 20 s, 2 workers at least 1.8x one, GEMM rows at
most 2x the time without them.

    python benchmarks/bench_sweep.py [--workers 2] [--sample 400]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from timing import machine

from hbfpsim.array import grouped
from hbfpsim.sweep import batch
from hbfpsim.sweep import load
from hbfpsim.sweep.batch import Job, Task, run_one
from hbfpsim.sweep.driver import run
from hbfpsim.sweep.store import Store

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 20.0
TARGET_SPEEDUP = 1.8       # workers over one, with 2 workers
TARGET_ROWS = 2.0          # with GEMM rows over without
SPEC = """
[sweep]
name = "bench"
traces = ["{trace}"]
base = "array32"
constraints = ["rows * cols < 65536"]

[axes]
rows = {{start = 16, stop = 256, factor = 2}}
cols = {{start = 16, stop = 256, factor = 2}}
dataflow = ["ws", "os", "is"]
input_kib = 1024
weight_kib = 1024
output_kib = 1024
dram_latency_cycles = [0, 50, 100, 200, 400]
dram_bytes_per_cycle = {{start = 4, stop = 256, factor = 2}}

[[variant]]
name = "fp32"
input = "fp32"

[[variant]]
name = "bf16"
input = "bf16"

[[variant]]
name = "hbfp8"
input = "hbfp8"
block_accumulator = "fixed21"

[[variant]]
name = "hbfp4"
input = "hbfp4"
block_accumulator = "fixed13"
"""


def one_by_one(spec, sample: int) -> float:
    """Seconds per run, each run alone (caches cleared), on an evenly spread sample."""
    runs = spec.runs()
    picked = runs[::max(1, len(runs) // sample)][:sample]
    job = Job(tuple(p.resolve() for p in spec.traces))
    run_one(job, Task(picked[0].key, picked[0].config, picked[0].schedule))   # warm up
    total = 0.0
    for r in picked:
        batch._COSTINGS.clear()
        grouped._demand.cache_clear()
        start = time.perf_counter()
        run_one(job, Task(r.key, r.config, r.schedule))
        total += time.perf_counter() - start
    return total / len(picked)


def sweep(spec, folder: Path, name: str, workers: int, gemm_rows: bool
          ) -> tuple[float, int, int]:
    """Seconds the whole sweep takes into a fresh store, its runs and the GEMM rows stored."""
    store = folder / f"{name}.sqlite"
    outcome = run(spec, store, workers=workers, gemm_rows=gemm_rows, progress=False)
    with Store(store) as db:
        status = db.status()
    failed = sum(s["failed"] for s in status["sweeps"].values())
    assert outcome.computed == outcome.runs and not failed, (outcome, status["errors"])
    return outcome.seconds, outcome.runs, status["gemm_rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", type=int, default=400)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.toml"
        path.write_text(SPEC.format(trace=ROOT / "traces" / "resnet50_step"))
        spec = load(path)
        alone = one_by_one(spec, args.sample)      # first: numba's cache is then warm
        many, runs, _ = sweep(spec, Path(tmp), "many", args.workers, False)
        one, _, _ = sweep(spec, Path(tmp), "one", 1, False)
        rows, _, stored = sweep(spec, Path(tmp), "rows", args.workers, True)
        alone *= runs
    print(f"sweep: {runs:,} runs of {stored // runs} GEMMs each\n")
    print(f"{'':48} {'wall s':>7} {'runs/s':>7}")
    for label, seconds in ((f"{args.workers} workers, totals only (the default)", many),
                           ("1 worker, totals only", one),
                           (f"{args.workers} workers, with {stored:,} GEMM rows", rows),
                           (f"one by one in this process (sample of {args.sample})", alone)):
        print(f"{label:48} {seconds:7.1f} {runs / seconds:7.0f}")
    print()
    for label, value, met, target in (
            ("sweep", f"{many:.1f} s", many <= TARGET_SECONDS, f"<= {TARGET_SECONDS:.0f} s"),
            (f"{args.workers} workers over 1", f"{one / many:.2f}x",
             one / many >= TARGET_SPEEDUP, f">= {TARGET_SPEEDUP}x"),
            ("GEMM rows over totals only", f"{rows / many:.2f}x", rows / many <= TARGET_ROWS,
             f"<= {TARGET_ROWS}x")):
        print(f"{label:28} {value:>8}   target {target}: {'met' if met else 'not met'}")


if __name__ == "__main__":
    main()
