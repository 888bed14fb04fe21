"""Numba kernels that round arrays onto a number format's grid.

Every kernel widens its input to float64 (exact for float32 and float64 inputs), scales by
powers of two (exact in the ranges used here), rounds exactly once and writes the result
in the caller's output dtype. docs/formats.md shows why each format's grid values are
representable in that dtype. Kernels are cached on disk, one compilation per input dtype.
The rounding kernels (``block_scaled``, ``scalar_float``, ``scaled_int``) are compiled twice,
parallel over blocks (chunks, rows) and serial, and run serially below
``threads.PARALLEL_ELEMENTS`` elements, where waking the thread pool, or switching numba's
thread count, costs more than the work (emulated training rounds thousands of small tensors).
Loops index 1-D slice views from 0: numba wraps negative indices of ``x[r, i]`` when ``i``
starts anywhere but 0, which keeps LLVM from vectorizing the loop.

Rounding modes are ``Rounding`` codes (formats/rounding.py); stochastic rounding draws from
the counter-based stream of formats/bits.py, keyed by ``(seed, element index)``, so the bits
depend on the seed and the data only, never on thread count or scheduling.

Every rounding works on magnitudes; the sign is copied back afterwards, so the deterministic
modes are symmetric: ``q(-x) == -q(x)``.
"""

import math

import numpy as np
from numba import njit, prange

from hbfpsim.formats.bits import bits_float, float_bits, floor_log2, pow2, uniform
from hbfpsim.formats.rounding import Rounding
from hbfpsim.formats.threads import parallel

RNE, RNA, RTZ = int(Rounding.RNE), int(Rounding.RNA), int(Rounding.RTZ)
SATURATE, TO_INF, TO_NAN = 0, 1, 2  # what a scalar float does with values beyond its max
CHUNK = 4096  # elements per parallel work item for element-wise kernels
TILE = 64  # columns per pass of block_scaled_columns
_INF_BITS = 0x7FF0000000000000  # IEEE bits of float64 +Inf


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
def _block_probe(xs):
    """(max |x|, finite?) over the 1-D block ``xs``, as one integer max over the IEEE bits
    of |x| (float64): they order as the magnitudes do, and Inf and NaN lie above every
    finite value. An integer max vectorizes; a float max does not (NaN semantics)."""
    top = np.int64(0)
    for i in range(xs.size):
        top = max(top, float_bits(abs(np.float64(xs[i]))))
    return bits_float(top), top < _INF_BITS


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
    kernel = _block_scaled_parallel if parallel(x.size) else _block_scaled_serial
    kernel(x, block, man_bits, emin, maxval, exp_offset, compat, mode, seed, q, exps, bad)


@njit(parallel=True, cache=True)
def _block_scaled_parallel(x, block, man_bits, emin, maxval, exp_offset, compat, mode, seed, q,
                           exps, bad):
    nblocks = exps.shape[1]
    for t in prange(exps.size):
        r = t // nblocks
        _scale_block(r, t - r * nblocks, x, block, man_bits, emin, maxval, exp_offset, compat,
                     mode, seed, q, exps, bad)
    _nan_blocks(block, q, exps, bad)


@njit(cache=True)
def _block_scaled_serial(x, block, man_bits, emin, maxval, exp_offset, compat, mode, seed, q,
                         exps, bad):
    for r in range(exps.shape[0]):          # nested loops: no integer division per block
        for b in range(exps.shape[1]):
            _scale_block(r, b, x, block, man_bits, emin, maxval, exp_offset, compat, mode, seed,
                         q, exps, bad)
    _nan_blocks(block, q, exps, bad)


@njit(inline="always", cache=True)
def _nan_blocks(block, q, exps, bad):
    """The blocks of :func:`block_scaled` that hold NaN or Inf (``bad``): ``q`` NaN and the
    exponent 127."""
    for r in range(exps.shape[0]):
        for b in range(exps.shape[1]):
            if bad[r, b]:
                exps[r, b] = 127
                q[r, b * block:(b + 1) * block] = np.nan


