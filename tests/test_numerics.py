"""The seams: one rounding vocabulary for formats and accumulators, float layouts derived from
one spec, and the resolved numerics every layer reads."""

import os
import pickle
import subprocess
import sys
from dataclasses import replace

import ml_dtypes
import numpy as np
import pytest

from hbfpsim import matmul, quantize
from hbfpsim.array import Mapping, plan_for, simulate
from hbfpsim.config import ArrayConfig, ConfigError
from hbfpsim.cost import array_cost
from hbfpsim.formats import FloatSpec, Rounding, get
from hbfpsim.mac import FixedAccumulator, FloatAccumulator, parse_accumulator
from hbfpsim.numerics import Numerics


@pytest.mark.parametrize("spelling,mode", [("rne", Rounding.RNE), ("even", Rounding.RNE),
                                           ("RNA", Rounding.RNA), ("away", Rounding.RNA),
                                           ("rtz", Rounding.RTZ), ("zero", Rounding.RTZ),
                                           (" Stochastic ", Rounding.STOCHASTIC)])
def test_every_spelling_names_one_mode(spelling, mode):
    assert Rounding.parse(spelling) is mode
    assert parse_accumulator(f"fp16:{spelling.strip()}").rounding is mode


def test_modes_have_distinct_codes_and_print_their_name():
    assert sorted(int(r) for r in Rounding) == [0, 1, 2, 3]
    assert [str(r) for r in Rounding] == ["rne", "rna", "rtz", "stochastic"]
    assert f"{Rounding.RTZ}" == "rtz" and str(parse_accumulator("e5m10:zero")) == "fp16:rtz"
    for bad in ("nearest", 1, None):
        with pytest.raises(ValueError, match="is not a rounding mode"):
            Rounding.parse(bad)


@pytest.mark.parametrize("mode", ["even", "away", "rtz"])
def test_a_format_and_an_accumulator_round_alike(mode):
    """The same mode name rounds a value the same way whether a format quantizes it or an
    accumulator register receives it: FP16 quantization against an FP16 register summing one
    exact FP32 product (x * 1). Ties, just-off-ties and the subnormal range included."""
    rng = np.random.default_rng(5)
    ulp = np.ldexp(1.0, rng.integers(-24, 5, 400) - 10)               # FP16 steps
    x = (rng.integers(1, 2**11, 400) * ulp + ulp * rng.choice([0.5, 0.25, 0.75], 400))
    x = (x * rng.choice([-1, 1], 400)).astype(np.float32)             # exact in FP32
    want = quantize(x, "fp16", rounding=mode).astype(np.float64)
    got = np.array([matmul(np.float32([[v]]), np.float32([[1.0]]), "fp32",
                           plan=f"e5m10:{mode}").out[0, 0] for v in x])
    assert np.array_equal(got, want)
    ties = np.abs(x.astype(np.float64) - want) == ulp / 2
    assert ties.sum() >= 40                                           # the case that differs


@pytest.mark.parametrize("e,m,scalar", [(8, 23, np.float32), (5, 10, np.float16),
                                        (8, 7, ml_dtypes.bfloat16), (5, 2, ml_dtypes.float8_e5m2),
                                        (11, 52, np.float64)])
def test_ieee_layouts_agree_with_ml_dtypes(e, m, scalar):
    """The accumulators' layouts are derived from one formula; ml_dtypes' finfo is the
    independent source for the IEEE-style types it knows."""
    info = ml_dtypes.finfo(scalar)
    spec, acc = FloatSpec.ieee(e, m), FloatAccumulator(e, m)
    assert (spec.emin, spec.max, spec.bits) == (int(info.minexp), float(info.max), info.bits)
    assert (acc.emin, acc.emax, acc.max, acc.bits) == (spec.emin, spec.emax, spec.max, spec.bits)
    assert spec.emax == int(info.maxexp) - 1


