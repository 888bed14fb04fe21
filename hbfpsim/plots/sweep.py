"""Figures of a sweep store (``hbfpsim.sweep``), one point or cell from each finished run:

- ``plot_sweep_pareto``: two run totals of ``MEASURES`` against each other (energy against
  time by default; accuracy against density for a sweep with ``compute = "accuracy"``), each
  run in its variant's colour (``format_colour``), the Pareto front (the runs no other run
  beats on both) drawn as a step line through its ringed points;
- ``plot_sweep_heatmap``: utilization or stall share (%) per array shape, rows x cols, one
  panel per dataflow, each cell the mean over the runs of that shape (the other axes).

Titles name the sweep(s) and the store file the runs came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from hbfpsim.palette import format_colour
from hbfpsim.plots.common import (AREA_UNITS, PERCENT, TIME_UNITS, check_figure_path, footnote,
                                  save, unit_for)
from hbfpsim.replay.figures import ENERGY_UNITS, colour_limits, label_cells, pareto
from hbfpsim.sweep.store import TOTALS, Store, open_existing


@dataclass(frozen=True)
class Measure:
    """How a run total is drawn: its name on the axis, which way is ``better`` ("lower" or
    "higher"), and its units as (divisor from the stored value, unit name), largest first
    (``unit_for`` picks one by the data's size)."""

    label: str
    better: str
    units: tuple[tuple[float, str], ...]


MEASURES = {
    "seconds": Measure("time", "lower", TIME_UNITS),
    "cycles": Measure("time", "lower", ((1.0, "array clock cycles"),)),
    "energy_pj": Measure("energy", "lower", ENERGY_UNITS),
    "density": Measure("density", "higher", ((1.0, "× FP32 MAC/s per µm²"),)),
    "utilization": Measure("utilization", "higher", PERCENT),
    "stall_share": Measure("stall share", "lower", ((0.01, "% of cycles"),)),
    "array_area_um2": Measure("array area", "lower", AREA_UNITS),
    "sqnr_db_median": Measure("median SQNR", "higher", ((1.0, "dB"),)),
    "w1_median": Measure("median W1", "lower", ((1.0, "output units"),)),
    "rel_error_median": Measure("median relative error", "lower", ((1.0, "ratio"),)),
    "vrr_median": Measure("median VRR", "higher", ((1.0, "ratio"),)),
}
ACCURACY = frozenset({"sqnr_db_median", "w1_median", "rel_error_median", "vrr_median"})
HEAT_VALUES = ("utilization", "stall_share")
BETTER = ("lower", "higher")
MAX_LABELLED = 15          # front points labelled with their configurations, at most


def front(points: Sequence[tuple[float, float]],
          better: tuple[str, str] = ("lower", "lower")) -> list[int]:
    """Indices of the Pareto front of ``points`` (x, y): the points no other point beats, a
    point beating another when at least as good in both coordinates (``better``: "lower" or
    "higher" for x and y) and not equal; by x ascending. Equal points are both kept."""
    if len(better) != 2 or any(b not in BETTER for b in better):
        raise ValueError(f"better: expected two of 'lower', 'higher' (x, y), got {better!r}")
    signs = [1.0 if b == "higher" else -1.0 for b in better]
    kept = pareto([(signs[0] * x, signs[1] * y) for x, y in points])
    return sorted(kept, key=lambda i: tuple(points[i]))


def sweep_runs(store: Store | str | Path) -> tuple[list[dict], str]:
    """Every finished run of ``store`` (an open Store, or the path of one) as {column:
    value} with the columns of ``Store.rows()``, and a line naming the sweep(s), the number
    of runs and the store file, for titles."""
    if isinstance(store, Store):
        return _runs(store)
    with open_existing(store) as db:
        return _runs(db)


def _runs(db: Store) -> tuple[list[dict], str]:
    header, rows = db.rows()
    if not rows:
        raise ValueError(f"store: {db.path} holds no finished run (hbfpsim sweep run SPEC "
                         f"--store {db.path})")
    sweeps = [name for name, count in db.status()["sweeps"].items() if count["done"]]
    source = (f"sweep{'s' * (len(sweeps) > 1)} {', '.join(sweeps)} ({len(rows)} runs, "
              f"store {db.path.name})")
    return [dict(zip(header, row)) for row in rows], source


def _swept(runs: list[dict]) -> list[str]:
    return [k for k in runs[0] if k != "key" and k not in TOTALS]


def _values(runs: list[dict], source: str, name: str, arg: str) -> list:
    """The column ``name`` of every run; a ValueError naming ``arg`` if no run has a value."""
    values = [r[name] for r in runs]
    if all(v is None for v in values):
        hint = ('; a timing-only sweep (compute = "timing") has no accuracy: run one with '
                'compute = "accuracy"' if name in ACCURACY else "")
        raise ValueError(f"{arg}: the column {name!r} is empty (None) in every run of "
                         f"{source}{hint}")
    return values


def _label(measure: Measure, unit: str) -> str:
    return f"{measure.label} ({unit}), {measure.better} is better"


def _wide(values: np.ndarray) -> bool:
    """Whether a log axis suits ``values``: all positive, spanning a factor of 10 or more."""
    return bool(values.size and values.min() > 0 and values.max() >= 10 * values.min())


def _configuration(run: dict, varying: list[str]) -> str:
    """A run's swept values among ``varying``, compactly: '32x64 ws dram_bytes_per_cycle=16'."""
    shape = {"rows", "cols"} <= set(varying)
    parts = [f"{run['rows']}x{run['cols']}"] if shape else []
    parts += [str(run[k]) if k == "dataflow" else f"{k}={run[k]}" for k in varying
              if not (shape and k in ("rows", "cols"))]
    return " ".join(parts)


def pareto_figure(store: Store | str | Path, x: str = "seconds",
                  y: str = "energy_pj") -> Figure:
    """The figure of ``plot_sweep_pareto``."""
    for arg, name in (("x", x), ("y", y)):
        if name not in MEASURES:
            raise ValueError(f"{arg}: {name!r} is not a run total this figure draws; expected "
                             f"one of {', '.join(MEASURES)}")
    if x == y:
        raise ValueError(f"x, y: both are {x!r}; expected two different run totals")
    runs, source = sweep_runs(store)
    xs, ys = _values(runs, source, x, "x"), _values(runs, source, y, "y")
    keep = [i for i, (u, v) in enumerate(zip(xs, ys))
            if u is not None and v is not None and math.isfinite(u) and math.isfinite(v)]
    if not keep:
        raise ValueError(f"x, y: no run of {source} has finite values of both {x} and {y}")
    mx, my = MEASURES[x], MEASURES[y]
    (fx, ux), (fy, uy) = (unit_for([vals[i] for i in keep], m.units)
                          for vals, m in ((xs, mx), (ys, my)))
    px, py = np.array([xs[i] / fx for i in keep]), np.array([ys[i] / fy for i in keep])
    by = next((k for k in ("variant", "input") if k in runs[0]), None)
    groups = [str(runs[i][by]) if by else "all runs" for i in keep]
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    ax = fig.subplots()
    for group in dict.fromkeys(groups):
        mine = [j for j, g in enumerate(groups) if g == group]
        ax.scatter(px[mine], py[mine], s=16, color=format_colour(group), alpha=0.75,
                   label=group, zorder=2, gid=f"runs:{group}")
    best = front(list(zip(px, py)), (mx.better, my.better))
    ax.step(px[best], py[best], where="post" if mx.better == "lower" else "pre",
            color="black", lw=1.2, zorder=3, gid="pareto-front")
    ax.scatter(px[best], py[best], s=110, facecolors="none", edgecolors="black", lw=1.2,
               zorder=4, label=f"Pareto front ({len(best)} run{'s' * (len(best) > 1)})",
               gid="pareto-rings")
    if _wide(px):
        ax.set_xscale("log")
    if _wide(py):
        ax.set_yscale("log")
    varying = [k for k in _swept(runs) if k != by and len({str(r[k]) for r in runs}) > 1]
    spots: dict[tuple[float, float], list[str]] = {}         # equal points: one label
    for j in best:
        spots.setdefault((px[j], py[j]), []).append(_configuration(runs[keep[j]], varying))
    if varying and len(spots) <= MAX_LABELLED:
        to_axes = ax.transData + ax.transAxes.inverted()
        for spot, names in spots.items():
            right = to_axes.transform(spot)[0] > 0.7           # label to the left there
            ax.annotate(", ".join(dict.fromkeys(names)), spot, xytext=(-5 if right else 5, 3),
                        textcoords="offset points", ha="right" if right else "left",
                        fontsize=7)
    ax.set(xlabel=_label(mx, ux), ylabel=_label(my, uy))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, title=by)
    fig.suptitle(f"{my.label[0].upper()}{my.label[1:]} vs {mx.label} per run: {source}")
    note = "each point: one run's totals over all of the sweep's traces"
    if len(keep) < len(runs):
        note += f"; {len(runs) - len(keep)} runs without finite {x} and {y} left out"
    footnote(fig, note)
    return fig


