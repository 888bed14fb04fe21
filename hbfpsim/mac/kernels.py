"""GEMM kernels that follow an accumulation plan bit for bit (numba, parallel over rows).

Each dot product runs through the plan's levels (see plan.py). Per row of the output the
kernels keep every level's register for all N columns and walk K in the outer loop, so the
inner loop runs over independent columns: the serial dependency of an accumulation chain
never stalls it, and it vectorizes.

Level parameters arrive as an int64 table ``lvl`` (columns below) and a float64 vector of
each float level's largest finite value. Statistics are counted per output element in the
columns STAT_*; a level's events (additions into it, and the conversion of each input into
it) get fixed stochastic-rounding indices, so the fast and the sequential paths draw the same
bits: event ``2 (offset[l] + t) + c`` of element ``i N + j``, for the t-th input of level l,
c = 0 for its conversion and 1 for its addition.

Speed on AVX2 (no 64-bit integer multiply or int64 <-> float64 conversion in vector form):
the common-case loops come in two copies, stochastic or not (the deterministic modes differ
only in constants, ``arith.fast_rounder``), so only stochastic rounding pays for draws; they
reuse a per-row ``steps[j] = event_step(ids[j])`` (the counter term is linear in the index);
a level-1 fixed-point register whose sums are exact in float64 (``f0``) is kept as float64,
so products enter it by vector float adds and clamps; when it passes up into a float level it
goes as its exact value (``_hand_over``), never through int64; a float level 1 whose sums are
provably exact in float64 skips TwoSum. Each loop counts the lanes it declined, and the exact
redo runs only when there are some. The sequential kernel works on tiles of rows and runs of
K, so B is read from cache by all but the first row of a tile (two threads otherwise share
the memory bandwidth that streaming B needs).

The fast path's most common plan ends in a fixed level passing float32 chunk sums to an FP32
top level (``fixed13*64 > fp32``, HBFP4's default): that level is IEEE float32 addition, so
``_fp32_row`` adds in float32 with TwoSum for the statistics, every lane 32 bits wide (8 per
AVX2 vector), after a read-only pass that finds most chunks exact (nothing to count).
"""

import math

import numpy as np
from numba import njit, prange

from hbfpsim.formats.bits import GOLDEN, event_step, pow2, stream_key
from hbfpsim.formats.rounding import Rounding
from hbfpsim.mac.arith import (fast_rounder, fixed_add, float_add, int_to_pair, round_fast,
                               round_float, scale2, two_sum)

FIXED, FLOAT = 0, 1
KIND, LENGTH, WIDTH, WRAP, HI, LO, MAN, EMIN, MODE, FTZ, SAT, OFFSET, EXACT_IN = range(13)
NCOLUMNS = 13
STAT_INEXACT, STAT_PARTIAL, STAT_FULL, STAT_OVERFLOW, STAT_CONVERSION = range(5)
NSTATS = 5
TILE_ROWS = 4             # rows of A per parallel work item of the sequential kernel
RUN_BYTES = 2**17         # bytes of B per run of K (stays in L2 while a tile's rows use it)
PAD = 8                   # elements after each row of registers and statistics: rows a
#                           multiple of 4 KiB apart alias in the load/store unit (25% slower)
STOCHASTIC, RNE = int(Rounding.STOCHASTIC), int(Rounding.RNE)
TINY32, MAX32 = np.float32(2.0**-126), np.finfo(np.float32).max   # FP32's normal range
ZERO32 = np.float32(0.0)


@njit(inline="always", cache=True)
def _add_into(l, j, s_val, x, lvl, maxval, seed, index, fval, st):
    """fval[l, j] += x (rounded, counted). ``s_val`` is fval[l, j]."""
    r, over, inexact, partial, full = float_add(
        s_val, x, lvl[l, MAN], lvl[l, EMIN], maxval[l], lvl[l, MODE], lvl[l, FTZ] != 0,
        lvl[l, SAT] != 0, seed, index)
    fval[l, j] = r
    st[l, STAT_OVERFLOW, j] += over
    st[l, STAT_INEXACT, j] += inexact
    st[l, STAT_PARTIAL, j] += partial
    st[l, STAT_FULL, j] += full


