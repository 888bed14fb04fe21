"""Exact accumulator arithmetic, inlined into the GEMM kernels (numba).

A floating-point accumulation step computes the exact sum ``s + p`` as an unevaluated pair
``hi + lo`` (Knuth's TwoSum: ``hi = RN64(s + p)``, ``|lo| <= ulp(hi) / 2``) and rounds that
pair once into the accumulator format. The rounding needs only the exponent of ``hi``, the
integer and fraction parts of ``|hi| / ulp`` (exact power-of-two scaling) and ``lo``, so it is
exact for every format up to e11m52 (= float64), subnormals and ties included:

- ``RNE``: to nearest, ties to even; ``RNA``: to nearest, ties away from zero; ``RTZ``:
  toward zero;
- ``STOCHASTIC``: away from zero iff ``d < F * 2^53``, where F is the exact discarded
  fraction (in ulps) and d the 53-bit integer draw for this event (the same SplitMix64
  counter stream as the formats' stochastic rounding, keyed by seed and event index).

``round_fast`` is the common case of the same rounding on an exact float64, done with integer
operations on its bit pattern so that loops over many registers vectorize; the kernels use
it first and redo with ``round_float`` the rare lanes it declines (inexact float64 sums,
subnormal or zero-crossing results, overflow).

Fixed-point steps add int64 integers in a w-bit two's complement register that saturates or
wraps. Conversions between levels round once with the same function.
"""

import math

import numpy as np
from numba import njit

from hbfpsim.formats.bits import bits_float, draw53_keyed, float_bits, pow2, uniform
from hbfpsim.formats.rounding import Rounding

RNE, RNA, RTZ = int(Rounding.RNE), int(Rounding.RNA), int(Rounding.RTZ)
_MANTISSA = (1 << 52) - 1
_TWO53 = 9007199254740992.0


@njit(inline="always", cache=True)
def two_sum(a, b):
    """(hi, lo) with hi = RN(a + b) and hi + lo = a + b exactly (finite a, b, no overflow)."""
    hi = a + b
    bb = hi - a
    return hi, (a - (hi - bb)) + (b - bb)


@njit(inline="always", cache=True)
def scale2(x, k):
    """x * 2^k, exact whenever the result is representable; |k| <= 2044 (two steps, so that
    each power of two stays a normal float64)."""
    h = k >> 1
    return x * pow2(h) * pow2(k - h)


@njit(inline="always", cache=True)
def int_to_pair(v):
    """An int64 as an exact (hi, lo) float64 pair."""
    high = (v >> 32) << 32          # at most 32 significant bits: exact as float64
    return two_sum(np.float64(high), np.float64(v - high))


@njit(cache=True)
def round_float(hi, lo, man_bits, emin, maxval, mode, ftz, sat, seed, index):
    """Round the exact finite value ``hi + lo`` (``hi = RN64(hi + lo)``) once into the binary
    float with ``man_bits`` fraction bits and minimum normal exponent ``emin``.

    ``ftz``: the result is rounded with unbounded exponent range, then magnitudes below
    2^emin become zero. Results above ``maxval`` overflow to +-Inf, or to +-maxval with
    ``sat``. Returns (value, overflowed); an exact zero is +0."""
    mag = abs(hi)
    low = lo if hi >= 0.0 else -lo          # the exact magnitude is mag + low
    bits = float_bits(mag)
    e = ((bits >> 52) & 0x7FF) - 1023       # floor(log2 mag); float64 subnormals: -1023
    if low < 0.0 and (bits & _MANTISSA) == 0:
        e -= 1                              # just below a power of two: the binade under it
    e = max(e, emin - 1 if ftz else emin)
    q = e - man_bits                        # the result's ulp is 2^q
    t = scale2(mag, -q)
    n = np.floor(t)
    f = t - n                               # exact; the true fraction is f + low / 2^q
    if mode == RNE:
        if f > 0.5 or (f == 0.5 and (low > 0.0 or (low == 0.0 and (np.int64(n) & 1) == 1))):
            n += 1.0
    elif mode == RNA:               # (f == 0: a tie in lo, when the format's ulp is hi's)
        if f > 0.5 or (f == 0.5 and low >= 0.0) or (f == 0.0 and scale2(low, 1 - q) >= 1.0):
            n += 1.0
    elif mode == RTZ:
        if f == 0.0 and low < 0.0:
            n -= 1.0
    else:
        if f == 0.0 and low < 0.0:          # just below the grid point n: floor is n - 1
            n -= 1.0
            f = 1.0
        fs = f * _TWO53
        if fs == np.floor(fs):              # then low decides the ceiling of (f + low/2^q) 2^53
            d = scale2(low, 53 - q)
            c = np.ceil(d)
            if d == 0.0 and low > 0.0:      # underflowed, but positive
                c = 1.0
            limit = fs + c
        else:
            limit = np.ceil(fs)
        if uniform(seed, index) * _TWO53 < limit:
            n += 1.0
    r = scale2(n, q)
    if ftz and r < pow2(emin):
        r = 0.0
    over = r > maxval
    if over:
        r = maxval if sat else np.inf
    return math.copysign(r, hi), over


