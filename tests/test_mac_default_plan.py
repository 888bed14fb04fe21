"""matmul's default plan: the formats' hardware (``default_plan``), bit for bit the explicit
plan and the sequential kernel, statistics included; its fixed-point register is the
narrowest that cannot overflow; the FP32 top level's corners against the Fraction oracle."""

import numba
import numpy as np
import pytest

from hbfpsim.mac import AccumulationPlan, default_plan, matmul
from test_mac_exact import check

STAT_NAMES = ("inexact", "partial_swamps", "full_swamps", "overflows", "inexact_conversions")

# largest element magnitude in LSB units, from each format's definition (docs/formats.md):
# MX FP elements max / LSB: E2M1 6 / 2^-1, E3M2 28 / 2^-4, E2M3 7.5 / 2^-3, E4M3 448 / 2^-9
ELEMENT_MAX = {"mxfp4": 12, "mxfp6_e3m2": 448, "mxfp6_e2m3": 60, "mxfp8_e4m3": 229376,
               "mxint8": 127}


@pytest.mark.parametrize("fmt_a,fmt_b,plan", [
    ("hbfp4", None, "fixed13*64 > fp32"),          # 64 x 7 x 7 = 3136 <= 2^12 - 1
    ("hbfp8", None, "fixed21*64 > fp32"),          # 64 x 127^2 = 1032256 <= 2^20 - 1
    ("hbfp4", "hbfp8", "fixed17*64 > fp32"),       # 64 x 7 x 127 = 56896 <= 2^16 - 1
    ("hbfp4@32", "mxfp4", "fixed13*32 > fp32"),    # 32 x 7 x 12 = 2688 <= 2^12 - 1
    ("mxfp4", None, "fixed14*32 > fp32"),          # 32 x 12^2 = 4608 <= 2^13 - 1
    ("mxint8", None, "fixed20*32 > fp32"),         # 32 x 127^2 = 516128 <= 2^19 - 1
    ("mxfp8_e4m3", None, "fixed42*32 > fp32"),     # 32 x 229376^2 ~ 2^40.6
    ("mxfp8_e5m2", None, "fp32"),                  # (57344 x 2^16)^2 >= 2^53
    ("hbfp4", "hbfp4@32", "fp32"),                 # block lengths differ
    ("fp8_e4m3", None, "fp32"),
    ("bf16", "fp16", "fp32"),
    ("fp32", None, "fp32"),
    ("int8", None, "fixed32"),
    ("int8", "fp32", "fp32"),
])
def test_default_plans_worked_by_hand(fmt_a, fmt_b, plan):
    assert str(default_plan(fmt_a, fmt_b)) == plan


@pytest.mark.parametrize("block", [1, 16, 64, 576])
def test_hbfp_register_is_the_narrowest_that_cannot_overflow(block):
    """For every HBFP mantissa width, the register holds B (2^(m-1) - 1)^2 and one bit less
    would not (or the width is the 8-bit minimum), by search rather than formula."""
    for m in range(2, 25):
        worst = block * (2 ** (m - 1) - 1) ** 2
        want = next(w for w in range(8, 65) if 2 ** (w - 1) - 1 >= worst)
        plan = default_plan(f"hbfp{m}@{block}")
        assert str(plan) == f"fixed{want}*{block} > fp32", (m, plan)


@pytest.mark.parametrize("fmt", sorted(ELEMENT_MAX))
def test_mx_register_is_the_narrowest_that_cannot_overflow(fmt):
    worst = 32 * ELEMENT_MAX[fmt] ** 2
    want = next(w for w in range(8, 65) if 2 ** (w - 1) - 1 >= worst)
    assert str(default_plan(fmt)) == f"fixed{want}*32 > fp32"


@pytest.mark.parametrize("fmt,value", [("hbfp4", 0.875), ("hbfp8", 127 / 128), ("mxfp4", 6.0),
                                       ("mxint8", 127 / 64)])
