"""Variance retention of floating-point accumulation (``hbfpsim.accuracy.vrr``, docs/vrr.md):

- ``plot_vrr``: VRR against the accumulation length n for accumulators e8m{M}, the model
  (lines) against the MAC engine (markers, two standard errors): docs/vrr.png;
- ``plot_vrr_knee``: VRR against the accumulator's fraction bits M for a few lengths n, the
  knee (``min_mantissa_bits``: the fewest bits losing at most ln 50 product variances)
  marked on each curve; measured points optional.

Both draw one panel per accumulation (rounding, chunk), by default round-to-nearest-even
sequentially and in chunks of 64, and round-toward-zero sequentially.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hbfpsim.accuracy.vrr import (LOST_CUTOFF, MAX_MANTISSA, measured_vrr, min_mantissa_bits,
                                  variance_lost, vrr)
from hbfpsim.formats import Rounding
from hbfpsim.plots.common import check_figure_path, save
from hbfpsim.validate import is_integer, is_real

PANELS = (("rne", None), ("rne", 64), ("rtz", None))        # (rounding, chunk)
BITS = (4, 6, 8, 10, 12, 14, 16)                             # plot_vrr's accumulators
LENGTHS = (2**12, 2**16, 2**20)                              # plot_vrr_knee's n
MIN_TRIALS = 256                                             # sums per measured point
KNEE_MARGIN = 4                                              # bits drawn past the last knee
MODES = {Rounding.RNE: "round to nearest even", Rounding.RTZ: "round toward zero"}
Log = Callable[[str], None]


def _title(rounding: str, chunk: int | None) -> str:
    mode = Rounding.parse(rounding)
    name = MODES.get(mode, mode.label)
    return f"{name}, {'sequential' if chunk is None else f'chunks of {chunk}'}"


def _check_panels(panels: Sequence[tuple[str, int | None]]) -> None:
    if not panels or any(len(p) != 2 for p in panels):
        raise ValueError(f"panels: expected one or more (rounding, chunk) pairs, got "
                         f"{panels!r:.80}")


def _colours(count: int) -> np.ndarray:
    return matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, count))


def _measure(ax: Axes, x: float, n: int, m_acc: int, rounding: str, chunk: int | None,
             budget: int, colour, log: Log | None) -> None:
    """Measure VRR(n, m_acc) with the MAC engine (``budget`` MACs, at least MIN_TRIALS sums)
    and draw it at ``x`` with two standard errors; ``log`` gets the line
    'panel, m_acc, n, model, measured, standard error'."""
    value, se = measured_vrr(n, m_acc, chunk=chunk, rounding=rounding,
                             trials=max(MIN_TRIALS, budget // n), seed=n + m_acc)
    ax.errorbar(x, value, yerr=2 * se, fmt="o", ms=3.5, color=colour, capsize=2)
    if log is not None:
        model = vrr(n, m_acc, chunk=chunk, rounding=rounding)
        log(f"{_title(rounding, chunk)}, {m_acc}, {n}, {model:.4f}, {value:.4f}, {se:.4f}")


def _knee(n: int, chunk: int | None, rounding: str, max_lost: float) -> int | None:
    """``min_mantissa_bits``, or None when even MAX_MANTISSA bits lose more than
    ``max_lost`` product variances."""
    if variance_lost(n, MAX_MANTISSA, chunk=chunk, rounding=rounding) > max_lost:
        return None
    return min_mantissa_bits(n, chunk=chunk, rounding=rounding, max_lost=max_lost)


def _check_budget(budget: int | None, optional: bool) -> None:
    """``budget``: MACs per measured point, an integer >= 1 (or None when ``optional``)."""
    if not (optional and budget is None) and not is_integer(budget, 1):
        raise ValueError(f"budget: expected a positive number of MACs per measured point, "
                         f"got {budget!r}")


def vrr_figure(budget: int = 50_000_000, bits: Sequence[int] = BITS,
               panels: Sequence[tuple[str, int | None]] = PANELS,
               log: Log | None = None) -> Figure:
    """The figure of ``plot_vrr``."""
    _check_budget(budget, optional=False)
    _check_panels(panels)
    fig = Figure(figsize=(5 * len(panels), 5), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    lengths = 2 ** np.arange(4, 21)
    measured_at = 4 ** np.arange(2, 11)
    if log is not None:
        log("panel, m_acc, n, model VRR, measured VRR, standard error")
    for ax, (rounding, chunk) in zip(axes, panels):
        for colour, m_acc in zip(_colours(len(bits)), bits):
            ns = [int(n) for n in lengths if chunk is None or n >= chunk]
            ax.plot(ns, [vrr(n, m_acc, chunk=chunk, rounding=rounding) for n in ns],
                    color=colour, label=f"e8m{m_acc}")
            for n in (int(n) for n in measured_at if chunk is None or n >= chunk):
                _measure(ax, n, n, m_acc, rounding, chunk, budget, colour, log)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("accumulation length n (products)")
        ax.set_title(_title(rounding, chunk))
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("VRR = Var(computed sum) / Var(exact sum)")
    axes[0].set_ylim(-0.03, 1.05)
    axes[-1].legend(title="accumulator", fontsize=8)
    fig.suptitle("Variance retention of i.i.d. Gaussian products (FP32) accumulated in e8m{M}: "
                 "model (lines) vs MAC engine (markers, ±2 standard errors)")
    return fig


def plot_vrr(path: str | Path, budget: int = 50_000_000, bits: Sequence[int] = BITS,
             panels: Sequence[tuple[str, int | None]] = PANELS, log: Log | None = None
             ) -> Path:
    """Modelled (``vrr``, lines) against measured (``measured_vrr``, markers with two
    standard errors) variance retention ratio (dimensionless) over accumulation lengths
    n = 16 .. 2^20 products, one line per accumulator e8m{M} for M in ``bits``, one panel
    per (rounding, chunk) of ``panels``; measured at n = 16 .. 4^10 with ``budget`` MACs
    per point (at least 256 sums). ``log`` (e.g. ``print``) gets a CSV line per measured
    point. docs/vrr.png is this figure (minutes on two cores). Returns the path written."""
    check_figure_path(path)
    return save(vrr_figure(budget, bits, panels, log), path)


def vrr_knee_figure(lengths: Sequence[int] = LENGTHS,
                    panels: Sequence[tuple[str, int | None]] = PANELS,
                    max_lost: float = LOST_CUTOFF, budget: int | None = None,
                    log: Log | None = None) -> Figure:
    """The figure of ``plot_vrr_knee``."""
    if not lengths or not all(is_integer(n, 2) for n in lengths):
        raise ValueError(f"lengths: expected one or more integers >= 2 (products per sum), "
                         f"got {lengths!r:.80}")
    _check_panels(panels)
    _check_budget(budget, optional=True)
    if not (is_real(max_lost) and max_lost > 0):
        raise ValueError(f"max_lost: expected a positive number of product variances, got "
                         f"{max_lost!r}")
    for rounding, chunk in panels:
        bad = [n for n in lengths if chunk is not None and n % chunk]
        if bad:
            raise ValueError(f"lengths: {bad[0]} is not a multiple of the chunk {chunk} of "
                             f"the panel {_title(rounding, chunk)!r}")
    fig = Figure(figsize=(5 * len(panels), 8.5), layout="constrained")
    top, bottom = fig.subplots(2, len(panels), sharex="col", sharey="row", squeeze=False)
    for ax, low, (rounding, chunk) in zip(top, bottom, panels):
        _knee_column(ax, low, rounding, chunk, lengths, max_lost, budget, log)
    top[0].set_ylabel("VRR = Var(computed sum) / Var(exact sum)")
    top[0].set_ylim(-0.03, 1.05)
    bottom[0].set_ylabel("variance lost n (1 - VRR)\n(product variances, log; ≤ 0 not drawn)")
    measured = "" if budget is None else "; markers: MAC engine, ±2 standard errors"
    fig.suptitle(f"Variance retention against accumulator bits (model, i.i.d. Gaussian "
                 f"products); ★ knee: fewest bits losing at most {max_lost:.3g} product "
                 f"variances{measured}")
    return fig


def _knee_column(ax: Axes, low: Axes, rounding: str, chunk: int | None,
                 lengths: Sequence[int], max_lost: float, budget: int | None,
                 log: Log | None) -> None:
    """One (rounding, chunk) column of ``plot_vrr_knee``: for each length, the modelled VRR
    on ``ax`` and the variance lost (product variances) on ``low`` against the fraction bits
    M, from 1 to the largest knee + KNEE_MARGIN (MAX_MANTISSA if a length has no knee), knees
    marked and, with a ``budget``, measured around; the cut-off ``max_lost`` on ``low``."""
    knees = [_knee(n, chunk, rounding, max_lost) for n in lengths]
    last = MAX_MANTISSA if None in knees else max(knees) + KNEE_MARGIN
    bits = np.arange(1, min(MAX_MANTISSA, last) + 1)
    for colour, n, knee in zip(_colours(len(lengths)), lengths, knees):
        _knee_curves(ax, low, bits, n, knee, rounding, chunk, colour)
        if knee is not None and budget is not None:
            for b in range(max(1, knee - 3), knee + 2):
                _measure(ax, b, n, b, rounding, chunk, budget, colour, log)
    ax.set_title(_title(rounding, chunk))
    ax.legend(fontsize=8, loc="lower right")
    low.axhline(max_lost, color="black", linestyle="--", linewidth=1,
                label=f"cut-off: {max_lost:.3g} product variances")
    low.set(xlabel="accumulator fraction bits M (e8m{M})", yscale="log")
    low.xaxis.set_major_locator(MaxNLocator(integer=True))
    low.legend(fontsize=8, loc="upper right")
    for a in (ax, low):
        a.grid(True, alpha=0.3)


def _knee_curves(ax: Axes, low: Axes, bits: np.ndarray, n: int, knee: int | None,
                 rounding: str, chunk: int | None, colour) -> None:
    """Length ``n``'s modelled VRR (dimensionless) on ``ax`` and variance lost, n (1 - VRR)
    in product variances, on ``low`` (values <= 0 not drawn), against the fraction bits
    ``bits``; its ``knee`` (bits, or None) as a star and a dotted line on both."""
    power = math.log2(n)
    name = f"2^{int(power)}" if power.is_integer() else f"{n:,}"
    values = np.array([vrr(n, int(b), chunk=chunk, rounding=rounding) for b in bits])
    lost = n * (1.0 - values)                 # variance_lost, product variances
    found = (f"knee: {knee} bits" if knee is not None
             else f"no knee up to {MAX_MANTISSA} bits")
    ax.plot(bits, values, color=colour, label=f"n = {name} ({found})")
    low.plot(bits, np.where(lost > 0, lost, np.nan), color=colour)
    if knee is None:
        return
    for a, y in ((ax, values), (low, lost)):
        a.axvline(knee, color=colour, linestyle=":", linewidth=1)
        a.plot([knee], [y[knee - 1]], marker="*", ms=12, color=colour, linestyle="",
               gid=f"knee:{n}" if a is ax else None)


def plot_vrr_knee(path: str | Path, lengths: Sequence[int] = LENGTHS,
                  panels: Sequence[tuple[str, int | None]] = PANELS,
                  max_lost: float = LOST_CUTOFF, budget: int | None = None,
                  log: Log | None = None) -> Path:
    """Modelled variance retention ratio (``vrr``, dimensionless; top) and the variance it
    loses, n (1 - VRR) in product variances (log; bottom, with the cut-off), against the
    accumulator's fraction bits M (1 up to the largest knee + 4, or to 52 if a length
    has no knee: even 52 bits lose more), one line per
    accumulation length n in ``lengths`` (products per sum), one column per (rounding,
    chunk) of ``panels``; a star and a dotted line mark each knee,
    ``min_mantissa_bits(n, max_lost=...)``: the fewest bits losing at most ``max_lost``
    product variances (default ln 50, Sakr et al.). ``budget``: also measure VRR with the
    MAC engine around each knee (``budget`` MACs per point; slow), ``log`` as in
    ``plot_vrr``. Returns the path written."""
    check_figure_path(path)
    return save(vrr_knee_figure(lengths, panels, max_lost, budget, log), path)
