"""The MAC engine's public surface: specs, plans, matmul arguments, results."""

import numba
import numpy as np
import pytest

import hbfpsim
from hbfpsim.mac import (AccumulationPlan, FixedAccumulator, FloatAccumulator, Level, as_plan,
                         matmul, parse_accumulator)


@pytest.mark.parametrize("spec,want", [
    ("fixed16", FixedAccumulator(16)),
    ("FIXED12:wrap", FixedAccumulator(12, wrap=True)),
    ("fp32", FloatAccumulator(8, 23)),
    ("e5m10:stochastic", FloatAccumulator(5, 10, "stochastic")),
    ("bf16:rtz:ftz:sat", FloatAccumulator(8, 7, "rtz", subnormals=False, saturate=True)),
    ("e11m52", FloatAccumulator(11, 52)),
])
def test_parse_accumulator(spec, want):
    assert parse_accumulator(spec) == want


@pytest.mark.parametrize("spec,canonical", [("e5m10", "fp16"), ("e8m23:rne:sub:inf", "fp32"),
                                            ("bf16:sat:ftz:rtz", "bf16:rtz:ftz:sat"),
                                            ("fixed9:sat", "fixed9")])
def test_accumulator_names_round_trip(spec, canonical):
    assert str(parse_accumulator(spec)) == canonical
    assert parse_accumulator(canonical) == parse_accumulator(spec)


def test_float_accumulator_range():
    fp16 = parse_accumulator("fp16")
    assert (fp16.emin, fp16.emax, fp16.max) == (-14, 15, 65504.0)
    assert parse_accumulator("fixed8").min == -128 and parse_accumulator("fixed8").max == 127


