"""Exhaustive checks of the FP8 / FP6 / FP4 element grids (and FP16 / BF16) against ml_dtypes.

ml_dtypes casts float32 correctly (round half to even), so for float32 input it is an
independent oracle for every code, every midpoint between neighbouring codes and the values
one float32 ulp either side of each midpoint."""

import ml_dtypes
import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast",
                                        "ignore:overflow encountered in cast")

import oracle
from hbfpsim import formats
from hbfpsim.formats import floating
from inputs import first_difference, same_bits

ELEMENT_TYPES = {
    "e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2,
    "e3m2": ml_dtypes.float6_e3m2fn, "e2m3": ml_dtypes.float6_e2m3fn,
    "e2m1": ml_dtypes.float4_e2m1fn, "fp16": np.float16, "bf16": ml_dtypes.bfloat16,
}
SPECS = {"e4m3": floating.E4M3, "e5m2": floating.E5M2, "e3m2": floating.E3M2,
         "e2m3": floating.E2M3, "e2m1": floating.E2M1, "fp16": floating.FP16,
         "bf16": floating.BF16}
MX_OF = {v: k for k, v in oracle.MX_ELEMENT.items()}


def all_codes(scalar_type):
    bits = 8 * np.dtype(scalar_type).itemsize
    width = {"float4_e2m1fn": 4, "float6_e3m2fn": 6, "float6_e2m3fn": 6}.get(
        np.dtype(scalar_type).name, bits)
    return np.arange(2**width, dtype={8: np.uint8, 16: np.uint16}[bits])


def finite_grid(scalar_type):
    values = all_codes(scalar_type).view(scalar_type).astype(np.float64)
    return np.unique(values[np.isfinite(values)])


def probes(grid):
    """Grid values, midpoints and the float32 neighbours of each midpoint, both signs."""
    pos = grid[grid >= 0]
    mids = ((pos[:-1] + pos[1:]) / 2).astype(np.float32)
    below = np.nextafter(mids, np.float32(0))
    above = np.nextafter(mids, np.float32(np.inf))
    vals = np.concatenate([pos.astype(np.float32), mids, below, above])
    return np.concatenate([vals, -vals])


@pytest.mark.parametrize("label", SPECS)
def test_spec_constants_match_the_standards(label):
    """Layouts read from ml_dtypes.finfo equal the IEEE / OCP definitions in the oracle."""
    spec = SPECS[label]
    man, emin, top = oracle.FLOAT_GRIDS[label]
    assert (spec.man_bits, spec.emin, spec.max) == (man, emin, float(top))
    assert spec.bits == {"fp16": 16, "bf16": 16, "e2m1": 4, "e3m2": 6, "e2m3": 6}.get(label, 8)


@pytest.mark.parametrize("spec", floating.SPECS, ids=lambda s: s.dtype_name)
def test_layouts_equal_ml_dtypes_finfo(spec):
    """The layouts hbfpsim writes down from the standards are what ml_dtypes reads off its
    types (exponent and fraction bits, minimum exponent, max, Inf and NaN)."""
    assert floating.FloatSpec.of(spec.dtype) == spec


@pytest.mark.parametrize("label", SPECS)
def test_every_code_unpacks_and_packs_back(label):
    spec, scalar_type = SPECS[label], ELEMENT_TYPES[label]
    codes = all_codes(scalar_type)
    want = codes.view(scalar_type).astype(np.float64)
    sign = (codes >> (spec.bits - 1)).astype(np.uint8)
    magnitude = codes & ((1 << (spec.bits - 1)) - 1)
    got = spec.unpack(sign, magnitude)
    assert same_bits(got, want)
    finite = ~np.isnan(want)
    sign2, mag2 = spec.pack(want[finite])
    assert np.array_equal(sign2, sign[finite]) and np.array_equal(mag2, magnitude[finite])


@pytest.mark.parametrize("name,label", [("fp8_e4m3", "e4m3"), ("fp8_e5m2", "e5m2"),
                                        ("fp16", "fp16"), ("bf16", "bf16")])
