"""Cost figures: arithmetic density per format (``plot_density``) and the area of a MAC by
part (``plot_area_breakdown``), from the 28 nm model of ``hbfpsim.cost``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from hbfpsim.cost import density as dens
from hbfpsim.cost import mac_cost
from hbfpsim.formats import get
from hbfpsim.mac import Accumulator
from hbfpsim.palette import format_colour
from hbfpsim.plots.common import check_figure_path, save

# the parts MacCost.parts names, bottom to top: per element, then once per dot product
PARTS = ("operand registers", "multiplier", "aligner", "negation", "adders", "accumulator",
         "block exponent", "fixed-to-float", "FP32 accumulator")


def density_figure(rows: list[dens.DensityRow] | None = None,
                   sweep: dict[str, list[tuple[int, float]]] | None = None) -> Figure:
    """The figure of ``plot_density``: bars and lines in each format's colour
    (``format_colour``)."""
    rows = rows if rows is not None else dens.density_table()
    sweep = sweep if sweep is not None else dens.width_sweep()
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    bars, lines = fig.subplots(1, 2, width_ratios=(1.35, 1))
    labels = [r.format.replace("@64", "").replace("booster ", "booster\n") for r in rows]
    bars.bar(range(len(rows)), [r.density for r in rows],
             color=[format_colour(r.format) for r in rows])
    for i, r in enumerate(rows):
        bars.annotate(f"{r.density:.1f}", (i, r.density), ha="center", va="bottom", fontsize=7)
    bars.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=8)
    bars.set_ylabel("MAC/s per um² relative to FP32 (equal clock)")
    bars.set_title("Arithmetic density, default accumulators (28 nm model)")
    fixed = {r.format: re.fullmatch(r"fixed(\d+)(:\w+)?", r.accumulator) for r in rows}
    defaults = {r.format: (int(fixed[r.format][1]), r.density) for r in rows if fixed[r.format]}
    for name, points in sweep.items():
        widths, values = zip(*points)
        colour = format_colour(name)
        lines.plot(widths, values, marker=".", color=colour, label=name.replace("@64", ""))
        if name in defaults:
            w, value = defaults[name]
            lines.plot([w], [value], "o", ms=8, mfc="none", color=colour)
    hbfp4 = dict(sweep.get("hbfp4@64", []))
    if 24 in hbfp4 and 12 in hbfp4:        # the literature's question: halve the accumulator
        lines.annotate(f"halving 24 -> 12 bits:\n{hbfp4[24]:.1f}x -> {hbfp4[12]:.1f}x",
                       xy=(12, hbfp4[12]), xytext=(17, hbfp4[12] + 1.5), fontsize=8,
                       arrowprops={"arrowstyle": "->", "lw": 0.8})
    lines.set_xlabel("accumulator width w (fixed{w}, bits)")
    lines.set_ylabel("density relative to FP32")
    lines.set_title("Accumulator width as an axis (o: default width)")
    lines.grid(alpha=0.3)
    lines.legend(fontsize=8)
    return fig


def plot_density(path: str | Path, rows: list[dens.DensityRow] | None = None,
                 sweep: dict[str, list[tuple[int, float]]] | None = None) -> Path:
    """Arithmetic density relative to FP32: bars per format at its default accumulator
    (left) and, for fixed-point-accumulating formats, against the accumulator width (right;
    a marker at each format's default width). Returns the path written."""
    check_figure_path(path)
    return save(density_figure(rows, sweep), path)


def area_figure(formats: Sequence[str],
                accumulators: Mapping[str, str | Accumulator] | None = None) -> Figure:
    """The figure of ``plot_area_breakdown``: one bar per format, stacked by part in
    ``PARTS`` order (µm² per MAC); tick labels in each format's colour."""
    if isinstance(formats, str) or not formats:
        raise ValueError(f"formats: expected a list of one or more format names, got "
                         f"{formats!r:.80}")
    accumulators = {get(name).name: acc for name, acc in (accumulators or {}).items()}
    costs = [mac_cost(name, accumulators.get(get(name).name)) for name in formats]
    unused = sorted(set(accumulators) - {c.format.name for c in costs})
    if unused:
        raise ValueError(f"accumulators: {unused[0]} is not among the formats "
                         f"({', '.join(c.format.name for c in costs)})")
    found = [p for c in costs for p in c.parts]
    parts = [p for p in PARTS if p in found] + list(dict.fromkeys(p for p in found
                                                                  if p not in PARTS))
    shades = matplotlib.colormaps["Set3"].colors
    fig = Figure(figsize=(max(6.0, 2.5 + 0.9 * len(costs)), 5), layout="constrained")
    ax = fig.subplots()
    x = range(len(costs))
    bottom = [0.0] * len(costs)
    for i, part in enumerate(parts):
        heights = [c.parts.get(part, 0.0) for c in costs]
        ax.bar(x, heights, 0.7, bottom=bottom, color=shades[i % len(shades)],
               edgecolor="white", label=part)
        bottom = [b + h for b, h in zip(bottom, heights)]
    for i, c in enumerate(costs):
        ax.annotate(f"{c.area:.1f}", (i, c.area), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{c.format.name.replace('@64', '')}\n{c.accumulator}" for c in costs],
                  fontsize=9)
    for label, c in zip(ax.get_xticklabels(), costs):
        label.set_color(format_colour(c.format.name))
        label.set_fontweight("bold")
    ax.set(xlabel="format (accumulator)", ylabel="area per MAC (µm², 28 nm model)",
           title="MAC area by part (per-block parts amortized over the block)")
    ax.margins(y=0.08)                                 # room for the totals
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1))
    return fig


def plot_area_breakdown(formats: Sequence[str], path: str | Path,
                        accumulators: Mapping[str, str | Accumulator] | None = None) -> Path:
    """Area per MAC (µm², 28 nm) of each format in ``formats`` by part (``mac_cost(fmt,
    acc).parts``: operand registers, multiplier, MX aligner and negation, adder tree,
    accumulator, and per block the exponent adder, fixed-to-float converter and FP32
    accumulator, amortized), stacked; each bar sums to ``mac_cost(fmt, acc).area``.
    ``accumulators``: format name -> accumulator, a name or an object (default:
    ``default_accumulator``). An array's PE adds a partial-sum register to this
    (``hbfpsim cost array``). Returns the path written."""
    check_figure_path(path)
    return save(area_figure(formats, accumulators), path)
