"""Hard inputs for the quantizer tests."""

from __future__ import annotations

import zlib

import numpy as np


def stable_seed(*parts) -> int:
    """A seed from test parameters that is the same in every process (unlike hash(), which
    Python randomizes per process for strings)."""
    return zlib.crc32(repr(parts).encode())


def hard_rows(rng: np.random.Generator, rows: int, cols: int, dtype=np.float32) -> np.ndarray:
    """Rows of values with 1-12 significant bits (so many sit exactly on the midpoints of
    coarser grids: ties), exponents spread within 14 binades of a per-row base exponent that
    ranges over the whole float32 range (subnormals included), random signs, some zeros and
    negative zeros, and values one ulp either side of powers of two."""
    out = np.empty((rows, cols), np.float64)
    for r in range(rows):
        base = int(rng.integers(-150, 126))
        bits = rng.integers(1, 13, cols)
        mant = rng.integers(1, 2**bits)
        exps = base - rng.integers(0, 14, cols) - bits
        vals = np.ldexp(mant.astype(np.float64), exps)
        vals *= rng.choice([-1.0, 1.0], cols)
        vals[rng.random(cols) < 0.08] = 0.0
        vals[rng.random(cols) < 0.03] = -0.0
        edge = rng.random(cols) < 0.05
        pow2 = np.ldexp(1.0, base - rng.integers(0, 4, cols))
        vals[edge] = pow2[edge]
        out[r] = vals
    out = out.astype(dtype)
    edge = rng.random(out.shape) < 0.05
    out[edge] = np.nextafter(out[edge], np.where(rng.random(edge.sum()) < 0.5, 0, np.inf)
                             .astype(dtype))
    return out


def mixed_rows(rng: np.random.Generator, rows: int, cols: int, dtype=np.float32) -> np.ndarray:
    """hard_rows plus Gaussian rows at random scales, one all-zero row and one subnormal row."""
    hard = hard_rows(rng, rows, cols, dtype)
    gauss = rng.standard_normal((rows, cols)) * np.ldexp(1.0, rng.integers(-60, 60, (rows, 1)))
    special = np.stack([np.zeros(cols), rng.standard_normal(cols) * 2.0**-135])
    return np.concatenate([hard, gauss.astype(dtype), special.astype(dtype)])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as float64 bit patterns (so -0.0 != 0.0), NaN positions equal."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    keep = ~np.isnan(a)
    return np.array_equal(a[keep].view(np.uint64), b[keep].view(np.uint64))


def first_difference(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> str:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    bad = np.flatnonzero((a.view(np.uint64) != b.view(np.uint64)) & ~(np.isnan(a) & np.isnan(b)))
    if not bad.size:
        return "same"
    i = bad[0]
    return (f"{bad.size} differ; first at flat {i}: x={np.asarray(x).ravel()[i]!r} "
            f"got={a[i]!r} want={b[i]!r}")
