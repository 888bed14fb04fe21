"""Every format, every rounding mode: bit-for-bit equal to the exact Fraction oracle."""

import numpy as np
import pytest

import oracle
from hbfpsim import formats
from inputs import first_difference, hard_rows, mixed_rows, same_bits, stable_seed

MODES = ["even", "away", "rtz", "stochastic"]
SEED = 1234
NAMES = list(formats.STANDARD) + ["hbfp2@8", "hbfp5@16", "hbfp12@64", "hbfp4@1"]
SCALAR_GRID = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8_e4m3": "e4m3",
               "fp8_e5m2": "e5m2"}


def reference(fmt, x, mode):
    """The oracle's answer for rows x (quantization axis last)."""
    if fmt.family == "fp":
        flat = oracle.fp_scalar(x.ravel(), SCALAR_GRID[fmt.name], fmt.saturate, mode, SEED)
        return np.array(flat).reshape(x.shape)
    if fmt.family == "hbfp":
        return oracle.blocked(x, fmt.block, oracle.hbfp_block, m=fmt.mantissa_bits, mode=mode,
                              seed=SEED)
    if fmt.family == "mx":
        return oracle.blocked(x, 32, oracle.mx_block, fmt=fmt.name, mode=mode, seed=SEED)
    return oracle.int8_rows(x, fmt.per, mode, SEED)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_float32_input_matches_oracle(name, mode):
    fmt = formats.get(name)
    rng = np.random.default_rng(stable_seed(name, mode))
    x = mixed_rows(rng, 4, 100)
    got = fmt.quantize(x, rounding=mode, seed=SEED)
    assert got.dtype == np.float32
    want = reference(fmt, x, mode)
    if fmt.family == "int":  # k * scale is rounded once to float32 (documented)
        want = want.astype(np.float32)
    assert same_bits(got, want), first_difference(got, want, x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "hbfp4",
                                  "hbfp8@16", "mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "mxint8"])
def test_float64_input_matches_oracle(name, mode):
    """float64 inputs round directly from all 53 bits (no detour through float32), including
    values beyond the float32 range that exercise the exponent clamps."""
    fmt = formats.get(name)
    rng = np.random.default_rng(stable_seed(name, mode, 64))
    x = rng.standard_normal((4, 96)) * np.ldexp(1.0, rng.integers(-40, 40, (4, 1)))
    x[0] *= 2.0**180      # clamped at the top: E / X = 127, elements saturate
    x[1] *= 2.0**-200     # clamped at the bottom: flush to zero
    got = fmt.quantize(x, rounding=mode, seed=SEED)
    assert got.dtype == np.float64
    want = reference(fmt, x, mode)
    assert same_bits(got, want), first_difference(got, want, x)


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp16", "bf16"])
def test_non_saturating_overflow_matches_oracle(name):
    fmt = formats.get(name, saturate=False)
    x = hard_rows(np.random.default_rng(5), 3, 64) * np.float32(2.0**20)
    edges = np.float32([3e38, -3e38, 65520, 61440, 61439, 464, 465, -480])
    x = np.concatenate([x, np.tile(edges, (3, 1))], axis=1)
    got = fmt.quantize(x)
    want = reference(fmt, x, "even")
    assert same_bits(got, want), first_difference(got, want, x)