def plot_sweep_pareto(store: Store | str | Path, path: str | Path, x: str = "seconds",
                      y: str = "energy_pj") -> Path:
    """Run totals ``y`` against ``x`` (keys of ``MEASURES``: ``seconds`` and ``cycles``
    time, ``energy_pj`` energy drawn in pJ to J by size, ``density`` vs FP32,
    ``utilization`` and ``stall_share`` in %, ``array_area_um2`` in µm² or mm²,
    ``sqnr_db_median`` dB, ``w1_median``, ``rel_error_median``, ``vrr_median``), one point
    per finished run of ``store`` in its variant's (else its input format's) colour, and
    the Pareto front for each measure's better direction (lower time, energy, area, W1;
    higher density, utilization, SQNR), ringed. Accuracy columns are None in timing-only
    sweeps: then a ValueError names the empty column. Runs with a missing or non-finite
    value are left out (a footnote counts them); an axis spanning 10x or more is log.
    Returns the path written."""
    check_figure_path(path)
    return save(pareto_figure(store, x, y), path)


def _log2_label(value: float) -> str:
    """'$2^{5}$' for 32, else the number (array sides are positive)."""
    exponent = math.log2(value)
    return f"$2^{{{int(exponent)}}}$" if exponent.is_integer() else f"{value:g}"


