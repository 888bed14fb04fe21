"""Threads: small work runs on the calling thread; BLAS inside numba kernels on one each.

The numba kernels are parallel (``prange``); waking the thread pool costs little on an idle
machine but several milliseconds when the cores are busy, which is more than a small call's
whole work (an HBFP4 quantization of 32 x 64 values: 8 ms with two threads on this project's
loaded 2-core machine, 0.16 ms with one). The formats' rounding kernels have serial twins
they pick below ``PARALLEL_ELEMENTS`` (formats/kernels.py, through ``parallel``): switching
numba's thread count costs about 15 us a call, more than rounding a small tensor. Other
kernels (the MAC engine's) use ``threads_for(items)``, which runs calls below a size
threshold with one numba thread and restores the caller's setting afterwards.

Inside ``calling_thread_only()`` every kernel runs on the calling thread whatever its size:
emulated training calls hbfpsim between torch's operations, and torch's thread pool and
numba's spinning against each other on the same cores cost more than either gains.
``one_blas_thread()`` keeps BLAS to one thread per call while numba threads call it.
Thread counts start from the CPUs the process may use (its affinity mask): numba's pool
(``NUMBA_NUM_THREADS`` overrides it) and torch's (``OMP_NUM_THREADS``) both size
themselves so.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba
from threadpoolctl import ThreadpoolController

def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one, as
    numba's default thread count; else every CPU)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


PARALLEL_ELEMENTS = 2**16     # quantization: elements below which one thread is used
PARALLEL_MACS = 2**20         # GEMM kernels: multiply-accumulates below which one is used


_CALLER = threading.local()           # .only: this thread's kernels stay on it


def parallel(items: int, threshold: int = PARALLEL_ELEMENTS) -> bool:
    """Whether work of ``items`` goes to numba's thread pool: at least ``threshold`` of
    them, outside ``calling_thread_only()``."""
    return items >= threshold and not getattr(_CALLER, "only", False)


class calling_thread_only:
    """Inside the block, hbfpsim's numba kernels started from this thread run on it alone
    (the module docstring says why). A class, not a generator: emulated training enters it
    around every GEMM, and ``__enter__`` / ``__exit__`` cost a fraction of a
    ``contextmanager``'s."""

    __slots__ = ("before",)

    def __enter__(self) -> None:
        self.before = getattr(_CALLER, "only", False)
        _CALLER.only = True

    def __exit__(self, *exc: object) -> None:
        _CALLER.only = self.before


@contextmanager
def threads_for(items: int, threshold: int = PARALLEL_ELEMENTS) -> Iterator[None]:
    """One numba thread for the block when ``items < threshold`` (or inside
    ``calling_thread_only()``), else the caller's."""
    before = numba.get_num_threads()
    if parallel(items, threshold) or before == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


_BLAS: list[ThreadpoolController] = []


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's and SciPy's BLAS (the one numba kernels call for ``np.dot``) run each call on
    one thread inside the block (threadpoolctl; restored afterwards), for numba kernels that
    call BLAS from each of their own threads: otherwise two thread pools fight over the
    cores, and OpenBLAS runs concurrent multi-threaded calls one at a time. The limit is
    process-wide while the block runs."""
    if not _BLAS:
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS, so the limit sees it)
        _BLAS.append(ThreadpoolController())
    with _BLAS[0].limit(limits=1, user_api="blas"):
        yield
