"""Shared by the benchmark scripts (run them from the repository root)."""

import platform
import time
from collections.abc import Callable
from pathlib import Path


def machine() -> str:
    """The CPU model and the vector extensions numba compiles for, for every benchmark's
    header: figures from different machines are not comparable."""
    import llvmlite.binding as llvm
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    from numba.core import config
    if config.CPU_NAME:                  # NUMBA_CPU_NAME: numba compiles for that CPU
        return f"CPU: {model}, numba target {config.CPU_NAME} (NUMBA_CPU_NAME)"
    features = llvm.get_host_cpu_features()
    isa = [f for f in ("avx512f", "avx2", "fma", "neon") if features.get(f)]
    return f"CPU: {model}, numba target {llvm.get_host_cpu_name()} ({', '.join(isa) or 'no SIMD'})"


def best_time(fn: Callable[[], object], repeats: int, warmup: bool = False) -> float:
    """The fastest of ``repeats`` calls of ``fn``, in seconds: the least disturbed run on a
    shared machine. ``warmup``: one untimed call first."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
