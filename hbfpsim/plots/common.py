"""What every figure shares: the file it is written to (atomically; the format follows the
suffix), units chosen by the data's size, and the footnote naming where a figure's data
came from."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from matplotlib.figure import Figure

from hbfpsim.staging import staged_file

SUFFIXES = (".png", ".pdf", ".svg")
TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
AREA_UNITS = ((1e6, "mm²"), (1.0, "µm²"))            # from um^2
PERCENT = ((0.01, "%"),)                             # from a fraction


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


def unit_for(values: Iterable[float], units: tuple[tuple[float, str], ...]
             ) -> tuple[float, str]:
    """(divisor, unit name): the first of ``units`` (largest first) that the largest
    magnitude in ``values`` reaches, else the last one."""
    peak = max((abs(v) for v in values), default=0.0)
    return next(((f, u) for f, u in units if peak >= f), units[-1])


def footnote(fig: Figure, text: str) -> None:
    """A line of small print under the figure (constrained layout keeps room for it)."""
    fig.supxlabel(text, x=0.005, ha="left", fontsize=8, color="0.3")
