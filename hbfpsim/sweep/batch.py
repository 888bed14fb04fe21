"""What a worker does with a batch of runs: replay every trace under each run, return rows.

A worker (a local process or a Dask worker) gets a ``Job`` (the traces and what to compute,
shared by every run of the sweep) and a batch of ``Task``s (a run's key, configuration and
schedule). It opens each trace once per process and returns one ``Result`` per run: the
run's totals (``replay.summary.Summary.totals``) and, when the job asks for them, its
per-GEMM rows. With accuracy, every record is replayed by ``replay.record.replay``; for
time and cost alone, the array's ``Costing`` is primed with all of the run's (numerics,
shape) pairs at once and the totals are summed from per-record columns
(``replay.summary.summary_from``), the same values without a ``Row`` per record.
Nothing is written here (``store.run_and_store`` writes a local worker's batch), so a
worker killed mid-batch loses nothing that was stored and the batch is simply run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from hbfpsim import trace as traces
from hbfpsim.trace import GemmRecord
from hbfpsim.config import ArrayConfig
from hbfpsim.numerics import Numerics
from hbfpsim.replay.record import (COLUMNS, RECORD_FIELDS, TIMING, Costing, Row, replay,
                                   synthetic_label, timing)
from hbfpsim.replay.run import epoch_weights, trace_context
from hbfpsim.replay.runfile import Sampling
from hbfpsim.replay.summary import ALL, summary_from, summary_of
from hbfpsim.replay.synthetic import Fitted, Gaussian, Source
from hbfpsim.format_schedule import Schedule

RECORD_COLUMNS = (*RECORD_FIELDS, "epochs")          # the trace's: the same in every run
TIMING_COLUMNS = TIMING                              # the run's
ACCURACY_COLUMNS = COLUMNS[COLUMNS.index("synthetic"):]
_TIMING, _ACCURACY = attrgetter(*TIMING_COLUMNS), attrgetter(*ACCURACY_COLUMNS)


@dataclass(frozen=True)
class Job:
    """What every run of a sweep shares: trace directories (absolute: a remote worker needs
    the same paths), whether accuracy is computed, and its sampling."""

    traces: tuple[Path, ...]
    trace_ids: tuple[int, ...] = ()     # the store's id of each trace (default: 0, 1, ...)
    accuracy: bool = False
    sampling: Sampling = Sampling()
    synthetic: str = "none"
    fit: Path | None = None
    gemm_rows: bool = False             # whether each run's per-GEMM rows are returned


@dataclass(frozen=True)
class Task:
    """One run: its key and id in the store, its configuration and schedule."""

    key: str
    config: ArrayConfig
    schedule: Schedule
    run_id: int = 0


@dataclass(frozen=True)
class Result:
    """One run's outcome: ``totals`` (``Summary.totals()``, plus ``array_area_um2`` and
    ``worker_seconds``) and ``gemms`` (empty unless ``Job.gemm_rows``), per-GEMM rows as
    the store takes them: (run id,
    trace id, record id, *TIMING_COLUMNS, and with accuracy *ACCURACY_COLUMNS); or, for a
    configuration the models refuse (e.g. an array side that makes chunks straddle the
    format's blocks), ``error``, its one-line reason."""

    key: str
    totals: dict | None
    gemms: list[tuple]
    error: str | None = None
    accuracy: bool = False        # whether the rows hold the ACCURACY_COLUMNS


_OPEN: dict[Path, tuple] = {}      # per process: trace -> (gemms, run context, epoch weights)
_SOURCES: dict[tuple, Source | None] = {}
_COSTINGS: dict[ArrayConfig, Costing] = {}   # per process: the arrays of its latest runs
_CONSTANTS: dict[tuple, tuple] = {}          # per trace and operand source
_NUMERICS: dict[tuple[Schedule, Path], tuple[Numerics, ...]] = {}    # per schedule, trace
MAX_COSTINGS = 64


def run_batch(job: Job, tasks: list[Task]) -> list[Result]:
    """Every task of the batch, in order."""
    out = []
    for task in tasks:
        try:
            out.append(run_one(job, task))
        except ValueError as err:           # the models refuse this configuration
            out.append(Result(task.key, None, [], str(err)))
    return out


def run_one(job: Job, task: Task) -> Result:
    start = time.perf_counter()
    costing = _costing(task.config)
    shape = (task.config.rows, task.config.cols)
    if job.accuracy:
        rows, ids = _replayed(job, task, costing)
        out = summary_of(("", "", "", ALL), rows, shape).totals()
        gemms = [(*i, *_TIMING(r), *_ACCURACY(r)) for i, r in zip(ids, rows)]
    else:
        column, ids = _timed(job, task, costing)
        out = summary_from(("", "", "", ALL), column, shape).totals()
        gemms = [(*i, *values) for i, values in zip(ids, zip(*map(column.get, TIMING)))]
    out["array_area_um2"] = costing.array_cost(task.schedule.default).area
    out["worker_seconds"] = time.perf_counter() - start
    return Result(task.key, out, gemms if job.gemm_rows else [], accuracy=job.accuracy)


def _replayed(job: Job, task: Task, costing: Costing) -> tuple[list[Row], list[tuple]]:
    """Every record's ``Row``, accuracy included, and its (run, trace, record) ids."""
    rows, ids = [], []
    source = _source(job)
    for trace_id, path in zip(job.trace_ids or range(len(job.traces)), job.traces):
        gemms, context, weights = _opened(path)
        chosen = _numerics(task.schedule, path)
        costing.prime((n, g.record.m, g.record.n, g.record.k) for n, g in zip(chosen, gemms))
        for gemm, numerics in zip(gemms, chosen):
            rows.append(replay(gemm, costing, task.schedule, context, path.name,
                               max_outputs=job.sampling.max_outputs,
                               max_macs=job.sampling.max_macs, seed=job.sampling.seed,
                               synthetic=source, epochs=weights[gemm.record.epoch],
                               numerics=numerics))
            ids.append((task.run_id, trace_id, gemm.record.id))
    return rows, ids


def _timed(job: Job, task: Task, costing: Costing) -> tuple[dict[str, list], list[tuple]]:
    """Time and cost only: every record's ``TIMING`` values and the trace's own values a
    summary reads, as columns (``summary.PER_RECORD``; no ``Row`` is made), and each
    record's (run, trace, record) ids."""
    values, ids, fixed = [], [], [(), (), (), ()]
    source = _source(job)
    for trace_id, path in zip(job.trace_ids or range(len(job.traces)), job.traces):
        records, constants = _constants(path, source)
        numerics = _numerics(task.schedule, path)
        costing.prime((n, r.m, r.n, r.k) for n, r in zip(numerics, records))
        values += [timing(n, costing(n, r.m, r.n, r.k), r.count)
                   for n, r in zip(numerics, records)]
        fixed = [a + b for a, b in zip(fixed, constants)]
        if job.gemm_rows:
            ids += [(task.run_id, trace_id, r.id) for r in records]
    column = dict(zip(TIMING, zip(*values) if values else [()] * len(TIMING)))
    column.update(zip(("macs", "count", "epochs", "synthetic"), fixed))
    return column, ids


def _constants(path: Path, source: Source | None) -> tuple[list[GemmRecord], list[tuple]]:
    """A trace's records and, as columns, what no run changes: each record's MACs, count,
    epochs it stands for and operand label."""
    key = (path, None if source is None else source.label)
    if key not in _CONSTANTS:
        gemms, _, weights = _opened(path)
        _CONSTANTS[key] = ([g.record for g in gemms], [tuple(c) for c in zip(*(
            (g.record.macs, g.record.count, weights[g.record.epoch], synthetic_label(g, source))
            for g in gemms))] or [(), (), (), ()])
    return _CONSTANTS[key]


def _opened(path: Path) -> tuple:
    if path not in _OPEN:
        t = traces.open(path)
        _OPEN[path] = (list(t), trace_context(t), epoch_weights(t) if len(t) else {})
    return _OPEN[path]


def _numerics(schedule: Schedule, path: Path) -> tuple[Numerics, ...]:
    """The numerics ``schedule`` gives each record of the (opened) trace ``path``, worked
    out once per process: a sweep's runs share a few schedules (its variants)."""
    key = (schedule, path)
    found = _NUMERICS.get(key)
    if found is None:
        if len(_NUMERICS) >= MAX_COSTINGS:
            del _NUMERICS[next(iter(_NUMERICS))]
        gemms, context, _ = _opened(path)
        found = _NUMERICS[key] = tuple(
            schedule.numerics_for(g.record.layer, g.record.phase, g.record.epoch, context)
            for g in gemms)
    return found


def _costing(config: ArrayConfig) -> Costing:
    """The array's ``Costing``, shared by the runs of this process on the same hardware
    (a sweep's variants and trace sets); the oldest is dropped past MAX_COSTINGS."""
    costing = _COSTINGS.get(config)
    if costing is None:
        if len(_COSTINGS) >= MAX_COSTINGS:
            del _COSTINGS[next(iter(_COSTINGS))]
        costing = _COSTINGS[config] = Costing(config)
    return costing


def _source(job: Job) -> Source | None:
    key = (job.synthetic, job.fit)
    if key not in _SOURCES:
        _SOURCES[key] = (Gaussian() if job.synthetic == "gaussian" else
                         Fitted.from_trace(traces.open(job.fit)) if job.synthetic == "fitted"
                         else None)
    return _SOURCES[key]