@njit(inline="always", cache=True)
def _fused_loop(args, stochastic, exact):
    """The common case of level 1 (float, fused) absorbing a * brow[j], branch-free: marks
    and counts the lanes the exact path must redo. ``exact``: every s + p is exact in
    float64 (the caller checked the exponent span), so no TwoSum is needed to check it.
    ``args = (a, brow, fval, st, slow, steps, ctr, rounder)``."""
    a, brow, fval, st, slow, steps, ctr, rounder = args
    declined = 0
    for j in range(brow.size):
        s = fval[0, j]
        p = a * brow[j]
        if exact:
            hi, lo = s + p, 0.0
        else:
            hi, lo = two_sum(s, p)
        r, valid = round_fast(hi, lo, rounder, stochastic, steps[j] + ctr)
        slow[j] = not valid
        declined += not valid
        fval[0, j] = r if valid else s
        inexact = r != hi
        full = (p != 0.0) & (r == s)
        st[0, STAT_INEXACT, j] += valid & inexact
        st[0, STAT_FULL, j] += valid & full
        st[0, STAT_PARTIAL, j] += valid & inexact & (not full) & (abs(p) <= abs(s))
    return declined


@njit(inline="always", cache=True)
def _fixed_float_loop(a, brow, f0, st, hi_lim, lo_lim, span, wrap):
    """Level 1 fixed point held as exact float64 integers (|register| <= 2^51, products <=
    2^52: every sum is exact): add, then clamp or wrap into [lo_lim, hi_lim] (span = 2^w)."""
    for j in range(brow.size):
        t = f0[j] + a * brow[j]
        over = (t > hi_lim) | (t < lo_lim)
        if wrap:
            t -= span * np.floor((t - lo_lim) / span)
        else:
            t = min(max(t, lo_lim), hi_lim)
        f0[j] = t
        st[0, STAT_OVERFLOW, j] += over


@njit(cache=True)
def _products(arow, B, k0, k1, ival, fval, f0, st, lvl, maxval, fused, exact, seed, key, ids,
              steps, slow):
    """Level 1 absorbs the products arow[k] * B[k, j] for k in [k0, k1) (a run in which no
    level passes up) and every column j. A fixed level 1 gets the operands' integers
    (products in LSB units): into ``f0`` when that is in use (non-empty), else into the int64
    registers. ``exact``: level 1's sums are exact in float64 (``gemm_sequential``). One call
    per run, not per k: a call costs about as much as a short row."""
    n = B.shape[1]
    if lvl[0, KIND] == FIXED:
        width, wrap, hi_lim, lo_lim = lvl[0, WIDTH], lvl[0, WRAP] != 0, lvl[0, HI], lvl[0, LO]
        span = np.float64(2.0) ** width
        for k in range(k0, k1):
            a, brow = arow[k], B[k]
            if f0.size and wrap:
                _fixed_float_loop(a, brow, f0, st, float(hi_lim), float(lo_lim), span, True)
            elif f0.size:
                _fixed_float_loop(a, brow, f0, st, float(hi_lim), float(lo_lim), span, False)
            else:
                for j in range(n):
                    ival[0, j], over = fixed_add(ival[0, j], np.int64(a * brow[j]), width, wrap,
                                                 hi_lim, lo_lim)
                    st[0, STAT_OVERFLOW, j] += over
        return
    man, emin, mode = lvl[0, MAN], lvl[0, EMIN], lvl[0, MODE]
    ftz, sat, top = lvl[0, FTZ] != 0, lvl[0, SAT] != 0, maxval[0]
    rounder = fast_rounder(mode, man, emin, top, key)
    for k in range(k0, k1):
        a, brow, event = arow[k], B[k], 2 * (lvl[0, OFFSET] + k)
        if not fused:
            for j in range(n):
                prod = a * brow[j]
                index = ids[j] + event
                p, over = round_float(prod, 0.0, man, emin, top, mode, ftz, sat, seed, index)
                st[0, STAT_CONVERSION, j] += p != prod
                st[0, STAT_OVERFLOW, j] += over
                _add_into(0, j, fval[0, j], p, lvl, maxval, seed, index + 1, fval, st)
            continue
        args = (a, brow, fval, st, slow, steps, event_step(event + 1), rounder)
        if mode == STOCHASTIC and exact:    # constants in each copy: the draw and the
            declined = _fused_loop(args, True, True)   # TwoSum only where they are needed
        elif mode == STOCHASTIC:
            declined = _fused_loop(args, True, False)
        elif exact:
            declined = _fused_loop(args, False, True)
        else:
            declined = _fused_loop(args, False, False)
        if declined:
            for j in range(n):      # the rare rest, exactly
                if slow[j]:
                    _add_into(0, j, fval[0, j], a * brow[j], lvl, maxval, seed,
                              ids[j] + event + 1, fval, st)


