"""Exact reference for the MAC engine: Python Fractions, one rounding per operation.

Written from the definitions in docs/accumulation.md, level by level (chunk the products,
sum each chunk, convert the results, chunk again), not streaming like the kernels. Shared
with the kernels are only the documented conventions: exact products, integer products in
units of 2^(qa + qb) for fixed levels, and the stochastic event index
``(i N + j) stride + 2 (offset[l] + t) + c``."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from oracle import floor_log2, pow2, splitmix_uniform

INF = math.inf


def round_float(v, acc, draw=None):
    """v (Fraction or +-inf) rounded once into FloatAccumulator ``acc``: a Fraction or
    +-inf, plus whether it overflowed."""
    if isinstance(v, float):  # +-inf passes through
        return v, False
    if v == 0:
        return Fraction(0), False
    mag = abs(v)
    e = floor_log2(mag)
    q = (e if not acc.subnormals else max(e, acc.emin)) - acc.man_bits
    scaled = mag / pow2(q)
    n = math.floor(scaled)
    frac = scaled - n
    mode = acc.rounding.label                   # rne, rna, rtz or stochastic
    if mode == "rne":
        n += frac > Fraction(1, 2) or (frac == Fraction(1, 2) and n % 2 == 1)
    elif mode == "rna":
        n += frac >= Fraction(1, 2)
    elif mode == "stochastic":
        n += draw < frac * 2**53
    r = n * pow2(q)
    if not acc.subnormals and r < pow2(acc.emin):
        r = Fraction(0)
    top = Fraction(acc.max)
    if r > top:
        return (top if acc.saturate else INF) * (1 if v > 0 else -1), True
    return r * (1 if v > 0 else -1), False


def fixed_add(v, n, acc):
    t = v + n
    lo, hi = acc.min, acc.max
    if lo <= t <= hi:
        return t, False
    if acc.wrap:
        return (t - lo) % 2**acc.width + lo, True
    return (hi if t > hi else lo), True


class Counter:
    def __init__(self, levels):
        self.stats = [dict(inexact=0, partial_swamps=0, full_swamps=0, overflows=0,
                           inexact_conversions=0) for _ in levels]


def dot(products, lsb, plan, seed, element, stride):
    """One dot product. products: exact Fractions; lsb: each product's LSB exponent.
    Returns (value as float, per-level stats dicts)."""
    levels = plan.levels
    inputs = plan.inputs(len(products))
    offsets = [sum(inputs[:i]) for i in range(len(levels))]
    counter = Counter(levels)

    def draw(level, t, c):
        return splitmix_uniform(seed, element * stride + 2 * (offsets[level] + t) + c) * 2**53

    # level inputs: (value, lsb exponent for fixed values / None for exact rationals)
    items = [(p, q) for p, q in zip(products, lsb)]
    for li, level in enumerate(levels):
        acc = level.accumulator
        stats = counter.stats[li]
        length = level.length or len(items)
        results = []
        for start in range(0, len(items), length):
            chunk = items[start:start + length]
            if acc.kind == "fixed":
                total = 0
                for value, q in chunk:
                    integer = value if li else value / pow2(q)
                    assert integer.denominator == 1 if isinstance(integer, Fraction) else True
                    total, over = fixed_add(total, int(integer), acc)
                    stats["overflows"] += over
                results.append((total, chunk[0][1]))
                continue
            s = Fraction(0)
            for t_local, (value, q) in enumerate(chunk):
                t = start + t_local
                x = value
                if li > 0 and levels[li - 1].accumulator.kind == "fixed":
                    x = Fraction(value) * pow2(q)
                if li > 0 or not plan.fused:
                    rounded, over = round_float(x, acc, draw(li, t, 0))
                    stats["inexact_conversions"] += rounded != x
                    stats["overflows"] += over
                    x = rounded
                if isinstance(s, float) or isinstance(x, float):  # IEEE inf/nan, no counts
                    s = s + x
                    continue
                exact = s + x
                r, over = round_float(exact, acc, draw(li, t, 1))
                stats["overflows"] += over
                inexact = r != exact
                full = x != 0 and r == s
                stats["inexact"] += inexact
                stats["full_swamps"] += full
                stats["partial_swamps"] += inexact and not full and abs(x) <= abs(s)
                s = r
            results.append((s, None))
        items = results
    (value, q), = items
    if levels[-1].accumulator.kind == "fixed":
        value = Fraction(value) * pow2(q)
    return float(value), counter.stats


def matmul(a_values, b_values, a_lsb, b_lsb, plan, seed=0):
    """Reference GEMM on exact operand values (float64 arrays) with per-element LSB exponents
    a_lsb (M, K) and b_lsb (K, N). Returns (out, stats summed over elements)."""
    m, k = a_values.shape
    n = b_values.shape[1]
    stride = 2 * sum(plan.inputs(k))
    out = np.empty((m, n))
    totals = None
    for i in range(m):
        for j in range(n):
            products = [Fraction(float(a_values[i, t])) * Fraction(float(b_values[t, j]))
                        for t in range(k)]
            lsb = [int(a_lsb[i, t] + b_lsb[t, j]) for t in range(k)]
            out[i, j], stats = dot(products, lsb, plan, seed, i * n + j, stride)
            if totals is None:
                totals = [dict(s) for s in stats]
            else:
                for total, s in zip(totals, stats):
                    for key in total:
                        total[key] += s[key]
    return out, totals