@njit(inline="always", cache=True)
def _block_exponent(amax, exp_offset, compat):
    """The shared exponent S of a finite block whose largest magnitude is ``amax``
    (:func:`block_scaled`)."""
    if compat:
        shifted = np.float32(np.float32(amax) + np.float32(1e-8))  # float32 add (one rounding)
        return int(math.ceil(np.float32(math.log2(np.float64(shifted)))))
    if amax == 0.0:
        return -127
    return min(max(floor_log2(amax) + exp_offset, -127), 127)


@njit(inline="always", cache=True)
def _scale_block(r, b, x, block, man_bits, emin, maxval, exp_offset, compat, mode, seed, q, exps,
                 bad):
    """Block ``b`` of row ``r`` of :func:`block_scaled`."""
    n = x.shape[1]
    start = b * block
    xs, qs = x[r, start:start + block], q[r, start:start + block]
    amax, finite = _block_probe(xs)
    bad[r, b] = not finite
    # a block holding NaN or Inf is rounded as an all-zero one, then overwritten by
    # _nan_blocks: a branch out of here would keep LLVM from vectorizing short blocks
    e = _block_exponent(amax if finite else 0.0, exp_offset, compat)
    exps[r, b] = e
    clip = maxval if not (compat and e >= 128) else np.inf
    up = pow2(-e)
    down = pow2(e)
    if amax * up < pow2(emin + 1):
        # every scaled value lies below 2^(emin + 1): round_minifloat's grid step is
        # 2^(emin - man_bits) for all of them, loops without its per-element exponent (to
        # nearest even branch-free: it vectorizes; other modes scale as it does, step by
        # step, so that a float64 input's subnormal products round as there)
        lift = pow2(man_bits - emin)
        step = pow2(emin - man_bits)
        if mode == RNE:
            scale = up * lift
            for i in range(xs.size):
                v = np.float64(xs[i])
                qs[i] = math.copysign(min(np.rint(abs(v) * scale) * step, clip) * down, v)
            return
        for i in range(xs.size):
            v = np.float64(xs[i])
            p = round_magnitude(abs(v) * up * lift, mode, seed, r * n + start + i) * step
            qs[i] = math.copysign(min(p, clip) * down, v)
        return
    for i in range(xs.size):
        v = np.float64(xs[i])
        p = min(round_minifloat(abs(v) * up, man_bits, emin, mode, seed, r * n + start + i),
                clip)
        qs[i] = math.copysign(p * down, v)


@njit(cache=True)
def block_scaled_columns(x, block, man_bits, emin, maxval, exp_offset, compat, mode, seed, q):
    """:func:`block_scaled` along axis 1 of the C-contiguous (B, K, N) array ``x``, written
    in ``x``'s own layout: ``q`` (C-contiguous (B, K, N)) transposed is, bit for bit, what
    ``block_scaled`` writes for the rows array ``x.transpose(0, 2, 1).reshape(B N, K)``
    (stochastic draws included: element ``(b, k, j)`` is event ``(b N + j) K + k``), without
    that array. The block max and the rounding run along the contiguous axis N, TILE
    columns at a time (vectorized however short the blocks). Serial: emulated training
    calls it on the calling thread."""
    nb, nk, nn = x.shape
    top = np.empty(TILE, np.int64)
    exps = np.empty(TILE, np.int64)
    scales = np.empty((2, TILE), np.float64)      # per column: 2^-S, 2^S
    for b in range(nb):
        for k0 in range(0, nk, block):
            h = min(block, nk - k0)
            for j0 in range(0, nn, TILE):
                w = min(TILE, nn - j0)
                plain = _column_exponents(x[b], k0, h, j0, w, exp_offset, compat, emin, top,
                                          exps)
                events = ((b * nn + j0) * nk, nk)
                if plain:
                    _round_columns_plain(x[b], q[b], k0, h, j0, w, man_bits, emin, maxval,
                                         mode, seed, events, exps, scales)
                else:
                    _round_columns(x[b], q[b], k0, h, j0, w, man_bits, emin, maxval, compat,
                                   mode, seed, events, top, exps)


