"""Fold-level timing: when each fold starts and ends, and which buffer made it wait.

The model (des.py runs it as a simpy discrete-event simulation; ``fold_schedule`` below
computes the same schedule directly, fold by fold, with per-fold events, and
``kind_schedule`` steps it over runs of identical folds without per-fold arrays, as
``simulate`` does by default through grouped.py, and many.py over many GEMMs at once;
``kind_cycles`` gives those runs' cycles):

- Fold f computes for P[f] cycles: its ideal fill/stream/drain cycles, stretched if a
  buffer cannot feed the array (``ceil(bytes / sram_bytes_per_cycle)`` for the bytes that
  buffer moves to or from the array during the fold).
- One DRAM channel serves transfers first come, first served. A transfer of b bytes holds it
  for ``ceil(b / bandwidth)`` cycles; read data is usable ``latency`` cycles after that. A
  fold's loads (A tile, B tile, partial sums read back) hold the channel back to back; its
  store is one transfer, issued when the fold ends and finished when the channel is done.
- Double buffering: the loads for fold f+1 are issued when fold f starts (prefetch), behind
  any store issued earlier. Without it they are issued when fold f ends, behind fold f's
  store, and fold f+1 also waits for that store (the single output buffer must drain).
- Fold 0's tiles are loaded before cycle 0 ("prefetch", reported apart as SCALE-Sim does),
  and the GEMM ends with its last fold: stores still in flight then ("drain") are reported
  apart too, since they overlap whatever runs next.

A fold that waits is charged to the buffer whose data came last (input, weight, or output
for partial sums and stores), SRAM stretches to the buffer that set the pace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

BUFFERS = ("input", "weight", "output")


@dataclass(frozen=True)
class Schedule:
    """When each fold ran and what it waited for: what both timing engines return."""

    start: np.ndarray         # int64 per fold: first cycle
    end: np.ndarray           # int64 per fold: first cycle after it
    waited_on: np.ndarray     # int8 per fold: -1 none, else the index in BUFFERS it waited on
    total_cycles: int         # end of the last fold
    prefetch_cycles: int      # loading fold 0's tiles, before cycle 0
    drain_cycles: int         # stores still in flight after the last fold
    stalls: np.ndarray        # int64 (3,): cycles waiting on DRAM data, per buffer


MAX_CYCLES = 2**61    # any schedule's total stays below this, far inside int64


def check_cycles(longest: float, what: str) -> None:
    """A ValueError if ``longest`` (cycles of the longest of some transfers) passes
    MAX_CYCLES; ``what`` names the kind of transfer."""
    if longest > MAX_CYCLES:
        raise ValueError(f"{what} takes {longest:.3g} cycles, beyond the 2^61 the timing "
                         "model counts: check the bandwidths and the GEMM's size")


def cycles(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` (whole numbers as floats) as int64 cycles; a ValueError beyond MAX_CYCLES."""
    if x.size:
        check_cycles(x.max(), what)
    return x.astype(np.int64)


def transfer_cycles(nbytes: np.ndarray, bandwidth: float) -> np.ndarray:
    """Channel cycles per transfer: ceil(bytes / bandwidth), 0 for no bytes."""
    if math.isinf(bandwidth):
        return np.zeros_like(nbytes)
    return cycles(np.ceil(nbytes / bandwidth), "a DRAM transfer")


def fold_compute(fold_cycles: int, buffer_bytes: np.ndarray, sram_bandwidth: float):
    """(P per fold, SRAM stall per buffer and fold). ``buffer_bytes`` (3, folds): bytes each
    buffer moves to or from the array during the fold; bandwidth 0 means unlimited."""
    folds = buffer_bytes.shape[1]
    if sram_bandwidth <= 0:
        return np.full(folds, fold_cycles, np.int64), np.zeros((3, folds), np.int64)
    need = cycles(np.ceil(buffer_bytes / sram_bandwidth), "an SRAM transfer")
    compute = np.maximum(need.max(axis=0), fold_cycles)
    pacer = need.argmax(axis=0)
    stalls = np.zeros((3, folds), np.int64)
    stalls[pacer, np.arange(folds)] = compute - fold_cycles
    return compute, stalls


