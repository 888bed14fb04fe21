"""Sweep throughput: about 10,000 timing + cost runs over the ResNet-50 training step.

The sweep (written to a temporary spec): array rows and columns in {16, ..., 256} (not both
256), three dataflows, four numerics variants (FP32, BF16, HBFP8, HBFP4 with block
accumulation), DRAM at 4 to 256 bytes/cycle and latencies of 0 to 400 cycles: 10,080 runs,
each replaying the trace's 161 GEMMs. ``hbfpsim.sweep.driver.run`` executes it on a local
process pool (``--workers``, default 2) into a temporary store, per-GEMM rows included; the
figure is its wall time, runs per second, and the ratio to running the same runs one by one
in one process (``batch.run_one`` per run with the timing caches cleared before each, as a
separate replay of each configuration would be), measured in the same invocation on an
evenly spread sample of ``--sample`` runs and scaled to all of them.
Target: the whole sweep in under 60 s on 2 cores.

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
TARGET_SECONDS = 60.0
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
        store = Path(tmp) / "bench.sqlite"
        outcome = run(spec, store, workers=args.workers, progress=False)
        with Store(store) as db:
            status = db.status()
        size = store.stat().st_size
        alone = one_by_one(spec, args.sample)
    done = sum(s["done"] for s in status["sweeps"].values())
    failed = sum(s["failed"] for s in status["sweeps"].values())
    print(f"sweep: {outcome.runs:,} runs ({done:,} done, {failed:,} refused by the models), "
          f"{status['gemm_rows']:,} GEMM rows, store {size / 2**20:.0f} MiB")
    print(f"{args.workers} worker processes: {outcome.seconds:.1f} s, "
          f"{outcome.runs / outcome.seconds:.0f} runs/s")
    one = alone * outcome.runs
    print(f"one by one in one process (sample of {args.sample}, caches cleared per run): "
          f"{alone * 1e3:.1f} ms/run, {one:.0f} s for all -> the sweep is "
          f"{one / outcome.seconds:.1f}x faster")
    verdict = "met" if outcome.seconds < TARGET_SECONDS else "not met"
    print(f"target: under {TARGET_SECONDS:.0f} s on 2 cores: {verdict}")


if __name__ == "__main__":
    main()
