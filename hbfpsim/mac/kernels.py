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
"""

import math

import numpy as np
from numba import njit, prange

from hbfpsim.formats.bits import pow2
from hbfpsim.mac.arith import (fixed_add, float_add, int_to_pair, round_fast, round_float,
                               scale2, two_sum)

FIXED, FLOAT = 0, 1
KIND, LENGTH, WIDTH, WRAP, HI, LO, MAN, EMIN, EMAX, MODE, FTZ, SAT, OFFSET = range(13)
NCOLUMNS = 13
STAT_INEXACT, STAT_PARTIAL, STAT_FULL, STAT_OVERFLOW, STAT_CONVERSION = range(5)
NSTATS = 5


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


@njit(cache=True)
def _products(a, brow, qa_k, qb_k, ival, fval, st, lvl, maxval, fused, seed, ids, event, slow):
    """Level 1 absorbs the products a * brow[j] for every column j."""
    n = brow.size
    if lvl[0, KIND] == FIXED:
        width, wrap, hi_lim, lo_lim = lvl[0, WIDTH], lvl[0, WRAP] != 0, lvl[0, HI], lvl[0, LO]
        for j in range(n):
            count = np.int64(scale2(a * brow[j], -(qa_k + qb_k[j])))
            ival[0, j], over = fixed_add(ival[0, j], count, width, wrap, hi_lim, lo_lim)
            st[0, STAT_OVERFLOW, j] += over
        return
    man, emin, emax, mode = lvl[0, MAN], lvl[0, EMIN], lvl[0, EMAX], lvl[0, MODE]
    ftz, sat, top = lvl[0, FTZ] != 0, lvl[0, SAT] != 0, maxval[0]
    if not fused:
        for j in range(n):
            exact = a * brow[j]
            index = ids[j] + event
            p, over = round_float(exact, 0.0, man, emin, top, mode, ftz, sat, seed, index)
            st[0, STAT_CONVERSION, j] += p != exact
            st[0, STAT_OVERFLOW, j] += over
            _add_into(0, j, fval[0, j], p, lvl, maxval, seed, index + 1, fval, st)
        return
    drop = 52 - man
    for j in range(n):          # common case, branch-free: vectorizes
        s = fval[0, j]
        p = a * brow[j]
        hi, lo = two_sum(s, p)
        r, valid = round_fast(hi, drop, emin, emax, top, mode, seed, ids[j] + event + 1)
        valid &= lo == 0.0
        slow[j] = not valid
        fval[0, j] = r if valid else s
        inexact = r != hi
        full = (p != 0.0) & (r == s)
        st[0, STAT_INEXACT, j] += valid & inexact
        st[0, STAT_FULL, j] += valid & full
        st[0, STAT_PARTIAL, j] += valid & inexact & (not full) & (abs(p) <= abs(s))
    for j in range(n):          # the rare rest, exactly
        if slow[j]:
            _add_into(0, j, fval[0, j], a * brow[j], lvl, maxval, seed, ids[j] + event + 1,
                      fval, st)


@njit(inline="always", cache=True)
def _enter(t, j, source, exact, drop, emin, emax, top, mode, seed, index, fval, st, slow):
    """Common case of one input entering float level t: convert (round_fast), add
    (two_sum + round_fast), count. Returns False, marking slow[j], when the exact path must
    redo it (then nothing was changed)."""
    x, valid_x = round_fast(source, drop, emin, emax, top, mode, seed, index)
    s = fval[t, j]
    hi, lo = two_sum(s, x)
    r, valid = round_fast(hi, drop, emin, emax, top, mode, seed, index + 1)
    valid &= exact & valid_x & (lo == 0.0)
    slow[j] = not valid
    fval[t, j] = r if valid else s
    inexact = r != hi
    full = (x != 0.0) & (r == s)
    st[t, STAT_CONVERSION, j] += valid & (x != source)
    st[t, STAT_INEXACT, j] += valid & inexact
    st[t, STAT_FULL, j] += valid & full
    st[t, STAT_PARTIAL, j] += valid & inexact & (not full) & (abs(x) <= abs(s))
    return valid


@njit(cache=True)
def _pass_up(l, qa_k, qb_k, ival, fval, st, lvl, maxval, seed, ids, event, slow):
    """Level l's chunk result enters level l + 1 (conversion, then addition); level l
    restarts from zero. ``qa_k + qb_k[j]`` is the products' LSB exponent in that chunk."""
    t = l + 1
    n = ival.shape[1]
    if lvl[t, KIND] == FIXED:
        for j in range(n):
            ival[t, j], over = fixed_add(ival[t, j], ival[l, j], lvl[t, WIDTH], lvl[t, WRAP] != 0,
                                         lvl[t, HI], lvl[t, LO])
            st[t, STAT_OVERFLOW, j] += over
            ival[l, j] = 0
        return
    man, emin, emax, mode = lvl[t, MAN], lvl[t, EMIN], lvl[t, EMAX], lvl[t, MODE]
    ftz, sat, top, drop = lvl[t, FTZ] != 0, lvl[t, SAT] != 0, maxval[t], 52 - lvl[t, MAN]
    from_fixed = lvl[l, KIND] == FIXED
    if from_fixed:              # common case, branch-free: vectorizes
        for j in range(n):
            v = ival[l, j]
            source = np.float64(v) * pow2(qa_k + qb_k[j])   # |LSB exponents| < 1022
            valid = _enter(t, j, source, abs(v) <= 9007199254740992, drop, emin, emax, top,
                           mode, seed, ids[j] + event, fval, st, slow)
            ival[l, j] = 0 if valid else v
    else:
        for j in range(n):
            source = fval[l, j]
            valid = _enter(t, j, source, True, drop, emin, emax, top, mode, seed,
                           ids[j] + event, fval, st, slow)
            fval[l, j] = 0.0 if valid else source
    for j in range(n):          # the rare rest, exactly
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
def _finish_row(i, ival, fval, st, lvl, qa_k, qb_k, out, row_stats, elem_stats):
    """Write the top level's registers to out[i] and the row's statistics."""
    top = lvl.shape[0] - 1
    n = ival.shape[1]
    for j in range(n):
        if lvl[top, KIND] == FIXED:
            hi, lo = int_to_pair(ival[top, j])
            out[i, j] = scale2(hi, qa_k + qb_k[j])   # |value| >= 2^53 rounds once here
        else:
            out[i, j] = fval[top, j]
    for l in range(st.shape[0]):
        for c in range(NSTATS):
            row_stats[i, l, c] += st[l, c].sum()
    if elem_stats.shape[0] > 0:
        elem_stats[i] += st


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
        totals[i] = total
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


