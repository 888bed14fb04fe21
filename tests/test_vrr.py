"""hbfpsim.accuracy.vrr: the variance-retention model against the MAC engine, its limits
worked by hand, the knee pattern, and the fixed-point widths against brute force.

Tolerances, model vs Monte Carlo (docs/vrr.md has the full comparison):
- round to nearest even, where the model keeps at least 0.9 of the variance:
  |model - measured| <= 0.02 + 3 standard errors;
- deeper stagnation, where the Gaussian closure is known to lose too much: the model within
  a factor of 2 of the measurement;
- round toward zero (closed form): within 5 % + 3 standard errors of the measurement;
- the small loss far below stagnation (n / 4^m = 1/16): within 4 standard errors;
- overflow probability: within 0.04 of the engine's overflow frequency.
"""

import itertools
import math

import numpy as np
import pytest

from hbfpsim.accuracy.vrr import (
    LOST_CUTOFF,
    measured_vrr,
    min_fixed_width,
    min_mantissa_bits,
    overflow_probability,
    variance_lost,
    vrr,
    worst_case_width,
)
from hbfpsim.mac import matmul

TRIALS = {64: 16384, 4096: 4096, 65536: 1024, 2**20: 256}


def agrees(model: float, measured: float, se: float, rounding: str) -> bool:
    if rounding == "rtz":
        return abs(model - measured) <= 0.05 * model + 3 * se
    if model >= 0.9:
        return abs(model - measured) <= 0.02 + 3 * se
    return abs(math.log(model / measured)) <= math.log(2)


@pytest.mark.parametrize("n", [64, 4096, 65536])
@pytest.mark.parametrize("m_acc", [4, 6, 8, 10, 12])
@pytest.mark.parametrize("chunk", [None, 64])
def test_rne_model_matches_the_engine(n, m_acc, chunk):
    measured, se = measured_vrr(n, m_acc, chunk=chunk, trials=TRIALS[n], seed=n + m_acc)
    model = vrr(n, m_acc, chunk=chunk)
    assert agrees(model, measured, se, "rne"), (model, measured, se)


@pytest.mark.slow
@pytest.mark.parametrize("m_acc", [8, 10, 12])
@pytest.mark.parametrize("chunk", [None, 64])
def test_rne_model_matches_the_engine_at_a_million_products(m_acc, chunk):
    n = 2**20
    measured, se = measured_vrr(n, m_acc, chunk=chunk, trials=TRIALS[n], seed=m_acc)
    assert agrees(vrr(n, m_acc, chunk=chunk), measured, se, "rne")


@pytest.mark.parametrize("n, m_acc", [(64, 4), (4096, 8), (4096, 12), (65536, 12)])
@pytest.mark.parametrize("chunk", [None, 64])
def test_rtz_model_matches_the_engine(n, m_acc, chunk):
    measured, se = measured_vrr(n, m_acc, chunk=chunk, rounding="rtz", trials=TRIALS[n],
                                seed=3)
    model = vrr(n, m_acc, chunk=chunk, rounding="rtz")
    assert agrees(model, measured, se, "rtz"), (model, measured, se)


def test_rne_loss_far_below_stagnation_matches_the_engine():
    """At n / 4^m = 1/16 nothing stagnates: rounding noise adds u^2/12 per addition and the
    finer grid below each binade edge pulls the sum toward zero by twice that. The small
    net loss that sets the knee is measurable with a million sums."""
    measured, se = measured_vrr(64, 5, trials=2**20, seed=5)
    assert 1 - measured > 5 * se
    assert abs(vrr(64, 5) - measured) < 4 * se


def test_truncating_accumulators_lose_far_more_than_round_to_nearest():
    """n = 2^17 in e8m16: round to nearest keeps all the variance, truncation about half."""
    n = 2**17
    rne, rne_se = measured_vrr(n, 16, trials=512, seed=7)
    rtz, rtz_se = measured_vrr(n, 16, rounding="rtz", trials=512, seed=7)
    assert abs(rne - 1.0) < 4 * rne_se + 1e-3
    assert 0.45 < rtz < 0.6
    assert abs(vrr(n, 16, rounding="rtz") - rtz) <= 0.05 * rtz + 3 * rtz_se


def test_standard_error_matches_the_spread_of_replicates():
    runs = [measured_vrr(256, 4, trials=1024, seed=s) for s in range(12)]
    values, errors = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
    assert 0.6 < values.std(ddof=1) / errors.mean() < 1.6


def test_one_chunk_is_the_sequential_sum():
    assert measured_vrr(512, 5, chunk=512, seed=1) == measured_vrr(512, 5, seed=1)


@pytest.mark.parametrize("rounding", ["rne", "rtz"])
def test_a_single_product_keeps_its_variance(rounding):
    for m_acc in (1, 4, 23, 52):
        assert vrr(1, m_acc, rounding=rounding) == 1.0
        assert variance_lost(1, m_acc, rounding=rounding) == 0.0


