"""The first impression: wall time of the README's quickstart, ``hbfpsim run
configs/quickstart.toml``, as a whole process, cold (numba's cache empty, as after a fresh
install) and warm (a rerun), with the machine's load average at the start of each run.

A cold run splits its compilation over two processes (``replay.precompile``); the baseline, run
side by side in the same rounds, is the same cold run with that split turned off
(``HBFPSIM_WARM_UP=never``). Each cold run gets an empty numba cache of its own
(``NUMBA_CACHE_DIR``); the warm reruns reuse the last one. Targets: cold at most 30 s, warm
at most 5 s.

    python benchmarks/bench_coldstart.py [--rounds 2] [--reruns 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import machine

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cold": 30.0, "warm": 5.0}


def quickstart(cache: Path, out: Path, warm_up: str) -> tuple[float, float]:
    """(wall seconds of one whole ``hbfpsim run`` process, load average at its start)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "HBFPSIM_WARM_UP": warm_up}
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hbfpsim", "run", "configs/quickstart.toml",
                    "--out", str(out), "--quiet", "--force"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="cold runs of each kind")
    parser.add_argument("--reruns", type=int, default=3, help="warm reruns")
    args = parser.parse_args()
    print(machine(), f"{os.cpu_count()} CPUs")
    times: dict[str, list[tuple[float, float]]] = {"cold": [], "cold, no split": [],
                                                   "warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        for r in range(args.rounds):
            for label, warm_up in (("cold", "auto"), ("cold, no split", "never")):
                cache = Path(tmp) / f"cache-{label}-{r}"
                times[label].append(quickstart(cache, out, warm_up))
        for _ in range(args.reruns):
            times["warm"].append(quickstart(cache, out, "auto"))
    print(f"\n{'run':16} {'wall s (each)':>28} {'median':>8} {'load at start':>16}")
    for label, runs in times.items():
        walls = " ".join(f"{w:.1f}" for w, _ in runs)
        loads = " ".join(f"{load:.2f}" for _, load in runs)
        print(f"{label:16} {walls:>28} {statistics.median(w for w, _ in runs):8.1f} "
              f"{loads:>16}")
    cold, base = (statistics.median(w for w, _ in times[k]) for k in ("cold", "cold, no split"))
    print(f"\ncold run: {cold / base:.2f}x the time without the split "
          f"(target {TARGETS['cold']:.0f} s; warm target {TARGETS['warm']:.0f} s)")


if __name__ == "__main__":
    main()
