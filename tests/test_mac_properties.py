"""MAC engine properties: reference loops, exact sums, the fast path's boundary, stochastic
rounding's reproducibility and bias."""

import numba
import numpy as np
import pytest

from hbfpsim.mac import AccumulationPlan, matmul


def float32_loop(a, b):
    """s = f32(s + f32(a * b)), one product at a time: hardware without FMA."""
    out = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for k in range(a.shape[1]):
        out = (out + (a[:, k:k + 1] * b[k:k + 1, :]).astype(np.float32)).astype(np.float32)
    return out


def test_unfused_fp32_equals_the_float32_loop():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((5, 300)) * np.ldexp(1.0, rng.integers(-20, 20, (5, 300))))
    b = rng.standard_normal((300, 7)).astype(np.float32)
    a = a.astype(np.float32)
    got, stats = matmul(a, b, "fp32", plan=AccumulationPlan.parse("fp32", fused=False))
    assert np.array_equal(got, float32_loop(a, b).astype(np.float64))
    assert stats.levels[0].inexact_conversions > 0      # products were rounded first
    fused, _ = matmul(a, b, "fp32", plan="fp32")
    assert not np.array_equal(fused, got)                # and fusing changes bits


def test_e11m52_sums_small_integers_exactly():
    rng = np.random.default_rng(1)
    a = rng.integers(-1000, 1000, (4, 500))
    b = rng.integers(-1000, 1000, (500, 6))
    got, stats = matmul(a.astype(np.float64), b.astype(np.float64), "fp32", plan="e11m52")
    assert np.array_equal(got, (a @ b).astype(np.float64))
    assert stats.levels[0].inexact == 0


def test_float64_accumulation_of_float64_products_is_the_sequential_float64_loop():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 200)).astype(np.float32)
    b = rng.standard_normal((200, 4)).astype(np.float32)
    want = np.zeros((3, 4))
    for k in range(200):
        want = want + a[:, k:k + 1].astype(np.float64) * b[k:k + 1, :]
    assert np.array_equal(matmul(a, b, "fp32", plan="e11m52").out, want)


def counts(stats):
    return [(lv.inexact, lv.partial_swamps, lv.full_swamps, lv.overflows,
             lv.inexact_conversions) for lv in stats.levels]


@pytest.mark.parametrize("k,fast,overflows", [(42799, True, 0), (42800, False, 4)])
def test_fast_path_exactly_at_the_overflow_bound(k, fast, overflows):
    """HBFP4 elements of 0.875 are k = 7 (E = 0, step 1/8), so every product is 49 and the
    bound is 49 K. 49 x 42799 = 2^21 - 1 is exactly fixed22's max: provably safe, BLAS. One
    product more and the bound fails (the last addition of each output really overflows):
    the sequential kernel runs. Either way both paths agree bit for bit."""
    a = np.full((2, k), 0.875)
    b = np.full((k, 2), 0.875)
    fmt = f"hbfp4@{k}"
    out, stats = matmul(a, b, fmt, plan="fixed22")
    slow, slow_stats = matmul(a, b, fmt, plan="fixed22", fast_path=False)
    assert stats.levels[0].fast_path is fast
    assert np.array_equal(out, slow) and counts(stats) == counts(slow_stats)
    assert stats.levels[0].overflows == overflows
    assert out[0, 0] == min(49 * k, 2**21 - 1) * 2.0**-6


@pytest.mark.parametrize("plan", ["fixed13*64 > fp32", "fixed12*64 > fp32",
                                  "fixed12*16 > fixed14*4 > e5m10", "fixed16*32 > e5m10:rtz*2 > fp32"])
def test_fast_path_equals_sequential_on_random_data(plan):
    rng = np.random.default_rng(3)
    for trial in range(3):
        a = rng.standard_normal((5, 64 * rng.integers(1, 5))) * 2.0**rng.integers(-5, 5)
        b = rng.standard_normal((a.shape[1], 4))
        out, stats = matmul(a, b, "hbfp4", plan=plan, stats="element")
        slow, slow_stats = matmul(a, b, "hbfp4", plan=plan, stats="element", fast_path=False)
        assert np.array_equal(out, slow)
        for lv, slow_lv in zip(stats.levels, slow_stats.levels):
            for name in ("inexact", "partial_swamps", "full_swamps", "overflows",
                         "inexact_conversions"):
                assert np.array_equal(getattr(lv, name), getattr(slow_lv, name))


def test_stochastic_accumulation_same_seed_same_bits():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((8, 256)), rng.standard_normal((256, 8))
    plan = "e5m10:stochastic*16 > e8m7:stochastic"
    one = matmul(a, b, "fp8_e4m3", plan=plan, seed=1).out
    assert np.array_equal(one, matmul(a, b, "fp8_e4m3", plan=plan, seed=1).out)
    assert not np.array_equal(one, matmul(a, b, "fp8_e4m3", plan=plan, seed=2).out)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert np.array_equal(one, matmul(a, b, "fp8_e4m3", plan=plan, seed=1).out)
    finally:
        numba.set_num_threads(threads)


def test_stochastic_accumulation_is_unbiased_where_rne_stagnates():
    """512 products of 2^-6 + 2^-9 into an e5m3 register: round-to-nearest swamps the
    addends once the sum passes 2^-6 x 2^4 and stagnates far below the exact sum 9; the
    stochastic sum is unbiased: its mean over 4096 outputs is within 5 standard errors."""
    k = 512
    value = 2.0**-6 + 2.0**-9
    a = np.full((64, k), value, np.float32)
    b = np.ones((k, 64), np.float32)
    exact = k * value
    rne, stats = matmul(a, b, "fp32", plan="e5m3")
    assert rne[0, 0] < exact / 2 and stats.levels[0].full_swamps > 0
    sr = matmul(a, b, "fp32", plan="e5m3:stochastic", seed=8).out
    sem = sr.std() / np.sqrt(sr.size)
    assert abs(sr.mean() - exact) < 5 * sem
    assert sr.std() > 0
