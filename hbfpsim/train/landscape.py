"""Loss landscapes of finished training runs (Li et al., "Visualizing the Loss Landscape of
Neural Nets", NeurIPS 2018): the validation loss of a run's final weights moved along one or
two random, filter-normalized directions, each variant evaluated in its own emulated
numerics at the run's last epoch.

The raw Gaussian directions come from one ``torch.Generator`` seeded anew for every variant,
so all variants share them and differ only by the filter normalization (each filter of a
direction scaled to the norm of the same filter of that variant's weights). A step ``a`` is
therefore in units of the weights' own filter norms: ``a = 1`` moves every filter by its
whole length. Moved weights are not rounded to the run's storage format (no optimizer step
runs); every GEMM still quantizes them to the variant's weight format.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import nn

from hbfpsim.palette import format_colour
from hbfpsim.staging import as_path, staged_file
from hbfpsim.train import spec as train_spec
from hbfpsim.train.emulate import Emulation
from hbfpsim.train.job import make_task
from hbfpsim.train.loop import build, checkpoint_path, load_checkpoint
from hbfpsim.validate import is_integer, is_number

Direction = dict[str, torch.Tensor]     # by parameter name, in the weights' units


def filter_normalized(model: nn.Module, generator: torch.Generator) -> Direction:
    """A random direction in ``model``'s parameter space, by parameter name: a standard
    Gaussian draw from ``generator`` for every parameter (``named_parameters`` order), each
    filter (slice along dim 0) of a parameter of 2 or more dimensions rescaled so that its
    Euclidean norm equals that of the same filter of the weights; parameters of 0 or 1
    dimension (biases, norm scales) get zeros (they are drawn all the same, so the stream
    does not depend on which parameters are 1-D). Same units as the weights."""
    out: Direction = {}
    for name, p in model.named_parameters():
        d = torch.randn(p.shape, generator=generator, dtype=torch.float32)
        if p.dim() <= 1:
            out[name] = torch.zeros_like(p)
            continue
        rows = d.reshape(p.shape[0], -1)
        norms = p.detach().float().reshape(p.shape[0], -1).norm(dim=1)
        scale = norms / rows.norm(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        out[name] = (rows * scale[:, None]).reshape(p.shape).to(p.dtype)
    return out


def scan(model: nn.Module, task: Any, emu: Emulation, epoch: int, d: Direction,
         e: Direction | None, steps: Sequence[tuple[float, float]], bar: Any = None
         ) -> list[float]:
    """Validation loss (nats, ``task.evaluate``) at the weights ``w + a d + b e`` for every
    ``(a, b)`` of ``steps`` (``e`` None: b must be 0), in eval mode with ``emu.epoch =
    epoch`` and no MACs counted; ``bar.update(1)`` per point. The weights, ``emu.epoch`` and
    the model's training mode are restored afterwards, also on an error."""
    params = dict(model.named_parameters())
    base = {name: p.detach().clone() for name, p in params.items()}
    training, old_epoch = model.training, emu.epoch
    losses = []
    model.eval()
    emu.epoch = epoch
    try:
        with torch.no_grad(), emu.uncounted():
            for a, b in steps:
                if b and e is None:
                    raise ValueError(f"steps: b = {b} needs a second direction e")
                for name, p in params.items():
                    value = base[name].clone()
                    if a:
                        value.add_(d[name], alpha=a)
                    if b:
                        value.add_(e[name], alpha=b)
                    p.copy_(value)
                losses.append(float(task.evaluate(model)[0]))
                if bar is not None:
                    bar.update(1)
    finally:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(base[name])
        model.train(training)
        emu.epoch = old_epoch
    return losses


def grid(points: int, span: float) -> list[float]:
    """``points`` evenly spaced steps from ``-span`` to ``span``, symmetric, with an exact 0
    in the middle when ``points`` is odd."""
    return [span * (2 * i - (points - 1)) / (points - 1) for i in range(points)]


def landscape(spec: train_spec.TrainSpec | str | Path, variants: list[str] | None = None,
              seed: int | None = None, *, points: int = 21, span: float = 1.0,
              two_d: bool = False, seed_directions: int = 0,
              progress: bool | None = None) -> list[dict]:
    """Loss landscape of each variant's final model of run ``spec`` (a TrainSpec or a run
    file's path; default: all its variants, its first seed): the validation loss (nats) at
    ``a`` (and ``b``, ``two_d``) steps in ``grid(points, span)`` along filter-normalized
    directions drawn with ``seed_directions``. Rows {"variant", "a", "b" (0 in 1-D),
    "loss"}. Every run must have a finished checkpoint; all are checked before any work.
    ``progress``: None shows a bar over evaluations on a terminal, False never."""
    from tqdm import tqdm
    if not isinstance(spec, train_spec.TrainSpec):
        spec = train_spec.load(as_path(spec, "landscape: spec"))
    schedules = {v.name: v for v in spec.variants}
    if variants is None:
        names = list(schedules)
    elif isinstance(variants, (list, tuple)) and variants and all(
            isinstance(n, str) for n in variants):
        names = list(variants)
        for name in names:
            if name not in schedules:
                raise ValueError(f"variants: {name!r} is not a variant of {spec.source} "
                                 f"(expected some of {', '.join(schedules)})")
        if len(set(names)) != len(names):
            raise ValueError(f"variants: a name is given twice in {names}")
    else:
        raise ValueError(f"variants: expected a non-empty list of variant names, got "
                         f"{variants!r:.80}")
    seed = spec.seeds[0] if seed is None else seed
    if not (is_integer(seed) and seed in spec.seeds):
        raise ValueError(f"seed: expected one of the run's seeds {list(spec.seeds)}, got "
                         f"{seed!r:.80}")
    if not is_integer(points, 3, 201):
        raise ValueError(f"points: expected an integer from 3 to 201, got {points!r:.80}")
    if not (is_number(span) and span > 0):
        raise ValueError(f"span: expected a finite number > 0, got {span!r:.80}")
    if not is_integer(seed_directions, 0, 2**63 - 1):
        raise ValueError(f"seed_directions: expected an integer in [0, 2^63), got "
                         f"{seed_directions!r:.80}")
    seed = int(seed)
    states = {name: _finished(spec, schedules[name], seed) for name in names}
    steps = grid(int(points), float(span))
    plane = [(a, b) for a in steps for b in (steps if two_d else [0.0])]
    task = make_task(spec)
    rows = []
    with tqdm(total=len(names) * len(plane), unit="eval", desc="landscape", dynamic_ncols=True,
              disable=None if progress is None else not progress) as bar:
        for name in names:
            bar.set_postfix_str(name)
            model, _, emu = build(spec, task, schedules[name], seed)
            model.load_state_dict(states[name])
            generator = torch.Generator().manual_seed(int(seed_directions))
            d = filter_normalized(model, generator)
            e = filter_normalized(model, generator) if two_d else None
            losses = scan(model, task, emu, spec.epochs - 1, d, e, plane, bar)
            rows += [{"variant": name, "a": a, "b": b, "loss": loss}
                     for (a, b), loss in zip(plane, losses)]
    return rows


