"""Scalar floats (FP32, BF16, FP16, FP8) and INT8: hand-worked cases."""

from fractions import Fraction

import numpy as np
import pytest

from hbfpsim import formats


def q(x, name, **kw):
    return formats.quantize(np.asarray(x), name, **kw).tolist()


def test_e4m3_saturates_by_default_and_overflows_to_nan_otherwise():
    x = np.float32([500, 460, 464, 465, -1e6])
    assert q(x, "fp8_e4m3") == [448, 448, 448, 448, -448]
    got = q(x, "fp8_e4m3", saturate=False)
    # 464 is the tie between 448 (even) and 480 (the NaN code): 448; above it: NaN
    assert got[1:3] == [448, 448] and all(np.isnan([got[0], got[3], got[4]]))


def test_e5m2_ieee_overflow_to_inf():
    # 61440 = 57344 + 4096 is the tie between 57344 (odd mantissa) and 65536: rounds up -> Inf
    x = np.float32([61440, 61439, -70000])
    assert q(x, "fp8_e5m2", saturate=False) == [np.inf, 57344, -np.inf]
    assert q(x, "fp8_e5m2") == [57344, 57344, -57344]


def test_bf16_and_fp16_ties_and_subnormals():
    assert q(np.float32([1 + 2**-8, 1 + 3 * 2**-8]), "bf16") == [1.0, 1 + 2**-6]
    # fp16 subnormal step 2^-24: 2^-25 ties to 0, 3 * 2^-25 ties to 2^-23
    assert q(np.float32([2**-25, 3 * 2**-25, 2**-26]), "fp16") == [0.0, 2**-23, 0.0]


def test_fp32_rounds_float64_once():
    x = np.array([1 + 2.0**-24, 1 + 2.0**-24 + 2.0**-50, 3.5e38])
    assert q(x, "fp32") == [1.0, 1 + 2.0**-23, np.inf]
    assert q(x, "fp32", saturate=True)[2] == float(np.finfo(np.float32).max)
    y = np.float32([0.1, -3e-45, 1e38])
    assert np.array_equal(formats.quantize(y, "fp32"), y)


def test_int8_per_tensor_ties():
    x = np.float32([127, -63.5, 0.5, 1.5, 2.5])      # scale 1.0
    assert q(x, "int8") == [127, -64, 0, 2, 2]
    assert q(x, "int8", rounding="away") == [127, -64, 1, 2, 3]


def test_int8_per_channel_scales_along_the_axis():
    x = np.array([[254.0, 1.0, 2.0], [1.27, 0.01, -0.005]])
    enc = formats.get("int8", per="channel").encode(x, axis=-1)
    assert enc.scale.shape == (2, 1)
    down = np.float32(np.float32(1.27) / 127)
    if float(down) * 127 > float(np.float32(1.27)):
        down = np.nextafter(down, np.float32(0))
    assert enc.scale[:, 0].tolist() == [2.0, float(down)]
    assert enc.code[0].tolist() == [127, 0, 1]      # 1/2 ties to 0, 2/2 = 1
    cols = formats.get("int8", per="channel").encode(x, axis=0)
    assert cols.scale.shape == (1, 3)
    tensor = formats.get("int8").encode(x)
    assert tensor.scale.shape == (2, 1) and np.all(tensor.scale == 2.0)


def test_int8_scale_rounds_down_so_nothing_overflows():
    """max/127 for the largest float32 rounded to nearest would make 127 x scale exceed the
    float32 range; rounded down, the largest element keeps code 127 and stays finite."""
    top = np.finfo(np.float32).max
    x = np.float32([top, -top / 3])
    enc = formats.get("int8").encode(x)
    scale = enc.scale.ravel()[0]
    assert Fraction(float(scale)) * 127 <= Fraction(float(top)) < \
        Fraction(float(np.nextafter(scale, np.float32(np.inf)))) * 127    # the largest such
    assert enc.code.tolist() == [127, 42] and enc.sign.tolist() == [0, 1]
    assert formats.quantize(x, "int8").tolist() == [float(np.float32(127 * float(scale))),
                                                    float(np.float32(-42 * float(scale)))]


def test_int8_all_zero_has_unit_scale():
    enc = formats.get("int8").encode(np.zeros(4))
    assert enc.scale.ravel().tolist() == [1.0] and not enc.decode().any()


@pytest.mark.parametrize("per", ["tensor", "channel"])
def test_int8_codes_are_symmetric(per):
    x = np.random.default_rng(0).standard_normal((5, 40))
    enc = formats.get("int8", per=per).encode(x)
    assert enc.code.max() == 127 and enc.code.dtype == np.uint8
    k = np.where(enc.sign == 1, -enc.code.astype(int), enc.code.astype(int))
    assert np.array_equal(enc.decode(), k * enc.scale.astype(np.float64))
