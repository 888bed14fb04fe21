"""Numba kernels that round arrays onto a number format's grid.

Every kernel widens its input to float64 (exact for float32 and float64 inputs), scales by
powers of two (exact in the ranges used here), rounds exactly once and writes the result
in the caller's output dtype. docs/formats.md shows why each format's grid values are
representable in that dtype. Kernels run in parallel over blocks (or chunks) and are cached
on disk, one compilation per input dtype.

Rounding modes are ``Rounding`` codes (formats/rounding.py); stochastic rounding draws from
the counter-based stream of formats/bits.py, keyed by ``(seed, element index)``, so the bits
depend on the seed and the data only, never on thread count or scheduling.

Every rounding works on magnitudes; the sign is copied back afterwards, so the deterministic
modes are symmetric: ``q(-x) == -q(x)``.
"""

import math

import numpy as np
from numba import njit, prange

from hbfpsim.formats.bits import floor_log2, pow2, uniform
from hbfpsim.formats.rounding import Rounding

RNE, RNA, RTZ = int(Rounding.RNE), int(Rounding.RNA), int(Rounding.RTZ)
SATURATE, TO_INF, TO_NAN = 0, 1, 2  # what a scalar float does with values beyond its max
CHUNK = 4096  # elements per parallel work item for element-wise kernels


@njit(inline="always", cache=True)
def round_magnitude(a, mode, seed, index):
    """Round ``a >= 0`` to an integer (returned as float64) with the given mode."""
    if mode == RNE:
        return np.rint(a)
    if mode == RNA:
        return np.floor(a + 0.5)  # exact for a < 2^52; callers clip anything larger
    f = np.floor(a)
    if mode == RTZ:
        return f
    return f + 1.0 if uniform(seed, index) < a - f else f


@njit(inline="always", cache=True)
def round_minifloat(a, man_bits, emin, mode, seed, index):
    """Round finite ``a >= 0`` onto the grid of a binary float with ``man_bits`` fraction bits
    and minimum normal exponent ``emin`` (subnormals kept), unbounded above: the grid step
    is 2^(max(floor(log2 a), emin) - man_bits). Zero stays zero."""
    ulp_exp = max(floor_log2(a), emin) - man_bits
    return round_magnitude(a * pow2(-ulp_exp), mode, seed, index) * pow2(ulp_exp)


@njit(inline="always", cache=True)
def _block_probe(x, r, start, stop):
    """(max |x|, finite?) over x[r, start:stop]; NaN and Inf make the probe sum NaN."""
    amax = 0.0
    probe = 0.0
    for i in range(start, stop):
        v = np.float64(x[r, i])
        probe += v * 0.0
        a = abs(v)
        if a > amax:
            amax = a
    return amax, probe == probe


