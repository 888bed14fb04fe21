"""A transposing copy that runs on every numba thread.

NumPy's ``ascontiguousarray(x.T)`` is one thread and strided on one side. The MAC engine
transposes each B operand (quantized along K as B^T rows, consumed as K x N) and would
otherwise spend a serial millisecond per 512 x 512 operand there, which caps what a second
thread can gain on a GEMM of that size. The copy here goes in square tiles that fit the L1
cache, tile rows in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from hbfpsim.formats.threads import threads_for

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))   # native order: what numba takes
TILE = 32   # elements per side of a tile: 32 x 32 float64 = 8 KiB read, 8 KiB written


@njit(parallel=True, cache=True)
def _transpose_into(src, dst):
    rows, cols = src.shape
    for t in prange(-(-rows // TILE)):
        r0 = t * TILE
        for c0 in range(0, cols, TILE):
            for c in range(c0, min(c0 + TILE, cols)):
                for r in range(r0, min(r0 + TILE, rows)):
                    dst[c, r] = src[r, c]


def transposed(x: np.ndarray, dtype: type | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
    """``x.T`` as a C-ordered array of ``dtype`` (default: x's), for a 2-D ``x`` (C-ordered,
    or any layout NumPy can make C-ordered); values convert as ``astype``. ``out``: a
    C-ordered array of x.T's shape to write into instead of a new one."""
    src = np.ascontiguousarray(x)
    if out is None:
        out = np.empty(src.shape[::-1], dtype or src.dtype)
    if src.dtype in FLOATS and out.dtype in FLOATS:
        with threads_for(src.size):
            _transpose_into(src, out)
    else:            # other dtypes (integers, big-endian floats): NumPy, one thread
        out[...] = src.T
    return out