@njit(inline="always", cache=True)
def _enter(t, j, source, rounder, stochastic, exact, step, fval, st, slow):
    """Common case of one input entering float level t: convert (round_fast), add
    (two_sum + round_fast), count. Returns False, marking slow[j], when the exact path must
    redo it (then nothing was changed). ``step``: the conversion's event step; the
    addition's is one golden increment further (``event_step(1) - event_step(0)``).
    ``exact``: every input of this level is representable in it (the LVL column EXACT_IN),
    so the conversion needs no rounding and never counts as inexact."""
    if exact:           # the input is on level t's grid: only its range is checked
        x = source
        valid_x = ((abs(x) >= rounder[1]) | (x == 0.0)) & (abs(x) <= rounder[2])
    else:
        x, valid_x = round_fast(source, 0.0, rounder, stochastic, step)
    s = fval[t, j]
    hi, lo = two_sum(s, x)
    r, valid = round_fast(hi, lo, rounder, stochastic, step + GOLDEN)
    valid &= valid_x
    slow[j] = not valid
    fval[t, j] = r if valid else s
    inexact = r != hi
    full = (x != 0.0) & (r == s)
    if not exact:
        st[t, STAT_CONVERSION, j] += valid & (x != source)
    st[t, STAT_INEXACT, j] += valid & inexact
    st[t, STAT_FULL, j] += valid & full
    st[t, STAT_PARTIAL, j] += valid & inexact & (not full) & (abs(x) <= abs(s))
    return valid


@njit(inline="always", cache=True)
def _enter_loop(args, stochastic, exact):
    """Float level l's registers enter float level l + 1, common case; returns the lanes
    declined. ``args = (l, fval, st, slow, steps, ctr, rounder)``."""
    l, fval, st, slow, steps, ctr, rounder = args
    declined = 0
    for j in range(steps.size):
        source = fval[l, j]
        valid = _enter(l + 1, j, source, rounder, stochastic, exact, steps[j] + ctr, fval, st,
                       slow)
        fval[l, j] = 0.0 if valid else source
        declined += not valid
    return declined


@njit(cache=True)
def _pass_up(l, qa_k, qb_k, ival, fval, st, lvl, maxval, seed, key, ids, steps, event, slow,
             float_source):
    """Level l's chunk result enters level l + 1 (conversion, then addition); level l
    restarts from zero. ``qa_k + qb_k[j]`` is the products' LSB exponent in that chunk.
    ``float_source``: fixed level l's result is already in fval[l] as its exact value
    (``_hand_over``), so no int64 conversion is needed (level l + 1 must be float)."""
    t = l + 1
    n = ids.size
    if lvl[t, KIND] == FIXED:
        for j in range(n):
            ival[t, j], over = fixed_add(ival[t, j], ival[l, j], lvl[t, WIDTH], lvl[t, WRAP] != 0,
                                         lvl[t, HI], lvl[t, LO])
            st[t, STAT_OVERFLOW, j] += over
            ival[l, j] = 0
        return
    man, emin, mode, top = lvl[t, MAN], lvl[t, EMIN], lvl[t, MODE], maxval[t]
    from_fixed = lvl[l, KIND] == FIXED and not float_source
    if from_fixed:      # int64 registers (wide or multi-level fixed plans): all exactly
        declined = n
        slow[:] = 1
    else:
        args = (l, fval, st, slow, steps, event_step(event),
                fast_rounder(mode, man, emin, top, key))
        exact = lvl[t, EXACT_IN] != 0
        if mode == STOCHASTIC and exact:    # constants in each copy, as in _products
            declined = _enter_loop(args, True, True)
        elif mode == STOCHASTIC:
            declined = _enter_loop(args, True, False)
        elif exact:
            declined = _enter_loop(args, False, True)
        else:
            declined = _enter_loop(args, False, False)
    if declined:
        _redo_lanes(l, qa_k, qb_k, ival, fval, st, lvl, maxval, seed, ids, event, slow,
                    from_fixed)


