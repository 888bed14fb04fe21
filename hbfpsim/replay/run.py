"""``run``: every trace x array x variant of a run file, streamed one record at a time.

Each record's operands are memory-mapped once and replayed on every array and variant before
the next record is read, so memory stays near one record's operands (plus its sample). A
progress bar (records done, exact MACs per second, ETA) goes to stderr on a terminal.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hbfpsim import trace as traces
from hbfpsim.replay.record import COLUMNS, Costing, Row, replay, row_values
from hbfpsim.replay.runfile import RunSpec, load
from hbfpsim.replay.summary import Summary, summarize
from hbfpsim.replay.synthetic import Fitted, Gaussian, Source
from hbfpsim.format_schedule import RunContext, Schedule, run_context
from hbfpsim.trace.manifest import capture_epochs, check_epochs
from hbfpsim.validate import ConfigError


@dataclass
class Report:
    """What a run found: one ``Row`` per (variant, array, trace, record), the summary per
    variant x array x trace x phase, and the wall time (s)."""

    spec: RunSpec
    rows: list[Row] = field(default_factory=list)
    wall_seconds: float = 0.0

    _summary: tuple = field(default=(-1, []), repr=False, compare=False)

    def summary(self) -> list[Summary]:
        """The summary rows, computed once for the rows there are (rows are only added)."""
        if self._summary[0] != len(self.rows):
            shapes = {a.name: (a.rows, a.cols) for a in self.spec.arrays}
            self._summary = (len(self.rows), summarize(self.rows, shapes))
        return self._summary[1]

    def dataframe(self):
        """The rows as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("Report.dataframe needs pandas: pip install pandas") from err
        return pd.DataFrame(map(row_values, self.rows), columns=COLUMNS)


def trace_context(trace: traces.Trace) -> RunContext:
    """First and last layers and last epoch of a trace; a capture that records how many
    epochs the training ran (``capture.epochs``) fixes the last epoch, else the last seen."""
    total, _ = capture_epochs(trace.capture)
    return run_context(((r.layer, r.phase) for r in trace.records),
                       (r.epoch for r in trace.records), None if total is None else total - 1)


def epoch_weights(trace: traces.Trace) -> dict[int, int]:
    """Training epochs each captured epoch stands for: itself up to the next captured one;
    the last captured up to the end of training when ``capture.epochs`` says how many epochs
    it ran, else itself alone. (A trace of epochs 0, 15, 29 of 30: 15, 14 and 1.) A record
    outside its capture's epochs is a TraceError (``trace.open`` refuses such traces)."""
    check_epochs(str(trace.path), trace.capture,
                 [(f"record id {r.id}", r.epoch) for r in trace.records])
    epochs = sorted({r.epoch for r in trace.records})
    total, _ = capture_epochs(trace.capture)
    end = epochs[-1] + 1 if total is None else total
    return {e: later - e for e, later in zip(epochs, epochs[1:] + [end])}


def check_schedules(variants: Iterable[Schedule], source: str, trace: traces.Trace) -> None:
    """Every variant's rules against ``trace``'s run context, before any work: a range whose
    ends, once resolved, never meet (``Schedule.check``) is a ConfigError naming ``source``
    (the run file or sweep spec), the trace and the rule."""
    context = trace_context(trace)
    for variant in variants:
        try:
            variant.check(context)
        except ValueError as err:
            raise ConfigError(f"{source}: trace {trace.path}: {err}") from None


def _synthetic(spec: RunSpec) -> Source | None:
    if spec.synthetic == "gaussian":
        return Gaussian()
    if spec.synthetic == "fitted":
        return Fitted.from_trace(traces.open(spec.fit))
    return None


def run(spec: RunSpec | str | Path, progress: bool | None = None,
        on_row: Callable[[Row], None] | None = None) -> Report:
    """Replay ``spec`` (a RunSpec or a run file's path). ``progress``: True, False, or None
    for a bar only on a terminal. ``on_row`` sees each row as it is made."""
    from tqdm import tqdm

    if not isinstance(spec, RunSpec):
        spec = load(spec)
    start = time.perf_counter()
    from hbfpsim.replay import precompile    # here: python -m hbfpsim.replay.precompile imports us

    opened = [traces.open(path) for path in spec.traces]
    for trace in opened:
        if len(trace):
            check_schedules(spec.variants, spec.source, trace)
    synthetic = _synthetic(spec)
    helper = precompile.start(opened[0], spec.arrays[0], spec.variants, spec.sampling, synthetic) \
        if opened and spec.arrays else precompile.Helper(None)
    report = Report(spec)
    jobs = len(spec.arrays) * len(spec.variants)
    costings = [Costing(array) for array in spec.arrays]
    total = sum(len(t) for t in opened) * jobs
    macs = 0
    with tqdm(total=total, unit="rec", disable=None if progress is None else not progress,
              desc="replay", dynamic_ncols=True) as bar, contextlib.closing(helper):
        if opened and len(opened[0]):       # a cold start: this process's kernels, then wait
            helper.first(next(iter(opened[0])), spec.arrays[0], spec.variants[0],
                         trace_context(opened[0]))
            helper.wait()
        for trace in opened:
            context, weights = trace_context(trace), epoch_weights(trace) if len(trace) else {}
            for gemm in trace:
                for costing in costings:
                    for variant in spec.variants:
                        row = replay(gemm, costing, variant, context, trace.path.name,
                                     max_outputs=spec.sampling.max_outputs,
                                     max_macs=spec.sampling.max_macs, seed=spec.sampling.seed,
                                     synthetic=synthetic, epochs=weights[gemm.record.epoch])
                        report.rows.append(row)
                        if on_row is not None:
                            on_row(row)
                        macs += (row.sampled or 0) * row.k
                        bar.update()
                        elapsed = time.perf_counter() - start
                        bar.set_postfix_str(f"{macs / max(elapsed, 1e-9) / 1e6:.0f} M MAC/s",
                                            refresh=False)
    report.wall_seconds = time.perf_counter() - start
    return report