def _shape_runs(store: Store | str | Path, variant: str | None, dataflow: str | None
                ) -> tuple[list[dict], str, list[str]]:
    """The finished runs of ``store`` that have an array shape (rows and cols), only
    ``variant``'s and ``dataflow``'s where given; the line naming the store (``sweep_runs``);
    the choices made, as 'variant hbfp4', for the title. A ValueError for a store without
    shapes, or a choice its runs do not sweep or do not hold."""
    every, source = sweep_runs(store)
    runs = [r for r in every if r.get("rows") is not None and r.get("cols") is not None]
    if not runs:
        raise ValueError(f"store: the runs of {source} do not sweep rows and cols (the heat "
                         f"map's axes; swept: {', '.join(_swept(every)) or 'nothing'})")
    chosen = []
    for arg, wanted in (("variant", variant), ("dataflow", dataflow)):
        if wanted is None:
            continue
        if arg not in runs[0]:
            raise ValueError(f"{arg}: the runs of {source} do not sweep {arg}")
        have = list(dict.fromkeys(r[arg] for r in runs))
        if wanted not in have:
            raise ValueError(f"{arg}: {wanted!r} is not in {source} (it has "
                             f"{', '.join(map(str, have))})")
        runs = [r for r in runs if r[arg] == wanted]
        chosen.append(f"{arg} {wanted}")
    return runs, source, chosen