@njit(cache=True)
def _redo_lanes(l, qa_k, qb_k, ival, fval, st, lvl, maxval, seed, ids, event, slow,
                from_fixed):
    """The lanes ``slow`` marks of level l's pass up into float level l + 1, exactly
    (round_float, then _add_into): level l's result is in ival[l] (``from_fixed``: int64 in
    LSB units) or fval[l] (its exact value); both restart from zero."""
    t = l + 1
    man, emin, mode = lvl[t, MAN], lvl[t, EMIN], lvl[t, MODE]
    ftz, sat, top = lvl[t, FTZ] != 0, lvl[t, SAT] != 0, maxval[t]
    for j in range(ids.size):
        if slow[j]:
            if from_fixed:
                hi, lo = int_to_pair(ival[l, j])
                q = qa_k + qb_k[j]
                hi, lo = scale2(hi, q), scale2(lo, q)
            else:
                hi, lo = fval[l, j], 0.0
            index = ids[j] + event
            if not math.isfinite(hi):
                x = hi
            else:
                x, over = round_float(hi, lo, man, emin, top, mode, ftz, sat, seed, index)
                st[t, STAT_CONVERSION, j] += x != hi or lo != 0.0
                st[t, STAT_OVERFLOW, j] += over
            _add_into(t, j, fval[t, j], x, lvl, maxval, seed, index + 1, fval, st)
            ival[l, j] = 0
            fval[l, j] = 0.0


@njit(cache=True)
def is_fp32(lvl, t):
    """Whether level t is an FP32 register that rounds as IEEE float32 addition does: e8m23,
    round to nearest even, subnormals kept, Inf on overflow."""
    return (lvl[t, KIND] == FLOAT and lvl[t, MAN] == 23 and lvl[t, EMIN] == -126
            and lvl[t, MODE] == RNE and lvl[t, FTZ] == 0 and lvl[t, SAT] == 0)


@njit(cache=True)
def _finish_row(i, ival, fval, st, lvl, qa_k, qb_k, out, row_stats, elem_stats):
    """Write the top level's registers to out[i] and the row's statistics."""
    top = lvl.shape[0] - 1
    n = out.shape[1]
    for j in range(n):
        if lvl[top, KIND] == FIXED:
            hi, lo = int_to_pair(ival[top, j])
            out[i, j] = scale2(hi, qa_k + qb_k[j])   # |value| >= 2^53 rounds once here
        else:
            out[i, j] = fval[top, j]
    _add_stats(i, st, row_stats, elem_stats)


@njit(cache=True)
def _add_stats(i, st, row_stats, elem_stats):
    """Row i's statistics into the totals (and the per-element counts, when kept)."""
    keep = elem_stats.shape[0] > 0
    for l in range(st.shape[0]):     # explicit loops: array expressions cost compile time
        for c in range(NSTATS):
            total = 0
            for j in range(elem_stats.shape[3]):
                total += st[l, c, j]
                if keep:
                    elem_stats[i, l, c, j] += st[l, c, j]
            row_stats[i, l, c] += total


@njit(cache=True)
def carries(lvl, first, n):
    """The carry rule, written once for both GEMM kernels. Inputs 0..n-1 enter level
    ``first`` one at a time; after each, a level whose chunk is complete (LENGTH inputs), or
    any level once the last input is in, passes its result up as one input of the next
    level and restarts from zero, cascading upward. Returns ``passes[i]``, how many levels
    climb after input i, and ``totals[i, l]``, how many inputs level l had received before
    input i arrived (which numbers its stochastic-rounding events)."""
    nlev = lvl.shape[0]
    count = np.zeros(nlev, np.int64)
    total = np.zeros(nlev, np.int64)
    passes = np.zeros(n, np.int64)
    totals = np.zeros((n, nlev), np.int64)
    for i in range(n):
        for l in range(nlev):
            totals[i, l] = total[l]
        count[first] += 1
        total[first] += 1
        l = first
        while l + 1 < nlev and (count[l] == lvl[l, LENGTH] or i == n - 1):
            passes[i] += 1
            count[l] = 0
            count[l + 1] += 1
            total[l + 1] += 1
            l += 1
    return passes, totals


