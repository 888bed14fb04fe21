"""The summary of a run: per variant x array x trace x phase (and ``all`` phases).

Totals add up (MACs, cycles, stall cycles, seconds, pJ, event counts); utilization is the
MAC-weighted one, MACs / (cycles x R x C); density is the mix of the records' over the
training run the trace samples (``cost.mixed_density`` weighted by MACs x the epochs each
record stands for), so a schedule's last-epoch rule weighs one epoch, not one captured epoch; accuracy metrics are medians over the records evaluated (None when
none was), since one long outlier GEMM should not hide what most GEMMs do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from hbfpsim.cost import mixed_density
from hbfpsim.replay.record import EVENTS, Row

ALL = "all"
TOTALS = ("macs", "cycles", "stall_cycles", "seconds", "energy_pj", "compute_pj", "sram_pj",
          "dram_pj")
MEDIANS = ("sqnr_db", "w1", "rel_error", "vrr")


def summarize(rows: Sequence[Row], arrays: dict[str, tuple[int, int]]) -> list[dict]:
    """One dict per (variant, array, trace, phase), phases in trace order then ``all``."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        for phase in (row.phase, ALL):
            groups.setdefault((row.variant, row.array, row.trace, phase), []).append(row)
    order = {p: i for i, p in enumerate(("fwd", "bwd_data", "bwd_weight", ALL))}
    first = {}                      # run order of variant, array, trace: tables keep it
    for row in rows:
        first.setdefault((row.variant, row.array, row.trace), len(first))
    keys = sorted(groups, key=lambda key: (first[key[:3]], order[key[3]]))
    return [_summary(key, groups[key], arrays[key[1]]) for key in keys]


def totals(rows: Sequence[Row], shape: tuple[int, int]) -> dict:
    """The ``all``-phases summary of ``rows`` (any mix of traces) on an R x C array,
    without the naming fields (variant, array, trace, phase)."""
    out = _summary(("", "", "", ALL), list(rows), shape)
    for name in ("variant", "array", "trace", "phase"):
        del out[name]
    return out


def _summary(key: tuple, rows: list[Row], shape: tuple[int, int]) -> dict:
    variant, array, trace, phase = key
    out = {"variant": variant, "array": array, "trace": trace, "phase": phase,
           "records": len(rows), "gemms": sum(r.count for r in rows)}
    out.update({name: sum(getattr(r, name) for r in rows) for name in TOTALS})
    out["stall_share"] = out["stall_cycles"] / out["cycles"]
    out["utilization"] = out["macs"] / (out["cycles"] * shape[0] * shape[1])
    out["density"] = mixed_density((r.density, r.macs * r.epochs) for r in rows)
    evaluated = [r for r in rows if r.sampled is not None]
    out["evaluated"] = len(evaluated)
    out["synthetic"] = ",".join(sorted({r.synthetic for r in rows if r.synthetic}))
    for name in MEDIANS:
        out[f"{name}_median"] = _median(getattr(r, name) for r in evaluated)
    for name in EVENTS:
        out[name] = sum(getattr(r, name) for r in evaluated) if evaluated else None
    return out


def _median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.median(values)) if values else None
