"""The numeric surfaces at their boundaries: values beyond float32, arguments of the wrong
type, trace records outside their capture's epochs, schedule ranges that never apply.

1. Finite input beyond a format's range follows the format's documented overflow rule,
   never a float32 cast: the oracles are the formats' largest values worked out by hand
   ((2 - 2^-23) 2^127 for fp32, 65504 for fp16, 7 x 2^124 for HBFP4 at the clamped exponent
   127, 6 x 2^127 for MXFP4 at the clamped scale) and the IEEE round-to-nearest overflow
   threshold (max + half an ulp: (2 - 2^-24) 2^127 for fp32, 65520 for fp16). HBFPEmulator
   compat, which works in float32, refuses float64 that float32 cannot hold and agrees with
   float32 input just below. ``matmul`` counts the operand elements that overflow to Inf
   (``stats.operand_overflows``): the oracle is the number of elements at or above the
   threshold, counted with NumPy; outputs are what IEEE arithmetic gives (Inf, NaN for
   Inf - Inf); a fixed-point plan refuses them; a saturating format's accumulator overflow
   is counted per output (max + max > max, M x N of them).
2. Wrong argument types are TypeErrors saying what the argument must be; wrong values stay
   ValueErrors (and are not TypeErrors).
3. A trace record outside its capture's epochs (``capture.epochs`` N: epochs 0 to N - 1;
   ``capture.captured_epochs``, or ``capture.epochs`` as a list) is refused on reading and
   on writing, naming the record and the capture field; inside, ``epoch_weights`` sums to N
   (15 + 14 + 1 = 30 for epochs 0, 15, 29 of 30).
4. Schedule ranges whose first end comes after the last: literal ends at construction,
   relative ends once resolved against a run context (``Schedule.check``, ``numerics_for``,
   and ``replay.run`` before any row), with both resolved ends worked out by hand
   (``"50%"`` of 10 epochs is floor(0.5 x 10) = 5; ``"last-3"`` of 100 steps is 96).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from hbfpsim import formats, quantize, replay
from hbfpsim.config import ConfigError
from hbfpsim.format_schedule import Rule, RunContext, Schedule
from hbfpsim.mac import AccumulationPlan, as_plan, matmul, parse_accumulator
from hbfpsim.numerics import Numerics
from hbfpsim.replay.run import epoch_weights
from hbfpsim.trace import TraceError, TraceWriter
from hbfpsim.trace import open as open_trace
from hbfpsim.trace.format import GemmRecord, Trace

FP32_MAX = (2 - 2.0**-23) * 2.0**127
FP32_OVER = (2 - 2.0**-24) * 2.0**127       # round to nearest: from here on, Inf
FP16_OVER = 65520.0                          # 65504 + half of its ulp 32


# --- 1. values beyond the range ---------------------------------------------------------------

def test_fp32_overflows_float64_by_its_rule_at_the_exact_threshold():
    below = np.nextafter(FP32_OVER, 0)
    q = quantize(np.array([below, FP32_OVER, -FP32_OVER, 1e39, -1e300, 1.0]), "fp32")
    assert q.dtype == np.float64
    assert q.tolist() == [FP32_MAX, math.inf, -math.inf, math.inf, -math.inf, 1.0]
    sat = quantize(np.array([FP32_OVER, -1e300]), "fp32", saturate=True)
    assert sat.tolist() == [FP32_MAX, -FP32_MAX]
    assert quantize(np.array([1e39, -1e39]), "fp8_e4m3").tolist() == [448.0, -448.0]
    assert quantize(np.array([np.nextafter(FP16_OVER, 0), FP16_OVER]), "fp16").tolist() == \
        [65504.0, math.inf]


def test_block_formats_clamp_and_saturate_float64_beyond_float32():
    x = np.array([1e39, -1e300, 1.0, 0.0])
    # HBFP4: E clamps at 127, the LSB weighs 2^(127 - 3); magnitudes saturate at k = 7
    assert quantize(x, "hbfp4").tolist() == [7 * 2.0**124, -7 * 2.0**124, 0.0, 0.0]
    # MXFP4: X = floor(log2 1e300) - 2 clamps at 127; E2M1 elements saturate at 6
    assert quantize(x, "mxfp4").tolist() == [6 * 2.0**127, -6 * 2.0**127, 0.0, 0.0]
    with pytest.raises(ValueError, match="beyond float32's range"):
        quantize(x, "int8")


def test_hbfpemulator_compat_refuses_float64_float32_cannot_hold():
    fmt = formats.get("hbfp4", compat="hbfpemulator")
    with pytest.raises(ValueError, match=r"x: hbfp4@64 with compat='hbfpemulator' .* 2 finite "
                                         r"value\(s\) .* beyond float32's range") as err:
        fmt.quantize(np.array([FP32_OVER, 1.0, -1e39]))
    assert "infinite" not in str(err.value)
    with pytest.raises(ValueError, match="beyond float32's range"):   # not a NaN block
        fmt.quantize(np.array([1e39, 1.0]), nonfinite="propagate")
    below = np.nextafter(FP32_OVER, 0)          # rounds to float32's max: the emulator's input
    x64 = np.array([below, 1.0, 2.0**126])
    x32 = x64.astype(np.float32)
    assert np.array_equal(fmt.quantize(x64), fmt.quantize(x32).astype(np.float64))
    small = np.array([1.5 * 2.0**126, 1.0])
    assert fmt.quantize(small).tolist() == [1.5 * 2.0**126, 0.0]   # E = 127, step 2^124


def test_matmul_counts_operands_that_overflow_to_inf():
    a = np.ones((3, 5))
    a[0, 1], a[0, 3] = 1e39, -1e39              # Inf - Inf: NaN
    a[1, 0] = FP32_OVER                          # +Inf
    a[2, 2] = np.nextafter(FP32_OVER, 0)         # rounds to max: no overflow
    b = np.ones((5, 2))
    expected = int(np.sum(np.abs(a) >= FP32_OVER))
    assert expected == 3
    out, stats = matmul(a, b, "fp32")
    assert stats.operand_overflows == (3, 0)
    assert np.isnan(out[0]).all() and (out[1] == math.inf).all()
    assert out[2].tolist() == [FP32_MAX, FP32_MAX]   # 2 + max rounds to max: no overflow
    assert [lv.overflows for lv in stats.levels] == [0]
    assert "operand overflows (quantized to Inf or NaN): A 3, B 0" in stats.summary()
    _, per = matmul(a, b, "fp32", stats="element", fast_path=False)
    assert per.operand_overflows == (3, 0)
    bb = np.full((5, 2), 1.0)
    bb[4, 1] = 7e4                               # beyond fp16's 65520 threshold
    _, stats16 = matmul(np.ones((2, 5)), bb, "fp16", operand_rounding="rtz")
    assert stats16.operand_overflows == (0, 1)
    # the same data in a saturating format: no operand overflow, the sums overflow instead
    sat = formats.get("fp32", saturate=True)
    out, stats = matmul(np.full((2, 2), 1e39), np.ones((2, 3)), sat)
    assert stats.operand_overflows == (0, 0)
    assert stats.levels[0].overflows == 2 * 3 and (out == math.inf).all()


def test_matmul_fixed_point_plans_refuse_overflowed_operands():
    e5m2 = formats.get("fp8_e5m2", saturate=False)
    a = np.ones((2, 4))
    a[0, :2] = 1e5                                # beyond 57344
    with pytest.raises(ValueError, match=r"level 1 is fixed point, but 2 element\(s\) of A lie "
                                         r"beyond fp8_e5m2's largest value \(57344\)"):
        matmul(a, np.ones((4, 2)), e5m2, "fp8_e4m3", plan="fixed32")
    e4m3 = formats.get("fp8_e4m3", saturate=False)   # no Inf: overflow gives NaN
    a[0, :2] = 1000.0                                 # beyond 448 (the threshold is 464)
    out, stats = matmul(a, np.ones((4, 2)), e4m3, plan="fp32")
    assert stats.operand_overflows == (2, 0)
    assert np.isnan(out[0]).all() and out[1].tolist() == [4.0, 4.0]


# --- 2. wrong types ------------------------------------------------------------------------

A, B = np.ones((2, 4)), np.ones((4, 3))

TYPE_ERRORS = [
    (lambda: quantize(A, 123), "fmt must be a format name or a Format, got 123 (int)"),
    (lambda: quantize(A, None), "fmt must be a format name or a Format"),
    (lambda: quantize(np.array([1 + 2j]), "hbfp4"), "x must be a real numeric array"),
    (lambda: quantize("abc", "hbfp4"), "x must be a real numeric array"),
    (lambda: quantize(A, "hbfp4", axis="0"), "axis must be an integer, got '0' (str)"),
    (lambda: quantize(A, "hbfp4", axis=1.0), "axis must be an integer"),
    (lambda: quantize(A, "hbfp4", rounding=3), "rounding must be a Rounding or its name"),
    (lambda: quantize(A, "hbfp4", rounding=None), "rounding must be a Rounding"),
    (lambda: quantize(A, "hbfp4", rounding="stochastic", seed="1"), "seed must be an integer"),
    (lambda: quantize(A, "hbfp4", rounding="stochastic", seed=1.5), "seed must be an integer"),
    (lambda: quantize(A, "hbfp4", rounding="stochastic", seed=True), "seed must be an integer"),
    (lambda: quantize(A, "hbfp4", nonfinite=None), "nonfinite must be a string"),
    (lambda: quantize(A, "fp8_e4m3", saturate="yes"), "saturate must be true or false"),
    (lambda: quantize(A, "int8", per=1), "per must be a string"),
    (lambda: quantize(A, "hbfp4", compat=1), "compat must be a string or None"),
    (lambda: formats.get(4), "a format name must be a string, got 4 (int)"),
    (lambda: formats.get(b"hbfp4"), "a format name must be a string"),
    (lambda: matmul(A, B, "hbfp4", plan=None), "plan must be an AccumulationPlan"),
    (lambda: matmul(A, B, "hbfp4", plan=5), "plan must be an AccumulationPlan"),
    (lambda: matmul(A, B, "hbfp4", plan=[5, (None, "fp32")]), "plan levels must be"),
    (lambda: matmul(A, B, "hbfp4", plan=[("64", "fixed16"), (None, "fp32")]),
     "length an integer or None"),
    (lambda: matmul(A, B, "hbfp4", plan=[(None, 32)]), "accumulator spec must be a string"),
    (lambda: matmul(A, B, 7), "fmt_a must be a format name or a Format, got 7 (int)"),
    (lambda: matmul(A, B, "hbfp4", 7), "fmt_b must be a format name or a Format"),
    (lambda: matmul(A, B, "hbfp4", operand_rounding=1), "operand_rounding must be a Rounding"),
    (lambda: matmul(A, B, "hbfp4", seed="1"), "seed must be an integer in"),
    (lambda: matmul(A, B, "hbfp4", seed=1.5), "seed must be an integer in"),
    (lambda: matmul(A, B, "hbfp4", stats=None), "stats must be a string"),
    (lambda: matmul(A, B, "hbfp4", fast_path="no"), "fast_path must be True or False"),
    (lambda: matmul(None, B, "hbfp4"), "A must be a real numeric array"),
    (lambda: matmul(A, B.astype(complex), "hbfp4"), "B must be a real numeric array"),
    (lambda: parse_accumulator(16), "accumulator spec must be a string or an Accumulator"),
    (lambda: parse_accumulator(None), "accumulator spec must be a string"),
    (lambda: AccumulationPlan.parse(5), "accumulation plan must be a non-empty string"),
    (lambda: as_plan(3.5), "plan must be an AccumulationPlan"),
]


@pytest.mark.parametrize("call,message", TYPE_ERRORS)
def test_wrong_types_are_type_errors_saying_what_they_must_be(call, message):
    with pytest.raises(TypeError, match=re.escape(message)) as err:
        call()
    assert re.search(r"\bmust be\b|\bexpected\b", str(err.value))
    assert "\n" not in str(err.value)


VALUE_ERRORS = [
    (lambda: quantize(A, "nope"), "unknown format 'nope'"),
    (lambda: quantize(A, "hbfp4", axis=5), "axis=5 is out of range"),
    (lambda: quantize(A, "hbfp4", rounding="nearest"), "is not a rounding mode"),
    (lambda: quantize(A, "hbfp4", rounding="stochastic", seed=-1), "seed must be an integer"),
    (lambda: quantize(A, "hbfp4", nonfinite="PROPAGATE"), "is not one of 'raise'"),
    (lambda: quantize(A, "int8", per="row"), "per='row' is not one of"),
    (lambda: matmul(A, B, "hbfp4", plan=""), "non-empty string"),
    (lambda: matmul(A, B, "hbfp4", plan=[]), "an empty list has no levels"),
    (lambda: matmul(A, B, "hbfp4", plan=[(0, "fp32"), (None, "fp32")]), "chunk length"),
    (lambda: matmul(A, B, "hbfp4", seed=-1), r"seed must be an integer in [0, 2^63)"),
    (lambda: matmul(A, B, "hbfp4", seed=2**63), r"seed must be an integer in [0, 2^63)"),
    (lambda: matmul(A, B, "hbfp4", stats="all"), "stats='all' is not one of"),
    (lambda: matmul(A, B, "hbfp4", operand_rounding="x"), "is not a rounding mode"),
    (lambda: parse_accumulator("fixed7"), "width must be in"),
]


@pytest.mark.parametrize("call,message", VALUE_ERRORS)
def test_wrong_values_stay_value_errors(call, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        call()
    assert not isinstance(err.value, TypeError)


def test_type_errors_are_also_value_errors_for_file_readers():
    """A run file's wrong type still becomes a ConfigError (the readers catch ValueError)."""
    with pytest.raises(ConfigError, match=r"\[numerics\] input: .*must be a format name"):
        Numerics.create(4)          # resolve(4): an ArgumentTypeError
    assert issubclass(formats.ArgumentTypeError, TypeError)
    assert issubclass(formats.ArgumentTypeError, ValueError)