def test_rtz_closed_form_by_hand():
    """e8m1: the sum shrinks by lam = 2^-1 / (4 ln 2) per truncation, so Var(s_2) =
    (1 - lam)^2 + 1 and Var(s_3) = (1 - lam)^4 + (1 - lam)^2 + 1; for 2 lam n >> 1 the sum
    is stationary, Var = 1 / (2 lam): VRR = 2 ln 2 2^m / n."""
    a = (1 - 0.5 / (4 * math.log(2))) ** 2
    assert vrr(2, 1, rounding="rtz") == pytest.approx((1 + a) / 2, rel=1e-12)
    assert vrr(3, 1, rounding="rtz") == pytest.approx((1 + a + a * a) / 3, rel=1e-12)
    assert vrr(2**20, 12, rounding="rtz") == pytest.approx(2 * math.log(2) * 2**12 / 2**20,
                                                           rel=1e-3)


@pytest.mark.parametrize("n, m_acc", [(64, 10), (4096, 20), (2**16, 30), (2**20, 40)])
def test_rne_loss_at_small_n_over_4_to_the_m(n, m_acc):
    """Far below stagnation each addition's rounding adds u^2/12 and the binade edges
    remove u^2/32 per unit density: n (1 - VRR) = (n^2 - 1) / (64 ln 2 4^m) (docs/vrr.md)."""
    by_hand = (n * n - 1) / (64 * math.log(2) * 4.0**m_acc)
    assert variance_lost(n, m_acc) == pytest.approx(by_hand, rel=0.03)


@pytest.mark.parametrize("rounding", ["rne", "rtz"])
def test_chunked_vrr_is_the_product_of_its_two_levels(rounding):
    """The chunk sums are i.i.d. and the model is scale-free: VRR(n) = VRR(c) VRR(n / c)."""
    for n, m_acc, chunk in [(4096, 4, 64), (2**16, 6, 256), (2**16, 6, 1), (2**16, 6, 2**16)]:
        by_levels = vrr(chunk, m_acc, rounding=rounding) * vrr(n // chunk, m_acc,
                                                               rounding=rounding)
        assert vrr(n, m_acc, chunk=chunk, rounding=rounding) == pytest.approx(by_levels,
                                                                              rel=1e-12)


@pytest.mark.parametrize("rounding", ["rne", "rtz"])
@pytest.mark.parametrize("chunk", [None, 16])
def test_monotone_in_bits_and_length(rounding, chunk):
    by_bits = [vrr(4096, m, chunk=chunk, rounding=rounding) for m in range(1, 30)]
    assert all(b >= a for a, b in itertools.pairwise(by_bits))
    assert by_bits[-1] > 1 - 1e-5
    by_length = [vrr(16 * 2**k, 8, chunk=chunk, rounding=rounding) for k in range(13)]
    assert all(b <= a for a, b in itertools.pairwise(by_length))
    assert vrr(2**20, 52, chunk=chunk, rounding=rounding) > 1 - 1e-9


def test_knees_of_sequential_and_chunk_64_accumulation():
    """The knee (n (1 - VRR) <= ln 50) follows from the small-n/4^m loss by hand:
    4^m >= n^2 / (64 ln 2 ln 50) sequentially, n (64 + n/64) / (64 ln 2 ln 50) in chunks."""
    scale = 64 * math.log(2) * LOST_CUTOFF
    for n in (2**12, 2**16, 2**20):
        assert min_mantissa_bits(n) == math.ceil(math.log(n * n / scale, 4))
        assert min_mantissa_bits(n, chunk=64) == math.ceil(math.log(n * (64 + n / 64) / scale, 4))
    assert min_mantissa_bits(2**16) in range(13, 16)
    assert min_mantissa_bits(2**16, chunk=64) in (9, 10)
    assert min_mantissa_bits(2**16, rounding="rtz") >= min_mantissa_bits(2**16) + 10


# ---- fixed point -----------------------------------------------------------------------