@njit(cache=True)
def _hand_over(l, counts, qa_k, qb_k, ival, fval, lvl):
    """Fixed level l's result, exact integers ``counts`` (float64, in LSB units), is put
    where ``_pass_up`` reads it: into fval[l] as its value when level l + 1 is float (vector
    work only; returns True: pass up with float_source), else into ival[l] (int64, a scalar
    conversion AVX2 lacks a vector form of). ``counts`` restarts from zero."""
    to_float = lvl[l + 1, KIND] == FLOAT
    if to_float:            # separate loops: this one vectorizes
        for j in range(qb_k.size):
            fval[l, j] = counts[j] * pow2(qa_k + qb_k[j])
    else:
        for j in range(qb_k.size):
            ival[l, j] = np.int64(counts[j])
    for j in range(qb_k.size):
        counts[j] = 0.0
    return to_float


@njit(cache=True)
def _tile_state(r0, rows, n, nlev, stride):
    """Rows r0 .. r0 + rows - 1: statistics, event ids and their stochastic-draw steps, and
    one row of slow-lane marks (scratch, reused row after row)."""
    ids = np.empty((rows, n), np.int64)
    for r in range(rows):
        for j in range(n):
            ids[r, j] = ((r0 + r) * n + j) * stride
    return (np.zeros((rows, nlev, NSTATS, n + PAD), np.int64), np.zeros(n, np.int64), ids,
            ids.astype(np.uint64) * GOLDEN)


