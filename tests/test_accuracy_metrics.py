"""hbfpsim.accuracy.metrics: the five metrics on hand-worked vectors, the seeded output
sample ``choose``, and ``evaluate`` with its bootstrap standard errors.

Oracles: numbers worked by hand (in the comments), ``scipy.stats.wasserstein_distance`` for
W1, and, for the bootstrap, a synthetic population whose metric is computed on every output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from hbfpsim.accuracy import METRICS, Accuracy, Sample, choose, evaluate, metrics

# hw = [1, 2, 3, 4], exact = [1, 2, 2, 5]: err = [0, 0, 1, -1], noise = 2, signal = 34;
# rel_error = sqrt(2/34) = 1/sqrt(17); sqnr = 10 log10(17); max |err| = 1;
# sorted hw [1, 2, 3, 4] vs sorted exact [1, 2, 2, 5]: |0| + |0| + |1| + |-1| = 2, / 4 = 0.5;
# Var(hw) = (2.25 + .25 + .25 + 2.25) / 4 = 1.25, Var(exact) = (2.25 + .25 + .25 + 6.25) / 4
# = 2.25: vrr = 5/9.
HW = np.array([1.0, 2.0, 3.0, 4.0])
EXACT = np.array([1.0, 2.0, 2.0, 5.0])
HAND = {"rel_error": 1 / math.sqrt(17), "sqnr_db": 10 * math.log10(17), "max_abs_error": 1.0,
        "w1": 0.5, "vrr": 5 / 9}


def test_metrics_hand_worked():
    got = metrics(HW, EXACT)
    assert set(got) == set(METRICS)
    for name, value in HAND.items():
        assert got[name] == pytest.approx(value, rel=1e-14), name


def test_metrics_any_shape_is_flattened():
    got = metrics(HW.reshape(2, 2), EXACT.reshape(2, 2))
    for name, value in HAND.items():
        assert got[name] == pytest.approx(value, rel=1e-14), name


def test_metrics_second_hand_example():
    # [1, 2] vs [1, 2.5]: rel = 0.5 / sqrt(1 + 6.25); sqnr = 10 log10(7.25 / 0.25) = 10 log10 29;
    # W1 = (0 + 0.5) / 2; Var(hw) = 0.25, Var(exact) = 0.5625: vrr = 4/9.
    got = metrics(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    assert got["rel_error"] == pytest.approx(0.5 / math.sqrt(7.25), rel=1e-14)
    assert got["sqnr_db"] == pytest.approx(10 * math.log10(29), rel=1e-14)
    assert got["max_abs_error"] == 0.5
    assert got["w1"] == pytest.approx(0.25, rel=1e-14)
    assert got["vrr"] == pytest.approx(4 / 9, rel=1e-14)


def test_w1_ignores_order_other_metrics_do_not():
    # A permutation of the exact values: same distribution (W1 = 0, vrr = 1) but wrong places.
    exact = np.array([1.0, 2.0, 3.0])
    got = metrics(np.array([3.0, 1.0, 2.0]), exact)
    assert got["w1"] == 0.0
    assert got["vrr"] == pytest.approx(1.0, rel=1e-14)
    # err = [2, -1, -1]: noise 6, signal 14
    assert got["rel_error"] == pytest.approx(math.sqrt(6 / 14), rel=1e-14)
    assert got["max_abs_error"] == 2.0


@pytest.mark.parametrize("seed", range(5))
def test_w1_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 3000))
    exact = rng.standard_normal(size) * 3
    hw = exact + rng.laplace(scale=0.2, size=size) + 0.1
    ours = metrics(hw, exact)["w1"]
    assert ours == pytest.approx(wasserstein_distance(hw, exact), rel=1e-9, abs=1e-15)


def test_exact_result():
    x = np.random.default_rng(1).standard_normal((7, 5))
    got = metrics(x, x)
    assert got["sqnr_db"] == math.inf
    assert got["rel_error"] == 0.0
    assert got["max_abs_error"] == 0.0
    assert got["w1"] == 0.0
    assert got["vrr"] == 1.0


def test_exact_constant_result_vrr_is_not_zero():
    for x in (np.array([3.0]), np.array([2.0, 2.0, 2.0])):
        vrr = metrics(x, x)["vrr"]
        assert vrr == 1.0 or math.isnan(vrr)


def test_nan_hw_no_crash():
    got = metrics(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, 3.0]))
    assert got["w1"] == math.inf


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_hw_no_crash(bad):
    got = metrics(np.array([1.0, bad, 3.0]), np.array([1.0, 2.0, 3.0]))
    assert got["w1"] == math.inf
    assert got["rel_error"] == math.inf
    assert got["sqnr_db"] == -math.inf


def test_metrics_rejects_mismatched_or_empty():
    with pytest.raises(ValueError):
        metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        metrics(np.zeros(0), np.zeros(0))


# --- choose -------------------------------------------------------------------------------


def _check_indices(idx: np.ndarray, size: int) -> None:
    assert idx.ndim == 1 and len(idx) >= 1
    assert np.all(np.diff(idx) > 0), "sorted and unique"
    assert idx[0] >= 0 and idx[-1] < size


def test_choose_complete_within_budgets():
    s = choose(10, 20, 30, 2, max_outputs=400, max_macs=400 * 30)
    assert isinstance(s, Sample)
    assert s.complete and s.size == s.total == 400
    assert list(s.batches) == [0, 1]
    assert list(s.rows) == list(range(10)) and list(s.cols) == list(range(20))


@pytest.mark.parametrize("m, n, k, count, max_outputs, max_macs", [
    (1000, 1000, 10, 1, 1000, 2**40),          # outputs bind
    (1000, 1000, 1000, 1, 10**6, 50_000),      # MACs bind: 50 outputs
    (2048, 16, 72, 1, 1000, 2**26),            # narrow N
    (16, 5000, 8, 1, 300, 2**26),              # narrow M
    (50, 40, 8, 5, 5000, 2**26),               # whole entries: 2 of 5
    (50, 40, 8, 5, 1000, 2**26),               # less than one entry
    (7, 9, 10**7, 3, 16384, 1000),             # budget 1 output
    (3, 1, 1, 4, 1, 1),
])
def test_choose_respects_budgets(m, n, k, count, max_outputs, max_macs):
    s = choose(m, n, k, count, max_outputs=max_outputs, max_macs=max_macs, seed=3, key=11)
    budget = min(count * m * n, max_outputs, max(1, max_macs // k))
    assert s.total == count * m * n
    assert 1 <= s.size <= budget
    assert s.size >= budget / 4, "a sample should use most of its budget"
    assert s.size == len(s.batches) * len(s.rows) * len(s.cols)
    assert s.complete == (s.size == s.total)
    for idx, size in ((s.batches, count), (s.rows, m), (s.cols, n)):
        _check_indices(idx, size)


def test_choose_max_macs_alone():
    # K = 1000, max_macs = 12_345: at most 12 outputs
    s = choose(100, 100, 1000, max_outputs=10**6, max_macs=12_345)
    assert 1 <= s.size <= 12 and not s.complete


def test_choose_deterministic_per_seed_and_key():
    args = {"m": 5000, "n": 3000, "k": 64, "count": 4, "max_outputs": 4096}
    a, b = choose(**args, seed=7, key=3), choose(**args, seed=7, key=3)
    for x, y in zip((a.batches, a.rows, a.cols), (b.batches, b.rows, b.cols)):
        np.testing.assert_array_equal(x, y)
    other = choose(**args, seed=7, key=4)
    assert not np.array_equal(a.rows, other.rows) or not np.array_equal(a.cols, other.cols)
    reseeded = choose(**args, seed=8, key=3)
    assert not np.array_equal(a.rows, reseeded.rows)


@pytest.mark.parametrize("seed", range(10))
def test_choose_includes_anchor(seed):
    rng = np.random.default_rng(100 + seed)
    m, n = int(rng.integers(50, 3000)), int(rng.integers(50, 3000))
    anchor = (int(rng.integers(m)), int(rng.integers(n)))
    s = choose(m, n, 32, max_outputs=400, seed=seed, key=seed, anchor=anchor)
    assert not s.complete
    assert anchor[0] in s.rows and anchor[1] in s.cols
    _check_indices(s.rows, m)
    _check_indices(s.cols, n)
    assert s.size <= 400


@pytest.mark.parametrize("bad", [{"m": 0}, {"k": -1}, {"count": 0}, {"max_outputs": 0},
                                 {"max_macs": 0}, {"m": 2.5}])
def test_choose_rejects_bad_arguments(bad):
    args = {"m": 4, "n": 4, "k": 4, "count": 1, "max_outputs": 10, "max_macs": 100} | bad
    with pytest.raises(ValueError):
        choose(**args)


# --- evaluate ------------------------------------------------------------------------------


def test_evaluate_complete_has_zero_se():
    acc = evaluate(HW.reshape(2, 2), EXACT.reshape(2, 2), complete=True,
                   counts={"overflows": 2, "full_swamps": 3, "partial_swamps": 4})
    assert isinstance(acc, Accuracy)
    assert acc.complete and acc.sampled == 4
    assert acc.se == dict.fromkeys(METRICS, 0.0)
    for name, value in HAND.items():
        assert getattr(acc, name) == pytest.approx(value, rel=1e-14), name
    assert (acc.overflows, acc.full_swamps, acc.partial_swamps) == (2, 3, 4)


def test_evaluate_batches_pool_all_outputs():
    rng = np.random.default_rng(5)
    exact = rng.standard_normal((3, 4, 5))
    hw = exact + 0.01 * rng.standard_normal((3, 4, 5))
    acc = evaluate(hw, exact, complete=True)
    err = hw - exact
    assert acc.sampled == 60
    assert acc.rel_error == pytest.approx(np.linalg.norm(err) / np.linalg.norm(exact), rel=1e-12)
    assert acc.sqnr_db == pytest.approx(10 * np.log10(np.sum(exact**2) / np.sum(err**2)),
                                        rel=1e-12)
    assert acc.w1 == pytest.approx(wasserstein_distance(hw.ravel(), exact.ravel()), rel=1e-9)


def test_evaluate_sample_has_positive_se():
    rng = np.random.default_rng(6)
    exact = rng.standard_normal((40, 30))
    hw = exact + 0.05 * rng.standard_normal((40, 30))
    acc = evaluate(hw, exact, complete=False, seed=1)
    assert not acc.complete
    for name in METRICS:
        assert acc.se[name] > 0, name
    again = evaluate(hw, exact, complete=False, seed=1)
    assert again.se == acc.se, "the bootstrap is seeded"


@pytest.fixture(scope="module")
def population():
    """1000 x 1000 outputs with row and column effects in both signal and error, so outputs of
    one row (or column) are correlated: what the crossed bootstrap must account for."""
    rng = np.random.default_rng(2024)
    m = n = 1000
    exact = (rng.standard_normal((m, 1)) * rng.standard_normal((1, n))
             + 0.5 * rng.standard_normal((m, n)))
    row_scale = np.exp(0.5 * rng.standard_normal(m))
    col_scale = np.exp(0.5 * rng.standard_normal(n))
    hw = exact + 0.05 * row_scale[:, None] * col_scale[None, :] * rng.standard_normal((m, n))
    return hw, exact


def test_bootstrap_se_is_of_the_right_order(population):
    """Sample 64 x 64 of the 10^6 outputs with 20 seeds: the population metric (computed on all
    outputs) lies within 4 se of the sample's in at least 19 of 20 samples, and the spread of
    the 20 estimates is within a factor 2 of the mean bootstrap se. (Measured when written:
    20/20 within 4 se; sd / mean se = 0.95 rel_error, 0.97 sqnr_db, 0.62 vrr.)"""
    hw, exact = population
    m, n = hw.shape
    truth = metrics(hw, exact)
    names = ("rel_error", "sqnr_db", "vrr")
    estimates = {name: [] for name in names}
    errors = {name: [] for name in names}
    for seed in range(20):
        s = choose(m, n, 64, max_outputs=4096, seed=seed, key=99)
        assert not s.complete
        at = np.ix_(s.rows, s.cols)
        acc = evaluate(hw[at], exact[at], complete=False, seed=seed)
        for name in names:
            estimates[name].append(getattr(acc, name))
            errors[name].append(acc.se[name])
    for name in names:
        est, se = np.array(estimates[name]), np.array(errors[name])
        assert np.all(se > 0)
        within = int(np.sum(np.abs(est - truth[name]) <= 4 * se))
        assert within >= 19, (name, within)
        ratio = np.std(est, ddof=1) / np.mean(se)
        assert 0.5 <= ratio <= 2.0, (name, ratio)


def test_weighted_resamples_equal_the_metrics_of_the_resampled_grids():
    """The bootstrap computes each resample as weighted sums over the original outputs; the
    oracle builds every resampled grid and calls ``metrics`` on it."""
    from hbfpsim.accuracy.metrics import resampled_metrics

    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 40)) + rng.standard_normal((30, 1))
    hw = np.round(x * 8) / 8                   # a coarse grid: ties in the merged sort order
    rows = rng.multinomial(30, np.full(30, 1 / 30), 6)
    cols = rng.multinomial(40, np.full(40, 1 / 40), 6)
    got = resampled_metrics(hw, x, rows, cols)
    for b in range(6):
        r, c = np.repeat(np.arange(30), rows[b]), np.repeat(np.arange(40), cols[b])
        for name, value in metrics(hw[r][:, c], x[r][:, c]).items():
            assert got[name][b] == pytest.approx(value, rel=1e-12, abs=1e-15), name