def required_width(a_bits: int, b_bits: int, k: int) -> int:
    """Brute force: every pair of sign-magnitude integer vectors, every partial sum."""
    va = np.arange(-(2 ** (a_bits - 1) - 1), 2 ** (a_bits - 1))
    vb = np.arange(-(2 ** (b_bits - 1) - 1), 2 ** (b_bits - 1))
    a = np.array(list(itertools.product(va, repeat=k)))
    b = np.array(list(itertools.product(vb, repeat=k)))
    partial = np.cumsum(a[:, None, :] * b[None, :, :], axis=2)
    lo, hi = int(partial.min()), int(partial.max())
    return next(w for w in range(1, 64) if -(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1)


def test_worst_case_width_by_hand():
    assert worst_case_width(8, 8, 64) == 21       # 64 x 127 x 127 = 1,032,256 < 2^20
    assert worst_case_width(4, 4, 1) == 7         # 7 x 7 = 49 < 2^6
    assert worst_case_width(4, 4, 3) == 9         # 3 x 49 = 147: 9 bits (2^8 = 256)
    assert worst_case_width(2, 2, 5) == 6         # 5 x 1 x 1 = 5 fits 4 bits: not tight


@pytest.mark.parametrize("a_bits, b_bits, k", [(2, 2, 1), (2, 2, 3), (2, 3, 2), (3, 3, 1),
                                               (3, 3, 2), (3, 3, 3), (2, 2, 4)])
def test_worst_case_width_against_brute_force(a_bits, b_bits, k):
    need = required_width(a_bits, b_bits, k)
    bound = worst_case_width(a_bits, b_bits, k)
    assert need <= bound
    if min(a_bits, b_bits) >= 3 and k & (k - 1) == 0:
        assert need == bound


@pytest.mark.parametrize("fa, fb, k", [("hbfp4", "hbfp4", 8), ("hbfp5", "hbfp4", 16)])
def test_worst_case_operands_overflow_exactly_one_bit_narrower(fa, fb, k):
    """All-maximal magnitudes (0.875 in HBFP4 is 7 x 2^-3; 0.9375 in HBFP5 is 15 x 2^-4)."""
    width = worst_case_width(int(fa[4:]), int(fb[4:]), k)
    top = {"hbfp4": 0.875, "hbfp5": 0.9375}
    a = np.full((2, k), top[fa])
    b = np.stack([np.full(k, top[fb]), np.full(k, -top[fb])], axis=1)
    _, fits = matmul(a, b, fa, fb, plan=f"fixed{width}", fast_path=False)
    _, spills = matmul(a, b, fa, fb, plan=f"fixed{width - 1}")
    assert fits.levels[0].overflows == 0
    assert spills.levels[0].overflows > 0


@pytest.mark.parametrize("a_bits, b_bits, k, width", [(8, 8, 64, 15), (8, 8, 16, 14),
                                                      (6, 4, 32, 9)])
def test_overflow_probability_matches_the_engine(a_bits, b_bits, k, width):
    """Gaussian data at scales unrelated to powers of two, one block per operand (the
    model's premise), fixed{w}:sat; the fraction of outputs with an overflow count."""
    rng = np.random.default_rng(11)
    hits = outputs = 0
    for _ in range(2):
        a = rng.standard_normal((256, k)) * np.exp2(rng.random((256, 1)))
        b = rng.standard_normal((k, 256)) * np.exp2(rng.random((1, 256)))
        _, stats = matmul(a, b, f"hbfp{a_bits}@{k}", f"hbfp{b_bits}@{k}",
                          plan=f"fixed{width}:sat", stats="element")
        hits += int(np.count_nonzero(stats.levels[0].overflows))
        outputs += a.shape[0] * b.shape[1]
    model = overflow_probability(width, a_bits, b_bits, k, block=k)
    assert 0.05 < model < 0.95
    assert abs(model - hits / outputs) < 0.04


def test_overflow_probability_falls_with_width_to_zero():
    p = [overflow_probability(w, 8, 8, 64) for w in range(8, 23)]
    assert all(b <= a for a, b in itertools.pairwise(p))
    assert p[0] > 0.999 and p[21 - 8] == 0.0 and p[20 - 8] > 0.0


def test_min_fixed_width_meets_the_target():
    for target in (1e-2, 1e-6):
        w = min_fixed_width(64, 8, 8, probability=target)
        assert overflow_probability(w, 8, 8, 64) <= target < overflow_probability(w - 1, 8, 8,
                                                                                  64)
        assert w <= worst_case_width(8, 8, 64)


# ---- arguments -------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: vrr(0, 8), "n=0"),
    (lambda: vrr(64, 0), "m_acc=0"),
    (lambda: vrr(64, 53), "m_acc=53"),
    (lambda: vrr(64, 8, chunk=0), "chunk=0"),
    (lambda: vrr(64, 8, chunk=48), "chunk=48.*divides"),
    (lambda: vrr(64, 8, rounding="stochastic"), "rounding='stochastic'"),
    (lambda: vrr(64, 8, rounding="up"), "rounding='up'"),
    (lambda: min_mantissa_bits(64, max_lost=0), "max_lost=0"),
    (lambda: measured_vrr(64, 8, trials=1), "trials=1"),
    (lambda: measured_vrr(64, 8, exp_bits=12), "exp_bits=12"),
    (lambda: worst_case_width(1, 8, 4), "a_bits=1"),
    (lambda: worst_case_width(8, 8, 0), "k=0"),
    (lambda: overflow_probability(1, 8, 8, 4), "width=1"),
    (lambda: overflow_probability(10, 8, 8, 64, block=32), "block=32"),
    (lambda: min_fixed_width(64, 8, 8, probability=0), "probability=0"),
])
def test_bad_arguments_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
