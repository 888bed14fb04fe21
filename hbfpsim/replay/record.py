"""One trace record on one array under one schedule: time, energy, density and accuracy.

The record's numerics come from the schedule (layer, phase, epoch) and replace the array's
``[numerics]``; the array model times one GEMM of the record's shape (a record of ``count``
GEMMs runs them one after another: ``count`` times the cycles and the energy) and gives the
accumulation plan its dataflow implies; ``mac.matmul`` computes the sampled outputs under
that plan, bit-exact, and ``accuracy.evaluate`` compares them with the exact product.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from hbfpsim.accuracy import Accuracy, Sample, choose, evaluate, exact_product
from hbfpsim.array import GemmReport, simulate, simulate_many
from hbfpsim.config import ArrayConfig
from hbfpsim.cost import ArrayCost, Energy, array_cost, gemm_energy, mac_cost
from hbfpsim.formats import Format
from hbfpsim.mac import AccumulationPlan, matmul
from hbfpsim.numerics import Numerics
from hbfpsim.replay.synthetic import Source
from hbfpsim.format_schedule import RunContext, Schedule
from hbfpsim.trace import Gemm, GemmRecord

EVENTS = ("overflows", "full_swamps", "partial_swamps")


@dataclass(slots=True)
class Row:
    """One (variant, array, trace, record): a row of ``gemms.csv`` (slots, not frozen: a
    frozen dataclass of this width costs 9 us to build, a sweep builds millions). The trace
    record's fields (``record`` its id, then RECORD_FIELDS) are read through from
    ``trace_record``, not copied. Cycles are array clock cycles for all ``count`` GEMMs,
    energies pJ, density MAC/s per um^2 over an FP32 MAC's; ``epochs``: training epochs the
    record stands for (``run.epoch_weights``). Accuracy fields are None when the record was
    not evaluated (shape-only, no synthetic operands); ``*_se`` are their standard errors (0
    when every output was evaluated)."""

    variant: str
    array: str
    trace: str
    trace_record: GemmRecord
    input: str
    weight: str
    plan: str
    cycles: int
    stall_cycles: int
    utilization: float
    seconds: float
    energy_pj: float
    compute_pj: float
    sram_pj: float
    dram_pj: float
    mac_area_um2: float
    density: float
    epochs: int
    synthetic: str
    sampled: int | None = None
    rel_error: float | None = None
    rel_error_se: float | None = None
    sqnr_db: float | None = None
    sqnr_db_se: float | None = None
    max_abs_error: float | None = None
    max_abs_error_se: float | None = None
    w1: float | None = None
    w1_se: float | None = None
    vrr: float | None = None
    vrr_se: float | None = None
    overflows: int | None = None
    full_swamps: int | None = None
    partial_swamps: int | None = None


RECORD_FIELDS = ("step", "epoch", "layer", "phase", "m", "n", "k", "count", "macs")
for _name in ("id", *RECORD_FIELDS):
    setattr(Row, "record" if _name == "id" else _name,
            property(attrgetter(f"trace_record.{_name}"), doc=f"``GemmRecord.{_name}``"))
COLUMNS = ("variant", "array", "trace", "record", *RECORD_FIELDS,
           *[f.name for f in fields(Row)][4:])
row_values = attrgetter(*COLUMNS)        # a Row's values in COLUMNS order
TIMING = COLUMNS[COLUMNS.index("input"):COLUMNS.index("epochs")]    # what the array decides


class Costed(NamedTuple):
    """One GEMM of a shape on one array under one numerics: its timing report, its energy by
    part (pJ), its plan as text, the MAC area (um^2) and the density relative to an FP32
    MAC's."""

    report: GemmReport
    energy: Energy
    plan: str
    mac_area_um2: float
    density: float