@njit(inline="always", cache=True)
def _column_exponents(xb, k0, h, j0, w, exp_offset, compat, emin, top, exps):
    """Rows ``k0 .. k0 + h`` (one block) of columns ``j0 .. j0 + w`` of ``xb``: each column's
    largest |x| as IEEE bits in ``top`` (Inf and NaN above every finite value) and its
    shared exponent in ``exps``; whether every column is plain: finite, clipped at the
    format's max, its scaled values on a fixed-point grid (below 2^(emin + 1))."""
    top[:w] = 0
    for k in range(h):
        row = xb[k0 + k, j0:j0 + w]
        for j in range(w):
            top[j] = max(top[j], float_bits(abs(np.float64(row[j]))))
    fast = True
    for j in range(w):
        if top[j] >= _INF_BITS:
            exps[j] = 127
            fast = False
            continue
        e = _block_exponent(bits_float(top[j]), exp_offset, compat)
        exps[j] = e
        if (compat and e >= 128) or bits_float(top[j]) * pow2(-e) >= pow2(emin + 1):
            fast = False
    return fast


@njit(inline="always", cache=True)
def _round_columns_plain(xb, qb, c0, c, j0, w, man_bits, emin, maxval, mode, seed, events,
                         exps, scales):
    """Rows ``c0 .. c0 + c`` of plain columns ``j0 .. j0 + w`` of ``xb`` into the same
    places of ``qb`` as :func:`_scale_block` rounds them on its fixed-point grid (to
    nearest even: its vectorized loop), without its per-element branches; ``scales`` is
    scratch (2, TILE)."""
    first, nk = events
    up, down = scales[0], scales[1]
    for j in range(w):
        up[j] = pow2(-exps[j])
        down[j] = pow2(exps[j])
    if mode == RNE:
        step = pow2(emin - man_bits)
        for i in range(c):
            row, out = xb[c0 + i, j0:j0 + w], qb[c0 + i, j0:j0 + w]
            for j in range(w):
                v = np.float64(row[j])
                out[j] = math.copysign(min(np.rint(abs(v) * (up[j] * pow2(man_bits - emin)))
                                           * step, maxval) * down[j], v)
        return
    lift, step = pow2(man_bits - emin), pow2(emin - man_bits)   # the fixed-point grid
    for i in range(c):
        row, out = xb[c0 + i, j0:j0 + w], qb[c0 + i, j0:j0 + w]
        for j in range(w):
            v = np.float64(row[j])
            p = round_magnitude(abs(v) * up[j] * lift, mode, seed, first + j * nk + c0 + i)
            out[j] = math.copysign(min(p * step, maxval) * down[j], v)


@njit(inline="always", cache=True)
def _round_columns(xb, qb, c0, c, j0, w, man_bits, emin, maxval, compat, mode, seed, events,
                   top, exps):
    """Rows ``c0 .. c0 + c`` of columns ``j0 .. j0 + w`` of ``xb`` into the same places of
    ``qb`` as :func:`_scale_block` rounds each element, any mode; ``events`` = (event index
    of the first column's row start, row length K)."""
    first, nk = events
    for i in range(c):
        row, out = xb[c0 + i, j0:j0 + w], qb[c0 + i, j0:j0 + w]
        for j in range(w):
            e = exps[j]
            if top[j] >= _INF_BITS:
                out[j] = np.nan
                continue
            v = np.float64(row[j])
            clip = maxval if not (compat and e >= 128) else np.inf
            up, down = pow2(-e), pow2(e)
            if mode == RNE and bits_float(top[j]) * up < pow2(emin + 1):
                p = min(np.rint(abs(v) * (up * pow2(man_bits - emin))) * pow2(emin - man_bits),
                        clip)
            else:
                p = min(round_minifloat(abs(v) * up, man_bits, emin, mode, seed,
                                        first + j * nk + c0 + i), clip)
            out[j] = math.copysign(p * down, v)