def fold_schedule(compute: np.ndarray, loads: np.ndarray, store: np.ndarray, latency: int,
                  double_buffered: bool) -> Schedule:
    """The schedule of the module docstring, computed directly. ``compute`` (F,): cycles of
    each fold; ``loads`` (3, F): channel cycles of the A, B and partial-sum loads of each
    fold; ``store`` (F,): channel cycles of its store; ``latency``: cycles from a load's end
    to its data being usable."""
    start, end, waited_on, total, prefetch, drain, stalls = _recurrence(
        compute, loads, store, latency, double_buffered)
    return Schedule(start, end, waited_on, int(total), int(prefetch), int(drain), stalls)


def check_total(compute: np.ndarray, loads: np.ndarray, store: np.ndarray, latency: int
                ) -> None:
    """Refuse a schedule that could pass MAX_CYCLES: the fold ends are bounded by all the
    compute and channel cycles plus one latency per fold (summed in floats: no wrap)."""
    bound = sum(float(x.sum(dtype=np.float64)) for x in (compute, loads, store))
    bound += (compute.size + 1) * float(latency)
    if bound > MAX_CYCLES:
        raise ValueError(f"this GEMM could take up to {bound:.3g} cycles, beyond the 2^61 the "
                         "timing model counts: check the bandwidths, latency and GEMM size")


def kind_schedule(compute: Sequence[int], loads: Sequence[Sequence[int]],
                  store: Sequence[int], row_counts: tuple[int, ...],
                  col_counts: tuple[int, ...], latency: int, double_buffered: bool,
                  budget: int) -> tuple[int, int, int, tuple[int, int, int]] | None:
    """``fold_schedule`` over folds given as kinds, without per-fold arrays: (total,
    prefetch, drain, stalls per buffer), in cycles, or None if that takes more than
    ``budget`` folds stepped. Per kind (kind c * len(row_counts) + r): ``compute`` cycles,
    ``loads`` (3, K) and ``store`` channel cycles; the folds run as ``for c, n in
    enumerate(col_counts): n x (for r, n' in enumerate(row_counts): n' folds of kind
    c * len(row_counts) + r)``. Folds are stepped (about 10 ns each), but a run of alike
    folds that settles (two in a row take the same branches and advance the state alike)
    is jumped over as far as its branches hold."""
    flat = np.array([*compute, *loads[0], *loads[1], *loads[2], *store, *row_counts,
                     *col_counts], np.int64)      # one array: the cheapest to pass to numba
    done, total, prefetch, drain, s0, s1, s2 = kind_recurrence(
        flat, len(row_counts), len(col_counts), latency, double_buffered, budget)
    return (total, prefetch, drain, (s0, s1, s2)) if done else None


@njit(cache=True)
def kind_cycles(need, fold_cycles, dram_bandwidth, sram_bandwidth):
    """``transfer_cycles`` and ``fold_compute`` on ``memory.kind_bytes``'s bytes ``need`` (8,
    kinds): (status, longest, int64 (8, K) cycles: compute, the A, B and partial-sum loads,
    the store, the SRAM stalls of the input, weight and output buffers). status 0, else the
    first check to fail, loads before SRAM before stores: 1 a DRAM, 2 an SRAM transfer takes
    ``longest`` cycles, past MAX_CYCLES (the cycles are then not to be used)."""
    kinds = need.shape[1]
    cycles = np.zeros((8, kinds), np.int64)
    cycles[0] = fold_cycles
    for b in range(3):
        longest = _ceil_cycles(need[b], dram_bandwidth, cycles[1 + b])
        if longest > MAX_CYCLES:
            return 1, longest, cycles
    if sram_bandwidth > 0:
        per_buffer = np.zeros((3, kinds), np.int64)
        longest = max(_ceil_cycles(need[4], sram_bandwidth, per_buffer[0]),
                      _ceil_cycles(need[5], sram_bandwidth, per_buffer[1]),
                      _ceil_cycles(need[6] + need[7], sram_bandwidth, per_buffer[2]))
        if longest > MAX_CYCLES:
            return 2, longest, cycles
        for j in range(kinds):
            pacer = 0                                   # the first of the longest
            for b in range(1, 3):
                if per_buffer[b, j] > per_buffer[pacer, j]:
                    pacer = b
            cycles[0, j] = max(per_buffer[pacer, j], fold_cycles)
            cycles[5 + pacer, j] = cycles[0, j] - fold_cycles
    longest = _ceil_cycles(need[3], dram_bandwidth, cycles[4])
    return (1 if longest > MAX_CYCLES else 0), longest, cycles