@njit(cache=True)
def _sequential_tile(r0, r1, A, B, qa, qb, block_a, block_b, lvl, maxval, fused, exact,
                     seed, key, stride, passes, totals, out, row_stats, elem_stats):
    """Rows r0 .. r1 - 1 of ``gemm_sequential``. K is walked in runs that end where a level
    passes up, cut to ``RUN_BYTES`` of B; each run is applied to every row of the tile in
    turn, so those rows of B are read from the cache, not memory, after the first row (the
    fastest loops are otherwise bound by streaming B). A function of its own: the parallel
    loop around it stays small, which keeps numba's compile time down."""
    k_len = A.shape[1]
    n = B.shape[1]
    nlev = lvl.shape[0]
    rows = r1 - r0
    ival = np.zeros((rows, nlev, n + PAD), np.int64)
    fval = np.zeros((rows, nlev, n + PAD), np.float64)
    fixed_f0 = exact and lvl[0, KIND] == FIXED
    f0 = np.zeros((rows, n + PAD if fixed_f0 else 0), np.float64)
    st, slow, ids, steps = _tile_state(r0, rows, n, nlev, stride)
    run = max(1, RUN_BYTES // (8 * n))
    k0 = np.int64(0)         # not a literal 0: _products would compile once more for it
    for k in range(k_len):
        if not passes[k] and k < k_len - 1 and k + 1 - k0 < run:
            continue
        for r in range(rows):
            _products(A[r0 + r], B, k0, k + 1, ival[r], fval[r], f0[r], st[r], lvl, maxval,
                      fused, exact, seed, key, ids[r], steps[r], slow)
        k0 = k + 1
        if not passes[k]:
            continue
        qb_k = qb[k // block_b]
        for r in range(rows):
            qa_k = qa[r0 + r, k // block_a]
            for l in range(passes[k]):
                float_source = l == 0 and fixed_f0 and _hand_over(0, f0[r], qa_k, qb_k,
                                                                     ival[r], fval[r], lvl)
                _pass_up(l, qa_k, qb_k, ival[r], fval[r], st[r], lvl, maxval, seed, key, ids[r],
                         steps[r], 2 * (lvl[l + 1, OFFSET] + totals[k, l + 1]), slow,
                         float_source)
    last = max(k_len - 1, 0)
    for r in range(rows):
        if fixed_f0 and nlev == 1:
            for j in range(n):
                ival[r, 0, j] = np.int64(f0[r, j])
        _finish_row(r0 + r, ival[r], fval[r], st[r], lvl, qa[r0 + r, last // block_a],
                    qb[last // block_b], out, row_stats, elem_stats)


@njit(parallel=True, cache=True)
def gemm_sequential(A, B, qa, qb, block_a, block_b, lvl, maxval, fused, exact, seed,
                    stride, passes, totals, out, row_stats, elem_stats):
    """out = A @ B through every level of the plan, one product at a time.
    A (M, K), B (K, N) float64: the exact values, or for a fixed level 1 the integers (in
    LSB units); qa (M, K/block_a), qb (K/block_b, N) LSB exponents; ``exact``: the caller
    checked that level 1's sums are exact in float64, so a fixed level 1 is held in float64
    and a float level 1 skips the TwoSum that checks each addition; passes,
    totals: ``carries(lvl, 0, K)``; row_stats (M, levels, NSTATS) and elem_stats (M, levels,
    NSTATS, N) or empty."""
    key = stream_key(seed)
    m = A.shape[0]
    for t in prange(-(-m // TILE_ROWS)):
        r0 = np.int64(t) * TILE_ROWS
        _sequential_tile(r0, min(r0 + TILE_ROWS, m), A, B, qa, qb, block_a, block_b, lvl,
                         maxval, fused, exact, seed, key, stride, passes, totals, out,
                         row_stats, elem_stats)


@njit(cache=True)
def _cascade_row(r, i, sums, first, level, passes, totals, qa, qb, lvl, maxval, seed, key,
                 stride, ival, fval, out, row_stats, elem_stats):
    """Row i of the GEMM, row r of its band in ``_fast_band``: ``sums[c, r]`` is chunk
    first + c."""
    count, _, n = sums.shape
    nlev = lvl.shape[0]
    sts, slow, idss, stepss = _tile_state(i, 1, n, nlev, stride)
    st, ids, steps = sts[0], idss[0], stepss[0]
    if ival.shape[0]:
        iv, fv = ival[r], fval[r]
    else:
        iv, fv = np.zeros((nlev, n + PAD), np.int64), np.zeros((nlev, n + PAD))
    counts = np.empty(n)
    for c in range(first, first + count):
        for j in range(n):
            counts[j] = sums[c - first, r, j]
        for l in range(level, level + 1 + passes[c]):
            float_source = l == level and _hand_over(l, counts, qa[i, c], qb[c], iv, fv, lvl)
            _pass_up(l, qa[i, c], qb[c], iv, fv, st, lvl, maxval, seed, key, ids, steps,
                     2 * (lvl[l + 1, OFFSET] + totals[c, l + 1]), slow, float_source)
    for j in range(n):
        out[i, j] = fv[nlev - 1, j]
    _add_stats(i, st, row_stats, elem_stats)


@njit(inline="always", cache=True)
def _pow2_f32(q):
    """2^q as a float32 where that is a normal float32 (-126 <= q <= 127), else NaN."""
    return np.float32(pow2(q)) if -126 <= q <= 127 else np.float32(np.nan)


@njit(inline="always", cache=True)
def _fp32_lane(total, scale, s):
    """One lane's addition into an FP32 top level: (scale, the product ``p = total * scale``,
    the register ``s``, ``hi = s + p`` in float32 and TwoSum's error ``lo`` of it)."""
    p = total * scale
    hi = s + p
    bb = hi - s
    return scale, p, s, hi, (s - (hi - bb)) + (p - bb)


@njit(inline="always", cache=True)
def _fp32_chunk(sums, sa, sb, ft, cnt, slow):
    """One chunk's results enter an FP32 top level (``is_fp32``) by IEEE float32 addition,
    which is that register's rounding: lane j adds ``sums[j] * sa * sb[j]`` (exact integers
    below 2^24 in LSB units, times the float32 powers of two of the LSB exponents, NaN where
    those leave the normal range) to ``ft[j]``. TwoSum in float32 gives the addition's error
    for the statistics, counted in ``cnt`` (inexact, full swamps, partial swamps; float32
    counts, exact below 2^24). A lane is declined (slow[j] = 1, nothing changed) unless the
    scale is a normal float32 (then the value, an integer times it, is zero or normal and
    exact: no conversion rounds) and the sum is finite. Returns whether any lane was
    declined. Every operand is 32 bits wide (no int64 counter or flag), so the loop runs 8
    lanes per AVX2 vector."""
    declined = False
    for j in range(sums.size):
        scale, p, s, hi, lo = _fp32_lane(sums[j], sa * sb[j], ft[j])
        valid = (abs(scale) >= TINY32) & (abs(hi) <= MAX32)
        slow[j] = np.float32(not valid)
        declined |= not valid
        ft[j] = hi if valid else s
        inexact = valid & (lo != ZERO32)
        full = valid & (p != ZERO32) & (hi == s)
        cnt[0, j] += np.float32(inexact)
        cnt[1, j] += np.float32(full)
        cnt[2, j] += np.float32(inexact & (not full) & (abs(p) <= abs(s)))
    return declined


@njit(inline="always", cache=True)
def _fp32_exact(sums, sa, sb, ft):
    """Whether every lane of ``_fp32_chunk`` is valid and its addition exact (TwoSum's error
    is zero): then no statistic counts and plain float32 additions (``_fp32_add``) are all
    there is to do. Reads only: about half the cost of ``_fp32_chunk``."""
    ok = True
    for j in range(sums.size):
        scale, p, s, hi, lo = _fp32_lane(sums[j], sa * sb[j], ft[j])
        ok &= (abs(scale) >= TINY32) & (abs(hi) <= MAX32) & (lo == ZERO32)
    return ok


@njit(inline="always", cache=True)
def _fp32_add(sums, sa, sb, ft):
    """``_fp32_chunk``'s additions without their checks and counts (``_fp32_exact``)."""
    for j in range(sums.size):
        ft[j] = ft[j] + sums[j] * (sa * sb[j])


@njit(cache=True)
def _fp32_row(r, i, slot, sums, first, level, totals, qa, qb, sb, lvl, maxval, seed,
              stride, state, row_stats, elem_stats):
    """Row i of the GEMM, row r of its band: chunks first, first + 1, ... (``sums[c, r]``)
    enter the FP32 top level (``_fp32_add`` where ``_fp32_exact`` finds nothing to count,
    else ``_fp32_chunk``). Declined lanes are redone exactly (``_redo_lanes``) and their
    statistics added at once. ``sb`` (C, N): 2^qb as float32 (``_pow2_f32``); ``state``:
    FP32 registers ft (slots, N) and counts cnt (slots, 3, N), the row's in ``slot``, and
    scratch (slow32, slow, ival, fval, st) for the redo."""
    ft, cnt, slow32, slow, ival, fval, st = state
    count, _, n = sums.shape
    t = level + 1
    for c in range(first, first + count):
        row = sums[c - first, r]
        sa = _pow2_f32(qa[i, c])
        if _fp32_exact(row, sa, sb[c], ft[slot]):     # the common case
            _fp32_add(row, sa, sb[c], ft[slot])
            continue
        if not _fp32_chunk(row, sa, sb[c], ft[slot], cnt[slot], slow32):
            continue
        for j in range(n):
            slow[j] = slow32[j] != 0
            fval[t, j] = ft[slot, j]
            fval[level, j] = np.float64(row[j]) * pow2(qa[i, c] + qb[c, j]) if slow[j] else 0.0
        ids = (i * n + np.arange(n)) * stride
        _redo_lanes(level, qa[i, c], qb[c], ival, fval, st, lvl, maxval, seed, ids,
                    2 * (lvl[t, OFFSET] + totals[c, t]), slow, False)
        for j in range(n):
            ft[slot, j] = fval[t, j]        # an FP32 value (or +-Inf): exact
        _add_stats(i, st, row_stats, elem_stats)
        st[:] = 0


@njit(cache=True)
def _fp32_finish(slot, i, t, ft, cnt, out, row_stats, elem_stats):
    """Row i of an FP32 top level t, kept in ``slot``: its registers to out[i], its counts
    to the statistics; both restart from zero."""
    keep = elem_stats.shape[0] > 0
    n = out.shape[1]
    for c in range(3):
        stat = (STAT_INEXACT, STAT_FULL, STAT_PARTIAL)[c]
        total = 0
        for j in range(n):
            total += np.int64(cnt[slot, c, j])
        row_stats[i, t, stat] += total
        if keep:
            for j in range(n):
                elem_stats[i, t, stat, j] += np.int64(cnt[slot, c, j])
        cnt[slot, c] = 0.0
    for j in range(n):
        out[i, j] = ft[slot, j]
    ft[slot] = 0.0


@njit(cache=True)
def _fast_band(r0, r1, ia, ib, per_batch, level, passes, totals, qa, qb, fp32, lvl, maxval,
               seed, key, stride, out, row_stats, elem_stats):
    """Rows r0 .. r1 - 1 of ``gemm_fast``, ``per_batch`` chunks at a time: BLAS writes their
    sums into a buffer that stays in cache, then each row takes them up: into an FP32 top
    level by ``_fp32_row`` when ``fp32``, else by ``_cascade_row``."""
    chunks, _, _ = ia.shape
    n = ib.shape[2]
    nlev = lvl.shape[0]
    rows = r1 - r0
    sb = np.empty((chunks if fp32 else 0, n), np.float32)
    for c in range(sb.shape[0]):
        for j in range(n):
            sb[c, j] = _pow2_f32(qb[c, j])
    persist = rows if per_batch < chunks else 0   # else each row keeps its own registers
    ival = np.zeros((0 if fp32 else persist, nlev, n + PAD), np.int64)
    fval = np.zeros((0 if fp32 else persist, nlev, n + PAD))
    slots = max(persist, 1) if fp32 else 0
    state = (np.zeros((slots, n), np.float32), np.zeros((slots, 3, n), np.float32),
             np.zeros(n, np.float32), np.zeros(n, np.int64), np.zeros((nlev, n + PAD), np.int64),
             np.zeros((nlev, n + PAD)), np.zeros((nlev, NSTATS, n + PAD), np.int64))
    buffer = np.empty((per_batch, rows, n), ia.dtype)
    for first in range(0, chunks, per_batch):
        count = min(per_batch, chunks - first)
        sums = buffer[:count]
        for c in range(count):
            np.dot(ia[first + c, r0:r1], ib[first + c], sums[c])
        for r in range(rows):
            if fp32:
                slot = r if persist else 0
                _fp32_row(r, r0 + r, slot, sums, first, level, totals, qa, qb, sb, lvl,
                          maxval, seed, stride, state, row_stats, elem_stats)
                if not persist:
                    _fp32_finish(0, r0 + r, level + 1, state[0], state[1], out, row_stats,
                                 elem_stats)
            else:
                _cascade_row(r, r0 + r, sums, first, level, passes, totals, qa, qb, lvl,
                             maxval, seed, key, stride, ival, fval, out, row_stats, elem_stats)
    for r in range(persist if fp32 else 0):
        _fp32_finish(r, r0 + r, level + 1, state[0], state[1], out, row_stats, elem_stats)


@njit(parallel=True, cache=True)
def gemm_fast(ia, ib, rows, per_batch, level, passes, totals, qa, qb, fp32, lvl, maxval,
              seed, stride, out, row_stats, elem_stats):
    """Fast path: fixed levels 1 .. level + 1 never overflow, so their chunk results are
    exact integer products, computed by BLAS: ``ia`` (C, M, S) and ``ib`` (C, S, N) hold
    the integer operands chunk by chunk (float32 or float64, exact; a short last chunk
    padded with zeros). Each row takes each chunk's sum as level ``level``'s register and
    passes it up into level + 1, then ``passes[c]`` levels further, as the sequential kernel
    would at that point; ``passes, totals = carries(lvl, level + 1, C)`` (``totals[c, l]``:
    inputs level l had received before). qa (M, C), qb (C, N): the chunks' LSB exponents.
    ``fp32``: level + 1 is the top level, FP32 (``is_fp32``), and ``ia`` is float32: the
    chunk sums enter it by float32 arithmetic (``_fp32_row``). Parallel over bands of
    ``rows`` rows; ``out`` (M, N) receives the top (float) level's registers; statistics
    are added to row_stats / elem_stats. BLAS must run on one thread per call here (the
    caller limits it)."""
    key = stream_key(seed)
    m = ia.shape[1]
    for t in prange(-(-m // rows)):
        r0 = np.int64(t) * rows
        _fast_band(r0, min(r0 + rows, m), ia, ib, per_batch, level, passes, totals, qa, qb,
                   fp32, lvl, maxval, seed, key, stride, out, row_stats, elem_stats)