# --- 3. records outside the capture's epochs ------------------------------------------------

def _manifest(path: Path, capture: dict, epochs: list[int]) -> Path:
    path.mkdir()
    records = [{"id": i, "step": i, "epoch": e, "layer": "fc", "phase": "fwd", "m": 2, "n": 2,
                "k": 4} for i, e in enumerate(epochs)]
    (path / "manifest.json").write_text(json.dumps(
        {"schema": "hbfpsim-trace/1", "model": "m", "capture": capture, "records": records}))
    return path


@pytest.mark.parametrize("capture,epochs,words", [
    ({"epochs": 30}, [0, 30], ["record 1 (id 1)", "epoch 30 is outside the capture",
                               "capture.epochs is 30 (epochs 0 to 29)"]),
    ({"epochs": 2}, [0, 1, 7], ["record 2 (id 2)", "epoch 7", "capture.epochs is 2"]),
    ({"epochs": 30, "captured_epochs": [0, 15, 29]}, [0, 14, 29],
     ["record 1 (id 1)", "epoch 14 is not one of the captured epochs",
      "capture.captured_epochs: [0, 15, 29]"]),
    ({"epochs": [5]}, [5, 4], ["record 1 (id 1)", "epoch 4", "capture.epochs: [5]"]),
])
def test_records_outside_the_capture_are_refused(tmp_path, capture, epochs, words):
    root = _manifest(tmp_path / "t", capture, epochs)
    with pytest.raises(TraceError) as err:
        open_trace(root)
    assert all(w in str(err.value) for w in words), str(err.value)
    assert str(root / "manifest.json") in str(err.value)


