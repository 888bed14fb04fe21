"""The MAC engine against the exact Fraction oracle: outputs and statistics, bit for bit."""

import numba
import numpy as np
import pytest

import mac_oracle
from hbfpsim import formats
from hbfpsim.mac import AccumulationPlan, matmul
from hbfpsim.mac.operands import prepare

SEED = 99


def reference(a, b, fmt_a, fmt_b, plan, seed):
    op_a, op_b = prepare(a, formats.get(fmt_a), 1), prepare(b, formats.get(fmt_b), 0)
    out, stats = mac_oracle.matmul(op_a.values, op_b.values, op_a.lsb_per_element(),
                                   op_b.lsb_per_element(), plan, seed)
    if op_a.scale is not None:
        out = out * op_a.scale[:, None] * op_b.scale[None, :]
    return out, stats


def check(a, b, fmt_a, plan_text, fmt_b=None, fused=True, expect_fast=None):
    fmt_b = fmt_b or fmt_a
    plan = AccumulationPlan.parse(plan_text, fused=fused)
    want, want_stats = reference(a, b, fmt_a, fmt_b, plan, matmul_seed())
    for fast in (True, False):
        got, stats = matmul(a, b, fmt_a, fmt_b, plan, seed=SEED, fast_path=fast)
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        assert same.all(), (fast, got[~same][:4], want[~same][:4])
        assert len(stats.levels) == len(want_stats)
        for level, expected in zip(stats.levels, want_stats):
            assert {k: getattr(level, k) for k in expected} == expected, (fast, level)
        if fast and expect_fast is not None:
            assert stats.levels[0].fast_path == expect_fast
    return got, stats


def matmul_seed():
    """The accumulator seed matmul derives from SEED."""
    from hbfpsim.mac.engine import derive_seeds
    return derive_seeds(SEED)[2]


