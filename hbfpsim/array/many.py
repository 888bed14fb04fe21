"""Many GEMMs on one configuration in one call: ``simulate_many``.

A trace repeats a few dozen distinct shapes; timing them one ``simulate`` call at a time
spends most of its time in Python around small numba calls. Here one numba kernel runs
grouped.py's model over all the distinct shapes at once: per shape the kinds' bytes
(``memory.kind_bytes``), their cycles (``timing.kind_cycles``), the fold recurrence over
runs (``timing.kind_recurrence``) and the totals, in int64. Python then builds one report
per shape (``grouped.report``). The results are ``simulate``'s exactly: the same functions
on the same numbers. A shape the kernel cannot finish exactly takes ``simulate``'s own path
(``grouped.grouped_report``, which also raises its errors): a transfer past 2^61 cycles, a
schedule whose bound or traffic total comes near int64's range (checked in float64 with a
wide margin; Python ints then sum exactly), or one that needs grouped.py's jumps over
blocks and column passes (more than ``grouped.STEP_BUDGET`` folds stepped).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numba import njit

from hbfpsim.array import grouped
from hbfpsim.array.mapping import Mapping
from hbfpsim.array.memory import DATAFLOWS, FIELDS, fold_classes, kind_bytes
from hbfpsim.array.report import GemmReport
from hbfpsim.array.timing import kind_cycles, kind_recurrence
from hbfpsim.config import ArrayConfig
from hbfpsim.numerics import Numerics

BOUND = 2.0**60     # a schedule bound or traffic total under this in float64: int64 sums hold
TIMED = 1 + 3 + 6 + len(FIELDS)     # the kernel's columns: done, total, prefetch, drain,
                                    # STALLS, traffic totals


def simulate_many(config: ArrayConfig, shapes: Iterable[tuple[int, int, int]], *,
                  numerics: Numerics | None = None) -> list[GemmReport]:
    """``[simulate(config, m, n, k, numerics=numerics) for m, n, k in shapes]``, equal in
    every field (cycles, bytes, plan, ...), each distinct shape timed once and all of them
    in one numba call. ``shapes``: (M, N, K) integers in [1, 2^40] each; repeated shapes
    share one report."""
    numerics = Numerics.of(config) if numerics is None else numerics
    bits = grouped.checked_bits(config, numerics)
    order, distinct = _mappings(config, shapes)
    timed = _time_all(config, bits, distinct)
    reports = [grouped.report(config, numerics, mapping, row[1:10], dict(zip(FIELDS, row[10:])))
               if row[0] else grouped.grouped_report(config, numerics, mapping.m, mapping.n,
                                                     mapping.k)
               for mapping, row in zip(distinct, timed)]
    return [reports[i] for i in order]


def _mappings(config: ArrayConfig, shapes: Iterable[tuple[int, int, int]]
              ) -> tuple[list[int], list[Mapping]]:
    """Each shape's index among the distinct ones, and their mappings (validated: a
    TypeError or ValueError names ``shapes[i]``)."""
    try:
        items = iter(shapes)
    except TypeError:
        raise TypeError(f"shapes must be an iterable of (M, N, K), got {shapes!r:.80}") from None
    seen: dict[tuple[int, int, int], int] = {}
    order, distinct = [], []
    for i, shape in enumerate(items):
        try:
            m, n, k = shape
        except (TypeError, ValueError):
            raise TypeError(f"shapes[{i}] must be a GEMM shape (M, N, K), got "
                            f"{shape!r:.80}") from None
        index = seen.get((m, n, k)) if type(m) is type(n) is type(k) is int else None
        if index is None:
            try:
                mapping = Mapping.of(m, n, k, config)
            except ValueError as err:
                raise ValueError(f"shapes[{i}] = {shape!r:.80}: {err}") from None
            index = seen.setdefault((mapping.m, mapping.n, mapping.k), len(distinct))
            if index == len(distinct):
                distinct.append(mapping)
        order.append(index)
    return order, distinct


def _time_all(config: ArrayConfig, bits: tuple[float, float, float],
              distinct: list[Mapping]) -> list[list[int]]:
    """The kernel's rows (TIMED columns, Python ints) for the ``distinct`` mappings."""
    dims = np.array([(g.m, g.n, g.k, g.spatial[0], g.spatial[1], g.row_folds, g.col_folds,
                      g.fold_cycles) for g in distinct], np.int64).reshape(-1, 8)
    return _many(dims, config.rows, config.cols, DATAFLOWS.index(config.dataflow),
                 (float(bits[0]), float(bits[1]), float(bits[2]), float(bits[2])),
                 (float(config.input_kib), float(config.weight_kib), float(config.output_kib)),
                 float(config.dram_bytes_per_cycle), float(config.sram_bytes_per_cycle),
                 config.dram_latency_cycles, config.double_buffered,
                 grouped.STEP_BUDGET).tolist()


@njit(cache=True)
def _many(dims, rows, cols, df, bits, kib, dram_bandwidth, sram_bandwidth, latency,
          double_buffered, budget):
    """grouped_report's numbers for each row of ``dims`` (M, N, K, Sr, Sc, RF, CF, fold
    cycles): int64 (S, TIMED) rows of done (1, else 0 and the rest 0: see the module
    docstring), total, prefetch and drain cycles, the STALLS (cycles) and the FIELDS
    summed over the folds (bytes)."""
    out = np.zeros((dims.shape[0], TIMED), np.int64)
    for s in range(dims.shape[0]):
        m, n, k, sr, sc, rf, cf, fold_cycles = dims[s]
        need = kind_bytes(m, n, k, sr, sc, rf, cf, rows, cols, df, bits, kib)
        status, _, cycles = kind_cycles(need, fold_cycles, dram_bandwidth, sram_bandwidth)
        row_counts, col_counts = fold_classes(rf)[1], fold_classes(cf)[1]
        nr, nc = row_counts.size, col_counts.size
        if status or col_counts.sum() * nr > budget:
            continue
        bound, traffic = (float(rf) * float(cf) + 1) * latency, 0.0   # check_total's bound
        for j in range(nr * nc):
            w = float(col_counts[j // nr]) * float(row_counts[j % nr])
            for i in range(5):                                  # in float64: no wrap
                bound += w * cycles[i, j]
            for i in range(need.shape[0]):
                traffic += w * need[i, j]
        if bound >= BOUND or traffic >= BOUND:
            continue
        flat = np.concatenate((cycles[:5].ravel(), row_counts, col_counts))
        done, total, prefetch, drain, s0, s1, s2 = kind_recurrence(
            flat, nr, nc, latency, double_buffered, budget)
        if done:
            out[s, 0], out[s, 1], out[s, 2], out[s, 3] = 1, total, prefetch, drain
            out[s, 4], out[s, 5], out[s, 6] = s0, s1, s2
            for j in range(nr * nc):
                w = col_counts[j // nr] * row_counts[j % nr]
                out[s, 7:10] += w * cycles[5:, j]
                out[s, 10:] += w * need[:, j]
    return out