@pytest.mark.parametrize("capture,epochs,weights", [
    ({"epochs": 30, "captured_epochs": [0, 15, 29]}, [0, 15, 29], {0: 15, 15: 14, 29: 1}),
    ({"epochs": 30}, [0, 15, 29], {0: 15, 15: 14, 29: 1}),
    ({"epochs": [5]}, [5, 5], {5: 1}),
    ({"epochs": "x"}, [0, 3], {0: 3, 3: 1}),     # free-form values say nothing
    ({"epochs": 0}, [0, 3], {0: 3, 3: 1}),
    ({"epochs": True}, [0, 3], {0: 3, 3: 1}),
])
def test_records_inside_the_capture_are_weighted_up_to_its_end(tmp_path, capture, epochs,
                                                                weights):
    t = open_trace(_manifest(tmp_path / "t", capture, epochs))
    assert epoch_weights(t) == weights
    if capture.get("epochs") == 30:
        assert sum(weights.values()) == 30


def test_trace_writer_refuses_a_record_outside_its_capture(tmp_path):
    w = TraceWriter(tmp_path / "t", "m", capture={"epochs": 2})
    w.add("fc", "fwd", 2, 2, 4, epoch=1)
    w.add("fc", "bwd_data", 2, 2, 4, epoch=2)
    with pytest.raises(TraceError, match=r"record 1 \(fc bwd_data\): epoch 2 is outside the "
                                         r"capture: capture.epochs is 2"):
        w.close()
    assert not (tmp_path / "t").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_epoch_weights_refuse_a_trace_built_past_its_capture(tmp_path):
    records = tuple(GemmRecord(i, i, e, "fc", "fwd", 2, 2, 4) for i, e in enumerate([0, 3]))
    trace = Trace(tmp_path, "m", "", {"epochs": 3}, records)
    with pytest.raises(TraceError, match=r"record id 1: epoch 3 is outside the capture: "
                                         r"capture.epochs is 3"):
        epoch_weights(trace)