class Costing:
    """Time and cost of GEMMs on one array (``config``'s hardware) under the numerics a
    schedule hands it, each (numerics, shape) simulated and costed once: a trace repeats
    shapes, and a schedule's variants share numerics on most layers."""

    def __init__(self, config: ArrayConfig) -> None:
        self.config = config
        self._fp32_area = mac_cost("fp32").area
        self._costs: dict[Numerics, ArrayCost] = {}
        self._done: dict[tuple[Numerics, int, int, int], Costed] = {}

    def __call__(self, numerics: Numerics, m: int, n: int, k: int) -> Costed:
        """``Costed`` of one M x N x K GEMM under ``numerics``."""
        key = (numerics, m, n, k)
        one = self._done.get(key)
        if one is None:
            one = self._done[key] = self._costed(numerics, m, n, k)
        return one

    def prime(self, wanted: Iterable[tuple[Numerics, int, int, int]]) -> None:
        """Simulate and cost every (numerics, M, N, K) of ``wanted`` not costed yet, each
        numerics' shapes in one ``simulate_many`` call, so that calling this Costing with
        them finds them done (the same ``Costed`` as costing them one by one)."""
        shapes: dict[Numerics, dict[tuple[int, int, int], None]] = {}
        for i, key in enumerate(wanted):
            if key not in self._done:
                try:
                    numerics, m, n, k = key
                except (TypeError, ValueError):
                    raise TypeError(f"wanted[{i}] must be (numerics, M, N, K), got "
                                    f"{key!r:.80}") from None
                shapes.setdefault(numerics, {})[m, n, k] = None
        for numerics, distinct in shapes.items():
            reports = simulate_many(self.config, distinct, numerics=numerics)
            for (m, n, k), report in zip(distinct, reports):
                self._done[numerics, m, n, k] = self._cost(numerics, report)

    def array_cost(self, numerics: Numerics) -> ArrayCost:
        """``cost.array_cost`` of the array with MACs for ``numerics``."""
        cost = self._costs.get(numerics)
        if cost is None:
            cost = self._costs[numerics] = array_cost(self.config, numerics)
        return cost

    def _costed(self, numerics: Numerics, m: int, n: int, k: int) -> Costed:
        return self._cost(numerics, simulate(self.config, m, n, k, numerics=numerics))

    def _cost(self, numerics: Numerics, report: GemmReport) -> Costed:
        """The ``Costed`` of a GEMM timed as ``report`` under ``numerics``."""
        cost = self.array_cost(numerics)
        area = cost.mac.area
        return Costed(report, gemm_energy(self.config, report, cost), _plan_text(report.plan),
                      area, self._fp32_area / area)


_plan_text = lru_cache(maxsize=1024)(str)   # a plan's text: a few plans serve every GEMM


def timing(numerics: Numerics, one: Costed, count: int) -> tuple:
    """A record's ``TIMING`` values: ``count`` GEMMs of ``one``'s shape under ``numerics``
    (cycles, s and pJ for all of them)."""
    report, energy = one.report, one.energy
    return (numerics.input.name, numerics.weight.name, one.plan, count * report.total_cycles,
            count * report.stall_cycles, report.utilization, count * report.seconds,
            count * energy.total, count * energy.compute, count * energy.sram,
            count * energy.dram, one.mac_area_um2, one.density)


def synthetic_label(gemm: Gemm, synthetic: Source | None) -> str:
    """``Row.synthetic``: the source of a record's operands when the trace holds none."""
    return "" if gemm.a is not None or synthetic is None else synthetic.label


