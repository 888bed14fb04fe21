"""Figures of a replay run, each written in the run's formats (PNG by default; SVG and PDF
for papers) by ``draw(report, folder, formats)``.

* ``error_vs_density``: per (array, trace), each variant's density relative to FP32 (x; the
  summary's phase ``all``, in x FP32 MAC/s per µm²) against its median SQNR (dB, left,
  higher is better) and its median W1 (output units, log scale, right, lower is better);
  the Pareto front (denser and more accurate) is a step line through its ringed points.
  Each variant has its format's colour (``hbfpsim.palette.format_colour`` of its name: the
  same as in every other figure), each (array, trace) its marker and line style.
* ``sqnr_<variant>`` (``sqnr_<variant>_<array>_<trace>`` when the run has several arrays or
  traces): SQNR (dB) per layer (rows, in the trace's order) x captured epoch (columns), one
  panel per phase; a cell holding several records shows their median, one with no
  evaluated record is blank.
* ``time_energy``: per variant, cycles (array clock) stacked by phase (left), and energy per
  phase (pJ to J, the unit set by the largest bar) stacked compute / SRAM / DRAM (right).

Shape-only runs (nothing evaluated) get ``time_energy`` only. Non-finite values: SQNR is
clipped to +-``SQNR_CAP`` dB (an exact result has +inf) and NaN left out; a W1 of 0 (exact)
is drawn at a tenth of the least positive W1 so it stays on the log axis, NaN/inf left out.
Figures use the object API on an Agg canvas: no pyplot, no backend switch, no rcParams.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hbfpsim import children
from hbfpsim.formats.threads import usable_cpus
from hbfpsim.palette import format_colour
from hbfpsim.replay.record import Row
from hbfpsim.replay.run import Report
from hbfpsim.replay.summary import ALL, Summary
from hbfpsim.trace import PHASES

SQNR_CAP = 200.0                                     # dB: where +-inf SQNR is drawn
PARTS = (("compute_pj", "compute", "tab:blue"), ("sram_pj", "SRAM", "tab:orange"),
         ("dram_pj", "DRAM", "tab:red"))
HATCHES = ("", "//", "..")                           # fwd, bwd_data, bwd_weight
ENERGY_UNITS = ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))
DENSITY = "density vs FP32 (× FP32 MAC/s per µm²)"
LABEL_OFFSETS = ((4, 4), (4, -12), (-4, 4), (-4, -12), (7, -4), (-7, -4))   # points from
#                                  a point to its name's lower corner (x < 0: its right end)
GROUP_STYLES = (("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"))


def pareto(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, both coordinates to be maximized (a
    point dominates another when at least as large in both and not equal), by x ascending.
    Equal points are both kept; NaN coordinates never dominate nor are dominated."""
    front = [i for i, (x, y) in enumerate(points)
             if not any(u >= x and v >= y and (u, v) != (x, y) for u, v in points)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def _config(summary: Sequence[Summary]) -> str:
    """The run's trace(s) on its array(s), for titles."""
    names = [list(dict.fromkeys(getattr(s, what) for s in summary))
             for what in ("trace", "array")]
    return " on ".join(f"{what}{'s' * (len(n) > 1)} {', '.join(n)}"
                       for what, n in zip(("trace", "array"), names))


def _sqnr(value: float) -> float:
    return float(np.clip(value, -SQNR_CAP, SQNR_CAP))


def error_vs_density(summary: Sequence[Summary]) -> Figure | None:
    """Median SQNR and W1 against density per variant, with Pareto fronts (None if no
    variant was evaluated)."""
    alls = [s for s in summary if s.phase == ALL and s.sqnr_db_median is not None]
    if not alls:
        return None
    w1s = [s.w1_median for s in alls if s.w1_median is not None]
    positive = [w for w in w1s if 0 < w < np.inf]
    floor = min(positive) / 10 if positive else 1e-12
    fig = Figure(figsize=(13, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    groups = list(dict.fromkeys((s.array, s.trace) for s in alls))
    drawn: dict[str, None] = {}                # variants on either panel, in order
    labels: dict = {left: [], right: []}       # (x, y, variant) to name beside its point
    for n, (array, trace) in enumerate(groups):
        mine = [s for s in alls if (s.array, s.trace) == (array, trace)]
        marker, style = GROUP_STYLES[n % len(GROUP_STYLES)]
        for ax, key, sign in ((left, "sqnr_db_median", 1), (right, "w1_median", -1)):
            values = [(s.density, getattr(s, key), s.variant) for s in mine
                      if getattr(s, key) is not None]
            values = [(x, _sqnr(y) if sign > 0 else max(y, floor), v) for x, y, v in values
                      if np.isfinite(y) or (sign > 0 and not np.isnan(y))]
            if not values:
                continue
            xs, ys = (np.array([p[i] for p in values]) for i in (0, 1))
            ax.scatter(xs, ys, c=[format_colour(v) for _, _, v in values], marker=marker,
                       zorder=3)
            for x, y, name in values:
                drawn[name] = None
                labels[ax].append((x, y, name))
            front = pareto([(x, sign * y) for x, y in zip(xs, ys)])
            ax.step(xs[front], ys[front], where="pre", color="0.25", linestyle=style,
                    alpha=0.7)
            ax.scatter(xs[front], ys[front], s=140, facecolors="none", edgecolors="0.25")
    handles = [Line2D([], [], marker="o", linestyle="", color=format_colour(v), label=v)
               for v in drawn]
    if len(groups) > 1:
        handles += [Line2D([], [], marker=m, linestyle=ls, color="0.25", label=f"{a}, {t}")
                    for (a, t), (m, ls) in zip(groups, GROUP_STYLES * len(groups))]
    handles.append(Line2D([], [], marker="o", ms=11, mfc="none", linestyle="-", color="0.25",
                          label="Pareto front"))
    left.set(xlabel=DENSITY, ylabel="median SQNR (dB), higher is better", title="SQNR")
    right.set(xlabel=DENSITY, ylabel="median W1 (output units, log scale), lower is better",
              title="Wasserstein-1 distance", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.collections:
            ax.legend(handles=handles, fontsize=8)
    fig.suptitle(f"Accuracy vs density: {_config(alls)}")
    fig.get_layout_engine().execute(fig)       # the axes' final places, then the names
    for ax, points in labels.items():
        _label_points(ax, points)
    fig.set_layout_engine("none")              # names stay inside the axes: keep the layout
    return fig


def _label_points(ax, points: list[tuple[float, float, str]], size: float = 8) -> None:
    """Each name beside its point (x, y), at the first of ``LABEL_OFFSETS`` where its box
    (measured, with a margin) overlaps no name placed before, no other point and nothing
    outside the axes; where none is free, at the one that overlaps least."""
    if not points:
        return
    ax.autoscale_view()
    scale = ax.figure.dpi / 72                       # points to pixels
    inside = ax.get_window_extent()
    centres = ax.transData.transform([(x, y) for x, y, _ in points])
    renderer, font = ax.figure.canvas.get_renderer(), FontProperties(size=size)
    placed: list[tuple[float, float, float, float]] = []
    for i, ((px, py), (x, y, name)) in enumerate(zip(centres, points)):
        w, h, _ = renderer.get_text_width_height_descent(name, font, ismath=False)
        w, h = w + 4 * scale, h + 3 * scale
        others = [(qx - 7 * scale, qy - 7 * scale, qx + 7 * scale, qy + 7 * scale)
                  for j, (qx, qy) in enumerate(centres) if j != i]        # rings included
        best = None
        for dx, dy in LABEL_OFFSETS:
            x0 = px + dx * scale - (w if dx < 0 else 0)
            box = (x0, py + dy * scale, x0 + w, py + dy * scale + h)
            clash = sum(_overlap(box, b) for b in placed + others) + w * h - _overlap(
                box, (inside.x0, inside.y0, inside.x1, inside.y1))
            if best is None or clash < best[0]:
                best = (clash, dx, dy, box)
            if clash == 0:
                break
        placed.append(best[3])
        ax.annotate(name, (x, y), xytext=best[1:3], textcoords="offset points", fontsize=size,
                    ha="left" if best[1] >= 0 else "right")


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The area two boxes (x0, y0, x1, y1) share."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def colour_limits(grid: np.ndarray) -> tuple[float, float]:
    """The ends of a heat map's colour scale, in ``grid``'s units: its least and greatest
    values ignoring NaN, widened by 1 each way when they are equal."""
    lo, hi = np.nanmin(grid), np.nanmax(grid)
    return (lo - 1, hi + 1) if lo == hi else (lo, hi)


def label_cells(ax: Axes, panel: np.ndarray, lo: float, hi: float, digits: int) -> None:
    """Write each finite cell's value (``panel``'s units, ``digits`` decimals, 7 pt) on a
    heat map drawn over [``lo``, ``hi``] with viridis: black on the light upper half of the
    scale, white on the dark lower half."""
    for (i, j), value in np.ndenumerate(panel):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center", fontsize=7,
                    color="black" if value > (lo + hi) / 2 else "white")


def sqnr_map(rows: Sequence[Row], variant: str, array: str, trace: str) -> Figure | None:
    """SQNR (dB) per layer x epoch, one panel per phase, of one variant on one array and
    trace (None if none of its records was evaluated); rows: the whole run's."""
    ours = [r for r in rows if r.trace == trace]
    layers = list(dict.fromkeys(r.layer for r in ours))
    epochs = sorted({r.epoch for r in ours})
    cells: dict[tuple, list[float]] = {}
    for r in ours:
        if (r.variant, r.array) == (variant, array) and r.sqnr_db is not None \
                and not np.isnan(r.sqnr_db):
            cells.setdefault((r.phase, r.layer, r.epoch), []).append(_sqnr(r.sqnr_db))
    if not cells:
        return None
    grid = np.full((len(PHASES), len(layers), len(epochs)), np.nan)
    for (phase, layer, epoch), values in cells.items():
        grid[PHASES.index(phase), layers.index(layer), epochs.index(epoch)] = np.median(values)
    lo, hi = colour_limits(grid)
    # laid out by hand (inches), not by a layout engine: these maps are most of a run's
    # figures, and measuring every label to place them costs a third of their drawing time
    label_size = 8 if len(layers) > 20 else 10
    rotate = len(epochs) > 12
    left = 0.75 + 0.6 * label_size / 72 * max(len(str(layer)) for layer in layers)
    bottom = 0.6 + (0.08 * max(len(str(e)) for e in epochs) if rotate else 0.15)
    top, right, gap = 0.75, 1.0, 0.25
    panel_w = 1.4 * max(len(epochs), 3) ** 0.8
    width = left + len(PHASES) * panel_w + (len(PHASES) - 1) * gap + right
    height = top + bottom + 0.3 * len(layers) + 0.4
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap / panel_w)
    axes = fig.subplots(1, len(PHASES), sharey=True, squeeze=False)[0]
    for ax, phase, panel in zip(axes, PHASES, grid):
        image = ax.imshow(panel, aspect="auto", cmap="viridis", vmin=lo, vmax=hi,
                          interpolation="nearest")
        ax.set_xticks(range(len(epochs)), [str(e) for e in epochs],
                      rotation=90 if rotate else 0)
        ax.set(xlabel="epoch (captured)", title=phase)
        if panel.size <= 60:
            label_cells(ax, panel, lo, hi, 0)
    axes[0].set_yticks(range(len(layers)), layers, fontsize=label_size)
    axes[0].set_ylabel("layer")
    bar = fig.add_axes((1 - (right - 0.15) / width, bottom / height, 0.15 / width,
                        1 - (top + bottom) / height))
    fig.colorbar(image, cax=bar, label="SQNR (dB)")
    fig.suptitle(f"SQNR per layer and epoch: {variant}, trace {trace} on array {array}",
                 y=1 - 0.15 / height, va="top")
    return fig


def time_energy(summary: Sequence[Summary]) -> Figure | None:
    """Cycles and energy per phase of each variant (None for an empty run)."""
    per_phase = [s for s in summary if s.phase != ALL]
    if not per_phase:
        return None
    bars = list(dict.fromkeys((s.variant, s.array, s.trace) for s in per_phase))
    several = len({bar[1:] for bar in bars}) > 1
    names = [f"{v}\n{a}, {t}" if several else v for v, a, t in bars]
    get = {(s.variant, s.array, s.trace, s.phase): s for s in per_phase}
    phases = [p for p in PHASES if any(s.phase == p for s in per_phase)]
    peak = max(s.energy_pj for s in per_phase)
    scale, unit = next((f, u) for f, u in ENERGY_UNITS if peak >= f or u == "pJ")
    fig = Figure(figsize=(max(11.0, 4 + 1.3 * len(bars)), 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    x = np.arange(len(bars))
    width = 0.8 / len(phases)
    bottom = np.zeros(len(bars))
    for i, phase in enumerate(phases):
        cycles = np.array([getattr(get.get((*bar, phase)), "cycles", 0) for bar in bars])
        left.bar(x, cycles, 0.7, bottom=bottom, color=str(0.35 + 0.25 * i),
                 hatch=HATCHES[i], edgecolor="white", label=phase)
        bottom += cycles
        base = np.zeros(len(bars))
        for key, _, colour in PARTS:
            energy = np.array([getattr(get.get((*bar, phase)), key, 0.0) for bar in bars])
            right.bar(x + (i - (len(phases) - 1) / 2) * width, energy / scale, width,
                      bottom=base, color=colour, hatch=HATCHES[i], edgecolor="white")
            base += energy / scale
    right.legend(handles=[Patch(color=c, label=p) for _, p, c in PARTS]
                 + [Patch(facecolor="white", edgecolor="black", hatch=HATCHES[i], label=p)
                    for i, p in enumerate(phases)], fontsize=8, loc="upper left",
                 bbox_to_anchor=(1.01, 1))
    left.legend(fontsize=8)
    left.set(ylabel="cycles (array clock)", title="time (all GEMMs of the trace)")
    right.set(ylabel=f"energy ({unit})", title="energy per phase (bars: " +
              " | ".join(phases) + ")")
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlabel("variant")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Time and energy per phase: {_config(per_phase)}")
    return fig


def _save(fig: Figure, folder: Path, name: str, formats: Sequence[str]) -> list[Path]:
    paths = [folder / f"{name}.{ext}" for ext in formats]
    for n, path in enumerate(paths):
        fig.savefig(path, dpi=150, metadata={"Date": None} if path.suffix == ".svg" else None)
        if n == 0:
            fig.set_layout_engine("none")       # keep the first file's layout: lay out once
    return paths


def draw(report: Report, folder: Path, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write the run's figures (module docstring) into ``folder``, a file per figure in each
    of ``formats`` ("png", "svg", "pdf"); the paths written, in the order above.

    With four SQNR maps or more and a second CPU, a helper process (``python -m
    hbfpsim.replay.figures``, a child that dies with this process: ``hbfpsim.children``)
    draws the last ``HELPER_SHARE`` of the maps while this process draws the rest: the
    helper needs most of a second to start, and matplotlib draws on one core."""
    folder = Path(folder)
    summary = report.summary()
    rows = report.rows
    simple = len({(r.array, r.trace) for r in rows}) == 1
    maps = [("sqnr_" + re.sub(r"[^\w.-]+", "_", v if simple else f"{v}_{a}_{t}"), (v, a, t))
            for v, a, t in dict.fromkeys((r.variant, r.array, r.trace) for r in rows)]
    share = round(len(maps) * HELPER_SHARE) if len(maps) >= 4 and usable_cpus() > 1 else 0
    theirs = maps[len(maps) - share:] if share else []
    helper = None
    if theirs:
        traces = {trace for _, (_, _, trace) in theirs}
        helper = children.start("hbfpsim.replay.figures", stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        children.send(helper.stdin, (folder, tuple(formats), theirs,
                                     [r for r in rows if r.trace in traces]))
    try:
        written: list[Path] = []
        if (fig := error_vs_density(summary)) is not None:
            written += _save(fig, folder, "error_vs_density", formats)
        written += _maps(folder, formats, maps[:len(maps) - share], rows)
        if (fig := time_energy(summary)) is not None:
            end = _save(fig, folder, "time_energy", formats)
        else:
            end = []
        if helper is not None:
            kind, value = children.receive(helper.stdout)
            if kind == "error":
                raise value
            written += value
    except BaseException:
        if helper is not None:
            helper.kill()
        raise
    finally:
        if helper is not None:
            children.stop(helper)
    return written + end


HELPER_SHARE = 0.4          # of the SQNR maps, drawn by a helper process


def _maps(folder: Path, formats: Sequence[str], maps: list, rows: Sequence[Row]) -> list[Path]:
    written = []
    for name, (variant, array, trace) in maps:
        if (fig := sqnr_map(rows, variant, array, trace)) is not None:
            written += _save(fig, folder, name, formats)
    return written


def _draw_maps(request: tuple, report) -> list[Path]:
    folder, formats, maps, rows = request
    return _maps(folder, formats, maps, rows)


if __name__ == "__main__":
    children.bind_to_parent()
    children.serve(_draw_maps)
