"""Figures for papers, drawn with matplotlib's object API (no pyplot state, no display):
every function writes one file (the format follows its suffix: .png, .pdf, .svg)."""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure

from hbfpsim.cost import density as dens
from hbfpsim.staging import staged_file


def plot_density(path: str | Path, rows: list[dens.DensityRow] | None = None,
                 sweep: dict[str, list[tuple[int, float]]] | None = None) -> Path:
    """Arithmetic density relative to FP32: bars per format at its default accumulator
    (left) and, for fixed-point-accumulating formats, against the accumulator width (right;
    a marker at each format's default width). Returns the path written."""
    rows = rows if rows is not None else dens.density_table()
    sweep = sweep if sweep is not None else dens.width_sweep()
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    bars, lines = fig.subplots(1, 2, width_ratios=(1.35, 1))
    colors = {"fp": "#7f7f7f", "int": "#9467bd", "mx": "#1f77b4", "hbfp": "#d62728",
              "booster": "#ff7f0e"}
    family = lambda r: ("booster" if r.format.startswith("booster") else  # noqa: E731
                        "hbfp" if r.format.startswith("hbfp") else "mx" if r.format.startswith("mx")
                        else "int" if r.format.startswith("int") else "fp")
    labels = [r.format.replace("@64", "").replace("booster ", "booster\n") for r in rows]
    bars.bar(range(len(rows)), [r.density for r in rows],
             color=[colors[family(r)] for r in rows])
    for i, r in enumerate(rows):
        bars.annotate(f"{r.density:.1f}", (i, r.density), ha="center", va="bottom", fontsize=7)
    bars.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=8)
    bars.set_ylabel("MAC/s per um² relative to FP32 (equal clock)")
    bars.set_title("Arithmetic density, default accumulators (28 nm model)")
    fixed = {r.format: re.fullmatch(r"fixed(\d+)(:\w+)?", r.accumulator) for r in rows}
    defaults = {r.format: (int(fixed[r.format][1]), r.density) for r in rows if fixed[r.format]}
    for name, points in sweep.items():
        widths, values = zip(*points)
        (line,) = lines.plot(widths, values, marker=".", label=name.replace("@64", ""))
        if name in defaults:
            w, value = defaults[name]
            lines.plot([w], [value], "o", ms=8, mfc="none", color=line.get_color())
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
    return save(fig, path)


SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_path(path: str | Path) -> Path:
    """``path`` if it names a figure file (.png, .pdf or .svg); a ValueError otherwise, before
    any drawing."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES or not path.stem or path.stem.startswith("."):
        raise ValueError(f"{str(path)!r}: a figure file is a name ending in .png, .pdf or .svg")
    return path


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (format by suffix) atomically, replacing an older file;
    returns the path."""
    path = check_figure_path(path)
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=150, metadata={"Date": None} if path.suffix == ".svg" else None)
    return path
