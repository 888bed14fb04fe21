"""Compile the block-accumulation kernel in a second process while the run starts.

A cold run (a fresh install: numba's on-disk cache is empty) spends most of its first
minute compiling two kernels, the sequential one (float accumulators) and the cascade of the
BLAS fast path (integer block accumulators), one after the other, on one core. When a run
needs both and the machine has a second core, a helper process compiles the cascade (with a
tiny HBFP GEMM of the argument types the replay uses) and numba's cache hands the result to
this process, which meanwhile compiles the sequential kernel. On a warm cache the helper
only loads it, and nothing changes but a second of the other core's time. The helper ignores
Ctrl-C, prints nothing, and is a daemon: it never outlives the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys


def _compile_cascade() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
        import numpy as np

        from hbfpsim.mac import matmul
        a = np.linspace(-1, 1, 2 * 128, dtype=np.float32).reshape(2, 128)
        matmul(a, a.T.copy(), "hbfp4", plan="fixed13*32 > fp32")


_started = False


def start(needed: bool) -> None:
    """Start the helper, once per process, when ``needed`` (the run has block accumulators
    and float ones) and there is a second core."""
    global _started
    if _started or not needed or (os.cpu_count() or 1) < 2 or sys.platform == "win32":
        return
    _started = True
    multiprocessing.get_context("spawn").Process(target=_compile_cascade, daemon=True).start()
