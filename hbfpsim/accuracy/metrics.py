"""How far a hardware GEMM result is from the exact product.

The reference is the float64 product of the float32 operands: every product of two float32
values is exact in float64 (24 + 24 significant bits <= 53), and a K-long float64 sum in any
order is within ``(K - 1) u / (1 - (K - 1) u) * sum |a_i b_i|`` of the exact sum, u = 2^-53
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 4.4): for K = 2^20 a
relative error below 1.2e-10 of the sum of magnitudes, far below any format studied here.

Metrics, over the outputs evaluated (``hw`` the hardware result, ``x`` the reference):

- ``rel_error``: ||hw - x||_F / ||x||_F (Frobenius norms);
- ``sqnr_db``: 10 log10(sum x^2 / sum (hw - x)^2), signal to quantization noise in dB;
- ``max_abs_error``: max |hw - x|;
- ``w1``: Wasserstein-1 distance between the value distributions of hw and x, in the
  outputs' units. For two samples of equal size with equal weights it is the mean absolute
  difference of their sorted values, which is what is computed here (the same number as
  ``scipy.stats.wasserstein_distance``, which the tests check, several times faster);
- ``vrr``: variance retained, Var(hw) / Var(x) (Sakr et al. 2019 measure swamping by it).

Large GEMMs are evaluated on a sample of outputs (``choose``): a seeded, deterministic choice
of rows and columns (and batch entries), so the sample is a grid of whole rows x columns and
its hardware result is exactly the full GEMM's at those places. The standard error of every
metric of a sample comes from a bootstrap that resamples rows and columns independently with
replacement (the "pigeonhole" bootstrap for crossed data, Owen 2007), which accounts for
outputs of one row sharing an operand row. A complete evaluation has no sampling error: its
standard errors are 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

METRICS = ("rel_error", "sqnr_db", "max_abs_error", "w1", "vrr")
RESAMPLES = 64          # bootstrap resamples for standard errors


@dataclass(frozen=True)
class Sample:
    """The outputs evaluated: batch entries x rows x columns (sorted index arrays)."""

    batches: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    total: int          # outputs of the whole record (count x M x N)

    @property
    def size(self) -> int:
        """Outputs evaluated."""
        return len(self.batches) * len(self.rows) * len(self.cols)

    @property
    def complete(self) -> bool:
        return self.size == self.total


def choose(m: int, n: int, k: int, count: int = 1, *, max_outputs: int = 16384,
           max_macs: int = 2**26, seed: int = 0, key: int = 0,
           anchor: tuple[int, int] | None = None) -> Sample:
    """Outputs to evaluate for ``count`` GEMMs of M x K by K x N: all of them when they fit
    both budgets (``max_outputs`` outputs, ``max_macs`` multiply-accumulates), else a grid of
    about as many rows as columns, drawn without replacement by a generator seeded with
    (``seed``, ``key``), so the same run samples the same outputs on any machine. ``anchor``
    (row, column) is always included: per-tensor scaled formats need the row and column that
    hold their operands' largest magnitude, so the sample quantizes as the whole does."""
    for name, value, low in (("m", m, 1), ("n", n, 1), ("k", k, 1), ("count", count, 1),
                             ("max_outputs", max_outputs, 1), ("max_macs", max_macs, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    total = count * m * n
    budget = min(total, max_outputs, max(1, max_macs // k))
    rng = np.random.default_rng(np.random.SeedSequence([seed, key]))
    if budget >= m * n:
        batches = min(count, budget // (m * n))
        return Sample(_pick(rng, count, batches, None), np.arange(m), np.arange(n), total)
    rows = min(m, max(1, math.isqrt(budget)))
    cols = min(n, max(1, budget // rows))
    rows = min(m, max(1, budget // cols))
    r, c = anchor if anchor is not None else (None, None)
    return Sample(_pick(rng, count, 1, None), _pick(rng, m, rows, r), _pick(rng, n, cols, c),
                  total)


def _pick(rng: np.random.Generator, size: int, chosen: int, keep: int | None) -> np.ndarray:
    if chosen >= size:
        return np.arange(size)
    picked = rng.choice(size, chosen, replace=False)
    if keep is not None and keep not in picked:
        picked[0] = keep
    return np.sort(picked)


@dataclass(frozen=True)
class Accuracy:
    """Metrics of one record's evaluated outputs (see the module docstring), their bootstrap
    standard errors (``se``, by metric name; 0 for a complete evaluation) and the MAC
    engine's event counts over those outputs, summed over the plan's levels."""

    sampled: int
    complete: bool
    rel_error: float
    sqnr_db: float
    max_abs_error: float
    w1: float
    vrr: float
    se: dict[str, float]
    overflows: int = 0
    full_swamps: int = 0
    partial_swamps: int = 0


def exact_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The reference: float64 product of the operands (see the module docstring's bound)."""
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)


def metrics(hw: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """The five metrics of ``hw`` against ``exact`` (same shape, any number of outputs)."""
    hw, exact = np.asarray(hw, np.float64).ravel(), np.asarray(exact, np.float64).ravel()
    if hw.shape != exact.shape or hw.size == 0:
        raise ValueError(f"metrics need two non-empty arrays of one shape, got {hw.shape} "
                         f"and {exact.shape}")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        err = hw - exact
        noise, signal = float(np.sum(err * err)), float(np.sum(exact * exact))
        finite = bool(np.isfinite(hw).all())
        var = float(np.var(exact))
        return {
            "rel_error": _ratio(math.sqrt(noise), math.sqrt(signal)),
            "sqnr_db": _decibels(signal, noise),
            "max_abs_error": float(np.max(np.abs(err))),
            "w1": float(np.mean(np.abs(np.sort(hw) - np.sort(exact)))) if finite else math.inf,
            "vrr": _ratio(float(np.var(hw)), var, both_zero=1.0) if finite else math.nan,
        }


def _decibels(signal: float, noise: float) -> float:
    """10 log10(signal / noise): +inf for no noise, -inf for no signal or infinite noise."""
    if noise == 0:
        return math.inf
    ratio = signal / noise
    return 10 * math.log10(ratio) if ratio > 0 else -math.inf


def _ratio(num: float, den: float, both_zero: float = 0.0) -> float:
    if den == 0:
        return both_zero if num == 0 else math.inf
    return num / den


def evaluate(hw: np.ndarray, exact: np.ndarray, *, complete: bool, seed: int = 0,
             counts: dict[str, int] | None = None) -> Accuracy:
    """Metrics of the evaluated outputs, shaped (rows, cols) or (batches, rows, cols); when
    they are a sample (``complete=False``), bootstrap standard errors with a generator seeded
    by ``seed``. ``counts``: the MAC engine's overflows / full_swamps / partial_swamps."""
    hw, exact = np.asarray(hw, np.float64), np.asarray(exact, np.float64)
    if hw.ndim == 3:
        hw, exact = hw.reshape(-1, hw.shape[-1]), exact.reshape(-1, exact.shape[-1])
    values = metrics(hw, exact)
    se = dict.fromkeys(METRICS, 0.0)
    if not complete:
        rng = np.random.default_rng(seed)
        rows = rng.multinomial(hw.shape[0], np.full(hw.shape[0], 1 / hw.shape[0]), RESAMPLES)
        cols = rng.multinomial(hw.shape[1], np.full(hw.shape[1], 1 / hw.shape[1]), RESAMPLES)
        draws = resampled_metrics(hw, exact, rows, cols)
        with np.errstate(invalid="ignore"):
            se = {name: float(np.std(v, ddof=1)) for name, v in draws.items()}
    return Accuracy(hw.size, complete, **values, se=se, **(counts or {}))


def resampled_metrics(hw: np.ndarray, exact: np.ndarray, row_counts: np.ndarray,
                      col_counts: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics of bootstrap resamples of (rows, cols) grids ``hw`` and ``exact``, each
    resample given by how many times it draws each row and column ((B, rows), (B, cols)):
    the same values as ``metrics`` on the resampled grids, computed as weighted sums over the
    original outputs (weight = row count x column count) without building the grids: a
    weighted sum of a grid V is r V c for the counts r, c. W1 of two weighted distributions
    is the integral of the difference of their CDFs, summed over the gaps of the merged
    sorted values (sorted once for all resamples) by ``_w1_and_peak``."""
    n_rows, n_cols = hw.shape
    h, x = hw.ravel(), exact.ravel()
    size = h.size
    if not np.isfinite(h).all():
        return {name: np.full(len(row_counts), np.nan) for name in METRICS}
    r, c = row_counts.astype(np.float64), col_counts.astype(np.float64)

    def weighted(v: np.ndarray) -> np.ndarray:
        return np.sum((r @ v.reshape(n_rows, n_cols)) * c, axis=1)

    h0, x0 = h - h.mean(), x - x.mean()          # centred: no cancellation in the variances
    err = h - x
    total = r.sum(axis=1) * c.sum(axis=1)
    noise, signal = weighted(err * err), weighted(x * x)
    var_h = weighted(h0 * h0) / total - (weighted(h0) / total) ** 2
    var_x = weighted(x0 * x0) / total - (weighted(x0) / total) ** 2
    values = np.concatenate([h, x])
    order = np.argsort(values)        # ties have no gap between them: any order of them
    where = order % size
    w1, peak = np.zeros(len(r)), np.zeros(len(r))
    _w1_and_peak(np.ascontiguousarray(r.T), np.ascontiguousarray(c.T), where // n_cols,
                 where % n_cols, order < size, np.diff(values[order]),
                 np.abs(err).reshape(n_rows, n_cols), w1, peak)
    with np.errstate(divide="ignore", invalid="ignore"):   # degenerate resamples: nan
        return {"rel_error": np.sqrt(noise / signal),
                "sqnr_db": np.where(noise == 0, np.inf, 10 * np.log10(signal / noise)),
                "max_abs_error": peak, "w1": w1 / total, "vrr": var_h / var_x}


@njit(cache=True)
def _w1_and_peak(row_counts, col_counts, row_of, col_of, from_hw, gaps, abs_err, w1, peak):
    """Per resample b, for counts given per row and column ((rows, B) and (cols, B), as
    float64: exact integers): ``w1[b]`` += the sum over the merged sorted values s of |CDF
    difference after s| x gap s (not yet divided by the weights' total; the differences
    are integers, summed exactly), and ``peak[b]``, the largest |error| among outputs drawn
    (``peak`` starts at 0). The value at sorted place s belongs to output (row_of[s],
    col_of[s]) of hw (``from_hw``) or of the reference. The inner loops run over the
    resamples, so they vectorize."""
    n_rows, n_cols = abs_err.shape
    resamples = w1.size
    difference = np.zeros(resamples)
    for s in range(gaps.size):
        rows, cols = row_counts[row_of[s]], col_counts[col_of[s]]
        sign = 1.0 if from_hw[s] else -1.0
        gap = gaps[s]
        for b in range(resamples):
            difference[b] += sign * rows[b] * cols[b]
            w1[b] += abs(difference[b]) * gap
    for i in range(n_rows):
        rows = row_counts[i]
        for j in range(n_cols):
            e, cols = abs_err[i, j], col_counts[j]
            for b in range(resamples):
                peak[b] = max(peak[b], e if rows[b] * cols[b] > 0 else 0.0)


__all__ = ["METRICS", "Accuracy", "Sample", "choose", "evaluate", "exact_product", "metrics",
           "resampled_metrics"]