def _shape_grid(runs: list[dict], value: str, factor: float
                ) -> tuple[list[str | None], list[int], list[int], np.ndarray]:
    """The heat map's panels (dataflows in run order, or [None] when not swept), its rows
    and cols (array sides in PEs, ascending), and the grid (panel, row, col) of the mean of
    the column ``value`` over the runs of each cell, divided by ``factor`` (stored units per
    drawn unit); NaN where no run has a value."""
    panels = list(dict.fromkeys(r["dataflow"] for r in runs)) if "dataflow" in runs[0] \
        else [None]
    rows, cols = sorted({r["rows"] for r in runs}), sorted({r["cols"] for r in runs})
    cells: dict[tuple[int, int, int], list[float]] = {}
    for r in runs:
        if r[value] is not None:
            where = (panels.index(r.get("dataflow")), rows.index(r["rows"]),
                     cols.index(r["cols"]))
            cells.setdefault(where, []).append(r[value])
    grid = np.full((len(panels), len(rows), len(cols)), np.nan)
    for where, values in cells.items():
        grid[where] = fmean(values) / factor
    return panels, rows, cols, grid


def _heat_panels(grid: np.ndarray, panels: list[str | None], rows: list[int],
                 cols: list[int]) -> tuple[Figure, np.ndarray, AxesImage]:
    """A figure with one heat map per panel of ``grid`` (``_shape_grid``), rows (PEs, y)
    by cols (PEs, x) at power-of-two ticks, on one colour scale, cells labelled when 400 or
    fewer; its axes and the last panel's image (for the colour bar)."""
    lo, hi = colour_limits(grid)
    fig = Figure(figsize=(2.5 + (1.0 + 0.6 * len(cols)) * len(panels), 2.2 + 0.5 * len(rows)),
                 layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, panel, name in zip(axes, grid, panels):
        image = ax.imshow(panel, origin="lower", cmap="viridis", vmin=lo, vmax=hi,
                          interpolation="nearest")
        if panel.size <= 400:
            label_cells(ax, panel, lo, hi, 1)
        ax.set_xticks(range(len(cols)), [_log2_label(c) for c in cols])
        ax.set(xlabel="array columns (PEs)",
               title="all runs" if name is None else f"dataflow {name}")
    axes[0].set_yticks(range(len(rows)), [_log2_label(r) for r in rows])
    axes[0].set_ylabel("array rows (PEs)")
    return fig, axes, image


def heatmap_figure(store: Store | str | Path, value: str = "utilization",
                   variant: str | None = None, dataflow: str | None = None) -> Figure:
    """The figure of ``plot_sweep_heatmap``."""
    if value not in HEAT_VALUES:
        raise ValueError(f"value: expected one of {', '.join(HEAT_VALUES)}, got {value!r}")
    runs, source, chosen = _shape_runs(store, variant, dataflow)
    _values(runs, source, value, "value")
    measure = MEASURES[value]
    factor, unit = measure.units[0]                  # a fraction, drawn in %
    panels, rows, cols, grid = _shape_grid(runs, value, factor)
    fig, axes, image = _heat_panels(grid, panels, rows, cols)
    fig.colorbar(image, ax=list(axes), label=f"mean {measure.label} ({unit})")
    fig.suptitle(f"Mean {measure.label} per array shape{''.join(', ' + c for c in chosen)}: "
                 f"{source}")
    others = [k for k in _swept(runs) if k not in ("rows", "cols", "dataflow")
              and len({str(r[k]) for r in runs}) > 1]
    footnote(fig, f"each cell: the mean over its runs ({', '.join(others)}); blank: no run"
             if others else "each cell: one run; blank: no run")
    return fig


def plot_sweep_heatmap(store: Store | str | Path, path: str | Path,
                       value: str = "utilization", variant: str | None = None,
                       dataflow: str | None = None) -> Path:
    """A heat map of ``value`` (``utilization``: MACs over cycles x PEs, or
    ``stall_share``: stall cycles over cycles; both in %) over array shapes, rows (y) by
    cols (x), ticks at powers of two, one panel per dataflow (or only ``dataflow``), over
    the finished runs of ``store`` (only ``variant``'s if given); each cell is the mean
    over the runs of that shape and dataflow (every other swept axis), annotated, blank
    where no run has that shape. Returns the path written."""
    check_figure_path(path)
    return save(heatmap_figure(store, value, variant, dataflow), path)
