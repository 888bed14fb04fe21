"""HBFP: hand-worked cases and bit-for-bit compatibility with HBFPEmulator's _float_to_bfp."""

import numpy as np
import pytest

from hbfpsim import formats
from inputs import first_difference, mixed_rows, same_bits

HBFP4 = formats.get("hbfp4")


def q4(values, **kw):
    return HBFP4.quantize(np.float32(values), **kw).tolist()


def test_power_of_two_max_is_exact_in_hardware_rule():
    # max 1.0: E = floor(log2 1) + 1 = 1, step 2^(1-3) = 1/4; 0.125 = 0.5 step ties to even 0
    assert q4([1.0, 0.5, 0.25, 0.125, 0.0625]) == [1.0, 0.5, 0.25, 0.0, 0.0]


def test_power_of_two_max_saturates_in_emulator_rule():
    # E = ceil(log2(1 + 1e-8)) = 0 in float32, step 1/8, bound 2^0 - 1/8 = 0.875
    emulator = formats.get("hbfp4", compat="hbfpemulator")
    got = emulator.quantize(np.float32([1.0, 0.5, 0.25, 0.125, 0.0625]))
    assert got.tolist() == [0.875, 0.5, 0.25, 0.125, 0.0]


def test_ties_even_and_away():
    # max 0.75 -> E = 0, step 1/8: inputs at 0.5, 1.5, 2.5, 3.5 steps
    x = [0.75, 0.0625, 0.1875, 0.3125, -0.4375]
    assert q4(x) == [0.75, 0.0, 0.25, 0.25, -0.5]
    assert q4(x, rounding="away") == [0.75, 0.125, 0.25, 0.375, -0.5]


def test_max_rounding_up_saturates():
    # 0.97 -> 7.76 steps of 1/8 -> 8 -> saturates at 7
    assert q4([0.97, -0.97, 0.5]) == [0.875, -0.875, 0.5]


def test_all_zero_block_and_signed_zero():
    enc = HBFP4.encode(np.float32([0.0, -0.0, 0.0]))
    assert enc.shared_exp.tolist() == [0]            # E = -127
    assert enc.decode().tolist() == [0.0, -0.0, 0.0]
    assert np.signbit(HBFP4.quantize(np.float32([0.0, -0.0])))[1]


def test_tiny_blocks_use_the_exponent_floor():
    # max 2^-130 < 2^-128: E clamps to -127, step 2^-130; 1.5 steps ties to 2 steps
    x = np.float32([2.0**-130, 2.0**-132, 3 * 2.0**-131, 2.0**-149])
    assert HBFP4.quantize(x).tolist() == [2.0**-130, 0.0, 2.0**-129, 0.0]
    assert HBFP4.encode(x).shared_exp.tolist() == [0]


def test_huge_blocks_clamp_and_saturate():
    # float32 max is above 2^127: E clamps to 127, step 2^124, everything saturates at 7 steps
    x = np.float32([3e38, 1.0])
    assert HBFP4.quantize(x).tolist() == [7 * 2.0**124, 0.0]
    assert HBFP4.quantize(np.array([2.0**200, -2.0**130])).tolist() == [7 * 2.0**124,
                                                                        -7 * 2.0**124]


def test_blocks_run_along_the_axis_and_the_last_block_is_partial():
    x = np.full(70, 0.01, np.float32)
    x[0] = 100.0                        # dominates block 0 only
    q = formats.get("hbfp8@64").quantize(x)
    assert np.all(q[1:64] == 0.0)       # 0.01 is below half a step of 2^(7-7)
    assert np.all(q[64:] != 0.0)        # the last 6 elements form their own block
    enc = formats.get("hbfp8@64").encode(np.stack([x, x]), axis=-1)
    assert enc.shared_exp.shape == (2, 2)
    assert enc.shared_exp.tolist()[0] == [7 + 127, -6 + 127]   # E = floor(log2 max) + 1


def test_axis_zero_is_the_transpose_of_axis_minus_one():
    x = mixed_rows(np.random.default_rng(0), 3, 50)
    assert same_bits(HBFP4.quantize(x.T, axis=0), HBFP4.quantize(x).T)


def test_encoded_mantissas_are_sign_magnitude_integers():
    x = np.float32([[0.75, -0.3, 0.1, -0.0]])
    enc = HBFP4.encode(x)
    assert enc.code.dtype == np.uint8 and enc.code.tolist() == [[6, 2, 1, 0]]
    assert enc.sign.tolist() == [[0, 1, 0, 1]]
    assert enc.shared_exp.tolist() == [[127]]  # E = 0: values are k / 8
    assert formats.get("hbfp12").encode(x).code.dtype == np.uint16