@njit(parallel=True, cache=True)
def gemm_sequential(A, B, qa, qb, block_a, block_b, lvl, maxval, fused, seed, stride,
                    passes, totals, out, row_stats, elem_stats):
    """out = A @ B through every level of the plan, one product at a time.
    A (M, K), B (K, N) float64 exact values; qa (M, K/block_a), qb (K/block_b, N) LSB
    exponents; passes, totals: ``carries(lvl, 0, K)``; row_stats (M, levels, NSTATS) and
    elem_stats (M, levels, NSTATS, N) or empty."""
    m, k_len = A.shape
    n = B.shape[1]
    nlev = lvl.shape[0]
    for i in prange(m):
        ival = np.zeros((nlev, n), np.int64)
        fval = np.zeros((nlev, n), np.float64)
        st = np.zeros((nlev, NSTATS, n), np.int32)
        slow = np.zeros(n, np.bool_)
        ids = (i * n + np.arange(n)) * stride
        for k in range(k_len):
            qa_k = qa[i, k // block_a]
            qb_k = qb[k // block_b]
            _products(A[i, k], B[k], qa_k, qb_k, ival, fval, st, lvl, maxval, fused, seed, ids,
                      2 * (lvl[0, OFFSET] + k), slow)
            for l in range(passes[k]):
                _pass_up(l, qa_k, qb_k, ival, fval, st, lvl, maxval, seed, ids,
                         2 * (lvl[l + 1, OFFSET] + totals[k, l + 1]), slow)
        last = max(k_len - 1, 0)
        _finish_row(i, ival, fval, st, lvl, qa[i, last // block_a], qb[last // block_b], out,
                    row_stats, elem_stats)


@njit(parallel=True, cache=True)
def gemm_cascade(sums, level, passes, totals, qa, qb, lvl, maxval, seed, stride, ival, fval,
                 row_stats, elem_stats):
    """Fast path: ``sums[c]`` (M, N) are the exact integer results of consecutive chunks c of
    fixed level ``level`` (computed by BLAS). Each row takes each one as that level's
    register and passes it up into level + 1, then ``passes[c]`` levels further, as the
    sequential kernel would at that point; ``passes, totals = carries(lvl, level + 1, C)``
    (``totals[c, l]``: inputs level l had received before). qa (M, C),
    qb (C, N): the chunks' LSB exponents. ``ival``/``fval`` (M, levels, N) persist between
    calls; statistics are added to row_stats / elem_stats."""
    chunks, m, n = sums.shape
    nlev = lvl.shape[0]
    for i in prange(m):
        st = np.zeros((nlev, NSTATS, n), np.int32)
        slow = np.zeros(n, np.bool_)
        iv, fv = ival[i], fval[i]
        ids = (i * n + np.arange(n)) * stride
        for c in range(chunks):
            for j in range(n):
                iv[level, j] = np.int64(sums[c, i, j])
            for l in range(level, level + 1 + passes[c]):
                _pass_up(l, qa[i, c], qb[c], iv, fv, st, lvl, maxval, seed, ids,
                         2 * (lvl[l + 1, OFFSET] + totals[c, l + 1]), slow)
        for l in range(nlev):
            for c in range(NSTATS):
                row_stats[i, l, c] += st[l, c].sum()
        if elem_stats.shape[0] > 0:
            elem_stats[i] += st