@njit(parallel=True, cache=True)
def block_scaled(x, block, man_bits, emin, maxval, exp_offset, compat, mode, seed, q, exps, bad):
    """Block floating point (HBFP, MX) along axis 1 of ``x``, blocks of ``block`` elements.

    Per block: shared exponent ``S = floor(log2 max|x|) + exp_offset``, clamped to the E8M0
    range [-127, 127] (-127 for an all-zero block); with ``compat`` it is the HBFPEmulator
    rule ``ceil(log2(max|x| + 1e-8))`` in float32 arithmetic, unclamped.
    Per element: ``|x| 2^-S`` rounded onto the element grid (:func:`round_minifloat` with
    ``man_bits`` and ``emin``; a fixed-point grid of step 2^(emin - man_bits) when every
    scaled value lies below 2^(emin + 1), as for HBFP and MXINT8), saturated at ``maxval``
    (except in compat mode once S >= 128, where the emulator's bound is inf in float32);
    ``q = sign(x) element 2^S``. Writes ``exps[r, b] = S``; ``bad[r, b] = 1`` marks blocks
    holding NaN or Inf, whose ``q`` is NaN.
    """
    rows, n = x.shape
    nblocks = exps.shape[1]
    eps32 = np.float32(1e-8)
    for t in prange(rows * nblocks):
        r = t // nblocks
        b = t - r * nblocks
        start = b * block
        stop = min(start + block, n)
        amax, finite = _block_probe(x, r, start, stop)
        bad[r, b] = not finite
        if not finite:
            exps[r, b] = 127
            for i in range(start, stop):
                q[r, i] = np.nan
            continue
        if compat:
            shifted = np.float32(np.float32(amax) + eps32)  # float32 add (one rounding)
            e = int(math.ceil(np.float32(math.log2(np.float64(shifted)))))
        elif amax == 0.0:
            e = -127
        else:
            e = min(max(floor_log2(amax) + exp_offset, -127), 127)
        exps[r, b] = e
        clip = maxval if not (compat and e >= 128) else np.inf
        up = pow2(-e)
        down = pow2(e)
        if mode == RNE and amax * up < pow2(emin + 1):
            # every scaled value lies below 2^(emin + 1): round_minifloat's grid step is
            # 2^(emin - man_bits) for all of them, a branch-free loop that vectorizes
            scale = up * pow2(man_bits - emin)
            step = pow2(emin - man_bits)
            for i in range(start, stop):
                v = np.float64(x[r, i])
                q[r, i] = math.copysign(min(np.rint(abs(v) * scale) * step, clip) * down, v)
            continue
        for i in range(start, stop):
            v = np.float64(x[r, i])
            p = min(round_minifloat(abs(v) * up, man_bits, emin, mode, seed, r * n + i), clip)
            q[r, i] = math.copysign(p * down, v)


@njit(parallel=True, cache=True)
def scale_blocks(rows, exps, block, magnitude, out):
    """``out[r, i] = v 2^exps[r, i // block]`` with v = |rows[r, i]| if ``magnitude`` else
    rows[r, i]: exact power-of-two scaling, one pass (out is float64)."""
    n_rows, n = rows.shape
    for r in prange(n_rows):
        for b in range(exps.shape[1]):      # block by block: no division per element
            scale = pow2(exps[r, b])
            for i in range(b * block, min(b * block + block, n)):
                v = np.float64(rows[r, i])
                out[r, i] = (abs(v) if magnitude else v) * scale


@njit(parallel=True, cache=True)
def scalar_float(x, man_bits, emin, maxval, overflow, mode, seed, q, bad):
    """Round each element of 1-D ``x`` onto a binary float grid (``man_bits``, ``emin``).

    Magnitudes rounding above ``maxval``, and infinite inputs, follow ``overflow``:
    SATURATE -> +-maxval, TO_INF -> +-inf, TO_NAN -> NaN. NaN stays NaN. ``bad[c] = 1``
    marks chunks of CHUNK elements that hold NaN or Inf.
    """
    n = x.size
    for c in prange(bad.size):
        flag = False
        for i in range(c * CHUNK, min((c + 1) * CHUNK, n)):
            v = np.float64(x[i])
            a = abs(v)
            if a != a:
                q[i] = v
                flag = True
                continue
            if a == np.inf:
                flag = True
                p = a
            else:
                p = round_minifloat(a, man_bits, emin, mode, seed, i)
            if p > maxval:
                if overflow == SATURATE:
                    p = maxval
                elif overflow == TO_INF:
                    p = np.inf
                else:
                    p = np.nan
            q[i] = math.copysign(p, v)
        bad[c] = flag


@njit(parallel=True, cache=True)
def scaled_int(x, scale, kmax, mode, seed, k):
    """Symmetric integer codes: ``k[r, i] = sign(x) min(round(|x[r, i]| / scale[r]), kmax)``,
    the quotient rounded to float64 once before the integer rounding."""
    rows, n = x.shape
    for r in prange(rows):
        s = np.float64(scale[r])
        for i in range(n):
            v = np.float64(x[r, i])
            m = round_magnitude(abs(v) / s, mode, seed, r * n + i)
            if m > kmax:
                m = kmax
            k[r, i] = -m if v < 0 else m