@njit(cache=True)
def _ceil_cycles(nbytes, bandwidth, out):
    """ceil(bytes / bandwidth) into ``out`` (0 at infinite bandwidth) unless the longest
    passes MAX_CYCLES; returns the longest, in cycles (a float)."""
    if math.isinf(bandwidth):
        return 0.0
    longest = 0.0
    for j in range(nbytes.size):
        longest = max(longest, np.ceil(nbytes[j] / bandwidth))
    if longest <= MAX_CYCLES:
        for j in range(nbytes.size):
            out[j] = np.int64(np.ceil(nbytes[j] / bandwidth))
    return longest


@njit(cache=True)
def _recurrence(compute, loads, store, latency, double_buffered):
    """``fold_schedule``'s loop: (start, end, waited_on, total, prefetch, drain, stalls)."""
    n = compute.size
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    waited_on = np.full(n, -1, np.int8)
    x = (0, 0, 0, 0, 0, 0, 0, 0, 0)
    for f in range(n):
        x, start[f], waited_on[f], _ = _step(x, compute[f], store[f], loads,
                                             f + 1 if f + 1 < n else -1, latency,
                                             double_buffered)
        end[f] = x[0]
    return start, end, waited_on, x[0], _prefetch(loads, latency), max(x[5] - x[0], 0), \
        np.array([x[6], x[7], x[8]])


@njit(cache=True)
def kind_recurrence(flat, nr, nc, latency, double_buffered, budget):
    """``kind_schedule``'s loop: (done, total, prefetch, drain, stalls per buffer); done is
    False (and the rest 0) past ``budget`` folds stepped. ``flat``: its compute, loads,
    store, row_counts (nr) and col_counts (nc), concatenated."""
    kinds = nr * nc
    compute, loads, store = flat[:kinds], flat[kinds:4 * kinds].reshape(3, kinds), \
        flat[4 * kinds:5 * kinds]
    row_counts, col_counts = flat[5 * kinds:5 * kinds + nr], flat[5 * kinds + nr:]
    x = (0, 0, 0, 0, 0, 0, 0, 0, 0)
    steps = 0
    for c in range(nc):
        for rep in range(col_counts[c]):
            for r in range(nr):
                kind = c * nr + r
                if r + 1 < nr:                  # the kind after this run of folds
                    following = kind + 1
                elif rep + 1 < col_counts[c]:
                    following = c * nr
                elif c + 1 < nc:
                    following = (c + 1) * nr
                else:
                    following = -1
                x, stepped = _run(x, row_counts[r] - 1, compute[kind], store[kind], loads,
                                  kind, latency, double_buffered)
                x, _, _, _ = _step(x, compute[kind], store[kind], loads, following, latency,
                                   double_buffered)
                steps += stepped + 1
                if steps > budget:
                    return False, 0, 0, 0, 0, 0, 0
    return True, x[0], _prefetch(loads, latency), max(x[5] - x[0], 0), x[6], x[7], x[8]