@njit(parallel=True, cache=True)
def scale_blocks(rows, exps, block, magnitude, out):
    """``out[r, i] = v 2^exps[r, i // block]`` with v = |rows[r, i]| if ``magnitude`` else
    rows[r, i]: exact power-of-two scaling, one pass (out is float64)."""
    for r in prange(rows.shape[0]):
        for b in range(exps.shape[1]):      # block by block: no division per element
            scale = pow2(exps[r, b])
            src, dst = rows[r, b * block:(b + 1) * block], out[r, b * block:(b + 1) * block]
            for i in range(src.size):
                v = np.float64(src[i])
                dst[i] = (abs(v) if magnitude else v) * scale


def scalar_float(x, man_bits, emin, maxval, overflow, mode, seed, q, bad):
    """Round each element of 1-D ``x`` onto a binary float grid (``man_bits``, ``emin``).

    Magnitudes rounding above ``maxval``, and infinite inputs, follow ``overflow``:
    SATURATE -> +-maxval, TO_INF -> +-inf, TO_NAN -> NaN. NaN stays NaN. ``bad[c] = 1``
    marks chunks of CHUNK elements that hold NaN or Inf.
    """
    kernel = _scalar_float_parallel if parallel(x.size) else _scalar_float_serial
    kernel(x, man_bits, emin, maxval, overflow, mode, seed, q, bad)


@njit(parallel=True, cache=True)
def _scalar_float_parallel(x, man_bits, emin, maxval, overflow, mode, seed, q, bad):
    for c in prange(bad.size):
        _scalar_chunk(c, x, man_bits, emin, maxval, overflow, mode, seed, q, bad)


@njit(cache=True)
def _scalar_float_serial(x, man_bits, emin, maxval, overflow, mode, seed, q, bad):
    for c in range(bad.size):
        _scalar_chunk(c, x, man_bits, emin, maxval, overflow, mode, seed, q, bad)


@njit(inline="always", cache=True)
def _scalar_chunk(c, x, man_bits, emin, maxval, overflow, mode, seed, q, bad):
    """Chunk ``c`` of :func:`scalar_float`."""
    start = c * CHUNK
    xs, qs = x[start:start + CHUNK], q[start:start + CHUNK]
    flag = False
    for i in range(xs.size):
        v = np.float64(xs[i])
        a = abs(v)
        if a != a:
            qs[i] = v
            flag = True
            continue
        if a == np.inf:
            flag = True
            p = a
        else:
            p = round_minifloat(a, man_bits, emin, mode, seed, start + i)
        if p > maxval:
            if overflow == SATURATE:
                p = maxval
            elif overflow == TO_INF:
                p = np.inf
            else:
                p = np.nan
        qs[i] = math.copysign(p, v)
    bad[c] = flag


def scaled_int(x, scale, kmax, mode, seed, k):
    """Symmetric integer codes: ``k[r, i] = sign(x) min(round(|x[r, i]| / scale[r]), kmax)``,
    the quotient rounded to float64 once before the integer rounding."""
    kernel = _scaled_int_parallel if parallel(x.size) else _scaled_int_serial
    kernel(x, scale, kmax, mode, seed, k)


@njit(parallel=True, cache=True)
def _scaled_int_parallel(x, scale, kmax, mode, seed, k):
    for r in prange(x.shape[0]):
        _scaled_int_row(r, x, scale, kmax, mode, seed, k)


@njit(cache=True)
def _scaled_int_serial(x, scale, kmax, mode, seed, k):
    for r in range(x.shape[0]):
        _scaled_int_row(r, x, scale, kmax, mode, seed, k)


@njit(inline="always", cache=True)
def _scaled_int_row(r, x, scale, kmax, mode, seed, k):
    """Row ``r`` of :func:`scaled_int`."""
    n = x.shape[1]
    s = np.float64(scale[r])
    for i in range(n):
        v = np.float64(x[r, i])
        m = round_magnitude(abs(v) / s, mode, seed, r * n + i)
        if m > kmax:
            m = kmax
        k[r, i] = -m if v < 0 else m