def test_worst_case_blocks_fill_the_default_register_exactly(fmt, value):
    """Every element at the format's largest magnitude, all signs equal: each block sum is
    B x max^2, which the default register holds (no overflow, the exact result) and a register
    one bit narrower does not (sequential kernel: saturations counted)."""
    k = 256
    a = np.full((2, k), value)
    plan = default_plan(fmt)
    block = plan.levels[0].length
    for fast in (True, False):
        out, stats = matmul(a, a.T.copy(), fmt, fast_path=fast)
        assert stats.plan == plan and stats.levels[0].overflows == 0
        assert (out == k * value * value).all()
    width = plan.levels[0].accumulator.width
    narrower = AccumulationPlan.parse(f"fixed{width - 1}*{block} > fp32")
    _, stats = matmul(a, a.T.copy(), fmt, plan=narrower, stats="element", fast_path=False)
    assert (stats.levels[0].overflows >= k // block).all()    # in every block of every output


def block_scaled(shape, block, seed, spread=30):
    """Gaussian rows whose blocks of ``block`` elements along K carry scales 2^-spread ..
    2^spread: block results far apart in magnitude, which the FP32 level swamps."""
    rng = np.random.default_rng(seed)
    m, k = shape
    scales = np.ldexp(1.0, rng.integers(-spread, spread + 1, (m, -(-k // block))))
    return (rng.standard_normal(shape) * np.repeat(scales, block, axis=1)[:, :k]).astype(
        np.float32)


@pytest.mark.parametrize("fmt,fast", [("hbfp4", True), ("hbfp8", True), ("mxfp4", True),
                                      ("mxfp6_e3m2", True), ("fp8_e4m3", False),
                                      ("bf16", False), ("int8", True)])
def test_default_plan_is_the_explicit_plan_and_the_sequential_kernel(fmt, fast):
    """Outputs and per-element statistics equal bit for bit: no plan, the plan
    ``default_plan`` names (as text), and the sequential kernel; no overflow anywhere; the
    FP32 level swamps the small blocks (counted the same way on every path)."""
    a, b = block_scaled((5, 320), 32, 1), block_scaled((6, 320), 32, 2).T
    plan = str(default_plan(fmt))
    runs = [matmul(a, b, fmt, stats="element"),
            matmul(a, b, fmt, plan=plan, stats="element"),
            matmul(a, b, fmt, plan=plan, stats="element", fast_path=False)]
    assert runs[0].stats.levels[0].fast_path == fast
    assert not runs[2].stats.levels[0].fast_path
    for out, stats in runs[1:]:
        assert np.array_equal(out, runs[0].out)
        for got, want in zip(stats.levels, runs[0].stats.levels):
            for name in STAT_NAMES:
                assert np.array_equal(getattr(got, name), getattr(want, name)), name
    totals = {name: sum(int(np.sum(getattr(lv, name))) for lv in runs[0].stats.levels)
              for name in STAT_NAMES}
    assert totals["overflows"] == 0 and runs[0].stats.operand_overflows == (0, 0)
    if fmt != "int8":                          # INT8: one exact integer sum, nothing to swamp
        assert totals["full_swamps"] > 0 and totals["partial_swamps"] > 0


def extreme_blocks(k):
    """HBFP4 rows whose blocks of 64 sit at the ends of the exponent range, against B rows of
    2^100 or 2^-100: products beyond FP32's largest value (the register overflows to Inf),
    inside its subnormals (exact), below its smallest subnormal (converted to zero or
    2^-149), and ordinary ones swamped next to them."""
    rng = np.random.default_rng(3)
    exps = np.array([[100, 0, 20, -20], [-100, -30, 0, 5], [-20, -25, -35, 0],
                     [0, -49, -60, -70], [27, 28, 27, 28]])
    a = rng.standard_normal((5, k)) * np.repeat(np.ldexp(1.0, exps), 64, axis=1)
    b = rng.standard_normal((k, 3)) * np.ldexp(1.0, np.array([[30], [-40], [-100], [0]])
                                               ).repeat(64, axis=0)
    return a, b


def test_fp32_top_level_corners_match_oracle():
    a, b = extreme_blocks(256)
    _, stats = check(a, b, "hbfp4", "fixed13*64 > fp32", expect_fast=True)
    top = stats.levels[1]
    assert top.overflows > 0 and top.inexact_conversions > 0 and top.full_swamps > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_fp32_top_level_in_several_batches_matches_oracle(monkeypatch, threads):
    """The FP32 registers kept across calls when the chunk sums come a few chunks at a
    time, in bands of one row, on one or two threads."""
    from hbfpsim.mac import engine
    a, b = block_scaled((3, 256), 64, 4), block_scaled((4, 256), 64, 5).T
    monkeypatch.setattr(engine, "BAND_BYTES", 3 * 4 * 4)     # three float32 chunk rows
    monkeypatch.setattr(engine, "PARALLEL_MACS", 0)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        _, stats = check(a, b, "hbfp4", "fixed13*8 > fp32", expect_fast=True)
    finally:
        numba.set_num_threads(before)
    assert stats.levels[1].inputs == 32 and stats.levels[1].full_swamps > 0
