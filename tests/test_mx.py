"""MX (OCP v1.0): hand-worked scale and element cases."""

import numpy as np

from hbfpsim import formats
from inputs import same_bits


def block(*values, fill=0.0):
    x = np.full(32, fill, np.float32)
    x[: len(values)] = values
    return x


def test_scale_is_floor_log2_max_minus_emax_elem():
    # MXFP4 (E2M1, emax 2): max 6 -> X = 2 - 2 = 0; max 0.3 -> X = -2 - 2 = -4
    enc = formats.get("mxfp4").encode(np.stack([block(6.0, 1.0), block(0.3)]))
    assert (enc.shared_exp[:, 0].astype(int) - 127).tolist() == [0, -4]
    # MXFP8 E4M3 (emax 8): max 1000 -> X = 9 - 8 = 1
    assert formats.get("mxfp8_e4m3").encode(block(1000.0)).shared_exp[0] == 128


def test_element_ties_even_and_away():
    # X = 0; 0.25 sits halfway between 0 and the subnormal 0.5; 2.5 between 2 and 3; 5 between 4 and 6
    x = block(6.0, 0.25, 2.5, -5.0, 0.75)
    fmt = formats.get("mxfp4")
    assert fmt.quantize(x)[:5].tolist() == [6.0, 0.0, 2.0, -4.0, 1.0]
    assert fmt.quantize(x, rounding="away")[:5].tolist() == [6.0, 0.5, 3.0, -6.0, 1.0]


def test_elements_saturate_at_the_element_max():
    # E4M3: max 500 -> X = 0; 500 rounds to 512 on the 32-step grid, saturates to 448
    assert formats.get("mxfp8_e4m3").quantize(block(500.0, -470.0))[:2].tolist() == [448.0, -448.0]
    # E2M1: 7.9 -> X = 0 -> rounds to 8 -> saturates at 6
    assert formats.get("mxfp4").quantize(block(7.9))[0] == 6.0


def test_scale_clamps_at_the_e8m0_floor():
    # max 2^-140: X would be -148, clamps to -127; elements 2^-140 * 2^127 = 2^-13 < E4M3's
    # smallest subnormal 2^-9 / 2: the whole block flushes to zero
    enc = formats.get("mxfp8_e4m3").encode(block(2.0**-140))
    assert enc.shared_exp[0] == 0 and not enc.decode().any()
    # MXFP8 E5M2 keeps it: 2^-13 is an E5M2 normal
    assert formats.get("mxfp8_e5m2").quantize(block(2.0**-140))[0] == np.float32(2.0**-140)


def test_all_zero_block():
    enc = formats.get("mxfp6_e3m2").encode(block())
    assert enc.shared_exp.tolist() == [0] and not enc.decode().any()


def test_mxint8_is_fixed_point_one_point_six():
    # max 1.5 -> X = 0: values k/64; 0.7 -> 44.8/64 -> 45/64; tie 1/128 -> 0 (even)
    x = block(1.5, 0.7, 1 / 128, 3 / 128, -1.99)
    got = formats.get("mxint8").quantize(x)[:5].tolist()
    assert got == [1.5, 45 / 64, 0.0, 2 / 64, -127 / 64]
    enc = formats.get("mxint8").encode(x)
    assert enc.code[:5].tolist() == [96, 45, 0, 2, 127]


def test_mxint8_equals_hbfp8_at_32_away_from_the_exponent_clamps():
    """Same grid: MX's X = floor(log2 max) is HBFP's E = floor(log2 max) + 1 minus one."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((20, 96)) * np.ldexp(1.0, rng.integers(-60, 60, (20, 1))))
    x = x.astype(np.float32)
    assert same_bits(formats.quantize(x, "mxint8"), formats.quantize(x, "hbfp8@32"))


def test_encode_gives_element_codes_and_e8m0_scales():
    x = block(6.0, -0.5, 1.5, 3.0)
    enc = formats.get("mxfp4").encode(x)
    # E2M1 codes without sign: 6 = 0b111, 0.5 = 0b001 (subnormal), 1.5 = 0b011, 3 = 0b101
    assert enc.code[:4].tolist() == [7, 1, 3, 5]
    assert enc.sign[:4].tolist() == [0, 1, 0, 0]
    assert enc.shared_exp.dtype == np.uint8 and enc.shared_exp.tolist() == [127]
    assert same_bits(enc.decode(), formats.quantize(x, "mxfp4"))