def replay(gemm: Gemm, costing: Costing, schedule: Schedule, context: RunContext, trace: str,
           *, max_outputs: int, max_macs: int, seed: int,
           synthetic: Source | None = None, epochs: int = 1, with_accuracy: bool = True,
           numerics: Numerics | None = None) -> Row:
    """The row of one record on ``costing``'s array (see the module docstring);
    ``with_accuracy=False``: time and cost only, no accuracy. ``numerics``: the record's
    under ``schedule``, when the caller has it already."""
    r = gemm.record
    if numerics is None:
        numerics = schedule.numerics_for(r.layer, r.phase, r.epoch, context)
    one = costing(numerics, r.m, r.n, r.k)
    row = Row(schedule.name, costing.config.name, trace, r, *timing(numerics, one, r.count),
              epochs, synthetic_label(gemm, synthetic))
    if not with_accuracy or (gemm.a is None and synthetic is None) or r.k > max_macs:
        return row                 # not evaluated: no operands, or one output is over budget
    sample = choose(r.m, r.n, r.k, r.count, max_outputs=max_outputs, max_macs=max_macs,
                    seed=seed, key=r.id)
    acc = measure_accuracy(gemm, numerics, one.report.plan, sample, seed, synthetic)
    return replace(row, sampled=acc.sampled, rel_error=acc.rel_error, sqnr_db=acc.sqnr_db,
                   max_abs_error=acc.max_abs_error, w1=acc.w1, vrr=acc.vrr,
                   **{f"{name}_se": v for name, v in acc.se.items()},
                   **{name: getattr(acc, name) for name in EVENTS})


def measure_accuracy(gemm: Gemm, numerics: Numerics, plan: AccumulationPlan,
                     sample: Sample, seed: int, synthetic: Source | None = None) -> Accuracy:
    """Metrics of the record's sampled outputs computed as ``plan`` and ``numerics`` say."""
    r = gemm.record
    rng = np.random.default_rng(np.random.SeedSequence([seed, r.id, 1]))
    mm_seed = int(np.random.SeedSequence([seed, r.id, 2]).generate_state(1, np.uint64)[0] >> 1)
    anchored = not sample.complete and any(_per_tensor(f)
                                           for f in (numerics.input, numerics.weight))
    hw, exact = [], []
    counts = dict.fromkeys(EVENTS, 0)
    for g in sample.batches:
        if gemm.a is None:
            a = synthetic.draw(r, "a", (len(sample.rows), r.k), rng)
            b = synthetic.draw(r, "b", (r.k, len(sample.cols)), rng)
            rows, cols = np.arange(len(sample.rows)), np.arange(len(sample.cols))
        else:
            full_a = gemm.a[g] if gemm.a.ndim == 3 else gemm.a
            full_b = gemm.b[g] if gemm.b.ndim == 3 else gemm.b
            take_r, rows = _with_anchor(sample.rows, full_a, 0, anchored)
            take_c, cols = _with_anchor(sample.cols, full_b, 1, anchored)
            a = np.asarray(full_a[take_r], np.float32)
            b = np.asarray(full_b[:, take_c], np.float32)
        out, stats = matmul(a, b, numerics.input, numerics.weight, plan, seed=mm_seed,
                            stats="element" if anchored else "total")
        hw.append(out[np.ix_(rows, cols)])
        exact.append(exact_product(a, b)[np.ix_(rows, cols)])
        for level in stats.levels:
            for name in EVENTS:
                value = getattr(level, name)
                counts[name] += int(np.sum(value[np.ix_(rows, cols)] if anchored else value))
    return evaluate(np.stack(hw), np.stack(exact), complete=sample.complete,
                    seed=mm_seed, counts=counts)


def _per_tensor(fmt: Format) -> bool:
    return fmt.family == "int" and getattr(fmt, "per", "") == "tensor"


def _with_anchor(picked: np.ndarray, x: np.ndarray, axis: int, anchored: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Indices to take along ``axis`` (0: rows of A, 1: columns of B), with the one holding
    x's largest magnitude when ``anchored`` (a per-tensor scale must see it), and where the
    sample sits in them."""
    if not anchored:
        return picked, np.arange(len(picked))
    peak = int(np.argmax(np.abs(np.asarray(x, np.float64)).max(axis=1 - axis)))
    if peak in picked:
        return picked, np.arange(len(picked))
    return np.append(picked, peak), np.arange(len(picked))