# --- 4. rule ranges that never apply ----------------------------------------------------------

N = Numerics.create("hbfp4")
CONTEXT = RunContext("a", "b", last_epoch=9, last_step=99)


@pytest.mark.parametrize("key,ends,message", [
    ("epochs", (5, 2), "rule epochs: first 5 is after last 2"),
    ("steps", (4, 1), "rule steps: first 4 is after last 1"),
])
def test_literal_ranges_are_refused_at_construction(key, ends, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Rule(N, **{key: ends})


@pytest.mark.parametrize("key,ends,low,high", [
    ("epochs", ("last", 0), "epoch 9", "epoch 0"),
    ("epochs", ("50%", 3), "epoch 5", "epoch 3"),            # floor(0.5 x 10) = 5
    ("epochs", ("100%", "last"), "epoch 10", "epoch 9"),
    ("epochs", (3, "last-7"), "epoch 3", "epoch 2"),
    ("steps", ("last", "last-3"), "step 99", "step 96"),
    ("steps", ("10%", 9), "step 10", "step 9"),               # floor(0.1 x 100) = 10
])
def test_relative_ranges_are_refused_once_resolved(key, ends, low, high):
    schedule = Schedule("v", N, (Rule(Numerics.create("hbfp6"), **{key: ends}),))
    with pytest.raises(ValueError) as err:
        schedule.check(CONTEXT)
    text = str(err.value)
    assert f"schedule 'v' rule 1: {key} {list(ends)}" in text
    assert f"the first end resolves to {low} and the last to {high}" in text
    assert "never apply" in text
    step = 50 if key == "steps" else None
    with pytest.raises(ValueError, match=re.escape(f"{key} {list(ends)}")):
        schedule.numerics_for("a", "fwd", 5, CONTEXT, step)


@pytest.mark.parametrize("key,ends", [("epochs", ("99%", "last")), ("epochs", ("last", "last")),
                                      ("epochs", (5, None)), ("epochs", ("last-20", "last")),
                                      ("steps", ("99%", "last")), ("steps", (0, "last-99"))])
def test_ranges_that_meet_pass(key, ends):
    hbfp6 = Numerics.create("hbfp6")
    schedule = Schedule("v", N, (Rule(hbfp6, **{key: ends}),))
    schedule.check(CONTEXT)
    schedule.check(RunContext())                 # relative ends unresolved: left to matching


def test_replay_refuses_a_never_applying_rule_before_any_row(tmp_path):
    with TraceWriter(tmp_path / "trace", "m", capture={"epochs": 10}) as w:
        w.add("fc", "fwd", 4, 3, 8, epoch=0, a=np.ones((4, 8), np.float32),
              b=np.ones((8, 3), np.float32))
    run = tmp_path / "run.toml"
    run.write_text(f'[run]\ntraces = ["{tmp_path / "trace"}"]\narrays = ["array32"]\n\n'
                   '[[variant]]\nname = "v"\ninput = "hbfp4"\n'
                   '[[variant.rule]]\nepochs = ["last", 0]\ninput = "hbfp6"\n')
    rows = []
    with pytest.raises(ConfigError) as err:
        replay.run(run, progress=False, on_row=rows.append)
    text = str(err.value)
    assert rows == []
    for words in (str(run), str(tmp_path / "trace"), "schedule 'v' rule 1",
                  "epochs ['last', 0]", "resolves to epoch 9 and the last to epoch 0"):
        assert words in text, text