@pytest.mark.parametrize("spec,message", [
    ("fixed7", r"width must be in \[8, 64\]"),
    ("fixed65", "width must be in"),
    ("e1m3", "needs 2 <= E <= 11"),
    ("e5m53", "needs 2 <= E <= 11 and 1 <= M <= 52"),
    ("fp64", "unknown accumulator 'fp64'"),
    ("fp32:nearest", "unknown modifier 'nearest'"),
    ("fixed16:rne", "unknown modifier 'rne' .*sat, wrap"),
    ("fp32:rtz:rne", "rounding given twice"),
])
def test_bad_accumulators(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_accumulator(spec)


def test_accumulators_of_the_wrong_type():
    with pytest.raises(TypeError, match="must be a string"):
        parse_accumulator(32)


def test_plan_text_and_list_forms():
    plan = AccumulationPlan.parse(" fixed16*64 > e5m10:rtz*4 > fp32 ")
    assert str(plan) == "fixed16*64 > fp16:rtz*4 > fp32"
    assert plan == as_plan([(64, "fixed16"), (4, "e5m10:rtz"), (None, "fp32")])
    assert plan.levels[0] == Level(FixedAccumulator(16), 64)
    assert plan.spans(1000) == [64, 256, 1000] and plan.inputs(1000) == [1000, 16, 4]
    assert as_plan("e5m10").levels == (Level(FloatAccumulator(5, 10)),)


@pytest.mark.parametrize("text,message", [
    ("fp32*64", "the last level sums everything"),
    ("fixed16 > fp32", "level 1 needs a chunk length"),
    ("fp32*4 > fixed16", "fixed-point levels must come before"),
    ("fixed16*x > fp32", "chunk length 'x' is not a positive integer"),
    ("", "non-empty string"),
    ("fixed16*0 > fp32", r"needs a chunk length in \[1, 2\^40\]"),
    ("fp32*" + "9" * 30 + " > fp32", r"needs a chunk length in \[1, 2\^40\]"),
    ("fp32*\u0663 > fp32", "is not a positive integer"),          # an Arabic-Indic 3
])
def test_bad_plans(text, message):
    with pytest.raises(ValueError, match=message):
        AccumulationPlan.parse(text)


def test_unfused_needs_a_float_first_level():
    with pytest.raises(ValueError, match="fused=False rounds products"):
        AccumulationPlan.parse("fixed16*64 > fp32", fused=False)


@pytest.mark.parametrize("plan,error,message", [
    ([("64", "fixed16"), (None, "fp32")], TypeError, "the length an integer or None"),
    ([("fixed16", 64)], TypeError, r"expected \(length, accumulator\)"),
    ([(None, "fp64")], ValueError, "unknown accumulator 'fp64'"),
    (3.5, TypeError, "plan must be an AccumulationPlan"),
    ([1, 2], TypeError, r"pairs, got 1"),
])
def test_bad_plan_arguments(plan, error, message):
    with pytest.raises(error, match=message):
        as_plan(plan)


def test_matmul_argument_errors():
    a, b = np.ones((4, 8)), np.ones((8, 3))
    cases = [
        (lambda: matmul(np.ones(8), b, "fp32"), "A must be a 2-D array, got shape"),
        (lambda: matmul(a, np.ones((7, 3)), "fp32"), "inner dimensions .K. differ"),
        (lambda: matmul(a, b, "fp32", stats="all"), "stats='all' is not one of"),
        (lambda: matmul(a, b, "fp32", plan="fp32:stochastic"), "needs seed=<int"),
        (lambda: matmul(a, b, "fp32", operand_rounding="stochastic"), "needs seed=<int"),
        (lambda: matmul(a, b, "fp32", plan="fixed32"), "needs integer products below 2"),
        (lambda: matmul(np.ones((2, 64)), np.ones((64, 2)), "mxfp4", plan="fixed16*64 > fp32"),
         "straddle the 32-element blocks of mxfp4"),
        (lambda: matmul(a, b, "fp7"), "unknown format 'fp7'"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="B must be a real numeric array"):
        matmul(a, b.astype(complex), "fp32")


def test_empty_shapes():
    out, stats = matmul(np.ones((3, 0)), np.ones((0, 2)), "hbfp4", plan="fixed16*64 > fp32")
    assert out.shape == (3, 2) and not out.any() and stats.levels[0].inputs == 0
    assert matmul(np.ones((0, 5)), np.ones((5, 2)), "fp16").out.shape == (0, 2)


def test_result_and_stats():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 200)), rng.standard_normal((200, 5))
    result = hbfpsim.matmul(a, b, "hbfp4", plan="fixed16*64 > e5m10")
    out, stats = result
    assert out is result.out and out.dtype == np.float64 and out.shape == (6, 5)
    assert stats.shape == (6, 5, 200) and str(stats.plan) == "fixed16*64 > fp16"
    assert [lv.inputs for lv in stats.levels] == [200, 4]
    assert stats.levels[0].fast_path and not stats.levels[1].fast_path
    table = stats.summary().splitlines()
    assert len(table) == 3 and "fixed16" in table[1] and "BLAS" in table[1]
    per = matmul(a, b, "hbfp4", plan="fixed16*64 > e5m10", stats="element").stats
    assert per.levels[1].inexact.shape == (6, 5)
    for name in ("inexact", "partial_swamps", "full_swamps", "overflows", "inexact_conversions"):
        assert int(getattr(per.levels[1], name).sum()) == getattr(stats.levels[1], name)


def test_int8_scales_are_applied_after_accumulation():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 32)), rng.standard_normal((32, 3))
    out, _ = matmul(a, b, "int8", plan="fixed32")
    from hbfpsim import formats
    qa = formats.get("int8").encode(a, axis=1)
    qb = formats.get("int8").encode(b, axis=0)
    ka = np.where(qa.sign == 1, -1, 1) * qa.code.astype(np.int64)
    kb = np.where(qb.sign == 1, -1, 1) * qb.code.astype(np.int64)
    want = (ka @ kb) * (qa.scale.astype(np.float64) * qb.scale.astype(np.float64))
    assert np.array_equal(out, want)