@njit(inline="always", cache=True)
def _run(x, count, compute, store, loads, following, latency, double_buffered):
    """``count`` folds in a row, alike (``_step``'s arguments), from state ``x``: (the state
    after them, how many were stepped). Stepped, but once two consecutive folds take the
    same branches and advance the state alike, the next ones do too while every margin of a
    maximum (moving linearly) keeps its sign: those are one jump (grouped.py's, for blocks
    of one fold). Exact."""
    done, stepped, alike = 0, 0, False
    last_step, last_margins = x, (0, 0, 0, 0, 0, 0)
    while done < count:
        y, _, _, margins = _step(x, compute, store, loads, following, latency,
                                 double_buffered)
        step = _difference(y, x)
        done += 1
        stepped += 1
        if alike and step == last_step and _same_branches(margins, last_margins):
            jump = count - done
            for j in range(6):
                m, slope = margins[j], margins[j] - last_margins[j]
                if m > 0 and slope < 0:
                    jump = min(jump, (m - 1) // -slope)
                elif m <= 0 and slope > 0:
                    jump = min(jump, -m // slope)
            y = _advance(y, step, jump)
            done += jump
        alike, last_step, last_margins, x = True, step, margins, y
    return x, stepped


@njit(inline="always", cache=True)
def _same_branches(a, b):
    """Whether margins ``a`` and ``b`` took the same branches (> 0: the left side won)."""
    for j in range(6):
        if (a[j] > 0) != (b[j] > 0):
            return False
    return True


@njit(inline="always", cache=True)
def _difference(y, x):
    return (y[0] - x[0], y[1] - x[1], y[2] - x[2], y[3] - x[3], y[4] - x[4], y[5] - x[5],
            y[6] - x[6], y[7] - x[7], y[8] - x[8])


@njit(inline="always", cache=True)
def _advance(x, step, times):
    return (x[0] + times * step[0], x[1] + times * step[1], x[2] + times * step[2],
            x[3] + times * step[3], x[4] + times * step[4], x[5] + times * step[5],
            x[6] + times * step[6], x[7] + times * step[7], x[8] + times * step[8])


@njit(inline="always", cache=True)
def _prefetch(loads, latency):
    """Cycles loading fold 0's tiles (column 0 of ``loads``) before cycle 0."""
    first = loads[0, 0] + loads[1, 0] + loads[2, 0]
    return first + latency if first > 0 else 0


@njit(inline="always", cache=True)
def _step(x, compute, store, loads, following, latency, double_buffered):
    """One fold: it computes ``compute`` cycles and stores for ``store``; the loads of fold
    ``following`` (a column of ``loads``; -1: none) are issued. ``x``: the state (previous
    fold's end, channel free, A, B, partial sums ready, last store done, stalls per buffer).
    Returns (the next state, the fold's start, the buffer it waited on or -1, the margins
    (left minus right) of the maxima it took, 0 for those it did not)."""
    previous_end, channel, ra, rb, ro, store_done, s0, s1, s2 = x
    begin, culprit = previous_end, -1
    m0 = ra - begin
    if ra > begin:
        begin, culprit = ra, 0
    m1 = rb - begin
    if rb > begin:
        begin, culprit = rb, 1
    m2 = ro - begin
    if ro > begin:
        begin, culprit = ro, 2
    m3 = store_done - begin if not double_buffered else 0
    if not double_buffered and store_done > begin:
        begin, culprit = store_done, 2
    if culprit == 0:
        s0 += begin - previous_end
    elif culprit == 1:
        s1 += begin - previous_end
    elif culprit == 2:
        s2 += begin - previous_end
    end = begin + compute
    m4 = m5 = 0
    if double_buffered and following >= 0:
        channel, ra, rb, ro, m4 = _issue_loads(loads, following, begin, channel, latency)
    if store > 0:
        m5 = channel - end
        channel = max(channel, end) + store
        store_done = channel
    if not double_buffered and following >= 0:
        channel, ra, rb, ro, m4 = _issue_loads(loads, following, end, channel, latency)
    return (end, channel, ra, rb, ro, store_done, s0, s1, s2), begin, culprit, \
        (m0, m1, m2, m3, m4, m5)


@njit(inline="always", cache=True)
def _issue_loads(loads, f, issued, channel, latency):
    """Fold f's loads take the channel back to back from ``issued``: (channel free after
    them, when A, B and partial sums are usable, the margin channel - issued if any)."""
    la, lb, lo = loads[0, f], loads[1, f], loads[2, f]
    any_load = la + lb + lo > 0
    at = max(channel, issued) if any_load else channel
    at, ra = _loaded(la, at, issued, latency)
    at, rb = _loaded(lb, at, issued, latency)
    at, ro = _loaded(lo, at, issued, latency)
    return at, ra, rb, ro, channel - issued if any_load else 0


@njit(inline="always", cache=True)
def _loaded(load, at, issued, latency):
    """One load of ``load`` channel cycles from ``at``: (channel free, data usable)."""
    return (at + load, at + load + latency) if load > 0 else (at, issued)
