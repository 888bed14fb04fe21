"""``simulate_many`` (hbfpsim/array/many.py: a configuration's shapes in one numba call)
against ``simulate`` one GEMM at a time: equal reports, every field, on the shipped traces
and presets, all three dataflows, non-square arrays, other memories, random shapes, the
shapes it hands back to the per-GEMM path, its refusals; and ``Costing.prime``."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from hbfpsim import trace
from hbfpsim.array import grouped, load, many, simulate, simulate_many
from hbfpsim.array.mapping import MAX_DIM
from hbfpsim.config import ArrayConfig
from hbfpsim.numerics import Numerics
from hbfpsim.replay.record import Costing

TRACES = sorted(p.parent for p in (Path(__file__).parents[1] / "traces").glob("*/manifest.json"))
PRESETS = ("small16", "array32", "tpu128", "array256")
DATAFLOWS = ("ws", "os", "is")


def trace_shapes():
    """The distinct (M, N, K) of every shipped trace."""
    return sorted({(r.m, r.n, r.k) for path in TRACES for r in trace.open(path).records})


def per_gemm(config, shapes, numerics=None):
    return [simulate(config, m, n, k, numerics=numerics) for m, n, k in shapes]


def test_the_shipped_traces_are_there():
    assert len(TRACES) >= 5 and len(trace_shapes()) > 60


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("df", DATAFLOWS)
def test_every_shipped_shape_on_every_preset_and_dataflow(preset, df):
    config = dataclasses.replace(load(preset), dataflow=df)
    shapes = trace_shapes()
    assert simulate_many(config, shapes) == per_gemm(config, shapes)
    if df == load(preset).dataflow:       # the presets as shipped: every shape in the kernel
        bits = grouped.checked_bits(config, Numerics.of(config))
        rows = many._time_all(config, bits, many._mappings(config, shapes)[1])
        assert all(row[0] for row in rows)


def test_memories_and_non_square_arrays_on_the_traces():
    """Slow, fast and ideal DRAM, latencies, SRAM limits, single buffering, tall and wide
    arrays: ResNet-50's and BERT's shapes equal simulate's on each."""
    shapes = trace_shapes()
    base = load("array32")
    for rows, cols, bandwidth, latency, sram, double in [
            (8, 64, 2.0, 100, 0.0, True), (64, 8, 0.5, 0, 16.0, False),
            (16, 48, math.inf, 0, 0.0, True), (128, 4, 100.0, 5000, 2.0, False),
            (1, 1, 3.5, 7, 0.0, True)]:
        for df in DATAFLOWS:
            config = dataclasses.replace(base, rows=rows, cols=cols, dataflow=df,
                                         dram_bytes_per_cycle=bandwidth,
                                         dram_latency_cycles=latency,
                                         sram_bytes_per_cycle=sram, double_buffered=double)
            assert simulate_many(config, shapes) == per_gemm(config, shapes), config


def random_config(rng, df):
    return ArrayConfig(
        rows=int(rng.integers(1, 40)), cols=int(rng.integers(1, 40)), dataflow=df,
        input=str(rng.choice(["fp32", "bf16", "hbfp4", "mxfp6_e3m2", "int8"])),
        weight=str(rng.choice(["fp32", "fp8_e4m3", "hbfp6"])),
        output=str(rng.choice(["fp32", "fp16"])),
        input_kib=float(rng.choice([8, 64, 1024])), weight_kib=float(rng.choice([8, 64, 1024])),
        output_kib=float(rng.choice([8, 64, 1024])), double_buffered=bool(rng.integers(2)),
        sram_bytes_per_cycle=float(rng.choice([0, 0, 1, 4, 32])),
        dram_bytes_per_cycle=float(rng.choice([0.5, 1, 3.5, 16, 100, math.inf])),
        dram_latency_cycles=int(rng.choice([0, 0, 7, 60, 5000])))


def random_shapes(rng, config, count):
    """Shapes of 1-sized dimensions, one fold, two, many, exact and partial last folds."""
    def extent(side):
        folds = int(rng.choice([1, 1, 2, 3, int(rng.integers(4, 40)), int(rng.integers(40, 400))]))
        last = int(rng.choice([side, 1, int(rng.integers(1, side + 1))]))
        return (folds - 1) * side + last
    shapes = []
    for _ in range(count):
        sr, sc, t = extent(config.rows), extent(config.cols), int(rng.choice([1, rng.integers(1, 300)]))
        shapes.append({"ws": (t, sc, sr), "os": (sr, sc, t), "is": (sc, t, sr)}[config.dataflow])
    return shapes


def test_random_shapes_and_configurations():
    rng = np.random.default_rng(27)
    for trial in range(60):
        config = random_config(rng, DATAFLOWS[trial % 3])
        shapes = random_shapes(rng, config, 12) + [(1, 1, 1)]
        assert simulate_many(config, shapes) == per_gemm(config, shapes), (config, shapes)


