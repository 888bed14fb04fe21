"""Exact reference quantizers for the tests: Python Fractions, one rounding per operation,
written from the format definitions (docs/formats.md and the papers and specs it cites)
without numba, numpy rounding or ml_dtypes. Scalar and slow: for small inputs only."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

# (fraction bits, minimum normal exponent, largest finite value) from IEEE 754 / OCP specs.
FLOAT_GRIDS = {
    "fp32": (23, -126, (2 - Fraction(1, 2**23)) * Fraction(2)**127),
    "bf16": (7, -126, (2 - Fraction(1, 2**7)) * Fraction(2)**127),
    "fp16": (10, -14, Fraction(65504)),
    "e4m3": (3, -6, Fraction(448)),
    "e5m2": (2, -14, Fraction(57344)),
    "e3m2": (2, -2, Fraction(28)),
    "e2m3": (3, 0, Fraction(15, 2)),
    "e2m1": (1, 0, Fraction(6)),
}
MX_ELEMENT = {"mxfp8_e4m3": "e4m3", "mxfp8_e5m2": "e5m2", "mxfp6_e3m2": "e3m2",
              "mxfp6_e2m3": "e2m3", "mxfp4": "e2m1"}
HAS_INF = {"fp32", "bf16", "fp16", "e5m2"}


def pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def floor_log2(v: Fraction) -> int:
    """The e with 2^e <= v < 2^(e+1), for v > 0."""
    e = v.numerator.bit_length() - v.denominator.bit_length()
    while pow2(e) > v:
        e -= 1
    while pow2(e + 1) <= v:
        e += 1
    return e


def splitmix_uniform(seed: int, index: int) -> Fraction:
    """The documented stochastic-rounding draw: output index+1 of SplitMix64 from state
    mix64(seed + golden), top 53 bits over 2^53."""
    mask = 2**64 - 1
    golden = 0x9E3779B97F4A7C15

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    key = mix((seed + golden) & mask)
    return Fraction(mix((key + (index + 1) * golden) & mask) >> 11, 2**53)


def round_int(v: Fraction, mode: str, u: Fraction | None = None) -> int:
    """Round v >= 0 to an integer."""
    low = math.floor(v)
    frac = v - low
    if mode == "even":
        if frac != Fraction(1, 2):
            return low + (frac > Fraction(1, 2))
        return low + (low % 2)
    if mode == "away":
        return low + (frac >= Fraction(1, 2))
    if mode == "rtz":
        return low
    return low + (u < frac)


def round_float(v: Fraction, grid: str, mode: str, u=None) -> Fraction:
    """v >= 0 onto the grid of float type `grid`, unbounded above."""
    man, emin, _ = FLOAT_GRIDS[grid]
    if v == 0:
        return Fraction(0)
    ulp = pow2(max(floor_log2(v), emin) - man)
    return round_int(v / ulp, mode, u) * ulp


def _signed(x: float, magnitude: Fraction) -> float:
    return math.copysign(float(magnitude), x)


def _draws(n, mode, seed, first):
    return [splitmix_uniform(seed, first + i) if mode == "stochastic" else None
            for i in range(n)]


def fp_scalar(xs, grid: str, saturate: bool, mode: str = "even", seed: int = 0) -> list[float]:
    man, emin, top = FLOAT_GRIDS[grid]
    out = []
    for i, x in enumerate(xs):
        x = float(x)
        if math.isnan(x):
            out.append(math.nan)
            continue
        u = splitmix_uniform(seed, i) if mode == "stochastic" else None
        r = None if math.isinf(x) else round_float(abs(Fraction(x)), grid, mode, u)
        if r is None or r > top:
            out.append(_signed(x, top) if saturate else
                       (math.copysign(math.inf, x) if grid in HAS_INF else math.nan))
        else:
            out.append(_signed(x, r))
    return out


def hbfp_block(xs, m: int, mode: str = "even", seed: int = 0, first: int = 0) -> list[float]:
    """One HBFP block, hardware-natural rule: E = floor(log2 max) + 1 in [-127, 127]."""
    mb = m - 1
    mags = [abs(Fraction(float(x))) for x in xs]
    amax = max(mags)
    e = -127 if amax == 0 else min(max(floor_log2(amax) + 1, -127), 127)
    step = pow2(e - mb)
    us = _draws(len(xs), mode, seed, first)
    return [_signed(float(x), min(round_int(a / step, mode, u), 2**mb - 1) * step)
            for x, a, u in zip(xs, mags, us)]


def mx_block(xs, fmt: str, mode: str = "even", seed: int = 0, first: int = 0) -> list[float]:
    grid = MX_ELEMENT.get(fmt)
    emax = floor_log2(FLOAT_GRIDS[grid][2]) if grid else 0
    mags = [abs(Fraction(float(x))) for x in xs]
    amax = max(mags)
    scale_exp = -127 if amax == 0 else min(max(floor_log2(amax) - emax, -127), 127)
    us = _draws(len(xs), mode, seed, first)
    out = []
    for x, a, u in zip(xs, mags, us):
        v = a / pow2(scale_exp)
        if grid:
            p = min(round_float(v, grid, mode, u), FLOAT_GRIDS[grid][2])
        else:
            p = Fraction(min(round_int(v * 64, mode, u), 127), 64)
        out.append(_signed(float(x), p * pow2(scale_exp)))
    return out


def blocked(rows: np.ndarray, block: int, fn, **kw) -> np.ndarray:
    """Apply a per-block oracle to every block of every row (blocks along axis 1)."""
    out = np.empty(rows.shape, np.float64)
    n = rows.shape[1]
    for r in range(rows.shape[0]):
        for s in range(0, n, block):
            out[r, s:s + block] = fn(rows[r, s:s + block].tolist(), first=r * n + s, **kw)
    return out


def int8_rows(rows: np.ndarray, per: str, mode: str = "even", seed: int = 0) -> np.ndarray:
    """Symmetric INT8: scale = max|x| / 127 rounded to float32 toward zero, per tensor or
    row; k = round(x / scale) clipped to 127."""
    def f32_down(v: Fraction) -> Fraction:
        c = np.float32(float(v))
        while Fraction(float(c)) > v:
            c = np.nextafter(c, np.float32(0))
        while Fraction(float(np.nextafter(c, np.float32(np.inf)))) <= v:
            c = np.nextafter(c, np.float32(np.inf))
        return Fraction(float(c))

    amaxes = [max((abs(Fraction(float(v))) for v in row), default=Fraction(0)) for row in rows]
    if per == "tensor":
        amaxes = [max(amaxes, default=Fraction(0))] * len(rows)
    out = np.empty(rows.shape, np.float64)
    n = rows.shape[1]
    for r, (row, amax) in enumerate(zip(rows, amaxes)):
        scale = f32_down(amax / 127) or Fraction(1)
        for i, x in enumerate(row.tolist()):
            u = splitmix_uniform(seed, r * n + i) if mode == "stochastic" else None
            k = min(round_int(abs(Fraction(x)) / scale, mode, u), 127)
            out[r, i] = math.copysign(float(k * scale), x) if k else 0.0
    return out
