"""What a worker does with a batch of runs: replay every trace under each run, return rows.

A worker (a local process or a Dask worker) gets a ``Job`` (the traces and what to compute,
shared by every run of the sweep) and a batch of ``Task``s (a run's key, configuration and
schedule). It opens each trace once per process, replays every record under each run with
``replay.record.replay`` (timing and cost, and accuracy when asked) and returns one
``Result`` per run: the run's totals (``replay.summary.Summary.totals``) and its per-GEMM
rows.
Nothing is written here: the process that owns the store writes results as they arrive, so
a worker killed mid-batch loses nothing that was stored and the batch is simply run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from hbfpsim import trace as traces
from hbfpsim.config import ArrayConfig
from hbfpsim.replay.record import COLUMNS, RECORD_FIELDS, Costing, replay
from hbfpsim.replay.run import epoch_weights, trace_context
from hbfpsim.replay.runfile import Sampling
from hbfpsim.replay.summary import ALL, summary_of
from hbfpsim.replay.synthetic import Fitted, Gaussian, Source
from hbfpsim.format_schedule import Schedule

RECORD_COLUMNS = (*RECORD_FIELDS, "epochs")          # the trace's: the same in every run
TIMING_COLUMNS = COLUMNS[COLUMNS.index("input"):COLUMNS.index("epochs")]    # the run's
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
    ``worker_seconds``) and ``gemms``, per-GEMM rows as the store takes them: (run id,
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
    source = _source(job)
    rows, ids = [], []
    costing = _costing(task.config)
    trace_ids = job.trace_ids or range(len(job.traces))
    for trace_id, path in zip(trace_ids, job.traces):
        gemms, context, weights = _opened(path)
        for gemm in gemms:
            rows.append(replay(gemm, costing, task.schedule, context, path.name,
                               max_outputs=job.sampling.max_outputs,
                               max_macs=job.sampling.max_macs, seed=job.sampling.seed,
                               synthetic=source, epochs=weights[gemm.record.epoch],
                               with_accuracy=job.accuracy))
            ids.append((task.run_id, trace_id, gemm.record.id))
    out = summary_of(("", "", "", ALL), rows, (task.config.rows, task.config.cols)).totals()
    out["array_area_um2"] = costing.array_cost(task.schedule.default).area
    out["worker_seconds"] = time.perf_counter() - start
    if job.accuracy:
        return Result(task.key, out, [(*i, *_TIMING(r), *_ACCURACY(r))
                                      for i, r in zip(ids, rows)], accuracy=True)
    return Result(task.key, out, [(*i, *_TIMING(r)) for i, r in zip(ids, rows)])


def _opened(path: Path) -> tuple:
    if path not in _OPEN:
        t = traces.open(path)
        _OPEN[path] = (list(t), trace_context(t), epoch_weights(t) if len(t) else {})
    return _OPEN[path]


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
