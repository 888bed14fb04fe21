"""The summary of a run: per variant x array x trace x phase (and ``all`` phases).

Totals add up (MACs, cycles, stall cycles, seconds, pJ, event counts); utilization is the
MAC-weighted one, MACs / (cycles x R x C); density is the mix of the records' over the
training run the trace samples (``cost.mixed_density`` weighted by MACs x the epochs each
record stands for), so a schedule's last-epoch rule weighs one epoch, not one captured
epoch; accuracy metrics are medians over the records evaluated (None when none was), since
one long outlier GEMM should not hide what most GEMMs do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter, mul

import numpy as np

from hbfpsim.cost import mixed_density
from hbfpsim.replay.record import EVENTS, Row

ALL = "all"
SUMS = ("macs", "cycles", "stall_cycles", "seconds", "energy_pj", "compute_pj", "sram_pj",
        "dram_pj")
MEDIANS = ("sqnr_db", "w1", "rel_error", "vrr")
NAMES = ("variant", "array", "trace", "phase")


@dataclass(frozen=True)
class Summary:
    """One (variant, array, trace, phase) of a run, a row of ``summary.csv``. Cycles are
    array clock cycles, seconds s, energies pJ, ``density`` x an FP32 MAC's MAC/s per um^2,
    ``stall_share`` and ``utilization`` fractions; medians and event counts are over the
    ``evaluated`` records (None when none was)."""

    variant: str
    array: str
    trace: str
    phase: str
    records: int
    gemms: int
    macs: int
    cycles: int
    stall_cycles: int
    seconds: float
    energy_pj: float
    compute_pj: float
    sram_pj: float
    dram_pj: float
    stall_share: float
    utilization: float
    density: float
    evaluated: int
    synthetic: str
    sqnr_db_median: float | None
    w1_median: float | None
    rel_error_median: float | None
    vrr_median: float | None
    overflows: int | None
    full_swamps: int | None
    partial_swamps: int | None

    def totals(self) -> dict:
        """The fields past the naming ones (``TOTALS``), by name."""
        return {name: getattr(self, name) for name in TOTALS}


COLUMNS = tuple(f.name for f in fields(Summary))
TOTALS = COLUMNS[len(NAMES):]


def summarize(rows: Sequence[Row], arrays: dict[str, tuple[int, int]]) -> list[Summary]:
    """One ``Summary`` per (variant, array, trace, phase), phases in trace order then
    ``all``; ``arrays``: each array's (rows, cols) by name."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        for phase in (row.phase, ALL):
            groups.setdefault((row.variant, row.array, row.trace, phase), []).append(row)
    order = {p: i for i, p in enumerate(("fwd", "bwd_data", "bwd_weight", ALL))}
    first = {}                      # run order of variant, array, trace: tables keep it
    for row in rows:
        first.setdefault((row.variant, row.array, row.trace), len(first))
    keys = sorted(groups, key=lambda key: (first[key[:3]], order[key[3]]))
    return [summary_of(key, groups[key], arrays[key[1]]) for key in keys]


PER_RECORD = (*SUMS, "count", "density", "epochs", "synthetic")   # what a summary reads
_READ = attrgetter(*PER_RECORD, "sampled")


def summary_of(key: tuple[str, str, str, str], rows: Sequence[Row], shape: tuple[int, int]
               ) -> Summary:
    """The ``Summary`` named ``key`` (variant, array, trace, phase) of ``rows`` (any mix of
    phases and traces) on an R x C array."""
    *read, sampled = zip(*map(_READ, rows)) if rows else [()] * (len(PER_RECORD) + 1)
    evaluated = [r for r, s in zip(rows, sampled) if s is not None]
    return summary_from(key, dict(zip(PER_RECORD, read)), shape, evaluated)


def summary_from(key: tuple[str, str, str, str], column: Mapping[str, Sequence],
                 shape: tuple[int, int], evaluated: Sequence[Row] = ()) -> Summary:
    """The ``Summary`` named ``key`` of records given as columns (``PER_RECORD``: each a
    sequence with one value per record, as ``Row`` holds them) on an R x C array;
    ``evaluated``: the rows of those records whose accuracy was measured."""
    sums = {name: sum(column[name]) for name in SUMS}
    return Summary(
        *key, records=len(column["count"]), gemms=sum(column["count"]), **sums,
        stall_share=sums["stall_cycles"] / sums["cycles"],
        utilization=sums["macs"] / (sums["cycles"] * shape[0] * shape[1]),
        density=mixed_density(zip(column["density"], map(mul, column["macs"],
                                                          column["epochs"]))),
        evaluated=len(evaluated),
        synthetic=",".join(sorted(set(column["synthetic"]) - {""})),
        **{f"{name}_median": _median(getattr(r, name) for r in evaluated) for name in MEDIANS},
        **{name: sum(getattr(r, name) for r in evaluated) if evaluated else None
           for name in EVENTS})


def _median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.median(values)) if values else None
