"""Training figures: ``curves`` (per variant, training loss and the validation metric per
epoch, the mean over seeds as a line and the seeds' range as a band), in each format's colour
(``hbfpsim.palette``), solid for ``gemm`` blocking and dashed for ``emulator`` blocking, the
rounding in the legend; ``methods`` (when a run compares methods: the final metric of each
schedule under each method, bars with the seeds' spread). Object API on an Agg canvas, as
the replay figures."""

from __future__ import annotations

import textwrap
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
            values = np.array([[getattr(h, key) for h in r.history[:length]] for r in mine])
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
    many = len({r.variant for r in runs}) >= 8
    metric_ax.legend(fontsize=5 if many else 7, ncol=2 if many else 1)
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(textwrap.fill(title, 140), fontsize=8)
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    return path


def methods(variants: Sequence, setups: dict, metric, path: Path, title: str = "") -> Path:
    """Bars of the final ``metric`` (mean over seeds, whiskers from min to max) of
    ``variants`` (objects with variant, method, finals), one bar per blocking and rounding,
    grouped by the rest of their set-up (``setups``: variant name -> a hashable of its
    schedule, other method settings and learning rate; a group is named by its first
    variant); to the PNG ``path``."""
    groups: dict = {}
    for v in variants:
        groups.setdefault(setups[v.variant], []).append(v)
    kinds = sorted({(v.method.blocking, str(v.method.rounding)) for v in variants},
                   key=lambda kind: (kind[0] != "gemm", kind[1] != "rne", kind))
    fig = Figure(figsize=(max(6.0, 1.1 * len(groups) + 2), 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        xs, means, low, high = [], [], [], []
        for g, members in enumerate(groups.values()):
            for v in members:
                if (v.method.blocking, str(v.method.rounding)) == kind:
                    xs.append(g - 0.4 + width * (k + 0.5))
                    means.append(np.mean(v.finals))
                    low.append(means[-1] - min(v.finals))
                    high.append(max(v.finals) - means[-1])
        ax.bar(xs, means, width, yerr=[low, high], capsize=2, color=f"C{k}",
               hatch="//" if kind[0] == "emulator" else None, edgecolor="white",
               label=f"{kind[0]} blocking, {kind[1]} rounding")
    reference = [v for v in variants if v.variant == "fp32"]
    if reference:
        ax.axhline(np.mean(reference[0].finals), color="0.3", linestyle="--", linewidth=0.8,
                   label="fp32 mean")
    ax.set_xticks(range(len(groups)), [members[0].variant for members in groups.values()],
                  rotation=25 if len(groups) > 5 else 0, ha="right" if len(groups) > 5 else "center")
    ax.set(ylabel=f"final {metric.name} ({metric.unit})")
    finals = [f for v in variants for f in v.finals]
    span = max(finals) - min(finals)
    ax.set_ylim(max(0.0, min(finals) - 0.1 * span), max(finals) + 0.1 * span)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title, fontsize=9)
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    return path
