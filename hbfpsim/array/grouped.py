"""The fold-level timing model in time and memory independent of the fold count.

All a fold moves or takes (memory.py, timing.py) depends only on whether its row fold is
the first, the last or in between, and likewise its column fold. So the folds are at most
3 x 3 *kinds* (a representative fold each, with real indices: ``memory.demand`` and
timing.py's functions give its bytes and cycles), run as ``for c in (first, middle x
(CF - 2), last): for r in (first, middle x (RF - 2), last)`` for RF row, CF column folds.

``timing.fold_schedule``'s recurrence is maxima and sums: with the branches it takes (which
side wins each maximum) fixed, a fold is an affine map of the state. Once two consecutive
repetitions of a step (a fold, a column pass, a block of up to PERIOD of them) take the same
branches and advance the state alike, later ones do too while the branches hold: each
compares quantities moving linearly, so how long is a division. ``_repeat`` jumps that
far, then steps on. Nothing is approximated: results are the per-fold recurrence's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

from hbfpsim.array import timing
from hbfpsim.array.mapping import Mapping, plan_for
from hbfpsim.array.memory import FoldDemand, check_buffers, demand
from hbfpsim.config import ArrayConfig
from hbfpsim.mac import AccumulationPlan
from hbfpsim.numerics import Numerics

State = list[int]     # previous_end, channel, ready A, B, partial sums, store_done, 3 stalls
Apply = Callable[[State, "_Trace"], State]      # one repetition of a step, noting branches
PERIOD = 8            # longest block of repetitions tried as a repeating unit
TRACE_CAP = 4096      # comparisons kept per repetition: a longer one is stepped, not jumped
EXPAND_BELOW = 4096   # up to this many folds, the per-fold (numba) recurrence is faster


def classes(folds: int) -> list[tuple[int, int]]:
    """(representative fold index, multiplicity) of the first, middle and last folds."""
    return [(0, 1), (1, folds - 2), (folds - 1, 1)] if folds > 2 else [(0, 1), (1, 1)][:folds]


class Representatives(Mapping):
    """A GEMM's mapping whose folds are its kinds' representatives, in execution order, for
    ``memory.demand``. ``folds`` counts them (Mapping's fold limit cannot apply); the other
    properties (``row_folds``, ``fold_cycles``, ``mapping_efficiency``...) are the GEMM's."""

    @property
    def folds(self) -> int:
        return len(classes(self.row_folds)) * len(classes(self.col_folds))

    def fold_extents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        sr, sc, _ = self.spatial
        rows = np.array([i for i, _ in classes(self.row_folds)], np.int64)
        cols = np.array([i for i, _ in classes(self.col_folds)], np.int64)
        fr, fc = np.tile(rows, cols.size), np.repeat(cols, rows.size)
        return fr, fc, np.minimum(self.rows, sr - fr * self.rows), \
            np.minimum(self.cols, sc - fc * self.cols)


@dataclass(frozen=True)
class FoldRuns:
    """The folds as kinds (kind c * len(row_counts) + r) and multiplicities."""

    row_counts: tuple[int, ...]   # folds per row class: (1,), (1, 1) or (1, RF - 2, 1)
    col_counts: tuple[int, ...]   # column passes per column class, likewise
    compute: np.ndarray           # int64 (K,): cycles of a fold of each kind
    loads: np.ndarray             # int64 (3, K): channel cycles of its A, B, partial-sum loads
    store: np.ndarray             # int64 (K,): channel cycles of its store
    sram_stalls: np.ndarray       # int64 (3, K): its SRAM stretch per buffer, cycles
    traffic: FoldDemand | None    # its bytes moved (None: timing only)

    @cached_property
    def weights(self) -> list[int]:
        """Folds of each kind."""
        return [c * r for c in self.col_counts for r in self.row_counts]

    def total(self, per_kind: np.ndarray) -> int:
        """A per-kind quantity summed over all folds, exactly."""
        return sum(w * x for w, x in zip(self.weights, per_kind.tolist()))


def checked_bits(config: ArrayConfig) -> dict[str, float]:
    """Storage bits per element of what each buffer holds (input, weight, output: partial
    sums), after checking that each buffer holds one array tile."""
    numerics = Numerics.of(config)
    bits = {"input": numerics.input.storage_bits, "weight": numerics.weight.storage_bits,
            "output": numerics.psum_bits}
    check_buffers({"input": config.input_kib, "weight": config.weight_kib,
                   "output": config.output_kib}, config.rows, config.cols, bits, config.source)
    return bits


def fold_costs(mapping: Mapping, config: ArrayConfig, bits: dict[str, float]
               ) -> tuple[FoldDemand, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per fold of ``mapping`` (every fold, or one per kind): (demand in bytes, compute
    cycles, SRAM stall cycles (3, F), load channel cycles (3, F), store channel cycles)."""
    need = demand(mapping, bits["input"], bits["weight"], bits["output"], bits["output"],
                  config.input_kib, config.weight_kib, config.output_kib)
    bandwidth = config.dram_bytes_per_cycle
    loads = np.stack([timing.transfer_cycles(x, bandwidth)
                      for x in (need.load_a, need.load_b, need.load_out)])
    compute, sram_stalls = timing.fold_compute(
        mapping.fold_cycles, np.stack([need.read_a, need.read_b, need.psum_write + need.psum_read]),
        config.sram_bytes_per_cycle)
    return need, compute, sram_stalls, loads, timing.transfer_cycles(need.store, bandwidth)


def fold_runs(config: ArrayConfig, m: int, n: int, k: int) -> tuple[FoldRuns, Mapping]:
    """The runs of C[M, N] = A[M, K] B[K, N] on ``config`` and their mapping, after
    simulate's checks (buffers, GEMM dimensions) and computed as simulate does."""
    bits = checked_bits(config)
    mapping = Representatives.of(m, n, k, config)
    need, compute, sram_stalls, loads, store = fold_costs(mapping, config, bits)
    counts = [tuple(c for _, c in classes(f)) for f in (mapping.row_folds, mapping.col_folds)]
    return FoldRuns(*counts, compute, loads, store, sram_stalls, need), mapping


def check_total(runs: FoldRuns, latency: int) -> None:
    """``timing.check_total`` on the runs: the same bound, summed in exact integers."""
    bound = sum(runs.total(x) for x in (runs.compute, *runs.loads, runs.store))
    bound += (sum(runs.weights) + 1) * latency
    if bound > timing.MAX_CYCLES:
        raise ValueError(f"this GEMM could take up to {float(bound):.3g} cycles, beyond the 2^61 "
                         "the timing model counts: check the bandwidths, latency and GEMM size")


class _Trace:
    """What a repetition compared: the margins (left minus right) of the maxima it took, in
    order, and where the repetitions inside it jumped. ``margins`` None: too many to keep."""

    def __init__(self, margins: list[int] | None = None, shape: list | None = None) -> None:
        self.margins: list[int] | None = margins or []
        self.shape: list[tuple[int, ...]] = shape or []

    def signature(self) -> tuple | None:
        """The branches taken (margin > 0: the left side won) and the jumps."""
        return None if self.margins is None else \
            (tuple(self.shape), tuple(m > 0 for m in self.margins))

    def absorb(self, inner: _Trace) -> None:
        if self.margins is None or inner.margins is None or \
                len(self.margins) + len(inner.margins) > TRACE_CAP:
            self.margins, self.shape = None, []
        else:
            self.shape += [(len(self.margins) + s[0], *s[1:]) for s in inner.shape]
            self.margins += inner.margins


def _repeat(x: State, apply: Apply, n: int, trace: _Trace) -> State:
    """``apply`` n times from state ``x``, jumping wherever the last block of p repetitions
    (p <= PERIOD) repeats the one before it; what it compared goes into ``trace``."""
    if n > 0 and trace.margins is not None:
        trace.shape.append((len(trace.margins), n))
    history: list[tuple[tuple | None, list[int] | None, State]] = []  # signature, margins, x
    done = 0
    while done < n:
        inner = _Trace()
        y = apply(x, inner)
        done += 1
        trace.absorb(inner)
        history = history[1 - 2 * PERIOD:] + [(inner.signature(), inner.margins, x)]
        x = y
        for p in range(1, min(PERIOD, len(history) // 2, n - done) + 1):
            block = _block(history, x, p, (n - done) // p)
            if block is not None:
                jump, step, edges = block
                x = [a + jump * d for a, d in zip(x, step)]
                trace.absorb(_Trace(edges, [(0, done, p, jump)]))
                done += jump * p
                history = []
                break
    return x


def _block(history: list, x: State, p: int, limit: int
           ) -> tuple[int, State, list[int]] | None:
    """If the last p repetitions took the branches of the p before and advanced the state
    as much: how many more blocks of p do (1 to ``limit``, else None), the increment per
    block, and the margins of the first and the last of those blocks."""
    older, newer = history[-2 * p:-p], history[-p:]
    step = [b - a for a, b in zip(newer[0][2], x)]
    if any(a[0] is None or a[0] != b[0] for a, b in zip(older, newer)) or \
            step != [b - a for a, b in zip(older[0][2], newer[0][2])]:
        return None
    margins = [m for h in newer for m in h[1]]
    slopes = [b - a for a, b in zip((m for h in older for m in h[1]), margins)]
    for m, slope in zip(margins, slopes):        # a margin keeps its sign (> 0 or <= 0) ...
        if m > 0 and slope < 0:
            limit = min(limit, (m - 1) // -slope)
        elif m <= 0 and slope > 0:
            limit = min(limit, -m // slope)      # ... for a whole number of blocks
    return None if limit == 0 else (limit, step, [m + s for m, s in zip(margins, slopes)]
                                    + [m + limit * s for m, s in zip(margins, slopes)])


def _fold(x: State, trace: _Trace, compute: int, store: int, loads: tuple[int, ...] | None,
          latency: int, double_buffered: bool) -> State:
    """One turn of ``timing._recurrence``'s loop: a fold of ``compute`` cycles whose store
    holds the channel ``store`` cycles; ``loads``: the next fold's (None after the last)."""
    previous_end, channel, *ready, store_done, s0, s1, s2 = x
    stalls, note = [s0, s1, s2], trace.margins.append
    begin, culprit = previous_end, -1
    for b in range(3):
        note(ready[b] - begin)
        if ready[b] > begin:
            begin, culprit = ready[b], b
    if not double_buffered:
        note(store_done - begin)
        if store_done > begin:
            begin, culprit = store_done, 2
    if culprit >= 0:
        stalls[culprit] += begin - previous_end
    end = begin + compute

    def issue(issued: int) -> int:          # timing._issue_loads
        at = channel
        if sum(loads) > 0:
            note(channel - issued)
            at = max(channel, issued)
        for b in range(3):
            at += loads[b]
            ready[b] = at + latency if loads[b] > 0 else issued
        return at

    if double_buffered and loads is not None:
        channel = issue(begin)
    if store > 0:
        note(channel - end)
        channel = store_done = max(channel, end) + store
    if not double_buffered and loads is not None:
        channel = issue(end)
    return [end, channel, *ready, store_done, *stalls]


def run_schedule(compute: np.ndarray, loads: np.ndarray, store: np.ndarray,
                 row_counts: tuple[int, ...], col_counts: tuple[int, ...], latency: int,
                 double_buffered: bool, expand_below: int = 0
                 ) -> tuple[int, int, int, tuple[int, int, int]]:
    """``timing.fold_schedule`` over the folds of FoldRuns-like runs: (total, prefetch,
    drain, stalls per buffer), in cycles. Runs of at most ``expand_below`` folds are
    expanded and run through the per-fold recurrence instead."""
    nr = len(row_counts)
    if sum(row_counts) * sum(col_counts) <= expand_below:
        kinds = np.concatenate([np.tile(np.repeat(np.arange(c * nr, c * nr + nr), row_counts), n)
                                for c, n in enumerate(col_counts)])
        s = timing.fold_schedule(compute[kinds], loads.take(kinds, axis=1), store[kinds],
                                 latency, double_buffered)     # C order: numba's cached build
        return s.total_cycles, s.prefetch_cycles, s.drain_cycles, tuple(map(int, s.stalls))
    kind_loads = [tuple(column) for column in loads.T.tolist()]
    cycles, stores = compute.tolist(), store.tolist()

    def fold(kind: int, following: int | None) -> Apply:
        nxt = None if following is None else kind_loads[following]
        return lambda x, t: _fold(x, t, cycles[kind], stores[kind], nxt, latency,
                                  double_buffered)

    def column_pass(c: int, following: int | None) -> Apply:
        after = None if following is None else following * nr
        return lambda x, t: _runs(x, t, [(c * nr + r, n) for r, n in enumerate(row_counts)],
                                  after, fold)

    x = _runs([0] * 9, _Trace(), list(enumerate(col_counts)), None, column_pass)
    first = sum(kind_loads[0])
    return x[0], first + latency if first > 0 else 0, max(x[5] - x[0], 0), (x[6], x[7], x[8])


def _runs(x: State, trace: _Trace, runs: list[tuple[int, int]], after: int | None,
          make: Callable[[int, int | None], Apply]) -> State:
    """``runs`` of (item, count) in order; ``make(item, next item)`` gives an item's step
    (the last item's next is ``after``)."""
    for i, (item, count) in enumerate(runs):
        x = _repeat(x, make(item, item), count - 1, trace)
        x = _repeat(x, make(item, runs[i + 1][0] if i + 1 < len(runs) else after), 1, trace)
    return x


@dataclass(frozen=True)
class GroupedTiming:
    """``simulate``'s numbers for one GEMM but the per-fold events; cycles and bytes."""

    folds: int
    total_cycles: int
    compute_cycles: int                 # folds x ideal cycles per fold
    stalls: dict[str, int]              # input / weight / output (DRAM), sram_* (SRAM)
    prefetch_cycles: int
    drain_cycles: int
    mapping_efficiency: float
    utilization: float                  # MACs / (total cycles x R x C)
    sram: dict[str, dict[str, int]]     # per buffer: reads, writes (bytes)
    dram: dict[str, int]                # reads, writes (bytes)
    plan: AccumulationPlan


def grouped_report(config: ArrayConfig, m: int, n: int, k: int) -> GroupedTiming:
    """``simulate(config, m, n, k)`` without per-fold arrays, for any number of folds."""
    runs, mapping = fold_runs(config, m, n, k)
    check_total(runs, config.dram_latency_cycles)
    total, prefetch, drain, stalls = run_schedule(
        runs.compute, runs.loads, runs.store, runs.row_counts, runs.col_counts,
        config.dram_latency_cycles, config.double_buffered, EXPAND_BELOW)
    stall_by = dict(zip(timing.BUFFERS, stalls)) | {
        f"sram_{b}": runs.total(s) for b, s in zip(timing.BUFFERS, runs.sram_stalls)}
    weights = np.array(runs.weights, dtype=object)     # Python ints: exact totals
    totals = FoldDemand(*(weights * getattr(runs.traffic, f.name).astype(object)
                          for f in fields(FoldDemand)))
    folds = mapping.row_folds * mapping.col_folds
    return GroupedTiming(folds, total, folds * mapping.fold_cycles, stall_by, prefetch, drain,
                         mapping.mapping_efficiency,
                         mapping.macs / (total * config.rows * config.cols),
                         totals.sram(), totals.dram(), plan_for(mapping, Numerics.of(config)))
