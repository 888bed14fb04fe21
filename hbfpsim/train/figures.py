"""Training figures: ``curves`` (per variant, training loss and the validation metric per
epoch, the mean over seeds as a line and the seeds' range as a band), in each format's colour
(``hbfpsim.palette``), solid for ``gemm`` blocking and dashed for ``emulator`` blocking, the
rounding in the legend. Object API on an Agg canvas, as the replay figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hbfpsim.palette import format_colour
from hbfpsim.staging import staged_file
from hbfpsim.train.method import Method


def curves(runs: Sequence, metric, path: Path, title: str = "",
           methods: dict[str, Method] | None = None) -> Path:
    """Write the curves of ``runs`` (objects with variant, history) to the PNG ``path``;
    ``methods``: each variant's method, by name."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, metric_ax = fig.subplots(1, 2)
    for name in dict.fromkeys(r.variant for r in runs):
        mine = [r for r in runs if r.variant == name]
        length = min(len(r.history) for r in mine)
        epochs = np.arange(1, length + 1)
        for ax, key in ((loss_ax, "train_loss"), (metric_ax, "metric")):
            values = np.array([[h[key] for h in r.history[:length]] for r in mine])
            colour = format_colour(name)
            method = (methods or {}).get(name, Method())
            ax.plot(epochs, values.mean(0), color=colour,
                    linestyle="--" if method.blocking == "emulator" else "-",
                    label=f"{name} ({method.blocking}, {method.rounding}; {len(mine)} seeds)")
            if len(mine) > 1:
                ax.fill_between(epochs, values.min(0), values.max(0), color=colour, alpha=0.2,
                                linewidth=0)
    loss_ax.set(xlabel="epoch", ylabel="training loss (nats, epoch mean)", yscale="log")
    metric_ax.set(xlabel="epoch", ylabel=f"{metric.name} ({metric.unit})")
    metric_ax.legend(fontsize=8)
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    return path
