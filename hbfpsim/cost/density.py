"""Arithmetic density: MAC/s per um^2, relative to FP32 at the same clock.

At equal clock every MAC unit does one MAC per cycle, so the density of a format relative to
FP32 is ``area(FP32 MAC) / area(its MAC)`` (``mac.mac_cost``, accumulator included). The
Accuracy Booster mix runs a fraction of the operations in HBFP6 and the rest in HBFP4: its
area-time per MAC is the operations-weighted mean of the two, so its density is the weighted
harmonic mean of theirs.
"""

from __future__ import annotations

import math

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hbfpsim.cost.mac import mac_cost
from hbfpsim.formats import get
from hbfpsim.mac import Accumulator

BASELINE = "fp32"
FORMATS = ("fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int8", "mxfp8_e4m3", "mxfp8_e5m2",
           "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8", "hbfp8", "hbfp6", "hbfp4")
BOOSTER = {"hbfp4": 0.99, "hbfp6": 0.01}   # Accuracy Booster: >= 99 % of MACs in HBFP4
SWEEP_FORMATS = ("hbfp4", "hbfp6", "hbfp8", "mxfp4", "mxfp6_e2m3", "int8")
SWEEP_WIDTHS = tuple(range(8, 33, 2))


@dataclass(frozen=True)
class DensityRow:
    """One format: its accumulator, um^2 and pJ per MAC, storage bits per element and
    density relative to FP32 (MAC/s per um^2 over FP32's)."""

    format: str
    accumulator: str
    area: float
    energy: float
    storage_bits: float
    density: float


def density_table(formats: Iterable[str] = FORMATS,
                  accumulators: Mapping[str, str | Accumulator] | None = None,
                  booster: Mapping[str, float] | None = BOOSTER) -> list[DensityRow]:
    """A row per format (accumulator from ``accumulators`` by format name, else the default),
    then, unless ``booster`` is None, the Accuracy Booster mix of ``booster``'s formats
    weighted by their share of the MACs."""
    formats = list(formats)
    accumulators = {get(name).name: acc for name, acc in (accumulators or {}).items()}
    shown = {get(name).name for name in [BASELINE, *formats, *(booster or {})]}
    unused = sorted(set(accumulators) - shown)
    if unused:
        raise ValueError(f"an accumulator is given for {unused[0]}, which is not in the table "
                         f"(formats: {', '.join(sorted(shown))})")
    base = mac_cost(BASELINE, accumulators.get(get(BASELINE).name)).area

    def row(name: str) -> DensityRow:
        fmt = get(name)
        mac = mac_cost(fmt, accumulators.get(fmt.name))
        return DensityRow(fmt.name, str(mac.accumulator), mac.area, mac.energy,
                          fmt.storage_bits, base / mac.area)

    rows = [row(name) for name in formats]
    if booster:
        if not all(0 <= v <= 1 for v in booster.values()) or abs(sum(booster.values()) - 1) > 1e-9:
            raise ValueError(f"booster shares must be >= 0 and sum to 1, got {dict(booster)}")
        parts = [(row(name), share) for name, share in booster.items()]
        density = mixed_density((r.density, s) for r, s in parts)
        rows.append(DensityRow(
            "booster " + " + ".join(f"{100 * s:g}% {name}" for name, s in booster.items()),
            "/".join(r.accumulator for r, _ in parts), base / density,
            sum(r.energy * s for r, s in parts), sum(r.storage_bits * s for r, s in parts),
            density))
    return rows


def mixed_density(parts: Iterable[tuple[float, float]]) -> float:
    """Density of a mix of MACs run on different units, from (density, MACs or share) pairs:
    the area-time per MAC is the MAC-weighted mean of the units', so the density is the
    MAC-weighted harmonic mean of theirs."""
    parts = list(parts)
    good = all(math.isfinite(d) and d > 0 and math.isfinite(w) and w >= 0 for d, w in parts)
    parts = [(d, w) for d, w in parts if w]
    if not good or not parts:
        raise ValueError(f"mixed_density needs finite positive densities and weights >= 0, "
                         f"not all 0, got {parts}")
    return sum(w for _, w in parts) / sum(w / d for d, w in parts)


def width_sweep(formats: Iterable[str] = SWEEP_FORMATS,
                widths: Iterable[int] = SWEEP_WIDTHS) -> dict[str, list[tuple[int, float]]]:
    """Density relative to FP32 (default accumulator) of each fixed-point-accumulating format
    with a ``fixed{w}`` accumulator, for every w in ``widths``."""
    base = mac_cost(BASELINE).area
    return {get(name).name: [(w, base / mac_cost(name, f"fixed{w}").area) for w in widths]
            for name in formats}
