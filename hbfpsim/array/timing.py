"""Fold-level timing: when each fold starts and ends, and which buffer made it wait.

The model (des.py runs it as a simpy discrete-event simulation; ``fold_schedule`` below
computes the same schedule directly and is what ``simulate`` uses by default):

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


def cycles(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` (whole numbers as floats) as int64 cycles; a ValueError beyond MAX_CYCLES."""
    if x.size and x.max() > MAX_CYCLES:
        raise ValueError(f"{what} takes {x.max():.3g} cycles, beyond the 2^61 the timing "
                         "model counts: check the bandwidths and the GEMM's size")
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


@njit(cache=True)
def _recurrence(compute, loads, store, latency, double_buffered):
    """``fold_schedule``'s loop: (start, end, waited_on, total, prefetch, drain, stalls)."""
    n = compute.size
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    waited_on = np.full(n, -1, np.int8)
    stalls = np.zeros(3, np.int64)
    prefetch = 0
    if loads[:, 0].sum() > 0:
        prefetch = loads[:, 0].sum() + latency
    channel = 0                      # cycle the channel becomes free
    ready = np.zeros(3, np.int64)    # when fold f's A, B, partial sums are usable
    store_done = 0                   # when the previous fold's store finished
    previous_end = 0
    for f in range(n):
        begin = previous_end
        culprit = -1
        for b in range(3):
            if ready[b] > begin:
                begin = ready[b]
                culprit = b
        if not double_buffered and store_done > begin:
            begin = store_done
            culprit = 2
        if culprit >= 0:
            stalls[culprit] += begin - previous_end
            waited_on[f] = culprit
        start[f] = begin
        end[f] = begin + compute[f]
        if double_buffered and f + 1 < n:
            channel = _issue_loads(loads, f + 1, begin, channel, latency, ready)
        if store[f] > 0:
            channel = max(channel, end[f]) + store[f]
            store_done = channel
        if not double_buffered and f + 1 < n:
            channel = _issue_loads(loads, f + 1, end[f], channel, latency, ready)
        previous_end = end[f]
    return start, end, waited_on, previous_end, prefetch, max(store_done - previous_end, 0), \
        stalls


@njit(inline="always", cache=True)
def _issue_loads(loads, f, issued, channel, latency, ready):
    """Fold f's loads take the channel back to back from ``issued``; fills ``ready``."""
    at = max(channel, issued) if loads[:, f].sum() > 0 else channel
    for b in range(3):
        if loads[b, f] > 0:
            at += loads[b, f]
            ready[b] = at + latency
        else:
            ready[b] = issued
    return at