# --- HBFPEmulator compatibility ------------------------------------------------------------

def emulator_rule_numpy(rows: np.ndarray, mant_bits: int, block: int) -> np.ndarray:
    """The public HBFPEmulator's _float_to_bfp rule (docs/formats.md) re-expressed with numpy
    float32 arithmetic, one block at a time: e = ceil(log2(max|x| + 1e-8)),
    interval = 2^(e - mant_bits), round(x / interval) * interval clamped to
    +-(2^e - interval)."""
    out = np.empty_like(rows)
    one = np.float32(1)
    for r in range(rows.shape[0]):
        for s in range(0, rows.shape[1], block):
            t = rows[r, s:s + block]
            e = np.ceil(np.log2(np.abs(t).max() + np.float32(1e-8)))
            interval = np.float32(2.0) ** (e - np.float32(mant_bits))
            with np.errstate(over="ignore"):
                bound = np.float32(2.0) ** e - interval
                rounded = np.round(t / interval) * interval
            out[r, s:s + block] = np.minimum(np.maximum(rounded, -bound), bound) * one
    return out


@pytest.mark.parametrize("m,block", [(4, 64), (6, 64), (8, 16), (3, 7)])
def test_compat_equals_the_emulator_rule(m, block):
    rows = mixed_rows(np.random.default_rng(m * block), 6, 130)
    rows[0, :4] = [1.0, 0.5, -2.0**20, 2.0**-30]      # powers of two: saturating maxima
    got = formats.get(f"hbfp{m}@{block}", compat="hbfpemulator").quantize(rows)
    want = emulator_rule_numpy(rows, m - 1, block)
    assert same_bits(got, want), first_difference(got, want, rows)


@pytest.mark.parametrize("m", [4, 6])
def test_compat_equals_torch_running_the_emulator_formula(m):
    """The same formula evaluated by torch (the emulator's library), where installed."""
    torch = pytest.importorskip("torch")
    rows = mixed_rows(np.random.default_rng(m), 8, 64 * 3)
    rows[0, :64] = np.ldexp(1.0, np.arange(-30, 34)).astype(np.float32)
    t = torch.from_numpy(rows.reshape(-1, 64).copy())
    e = (t.abs().max(dim=1, keepdim=True)[0] + 1e-8).log2().ceil()
    interval = torch.pow(2.0, e - (m - 1))
    bound = torch.pow(2.0, e) - interval
    want = torch.min(torch.max((t / interval).round() * interval, -bound), bound)
    got = formats.get(f"hbfp{m}", compat="hbfpemulator").quantize(rows)
    want = want.numpy().reshape(rows.shape)
    assert same_bits(got, want), first_difference(got, want, rows)


def test_compat_converts_float64_input_through_float32():
    x = np.array([1 + 2.0**-30, 0.3])
    fmt = formats.get("hbfp4", compat="hbfpemulator")
    got = fmt.quantize(x)
    assert got.dtype == np.float64
    # in float32, 1 + 2^-30 is 1.0: E = ceil(log2(1 + 1e-8)) = 0, step 1/8, and the emulator
    # clamps the maximum to 1 - 1/8; from float64 it would get E = 1, step 1/4, and 1.0
    assert got.tolist() == [0.875, 0.25]


@pytest.mark.parametrize("name", ["hbfp4", "hbfp6@16", "hbfp8@32", "hbfp4@64:hbfpemulator"])
def test_block_integers_are_the_quantized_values(name):
    """The MAC engine's operands: integer x 2^lsb is exactly quantize(x), every integer
    within the mantissa's magnitude, for rows and columns (axis 0 and 1)."""
    fmt = formats.get(name) if ":" not in name else formats.get(name.split(":")[0],
                                                                compat="hbfpemulator")
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((5, 70)) * 2.0 ** rng.integers(-30, 30, (5, 1))).astype(np.float32)
    x[1, :40] = 0.0
    for axis in (0, 1):
        integers, lsb = fmt.block_integers(x, axis=axis)
        per_element = np.repeat(lsb, fmt.block, axis=axis).take(np.arange(x.shape[axis]),
                                                                 axis=axis)
        assert np.array_equal(np.ldexp(integers, per_element), fmt.quantize(x, axis=axis))
        assert np.array_equal(integers, np.round(integers))
        assert np.abs(integers).max() <= 2**fmt.frac_bits - 1
