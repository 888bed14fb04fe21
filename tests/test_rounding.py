"""Stochastic rounding: reproducible per seed, independent of threads, unbiased."""

import numba
import numpy as np
import pytest

from hbfpsim import formats
from inputs import mixed_rows, same_bits

CASES = ["hbfp4", "mxfp4", "mxint8", "fp8_e4m3", "bf16", "int8"]


@pytest.mark.parametrize("name", CASES)
def test_same_seed_same_bits_other_seed_other_bits(name):
    x = mixed_rows(np.random.default_rng(1), 4, 256)
    a = formats.quantize(x, name, rounding="stochastic", seed=42)
    assert same_bits(a, formats.quantize(x, name, rounding="stochastic", seed=42))
    assert not same_bits(a, formats.quantize(x, name, rounding="stochastic", seed=43))


def test_bits_do_not_depend_on_thread_count():
    x = np.random.default_rng(2).standard_normal((64, 512)).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = formats.quantize(x, "hbfp4", rounding="stochastic", seed=7)
    finally:
        numba.set_num_threads(threads)
    assert same_bits(one, formats.quantize(x, "hbfp4", rounding="stochastic", seed=7))


INT8_STEP = float(np.float32(1 / 127))  # max 1.0: RN(1/127) is below 1/127, already rounded down
assert INT8_STEP * 127 <= 1


@pytest.mark.parametrize("name,value,low,high", [
    ("hbfp4", 0.3, 0.25, 0.3125),            # E = -1, step 1/16: 4.8 steps
    ("mxfp4", 0.3, 0.25, 0.375),             # X = -4: 4.8 between E2M1's 4 and 6
    ("fp8_e4m3", 0.3, 0.28125, 0.3125),      # ulp 2^-5 at 0.3: 9.6 ulps
    ("int8", 0.3, 38 * INT8_STEP, 39 * INT8_STEP),
])
def test_stochastic_rounding_is_unbiased(name, value, low, high):
    """The mean of n independent roundings of a constant is within 5 sigma of it,
    sigma = step sqrt(p (1 - p) / n), and every result is one of its two neighbours.
    (INT8: one element of 1.0 fixes the per-tensor scale and is left out.)"""
    n = 200_000
    x = np.full(n, value)
    if name == "int8":
        x[0] = 1.0
    q = formats.quantize(x, name, rounding="stochastic", seed=11)[1:]
    assert set(np.unique(q)) == {low, high}
    p = (value - low) / (high - low)
    sigma = (high - low) * np.sqrt(p * (1 - p) / q.size)
    assert abs(q.mean() - value) < 5 * sigma


def test_away_and_even_differ_exactly_on_ties():
    """An HBFP8 block with max 1.0 has E = 1 and step 2^-6; its midpoints (2k + 1) 2^-7 go to
    k + 1 steps with rna, and to the even one of k, k + 1 with rne: they differ where k is
    even. Off the midpoints the two agree."""
    k = np.arange(63)
    ties = np.concatenate([[1.0], (2 * k + 1) * 2.0**-7]).astype(np.float32)
    off = np.random.default_rng(3).uniform(-1, 1, 64).astype(np.float32)
    off[0] = 1.0                                        # the same grid: E = 1, step 2^-6
    assert not np.any(np.abs(off * 2**7) % 2 == 1)      # none of them on a midpoint
    x = np.concatenate([ties, off])
    even, away = formats.quantize(x, "hbfp8"), formats.quantize(x, "hbfp8", rounding="away")
    assert np.array_equal(np.flatnonzero(even != away), 1 + k[k % 2 == 0])
    assert np.all(away[1:64] == (k + 1) * 2.0**-6)