def test_numerics_order_and_repeats():
    """A schedule's numerics replace the array's; reports come back in the order asked,
    repeated shapes included; no shapes, no reports."""
    config = load("array32")
    numerics = Numerics.of(dataclasses.replace(config, input="bf16", weight="fp8_e4m3",
                                               block_accumulator=None, accumulator="fp32",
                                               output="fp32"))
    shapes = [(3136, 64, 576), (5, 6, 7), (3136, 64, 576), (np.int64(5), 6, 7)]
    got = simulate_many(config, shapes, numerics=numerics)
    assert got == per_gemm(config, [(3136, 64, 576), (5, 6, 7)] * 2, numerics)
    assert got[0] is got[2] and got[1] is got[3]
    assert got[0] != simulate(config, 3136, 64, 576)
    assert simulate_many(config, []) == []


def test_shapes_it_hands_to_the_per_gemm_path():
    """Many column passes (past the numba step budget: grouped.py's jumps), schedules and
    traffic near int64's range: the same reports as simulate, in the same list."""
    config = load("array32")
    wide = (64, 32 * grouped.STEP_BUDGET, 64)                       # 32768 column passes
    bytes_past_2_60 = (2**40, 4096, 4096)          # 2^14 folds streaming 2^40 rows each
    cycles_past_2_60 = (2**40, 32768, 32768)       # 2^20 such folds: at most 2^61 cycles
    ideal = dataclasses.replace(config, dram_bytes_per_cycle=math.inf)
    for c, shapes in [(config, [wide, (100, 100, 100), bytes_past_2_60]),
                      (ideal, [wide, (100, 100, 100), bytes_past_2_60, cycles_past_2_60])]:
        got = simulate_many(c, shapes)
        assert got == per_gemm(c, shapes)
        assert got[-1].dram["reads"] + got[-1].sram["output"]["writes"] >= 2**60


def test_the_per_gemm_refusals():
    """A transfer or a schedule past 2^61 cycles: simulate's ValueError."""
    slow = dataclasses.replace(load("array32"), dram_bytes_per_cycle=2.0**-10)
    for shape in [(2**40, 2**40, 2**40), (2**40, 4, 2**20)]:
        with pytest.raises(ValueError) as want:
            simulate(slow, *shape)
        with pytest.raises(ValueError) as got:
            simulate_many(slow, [(3, 3, 3), shape])
        assert str(got.value) == str(want.value)


@pytest.mark.parametrize("shapes, error, words", [
    (5, TypeError, "shapes must be an iterable"),
    ([(1, 2)], TypeError, "shapes[0] must be a GEMM shape"),
    ([(1, 2, 3), 7], TypeError, "shapes[1] must be a GEMM shape"),
    ([(1, 2, 3), (0, 2, 3)], ValueError, "shapes[1] = (0, 2, 3): GEMM dimension M"),
    ([(1, -2, 3)], ValueError, "shapes[0] = (1, -2, 3): GEMM dimension N"),
    ([(1, 2, MAX_DIM + 1)], ValueError, "GEMM dimension K must be an integer in [1, 2^40]"),
    ([(1, 2, 3), (True, 2, 3)], ValueError, "shapes[1] = (True, 2, 3): GEMM dimension M"),
    ([(2.0, 2, 3)], ValueError, "shapes[0] = (2.0, 2, 3)"),
    ([("3", 2, 3)], ValueError, "shapes[0]"),
    ([(2**64, 2, 3)], ValueError, "shapes[0]"),
])
def test_bad_shapes(shapes, error, words):
    with pytest.raises(error) as got:
        simulate_many(load("array32"), shapes)
    assert words in str(got.value)


def test_bad_configuration_or_numerics():
    with pytest.raises(TypeError, match="expected an ArrayConfig"):
        simulate_many("array32", [(1, 2, 3)])
    with pytest.raises(TypeError, match="expected a Numerics"):
        simulate_many(load("array32"), [(1, 2, 3)], numerics="hbfp4")
    tiny = dataclasses.replace(load("array32"), input_kib=0.25)
    with pytest.raises(ValueError, match="input_kib"):
        simulate_many(tiny, [(1, 2, 3)])


def test_costing_prime_gives_the_unprimed_costs():
    """prime then lookups == lookups alone, every Costed field; already-costed pairs are
    kept as they are."""
    config = load("array32")
    other = Numerics.of(dataclasses.replace(config, input="int8", weight="int8",
                                            block_accumulator=None, accumulator="fixed32",
                                            output="fp32"))
    shapes = trace_shapes()[:40]
    wanted = [(numerics, *shape) for numerics in (Numerics.of(config), other)
              for shape in shapes]
    plain, primed = Costing(config), Costing(config)
    kept = primed(*wanted[3])
    primed.prime(wanted + wanted[:5])
    assert primed(*wanted[3]) is kept
    for key in wanted:
        assert primed._done[key] == plain(*key)


def test_costing_prime_refuses_what_is_not_a_gemm():
    costing = Costing(load("array32"))
    with pytest.raises(TypeError, match=r"wanted\[1\] must be \(numerics, M, N, K\)"):
        costing.prime([(Numerics.of(costing.config), 4, 5, 6), (4, 5)])
    with pytest.raises(ValueError, match=r"shapes\[0\] = \(0, 5, 6\)"):
        costing.prime([(Numerics.of(costing.config), 0, 5, 6)])
    with pytest.raises(TypeError, match="expected a Numerics"):
        costing.prime([("hbfp4", 4, 5, 6)])
    assert costing._done == {}