def test_operand_stochastic_rounding_is_seeded():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 64)), rng.standard_normal((64, 3))
    one = matmul(a, b, "hbfp4", operand_rounding="stochastic", seed=5).out
    assert np.array_equal(one, matmul(a, b, "hbfp4", operand_rounding="stochastic", seed=5).out)
    assert not np.array_equal(one, matmul(a, b, "hbfp4", operand_rounding="stochastic",
                                          seed=6).out)


@pytest.mark.parametrize("dtype, out", [("<f4", None), ("<f8", "<f4"), (">f4", None),
                                        ("<i4", None), ("<f8", None)])
@pytest.mark.parametrize("shape", [(1, 1), (37, 70), (70, 37)])
def test_transposed_is_numpys_transpose(dtype, out, shape):
    """The tiled, parallel copy gives x.T, C-ordered, with astype's values (tile edges
    included: 37 and 70 are not multiples of 32); other dtypes go through NumPy."""
    from hbfpsim.mac.copies import transposed
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype) * 1000
    got = transposed(x, out and np.dtype(out))
    want = x.T.astype(out or x.dtype)
    assert got.flags.c_contiguous and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    target = np.full((shape[1] + 2, shape[0]), -1.0, np.float32)
    transposed(x.astype(np.float64), out=target[1:-1])       # into rows of a bigger array
    np.testing.assert_array_equal(target[1:-1], x.T.astype(np.float32))
    assert (target[0] == -1).all() and (target[-1] == -1).all()


def test_one_blas_thread_limits_and_restores():
    """Inside the block every BLAS library NumPy and numba use runs one thread; afterwards
    each is back to its own setting."""
    import threadpoolctl
    from hbfpsim.formats.threads import one_blas_thread
    before = {d["filepath"]: d["num_threads"] for d in threadpoolctl.threadpool_info()
              if d["user_api"] == "blas"}
    with one_blas_thread():
        inside = [d for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
        assert inside and all(d["num_threads"] == 1 for d in inside)
    after = {d["filepath"]: d["num_threads"] for d in threadpoolctl.threadpool_info()
             if d["user_api"] == "blas"}
    assert {p: after[p] for p in before} == before


def test_calling_thread_only_keeps_large_work_off_the_pool_of_this_thread_alone():
    """Inside the block neither the rounding kernels nor the MAC engine use numba's pool
    for this thread, whatever the size (and the bits are the pool's); another thread and
    this one afterwards are unaffected."""
    import threading
    from hbfpsim import formats
    from hbfpsim.formats import threads
    big = 2 * threads.PARALLEL_ELEMENTS
    assert threads.parallel(big) and not threads.parallel(10)
    x = np.random.default_rng(2).standard_normal((64, big // 64)).astype(np.float32)
    pooled = formats.quantize(x, "hbfp4")
    seen = []
    with threads.calling_thread_only():
        assert not threads.parallel(big)
        with threads.threads_for(big):
            seen.append(numba.get_num_threads())
        worker = threading.Thread(target=lambda: seen.append(threads.parallel(big)))
        worker.start()
        worker.join()
        np.testing.assert_array_equal(formats.quantize(x, "hbfp4"), pooled)
    assert seen == [1, True] and threads.parallel(big)


@pytest.mark.parametrize("shape, span", [((3, 10), 4), ((5, 64), 64), ((1, 1), 8), ((7, 9), 3)])
def test_by_chunk_and_max_abs_are_numpys(shape, span):
    """A cut into K chunks (zero padded) equals NumPy's reshape of the padded array; the
    parallel peak equals NumPy's."""
    from hbfpsim.mac.copies import by_chunk, max_abs
    x = np.random.default_rng(1).integers(-99, 99, shape).astype(np.float64)
    k = shape[1]
    padded = np.zeros((shape[0], -(-k // span) * span))
    padded[:, :k] = x
    want = padded.reshape(shape[0], -1, span).transpose(1, 0, 2).astype(np.float32)
    got = by_chunk(x, span, np.float32)
    assert got.flags.c_contiguous and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert max_abs(x) == np.abs(x).max() and max_abs(np.zeros((0, 3))) == 0.0