def test_fn_element_layouts_are_not_ieee():
    """E4M3 (no Inf, one NaN code) reaches 448, where the IEEE-style rule would stop at 240."""
    assert FloatSpec.of(ml_dtypes.float8_e4m3fn).max == 448.0
    assert FloatSpec.ieee(4, 3).max == 240.0


def test_accumulators_validate_when_built_from_code():
    assert FloatAccumulator(5, 10, "rtz") == parse_accumulator("fp16:rtz")
    with pytest.raises(ValueError, match=r"e12m3: e\{E\}m\{M\} needs 2 <= E <= 11"):
        FloatAccumulator(12, 3)
    with pytest.raises(ValueError, match=r"fixed7: fixed-point width must be in \[8, 64\]"):
        FixedAccumulator(7)
    with pytest.raises(ValueError, match="is not a rounding mode"):
        FloatAccumulator(5, 10, "nearest")


def test_numerics_from_names_and_objects():
    n = Numerics.create(input="HBFP4", weight=get("mxfp4"), accumulator="e5m10:rtz",
                        output=FloatAccumulator(8, 23), block_accumulator="fixed16")
    assert (n.input.name, n.weight.name, str(n.accumulator), str(n.output),
            str(n.block_accumulator)) == ("hbfp4@64", "mxfp4", "fp16:rtz", "fp32", "fixed16")
    assert n.psum_bits == 32 and Numerics.create().weight.name == "fp32"
    with pytest.raises(TypeError, match="Numerics.input must be"):
        Numerics("hbfp4", get("hbfp4"), FloatAccumulator(8, 23), FloatAccumulator(8, 23))


def test_numerics_pickled_into_another_process_hash_as_its_own():
    """A sweep sends schedules to worker processes, whose string hashes are salted
    differently: a Numerics unpickled there finds the one built there in a dict."""
    sent = pickle.dumps(Numerics.create("hbfp4", accumulator="e5m10"))
    probe = ("import pickle, sys; from hbfpsim.numerics import Numerics; "
             "got = pickle.loads(sys.stdin.buffer.read()); "
             "print({Numerics.create('hbfp4', accumulator='e5m10'): 'found'}.get(got))")
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", probe], input=sent, capture_output=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.stdout.decode().strip() == "found"


@pytest.mark.parametrize("key,value,message", [
    ("input", "hbfp1", r"\[numerics\] input: hbfp1: mantissa bits"),
    ("weight", "fp7", r"\[numerics\] weight: unknown format 'fp7'"),
    ("accumulator", "e5m10:rnd", r"\[numerics\] accumulator: .*unknown modifier 'rnd'"),
    ("output", "fixed99", r"\[numerics\] output: .*width must be in \[8, 64\]"),
    ("block_accumulator", "fp16", r"\[numerics\] block_accumulator: expected a fixed-point"),
])
def test_numerics_errors_name_the_source_and_key(key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        Numerics.create(**{key: value}, source="my.toml")
    assert str(err.value).startswith("my.toml: ")


def test_each_configuration_is_resolved_once_and_every_layer_reads_it():
    config = ArrayConfig(rows=16, cols=16, dataflow="ws", input="hbfp4", weight="hbfp4",
                         block_accumulator="fixed12", accumulator="e5m10", output="e6m9")
    numerics = Numerics.of(config)
    assert Numerics.of(replace(config, rows=32, name="wider")) is numerics   # same numerics
    report = simulate(config, 64, 32, 128)
    assert report.plan == plan_for(Mapping.of(64, 32, 128, config), numerics)
    assert [lv.accumulator for lv in report.plan.levels] == [
        numerics.block_accumulator, numerics.output]                  # 16 rows < one block
    assert array_cost(config).mac.accumulator is numerics.block_accumulator
    out, stats = matmul(np.ones((64, 128)), np.ones((128, 32)), numerics.input,
                        numerics.weight, report.plan)
    assert stats.plan is report.plan and float(out[0, 0]) == 128.0
    assert stats.levels[0].accumulator is numerics.block_accumulator