def _finished(spec: train_spec.TrainSpec, variant: Any, seed: int) -> dict:
    """The model state of a finished run, else a ValueError naming the variant."""
    path = checkpoint_path(spec.out, variant.name, seed)
    if not path.is_file():
        raise ValueError(f"variants: {variant.name!r} seed {seed} has no checkpoint at {path}; "
                         f"train it first (hbfpsim train {spec.source})")
    state = load_checkpoint(path, spec.key(variant, seed))
    done = len(state.get("history", []))
    if done != spec.epochs:
        raise ValueError(f"variants: {variant.name!r} seed {seed} is unfinished ({path} holds "
                         f"{done} of {spec.epochs} epochs); finish it with hbfpsim train")
    return state["model"]


def write_landscape(rows: list[dict], out: str | Path, two_d: bool) -> list[Path]:
    """``landscape_1d.csv`` and ``.png`` (loss against a, one line per variant) or, with
    ``two_d``, ``landscape_2d.csv`` and ``.png`` (one contour panel per variant, the same
    levels in every panel) in the folder ``out``. Returns the paths written."""
    out = as_path(out, "write_landscape: out")
    if not rows:
        raise ValueError("rows: no landscape rows to write")
    stem = "landscape_2d" if two_d else "landscape_1d"
    with staged_file(out / f"{stem}.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "a", "b", "loss_nats"])
        for r in rows:
            w.writerow([r["variant"], f"{r['a']:.9g}", f"{r['b']:.9g}", f"{r['loss']:.9g}"])
    names = list(dict.fromkeys(r["variant"] for r in rows))
    fig = _contours(rows, names) if two_d else _lines(rows, names)
    with staged_file(out / f"{stem}.png") as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    return [out / f"{stem}.csv", out / f"{stem}.png"]


def _lines(rows: list[dict], names: list[str]) -> Figure:
    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name in names:
        mine = sorted((r["a"], r["loss"]) for r in rows if r["variant"] == name)
        ax.plot([a for a, _ in mine], [loss for _, loss in mine], marker="o", markersize=3,
                color=format_colour(name), label=name)
    ax.axvline(0, color="0.5", linewidth=0.8, linestyle=":")
    ax.set(xlabel="step along filter-normalized direction (filter norms)",
           ylabel="validation loss (nats)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _contours(rows: list[dict], names: list[str]) -> Figure:
    losses = np.array([r["loss"] for r in rows], dtype=float)
    finite = losses[np.isfinite(losses) & (losses > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1.0, 10.0)
    if high <= low * (1 + 1e-6):
        low, high = low / 1.01, high * 1.01
    levels, norm = np.geomspace(low, high, 21), LogNorm(low, high)
    cols = min(len(names), 3)
    fig = Figure(figsize=(3.6 * cols + 1, 3.4 * math.ceil(len(names) / cols)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(math.ceil(len(names) / cols), cols, squeeze=False)).ravel()
    filled = None
    for ax, name in zip(axes, names):
        mine = {(r["a"], r["b"]): r["loss"] for r in rows if r["variant"] == name}
        a = sorted({k[0] for k in mine})
        b = sorted({k[1] for k in mine})
        z = np.array([[mine.get((x, y), np.nan) for x in a] for y in b], dtype=float)
        z = np.ma.masked_invalid(np.where(z > 0, z, np.nan))
        filled = ax.contourf(a, b, z, levels=levels, norm=norm, cmap="viridis")
        ax.plot([0], [0], marker="+", color="white", markersize=8)
        ax.set(title=name, xlabel="a (direction 1, filter norms)",
               ylabel="b (direction 2, filter norms)", aspect="equal")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    bar = fig.colorbar(filled, ax=list(axes[:len(names)]), label="validation loss (nats)")
    bar.minorticks_off()
    bar.set_ticks(levels[::4], labels=[f"{v:.3g}" for v in levels[::4]])
    return fig


__all__ = ["filter_normalized", "grid", "landscape", "scan", "write_landscape"]
