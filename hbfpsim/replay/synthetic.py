"""Synthetic operands for shape-only records: seeded Gaussian, or fitted to a captured trace.

Only the sampled rows of A and columns of B are drawn (``accuracy.choose``), so a shape-only
record of any size costs what its sample costs. ``Gaussian``: independent standard normal
elements. ``Fitted``: per phase and operand, the empirical distribution of a captured trace's
values (pooled over its records), drawn by inverse transform from 1025 quantiles with linear
interpolation; a phase the fit trace lacks uses all its phases pooled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hbfpsim.trace import PHASES, GemmRecord, Trace

QUANTILES = np.linspace(0.0, 1.0, 1025)
VALUES_PER_OPERAND = 65536      # values read from each captured operand for the fit


@dataclass(frozen=True)
class Gaussian:
    """Standard normal elements."""

    label = "gaussian"

    def draw(self, record: GemmRecord, side: str, shape: tuple[int, ...],
             rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)


@dataclass(frozen=True)
class Fitted:
    """Per (phase, side) quantile tables of a captured trace (``side``: "a" or "b")."""

    source: str
    quantiles: dict[tuple[str, str], np.ndarray]

    @property
    def label(self) -> str:
        return f"fitted:{self.source}"

    @classmethod
    def from_trace(cls, trace: Trace) -> Fitted:
        """Quantiles of the trace's operand values, per phase and side."""
        pools: dict[tuple[str, str], list[np.ndarray]] = {}
        for gemm in trace:
            if gemm.a is None:
                continue
            for side, x in (("a", gemm.a), ("b", gemm.b)):
                flat = np.asarray(x).reshape(-1)
                step = max(1, flat.size // VALUES_PER_OPERAND)
                pools.setdefault((gemm.record.phase, side), []).append(
                    np.asarray(flat[::step], np.float64))
        if not pools:
            raise ValueError(f"{trace.path}: a fitted distribution needs a trace with operands")
        table = {key: np.quantile(np.concatenate(v), QUANTILES) for key, v in pools.items()}
        for side in "ab":
            everything = np.concatenate([x for (_, s), v in pools.items() if s == side
                                         for x in v])
            for phase in PHASES:
                table.setdefault((phase, side), np.quantile(everything, QUANTILES))
        return cls(trace.path.name, table)

    def draw(self, record: GemmRecord, side: str, shape: tuple[int, ...],
             rng: np.random.Generator) -> np.ndarray:
        u = rng.random(shape)
        return np.interp(u, QUANTILES, self.quantiles[record.phase, side]).astype(np.float32)


Source = Gaussian | Fitted

__all__ = ["Fitted", "Gaussian", "Source"]
