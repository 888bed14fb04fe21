"""The fold-level timing model in time and memory independent of the fold count: what
``simulate`` runs unless per-fold events are asked for.

All a fold moves or takes (memory.py, timing.py) depends only on whether its row fold is
the first, the last or in between, and likewise its column fold. So the folds are at most
3 x 3 *kinds* (a representative fold each, with real indices: ``memory.kind_demand`` gives
its bytes as ``memory.demand`` would, and ``timing.kind_cycles`` its cycles as timing.py's
per-fold functions would; totals and bounds are summed here in Python ints), run as
``for c in (first, middle x (CF - 2), last): for r in (first, middle x (RF - 2), last)``
for RF row, CF column folds.

``timing.fold_schedule``'s recurrence is maxima and sums: with the branches it takes (which
side wins each maximum) fixed, a fold is an affine map of the state. Once two consecutive
repetitions of a step (a fold, a column pass, a block of up to PERIOD of them) take the same
branches and advance the state alike, later ones do too while the branches hold: each
compares quantities moving linearly, so how long is a division. ``_repeat`` jumps that
far, then steps on. ``timing.kind_schedule`` does the same in numba for single folds only
(every column pass is stepped through): faster, unless the runs do not settle or the
passes are many, so it is tried first and given up after STEP_BUDGET folds stepped.
Nothing is approximated: results are the per-fold recurrence's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from operator import mul
from typing import NamedTuple

import numpy as np

from hbfpsim.array import timing
from hbfpsim.array.mapping import Mapping, plan_for
from hbfpsim.array.memory import (
    FIELDS,
    check_buffers,
    dram_traffic,
    fold_classes,
    kind_demand,
    sram_traffic,
)
from hbfpsim.array.report import GemmReport
from hbfpsim.config import ArrayConfig
from hbfpsim.mac import AccumulationPlan
from hbfpsim.numerics import Numerics

State = list[int]     # previous_end, channel, ready A, B, partial sums, store_done, 3 stalls
Apply = Callable[[State, "_Trace"], State]      # one repetition of a step, noting branches
PERIOD = 8            # longest block of repetitions tried as a repeating unit
TRACE_CAP = 4096      # comparisons kept per repetition: a longer one is stepped, not jumped
STEP_BUDGET = 2**15   # folds stepped in numba (~0.3 ms) before jumping in Python instead
STALLS = (*timing.BUFFERS, *(f"sram_{b}" for b in timing.BUFFERS))   # GemmReport.stalls keys


def classes(folds: int) -> list[tuple[int, int]]:
    """(representative fold index, multiplicity) of the first, middle and last folds."""
    return list(zip(*(x.tolist() for x in fold_classes(folds))))


class FoldRuns(NamedTuple):
    """The folds as kinds (kind c * len(row_counts) + r) and multiplicities; per-kind values
    in Python ints."""

    row_counts: tuple[int, ...]       # folds per row class: (1,), (1, 1) or (1, RF - 2, 1)
    col_counts: tuple[int, ...]       # column passes per column class, likewise
    compute: Sequence[int]            # (K,): cycles of a fold of each kind
    loads: Sequence[Sequence[int]]    # (3, K): channel cycles of its A, B, partial-sum loads
    store: Sequence[int]              # (K,): channel cycles of its store
    sram_stalls: Sequence[Sequence[int]]    # (3, K): its SRAM stretch per buffer, cycles
    traffic: dict[str, Sequence[int]] | None  # memory.FoldDemand's fields: its bytes moved

    @property
    def weights(self) -> list[int]:
        """(K,): folds of each kind."""
        return [c * r for c in self.col_counts for r in self.row_counts]


def checked_bits(config: ArrayConfig, numerics: Numerics) -> tuple[float, float, float]:
    """Storage bits per element of what each buffer holds under ``numerics`` (input, weight,
    output: partial sums), after checking that each buffer holds one array tile (once per
    distinct configuration and numerics)."""
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"expected an ArrayConfig (hbfpsim.array.load(...)), got {config!r:.80}")
    if not isinstance(numerics, Numerics):
        raise TypeError(f"expected a Numerics (hbfpsim.numerics), got {numerics!r:.80}")
    return _checked_bits(config, numerics)


@lru_cache(maxsize=1024)
def _checked_bits(config: ArrayConfig, numerics: Numerics) -> tuple[float, float, float]:
    bits = {"input": numerics.input.storage_bits, "weight": numerics.weight.storage_bits,
            "output": numerics.psum_bits}
    check_buffers({"input": config.input_kib, "weight": config.weight_kib,
                   "output": config.output_kib}, config.rows, config.cols, bits, config.source)
    return bits["input"], bits["weight"], bits["output"]


def fold_runs(config: ArrayConfig, numerics: Numerics, m: int, n: int, k: int
              ) -> tuple[FoldRuns, Mapping]:
    """The runs of C[M, N] = A[M, K] B[K, N] on ``config`` under ``numerics`` and their
    mapping, after simulate's checks (buffers, GEMM dimensions, transfers past 2^61 cycles),
    from one representative fold of each kind (``memory.kind_demand``, then
    ``timing.kind_cycles``: timing.py's arithmetic on the kinds)."""
    bits_a, bits_b, bits_psum = checked_bits(config, numerics)
    mapping = Mapping.of(m, n, k, config)
    need, traffic = _demand(mapping, bits_a, bits_b, bits_psum, config.input_kib,
                            config.weight_kib, config.output_kib)
    status, longest, cycles = timing.kind_cycles(need, mapping.fold_cycles,
                                                 config.dram_bytes_per_cycle,
                                                 config.sram_bytes_per_cycle)
    if status:
        timing.check_cycles(longest, "a DRAM transfer" if status == 1 else "an SRAM transfer")
    compute, *loads, store, sram_a, sram_b, sram_out = cycles.tolist()
    return FoldRuns(_counts(mapping.row_folds), _counts(mapping.col_folds), compute, loads,
                    store, [sram_a, sram_b, sram_out], traffic), mapping


@lru_cache(maxsize=4096)
def _counts(folds: int) -> tuple[int, ...]:
    return tuple(count for _, count in classes(folds))


@lru_cache(maxsize=4096)
def _demand(mapping: Mapping, bits_a: float, bits_b: float, bits_psum: float, kib_a: float,
            kib_b: float, kib_out: float) -> tuple[np.ndarray, dict[str, list[int]]]:
    """``kind_demand`` once per mapping, element sizes and buffers (configurations that
    differ only in DRAM bandwidth or latency, SRAM bandwidth or clock, a sweep's inner axes
    often, move the same bytes): the array, and its rows by field in Python ints."""
    need = kind_demand(mapping, bits_a, bits_b, bits_psum, bits_psum, kib_a, kib_b, kib_out)
    return need, dict(zip(FIELDS, need.tolist()))


def check_total(runs: FoldRuns, latency: int) -> None:
    """``timing.check_total`` on the runs: the same bound, summed in exact integers."""
    weights = runs.weights
    bound = sum(sum(map(mul, weights, x)) for x in (runs.compute, *runs.loads, runs.store))
    bound += (sum(weights) + 1) * latency
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


def run_schedule(compute: Sequence[int], loads: Sequence[Sequence[int]], store: Sequence[int],
                 row_counts: tuple[int, ...], col_counts: tuple[int, ...], latency: int,
                 double_buffered: bool, step_budget: int = 0
                 ) -> tuple[int, int, int, tuple[int, int, int]]:
    """``timing.fold_schedule`` over the folds of FoldRuns-like runs (per-kind values in
    Python ints): (total, prefetch, drain, stalls per buffer), in cycles. First in numba
    (``timing.kind_schedule``) unless that would step more than ``step_budget`` folds, else
    here, jumping over repeating blocks of folds and column passes too."""
    if sum(col_counts) * len(row_counts) <= step_budget:      # each run takes a step
        done = timing.kind_schedule(compute, loads, store, row_counts, col_counts, latency,
                                    double_buffered, step_budget)
        if done is not None:
            return done
    nr = len(row_counts)
    kind_loads = list(zip(*loads))

    def fold(kind: int, following: int | None) -> Apply:
        nxt = None if following is None else kind_loads[following]
        return lambda x, t: _fold(x, t, compute[kind], store[kind], nxt, latency,
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


def grouped_report(config: ArrayConfig, numerics: Numerics, m: int, n: int, k: int
                   ) -> GemmReport:
    """``simulate(config, m, n, k, numerics=numerics)``: its report (without per-fold
    events), for any number of folds, in time and memory independent of it."""
    runs, mapping = fold_runs(config, numerics, m, n, k)
    weights = runs.weights
    check_total(runs, config.dram_latency_cycles)
    total, prefetch, drain, stalls = run_schedule(
        runs.compute, runs.loads, runs.store, runs.row_counts, runs.col_counts,
        config.dram_latency_cycles, config.double_buffered, STEP_BUDGET)
    sram = [sum(map(mul, weights, s)) for s in runs.sram_stalls]
    totals = {name: sum(map(mul, weights, per_kind)) for name, per_kind in runs.traffic.items()}
    return report(config, numerics, mapping, (total, prefetch, drain, *stalls, *sram), totals)


def report(config: ArrayConfig, numerics: Numerics, mapping: Mapping,
           timed: Sequence[int], totals: dict[str, int]) -> GemmReport:
    """The GemmReport of ``mapping`` from its schedule ``timed`` (total, prefetch and drain
    cycles, then the STALLS in cycles) and ``totals`` (memory.FoldDemand's fields summed
    over the folds, bytes)."""
    total = timed[0]
    compute = mapping.compute_cycles
    return GemmReport(mapping.m, mapping.n, mapping.k, config.name, config.dataflow,
                      mapping.folds, total, compute, total - compute,
                      dict(zip(STALLS, timed[3:])), timed[1], timed[2],
                      mapping.macs / (total * config.rows * config.cols),
                      mapping.mapping_efficiency, sram_traffic(totals), dram_traffic(totals),
                      _plan_for(mapping, numerics), total / (config.clock_ghz * 1e9))


@lru_cache(maxsize=4096)
def _plan_for(mapping: Mapping, numerics: Numerics) -> AccumulationPlan:
    """``plan_for`` once per mapping and numerics (configurations that differ in memory
    alone share it)."""
    return plan_for(mapping, numerics)
