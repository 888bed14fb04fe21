"""Analyses of a finished ``hbfpsim train`` output folder.

``wasserstein``: how far each variant's weights, activations and weight gradients drift from
the reference's (FP32) over training: the Wasserstein-1 distance between the value samples
``probes/VARIANT/seedS/epochEEE.npz`` hold (the same sample positions in every run of a
task), per layer, seed and epoch; ``write_wasserstein`` its CSV and figure.

Loss landscapes are in ``hbfpsim.train.landscape``.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.stats import wasserstein_distance

from hbfpsim.palette import format_colour
from hbfpsim.staging import as_path, staged_file

KINDS = ("weight", "activation", "gradient")
_SEED = re.compile(r"seed(\d+)")
_EPOCH = re.compile(r"epoch(\d+)\.npz")


def wasserstein(out: str | Path, reference: str = "fp32") -> list[dict]:
    """Wasserstein-1 distances (in the values' own units) between every variant's probe
    samples and the reference's, for each seed folder both have, each epoch file both have
    and each ``LAYER/KIND`` array both files hold. Rows {"variant", "seed", "epoch",
    "layer", "kind" (activation | weight | gradient), "distance"}, by variant name, seed,
    epoch, then the variant file's order; ``distance`` is nan where either sample holds a
    non-finite value (a diverged run). Only regular files named ``epochEEE.npz`` in folders
    named ``seedS`` are read."""
    out = as_path(out, "wasserstein: out")
    if not isinstance(reference, str) or not reference or reference in (".", "..") \
            or "/" in reference or "\\" in reference:
        raise ValueError(f"reference: expected a variant name, got {reference!r:.80}")
    probes = out / "probes"
    ref_dir = probes / reference
    if not ref_dir.is_dir():
        raise ValueError(f"{ref_dir}: no probes of the reference variant {reference!r} "
                         "(train it in this run, or choose another reference)")
    rows = []
    for variant_dir in sorted(probes.iterdir()):
        if variant_dir.name == reference or variant_dir.name.startswith(".") or \
                not variant_dir.is_dir():
            continue
        for seed, seed_dir in _numbered(variant_dir, _SEED, folders=True):
            ref_files = {p.name: p for _, p in
                         _numbered(ref_dir / seed_dir.name, _EPOCH, folders=False)}
            for epoch, path in _numbered(seed_dir, _EPOCH, folders=False):
                if path.name not in ref_files:
                    continue
                mine, ref = _arrays(path), _arrays(ref_files[path.name])
                for key, values in mine.items():
                    if key not in ref:
                        continue
                    layer, _, kind = key.rpartition("/")
                    rows.append({"variant": variant_dir.name, "seed": seed, "epoch": epoch,
                                 "layer": layer, "kind": kind,
                                 "distance": _distance(values, ref[key])})
    return rows


def _numbered(folder: Path, pattern: re.Pattern, folders: bool) -> list[tuple[int, Path]]:
    """(number, path) of the entries of ``folder`` whose whole name matches ``pattern``
    (folders, or regular files), by number; none when ``folder`` is not a folder."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        match = pattern.fullmatch(p.name)
        if match and (p.is_dir() if folders else p.is_file()):
            found.append((int(match[1]), p))
    return sorted(found, key=lambda item: (item[0], item[1].name))


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """The ``LAYER/KIND`` arrays of one probe file, flattened to float64."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as err:       # numpy raises many kinds for a damaged or foreign file
        raise ValueError(f"{path}: not a readable probe file ({type(err).__name__})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a probe file (an .npz archive of arrays)")
    arrays = {}
    with npz:
        for key in npz.files:
            layer, _, kind = key.rpartition("/")
            if kind not in KINDS or not layer:
                continue
            try:
                values = npz[key]
            except Exception as err:   # a damaged member, an object array (no pickles)
                raise ValueError(f"{path}: {key}: not readable ({type(err).__name__})") \
                    from None
            if values.dtype.kind not in "biuf" or values.size == 0:
                raise ValueError(f"{path}: {key}: expected a non-empty real array, got "
                                 f"{values.dtype} of {values.size} values")
            arrays[key] = values.astype(np.float64).ravel()
    return arrays


def _distance(x: np.ndarray, y: np.ndarray) -> float:
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    return float(wasserstein_distance(x, y))


def write_wasserstein(rows: list[dict], out: str | Path, reference: str = "fp32"
                      ) -> list[Path]:
    """``wasserstein.csv`` (the rows) and ``wasserstein.png`` (weights, activations,
    gradients: per variant and epoch the mean distance over layers and seeds, log scale; an
    epoch with a nan distance leaves a gap) in the folder ``out``. Returns the paths."""
    out = as_path(out, "write_wasserstein: out")
    csv_path, png_path = out / "wasserstein.csv", out / "wasserstein.png"
    with staged_file(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seed", "epoch", "layer", "kind", "distance"])
        for r in rows:
            w.writerow([r["variant"], r["seed"], r["epoch"], r["layer"], r["kind"],
                        f"{r['distance']:.9g}"])
    fig = Figure(figsize=(13, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(KINDS))
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for ax, kind in zip(axes, KINDS):
        for name in names:
            by_epoch: dict[int, list[float]] = {}
            for r in rows:
                if r["variant"] == name and r["kind"] == kind:
                    by_epoch.setdefault(r["epoch"], []).append(r["distance"])
            epochs = sorted(by_epoch)
            ax.plot([e + 1 for e in epochs], [float(np.mean(by_epoch[e])) for e in epochs],
                    marker="o", markersize=3, color=format_colour(name), label=name)
        ax.set(title=f"{kind}s", xlabel="epoch (1 = after the first)", yscale="log",
               ylabel=f"Wasserstein-1 distance to {reference.upper()} (value units)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if not names:
            ax.text(0.5, 0.5, f"no variant to compare with {reference}", ha="center",
                    va="center", transform=ax.transAxes)
    if names:
        axes[0].legend(fontsize=8)
    fig.suptitle("probe values of each variant against the reference "
                 "(mean over layers and seeds)", fontsize=9)
    with staged_file(png_path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    return [csv_path, png_path]


__all__ = ["wasserstein", "write_wasserstein"]