def test_scalar_rounding_equals_ml_dtypes_cast(name, label):
    """Non-saturating scalar formats behave as ml_dtypes' (IEEE-style) casts, overflow
    included: every probe plus values beyond the largest finite number."""
    scalar_type = ELEMENT_TYPES[label]
    grid = finite_grid(scalar_type)
    top = grid.max()
    beyond = np.array([top * 1.01, top * 1.0625, top * 1.07, top * 2, 3e38])
    beyond = beyond[beyond < np.finfo(np.float32).max].astype(np.float32)
    x = np.concatenate([probes(grid), beyond, -beyond])
    want = x.astype(scalar_type).astype(np.float64)
    got = formats.get(name, saturate=False).quantize(x)
    assert same_bits(got, want), first_difference(got, want, x)


@pytest.mark.parametrize("label", ["e4m3", "e5m2", "e3m2", "e2m3", "e2m1"])
def test_mx_element_rounding_equals_ml_dtypes_cast(label):
    """MX elements with the scale pinned to 2^0 (each block leads with 2^emax_elem) round
    exactly as ml_dtypes casts every probe of the element grid."""
    spec = SPECS[label]
    grid = finite_grid(ELEMENT_TYPES[label])
    x = probes(grid)
    x = x[np.abs(x) <= spec.max]
    per_block = 31
    x = np.concatenate([x, np.zeros(-len(x) % per_block, np.float32)]).reshape(-1, per_block)
    blocks = np.concatenate([np.full((len(x), 1), 2.0**spec.emax, np.float32), x], axis=1)
    got = formats.get(MX_OF[label]).quantize(blocks)
    want = blocks.astype(ELEMENT_TYPES[label]).astype(np.float64)
    assert same_bits(got, want), first_difference(got, want, blocks)


@pytest.mark.parametrize("label", ["e4m3", "e2m1"])
def test_away_differs_from_even_exactly_at_ties(label):
    """Round half away from zero = ml_dtypes' RNE except at midpoints, which go outward."""
    spec = SPECS[label]
    grid = finite_grid(ELEMENT_TYPES[label])
    pos = grid[grid >= 0]
    mids = (pos[:-1] + pos[1:]) / 2
    x = probes(grid)
    x = x[np.abs(x) <= spec.max]
    x = np.concatenate([x, np.zeros(-len(x) % 32, np.float32)]).reshape(-1, 32)
    x[:, 0] = 2.0**spec.emax
    even = x.astype(ELEMENT_TYPES[label]).astype(np.float64)
    tie = np.isin(np.abs(x), mids)
    upper = pos[np.minimum(np.searchsorted(pos, np.abs(x)), len(pos) - 1)]
    want = np.where(tie, np.copysign(upper, x), even)
    got = formats.get(MX_OF[label]).quantize(x, rounding="away")
    assert tie.sum() >= len(mids)
    assert same_bits(got, want), first_difference(got, want, x)


@pytest.mark.parametrize("name,label", [("fp8_e4m3", "e4m3"), ("fp8_e5m2", "e5m2"),
                                        ("fp16", "fp16"), ("bf16", "bf16")])
def test_float64_input_rounds_once(name, label):
    """float64 values a hair above a midpoint round up: a cast through float32 (two
    roundings) would land on the midpoint and then round to even, down. The oracle is the
    exact Fraction rounding of the float64 value."""
    man = oracle.FLOAT_GRIDS[label][0]
    ones = np.array([1.0, -1.0, 4.0, -0.25])
    # a tie of the target grid, plus a nudge below float32's resolution there
    x = ones * (1 + 2.0**-(man + 1) + 2.0**-40)
    want = np.array(oracle.fp_scalar(x, label, saturate=False))
    got = formats.get(name, saturate=False).quantize(x)
    assert got.dtype == np.float64
    assert same_bits(got, want), first_difference(got, want, x)
    through_float32 = np.array(oracle.fp_scalar(x.astype(np.float32), label, saturate=False))
    assert (want != through_float32).all()     # every probe separates one rounding from two