@njit(cache=True)
def fast_rounder(mode, man_bits, emin, maxval, key):
    """The constants ``round_fast`` needs for a format with ``man_bits`` fraction bits:
    ``(drop, tiny, maxval, base, tie, half, key)``. Deterministic modes add ``base`` plus,
    when ``tie`` is 1, the kept LSB (RNE: half an ulp minus one, plus the tie bit; RNA: half
    an ulp; RTZ: nothing) and truncate; ``half`` is the discarded-bits pattern of a tie.
    ``key``: ``stream_key(seed)`` for stochastic rounding."""
    drop = 52 - man_bits
    base, tie, half = 0, 0, 0
    if drop > 0:
        half = 1 << (drop - 1)
    if drop > 0 and mode == RNE:
        base, tie = half - 1, 1
    elif drop > 0 and mode == RNA:
        base = half
    return drop, pow2(emin), maxval, np.int64(base), np.int64(tie), np.int64(half), key


@njit(inline="always", cache=True)
def round_fast(x, lo, rounder, stochastic, step):
    """The exact value ``x + lo`` (``x = RN64(x + lo)``, as TwoSum gives) rounded by integer
    operations on the bits of x into the format ``rounder = fast_rounder(...)`` describes:
    deterministic modes add a constant (and the tie bit) and truncate, branch-free;
    ``stochastic`` rounds up iff the top ``drop`` bits of the 53-bit draw
    ``draw53_keyed(key, step)`` are below the discarded bits (the decision ``round_float``
    makes; ``step = event_step(index)``). ``stochastic`` is a constant at every call site, so
    a loop carries the draw only when it rounds stochastically. Returns (result, valid);
    valid only for zero or a magnitude of at least ``tiny`` (the smallest normal) rounding to
    at most ``maxval`` (which also excludes Inf and NaN; the exponent is never read, so the
    loop stays in float compares, which AVX2 has for 64-bit lanes), and only if ``lo`` cannot
    change the result: lo = 0, or (deterministic modes) x's discarded bits are neither zero
    nor a tie, so x + lo lies strictly between the same two grid points and on the same side
    of their midpoint as x (both are float64 numbers, and |lo| is at most half x's ulp)."""
    drop, tiny, maxval, base, tie, half, key = rounder
    bits = float_bits(abs(x))
    mask = (np.int64(1) << drop) - 1
    discarded = bits & mask
    if stochastic:
        up = (draw53_keyed(key, step) >> (53 - drop)) < discarded
        rounded = (bits & ~mask) + (np.int64(up) << drop)
        settled = lo == 0.0
    else:
        rounded = (bits + base + ((bits >> drop) & tie)) & ~mask
        settled = (lo == 0.0) | ((discarded != 0) & (discarded != half))
    r = bits_float(rounded)
    valid = ((abs(x) >= tiny) | (x == 0.0)) & (r <= maxval) & settled
    return math.copysign(r, x), valid


@njit(inline="always", cache=True)
def float_add(s, p, man_bits, emin, maxval, mode, ftz, sat, seed, index):
    """One accumulation step ``RN_acc(s + p)``. Returns (result, overflowed, inexact,
    partially swamped, fully swamped): fully swamped when p != 0 left s unchanged; partially
    when the step was inexact, |p| <= |s| and s did change. Non-finite operands (an
    overflowed register or input) combine as IEEE says and count nothing."""
    if not (math.isfinite(s) and math.isfinite(p)):
        return s + p, False, False, False, False
    hi, lo = two_sum(s, p)
    if math.isinf(hi):                      # beyond float64 (e11 formats only)
        r = math.copysign(maxval if sat else np.inf, hi)
        full = p != 0.0 and r == s
        return r, True, True, (not full) and abs(p) <= abs(s), full
    r, over = round_float(hi, lo, man_bits, emin, maxval, mode, ftz, sat, seed, index)
    inexact = r != hi or lo != 0.0
    full = p != 0.0 and r == s
    partial = inexact and not full and abs(p) <= abs(s)
    return r, over, inexact, partial, full


@njit(inline="always", cache=True)
def fixed_add(v, n, width, wrap, hi_lim, lo_lim):
    """``v + n`` in a ``width``-bit two's complement register holding v (int64 operands).
    Returns (result, overflowed); on overflow the result saturates toward n's sign, or keeps
    the low ``width`` bits with ``wrap``."""
    t = np.int64(np.uint64(v) + np.uint64(n))   # modulo 2^64
    if width == 64:
        over = (v >= 0) == (n >= 0) and (t >= 0) != (v >= 0)
    else:
        over = t > hi_lim or t < lo_lim         # |v| < 2^62, |n| < 2^53: t is exact
    if over:
        if wrap:
            shift = 64 - width
            t = np.int64(np.uint64(t) << np.uint64(shift)) >> shift
        else:
            t = hi_lim if n > 0 else lo_lim
    return t, over
