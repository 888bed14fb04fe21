"""A GEMM's per-fold timeline, from the array model's fold events
(``hbfpsim.array.simulate(..., events=True)``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hbfpsim.array import load, simulate
from hbfpsim.config import ArrayConfig
from hbfpsim.plots.common import check_figure_path, footnote, save
from hbfpsim.validate import is_integer

MAX_FOLDS_SHOWN = 200
WAITS = ((None, "no wait", "#bdbdbd"),
         ("input", "waited on the input buffer (A tiles)", "#1b9e77"),
         ("weight", "waited on the weight buffer (B tiles)", "#d95f02"),
         ("output", "waited on the output buffer (partial sums, stores)", "#7570b3"))


def timeline_figure(config: ArrayConfig | str | Path, m: int, n: int, k: int,
                    max_folds: int = MAX_FOLDS_SHOWN) -> Figure:
    """The figure of ``plot_timeline``."""
    if not is_integer(max_folds, 1):
        raise ValueError(f"max_folds: expected an integer >= 1, got {max_folds!r}")
    if not isinstance(config, ArrayConfig):
        config = load(config)
    report = simulate(config, m, n, k, events=True)
    events = report.events
    shown = min(report.folds, max_folds)
    start, end = events.start[:shown], events.end[:shown]
    waited = events.waited_on[:shown]
    colour = {kind: c for kind, _, c in WAITS}
    fig = Figure(figsize=(11, min(12.0, 2.8 + 0.03 * shown)), layout="constrained")
    ax = fig.subplots()
    folds = np.arange(shown)
    ax.barh(folds, end - start, left=start, height=0.8, color=[colour[w] for w in waited],
            linewidth=0)
    previous = np.concatenate([[0], end[:-1]])        # a wait: the gap before a fold's start
    gaps = [i for i in range(shown) if waited[i] is not None and start[i] > previous[i]]
    if gaps:
        ax.hlines(folds[gaps], previous[gaps], start[gaps], colors=[colour[waited[i]]
                                                                    for i in gaps],
                  linestyles="dotted", linewidth=1)
    counts = {kind: sum(w == kind for w in waited) for kind, _, _ in WAITS}
    ax.legend(handles=[Patch(color=c, label=f"{label} ({counts[kind]} "
                                            f"fold{'s' * (counts[kind] > 1)})")
                       for kind, label, c in WAITS if counts[kind]], fontsize=8,
              loc="upper right")
    ax.set_ylim(shown - 0.5, -0.5)                    # fold 0 at the top
    ax.set(xlabel="cycle (array clock; fold 0's tiles are loaded before cycle 0)",
           ylabel="fold (in schedule order)")
    ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"GEMM {m} x {n} x {k} (M x N x K) on {config.name}: {config.rows} x "
                 f"{config.cols} {config.dataflow}, {report.folds:,} folds, "
                 f"{report.total_cycles:,} cycles, {report.utilization:.1%} utilization")
    note = (f"prefetch {report.prefetch_cycles:,} cycles before cycle 0; stores drain "
            f"{report.drain_cycles:,} cycles after the last fold; dotted: a fold's wait")
    if shown < report.folds:
        note += f"; first {shown:,} of {report.folds:,} folds shown (max_folds={max_folds})"
    footnote(fig, note)
    return fig


def plot_timeline(config: ArrayConfig | str | Path, m: int, n: int, k: int,
                  path: str | Path, max_folds: int = MAX_FOLDS_SHOWN) -> Path:
    """The per-fold timeline of the GEMM C[M, N] = A[M, K] B[K, N] on ``config`` (an
    ArrayConfig, a preset name or a configuration file): one bar per fold from its first
    cycle to the first after it (x: array clock cycles), coloured by the buffer it waited
    on before starting (none, input, weight or output), the wait dotted; only the first
    ``max_folds`` folds, with a note when cut. The array model keeps fold events for at
    most ``hbfpsim.array.mapping.MAX_FOLDS`` folds (a ValueError beyond). Returns the path
    written."""
    check_figure_path(path)
    return save(timeline_figure(config, m, n, k, max_folds), path)