def gaussian(shape, seed, scale_range=(-8, 8)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.ldexp(1.0, rng.integers(*scale_range, (shape[0], 1)))
    return x.astype(np.float32)


CASES = [
    # format, plan, fast path expected on gaussian data
    ("hbfp4", "fixed16*64 > fp32", True),
    ("hbfp4", "fixed12*16 > e5m10*4 > fp32", True),             # three levels
    ("hbfp6@16", "fixed10:wrap*16 > bf16:rtz", False),          # overflows, wraps
    ("hbfp4", "e5m10:stochastic", None),
    ("fp8_e4m3", "e5m10", None),                                # normal (sequential)
    ("fp8_e4m3", "e5m10*64 > e5m10", None),                     # chunk-based
    ("fp8_e4m3", "e5m10:stochastic*16 > fp32:stochastic", None),
    ("fp8_e5m2", "e5m10:rtz:ftz", None),
    ("mxfp4", "fixed8*8 > fixed12*4 > e6m9:ftz", None),         # fixed into fixed
    ("mxfp6_e2m3", "fixed20*32 > e8m7:sat", True),           # 32 x 60 x 60 < 2^19
    ("mxint8", "fixed14*32 > fp16", None),
    ("int8", "fixed16", False),                                 # saturates
    ("int8", "fixed16:wrap", False),
    ("int8", "fixed32", True),                                  # all exact: one BLAS call
    ("int8", "fixed60*32 > fp32", True),            # sequential: level 1 too wide for float64
    ("hbfp6@16", "fixed10:wrap*8 > fixed14*2 > e5m10:stochastic", False),  # wrap, fixed > sr
    ("fp8_e4m3", "e5m10:rna*8 > fp32:rna", None),               # the deterministic fast loop
    ("fp8_e4m3", "e5m10:rtz*8 > bf16:rtz", None),
    ("fp32", "fp32", None),
    ("bf16", "e4m3:sat*8 > e5m2", None),                        # tiny formats saturate
    ("fp16", "e11m52", None),
    ("fp16", "e11m40:stochastic:ftz", None),
]


@pytest.mark.parametrize("fmt,plan,fast", CASES)
def test_gemm_matches_oracle(fmt, plan, fast):
    a = gaussian((3, 128), 1)
    b = gaussian((128, 4), 2, (-2, 2)).T.copy().T
    check(a, b, fmt, plan, expect_fast=fast)


@pytest.mark.parametrize("plan", ["fp32", "e5m10", "e5m10*4 > fp32", "e4m3:rtz", "bf16:stochastic"])
def test_unfused_products_match_oracle(plan):
    check(gaussian((2, 64), 3), gaussian((64, 3), 4), "fp32", plan, fused=False)


def test_mixed_operand_formats():
    check(gaussian((2, 96), 5), gaussian((96, 3), 6), "hbfp4@32", "fixed16*32 > fp32",
          fmt_b="mxfp4")
    check(gaussian((2, 96), 5), gaussian((96, 3), 6), "fp8_e4m3", "e5m10*32 > fp32",
          fmt_b="fp8_e5m2")


def adversarial(k):
    """Rows built to hit the corners, against B = ones: exact ties of the accumulator,
    addends far below the register (full swamps), cancellation, growth past fp16's max."""
    rows = np.zeros((6, k))
    rows[0, 0], rows[0, 1:] = 1.0, 2.0**-11                      # ties at the fp16 half-ulp
    rows[1, 0], rows[1, 1:] = 2.0**20, 1.0                       # fully swamped in fp16
    rows[2, ::2], rows[2, 1::2] = 1000.0, -1000.0 + 2.0**-8      # cancellation
    rows[2, -1] = 3.0
    rows[3] = 3000.0                                             # beyond 65504 in fp16
    rows[4] = np.where(np.arange(k) % 3 == 0, 1.5, 2.0**-13)     # subnormal-level addends
    rows[5] = -rows[3]
    return rows.astype(np.float32)


@pytest.mark.parametrize("plan", ["fp16", "fp16:sat", "fp16:rtz", "fp16:stochastic", "fp16:ftz",
                                  "e5m10*16 > fp16", "e5m10:stochastic*8 > e5m10:sat"])
def test_corner_cases_match_oracle(plan):
    got, stats = check(adversarial(40), np.ones((40, 2), np.float32), "fp32", plan)
    assert sum(int(np.sum(lv.full_swamps)) for lv in stats.levels) > 0


def boundary_operands(total):
    """INT8 operands with scale 1 whose single dot product sums exactly to ``total``:
    A = [0, 127, 1, ..., 1], B = [127, 1, 1, ..., 1] -> 0 + 127 + (k - 2) x 1."""
    k = total - 127 + 2
    a = np.ones((1, k))
    a[0, :2] = [0, 127]
    b = np.ones((k, 1))
    b[0, 0] = 127
    return a, b


@pytest.mark.parametrize("plan", ["fixed16", "fixed16:wrap"])
def test_fixed_overflow_exactly_at_the_boundary(plan):
    a, b = boundary_operands(2**15 - 1)                # fits exactly: no overflow
    out, stats = matmul(a, b, "int8", plan=plan)
    assert out[0, 0] == 2**15 - 1 and stats.levels[0].overflows == 0
    a, b = boundary_operands(2**15)                    # one LSB more: the last addition overflows
    out, stats = matmul(a, b, "int8", plan=plan, fast_path=False)
    assert stats.levels[0].overflows == 1
    assert out[0, 0] == (2**15 - 1 if plan == "fixed16" else -(2**15))


@pytest.mark.parametrize("plan,out,overflows", [("fixed8*32 > fp32", 31.75, 2),
                                               ("fixed8:wrap*32 > fp32", -27.75, 1),
                                               ("fixed9*32 > fp32", 36.25, 0)])
def test_mx_products_count_in_the_block_lsb(plan, out, overflows):
    """Worked by hand, independent of how the engine prepares operands: MXFP4 A = [6, 0.5,
    0, ...] (one block of 32, X = floor(log2 6) - 2 = 0), B = A^T. E2M1 elements are
    multiples of 2^-1, so products count in units of 2^-2: 6 x 6 = 144 units, 0.5 x 0.5 = 1.
    fixed8 (max 127) saturates at the first product and again at the second: 127 units =
    31.75; wrapping, 144 becomes -112, then -111 units = -27.75; fixed9 holds 145 = 36.25."""
    a = np.zeros((1, 32))
    a[0, :2] = [6.0, 0.5]
    for fast in (True, False):
        got, stats = matmul(a, a.T.copy(), "mxfp4", plan=plan, fast_path=fast)
        assert (float(got[0, 0]), stats.levels[0].overflows) == (out, overflows)


def test_fixed_overflow_matches_oracle_on_short_rows():
    a = np.full((2, 40), 100.0)
    a[1, ::2] = -100.0
    a[1, :4] = 127.0
    check(a, np.full((40, 3), 90.0), "int8", "fixed16")
    check(a, np.full((40, 3), 90.0), "int8", "fixed16:wrap")


@pytest.mark.parametrize("fmt,plan,exact", [
    # FP8 E4M3 products: multiples of 2^-18 below 448^2 < 2^18; e5m10 registers: multiples of
    # 2^-24 below 2^16. Sums: below 2^19, multiples of 2^-24: 43 bits, exact in float64.
    ("fp8_e4m3", "e5m10", True),
    ("fp8_e4m3", "fp32", False),        # fp32 registers span 2^-149 .. 2^128
    ("fp8_e4m3", "e8m10", False),       # e8: subnormals down to 2^-136
    ("int8", "fixed52", True),          # products <= 127^2, register <= 2^51
    ("int8", "fixed53", False),         # the register does not fit below 2^52
])
def test_which_level_one_sums_are_exact_in_float64(fmt, plan, exact):
    """The condition that lets the sequential kernel skip TwoSum (float) or hold the register
    in float64 (fixed), worked by hand; the oracle tests above check both kernels' results."""
    from hbfpsim.mac.engine import _exact_in_float64
    x = gaussian((4, 64), 7, (0, 1))
    op_a, op_b = prepare(x, formats.get(fmt), 1), prepare(x.T, formats.get(fmt), 0)
    assert _exact_in_float64(AccumulationPlan.parse(plan), op_a, op_b) == exact


@pytest.mark.parametrize("plan,want", [("fp32", 1 + 2.0**-23), ("fp32:rtz", 1.0),
                                       ("fp32:rna", 1 + 2.0**-23)])
def test_sum_inexact_in_float64_rounds_as_the_exact_value(plan, want):
    """1 + (1 + 2^-23)(2^-24 + 2^-47) = 1 + 2^-24 + 2^-46 + 2^-70: float64 holds 1 + 2^-24 +
    2^-46 (TwoSum's lo is 2^-70); past fp32's midpoint 1 + 2^-24 either way, so to nearest
    rounds up and toward zero down, worked by hand (the kernels round float64's part only)."""
    a = np.array([[1.0, 1 + 2.0**-23]], np.float32)
    b = np.array([[1.0], [2.0**-24 + 2.0**-47]], np.float32)
    for fast in (True, False):
        out, stats = matmul(a, b, "fp32", plan=plan, fast_path=fast)
        assert out[0, 0] == want and stats.levels[0].inexact == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_fast_path_in_several_batches_matches_oracle(monkeypatch, threads):
    """Chunk sums handed to the cascade a few at a time (registers kept between calls), in
    bands of one row on one or two threads, give the oracle's bits, as one call does
    (registers kept per row inside it)."""
    from hbfpsim.mac import engine
    a, b = gaussian((3, 256), 8), gaussian((256, 4), 9, (-2, 2))
    monkeypatch.setattr(engine, "BAND_BYTES", 3 * 4 * 4)     # three float32 chunk rows
    monkeypatch.setattr(engine, "PARALLEL_MACS", 0)          # threads even for 3 x 4 x 256
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        _, stats = check(a, b, "hbfp4", "fixed16*8 > e5m10:stochastic*4 > fp32",
                         expect_fast=True)
    finally:
        numba.set_num_threads(before)
    assert (stats.levels[1].inputs, stats.levels[2].inputs) == (32, 8)    # 11 calls a band
