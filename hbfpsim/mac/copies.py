"""Copies and reductions of operand arrays that run on every numba thread.

NumPy's ``ascontiguousarray(x.T)``, its ``abs(x).max()`` and its reshaping copies are one
thread each. The MAC engine transposes each B operand (quantized along K as B^T rows,
consumed as K x N), cuts A into chunks for BLAS and needs each operand's largest magnitude;
done in NumPy, those serial milliseconds cap what a second thread can gain on a 512^3 GEMM.
Transposes go in square tiles that fit the L1 cache, tile rows in parallel.
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


@njit(parallel=True, cache=True)
def _row_peaks(x, out):
    for r in prange(x.shape[0]):
        peak = 0.0
        for v in x[r]:
            peak = max(peak, abs(v))
        out[r] = peak


def max_abs(x: np.ndarray) -> float:
    """Largest magnitude in a C-ordered 2-D float64 array (0 for an empty one; NaN is not
    expected: operands are finite)."""
    if x.size == 0:
        return 0.0
    peaks = np.empty(x.shape[0])
    with threads_for(x.size):
        _row_peaks(x, peaks)
    return float(peaks.max())


@njit(parallel=True, cache=True)
def _chunks_into(x, span, out):
    rows, k = x.shape
    for c in prange(out.shape[0]):
        for r in range(rows):
            for j in range(span):
                i = c * span + j
                out[c, r, j] = x[r, i] if i < k else 0.0


def by_chunk(x: np.ndarray, span: int, dtype: type) -> np.ndarray:
    """A (M, K), C-ordered float64, as (ceil(K / span), M, span) in ``dtype``, C-ordered, the
    last chunk padded with zeros (which add nothing to an integer sum)."""
    rows, k = x.shape
    out = np.empty((-(-k // span), rows, span), dtype)
    with threads_for(x.size):
        _chunks_into(x, span, out)
    return out
